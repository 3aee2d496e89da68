"""One exception family for everything a user can get wrong or an environment can lack.

The CLI turns a `BundleError` into a single line on stderr and its exit code, so every
module raises these for user-facing problems and lets real bugs surface as tracebacks.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_ENVIRONMENT = 3
EXIT_VERIFY_FAILED = 4
EXIT_GATE_FAILED = 5


class BundleError(Exception):
    """A failure the user can act on; `message` is one line, `exit_code` is documented."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InputError(BundleError):
    """The input (a file, an option, a sysroot) cannot be used as given."""

    exit_code = EXIT_BAD_INPUT


class MissingLibraryError(InputError):
    """A DT_NEEDED library cannot be found by the loader's search rules."""


class EnvironmentUnfitError(BundleError):
    """This machine cannot do what was asked (missing tool, no privilege)."""

    exit_code = EXIT_ENVIRONMENT


class UnsafeArtifactError(BundleError):
    """An artifact holds something that must not be unpacked, read or trusted: a hostile
    member, a symlink leaving it, a malformed manifest (exit 4: verification failed)."""

    exit_code = EXIT_VERIFY_FAILED


class VerifyFailedError(BundleError):
    """An artifact written whole did not pass its verification (`bundle release`)."""

    exit_code = EXIT_VERIFY_FAILED


class GateFailedError(BundleError):
    """A `--fail-on` gate holds: what was asked for is written, whole, and the pipeline
    is told to stop (exit 5)."""

    exit_code = EXIT_GATE_FAILED


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: cleaned up like Ctrl-C, reported with its own exit code (143)."""


class HungUp(KeyboardInterrupt):
    """SIGHUP arrived (the terminal or session went away): cleaned up like Ctrl-C,
    reported with its own exit code (129)."""

"""What holds for the program in each way an artifact can be started, for the report.

Measured with tests/integration/test_sealing.py (strace in the Debian 11 root and in an empty root):
in every mode the bundled loader and glibc open nothing of the host's but its
configuration files (/etc/nsswitch.conf, /etc/passwd, /etc/hosts, ...), because their
copies are sealed (sealing.py). What differs between the modes is how the program sees
itself: at the prefix the kernel starts libexec/NAME, elsewhere the launcher starts the
bundled loader with the program as its argument, so /proc/self/exe names the loader.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StartMode:
    how: str  # how the program is started
    holds: str  # what the program sees, and what does not work


def start_modes(launcher_type: str, argv0: bool, loader_name: str,
                privileged: bool) -> tuple[StartMode, ...]:
    """The modes of one artifact. `argv0`: the bundled loader has --argv0 (glibc >= 2.33)."""
    at_prefix_argv0 = ("argv[0] as the caller gave it (a symlink's own name too)"
                       if launcher_type == "native" else
                       "argv[0] is PREFIX/libexec/NAME (a sh launcher cannot exec with another "
                       "argv[0]; the native launcher can)")
    elsewhere_argv0 = ("argv[0] as the caller gave it" if argv0 else
                       "argv[0] is the libexec/ path (this glibc's loader has no --argv0)")
    privilege = "; setuid/capabilities hold (installed by root)" if privileged else ""
    return (
        StartMode("at the prefix, through bin/NAME or a symlink to it",
                  f"{at_prefix_argv0}; /proc/self/exe is libexec/NAME, so os.Executable, "
                  f"self re-exec through /proc/self/exe, a memfd copy (execveat) or fexecve "
                  f"work{privilege}"),
        StartMode("at the prefix, libexec/NAME directly (systemd ExecStart)",
                  "argv[0] as given; as above; variables of the launcher (GCONV_PATH and "
                  "LOCPATH for the bundled glibc) must be set by the unit (Environment=)"),
        StartMode("elsewhere, through bin/NAME",
                  f"{elsewhere_argv0}; /proc/self/exe is lib/{loader_name}: os.Executable "
                  f"names the loader, a self re-exec through /proc/self/exe or a copy of it "
                  f"starts the loader without the program and fails, ps/pidof/top show "
                  f"{loader_name[:15]}; setuid and capabilities are lost"),
        StartMode("elsewhere, libexec/NAME directly",
                  "fails with 'No such file or directory': its interpreter is the prefix's "
                  "(only an installed copy of this very lib/ tree is accepted there)"),
    )

"""A worker process for patch.py, forked at the start of a build.

`import lief` costs ~0.37 s (LIEF >= 0.16: nanobind's module set-up) and holds the GIL
throughout (measured: a thread does not overlap it), so a second process does it, on the
second core, while this one resolves. This module imports nothing heavy, so that the fork
happens early (`bundle BINARY...` forks before the build's own imports).
"""

from __future__ import annotations

import collections
import contextlib
import multiprocessing
import signal
from typing import TYPE_CHECKING, NoReturn

from bundler.errors import BundleError

if TYPE_CHECKING:
    from bundler.plan import Patch


class PatchWorker:
    """patch_copy() in a forked worker process that imports LIEF while this one resolves.

    The worker ignores Ctrl-C (a KeyboardInterrupt inside LIEF's set-up ends in
    std::terminate); the build stops it when it ends, also on error or interrupt.
    """

    _prestarted: PatchWorker | None = None

    @classmethod
    def prestart(cls) -> None:
        """Fork the worker at the very start of `bundle BINARY...` (the build takes it)."""
        if cls._prestarted is None:
            with contextlib.suppress(BundleError):  # the build tries again and says why
                cls._prestarted = cls()

    @classmethod
    def take(cls) -> PatchWorker:
        """The prestarted worker, or a new one."""
        worker, cls._prestarted = cls._prestarted, None
        return worker or cls()

    def __init__(self) -> None:
        context = multiprocessing.get_context("fork")
        try:
            self._connection, child = context.Pipe()
            self._process = context.Process(target=_serve, args=(child,),
                                            name="bundle-patch", daemon=True)
            self._process.start()
        except OSError as exc:  # e.g. EAGAIN at the process limit
            from bundler.errors import EnvironmentUnfitError

            raise EnvironmentUnfitError(
                f"cannot start the patch worker process: {exc.strerror or exc}") from None
        child.close()
        self._pending: collections.deque[tuple[str, str]] = collections.deque()
        self._done: set[str] = set()

    def submit(self, source: str, dest: str, patch: Patch) -> None:
        """Queue patch_copy(source, dest, patch); wait(dest) before reading `dest`.

        Jobs run in order while this process goes on (writing what needs no patch)."""
        self._pending.append((dest, source))
        try:
            self._connection.send((source, dest, patch))
        except (OSError, BrokenPipeError):
            self._died(source)

    def wait(self, dest: str) -> None:
        """Until `dest` is written; its patch error (or an earlier one) is raised here."""
        while dest not in self._done:
            if not self._pending:
                raise AssertionError(f"{dest} was never submitted")
            done, source = self._pending.popleft()
            try:
                error = self._connection.recv()
            except (EOFError, OSError):
                self._died(source)
            if error is not None:
                raise error
            self._done.add(done)

    def _died(self, source: str) -> NoReturn:
        from bundler.patch import PatchError

        self._process.join(timeout=1)
        raise PatchError(f"{source}: the patch worker died (exit {self._process.exitcode})")

    @property
    def alive(self) -> bool:
        return self._process.is_alive()

    def drain(self) -> None:
        """Collect the results still owed (a build that failed midway), so the next
        build's waits are not answered with this one's; errors are dropped."""
        while self._pending:
            self._pending.popleft()
            try:
                self._connection.recv()
            except (EOFError, OSError):
                self._pending.clear()
                return
        self._done.clear()

    def close(self) -> None:
        with contextlib.suppress(OSError, BrokenPipeError):
            self._connection.send(None)
        self._process.join(timeout=5)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._connection.close()


def _serve(connection) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    from bundler.patch import PatchError, patch_copy  # the child's imports, off our clock

    with contextlib.suppress(ImportError):
        import lief  # noqa: F401 - now, while the parent resolves; patch_copy reports it
    while True:
        try:
            job = connection.recv()
        except EOFError:
            return
        if job is None:
            return
        try:
            patch_copy(*job)
            connection.send(None)
        except BundleError as exc:
            connection.send(exc)
        except Exception as exc:  # a LIEF or pyelftools surprise: still one line
            connection.send(PatchError(f"{job[0]}: patching failed ({type(exc).__name__}: "
                                       f"{exc})"))

"""A worker process for patch.py, forked at the start of a build.

`import lief` costs ~0.37 s (LIEF >= 0.16: nanobind's module set-up) and holds the GIL
throughout (measured: a thread does not overlap it), so a second process does it, on the
second core, while this one resolves. This module imports nothing heavy, so that the fork
happens early (`bundle BINARY...` forks before the build's own imports). The build then has it
parse the program too (`prepare`), long before the program's job comes.

The worker never outlives the build and never runs unbounded:
- it dies with its parent whatever kills the parent (PR_SET_PDEATHSIG, SIGKILL included),
  and sees EOF on its pipe when the parent goes (it keeps no copy of the parent's end);
- each job runs under an address-space limit and a wall-time limit chosen from the input's
  size (`limits_for`): LIEF fed a hostile layout allocated 6.8 GB for a 140 KB file.
"""

from __future__ import annotations

import collections
import contextlib
import multiprocessing
import os
import resource
import signal
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn

from bundler.errors import BundleError

if TYPE_CHECKING:
    from bundler.patch_spec import Patch

PR_SET_PDEATHSIG = 1  # linux/prctl.h
PR_SET_NAME = 15
WORKER_NAME = "bundle-patch"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
MiB = 1 << 20
# Measured (LIEF 0.16, this machine): node (99 MB) peaks at 442 MiB RSS / 550 MiB of address
# space above the worker's own 73 MiB, in 1.9-2.7 s; /bin/ls and sqlite3 at +4 MiB in 0.04 s.
# The limits leave more than twice that: 256 MiB + 12 x the file's size (node: 1.4 GiB), and
# 10 s + 0.5 s per MiB (node: 57 s, 20 times what it needs on a loaded 2-core machine).
MEMORY_FLOOR = 256 * MiB
MEMORY_PER_BYTE = 12
SECONDS_FLOOR = 10.0
SECONDS_PER_MIB = 0.5
POLL_SECONDS = 0.2  # how often a waiting build looks at its deferred signals
GRACE_SECONDS = 30.0  # the build's own deadline, past the worker's alarm, for a stuck worker


@dataclass(frozen=True)
class PatchLimits:
    """What one patch job may use: address space above the worker's own, and wall time."""

    memory: int  # bytes
    seconds: float
    file_size: int

    def describe(self) -> str:
        return (f"{self.memory // MiB} MiB of address space and {self.seconds:g} s for a "
                f"{_mib(self.file_size)} file")


def limits_for(file_size: int) -> PatchLimits:
    """Limits proportional to the input: LIEF's needs grow with the file (measured above)."""
    seconds = SECONDS_FLOOR + SECONDS_PER_MIB * file_size / MiB
    return PatchLimits(MEMORY_FLOOR + MEMORY_PER_BYTE * file_size, max(0.1, round(seconds, 1)),
                       file_size)


def _mib(size: int) -> str:
    return f"{size / MiB:.1f} MiB" if size >= MiB else f"{size // 1024} KiB"


@dataclass
class _Job:
    dest: str
    source: str
    limits: PatchLimits


@dataclass(frozen=True)
class _Prepare:
    """Parse `source` now (patch.prepare), ahead of its job: no answer is sent."""

    source: str
    limits: PatchLimits


class PatchWorker:
    """patch_copy() in a forked worker process that imports LIEF while this one resolves.

    The worker takes SIGINT/SIGTERM/SIGHUP's default action (a KeyboardInterrupt inside
    LIEF's set-up ends in std::terminate): a signal to the whole process group (Ctrl-C,
    `timeout`) ends it at once, and the build, which defers the same signal to a check
    point, reports the signal, not the worker's death. The build kills it when it fails.
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
        # Signals wait until the fork is done: a KeyboardInterrupt in the child before it
        # set its own handlers would print multiprocessing's traceback.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            self._connection, child = context.Pipe()
            self._process = context.Process(
                target=_serve, args=(child, self._connection, os.getpid()),
                name=WORKER_NAME, daemon=True)
            self._process.start()
        except OSError as exc:  # e.g. EAGAIN at the process limit
            from bundler.errors import EnvironmentUnfitError

            raise EnvironmentUnfitError(
                f"cannot start the patch worker process: {exc.strerror or exc}") from None
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        child.close()
        self._pending: collections.deque[_Job] = collections.deque()
        self._done: set[str] = set()
        self._since = time.monotonic()  # when the job at the head of the queue could start
        self._ahead = 0.0  # seconds a prepare sent before the head job may hold the worker
        # What wrote the copies (patch.rewriter), as the worker's jobs report it: one LIEF
        # for every job of the worker's life. None until a job is done.
        self.rewriter: str | None = None

    def prepare(self, source: str) -> None:
        """Have the worker parse `source` (the program, which will be patched) while this
        process resolves and scans, instead of once its job comes: on node, LIEF's parse
        and the room for the program headers are 0.15 s of CPU of the 1.16 s patch
        (LIEF 1.0.0, median of 5), and the worker sits idle for seconds before the job
        (node was submitted 4.7 s into the build, busy machine). Nothing comes back: a
        file that could not be prepared (not a dynamic program, a hostile layout, changed
        since) is parsed by its job, which says why."""
        limits = limits_for(_file_size(source))
        self._ahead += limits.seconds
        with contextlib.suppress(OSError, BrokenPipeError):  # submit() reports a dead worker
            self._connection.send(_Prepare(source, limits))

    def submit(self, source: str, dest: str, patch: Patch) -> None:
        """Queue patch_copy(source, dest, patch); wait(dest) before reading `dest`.

        Jobs run in order while this process goes on (writing what needs no patch)."""
        limits = limits_for(_file_size(source))
        if not self._pending:
            self._since = time.monotonic()
        job = _Job(dest, source, limits)
        self._pending.append(job)
        try:
            self._connection.send((source, dest, patch, limits))
        except (OSError, BrokenPipeError):
            self._died(job)

    def wait(self, dest: str) -> None:
        """Until `dest` is written; its patch error (or an earlier one) is raised here,
        and what wrote it is `rewriter` once it is.

        Waits in short polls with a check point between them, so a deferred Ctrl-C or
        SIGTERM is acted on at once, and gives up on a worker past the job's limit."""
        from bundler.signals import checkpoint

        while dest not in self._done:
            if not self._pending:
                raise AssertionError(f"{dest} was never submitted")
            job = self._pending[0]
            deadline = self._since + self._ahead + job.limits.seconds + GRACE_SECONDS
            while not self._ready():
                checkpoint()
                if time.monotonic() > deadline:
                    self.kill()
                    raise _over_time(job)
            self._pending.popleft()
            self._since = time.monotonic()
            self._ahead = 0.0  # prepares are sent before the first job only
            try:
                answer = self._connection.recv()
            except (EOFError, OSError):
                self._died(job)
            if isinstance(answer, BaseException):
                raise answer
            self.rewriter = answer
            self._done.add(job.dest)

    def _ready(self) -> bool:
        try:
            return self._connection.poll(POLL_SECONDS)
        except (EOFError, OSError):
            return True  # recv() says what happened

    def _died(self, job: _Job) -> NoReturn:
        from bundler.patch import PatchError
        from bundler.signals import checkpoint, stop_if_received

        checkpoint()  # a signal to the process group ended it: report the signal
        self._process.join(timeout=1)
        code = self._process.exitcode
        if code is not None and code < 0:
            stop_if_received(-code)
        if code == -signal.SIGALRM:
            raise _over_time(job)
        raise PatchError(f"{job.source}: the patch worker died ({_how(code)})")

    @property
    def alive(self) -> bool:
        return self._process.is_alive()

    def drain(self) -> None:
        """Collect the results still owed (a build that failed midway), so the next
        build's waits are not answered with this one's; errors are dropped. Bounded: each
        job is (by its limits)."""
        while self._pending:
            self._pending.popleft()
            try:
                self._connection.recv()
            except (EOFError, OSError):
                self._pending.clear()
                return
        self._done.clear()
        self._ahead = 0.0

    def close(self) -> None:
        """Stop it after a build: it finishes nothing more, so it is asked to exit."""
        with contextlib.suppress(OSError, BrokenPipeError):
            self._connection.send(None)
        self._process.join(timeout=5)
        self.kill()

    def kill(self) -> None:
        """Stop it now (a failed or interrupted build: what it writes is thrown away)."""
        if self._process.is_alive():
            self._process.kill()
        self._process.join()
        self._pending.clear()
        self._connection.close()


def _file_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0  # patch_copy reports the file


def _over_time(job: _Job) -> BundleError:
    from bundler.patch import PatchError

    return PatchError(f"{job.source}: patching took longer than its time limit "
                      f"({job.limits.describe()}); the layout is likely hostile")


def _how(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit {code}"


def _die_with_parent(parent: int) -> None:
    """PR_SET_PDEATHSIG: the kernel sends SIGKILL when the parent dies, SIGKILL included.
    A parent that died before the prctl took effect is caught by the pid check."""
    import ctypes  # here, in the child: the parent forks before importing anything heavy

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    libc.prctl(PR_SET_NAME, WORKER_NAME.encode(), 0, 0, 0)  # what ps and /proc/PID/comm show
    if os.getppid() != parent:
        os._exit(0)


def _serve(connection, parents_end, parent: int) -> None:
    _die_with_parent(parent)
    parents_end.close()  # else recv() never sees EOF: this process would hold it open
    for signum in (*STOP_SIGNALS, signal.SIGALRM):
        signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    from bundler.patch import PatchError, _import_lief, patch_copy  # off the build's clock

    with contextlib.suppress(ImportError):
        _import_lief()  # now, while the parent resolves; patch_copy reports a failure
    prepared = None
    while True:
        try:
            job = connection.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        if isinstance(job, _Prepare):
            prepared = None  # one at a time: its memory is that of the largest file
            prepared = _prepared(job)
            continue
        source, dest, patch, limits = job
        parsed = prepared if prepared is not None and prepared.matches(source) else None
        prepared = None  # used by this job or not at all
        try:
            with _bounded(limits):
                wrote = patch_copy(source, dest, patch, parsed)
            connection.send(wrote)
        except MemoryError:
            connection.send(_over_memory(PatchError, source, limits))
        except BundleError as exc:
            if "bad_alloc" in exc.message:  # LIEF's C++ allocation failed at the limit
                exc = _over_memory(PatchError, source, limits)
            connection.send(exc)
        except Exception as exc:  # a LIEF or pyelftools surprise: still one line
            connection.send(PatchError(f"{source}: patching failed ({type(exc).__name__}: "
                                       f"{exc})"))


def _prepared(job: _Prepare):
    """patch.prepare(job.source) under the job's limits, for a dynamic program with a sane
    layout; None whenever it cannot be (its job then parses the file and reports)."""
    from bundler.elf import read_elf, refuse_hostile_layout
    from bundler.patch import prepare

    try:
        refuse_hostile_layout(job.source)  # before LIEF reads it, as the build does
        if read_elf(job.source).interpreter is None:
            return None  # static: never patched
        with _bounded(job.limits):
            return prepare(job.source)
    except Exception:  # InputError, PatchError, MemoryError, a LIEF surprise: its job says
        return None


def _over_memory(error: type[BundleError], source: str, limits: PatchLimits) -> BundleError:
    return error(f"{source}: patching needed more than its memory limit "
                 f"({limits.describe()}); the layout is likely hostile")


@contextlib.contextmanager
def _bounded(limits: PatchLimits):
    """RLIMIT_AS at what the worker uses now plus the job's allowance (never above a limit
    the caller set), and SIGALRM, whose default action kills the worker, at the time limit
    (a Python handler could not run while LIEF's C++ holds the thread)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = _address_space() + limits.memory
    for bound in (soft, hard):
        if bound != resource.RLIM_INFINITY:
            cap = min(cap, bound)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    signal.setitimer(signal.ITIMER_REAL, limits.seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _address_space() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")

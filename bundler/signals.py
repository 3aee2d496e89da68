"""Ctrl-C, SIGTERM and SIGHUP while writing or running: recorded when they arrive, acted on
at check points.

Raising KeyboardInterrupt from a signal handler lands wherever Python happens to be,
also inside C extensions (zstandard turned one into "must pass an object with a write()
method"; LIEF's module initialisation into std::terminate). So during a build the two
signals only set a flag, and `checkpoint()`, called between files and between chunks,
raises KeyboardInterrupt or `Terminated` at a point where cleanup code runs normally.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

from bundler.errors import HungUp, Terminated

DEFERRED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

_pending: list[int] = []
_depth: list[int] = []  # nesting of deferred_signals blocks
_received: set[int] = set()  # every signal this process got, raised or not


def checkpoint() -> None:
    """Raise for a signal that arrived since the last check point."""
    if _pending:
        signum = _pending.pop(0)
        _pending.clear()
        raise _stop_for(signum)


def _stop_for(signum: int) -> type[KeyboardInterrupt]:
    stops: dict[int, type[KeyboardInterrupt]] = {signal.SIGTERM: Terminated,
                                                 signal.SIGHUP: HungUp}
    return stops.get(signum, KeyboardInterrupt)


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Within the block SIGINT/SIGTERM/SIGHUP are deferred to check points.

    A signal that arrives after the last check point (the output is already renamed
    into place, whole) is dropped: the work it would have stopped is done.
    """

    def record(signum, _frame) -> None:
        _received.add(signum)
        _pending.append(signum)

    try:
        previous = {sig: signal.signal(sig, record) for sig in DEFERRED}
    except ValueError:  # not the main thread: signals are not ours to handle
        yield
        return
    outermost = not _depth
    _depth.append(1)
    try:
        yield
    finally:
        _depth.pop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if outermost:
            _pending.clear()


# --- a build from its first line (`bundle BINARY...`) -------------------------------------

_holding: list[bool] = []  # since take_over(), until stop_at_once()
_written: list[str] = []  # OUT, once this process's build put it in place, whole


def take_over() -> None:
    """`bundle BINARY...`, before the patch worker is forked: SIGINT/SIGTERM/SIGHUP are
    recorded (not Python's KeyboardInterrupt anywhere, not SIGTERM's silent death) until
    the build proper calls stop_at_once()."""
    _holding[:] = [True]
    for sig in DEFERRED:
        signal.signal(sig, _on_signal)


def stop_at_once() -> None:
    """From here a signal outside deferred blocks raises at once (resolving and planning
    make no files to clean up); one recorded since take_over() is raised now."""
    _holding.clear()
    _written.clear()
    checkpoint()


def note_written(out: str) -> None:
    """OUT is in place, whole: from now on a signal does not stop the build (its summary
    and report are printed and written, exit 0), except at a later deferred block's check
    points (the --run comparison), where it stops what is left."""
    _written[:] = [out]


def forget_written() -> None:
    _written.clear()


def written() -> str | None:
    """The OUT this process has put in place, if it has."""
    return _written[0] if _written else None


def settle() -> None:
    """The outcome is decided (OUT written, or the one line about to be printed): from
    here signals are ignored, not raised into the message's printing. SIG_IGN also
    outlives Python's finalization, which puts back SIG_DFL for signals with a Python
    handler (measured: a SIGINT after the summary killed the process, exit -2). Only
    where take_over() installed the handler: in-process callers keep theirs."""
    for sig in DEFERRED:
        if signal.getsignal(sig) is _on_signal:
            signal.signal(sig, signal.SIG_IGN)


def stop_if_received(signum: int) -> None:
    """Raise for `signum` if this process got it: a child that died of the signal sent to
    the whole process group is that signal, not a failure of the child. (The raise in the
    handler can be lost: Python ignores an exception raised while it runs a garbage
    collection callback, such as the import system's module-lock cleanup.)"""
    if signum in _received and signum in DEFERRED:
        raise _stop_for(signum)


def stop_if_any_received() -> None:
    """Raise for a signal this process got, also one an inner step dropped because its own
    work was done by then (a build whose archive was already in place): the outer work
    (`bundle release`'s next target) must stop all the same."""
    for signum in DEFERRED:
        stop_if_received(signum)


def _on_signal(signum, _frame) -> None:
    _received.add(signum)
    if _holding or _written:
        _pending.append(signum)
        return
    raise _stop_for(signum)

"""Ctrl-C and SIGTERM while writing: recorded when they arrive, acted on at check points.

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

from bundler.errors import Terminated

_pending: list[int] = []
_depth: list[int] = []  # nesting of deferred_signals blocks


def checkpoint() -> None:
    """Raise for a signal that arrived since the last check point."""
    if _pending:
        signum = _pending.pop(0)
        _pending.clear()
        raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Within the block SIGINT/SIGTERM are deferred to check points.

    A signal that arrives after the last check point (the output is already renamed
    into place, whole) is dropped: the work it would have stopped is done.
    """

    def record(signum, _frame) -> None:
        _pending.append(signum)

    try:
        previous = {sig: signal.signal(sig, record) for sig in (signal.SIGINT, signal.SIGTERM)}
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

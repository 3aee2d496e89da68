"""A progress line on stderr while a large artifact is compressed (terminals only).

Compressing a 100 MB agent takes seconds; a silent terminal looks hung. Nothing is drawn
when stderr is not a terminal (CI logs, pipes) or the artifact is small.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

MIN_TOTAL = 32 << 20  # below this, compression is over before a line would help
WIDTH = 24
INTERVAL = 0.1  # seconds between redraws


def progress_line(label: str, done: int, total: int) -> str:
    """`label [#########...............]  38%  40/105 MiB` (pure: easy to test)."""
    fraction = min(1.0, done / total) if total else 1.0
    filled = int(fraction * WIDTH)
    return (f"{label} [{'#' * filled}{'.' * (WIDTH - filled)}] {fraction:4.0%} "
            f"{done / 2**20:4.0f}/{total / 2**20:.0f} MiB")


class Progress:
    def __init__(self, label: str, total: int, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.label = label
        self.total = total
        self.done = 0
        self.drawn = 0.0
        isatty = getattr(self.stream, "isatty", lambda: False)
        self.enabled = total >= MIN_TOTAL and isatty()

    def advance(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        if self.enabled and now - self.drawn >= INTERVAL:
            self.drawn = now
            self.stream.write("\r" + progress_line(self.label, self.done, self.total))
            self.stream.flush()

    def finish(self) -> None:
        if self.enabled and self.drawn:
            self.stream.write("\r\x1b[K")  # leave the line to the summary
            self.stream.flush()

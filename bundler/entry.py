"""The `bundle` console script: forks the patch worker before anything heavy is imported.

`bundle BINARY...` (and `bundle build ...`) will patch with LIEF, whose import costs
~0.37 s; the worker (patch_worker.py) starts importing it now, ~40 ms earlier than the CLI
could (click alone takes that long to import), while this process parses the arguments and
resolves. Other commands never fork it. Signals are taken over first (signals.py), so
that none between here and the build kills this process silently or the worker untidily.
"""

from __future__ import annotations

import gc
import sys

NO_PATCHING = frozenset({"inspect", "compare", "verify", "help", "diff", "schema", "sign",
                         "service"})
PATCHING = frozenset({"build", "release"})  # (and a program's path: the default command)
# They run sandboxes and make temporary directories: signals are taken over from here too,
# and their commands call signals.stop_at_once() first (cli.py).
TAKES_OVER = frozenset({"compare", "verify"})


def needs_patching(words: list[str]) -> bool:
    return bool(words) and (words[0] in PATCHING or (
        not words[0].startswith("-") and words[0] not in NO_PATCHING))


def main(argv: list[str] | None = None) -> None:
    words = sys.argv[1:] if argv is None else argv
    if words and words[0] in TAKES_OVER:
        from bundler import signals

        signals.take_over()
    elif needs_patching(words):
        from bundler import signals
        from bundler.patch_worker import PatchWorker

        signals.take_over()  # recorded from here, acted on once the build starts

        PatchWorker.prestart()
    from bundler.cli import main as cli_main

    cli_main(argv)


def script() -> None:
    """The console script and `python -m bundler`: `main`, in a process that ends with it.

    On the way out the objects still alive are frozen (`gc.freeze`), so the interpreter's
    shutdown frees them without its cyclic collections walking them all again: measured on
    this machine (7 builds each, time from main's return to the process's end, medians)
    sqlite3 32 -> 11 ms, ffmpeg 62 -> 25 ms, 1,000 libraries 63 -> 17 ms. What the
    shutdown still does is untouched: atexit handlers, the worker's reaping, flushing
    stdout and stderr. Only unreachable cycles made during the run are left to the
    kernel, and nothing the build writes waits on one (every file is closed, the output
    renamed into place, before main returns). Not in `main`, which may run in a process
    that goes on (tests call it)."""
    try:
        main()
    finally:
        gc.freeze()

"""The `bundle` console script: forks the patch worker before anything heavy is imported.

`bundle BINARY...` (and `bundle build ...`) will patch with LIEF, whose import costs
~0.37 s; the worker (patch_worker.py) starts importing it now, ~40 ms earlier than the CLI
could (click alone takes that long to import), while this process parses the arguments and
resolves. Other commands never fork it. Signals are taken over first (signals.py), so
that none between here and the build kills this process silently or the worker untidily.
"""

from __future__ import annotations

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

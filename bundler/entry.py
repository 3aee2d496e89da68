"""The `bundle` console script: forks the patch worker before anything heavy is imported.

`bundle BINARY...` (and `bundle build ...`) will patch with LIEF, whose import costs
~0.37 s; the worker (patch_worker.py) starts importing it now, ~40 ms earlier than the CLI
could (click alone takes that long to import), while this process parses the arguments and
resolves. Other commands never fork it.
"""

from __future__ import annotations

import sys

NO_PATCHING = frozenset({"inspect", "compare", "verify"})


def needs_patching(words: list[str]) -> bool:
    return bool(words) and (words[0] == "build" or (
        not words[0].startswith("-") and words[0] not in NO_PATCHING))


def main(argv: list[str] | None = None) -> None:
    if needs_patching(sys.argv[1:] if argv is None else argv):
        from bundler.patch_worker import PatchWorker

        PatchWorker.prestart()
    from bundler.cli import main as cli_main

    cli_main(argv)

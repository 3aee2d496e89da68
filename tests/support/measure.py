"""A command's peak memory, measured so that pytest's own does not leak into it.

A process started from pytest carries pytest's RSS high-water mark: with vfork the child
shares pytest's memory until exec, with fork it starts with a copy, and exec keeps the
larger of the old and the new peak. So `wait4` or RUSAGE_CHILDREN read pytest's own
peak once a suite has grown (measured: a bundle that peaked at 57 MiB alone reported
1027 MiB late in a CI run; `/bin/true` after a 1.2 GiB allocation reported 1213 MiB).
GNU time forks the command from its own small process, so its `%M` is the command's peak
and that of the children it waited for (the patch worker's too).
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Sequence
from typing import IO

from support.needs import need_tool


def run_with_peak(argv: Sequence[str], *, env: dict[str, str] | None = None,
                  stdout: IO | int | None = subprocess.DEVNULL,
                  stderr: IO | int | None = None,
                  ) -> tuple[subprocess.CompletedProcess[str], int]:
    """Run argv to its end: (its completed process, text output if piped; its peak RSS in
    KiB). Its exit code is the command's own: GNU time passes it on."""
    time_tool = need_tool("time")
    with tempfile.NamedTemporaryFile("r", prefix="peak-") as report:
        process = subprocess.run([time_tool, "-f", "%M", "-o", report.name, *argv],
                                 stdout=stdout, stderr=stderr, env=env, text=True)
        # GNU time writes "Command exited with non-zero status N" first where there is one.
        peak = int(report.read().split()[-1])
    return process, peak

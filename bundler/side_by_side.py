"""Run the static build and the artifact side by side, each in the sandbox (isolation.py),
for compare mode's `--run`."""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence

from bundler.isolation import (
    ROOT_ENV,
    Layout,
    Sandbox,
    make_bare_root,
    probe_sandbox,
    run_sandboxed,
)
from bundler.report_model import RunComparison, RunResult
from bundler.scratch import drop_scratch, make_scratch
from bundler.signals import deferred_signals

RUN_TIMEOUT = 60


DEFAULT_RUNS = 5


SHOWN_OUTPUT = 2000


RUN_PLACE = "/run/bundle-compare"  # where both are shown inside the sandbox


def run_both(static_path: str, launcher: str, args: Sequence[str],
             runs: int = DEFAULT_RUNS) -> RunComparison:
    """Run the static build and the artifact's launcher (TOP/bin/NAME) `runs` times each.

    Both are untrusted input, so both run as verify's runs do (isolation.py): in a
    bubblewrap sandbox over a bare root, never on the host, each run with a fresh /tmp and
    HOME, both shown read-only under RUN_PLACE (the artifact away from its prefix: the
    loader start). The times include the sandbox's start, the same for both.
    """
    with deferred_signals():
        sandbox = probe_sandbox()
        scratch = make_scratch("bundle-compare-run")
        work = scratch.path
        try:
            base = os.path.join(work, "bare")
            os.mkdir(base, 0o755)
            make_bare_root(base)
            top = os.path.dirname(os.path.dirname(os.path.abspath(launcher)))
            static_inside = f"{RUN_PLACE}/static/{os.path.basename(static_path)}"
            top_inside = f"{RUN_PLACE}/artifact/{os.path.basename(top)}"
            layout = Layout(base, ((os.path.abspath(static_path), static_inside),
                                   (top, top_inside)))
            static = _run_many(sandbox, layout, [static_inside, *args], runs)
            launcher_inside = f"{top_inside}/bin/{os.path.basename(launcher)}"
            artifact = _run_many(sandbox, layout, [launcher_inside, *args], runs)
        finally:
            drop_scratch(scratch)
    return RunComparison(
        args=tuple(args), runs=runs, static=static, artifact=artifact,
        outputs_match=static.output == artifact.output,
        exit_codes_match=static.exit_codes == artifact.exit_codes,
    )


def _run_many(sandbox: Sandbox, layout: Layout, argv: list[str], runs: int) -> RunResult:
    codes, seconds = [], []
    first_out = first_err = ""
    for number in range(runs):
        outcome = run_sandboxed(sandbox, layout, argv, dict(ROOT_ENV), RUN_TIMEOUT)
        if outcome.exit_code is None:
            code, out, err = -1, "", f"timed out after {RUN_TIMEOUT} s"
        else:
            code, out, err = outcome.exit_code, outcome.stdout, outcome.stderr
        seconds.append(outcome.seconds)
        codes.append(code)
        if number == 0:
            first_out, first_err = out[:SHOWN_OUTPUT], err[:SHOWN_OUTPUT]
    return RunResult(tuple(codes), first_out, first_err, statistics.median(seconds))

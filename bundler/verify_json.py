"""`bundle verify --json`: the verify result as one JSON object, for a pipeline to gate on.

Its shape is the published contract `bundler/schemas/verify.schema.json` (`bundle schema
verify`), stable within VERIFY_JSON_FORMAT_VERSION. A pure function of `VerifyResult`, the
sibling of `verify.render`: the text shows a few lines of each run's output, the JSON all
that was kept and judged (the first OUTPUT_LIMIT bytes of each stream), with the byte
counts of what the run wrote in all.
"""

from __future__ import annotations

import dataclasses

from bundler import __version__
from bundler.trace import Trace
from bundler.verify import RunCheck, VerifyResult

VERIFY_JSON_FORMAT_VERSION = 2  # 2: `trace` (verify --trace)


def verify_json(result: VerifyResult) -> dict:
    """The documented shape (verify.schema.json)."""
    return {
        "format_version": VERIFY_JSON_FORMAT_VERSION,
        "tool_version": __version__,
        "artifact": result.artifact,
        "sha256": result.sha256,
        "name": result.name,
        "arch": result.arch,
        "glibc": result.glibc,
        # --key: what the signed SHA256SUMS proved (signing.SignatureCheck); a signature
        # that fails is an error (exit 4), never a result.
        "signature": (None if result.signature is None
                      else dataclasses.asdict(result.signature)),
        "integrity": {
            "checksum": {"state": result.checksum_state, "text": result.checksum},
            "checked": result.integrity.checked,
            "problems": list(result.integrity.problems),
            "passed": not result.integrity.problems,
        },
        "root": result.root or None,  # none made: nothing ran (the integrity check failed)
        "notes": list(result.notes),
        "runs": [_run_json(run) for run in result.runs],
        "passed": result.passed,
        # --trace: the files the traced run met outside the artifact (null: not asked for);
        # information, never part of "passed"
        "trace": None if result.trace is None else _trace_json(result.trace),
    }


def _trace_json(trace: Trace) -> dict:
    outcome, facts = trace.outcome, trace.facts
    return {
        "label": trace.label,
        "exit_code": outcome.exit_code,
        "timed_out": outcome.exit_code is None,
        "seconds": round(outcome.seconds, 6),
        "started": facts.started,
        "processes": facts.processes,
        "calls": facts.calls,
        "missing": [dataclasses.asdict(traced) for traced in facts.missing],
        "found": [dataclasses.asdict(traced) for traced in facts.found],
    }


def _run_json(run: RunCheck) -> dict:
    outcome = run.outcome
    return {
        "label": run.label,
        "command": list(run.command),
        "exit_code": outcome.exit_code,
        "timed_out": outcome.exit_code is None,
        "seconds": round(outcome.seconds, 6),
        "expected": {"exit_code": run.expect_exit, "stdout_matches": run.expect_output},
        "stdout": outcome.stdout,
        "stderr": outcome.stderr,
        "stdout_bytes": outcome.stdout_bytes,
        "stderr_bytes": outcome.stderr_bytes,
        "truncated": outcome.truncated,
        "passed": run.passed,
        "reasons": list(run.reasons),
    }

"""What `bundle release` prints: a summary for people (stderr) and a JSON object for the
pipeline (stdout, `--json`, schema `release`). Pure functions of the ReleaseResult."""

from __future__ import annotations

import json
import os
from typing import Any

from bundler import __version__
from bundler.release import ReleaseResult, VerifyRun
from bundler.units import human_size

RELEASE_FORMAT_VERSION = 2  # 2: the gate uncarried-files


def exit_code(result: ReleaseResult) -> int:
    """4 when an archive failed its verification, else 5 when a gate holds, else 0."""
    from bundler.errors import EXIT_GATE_FAILED, EXIT_OK, EXIT_VERIFY_FAILED

    if result.verify_failed:
        return EXIT_VERIFY_FAILED
    return EXIT_GATE_FAILED if result.gates_failed else EXIT_OK


def failure_line(result: ReleaseResult) -> str | None:
    """The one `bundle: error:` line of a release that did not pass; None if it did."""
    if result.verify_failed:
        failed = result.verify_failed
        where = ", ".join(f"{os.path.basename(v.output)} in {v.root}" for v in failed)
        return f"release: {len(failed)} verification(s) failed: {where}"
    if result.gates_failed:
        gates = "; ".join(f"{arch}: {g.gate}: {g.why}" for arch, g in result.gates_failed)
        return f"release: --fail-on: {gates}"
    return None


def _verify_line(run: VerifyRun) -> str:
    how = f" under {run.emulator}" if run.emulator else ""
    word = "PASS" if run.passed else "FAIL"
    return f"{word} {os.path.basename(run.output)} in {run.root}{how} " \
           f"({run.runs_passed} of {run.runs} runs passed)"


def release_text(result: ReleaseResult) -> str:
    config = result.config
    version = f" {config.version}" if config.version else ""
    lines = [f"bundle: release {result.name}{version} ({config.path}): "
             f"{len(result.targets)} target(s) in {config.output_dir}"]
    for target in result.targets:
        arch = target.target.arch
        for number, output in enumerate(target.outputs):
            label = arch if number == 0 else ""
            lines.append(f"  {label:<8}{os.path.basename(output.path)}  "
                         f"{human_size(output.size)}  sha256 {output.sha256[:16]}…")
        verdict = target.report.verdict
        lines.append(f"  {'':<8}verdict  {verdict.ship}: {verdict.headline}")
        if config.verify is None:
            lines.append(f"  {'':<8}verify   not run: bundle.toml has no [verify]")
        for run in target.verified:
            lines.append(f"  {'':<8}verify   {_verify_line(run)}")
            lines += [f"  {'':<17}{problem}" for problem in run.problems]
        for gate in target.gates_failed:
            lines.append(f"  {'':<8}gate     {gate.gate} holds: {gate.why}")
    signed = (f"; signed: {os.path.basename(result.signature)}" if result.signature
              else "; not signed (no [sign] in bundle.toml)")
    lines.append(f"  {'SHA256SUMS':<8}  {result.sums_entries} files{signed}")
    if config.fail_on:
        held = len(result.gates_failed)
        lines.append(f"  {'gates':<8}  {', '.join(config.fail_on)}: "
                     + (f"{held} held" if held else "none held"))
    for run in result.verify_failed:  # the whole story of what failed, last
        lines += ["", run.text.rstrip("\n")]
    return "\n".join(lines) + "\n"


def release_json(result: ReleaseResult) -> str:
    return json.dumps(release_data(result), indent=2) + "\n"


def release_data(result: ReleaseResult) -> dict[str, Any]:
    config = result.config
    return {
        "format_version": RELEASE_FORMAT_VERSION,
        "tool_version": __version__,
        "config": config.path,
        "name": result.name,
        "version": config.version,
        "output_dir": config.output_dir,
        "passed": exit_code(result) == 0,
        "exit_code": exit_code(result),
        "fail_on": list(config.fail_on),
        "targets": [{
            "arch": t.target.arch,
            "machine": t.target.machine,
            "programs": [os.path.basename(p) for p in t.target.build.programs],
            "outputs": [{"format": o.format, "path": o.path, "sha256": o.sha256,
                         "size": o.size, "sboms": list(o.sboms)} for o in t.outputs],
            "verdict": {"ship": t.report.verdict.ship, "headline": t.report.verdict.headline},
            "gates_failed": [{"gate": g.gate, "why": g.why} for g in t.gates_failed],
            "verify": [{"output": v.output, "root": v.root, "emulator": v.emulator,
                        "passed": v.passed, "runs": v.runs, "runs_passed": v.runs_passed,
                        "problems": list(v.problems)} for v in t.verified],
        } for t in result.targets],
        "sums": {"path": result.sums, "entries": result.sums_entries,
                 "signature": result.signature,
                 "tool": config.sign.tool if config.sign is not None else None},
    }

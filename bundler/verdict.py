"""The compare decision: which artifact to ship, and why.

A pure function of what the build or `bundle compare` found (the static build, the
artifact, the runs, the hazards), so its reasoning is tested directly (tests/unit).
"""

from __future__ import annotations

import dataclasses

from bundler import nss
from bundler.diagnose import Diagnosis
from bundler.hazards import Hazard
from bundler.report_model import ArtifactSummary, Needs, Report, RunComparison, StaticSide, Verdict
from bundler.units import human_size

STATIC_GLIBC_TERMS = (
    "the static build has glibc (LGPL-2.1-or-later) linked into the program: shipping it "
    "obliges you to let its users relink the program against a modified glibc (LGPL-2.1 "
    "section 6), that is, to offer the program's object files or source; the artifact "
    "carries glibc as a separate, replaceable library, which that section does not require")


def decide(artifact: ArtifactSummary | None, static: StaticSide | None,
           runs: RunComparison | None, glibc_needed: str | None,
           hazards: tuple[Hazard, ...] = (), static_command: str | None = None) -> Verdict:
    """Which artifact to ship, and why; `hazards` are the program's and the artifact's,
    `static_command` the diagnosis's suggestion for a clean static build (Go). A static
    build with glibc inside adds what its licence obliges to the reasons, whichever way
    the verdict goes: shipping it is a legal decision as much as a technical one."""
    verdict = _decide(artifact, static, runs, glibc_needed, hazards, static_command)
    if static is None or static.contents is None or static.contents.libc != "glibc":
        return verdict
    return Verdict(verdict.ship, verdict.headline, (*verdict.reasons, STATIC_GLIBC_TERMS),
                   verdict.fixes)


def _decide(artifact: ArtifactSummary | None, static: StaticSide | None,
            runs: RunComparison | None, glibc_needed: str | None,
            hazards: tuple[Hazard, ...], static_command: str | None) -> Verdict:
    if static is None or not static.really_static:
        hint = ([f"a static build to compare: {static_command} (then --static)"]
                if static is None and static_command else [])
        verdict = _artifact_verdict(artifact, static, runs, glibc_needed, hazards, [])
        return Verdict(verdict.ship, verdict.headline, verdict.reasons + tuple(hint),
                       verdict.fixes)
    high = [h for h in static.hazards if h.severity == "high"]
    run_problem = _run_problem(runs)
    if high:
        reasons = [*run_problem,
                   *(f"in the static build, {h.effect} (evidence: {', '.join(h.evidence)})"
                     for h in high),
                   "until then the artifact: it carries its own glibc"
                   + (f"; {line}" if (line := _nss_line(artifact)) else ""),
                   *_static_nss(static, artifact),
                   *([] if static.same_program else [static.identity])]
        return Verdict("static-after-fixes",
                       "ship the static build only after these fixes; until then the artifact",
                       tuple(reasons), _static_fixes(static, high))
    if run_problem:
        return _artifact_verdict(artifact, static, runs, glibc_needed, hazards, run_problem)
    reasons = ["the static build is really static and needs nothing from the host's glibc "
               "at run time (no NSS callers, and no dlopen caller that can run)"]
    if artifact is not None:
        # Before compression (the artifact's own report.md, a directory): raw with raw.
        how, ours, theirs = (("compressed", static.compressed_size, artifact.compressed_size)
                             if artifact.compressed_size is not None
                             else ("raw", static.size, artifact.raw_size))
        reasons.append(
            f"it is {'smaller' if ours <= theirs else 'larger'} {how} ({human_size(ours)} vs "
            f"{human_size(theirs)}) and needs no launcher, loader or prefix")
    if runs is not None:
        codes = set(runs.static.exit_codes)
        if codes == {0}:
            reasons.append("both runs agree: exit 0, same output" + (
                "" if runs.outputs_match else " but for the program's own path (the two run "
                "from different places: see Runs side by side)"))
        else:
            reasons.append(f"both runs agree, but both exit {sorted(codes)}: check that the "
                           "--run arguments exercise the program")
    if static.min_kernel and artifact and artifact.min_kernel:
        reasons.append(f"minimum kernel: static {static.min_kernel}, "
                       f"artifact {artifact.min_kernel}")
    static_nss = _static_nss(static, artifact)
    if static_nss:  # what each would serve, side by side: the choice is also this
        reasons += [line for line in (_nss_line(artifact), *static_nss) if line]
    headline = "ship the static build"
    if not static.same_program:
        reasons.append(static.identity)
        headline += ", if it is the same program (see the warning)"
    return Verdict("static", headline, tuple(reasons), ())


def _run_problem(runs: RunComparison | None) -> list[str]:
    """Why the runs speak against the static build; none when they agree, also when the
    outputs differ only where each names its own path (run_diff.py: the two builds run
    from different places, which says nothing about either)."""
    if runs is None:
        return []
    own_path_only = not runs.outputs_match and _only_own_path(runs)
    if runs.exit_codes_match and (runs.outputs_match or own_path_only):
        return []
    outputs = ("match" if runs.outputs_match else
               "differ only in the program's own path" if own_path_only else "differ")
    return [f"run with {' '.join(runs.args) or 'no arguments'}: exit codes static "
            f"{list(runs.static.exit_codes)} vs artifact {list(runs.artifact.exit_codes)}, "
            f"outputs {outputs}"]


def _only_own_path(runs: RunComparison) -> bool:
    from bundler.run_diff import differences  # compare runs only: off a plain build's start

    found = differences(runs)
    return bool(found) and all(d.explained and not d.truncated for d in found)


def _nss_line(artifact: ArtifactSummary | None) -> str | None:
    return nss.brief(artifact.nss) if artifact is not None and artifact.nss else None


def _static_nss(static: StaticSide, artifact: ArtifactSummary | None) -> list[str]:
    """What a Go static build without cgo lookups does where the artifact's glibc would
    look up: it serves fewer sources (a static glibc's NSS is a hazard of its own)."""
    if static.contents is None or not static.contents.go_runtime or not _nss_line(artifact):
        return []
    if any(h.code == "static-nss" for h in static.hazards):
        return []
    return ["NSS in the static build: " + nss.static_lookups(nss.GO_PURE)]


def _artifact_verdict(artifact: ArtifactSummary | None, static: StaticSide | None,
                      runs: RunComparison | None, glibc_needed: str | None,
                      hazards: tuple[Hazard, ...], reasons: list[str]) -> Verdict:
    reasons = list(reasons)
    if static is not None and not static.really_static:
        reasons.insert(0, f"{static.path} is not static: " + "; ".join(static.not_static_because))
    if glibc_needed:
        reasons.append(f"unbundled, the program needs glibc >= {glibc_needed}; older hosts fail "
                       f"with \"version `GLIBC_{glibc_needed}' not found\"")
    if artifact is not None and artifact.glibc:
        reasons.append(f"the artifact brings glibc {artifact.glibc} and its loader, so the "
                       "host's glibc does not matter")
    if nss_line := _nss_line(artifact):
        reasons.append(nss_line)
    if static is None:
        reasons.append("no static build was given to compare (--static); a clean static "
                       "build, where possible, is simpler to ship")
    high = [h for h in hazards if h.severity == "high"]
    if not high:
        return Verdict("artifact", "ship the artifact", tuple(reasons), ())
    reasons += [f"but: {h.effect} ({', '.join(h.evidence)})" for h in high]
    return Verdict("artifact", "ship the artifact, after dealing with its high hazards "
                   "(see Hazards)", tuple(reasons), tuple(h.action for h in high))


def verdict_for(needs: Needs, artifact: ArtifactSummary | None, static: StaticSide | None,
                runs: RunComparison | None, hazards: tuple[Hazard, ...],
                diagnosis: Diagnosis | None) -> Verdict:
    """`decide` on what a report holds: the glibc the program with its libraries needs,
    and the diagnosis's command for a clean static build (Go)."""
    need = needs.glibc_closure or needs.glibc_program
    return decide(artifact, static, runs, need.release if need else None, hazards,
                  diagnosis.command if diagnosis else None)


def completed(report: Report, out: str, fmt: str, compressed_size: int | None,
              runs: RunComparison | None, *, sha256: str | None) -> Report:
    """The build's report once the artifact is written and both builds have run: the same
    facts, with where the artifact went, its compressed size and sha256 (None for a
    directory) and the runs, and the verdict decided again on them."""
    artifact = (dataclasses.replace(report.artifact, out=out, format=fmt,
                                    compressed_size=compressed_size, sha256=sha256)
                if report.artifact is not None else None)
    return dataclasses.replace(report, artifact=artifact, runs=runs, verdict=verdict_for(
        report.needs, artifact, report.static, runs, report.hazards, report.diagnosis))


def _static_fixes(static: StaticSide, high: list[Hazard]) -> tuple[str, ...]:
    """The fixes for the static build given: from its own Go diagnosis when it has one
    (its module versions decide the tags, and a tag it already has that did nothing is
    named), else each high hazard's general action."""
    diagnosis = static.diagnosis
    if diagnosis is None or not diagnosis.causes:
        return tuple(h.action for h in high)
    fixes = [f"{c.fix} ({c.rule})" if c.rule else c.fix for c in diagnosis.causes]
    fixes.append(f"rebuild: {diagnosis.command}")
    fixes += [f"this warning will remain: {r}" for r in diagnosis.remaining]
    return tuple(fixes)

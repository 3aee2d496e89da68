"""`--fail-on` gates: conditions on a report that make the command exit non-zero.

A pipeline cannot read prose; it reads an exit code. Each gate is a name a user writes
(`hazard:high`, `verdict:static-after-fixes`, `missing-nss`, ...) and a pure test of the
report's facts that, when it holds, says why in one line. Nothing here changes what is
written: the artifact and its report are whole either way, and without `--fail-on` the
exit code is what it always was (0).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import get_args

from bundler.choices import GATE_NAMES
from bundler.hazards import Hazard, Severity
from bundler.report_model import Report, Ship

SEVERITY_ORDER: tuple[Severity, ...] = ("high", "medium", "low")  # most severe first


@dataclass(frozen=True)
class GateFailure:
    gate: str  # as the user wrote it
    why: str  # one line: the facts that made it fail


def _verdict(ship: Ship) -> Callable[[Report], str | None]:
    def test(report: Report) -> str | None:
        verdict = report.verdict
        return f"the verdict is {verdict.ship}: {verdict.headline}" \
            if verdict.ship == ship else None
    return test


def _hazard(level: Severity) -> Callable[[Report], str | None]:
    worst = SEVERITY_ORDER[:SEVERITY_ORDER.index(level) + 1]

    def test(report: Report) -> str | None:
        found = [h for h in all_hazards(report) if h.severity in worst]
        if not found:
            return None
        return "; ".join(f"{h.severity} {h.code} ({h.subject})" for h in found)
    return test


def all_hazards(report: Report) -> tuple[Hazard, ...]:
    """The program's and artifact's hazards and the static build's, each once."""
    static = report.static.hazards if report.static is not None else ()
    return tuple(dict.fromkeys((*report.hazards, *static)))


def _missing_nss(report: Report) -> str | None:
    if report.artifact is None:
        return None
    missing = [name for part in report.artifact.runtime_parts for name in part.missing
               if name.startswith("libnss_")]
    if not missing:
        return None
    return (f"its lookups would load {', '.join(missing)} (named for a database it looks "
            "up), which the build root could not give: on targets whose nsswitch.conf names "
            "them, those lookups fail")


def _missing_library(report: Report) -> str | None:
    unresolved = report.needs.unresolved
    return f"not bundled (not found): {', '.join(unresolved)}" if unresolved else None


def _runs_differ(report: Report) -> str | None:
    runs = report.runs
    if runs is None:
        return None
    differ = [what for what, same in (("exit codes", runs.exit_codes_match),
                                      ("outputs", runs.outputs_match)) if not same]
    return f"the static build and the artifact differ in {' and '.join(differ)} " \
           f"(--run {' '.join(runs.args)})" if differ else None


def _licence(kind: str) -> Callable[[Report], str | None]:
    def test(report: Report) -> str | None:
        licences = report.licences
        if licences is None:
            return None
        names = [f"{p.name} ({p.licence})" for p in licences.packages if p.kind == kind]
        return f"{kind} packages: {', '.join(names)}" if names else None
    return test


def _unsealed(report: Report) -> str | None:
    unsealed = report.artifact.unsealed if report.artifact is not None else ()
    return f"the bundled glibc may still open host files: {'; '.join(unsealed)}" \
        if unsealed else None


def _uncarried_files(report: Report) -> str | None:
    scan = report.compiled_paths
    missing = scan.uncarried if scan is not None else ()
    if not missing:
        return None
    return ("the programs hold absolute paths the artifact does not carry: "
            + ", ".join(f"{p.path} ({p.kind})" for p in missing))


# What makes each gate hold (README "Gates" says it in words for users).
GATES: dict[str, Callable[[Report], str | None]] = {
    **{f"verdict:{ship}": _verdict(ship) for ship in get_args(Ship)},
    **{f"hazard:{level}": _hazard(level) for level in SEVERITY_ORDER},
    "missing-nss": _missing_nss,
    "missing-library": _missing_library,
    "runs-differ": _runs_differ,
    "licence:copyleft": _licence("copyleft"),
    "licence:unknown": _licence("unknown"),
    "unsealed": _unsealed,
    "uncarried-files": _uncarried_files,
}
assert tuple(GATES) == GATE_NAMES, "choices.GATE_NAMES names the gates, in this order"


def failed_gates(report: Report, gates: Iterable[str]) -> tuple[GateFailure, ...]:
    """The gates that hold for this report, in the order given (pure)."""
    failures = []
    for gate in gates:
        why = GATES[gate](report)
        if why is not None:
            failures.append(GateFailure(gate, why))
    return tuple(failures)


"""gates.failed_gates: which `--fail-on` gates hold for a report, from its facts alone."""

from __future__ import annotations

import pytest
from support.builders import DIGEST, artifact_summary, hazard, runs, static_side

from bundler.choices import GATE_NAMES, parse_gates
from bundler.errors import InputError
from bundler.gates import GATES, failed_gates
from bundler.inventory import Package
from bundler.report_model import (
    InputSummary,
    Needs,
    Report,
    RuntimePart,
    Verdict,
    assemble,
    licensing_of,
)

VERDICTS = {ship: Verdict(ship, f"ship {ship}", (), ()) for ship in
            ("static", "artifact", "static-after-fixes")}


def report(*, ship: str = "artifact", hazards=(), static=None, runs_=None,
           unresolved: tuple[str, ...] = (), parts: tuple[RuntimePart, ...] = (),
           unsealed: tuple[str, ...] = (), licences=None) -> Report:
    summary = InputSummary("/tmp/prog", DIGEST, "x86-64", 100, "ELF", "dynamic", None)
    needs = Needs(None, None, (), (), unresolved)
    artifact = artifact_summary(runtime_parts=parts, unsealed=unsealed)
    return assemble(summary, needs, artifact, tuple(hazards), static, runs_, VERDICTS[ship],
                    licences=licences)


def names(found) -> list[str]:
    return [f.gate for f in found]


def test_every_gate_has_a_test_and_the_names_are_choices_own() -> None:
    assert tuple(GATES) == GATE_NAMES


def test_nothing_holds_for_a_clean_artifact_report() -> None:
    assert failed_gates(report(), GATE_NAMES[:1] + GATE_NAMES[2:]) == ()


def test_verdict_gates_hold_for_their_own_verdict_only() -> None:
    gates = ("verdict:static", "verdict:artifact", "verdict:static-after-fixes")
    assert names(failed_gates(report(ship="static-after-fixes"), gates)) == [
        "verdict:static-after-fixes"]
    found = failed_gates(report(ship="artifact"), gates)
    assert names(found) == ["verdict:artifact"]
    assert found[0].why == "the verdict is artifact: ship artifact"


def test_hazard_gates_count_that_severity_and_worse_in_both_builds() -> None:
    medium = hazard("dynamic-nss", "medium", subject="program")
    high = hazard("static-nss", "high")
    only_medium = report(hazards=(medium,))
    assert names(failed_gates(only_medium, ("hazard:high", "hazard:medium", "hazard:low"))) \
        == ["hazard:medium", "hazard:low"]
    in_static = report(hazards=(medium,), static=static_side(hazards=(high,)))
    found = failed_gates(in_static, ("hazard:high",))
    assert found[0].why == "high static-nss (static build)"


def test_missing_nss_reads_the_structured_fact_not_the_note() -> None:
    said_only = RuntimePart("NSS modules", True, "libnss_sss.so.2 mentioned in prose only")
    assert failed_gates(report(parts=(said_only,)), ("missing-nss",)) == ()
    missing = RuntimePart("NSS modules", True, "...", ("libnss_sss.so.2", "libnss_ldap.so.2"))
    found = failed_gates(report(parts=(missing,)), ("missing-nss",))
    assert "libnss_sss.so.2, libnss_ldap.so.2" in found[0].why


def test_missing_library_runs_differ_unsealed() -> None:
    assert names(failed_gates(report(unresolved=("libfoo.so.1",)), ("missing-library",))) \
        == ["missing-library"]
    agree, differ = runs((0,)), runs((0,), (1,), outputs_match=False, args=("--version",))
    assert failed_gates(report(runs_=agree), ("runs-differ",)) == ()
    found = failed_gates(report(runs_=differ), ("runs-differ",))
    assert found[0].why == ("the static build and the artifact differ in exit codes and "
                            "outputs (--run --version)")
    assert names(failed_gates(report(unsealed=("/etc/ld.so.preload: ...",)), ("unsealed",))) \
        == ["unsealed"]


def test_licence_gates_name_the_packages() -> None:
    def package(name: str, licence: str, kind: str) -> Package:
        return Package(name=name, version="1", architecture="amd64", source=name,
                       source_version="1", distro=None, licence=licence, licence_kind=kind,
                       copyright=None, database="dpkg")  # type: ignore[arg-type]

    licences = licensing_of((package("libc6", "LGPL-2.1-or-later", "copyleft"),
                             package("libfoo1", "NOASSERTION", "unknown")), (), "dpkg")
    found = failed_gates(report(licences=licences), ("licence:copyleft", "licence:unknown"))
    assert [f.why for f in found] == ["copyleft packages: libc6 (LGPL-2.1-or-later)",
                                     "unknown packages: libfoo1 (NOASSERTION)"]


def test_parse_gates_splits_dedupes_and_refuses_an_unknown_name() -> None:
    assert parse_gates(("hazard:high,missing-nss", "hazard:high")) == ("hazard:high",
                                                                       "missing-nss")
    with pytest.raises(InputError, match=r"--fail-on hazard:severe: no such gate; choose "):
        parse_gates(("hazard:severe",))

"""compare.decide: which artifact to ship, from the facts compare mode gathered."""

from __future__ import annotations

from support.builders import DIGEST, artifact_summary, hazard, runs, static_side

from bundler import nss
from bundler.diagnose import Cause, Diagnosis
from bundler.report_model import (
    InputSummary,
    Needs,
    Report,
    RunComparison,
    RunResult,
    StaticSide,
    assemble,
)
from bundler.side_by_side import RUN_PLACE
from bundler.static import StaticContents
from bundler.verdict import STATIC_GLIBC_TERMS, completed, decide, verdict_for


def test_no_static_build_ships_the_artifact_and_says_why() -> None:
    verdict = decide(artifact_summary(glibc="2.36"), None, None, "2.34")
    assert verdict.ship == "artifact"
    assert verdict.headline == "ship the artifact"
    assert verdict.fixes == ()
    assert verdict.reasons == (
        "unbundled, the program needs glibc >= 2.34; older hosts fail with "
        "\"version `GLIBC_2.34' not found\"",
        "the artifact brings glibc 2.36 and its loader, so the host's glibc does not matter",
        "no static build was given to compare (--static); a clean static build, where "
        "possible, is simpler to ship",
    )


def test_the_static_command_hint_comes_last_and_only_without_a_static_build() -> None:
    hinted = decide(artifact_summary(), None, None, None, static_command="CGO_ENABLED=0 go build")
    assert hinted.reasons[-1] == ("a static build to compare: CGO_ENABLED=0 go build "
                                  "(then --static)")
    not_static = static_side(really_static=False, not_static_because=("it needs libc.so.6",))
    verdict = decide(artifact_summary(), not_static, None, None,
                     static_command="CGO_ENABLED=0 go build")
    assert verdict.ship == "artifact"
    assert verdict.reasons[0] == "/tmp/prog-static is not static: it needs libc.so.6"
    assert not any("static build to compare" in r for r in verdict.reasons)
    assert not any("no static build was given" in r for r in verdict.reasons)


def test_a_clean_static_build_is_shipped_with_its_sizes() -> None:
    verdict = decide(artifact_summary(compressed_size=2048), static_side(compressed_size=1024),
                     runs((0, 0)), None)
    assert verdict.ship == "static"
    assert verdict.headline == "ship the static build"
    assert verdict.fixes == ()
    assert verdict.reasons[0].startswith("the static build is really static")
    assert verdict.reasons[1] == ("it is smaller compressed (1.0 KiB vs 2.0 KiB) and needs no "
                                  "launcher, loader or prefix")
    assert verdict.reasons[2] == "both runs agree: exit 0, same output"
    assert len(verdict.reasons) == 3


def test_sizes_compare_raw_when_the_artifact_is_a_directory() -> None:
    verdict = decide(artifact_summary(compressed_size=None, raw_size=1000),
                     static_side(size=3000, compressed_size=10), None, None)
    assert "it is larger raw (2.9 KiB vs 1000 B)" in verdict.reasons[1]
    equal = decide(artifact_summary(compressed_size=500), static_side(compressed_size=500),
                   None, None)
    assert equal.reasons[1].startswith("it is smaller compressed")  # equal is not larger


def test_runs_that_agree_on_failure_are_flagged() -> None:
    verdict = decide(None, static_side(), runs((2, 2)), None)
    assert verdict.ship == "static"
    assert verdict.reasons[-1] == ("both runs agree, but both exit [2]: check that the --run "
                                   "arguments exercise the program")


def test_runs_that_differ_ship_the_artifact_with_the_difference_first() -> None:
    verdict = decide(artifact_summary(), static_side(), runs((0,), (1,), args=("--version",)),
                     "2.17")
    assert verdict.ship == "artifact"
    assert verdict.headline == "ship the artifact"
    assert verdict.reasons[0] == ("run with --version: exit codes static [0] vs artifact [1], "
                                  "outputs match")
    different_output = decide(None, static_side(), runs((0,), outputs_match=False), None)
    assert different_output.ship == "artifact"
    assert different_output.reasons[0] == ("run with no arguments: exit codes static [0] vs "
                                           "artifact [0], outputs differ")


def test_high_static_hazards_mean_static_after_fixes() -> None:
    high = hazard("static-nss", "high", evidence=("getaddrinfo", "getpwnam"),
                  effect="NSS loads host modules", action="build with netgo")
    medium = hazard("static-iconv", "medium")
    verdict = decide(artifact_summary(), static_side(hazards=(high, medium)), runs(), None)
    assert verdict.ship == "static-after-fixes"
    assert verdict.fixes == ("build with netgo",)  # the medium one is not a fix to make
    assert verdict.reasons == (
        "in the static build, NSS loads host modules (evidence: getaddrinfo, getpwnam)",
        "until then the artifact: it carries its own glibc",
    )


def test_a_run_difference_is_named_before_the_static_hazards() -> None:
    verdict = decide(None, static_side(hazards=(hazard(),)), runs((0,), (3,)), None)
    assert verdict.ship == "static-after-fixes"
    assert verdict.reasons[0].startswith("run with no arguments: exit codes static [0] vs "
                                         "artifact [3]")


def test_only_medium_static_hazards_still_ship_static() -> None:
    verdict = decide(None, static_side(hazards=(hazard("static-iconv", "medium"),)), None, None)
    assert verdict.ship == "static"


def test_high_program_hazards_are_fixes_for_the_artifact() -> None:
    privileged = hazard("privileged", "high", evidence=("setuid",), effect="privilege lost",
                        action="--allow-setuid", subject="program")
    low = hazard("loader-start-proc-self-exe", "low", subject="artifact")
    verdict = decide(artifact_summary(), None, None, None, hazards=(privileged, low))
    assert verdict.ship == "artifact"
    assert verdict.headline == ("ship the artifact, after dealing with its high hazards "
                                "(see Hazards)")
    assert verdict.fixes == ("--allow-setuid",)
    assert verdict.reasons[-1] == "but: privilege lost (setuid)"
    only_low = decide(artifact_summary(), None, None, None, hazards=(low,))
    assert only_low.headline == "ship the artifact" and only_low.fixes == ()


def test_a_different_program_is_a_warning_in_the_headline() -> None:
    side = static_side(same_program=False)
    verdict = decide(None, side, None, None)
    assert verdict.ship == "static"
    assert verdict.headline == "ship the static build, if it is the same program (see the warning)"
    assert verdict.reasons[-1] == side.identity


def test_the_warning_stays_when_the_static_build_needs_fixes_first() -> None:
    side = static_side(same_program=False, hazards=(hazard(),))
    verdict = decide(None, side, None, None)
    assert verdict.ship == "static-after-fixes"
    assert verdict.reasons[-1] == side.identity
    same = decide(None, static_side(hazards=(hazard(),)), None, None)
    assert not any(r.startswith("warning") for r in same.reasons)


def test_minimum_kernels_are_compared_only_when_both_are_known() -> None:
    both = decide(artifact_summary(min_kernel="3.2.0"), static_side(min_kernel="2.6.32"),
                  None, None)
    assert "minimum kernel: static 2.6.32, artifact 3.2.0" in both.reasons
    one = decide(artifact_summary(min_kernel=None), static_side(min_kernel="2.6.32"), None, None)
    assert not any(r.startswith("minimum kernel") for r in one.reasons)


def _cover() -> nss.NssCoverage:
    return nss.coverage(True, ("libnss_compat.so.2", "libnss_sss.so.2"), "2.36", (2, 36))


def test_nss_coverage_joins_the_artifact_reasons() -> None:
    cover = _cover()
    verdict = decide(artifact_summary(nss=cover), None, None, None)
    assert nss.brief(cover) in verdict.reasons
    unused = decide(artifact_summary(nss=nss.coverage(False, (), "2.36", (2, 36))), None, None,
                    None)
    assert not any("NSS" in r for r in unused.reasons)


def test_a_pure_go_static_build_is_told_what_it_does_with_nss() -> None:
    go = StaticContents(libc=None, go_runtime=True)
    verdict = decide(artifact_summary(nss=_cover()), static_side(contents=go), None, None)
    assert verdict.ship == "static"
    assert verdict.reasons[-1] == "NSS in the static build: " + nss.static_lookups(nss.GO_PURE)
    # ... but not when the artifact does no lookups, nor when a static-nss hazard says more.
    quiet = decide(artifact_summary(), static_side(contents=go), None, None)
    assert not any(r.startswith("NSS in the static build") for r in quiet.reasons)
    flagged = decide(artifact_summary(nss=_cover()),
                     static_side(contents=go, hazards=(hazard("static-nss"),)), None, None)
    assert flagged.ship == "static-after-fixes"
    assert not any(r.startswith("NSS in the static build") for r in flagged.reasons)
    assert flagged.reasons[-1] == "until then the artifact: it carries its own glibc; " + str(
        nss.brief(_cover()))


def _report_before_writing(static: StaticSide | None) -> Report:
    """A build's report as report.md holds it: no output path, size or runs yet."""
    before = artifact_summary(compressed_size=None, raw_size=8000)
    needs = Needs(None, None, (), (), ())
    first = verdict_for(needs, before, static, None, (), None)
    summary = InputSummary("/usr/bin/prog", DIGEST, "x86-64", 100, "executable", "dynamic",
                           None)
    return assemble(summary, needs, before, (), static, None, first)


def test_the_report_is_completed_with_the_written_artifact_and_the_runs() -> None:
    """The build assembles its report once; what writing and running found is added and
    the verdict decided again on it (here the static build's runs disagree)."""
    before = _report_before_writing(static_side(compressed_size=1024))
    assert before.verdict.ship == "static"
    assert "raw (" in before.verdict.reasons[1]  # before compression: raw with raw
    both = runs((0,), (1,), args=("--version",))
    after = completed(before, "out.tar.zst", "zst", 2048, both, sha256="ab" * 32)
    assert after.artifact is not None and before.artifact is not None
    assert (after.artifact.out, after.artifact.format, after.artifact.compressed_size,
            after.artifact.sha256) == ("out.tar.zst", "zst", 2048, "ab" * 32)
    assert before.artifact.sha256 is None  # the report.md inside cannot hold its own hash
    assert after.runs == both and before.runs is None
    assert after.verdict.ship == "artifact"  # the runs differ: the artifact
    assert after.verdict.reasons[0].startswith("run with --version: exit codes static [0]")
    assert after.needs == before.needs and after.hazards == before.hazards


def test_a_directory_artifact_is_completed_without_a_compressed_size() -> None:
    after = completed(_report_before_writing(static_side(size=3000, compressed_size=10)),
                      "out/", "dir", None, None, sha256=None)
    assert after.artifact is not None and after.artifact.compressed_size is None
    assert after.artifact.sha256 is None
    assert after.verdict.reasons[1].startswith("it is smaller raw (2.9 KiB vs 7.8 KiB)")


def test_a_static_build_with_glibc_inside_carries_its_licence_terms() -> None:
    """LGPL-2.1 section 6: whichever way the verdict goes, its reasons say what shipping a
    static glibc obliges; a static build without glibc (pure Go, musl) obliges nothing."""
    glibc = StaticContents(libc="glibc", go_runtime=False)
    clean = decide(artifact_summary(), static_side(contents=glibc), None, None)
    assert clean.ship == "static" and clean.reasons[-1] == STATIC_GLIBC_TERMS
    with_hazard = decide(artifact_summary(), static_side(contents=glibc, hazards=(
        hazard(severity="high"),)), None, None)
    assert with_hazard.ship == "static-after-fixes"
    assert with_hazard.reasons[-1] == STATIC_GLIBC_TERMS
    not_static = decide(artifact_summary(), static_side(contents=glibc, really_static=False,
                                                        not_static_because=("x",)), None,
                        None)
    assert not_static.ship == "artifact" and STATIC_GLIBC_TERMS in not_static.reasons
    for libc in (None, "musl"):
        other = decide(artifact_summary(), static_side(
            contents=StaticContents(libc=libc, go_runtime=True)), None, None)
        assert STATIC_GLIBC_TERMS not in other.reasons
    assert STATIC_GLIBC_TERMS not in decide(artifact_summary(), None, None, "2.34").reasons


def _runs_printing(static_out: str, artifact_out: str) -> RunComparison:
    return RunComparison(args=("--version",), runs=1,
                         static=RunResult((0,), static_out, "", 0.01),
                         artifact=RunResult((0,), artifact_out, "", 0.01),
                         outputs_match=static_out == artifact_out, exit_codes_match=True)


def test_outputs_differing_only_in_the_programs_own_path_do_not_decide() -> None:
    """The two run from different places (side_by_side.RUN_PLACE): a line naming the
    program's own path differs for that reason alone, and says nothing against either."""
    own = _runs_printing(f"ok\nexe: {RUN_PLACE}/static/prog-static\n",
                         f"ok\nexe: {RUN_PLACE}/artifact/prog/lib/ld-linux-x86-64.so.2\n")
    verdict = decide(artifact_summary(), static_side(), own, None)
    assert verdict.ship == "static"
    assert verdict.reasons[2].startswith("both runs agree: exit 0, same output but for the "
                                         "program's own path")
    other = _runs_printing("ok\nrows: 1\n", "ok\nrows: 2\n")
    differs = decide(artifact_summary(), static_side(), other, None)
    assert differs.ship == "artifact"
    assert differs.reasons[0].endswith("outputs differ")


def test_the_fixes_are_those_of_the_static_build_given() -> None:
    """compare mode diagnoses the static binary itself: its fixes come with the rule that
    chose them for its versions, not the general advice of the hazard."""
    plugin = hazard(severity="high")
    cause = Cause("containerd-plugin", ("plugin.Open",), "containerd 1.6 loads plugins",
                  "-tags static_build", tags=("static_build",),
                  rule="containerd v1.6.20 (before 1.7.25): no_dynamic_plugins does nothing")
    own = Diagnosis((cause,), "CGO_ENABLED=1 go build -tags static_build .", ("dlopen",), ())
    verdict = decide(artifact_summary(), static_side(hazards=(plugin,), diagnosis=own),
                     None, None)
    assert verdict.ship == "static-after-fixes"
    assert verdict.fixes == (
        "-tags static_build (containerd v1.6.20 (before 1.7.25): no_dynamic_plugins does "
        "nothing)", "rebuild: CGO_ENABLED=1 go build -tags static_build .",
        "this warning will remain: dlopen")
    general = decide(artifact_summary(), static_side(hazards=(plugin,)), None, None)
    assert general.fixes == (plugin.action,)

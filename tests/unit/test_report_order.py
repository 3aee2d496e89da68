"""The report opens with its verdict, shows how the runs differ and names glibc's package.

Pure: reports assembled from the small records of support/builders.py and rendered; the
run outputs are written here as the sandbox shows them (side_by_side.RUN_PLACE).
"""

from __future__ import annotations

import dataclasses
import json

import pytest
from support.builders import DIGEST, artifact_summary, hazard, runs, static_side

from bundler.artifact_inspection import ReportVerdict, parse_verdict
from bundler.inventory import Package
from bundler.report_model import (
    InputSummary,
    Needs,
    Report,
    RunComparison,
    Verdict,
    assemble,
    glibc_package_of,
    glibc_text,
)
from bundler.report_render import SECTIONS, report_json, report_markdown, report_text
from bundler.run_diff import SHOWN_DIFF_LINES, diff_lines, differences, own_path_cause
from bundler.side_by_side import RUN_PLACE

FIRST_LINES = 10
STATIC_EXE = f"{RUN_PLACE}/static/prog-static"
ARTIFACT_EXE = f"{RUN_PLACE}/artifact/prog/lib/.bundle-0123/ld-linux-x86-64.so.2"
LIBC6 = Package("libc6", "2.36-9+deb12u14", "amd64", "glibc", "2.36-9+deb12u14",
                "debian-12", "NOASSERTION", "unknown", None, "/var/lib/dpkg")
# The keys the JSON report has always had: ordering the text adds none.
TOP_KEYS = {"artifact", "diagnosis", "format_version", "go", "hazards", "input", "licences",
            "needs", "runs", "static", "tool_version", "verdict", "compiled_paths", "carrying"}


def report(*, verdict: Verdict | None = None, runs_: RunComparison | None = None,
           out: str | None = "/tmp/prog.tar.zst", **artifact: object) -> Report:
    summary = InputSummary("/usr/bin/prog", DIGEST, "x86-64", 1000, "executable", "dynamic",
                           "/lib64/ld-linux-x86-64.so.2")
    verdict = verdict or Verdict("static-after-fixes", "ship the static build after fixes",
                                 tuple(f"reason {n}" for n in range(30)), ("fix one",))
    return assemble(summary, Needs(None, None, (), (), ()),
                    artifact_summary(out=out, **artifact), (hazard("dynamic-nss", "medium"),),
                    static_side(), runs_, verdict)


def with_outputs(static: str, artifact: str, *, static_err: str = "",
                 artifact_err: str = "") -> RunComparison:
    base = runs()
    return dataclasses.replace(
        base, static=dataclasses.replace(base.static, output=static, errors=static_err),
        artifact=dataclasses.replace(base.artifact, output=artifact, errors=artifact_err),
        outputs_match=static == artifact)


# -- the verdict first --------------------------------------------------------------------
def test_text_opens_with_the_verdict_and_its_reasons() -> None:
    lines = report_text(report()).splitlines()
    assert lines[:4] == ["1. Verdict", "  => SHIP THE STATIC BUILD AFTER FIXES", "  - reason 0",
                         "  - reason 1"]
    assert [line for line in lines if line in (f"{n}. {s}" for n, s in
                                                enumerate(SECTIONS, start=1))] == [
        f"{n}. {s}" for n, s in enumerate(SECTIONS, start=1)]
    assert "  fixes:" in lines and "  - fix one" in lines
    assert lines.index("  - fix one") < lines.index("2. The input")
    assert lines[-1] == "=> SHIP THE STATIC BUILD AFTER FIXES"  # where scrolling stops


def test_coloured_headline_is_still_first() -> None:
    lines = report_text(report(), color=True).splitlines()
    assert lines[0] == "\033[1m1. Verdict\033[0m"
    assert lines[1] == "  \033[1;33m=> SHIP THE STATIC BUILD AFTER FIXES\033[0m"


def test_markdown_opens_with_the_verdict_and_reads_back() -> None:
    markdown = report_markdown(report())
    first = markdown.splitlines()[:FIRST_LINES]
    assert first[:5] == ["# bundle report: prog", "", "## 1. Verdict", "",
                         "**ship the static build after fixes**"]
    headings = [line for line in markdown.splitlines() if line.startswith("## ")]
    assert headings == [f"## {n}. {s}" for n, s in enumerate(SECTIONS, start=1)]
    # `bundle inspect ARTIFACT` reads the verdict back from it (artifact_inspection.py)
    assert parse_verdict(markdown) == ReportVerdict(
        "ship the static build after fixes", tuple(f"reason {n}" for n in range(30)),
        ("fix one",))


def test_json_keeps_its_keys() -> None:
    data = json.loads(report_json(report(runs_=runs())))
    assert set(data) == TOP_KEYS
    assert list(data["verdict"]) == ["fixes", "headline", "reasons", "ship"]


# -- the runs -----------------------------------------------------------------------------
def test_runs_section_in_every_rendering() -> None:
    done = report(runs_=with_outputs("a\n", "a\n"))
    for text in (report_text(done), report_markdown(done)):
        assert "7. Runs side by side" in text
        assert "exit codes  match" in text and "outputs     match" in text


@pytest.mark.parametrize(("out", "says"), [
    (None, "runs (--run ARGS) are in the build's own report output"),
    ("/tmp/prog.tar.zst", "not run (with a static build, --run ARGS runs both side by side)"),
], ids=["inside-the-artifact", "compare-without-run"])
def test_no_runs_says_where_they_are(out: str | None, says: str) -> None:
    assert says in report_markdown(report(out=out))


def test_own_path_lines_are_explained() -> None:
    comparison = with_outputs(f"hello\nexe: {STATIC_EXE}\nbye\n",
                              f"hello\nexe: {ARTIFACT_EXE}\nbye\n")
    (found,) = differences(comparison)
    assert found.stream == "stdout" and found.explained
    lines = diff_lines(found)
    assert lines[:5] == ["--- static stdout", "+++ artifact stdout", "@@ -2 +2 @@",
                         f"-exe: {STATIC_EXE}", f"+exe: {ARTIFACT_EXE}"]
    assert lines[5].startswith("cause: the line names the program's own path")
    assert "name the bundled loader" in lines[5]
    text = report_text(report(runs_=comparison))
    assert "outputs     DIFFER only in the program's own path (see below)" in text


def test_other_differences_have_no_cause() -> None:
    assert own_path_cause(f"exe: {STATIC_EXE}", f"exe: {ARTIFACT_EXE} (deleted)") is None
    assert own_path_cause("a", "b") is None
    assert own_path_cause(f"argv0: {STATIC_EXE}", f"argv0: {RUN_PLACE}/artifact/prog/bin/prog"
                          ).endswith("away from its prefix")  # no loader named: no loader note
    comparison = with_outputs("one\ntwo\n", "one\nthree\nfour\n")
    (found,) = differences(comparison)
    assert not found.explained
    assert diff_lines(found) == ["--- static stdout", "+++ artifact stdout", "@@ -2 +2,2 @@",
                                 "-two", "+three", "+four"]
    assert "outputs     DIFFER (see below)" in report_text(report(runs_=comparison))


def test_diff_is_capped_escaped_and_covers_stderr() -> None:
    many = "".join(f"line {n}\n" for n in range(40))
    comparison = with_outputs(many, "\x1b[2Jwiped\n" + many.replace("line 7\n", ""),
                              static_err="", artifact_err="warning\n")
    stdout, stderr = differences(comparison)
    lines = diff_lines(stdout)
    assert "+\\x1b[2Jwiped" in lines  # shown, not obeyed
    assert all("\x1b" not in line for line in lines)
    assert stderr.stream == "stderr" and diff_lines(stderr)[-1] == "+warning"
    capped = diff_lines(stdout, limit=1)
    assert capped[-1] == "(1 more changed line not shown)"
    assert len([line for line in diff_lines(differences(with_outputs(
        many, many.replace("line", "LINE")))[0]) if line[0] in "+-"]) == SHOWN_DIFF_LINES + 2
    # (+2: the ---/+++ header lines)


# -- glibc's package ----------------------------------------------------------------------
def test_glibc_package_is_that_of_lib_libc() -> None:
    files = [("lib/libm.so.6", "libc6:amd64"), ("lib/libc.so.6", "libc6:amd64"),
             ("libexec/prog", None)]
    assert glibc_package_of(files, [LIBC6]) == "libc6 2.36-9+deb12u14"
    assert glibc_package_of([("lib/libc.so.6", None)], [LIBC6]) is None
    assert glibc_package_of(files, []) is None
    shown = artifact_summary(glibc_package="libc6 2.36-9+deb12u14")
    assert glibc_text(shown) == "2.36 (libc6 2.36-9+deb12u14)"
    assert glibc_text(artifact_summary()) == "2.36"
    assert glibc_text(artifact_summary(glibc=None)) == "unknown"
    markdown = report_markdown(report(glibc_package="libc6 2.36-9+deb12u14"))
    assert "glibc bundled   2.36 (libc6 2.36-9+deb12u14)\n" in markdown

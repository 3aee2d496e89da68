"""`--fail-on` on the build and on compare: exit 5 once everything is written, whole; an
unknown gate is refused before anything is; without it the exit code is what it was (0)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.cli import assert_one_line_error, run_cli
from support.files import sha256
from support.gobuild import build_agent
from support.toolchain import gcc

HELLO = '#include <stdio.h>\nint main(void) { puts("hello"); return 0; }\n'


@pytest.fixture(scope="module")
def hello(tmp_path_factory) -> Path:
    return gcc(tmp_path_factory.mktemp("hello") / "hello", HELLO)


def test_a_holding_gate_is_exit_5_after_the_artifact_summary_and_report(hello: Path,
                                                                       tmp_path: Path) -> None:
    out = tmp_path / "hello.tar.zst"
    result = run_cli(str(hello), "-o", str(out), "--json", "--report", str(tmp_path / "r.md"),
                     "--fail-on", "hazard:low,verdict:artifact")
    assert result.returncode == 5, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0] == f"bundle: wrote {out}"  # the summary came first, whole
    # every artifact started by its loader carries a low hazard (/proc/self/exe names it)
    assert lines[-1] == ("bundle: error: --fail-on: hazard:low: low loader-start-proc-self-exe "
                         "(artifact); verdict:artifact: the verdict is artifact: ship the "
                         "artifact"), lines[-1]
    assert json.loads(result.stdout)["verdict"]["ship"] == "artifact"  # --json still printed
    assert (tmp_path / "r.md").is_file()
    assert (tmp_path / "hello.tar.zst.sha256").read_text().split()[0] == sha256(out)


def test_gates_that_do_not_hold_leave_exit_0(hello: Path, tmp_path: Path) -> None:
    result = run_cli(str(hello), "-o", str(tmp_path / "h.tar.zst"), "-q", "--fail-on",
                     "hazard:high", "--fail-on", "missing-nss,missing-library,runs-differ")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_an_unknown_gate_is_refused_before_anything_is_written(hello: Path,
                                                               tmp_path: Path) -> None:
    result = run_cli(str(hello), "-o", str(tmp_path / "h.tar.zst"), "--fail-on", "hazard:big")
    assert_one_line_error(result, 2, "--fail-on hazard:big: no such gate", "hazard:high")
    assert list(tmp_path.iterdir()) == []


def test_compare_mode_gates_on_the_static_builds_hazards(tmp_path: Path) -> None:
    """The agent's static build without the pure-Go tags keeps glibc's NSS: a high hazard,
    and the verdict is the static build once fixed."""
    dynamic = build_agent("dynamic", tmp_path)
    static = build_agent("static-notags", tmp_path)
    out = tmp_path / "agent.tar.zst"
    result = run_cli(str(dynamic), "-o", str(out), "--static", str(static), "--fail-on",
                     "verdict:static-after-fixes", "--fail-on", "hazard:high")
    assert result.returncode == 5, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("bundle: error: --fail-on: verdict:static-after-fixes: the verdict "
                           "is static-after-fixes"), last
    assert "; hazard:high: high static-nss (static build)" in last
    assert out.is_file()
    again = run_cli("compare", str(out), str(static), "--fail-on", "hazard:high")
    assert again.returncode == 5, again.stderr
    assert "=> " in again.stdout  # the report, then the gate
    assert again.stderr.strip().startswith("bundle: error: --fail-on: hazard:high: ")


def test_missing_nss_holds_for_a_module_the_build_root_cannot_give(tmp_path: Path) -> None:
    """The agent looks users and hosts up; a source named with --nss that this root has no
    module for is one its lookups need."""
    agent = build_agent("dynamic", tmp_path)
    out = tmp_path / "agent.tar.zst"
    result = run_cli(str(agent), "-o", str(out), "-q", "--nss", "files,nosuchsource",
                     "--fail-on", "missing-nss")
    assert_one_line_error_after_writing(result, "--fail-on: missing-nss: its lookups would "
                                        "load libnss_nosuchsource.so.2")
    assert out.is_file()
    fine = run_cli(str(agent), "-o", str(out), "-q", "--nss", "files", "--fail-on",
                   "missing-nss")
    assert fine.returncode == 0, fine.stderr


def assert_one_line_error_after_writing(result, words: str) -> None:
    """-q: nothing on stderr but the gate's one line, exit 5."""
    assert result.returncode == 5, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"bundle: error: {words}"), result.stderr

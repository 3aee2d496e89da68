"""Every `--json` output of real commands against the schema shipped for it (bundle schema).

Real gcc and Go programs, real builds, inspections, comparisons and sandboxed verify runs;
each output is validated with draft 2020-12 and format checking (tests/support/schemas.py),
and the facts the contract adds (the artifact's sha256 and size, verify's result) are
checked against the files themselves.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from support.cli import assert_one_line_error, run_cli
from support.files import sha256
from support.gobuild import build_agent
from support.needs import need, need_tool
from support.roots import need_root
from support.schemas import validate
from support.toolchain import gcc

# Prints its arguments, a line on stderr (with an escape sequence), and fails when told to.
HELLO = r"""
#include <stdio.h>
#include <string.h>
int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) printf("[%s]\n", argv[i]);
    fputs("hello on \033[1mstderr\033[0m\n", stderr);
    if (argc > 2 && strcmp(argv[2], "fail") == 0) return 7;
    return 0;
}
"""


def bundle_json(*args: str, cwd: Path, code: int = 0) -> dict:
    """A command's --json output: only JSON on stdout, the exit code expected. --json
    goes second: before a `--` that ends verify's options."""
    result = run_cli(args[0], "--json", *args[1:], cwd=cwd)
    assert result.returncode == code, (result.returncode, result.stdout[-2000:], result.stderr)
    assert "Traceback" not in result.stderr
    data = json.loads(result.stdout)
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """hello (dynamic) and hello-static, and three builds of hello: plain to out.tar.zst,
    compare mode (--static, --run, --report r.json) to cmp.tar.zst, a directory to tree/."""
    where = tmp_path_factory.mktemp("contract")
    gcc(where / "hello", HELLO)
    need(os.path.exists("/usr/lib/x86_64-linux-gnu/libc.a"), "libc6-dev's libc.a is missing")
    gcc(where / "hello-static", HELLO, "-static")
    return where


@pytest.fixture(scope="module")
def plain(work: Path) -> dict:
    return bundle_json("hello", "-o", "out.tar.zst", "-q", cwd=work)


@pytest.fixture(scope="module")
def compared(work: Path) -> dict:
    return bundle_json("hello", "-o", "cmp.tar.zst", "--static", "hello-static", "--run",
                       "a b", "--report", "r.json", cwd=work)


@pytest.fixture(scope="module")
def tree(work: Path) -> dict:
    return bundle_json("hello", "-o", "tree/", "-q", cwd=work)


# --- the build's report ---------------------------------------------------------------


def test_a_plain_build_report_names_its_artifacts_sha256_and_size(work: Path,
                                                                  plain: dict) -> None:
    validate("build", plain)
    artifact = plain["artifact"]
    assert artifact["sha256"] == sha256(work / "out.tar.zst")
    assert (work / "out.tar.zst.sha256").read_text().split() == [artifact["sha256"],
                                                                 "out.tar.zst"]
    assert artifact["compressed_size"] == (work / "out.tar.zst").stat().st_size
    assert artifact["format"] == "zst" and artifact["out"] == "out.tar.zst"
    assert plain["static"] is None and plain["runs"] is None
    assert plain["format_version"] == 2


def test_a_compare_mode_build_report_is_valid_on_stdout_and_in_the_file(
        work: Path, compared: dict) -> None:
    validate("build", compared)
    assert compared["runs"] is not None and compared["static"]["really_static"] is True
    assert compared["runs"]["artifact"]["output"] == "[a]\n[b]\n"
    assert compared["artifact"]["sha256"] == sha256(work / "cmp.tar.zst")
    written = json.loads((work / "r.json").read_text())
    validate("build", written)
    assert written == compared


def test_a_directory_output_has_no_sha256_or_compressed_size(work: Path, tree: dict) -> None:
    validate("build", tree)
    artifact = tree["artifact"]
    assert (artifact["format"], artifact["sha256"], artifact["compressed_size"]) == (
        "dir", None, None)
    assert artifact["raw_size"] > 0 and (work / "tree" / "hello" / ".bundle").is_dir()


def test_the_report_inside_the_artifact_names_no_sha256_of_its_own(work: Path,
                                                                   plain: dict) -> None:
    """report.md is written into the artifact before the archive exists: the terminal and
    --report show the artifact's sha256; the copy inside cannot, and does not pretend to."""
    inside = subprocess.run(["tar", "--zstd", "-xOf", str(work / "out.tar.zst"),
                             "hello/.bundle/report.md"], capture_output=True, text=True,
                            check=True).stdout
    artifact_section = inside.split("## 4. The artifact")[1].split("## 5.")[0]
    assert "sha256" not in artifact_section
    assert plain["artifact"]["sha256"] not in inside
    text = run_cli("hello", "-o", "again.tar.zst", "--report", "again.txt", "-q", cwd=work)
    assert text.returncode == 0, text.stderr
    assert f"sha256          {sha256(work / 'again.tar.zst')}" in (work / "again.txt").read_text()


def test_bundle_compare_prints_the_same_report_shape(work: Path, compared: dict,
                                                     tree: dict) -> None:
    data = bundle_json("compare", "cmp.tar.zst", "hello-static", "--run", "a b", cwd=work)
    validate("compare", data)
    assert data["artifact"]["sha256"] == compared["artifact"]["sha256"]
    assert data["verdict"] == compared["verdict"]
    of_tree = bundle_json("compare", "tree/", "hello-static", cwd=work)
    validate("compare", of_tree)
    assert of_tree["artifact"]["sha256"] is None


def test_a_go_programs_report_and_inspection_with_its_diagnosis(tmp_path: Path) -> None:
    """The Go build info and static-readiness diagnosis, in the report and in inspect."""
    agent, static = tmp_path / "myagent", tmp_path / "myagent-static"
    shutil.copyfile(build_agent("dynamic"), agent)
    shutil.copyfile(build_agent("static-notags"), static)
    agent.chmod(0o755)
    static.chmod(0o755)
    report = bundle_json("myagent", "-o", "myagent.tar.zst", "--static", "myagent-static",
                         "-q", cwd=tmp_path)
    validate("build", report)
    assert report["go"] is not None and report["diagnosis"]["causes"]
    assert report["static"]["diagnosis"] is not None
    inspected = bundle_json("inspect", "myagent", cwd=tmp_path)
    validate("inspect-program", inspected)
    assert inspected["go"] is not None and inspected["static_diagnosis"] is not None
    validate("inspect-artifact", bundle_json("inspect", "myagent.tar.zst", cwd=tmp_path))


# --- inspect --------------------------------------------------------------------------


def test_inspect_of_programs(work: Path) -> None:
    dynamic = bundle_json("inspect", "hello", cwd=work)
    validate("inspect-program", dynamic)
    assert dynamic["libraries"] and dynamic["static"] is False
    static = bundle_json("inspect", "hello-static", cwd=work)
    validate("inspect-program", static)
    assert static["static"] is True and static["static_contents"]["libc"] == "glibc"


def test_inspect_of_artifacts(work: Path, plain: dict, tree: dict) -> None:
    archive = bundle_json("inspect", "out.tar.zst", cwd=work)
    validate("inspect-artifact", archive)
    assert archive["sha256"] == plain["artifact"]["sha256"]
    directory = bundle_json("inspect", "tree/", cwd=work)
    validate("inspect-artifact", directory)
    assert directory["sha256"] is None


# --- verify ---------------------------------------------------------------------------


def need_sandbox() -> None:
    need_root()
    need_tool("bwrap")


STDERR = "hello on \x1b[1mstderr\x1b[0m\n"


def test_verify_json_of_a_passing_artifact(work: Path, plain: dict) -> None:
    need_sandbox()
    data = bundle_json("verify", "out.tar.zst", "--expect-output", r"^\[a\]$", "--", "a",
                       cwd=work)
    validate("verify", data)
    assert data["passed"] is True and data["sha256"] == plain["artifact"]["sha256"]
    assert data["integrity"]["checksum"]["state"] == "match"
    assert data["integrity"]["passed"] is True and data["signature"] is None
    assert len(data["runs"]) == 2
    for run in data["runs"]:
        assert run["passed"] and run["exit_code"] == 0 and run["reasons"] == []
        assert (run["stdout"], run["stderr"]) == ("[a]\n", STDERR)  # exactly, escaped in JSON
        assert run["expected"] == {"exit_code": 0, "stdout_matches": r"^\[a\]$"}
        assert run["command"][-1] == "a" and run["seconds"] > 0


def test_verify_output_is_terminal_safe_as_json_and_as_text(work: Path) -> None:
    """The program's escape sequence reaches neither terminal: JSON escapes it (\\u001b),
    the text shows it (\\x1b) on PASS too, with the stdout lines."""
    need_sandbox()
    as_json = run_cli("verify", "out.tar.zst", "--json", "--", "a", cwd=work)
    text = run_cli("verify", "out.tar.zst", "--", "a", "b", cwd=work)
    assert as_json.returncode == text.returncode == 0, text.stdout + text.stderr
    assert "\x1b" not in as_json.stdout + text.stdout
    assert "\\u001b[1mstderr" in as_json.stdout
    lines = text.stdout.splitlines()
    run = lines.index(next(line for line in lines if line.startswith("PASS  at its prefix")))
    assert lines[run + 1:run + 4] == ["      stdout: [a]", "      stdout: [b]",
                                      "      stderr: hello on \\x1b[1mstderr\\x1b[0m"]


def test_verify_json_of_failing_runs_gives_the_reasons(work: Path) -> None:
    need_sandbox()
    data = bundle_json("verify", "out.tar.zst", "--", "x", "fail", cwd=work, code=4)
    validate("verify", data)
    assert data["passed"] is False and data["integrity"]["passed"] is True
    for run in data["runs"]:
        assert (run["passed"], run["exit_code"], run["reasons"]) == (
            False, 7, ["exit 7, expected 0"])


def test_verify_json_of_a_tampered_artifact_runs_nothing(work: Path, tmp_path: Path) -> None:
    need_sandbox()
    shutil.copy2(work / "out.tar.zst", tmp_path / "out.tar.zst")
    (tmp_path / "out.tar.zst.sha256").write_text("0" * 64 + "  out.tar.zst\n")
    data = bundle_json("verify", "out.tar.zst", cwd=tmp_path, code=4)
    validate("verify", data)
    assert data["integrity"]["checksum"]["state"] == "mismatch"
    assert data["integrity"]["passed"] is False and data["integrity"]["problems"]
    assert (data["runs"], data["root"], data["passed"]) == ([], None, False)


def test_verify_json_of_a_directory_artifact(work: Path, tree: dict) -> None:
    need_sandbox()
    data = bundle_json("verify", "tree/", cwd=work)
    validate("verify", data)
    assert data["sha256"] is None and data["integrity"]["checksum"]["state"] == "directory"


def test_verify_json_errors_are_one_line_not_json(work: Path) -> None:
    """An error is not a result: one line on stderr, its exit code, nothing on stdout."""
    assert_one_line_error(run_cli("verify", "missing.tar.zst", "--json", cwd=work), 2,
                          "no such file")

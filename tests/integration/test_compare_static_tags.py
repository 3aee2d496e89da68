"""`bundle compare` judges the static binary it is given (issue 17): the demo agent's static
build without the tags gets its own fixes, each with the rule that chose it; the one built
with the tags `bundle inspect` prints is shipped, its SQLite loader rated unreachable."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from support.cli import run_cli
from support.gobuild import build_agent


def compare(tmp_path: Path, variant: str) -> dict:
    agent, static = tmp_path / "myagent", tmp_path / "myagent-static"
    shutil.copyfile(build_agent("dynamic"), agent)
    shutil.copyfile(build_agent(variant), static)
    agent.chmod(0o755)
    static.chmod(0o755)
    built = run_cli(str(agent), "-o", str(tmp_path / "myagent.tar.zst"), "--sbom", "none")
    assert built.returncode == 0, built.stderr
    result = run_cli("compare", str(tmp_path / "myagent.tar.zst"), str(static), "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_without_the_tags_the_fixes_are_the_static_builds_own(tmp_path: Path) -> None:
    data = compare(tmp_path, "static-notags")
    verdict = data["verdict"]
    assert verdict["ship"] == "static-after-fixes"
    fixes = verdict["fixes"]
    assert any(f.startswith("-tags netgo") and "(net:" in f for f in fixes), fixes
    assert any(f.startswith("-tags osusergo") for f in fixes), fixes
    rebuild = next(f for f in fixes if f.startswith("rebuild: "))
    assert "netgo" in rebuild and "osusergo" in rebuild
    assert data["static"]["diagnosis"]["causes"], data["static"]["diagnosis"]


def test_with_the_effective_tags_the_static_build_is_shipped(tmp_path: Path) -> None:
    data = compare(tmp_path, "static-tags")
    assert data["verdict"]["ship"] == "static", data["verdict"]
    codes = {h["code"]: h for h in data["static"]["hazards"]}
    assert "static-dlopen" not in codes
    idle = codes["static-dlopen-unreachable"]
    assert (idle["severity"], idle["evidence"]) == ("low", ["unixDlOpen"])
    assert "would become reachable" in idle["action"]

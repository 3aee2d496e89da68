"""scripts/sweep on a small directory: a program that runs alike, a link by its own name
(the git-* shape it found crashing), a static program refused, and the Debian 11 root."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support.needs import need_tool
from support.roots import debian11_tree
from support.sweep import main as sweep


def test_the_sweep_builds_runs_and_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          ) -> None:
    need_tool("bwrap")
    where = tmp_path / "programs"
    where.mkdir()
    for name in ("sqlite3", "git-upload-pack", "busybox"):
        found = shutil.which(name) or f"/usr/bin/{name}"
        (where / name).symlink_to(found)
    code = sweep([str(where), "--root", str(debian11_tree()), "--jobs", "2",
                  "--keep", str(tmp_path / "kept")])
    printed = capsys.readouterr().out
    print(printed)
    assert code == 0
    assert "     2  built, runs alike" in printed
    assert "     1  refused: statically linked; it needs no bundle" in printed
    assert "differs" not in printed and "CRASHED" not in printed
    kept = (tmp_path / "kept" / "artifacts").iterdir()
    assert sorted(p.name for p in kept if p.name.endswith(".tar.zst")) == [
        f"{str(where).strip('/').replace('/', '_')}_{name}.tar.zst"
        for name in ("git-upload-pack", "sqlite3")]

"""Same bytes from any path: the artifact depends on the input's contents and the options,
never on where the input or the workspace lies, nor on the working directory.

The same program (and a plugin given with --add) is built as `prog`, `./prog`, `$PWD/prog`
from two working directories and as a byte-identical copy in another directory; the archives'
sha256, the SBOMs beside them and directory outputs must agree, and nothing inside the
artifact's `.bundle/` or `bin/` may name the temporary directory the builds ran in.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from support.cli import run_cli
from support.files import sha256
from support.roots import unpack
from support.toolchain import gcc

PROGRAM = r"""
#include <dlfcn.h>
#include <stdio.h>
int main(int argc, char **argv) {
    void *plugin = dlopen(argc > 1 ? argv[1] : "libplug.so", RTLD_NOW);
    puts(plugin ? "plugin loaded" : dlerror());
    return plugin ? 0 : 1;
}
"""
PLUGIN = "int plug(void) { return 42; }\n"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`a/` holds prog and libplug.so, `b/` a byte-identical copy, `c/` nothing (a cwd)."""
    root = tmp_path_factory.mktemp("same-bytes")
    gcc(root / "a" / "prog", PROGRAM, "-ldl")
    gcc(root / "a" / "libplug.so", PLUGIN, shared=True)
    (root / "b").mkdir()
    (root / "c").mkdir()
    for name in ("prog", "libplug.so"):
        shutil.copy2(root / "a" / name, root / "b" / name)
    return root


def build(cwd: Path, program: str, plugin: str, out: Path, *, directory: bool = False) -> Path:
    """`bundle PROGRAM --add PLUGIN -o OUT` (OUT/ for a directory output) run in `cwd`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    result = run_cli(program, "--add", plugin, "-o", f"{out}/" if directory else str(out),
                     cwd=cwd)
    assert result.returncode == 0, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    return out


def ways(root: Path) -> list[tuple[Path, str, str]]:
    """(cwd, program as given, plugin as given): three spellings, two cwds, a copy."""
    a, c = root / "a", root / "c"
    return [
        (a, "prog", "libplug.so"),
        (a, "./prog", "./libplug.so"),
        (a, str(a / "prog"), str(a / "libplug.so")),
        (c, str(a / "prog"), str(a / "libplug.so")),
        (c, "../a/prog", "../a/libplug.so"),
        (c, "../b/prog", "../b/libplug.so"),  # the copy in another directory
    ]


def placeless_files(top: Path, root: Path) -> list[str]:
    """Files of .bundle/ and bin/ that name `root` (the program and plugin themselves are
    the user's bytes, path strings the compiler left in them included)."""
    named = []
    for directory in (top / ".bundle", top / "bin"):
        for path in sorted(directory.rglob("*")):
            if path.is_file() and not path.is_symlink() and str(root).encode() in (
                    path.read_bytes()):
                named.append(str(path.relative_to(top)))
    return named


def test_archive_and_sboms_are_the_same_from_any_path_and_cwd(workspace: Path) -> None:
    outs = [build(cwd, program, plugin, workspace / "out" / str(n) / "prog.tar.zst")
            for n, (cwd, program, plugin) in enumerate(ways(workspace))]
    digests = {sha256(out) for out in outs}
    assert len(digests) == 1, [(str(o), sha256(o)) for o in outs]
    for suffix in (".cdx.json", ".spdx.json"):
        beside = {Path(f"{out}{suffix}").read_bytes() for out in outs}
        assert len(beside) == 1, suffix
    top = unpack(outs[0], workspace / "unpacked") / "prog"
    assert placeless_files(top, workspace) == []
    manifest = json.loads((top / ".bundle" / "manifest.json").read_text())
    sources = {r["path"]: r.get("source") for r in manifest["files"]}
    # The user's files by name; the build root's by their path there (provenance's key).
    assert sources["libexec/prog"] == "prog"
    assert sources["lib/libplug.so"] == "libplug.so"
    assert sources["lib/libc.so.6"] is not None
    assert os.path.isabs(sources["lib/libc.so.6"])
    assert sources["lib/libc.so.6"].startswith(("/lib/", "/usr/lib/"))
    report = (top / ".bundle" / "report.md").read_text()
    assert "path         prog\n" in report


def test_outputs_beside_the_artifact_still_name_the_path_given(workspace: Path) -> None:
    """Only the artifact is placeless: the --json report on stdout (not part of it) keeps
    the path as given, the report.md inside names the file."""
    given = str(workspace / "a" / "prog")
    out = workspace / "json" / "prog.tar.zst"
    out.parent.mkdir()
    result = run_cli(given, "--add", str(workspace / "a" / "libplug.so"), "-o", str(out),
                     "--json", cwd=workspace / "c")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["input"]["path"] == given
    top = unpack(out, workspace / "json" / "u") / "prog"
    assert "path         prog\n" in (top / ".bundle" / "report.md").read_text()


def tree_of(top: Path) -> dict[str, tuple[str, int, bytes]]:
    """Every entry under `top`: its kind, mode and bytes (or link target)."""
    entries: dict[str, tuple[str, int, bytes]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            relative = str(path.relative_to(top))
            mode = path.lstat().st_mode & 0o7777
            if path.is_symlink():
                entries[relative] = ("link", mode, os.readlink(path).encode())
            elif path.is_dir():
                entries[relative] = ("dir", mode, b"")
            else:
                entries[relative] = ("file", mode, path.read_bytes())
    return entries


def test_directory_outputs_are_identical_trees(workspace: Path) -> None:
    chosen = [ways(workspace)[i] for i in (0, 3, 5)]
    trees = []
    for n, (cwd, program, plugin) in enumerate(chosen):
        out = build(cwd, program, plugin, workspace / "dirs" / str(n) / "tree",
                    directory=True)
        trees.append(tree_of(out / "prog"))
    assert trees[0] == trees[1] == trees[2]
    assert "libexec/prog" in trees[0] and ".bundle/manifest.json" in trees[0]


def test_compare_reads_the_recorded_file_name(workspace: Path) -> None:
    """compare names the program by the manifest's `source`, now its file name."""
    static = workspace / "a" / "prog-static"
    if not os.path.exists("/usr/lib/x86_64-linux-gnu/libc.a"):
        pytest.skip("libc6-dev's libc.a is missing")
    subprocess.run(["gcc", "-static", "-o", str(static), "-x", "c", "-"],
                   input=PLUGIN + "int main(void) { return plug() != 42; }\n", text=True,
                   check=True, capture_output=True)
    out = build(workspace / "a", "prog", "libplug.so", workspace / "cmp" / "prog.tar.zst")
    result = run_cli("compare", str(out), str(static), "--json", cwd=workspace / "c")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["input"]["path"] == f"prog (as libexec/prog in {out})"

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
from support.needs import need
from support.roots import debian11_tree, need_root, unpack
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


# -- --sysroot: where the build root lies is no fact of the artifact ---------------------------

ZLIB_PROGRAM = r"""
#include <stdio.h>
#include <zlib.h>
int extra(void);
int main(void) { printf("zlib %s %d\n", zlibVersion(), extra()); return 0; }
"""
HOST_LIBS = "/usr/lib/x86_64-linux-gnu"
SMALL_ROOT_PACKAGES = ("libc6:amd64", "zlib1g:amd64")  # the host's, with their files


def status_paragraphs(keys: tuple[str, ...]) -> str:
    """The host's dpkg status paragraphs of `keys` (NAME:ARCH), as dpkg wrote them."""
    text = Path("/var/lib/dpkg/status").read_text()
    chosen = []
    for paragraph in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in paragraph.splitlines()
                      if ": " in line and not line.startswith(" "))
        if f"{fields.get('Package')}:{fields.get('Architecture')}" in keys:
            chosen.append(paragraph.strip("\n"))
    assert len(chosen) == len(keys), keys
    return "\n\n".join(chosen) + "\n"


def small_packaged_root(where: Path) -> Path:
    """A root of this machine's loader, libc and zlib (real copies), merged /usr with the
    host's absolute /lib64 loader link, and a dpkg database of the two packages that ship
    them: their status paragraphs, .list files and copyright files, and os-release."""
    need(all(os.path.exists(f"/var/lib/dpkg/info/{key}.list") for key in SMALL_ROOT_PACKAGES),
         "libc6:amd64 and zlib1g:amd64 are not installed by dpkg")
    root = where / "root"
    libs = root / HOST_LIBS.lstrip("/")
    libs.mkdir(parents=True)
    for name in ("ld-linux-x86-64.so.2", "libc.so.6", "libz.so.1.2.13"):
        shutil.copy2(os.path.realpath(f"{HOST_LIBS}/{name}"), libs / name)
    os.symlink("libz.so.1.2.13", libs / "libz.so.1")
    (root / "usr/lib64").mkdir()
    os.symlink("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
               root / "usr/lib64/ld-linux-x86-64.so.2")
    os.symlink("usr/lib", root / "lib")
    os.symlink("usr/lib64", root / "lib64")
    (root / "etc").mkdir()
    shutil.copy2("/etc/os-release", root / "etc/os-release")
    info = root / "var/lib/dpkg/info"
    info.mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text(status_paragraphs(SMALL_ROOT_PACKAGES))
    for key in SMALL_ROOT_PACKAGES:
        shutil.copy2(f"/var/lib/dpkg/info/{key}.list", info / f"{key}.list")
        name = key.split(":")[0]
        (root / "usr/share/doc" / name).mkdir(parents=True)
        shutil.copy2(f"/usr/share/doc/{name}/copyright",
                     root / "usr/share/doc" / name / "copyright")
    return root


def files_naming(places: list[Path], *needles: str) -> list[str]:
    """Every regular file under (or at) `places` whose bytes hold one of `needles`."""
    named = []
    for place in places:
        paths = [place] if place.is_file() else sorted(place.rglob("*"))
        for path in paths:
            if path.is_file() and not path.is_symlink():
                data = path.read_bytes()
                named += [f"{path}: {n}" for n in needles if n.encode() in data]
    return named


def built_in(workspace: Path, program: str, sysroot: str, *args: str) -> Path:
    """`bundle PROGRAM --sysroot SYSROOT -o out/NAME.tar.zst ARGS`, run in `workspace`, as a
    CI job names its files: relative to its own checkout."""
    (workspace / "out").mkdir(parents=True)
    out = workspace / "out" / f"{os.path.basename(program)}.tar.zst"
    result = run_cli(program, "--sysroot", sysroot, "-o", str(out.relative_to(workspace)),
                     *args, cwd=workspace)
    assert result.returncode == 0, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    return out


def assert_same_artifacts(outs: list[Path], roots: list[Path], where: Path) -> dict:
    """One sha256, identical SBOMs beside, and no root's host path in any file of the
    unpacked artifact or beside it; returns the manifest."""
    assert len({sha256(out) for out in outs}) == 1, [(str(o), sha256(o)) for o in outs]
    beside = []
    for suffix in (".cdx.json", ".spdx.json", ".sha256"):
        assert len({Path(f"{out}{suffix}").read_bytes() for out in outs}) == 1, suffix
        beside += [Path(f"{out}{suffix}") for out in outs]
    unpacked = [unpack(out, where / f"unpacked-{n}") for n, out in enumerate(outs)]
    needles = sorted({str(r) for r in roots} | {os.path.realpath(r) for r in roots})
    assert files_naming(unpacked + beside, *needles) == []
    (top,) = unpacked[0].iterdir()
    return json.loads((top / ".bundle" / "manifest.json").read_text())


def test_a_sysroot_in_two_places_gives_the_same_bytes(tmp_path: Path) -> None:
    """Two CI jobs, each with its checkout and build root somewhere else, build the same
    program against copies of one small packaged root: one sha256, the same SBOMs, and
    packages, copyright files, sources and the library left out (--allow-missing) named as
    the root has them."""
    need(os.path.exists("/usr/include/zlib.h"), "zlib1g-dev is not installed")
    seed = small_packaged_root(tmp_path / "seed")
    gcc(tmp_path / "seed" / "libextra.so.1", "int extra(void) { return 1; }\n",
        "-Wl,-soname,libextra.so.1", shared=True)
    gcc(tmp_path / "seed" / "zversion", ZLIB_PROGRAM, "-lz", f"-L{tmp_path / 'seed'}",
        "-l:libextra.so.1")
    jobs = [tmp_path / "ci-1", tmp_path / "runner" / "work" / "job-two"]
    for job in jobs:
        job.mkdir(parents=True)
        shutil.copytree(seed, job / "root", symlinks=True)
        shutil.copy2(tmp_path / "seed" / "zversion", job / "zversion")
    # The second job's image has one more package installed, one the program never uses:
    # what the artifact records must not depend on it.
    extra = ("\nPackage: unrelated-tool\nStatus: install ok installed\nPriority: optional\n"
             "Architecture: amd64\nVersion: 1.0-1\nMaintainer: Nobody <nobody@example.org>\n"
             "Description: a tool the program never uses\n")
    with open(jobs[1] / "root/var/lib/dpkg/status", "a") as status:
        status.write(extra)
    (jobs[1] / "root/var/lib/dpkg/info/unrelated-tool.list").write_text("/usr/bin/unrelated\n")
    outs = [built_in(jobs[0], "zversion", "root", "--allow-missing"),
            built_in(jobs[1], str(jobs[1] / "zversion"), str(jobs[1] / "root"),
                     "--allow-missing")]
    manifest = assert_same_artifacts(outs, [job / "root" for job in jobs] + jobs, tmp_path)
    packages = {p["name"]: p for p in manifest["packages"]}
    assert set(packages) == {"libc6", "zlib1g"}  # the root's database was read
    assert packages["zlib1g"]["copyright"] == "/usr/share/doc/zlib1g/copyright"
    assert packages["libc6"]["database"] == "/var/lib/dpkg in the build root"
    assert manifest["provenance"] == "dpkg database /var/lib/dpkg in the build root"
    sources = {r["path"]: (r.get("source"), r.get("package")) for r in manifest["files"]}
    assert sources["lib/libz.so.1"] == (f"{HOST_LIBS}/libz.so.1.2.13", "zlib1g:amd64")
    assert sources["lib/libc.so.6"] == (f"{HOST_LIBS}/libc.so.6", "libc6:amd64")
    assert sources["libexec/zversion"] == ("zversion", None)  # the user's own, by name
    assert sources[".bundle/licenses/zlib1g/copyright"] == (
        "/usr/share/doc/zlib1g/copyright", "zlib1g:amd64")
    [missing] = manifest["missing"]
    assert missing.startswith("zversion -> libextra.so.1: not found; searched in the build "
                              "root: /lib/x86_64-linux-gnu, ")


def test_the_debian11_root_bind_mounted_at_two_places_gives_the_same_bytes(
        tmp_path: Path) -> None:
    """The cached Debian 11 root seen at two mount points (two CI hosts keeping it in
    different places): Debian 11's ls from either gives one sha256."""
    need_root()
    tree = debian11_tree()
    places = [tmp_path / "a" / "root", tmp_path / "build" / "cache" / "bullseye"]
    mounted: list[Path] = []
    try:
        for place in places:
            place.mkdir(parents=True)
            subprocess.run(["mount", "--bind", "-o", "ro", str(tree), str(place)], check=True)
            mounted.append(place)
        outs = [built_in(tmp_path / f"job-{n}", "/usr/bin/ls", str(place), "--gconv",
                         "KOI8-R") for n, place in enumerate(places)]
    finally:
        for place in reversed(mounted):
            subprocess.run(["umount", str(place)], check=False)
    manifest = assert_same_artifacts(outs, [*places, tree], tmp_path)
    assert manifest["glibc"] == "2.31"
    assert {p["distro"] for p in manifest["packages"]} == {"debian-11"}
    sources = {r["path"]: r.get("source") for r in manifest["files"]}
    assert sources["libexec/ls"] == "/usr/bin/ls"
    assert all(source.startswith("/usr/") for source in sources.values() if source)

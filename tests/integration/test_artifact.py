"""`bundle BINARY... -o OUT` on the host: layout, patching, launchers, formats, failures.

Everything goes through the real command line (`python -m bundler`), real gcc builds and
the system's own tools (tar, zstd, patchelf, readelf, sha256sum), then runs what it wrote.
Runs in empty roots and old distributions are in test_artifact_roots.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.cli import assert_one_line_error, run_cli
from support.files import sha256
from support.needs import need, need_tool
from support.paths import REPO
from support.roots import unpack
from support.toolchain import HOST_LOADER, gcc, tool

from bundler.manifest import MANIFEST_PATH, dump
from bundler.manifest import load as load_manifest
from bundler.scoping import Rename, apply_renames

LOADER = "ld-linux-x86-64.so.2"
HOST_LIBC = "/lib/x86_64-linux-gnu/libc.so.6"
HOST_LIBZ = "/lib/x86_64-linux-gnu/libz.so.1"  # a library without PT_INTERP
SQLITE3 = "/usr/bin/sqlite3"
EPOCH = 1700000000
FORMATS = (".tar.zst", ".tar.gz", ".tar.xz", ".tar")

HELLO = r"""
#include <stdio.h>
int main(int argc, char **argv) {
    for (int i = 0; i < argc; i++) printf("[%s]\n", argv[i]);
    return 0;
}
"""
GOODBYE = '#include <stdio.h>\nint main(void){ puts("goodbye"); return 0; }\n'
GETENV = r"""
#include <stdio.h>
#include <stdlib.h>
int main(void) {
    const char *value = getenv("LD_LIBRARY_PATH");
    puts(value ? value : "(unset)");
    return 0;
}
"""
SELF_EXE = r"""
#include <stdio.h>
#include <unistd.h>
int main(void) {
    char buf[4096];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n < 0) return 1;
    buf[n] = 0;
    puts(buf);
    return 0;
}
"""
BIG_LIB = '#include <stdio.h>\nint big_answer(void){ puts("big"); return 42; }\n'
USES_BIG = r"""
#include <stdio.h>
int big_answer(void);
int main(void){ printf("%d\n", big_answer()); return 0; }
"""


# --- helpers ---------------------------------------------------------------------------


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    env.update(extra)
    return env


def run(argv: list[str], *, env: dict[str, str] | None = None, stdin: str | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=60,
                          env=env if env is not None else clean_env(), cwd=cwd)


def bundle(*args: str, env: dict[str, str] | None = None,
           cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run bundle and insist that it worked."""
    result = run_cli(*args, env=env, cwd=cwd)
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return result


def brackets(*words: str) -> str:
    """What HELLO prints for this argv."""
    return "".join(f"[{w}]\n" for w in words)


def dynamic_tags(path: Path) -> str:
    return tool("readelf", "-d", str(path))


def tree_listing(top: Path) -> dict[str, tuple]:
    """relative path -> ("file", sha256, mode) | ("symlink", target) | ("dir", mode)."""
    listing = {}
    for path in sorted(top.rglob("*")):
        rel = path.relative_to(top).as_posix()
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            listing[rel] = ("symlink", os.readlink(path))
        elif stat.S_ISDIR(info.st_mode):
            listing[rel] = ("dir", stat.S_IMODE(info.st_mode))
        else:
            listing[rel] = ("file", sha256(path), stat.S_IMODE(info.st_mode))
    return listing


def manifest_of(top: Path) -> dict:
    return json.loads((top / ".bundle" / "manifest.json").read_text())


def tar_members(archive: Path, scratch: Path) -> list[tarfile.TarInfo]:
    """The members as Python's tarfile sees them (.zst decompressed with the zstd CLI)."""
    path = archive
    if archive.name.endswith(".zst"):
        path = scratch / (archive.name + ".decompressed.tar")
        with open(path, "wb") as handle:
            subprocess.run([need_tool("zstd"), "-dc", str(archive)], stdout=handle, check=True)
    with tarfile.open(path) as tar:
        members = tar.getmembers()
        assert tar.pax_headers == {}
    return members


def dir_names(directory: Path) -> list[str]:
    """The names in `directory`, without lib/'s `.bundle-ID` link (library_home checks it)."""
    return sorted(n for n in os.listdir(directory) if not n.startswith(".bundle-"))


def library_home(top: Path) -> str:
    """`lib/.bundle-ID`: the one link to `.` the programs' PT_INTERP and DT_RPATH go through."""
    (name,) = [n for n in os.listdir(top / "lib") if n.startswith(".bundle-")]
    assert os.readlink(top / "lib" / name) == "."
    assert re.fullmatch(r"\.bundle-[0-9a-f]{16}", name), name
    return f"lib/{name}"


def program_rpath(top: Path, prefix: str) -> str:
    home = library_home(top)
    return f"$ORIGIN/../{home}:{prefix}/{home}"


# --- fixtures --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def progs(tmp_path_factory) -> dict[str, Path]:
    where = tmp_path_factory.mktemp("progs")
    built = {
        "hello": gcc(where / "hello", HELLO),
        "goodbye": gcc(where / "goodbye", GOODBYE),
        "getenv": gcc(where / "getenv", GETENV),
        "whoami": gcc(where / "whoami", SELF_EXE),
    }
    built["runpath"] = gcc(where / "rp" / "runpath", HELLO,
                           "-Wl,--enable-new-dtags,-rpath,/somewhere")
    return built


@pytest.fixture(scope="module")
def hello_artifact(tmp_path_factory, progs) -> tuple[Path, subprocess.CompletedProcess[str]]:
    out = tmp_path_factory.mktemp("artifact") / "hello.tar.zst"
    result = bundle(str(progs["hello"]), "-o", str(out))
    return out, result


@pytest.fixture(scope="module")
def hello_tree(tmp_path_factory, hello_artifact) -> Path:
    """The default artifact unpacked with the system tar into a dir with a space."""
    into = tmp_path_factory.mktemp("unpack") / "unpacked dir"
    unpack(hello_artifact[0], into)
    return into / "hello"


@pytest.fixture(scope="module")
def sqlite_tree(tmp_path_factory) -> Path:
    need(os.path.exists(SQLITE3), "sqlite3 is not installed")
    where = tmp_path_factory.mktemp("sqlite")
    out = where / "sqlite3.tar.zst"
    bundle(SQLITE3, "-o", str(out))
    unpack(out, where / "u")
    return where / "u" / "sqlite3"


# --- 1. layout, patching, manifest -----------------------------------------------------


def test_layout(hello_tree: Path) -> None:
    launcher = hello_tree / "bin" / "hello"
    # The native launcher (a static ELF): this host has a C compiler for x86-64.
    assert launcher.read_bytes().startswith(b"\x7fELF")
    for path in (launcher, hello_tree / "libexec" / "hello", hello_tree / "lib" / LOADER):
        assert path.is_file() and not path.is_symlink(), path
        assert os.access(path, os.X_OK), path
    assert (hello_tree / "lib" / "libc.so.6").is_file()
    assert (hello_tree / ".bundle" / "manifest.json").is_file()
    assert sorted(p.name for p in hello_tree.iterdir()) == [".bundle", "bin", "lib", "libexec"]
    assert dir_names(hello_tree / "lib") == ["glibc-hwcaps", LOADER, "libc.so.6"]
    levels = hello_tree / "lib" / "glibc-hwcaps"
    assert {p.name: os.readlink(p) for p in levels.iterdir()} == {
        "x86-64-v2": "..", "x86-64-v3": "..", "x86-64-v4": ".."}


def test_each_library_is_found_at_the_first_try(tmp_path: Path) -> None:
    """At its prefix, the program's loader opens each library at its first try: the
    glibc-hwcaps level it tries first leads back to lib/ (on glibc 2.36 it tried ten
    subdirectories of lib/ and stat'ed each before finding the first library)."""
    strace = need_tool("strace")
    levels = subprocess.run([HOST_LOADER, "--help"], capture_output=True, text=True).stdout
    need("x86-64-v2 (supported" in levels, "this CPU is below x86-64-v2: no level to try")
    prefix = tmp_path / "opt" / "sqlite3"
    out = tmp_path / "s.tar.zst"
    bundle(SQLITE3, "-o", str(out), "--prefix", str(prefix))
    unpack(out, prefix.parent)
    log = tmp_path / "trace"
    done = subprocess.run([strace, "-f", "-o", str(log), "-e", "trace=openat,stat,newfstatat",
                           str(prefix / "libexec" / "sqlite3"), "-version"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    inside = [line for line in log.read_text().splitlines() if str(prefix) in line]
    assert [line for line in inside if "ENOENT" in line] == []
    assert any("openat(" in line and "/glibc-hwcaps/x86-64-v" in line and "libc.so.6" in line
               for line in inside)
    ran = run([str(prefix / "bin" / "sqlite3")], stdin="select 40+2;\n")
    assert ran.stdout.strip() == "42", ran.stderr


def test_program_is_patched_to_the_prefix_loader_with_rpath(hello_tree: Path) -> None:
    program = str(hello_tree / "libexec" / "hello")
    home = library_home(hello_tree)
    assert tool("patchelf", "--print-interpreter", program).strip() == (
        f"/opt/hello/{home}/{LOADER}")
    rpath = program_rpath(hello_tree, "/opt/hello")
    assert tool("patchelf", "--print-rpath", program).strip() == rpath
    tags = dynamic_tags(Path(program))
    assert re.findall(r"\((RPATH|RUNPATH)\).*\[(.*)\]", tags) == [("RPATH", rpath)]


def test_glibc_differs_only_by_its_sealed_strings(hello_tree: Path) -> None:
    """libc.so.6 and the loader are not rewritten: the only change is the same-length
    sealing of host paths (sealing.py), recorded in the manifest with the original's hash."""
    records = {r["path"]: r for r in manifest_of(hello_tree)["files"]}
    for name, host in (("libc.so.6", HOST_LIBC), (LOADER, HOST_LOADER)):
        original = Path(os.path.realpath(host)).read_bytes()
        copy = (hello_tree / "lib" / name).read_bytes()
        patched = records[f"lib/{name}"]["patched"]
        assert patched["source_sha256"] == sha256(os.path.realpath(host))
        renames = tuple(Rename(old, new, whole="\0" not in old)
                        for old, new in patched["renamed_strings"].items())
        assert len(copy) == len(original) and copy != original
        assert apply_renames(original, renames) == copy, name
    for name in ("libc.so.6", LOADER):
        tags = dynamic_tags(hello_tree / "lib" / name)
        assert "(RPATH)" not in tags and "(RUNPATH)" not in tags, name


def test_libraries_without_a_search_path_keep_their_bytes(sqlite_tree: Path) -> None:
    """They find their dependencies through the program's DT_RPATH: nothing to rewrite."""
    for name in ("libsqlite3.so.0", "libreadline.so.8"):
        path = sqlite_tree / "lib" / name
        assert path.is_file() and not path.is_symlink(), name
        original = os.path.realpath(f"/lib/x86_64-linux-gnu/{name}")
        assert sha256(path) == sha256(original), name
        tags = dynamic_tags(path)
        assert "(RPATH)" not in tags and "(RUNPATH)" not in tags and "(NEEDED)" in tags


def test_a_library_with_runpath_gets_rpath_origin(tmp_path: Path, c_lib) -> None:
    """libouter has DT_RUNPATH (its build dir), so the program's DT_RPATH would not apply to
    its dependency libinner: it gets DT_RPATH $ORIGIN; libinner (none) stays byte-identical,
    and the program runs from the bundle once the build dir is gone."""
    inner = c_lib(tmp_path / "libs" / "libinner.so", "int inner(void) { return 41; }",
                  "-Wl,-soname,libinner.so")
    outer = c_lib(tmp_path / "libs" / "libouter.so",
                  "int inner(void); int outer(void) { return inner() + 1; }",
                  "-Wl,-soname,libouter.so", f"-L{tmp_path / 'libs'}", "-linner",
                  f"-Wl,--enable-new-dtags,-rpath,{tmp_path / 'libs'}")
    assert "(RUNPATH)" in dynamic_tags(outer)  # the premise
    program = gcc(tmp_path / "uses", '#include <stdio.h>\nint outer(void);\n'
                  'int main(void) { printf("%d\\n", outer()); return 0; }',
                  f"-L{tmp_path / 'libs'}", "-louter", f"-Wl,-rpath,{tmp_path / 'libs'}")
    bundle(str(program), "-o", str(tmp_path / "uses.tar.zst"))
    top = unpack(tmp_path / "uses.tar.zst", tmp_path / "u") / "uses"
    tags = dynamic_tags(top / "lib" / "libouter.so")
    assert re.findall(r"\((RPATH|RUNPATH)\).*\[(.*)\]", tags) == [("RPATH", "$ORIGIN")]
    assert sha256(top / "lib" / "libinner.so") == sha256(inner)
    shutil.rmtree(tmp_path / "libs")  # the build dirs are gone: only the bundle remains
    assert run([str(top / "bin" / "uses")]).stdout == "42\n"


@pytest.mark.parametrize("tree", ["hello_tree", "sqlite_tree"])
def test_manifest_describes_every_unpacked_file(tree: str, request) -> None:
    top: Path = request.getfixturevalue(tree)
    manifest = manifest_of(top)
    listing = tree_listing(top)
    # .bundle/ describes the rest: the manifest cannot list itself, nor the report
    # that quotes it.
    described = {".bundle/manifest.json", ".bundle/report.md"}
    assert described <= set(listing)
    on_disk = {p for p, v in listing.items() if v[0] != "dir"} - described
    assert {r["path"] for r in manifest["files"]} == on_disk
    for record in manifest["files"]:
        path = top / record["path"]
        if record["type"] == "symlink":
            assert os.readlink(path) == record["target"]
            continue
        assert record["sha256"] == sha256(path), record["path"]
        assert record["size"] == path.stat().st_size, record["path"]
        assert record["mode"] == f"{stat.S_IMODE(path.stat().st_mode):04o}", record["path"]
    name = top.name
    assert manifest["glibc"] == "2.36"
    assert "3.2" in manifest["min_kernel"]
    assert manifest["prefix"] == f"/opt/{name}"
    assert manifest["launcher"] == "loader"
    assert manifest["arch"] == "x86-64"
    assert manifest["programs"] == [name]
    assert manifest["format_version"] == 1


@pytest.mark.parametrize("tree", ["hello_tree", "sqlite_tree"])
def test_the_manifest_is_what_its_records_dump_to(tree: str, request) -> None:
    """One writer, one reader: the records `load` makes of a real manifest (patched and
    renamed copies, aliases, NSS) dump to the very bytes the build wrote."""
    top: Path = request.getfixturevalue(tree)
    text = (top / MANIFEST_PATH).read_text()
    loaded = load_manifest(str(top), top.name)
    assert dump(loaded) == text
    assert any(f.patched and f.patched.elf for f in loaded.files)  # the program
    assert any(f.patched and f.patched.renamed_strings for f in loaded.files)  # glibc's


@pytest.mark.parametrize("tree", ["hello_tree", "sqlite_tree"])
def test_each_copy_lief_patched_names_the_lief_that_wrote_it(tree: str, request) -> None:
    """The patched bytes depend on LIEF's release (pyproject.toml allows several): each
    copy's record says which wrote it, the very LIEF this environment imports."""
    import lief

    top: Path = request.getfixturevalue(tree)
    records = json.loads((top / MANIFEST_PATH).read_text())["files"]
    edited = {r["path"]: r["patched"] for r in records if r.get("patched")}
    by_lief = {path: p["rewriter"] for path, p in edited.items() if "rpath" in p}
    assert f"libexec/{top.name}" in by_lief
    assert set(by_lief.values()) == {f"lief {lief.__version__}"}
    assert all("rewriter" not in p for p in edited.values() if "rpath" not in p)  # glibc's


def test_runpath_becomes_rpath(tmp_path: Path, progs) -> None:
    original = dynamic_tags(progs["runpath"])
    assert "(RUNPATH)" in original and "/somewhere" in original  # the premise
    bundle(str(progs["runpath"]), "-o", str(tmp_path / "rp.tar.zst"))
    top = unpack(tmp_path / "rp.tar.zst", tmp_path / "u") / "runpath"
    tags = dynamic_tags(top / "libexec" / "runpath")
    assert "(RUNPATH)" not in tags
    assert "/somewhere" not in tags
    assert re.findall(r"\((RPATH|RUNPATH)\).*\[(.*)\]", tags) == [
        ("RPATH", program_rpath(top, "/opt/runpath"))]
    launcher = str(top / "bin" / "runpath")
    assert run([launcher, "ok"]).stdout == brackets(launcher, "ok")


# --- 2. running on the host ------------------------------------------------------------


def test_launcher_runs_from_the_unpacked_dir(hello_tree: Path) -> None:
    launcher = str(hello_tree / "bin" / "hello")
    result = run([launcher, "one", "two"])
    assert result.returncode == 0, result.stderr
    assert result.stdout == brackets(launcher, "one", "two")
    assert result.stderr == ""


def test_launcher_through_symlinks(tmp_path: Path, hello_tree: Path) -> None:
    links = tmp_path / "links"
    links.mkdir()
    (links / "hello").symlink_to(hello_tree / "bin" / "hello")  # absolute
    other = tmp_path / "more" / "links"
    other.mkdir(parents=True)
    (other / "hi").symlink_to(Path("..") / ".." / "links" / "hello")  # relative, to a link
    for called in (links / "hello", other / "hi"):
        result = run([str(called), "x"])
        assert result.returncode == 0, (called, result.stderr)
        assert result.stdout == brackets(str(called), "x")
    # Found through PATH, and called relative to the cwd.
    result = run(["hi", "y"], env=clean_env(PATH=f"{other}:{os.environ.get('PATH', '')}"))
    assert result.stdout.splitlines()[1:] == ["[y]"], result.stderr
    result = run(["./hi", "z"], cwd=other)
    assert result.stdout == brackets("./hi", "z"), result.stderr


@pytest.mark.parametrize("kind", ["native", "sh"])
@pytest.mark.parametrize("where", ["dir with space/x y", "co:lon/se;mi", "it's \"q\" $x"])
def test_launcher_from_odd_paths(tmp_path: Path, progs, where: str, kind: str) -> None:
    name = Path(where).name
    out = tmp_path / "odd.tar.zst"
    # The prefix is given: a name with ":", ";" or "$" makes no prefix (DT_RPATH, PT_INTERP).
    bundle(str(progs["hello"]), "-o", str(out), "--name", name, "--launcher-type", kind,
           "--prefix", "/opt/odd")
    top = unpack(out, tmp_path / Path(where).parent) / name
    assert top.is_dir()
    launcher = str(top / "bin" / "hello")
    result = run([launcher, "a b"])
    assert result.returncode == 0, result.stderr
    assert result.stdout == brackets(launcher, "a b")


ODD_ARGS = ["a b", "  two  spaces ", "it's", 'say "hi"', "*", "$HOME", "${HOME}", "-n",
            "--help", "", "", "back\\slash", "tab\there", "new\nline", "`id`", "$(id)", ";|&"]


def test_arguments_come_through_untouched(hello_tree: Path) -> None:
    launcher = str(hello_tree / "bin" / "hello")
    result = run([launcher, *ODD_ARGS], cwd=hello_tree / "lib")  # a cwd where * matches
    assert result.returncode == 0, result.stderr
    assert result.stdout == brackets(launcher, *ODD_ARGS)
    result = run([launcher, ""])
    assert result.stdout == brackets(launcher, "")
    result = run([launcher])
    assert result.stdout == brackets(launcher)


def test_argv0_is_the_path_the_launcher_was_called_as(tmp_path: Path, hello_tree: Path) -> None:
    # glibc 2.36's loader has --argv0: the program sees the launcher's $0, not its own path.
    assert b"--argv0" in (hello_tree / "bin" / "hello").read_bytes()
    link = tmp_path / "my-hello"
    link.symlink_to(hello_tree / "bin" / "hello")
    assert run([str(link)]).stdout == brackets(str(link))
    assert run(["./bin/hello"], cwd=hello_tree).stdout == brackets("./bin/hello")


def test_prefix_option_changes_the_interpreter(tmp_path: Path, progs) -> None:
    prefix = "/srv/my app"
    out = tmp_path / "p.tar.zst"
    bundle(str(progs["hello"]), "-o", str(out), "--prefix", prefix + "/")
    top = unpack(out, tmp_path / "u") / "hello"
    program = str(top / "libexec" / "hello")
    assert tool("patchelf", "--print-interpreter", program).strip() == (
        f"{prefix}/{library_home(top)}/{LOADER}")
    assert manifest_of(top)["prefix"] == prefix
    assert prefix.encode() in (top / "bin" / "hello").read_bytes()
    launcher = str(top / "bin" / "hello")
    assert run([launcher, "p"]).stdout == brackets(launcher, "p")


def test_sqlite3_runs_a_query(sqlite_tree: Path) -> None:
    result = run([str(sqlite_tree / "bin" / "sqlite3")], stdin="select 40+2;\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "42"


def test_env_launcher_exports_library_path(tmp_path: Path, progs) -> None:
    out = tmp_path / "e.tar.zst"
    bundle(str(progs["getenv"]), "-o", str(out), "--launcher", "env")
    top = unpack(out, tmp_path / "u") / "getenv"
    here = os.path.realpath(top)
    launcher = str(top / "bin" / "getenv")
    assert run([launcher]).stdout == f"{here}/lib\n"
    result = run([launcher], env=clean_env(LD_LIBRARY_PATH="/caller/lib"))
    assert result.stdout == f"{here}/lib:/caller/lib\n"
    assert manifest_of(top)["launcher"] == "env"


def test_loader_launcher_leaves_the_environment_alone(tmp_path: Path, progs) -> None:
    out = tmp_path / "l.tar.zst"
    bundle(str(progs["getenv"]), "-o", str(out))
    top = unpack(out, tmp_path / "u") / "getenv"
    launcher = str(top / "bin" / "getenv")
    assert run([launcher]).stdout == "(unset)\n"
    result = run([launcher], env=clean_env(LD_LIBRARY_PATH="/caller/lib"))
    assert result.stdout == "/caller/lib\n"


def test_away_from_the_prefix_the_loader_is_the_process_image(tmp_path: Path, progs) -> None:
    out = tmp_path / "w.tar.zst"
    bundle(str(progs["whoami"]), "-o", str(out))
    top = unpack(out, tmp_path / "u") / "whoami"
    result = run([str(top / "bin" / "whoami")])
    assert result.stdout.strip() == os.path.realpath(top / "lib" / LOADER)


# --- 3. determinism and formats --------------------------------------------------------


@pytest.mark.parametrize("ending", FORMATS)
def test_formats_are_deterministic_and_normalised(tmp_path: Path, progs, ending: str) -> None:
    outs = []
    for run_dir in ("first", "second"):
        (tmp_path / run_dir).mkdir()
        out = tmp_path / run_dir / f"hello{ending}"
        bundle(str(progs["hello"]), "-o", str(out), env={"SOURCE_DATE_EPOCH": str(EPOCH)})
        outs.append(out)
    assert outs[0].read_bytes() == outs[1].read_bytes()

    members = tar_members(outs[0], tmp_path)
    names = [m.name for m in members]
    # Sorted, then .bundle/ in the order its files are made from the digests taken while
    # the files before them went into the archive (each file is read once): the licences
    # and SOURCES, the SBOMs (which hold their digests), the manifest (all of them) and
    # the report.
    made = [n for n in names if n.startswith("hello/.bundle/")]
    payload = names[:len(names) - len(made)]
    assert payload == sorted(payload) and "hello/.bundle" in payload
    notices = [n for n in made if "/licenses/" in n or n.endswith("/SOURCES")]
    assert made == [*sorted(notices), "hello/.bundle/sbom.cdx.json",
                    "hello/.bundle/sbom.spdx.json", "hello/.bundle/manifest.json",
                    "hello/.bundle/report.md"]
    assert "hello/libexec/hello" in names and f"hello/lib/{LOADER}" in names
    for member in members:
        assert member.mtime == EPOCH, member.name
        assert (member.uid, member.gid, member.uname, member.gname) == (0, 0, "", ""), member.name
        assert member.pax_headers == {}, member.name
        if member.isdir():
            assert member.mode == 0o755, member.name
        elif member.isfile():
            assert member.mode in (0o755, 0o644), (member.name, oct(member.mode))
        else:
            assert member.issym(), member.name
    if ending == ".tar.gz":
        head = outs[0].read_bytes()[:10]
        assert head[3] & 0x08 == 0  # FNAME: no file name recorded
        assert int.from_bytes(head[4:8], "little") == EPOCH
    if ending == ".tar.zst":
        subprocess.run([need_tool("zstd"), "-q", "-t", str(outs[0])], check=True)

    top = unpack(outs[0], tmp_path / "u") / "hello"
    assert (top / "bin" / "hello").stat().st_mtime == EPOCH
    launcher = str(top / "bin" / "hello")
    assert run([launcher, "fmt"]).stdout == brackets(launcher, "fmt")


def test_default_mtime_is_zero(tmp_path: Path, hello_artifact) -> None:
    assert "SOURCE_DATE_EPOCH" not in os.environ
    members = tar_members(hello_artifact[0], tmp_path)
    assert members and all(m.mtime == 0 for m in members)


def test_bad_source_date_epoch(tmp_path: Path, progs) -> None:
    out = tmp_path / "h.tar.zst"
    result = run_cli(str(progs["hello"]), "-o", str(out), env={"SOURCE_DATE_EPOCH": "yesterday"})
    assert_one_line_error(result, 2, "SOURCE_DATE_EPOCH")
    assert dir_names(tmp_path) == []


def test_checksum_file(hello_artifact) -> None:
    out = hello_artifact[0]
    checksum = Path(f"{out}.sha256")
    assert checksum.read_text() == f"{sha256(out)}  {out.name}\n"
    result = subprocess.run([need_tool("sha256sum"), "-c", checksum.name], cwd=out.parent,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == f"{out.name}: OK\n"


def test_trailing_slash_writes_a_directory(tmp_path: Path, progs, hello_tree: Path) -> None:
    tree = tmp_path / "tree"
    earlier = tree / "hello"  # an earlier artifact: replaced whole, not merged
    (earlier / ".bundle").mkdir(parents=True)
    (earlier / ".bundle" / "manifest.json").write_text("{}")
    (earlier / "stale.txt").write_text("from an earlier run")
    result = bundle(str(progs["hello"]), "-o", f"{tree}/")
    assert dir_names(tree) == ["hello"]
    assert tree_listing(tree / "hello") == tree_listing(hello_tree)
    # No .part, .old or staging left over; the SBOMs are OUT.cdx.json and OUT.spdx.json.
    assert dir_names(tmp_path) == ["tree", "tree.cdx.json", "tree.spdx.json"]
    assert "wrote" in result.stderr
    launcher = str(tree / "hello" / "bin" / "hello")
    assert run([launcher, "d"]).stdout == brackets(launcher, "d")


def test_a_directory_holding_other_things_is_never_replaced(tmp_path: Path, progs) -> None:
    # `-o ./` or `-o ~/` by mistake must not delete a work tree or a home.
    work = tmp_path / "work"
    (work / "src").mkdir(parents=True)
    (work / "precious.txt").write_bytes(KNOWN)
    before = tree_listing(tmp_path)
    for out in ("./", f"{work}/"):
        result = run_cli(str(progs["hello"]), "-o", out, cwd=work)
        assert_one_line_error(result, 2, out, "holds other things than an artifact")
        assert tree_listing(tmp_path) == before


def test_default_output_is_name_tar_zst_in_the_cwd(tmp_path: Path, progs) -> None:
    result = bundle(str(progs["hello"]), cwd=tmp_path)
    assert dir_names(tmp_path) == ["hello.tar.zst", "hello.tar.zst.cdx.json",
                                   "hello.tar.zst.sha256", "hello.tar.zst.spdx.json"]
    assert "bundle: wrote ./hello.tar.zst" in result.stderr
    top = unpack(tmp_path / "hello.tar.zst", tmp_path / "u") / "hello"
    assert (top / "libexec" / "hello").is_file()


# --- 4. several binaries ---------------------------------------------------------------


def test_two_programs_share_one_artifact(tmp_path: Path, progs) -> None:
    out = tmp_path / "pair.tar.zst"
    bundle(str(progs["hello"]), str(progs["goodbye"]), "--name", "pair", "-o", str(out))
    unpacked = unpack(out, tmp_path / "u")
    assert dir_names(unpacked) == ["pair"]
    top = unpacked / "pair"
    assert dir_names(top / "bin") == ["goodbye", "hello"]
    assert dir_names(top / "libexec") == ["goodbye", "hello"]
    assert dir_names(top / "lib") == ["glibc-hwcaps", LOADER, "libc.so.6"]
    manifest = manifest_of(top)
    assert manifest["programs"] == ["hello", "goodbye"]
    assert manifest["name"] == "pair"
    for program in ("hello", "goodbye"):
        interpreter = tool("patchelf", "--print-interpreter", str(top / "libexec" / program))
        assert interpreter.strip() == f"/opt/pair/{library_home(top)}/{LOADER}"
    hello = str(top / "bin" / "hello")
    assert run([hello, "h"]).stdout == brackets(hello, "h")
    assert run([str(top / "bin" / "goodbye")]).stdout == "goodbye\n"


# --- 5. no partial output --------------------------------------------------------------

KNOWN = b"an artifact from before\n"


@pytest.fixture(scope="module")
def static_hello(tmp_path_factory) -> Path:
    where = tmp_path_factory.mktemp("static")
    try:
        return gcc(where / "static-hello", HELLO, "-static")
    except subprocess.CalledProcessError as exc:
        need(False, f"gcc -static does not work here (libc6-dev's libc.a?): {exc.stderr}")
        raise


FAILURES = {
    # id: (arguments, OUT relative to the output dir, exit code, words in the message)
    "missing input": (["{tmp}/nope", "-o", "{out}"], "a.tar.zst", 2, ["nope"]),
    "static binary": (["{static}", "-o", "{out}"], "a.tar.zst", 2, ["statically linked"]),
    "shared library": (["{libz}", "-o", "{out}"], "a.tar.zst", 2, ["not a program"]),
    "unknown ending": (["{hello}", "-o", "{out}"], "a.zip", 2, ["unknown format"]),
    "relative prefix": (["{hello}", "-o", "{out}", "--prefix", "opt/x"], "a.tar.zst", 2,
                        ["--prefix", "absolute"]),
    "bad name": (["{hello}", "-o", "{out}", "--name", "a/b"], "a.tar.zst", 2, ["--name"]),
    "OUT is a directory": (["{hello}", "-o", "{outdir}/d.tar.zst"], "a.tar.zst", 2,
                           ["is a directory"]),
}


@pytest.mark.parametrize("case", FAILURES)
def test_failures_leave_out_untouched(tmp_path: Path, progs, static_hello: Path,
                                      case: str) -> None:
    template, out_name, code, words = FAILURES[case]
    outdir = tmp_path / "out"
    outdir.mkdir()
    out = outdir / out_name
    out.write_bytes(KNOWN)
    if case == "OUT is a directory":
        (outdir / "d.tar.zst").mkdir()
    before = dir_names(outdir)
    args = [a.format(tmp=tmp_path, out=out, outdir=outdir, hello=progs["hello"],
                     static=static_hello, libz=os.path.realpath(HOST_LIBZ))
            for a in template]
    result = run_cli(*args)
    assert_one_line_error(result, code, *words)
    assert out.read_bytes() == KNOWN
    assert dir_names(outdir) == before


def test_output_in_a_missing_directory(tmp_path: Path, progs) -> None:
    result = run_cli(str(progs["hello"]), "-o", str(tmp_path / "nodir" / "a.tar.zst"))
    assert_one_line_error(result, 2, "does not exist")
    assert dir_names(tmp_path) == []


@contextlib.contextmanager
def immutable(directory: Path) -> Iterator[None]:
    """`chattr +i` on `directory` meanwhile (root cannot write there either); always undone."""
    chattr = need_tool("chattr")
    done = subprocess.run([chattr, "+i", str(directory)], capture_output=True, text=True)
    need(done.returncode == 0, f"chattr +i does not work here: {done.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(directory)], check=True)


def earlier_outputs(tmp_path: Path, archive_name: str) -> Path:
    """An output dir holding an earlier archive and an earlier directory artifact."""
    outdir = tmp_path / "out"
    outdir.mkdir()
    (outdir / archive_name).write_bytes(KNOWN)
    (outdir / "tree" / "big" / ".bundle").mkdir(parents=True)
    (outdir / "tree" / "big" / ".bundle" / "manifest.json").write_bytes(KNOWN)
    return outdir


@pytest.mark.parametrize("out_name", ["a.tar.zst", "tree/"])
def test_unwritable_output_directory(tmp_path: Path, progs, out_name: str) -> None:
    outdir = earlier_outputs(tmp_path, "a.tar.zst")
    before = tree_listing(outdir)
    with immutable(outdir):
        result = run_cli(str(progs["hello"]), "-o", f"{outdir}/{out_name}")
        after = tree_listing(outdir)
    assert_one_line_error(result, 3, str(outdir))
    assert after == before


# --- interrupted in the middle of writing ----------------------------------------------

BLOB_SIZE = 300 * 10**6


@pytest.fixture(scope="module")
def big_program(tmp_path_factory) -> Path:
    """A program linked to a 300 MB library (a random blob in a non-loaded section)."""
    objcopy = need_tool("objcopy")
    where = tmp_path_factory.mktemp("big")
    lib = gcc(where / "lib" / "libbig.so.1", BIG_LIB, "-Wl,-soname,libbig.so.1", shared=True)
    blob = where / "blob"
    with open(blob, "wb") as handle:
        left = BLOB_SIZE
        while left:  # random: the compressor cannot shrink it
            left -= handle.write(os.urandom(min(left, 16 << 20)))
    subprocess.run([objcopy, "--add-section", f".blob={blob}", "--set-section-flags",
                    ".blob=noload,readonly", str(lib)], check=True)
    blob.unlink()
    assert lib.stat().st_size > BLOB_SIZE
    return gcc(where / "usebig", USES_BIG, f"-L{lib.parent}", "-l:libbig.so.1")


def interrupt_when(outdir: Path, command: list[str], ready, sig: int,
                   ) -> subprocess.CompletedProcess[str]:
    """Start bundle, wait until `ready(names in outdir)`, send `sig`, wait for the end."""
    env = clean_env(PYTHONPATH=str(REPO))
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        while not ready(os.listdir(outdir)):
            if process.poll() is not None:
                pytest.fail(f"bundle ended ({process.returncode}) before the moment to "
                            f"interrupt it: {process.stderr.read() if process.stderr else ''}")
            if time.monotonic() > deadline:
                pytest.fail("the moment to interrupt never came")
            time.sleep(0.002)
        process.send_signal(sig)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def writing(names: list[str]) -> bool:
    return any(n.endswith(".part") for n in names)


def staging(names: list[str]) -> bool:
    return any(".staging." in n for n in names)


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "moment", "out_name"), [
    (signal.SIGINT, writing, "big.tar.zst"),
    (signal.SIGTERM, writing, "big.tar.zst"),
    (signal.SIGINT, writing, "tree/"),
    (signal.SIGINT, staging, "big.tar.zst"),
    (signal.SIGTERM, staging, "big.tar.zst"),
], ids=["SIGINT-writing", "SIGTERM-writing", "SIGINT-writing-dir", "SIGINT-staging",
        "SIGTERM-staging"])
def test_interrupted_leaves_nothing_behind(tmp_path: Path, big_program: Path, sig: int,
                                           moment, out_name: str) -> None:
    outdir = earlier_outputs(tmp_path, "big.tar.zst")
    before = tree_listing(outdir)
    command = [sys.executable, "-m", "bundler", str(big_program), "--library-path",
               str(big_program.parent / "lib"), "-o", f"{outdir}/{out_name}"]
    result = interrupt_when(outdir, command, moment, sig)
    assert result.returncode != 0
    expected = {signal.SIGINT: (130, "bundle: interrupted"),
                signal.SIGTERM: (143, "bundle: terminated")}[sig]
    assert result.returncode == expected[0], result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert expected[1] in result.stderr
    assert tree_listing(outdir) == before


# --- 6. the summary --------------------------------------------------------------------

UNITS = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}


def parse_size(number: str, unit: str) -> tuple[float, float]:
    """The byte range a printed size stands for (one rounding step either side)."""
    step = 1 if unit == "B" else 0.1
    return (float(number) - step) * UNITS[unit], (float(number) + step) * UNITS[unit]


def test_summary_names_what_was_written(hello_artifact, hello_tree: Path) -> None:
    out, result = hello_artifact
    text = result.stderr
    every = [r for r in manifest_of(hello_tree)["files"] if r["type"] == "file"]
    files = [r for r in every if r["kind"] not in ("notice", "sbom")]  # .bundle/ is apart
    assert text.startswith(f"bundle: wrote {out}\n")
    assert re.search(rf"^  files\s+{len(files)} \(", text, re.M), text
    match = re.search(r"^  size\s+([\d.]+) (B|KiB|MiB) raw, ([\d.]+) (B|KiB|MiB) zst", text,
                      re.M)
    assert match, text
    low, high = parse_size(match.group(1), match.group(2))
    assert low <= sum(r["size"] for r in every) <= high
    low, high = parse_size(match.group(3), match.group(4))
    assert low <= out.stat().st_size <= high
    assert re.search(r"^  glibc bundled\s+2\.36 \(libc6 [^)]+\); needs kernel Linux 3\.2\.0",
                     text, re.M), text
    assert re.search(r"^  launcher\s+loader", text, re.M)
    assert f"install:  mkdir -p /opt/hello && tar --zstd -xf {out} -C /opt/hello" in text
    assert "run:      /opt/hello/bin/hello" in text
    assert sha256(out) in text
    assert "Traceback" not in text and result.stdout == ""


@pytest.mark.parametrize("out_name", ["w.tar.zst", "w.tar.gz", "tree/"])
def test_install_line_installs_at_the_prefix(tmp_path: Path, progs, out_name: str) -> None:
    prefix = tmp_path / "opt" / "whoami"
    out = f"{tmp_path}/{out_name}"
    result = bundle(str(progs["whoami"]), "-o", out, "--prefix", str(prefix))
    line = re.search(r"^  install:  (.*)$", result.stderr, re.M)
    assert line, result.stderr
    (tmp_path / "opt").mkdir()
    subprocess.run(["sh", "-c", line.group(1)], check=True, cwd=tmp_path)
    assert dir_names(prefix) == [".bundle", "bin", "lib", "libexec"]
    program = prefix / "libexec" / "whoami"
    # At the prefix the launcher execs the program itself: /proc/self/exe is the program.
    assert run([str(prefix / "bin" / "whoami")]).stdout == f"{program}\n"
    assert run([str(program)]).stdout == f"{program}\n"  # PT_INTERP is the bundled loader

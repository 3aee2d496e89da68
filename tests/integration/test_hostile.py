"""Hostile environments and hostile install conditions (issue 9), each built for real.

Search paths that are huge or loop, a library that needs itself, a 500-library closure,
a full disk, two builds racing for one OUT, and the launcher on a read-only file system,
under odd install paths, with IFS/CDPATH set and without /proc.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.cli import assert_one_line_error, cli_command, cli_env, run_cli
from support.measure import run_with_peak
from support.needs import need_tool
from support.paths import REPO
from support.roots import empty_root, need_root, unpack
from support.toolchain import gcc

from bundler.integrity import check_tree
from bundler.manifest import load as load_manifest
from bundler.safe_unpack import unpack_artifact

HELLO = r"""
#include <stdio.h>
int main(int argc, char **argv) {
    for (int i = 0; i < argc; i++) printf("[%s]", argv[i]);
    printf("\n");
    return 0;
}
"""


def bundle(*args: str) -> subprocess.CompletedProcess[str]:
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    return result


def timed_cli(*args: str) -> tuple[subprocess.CompletedProcess[str], float, int]:
    """run_cli with wall time and the run's peak RSS (KiB, by GNU time), for the record."""
    started = time.perf_counter()
    result, peak = run_with_peak(cli_command(*args), env=cli_env(), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
    return result, time.perf_counter() - started, peak


# --- search paths and closures -----------------------------------------------------------


def test_rpath_with_thousands_of_entries(tmp_path: Path, c_lib) -> None:
    """3,000 missing dirs before the real one: found, in reasonable time, and bundled."""
    lib = c_lib(tmp_path / "real" / "libfar.so", "int far(void) { return 7; }",
                "-Wl,-soname,libfar.so")
    # Short names: one argument may not exceed 128 KiB (MAX_ARG_STRLEN).
    dirs = [f"/nonexistent/d{i}" for i in range(3000)] + [str(lib.parent)]
    program = gcc(tmp_path / "far", '#include <stdio.h>\nint far(void);\n'
                  'int main(void) { printf("%d\\n", far()); return 0; }',
                  f"-L{lib.parent}", "-lfar", "-Wl,-rpath," + ":".join(dirs))
    inspected, seconds, _ = timed_cli("inspect", "--json", str(program))
    assert inspected.returncode == 0, inspected.stderr
    found = {entry["name"]: entry for entry in json.loads(inspected.stdout)["libraries"]}
    assert found["libfar.so"]["path"] == str(lib)
    print(f"inspect with a 3,001-entry RPATH: {seconds:.2f} s")
    out = tmp_path / "far.tar.zst"
    bundle(str(program), "-o", str(out))
    top = unpack(out, tmp_path / "u") / "far"
    ran = subprocess.run([str(top / "bin" / "far")], capture_output=True, text=True)
    assert (ran.returncode, ran.stdout) == (0, "7\n"), ran.stderr


def test_a_library_that_needs_itself(tmp_path: Path, c_lib) -> None:
    """DT_NEEDED libself.so inside libself.so: loaded once, by ld.so and by us."""
    libs = tmp_path / "libs"
    first = c_lib(libs / "libself.so", "int me(void) { return 3; }", "-Wl,-soname,libself.so")
    relinked = c_lib(libs / "libself2.so", "int me(void) { return 3; }",
                     "-Wl,-soname,libself.so", "-Wl,--no-as-needed", f"-L{libs}", "-lself")
    relinked.replace(first)
    needed = subprocess.run(["readelf", "-d", str(first)], capture_output=True, text=True).stdout
    assert "Shared library: [libself.so]" in needed  # the premise
    program = gcc(tmp_path / "selfish", '#include <stdio.h>\nint me(void);\n'
                  'int main(void) { printf("%d\\n", me()); return 0; }',
                  f"-L{libs}", "-lself", f"-Wl,-rpath,{libs}")
    out = tmp_path / "selfish.tar.zst"
    bundle(str(program), "-o", str(out))
    top = unpack(out, tmp_path / "u") / "selfish"
    assert sorted(p.name for p in (top / "lib").iterdir() if p.name.startswith("libself")) == [
        "libself.so"]
    ran = subprocess.run([str(top / "bin" / "selfish")], capture_output=True, text=True)
    assert (ran.returncode, ran.stdout) == (0, "3\n"), ran.stderr


def test_a_closure_of_500_generated_libraries(tmp_path: Path) -> None:
    """A binary tree of 500 libraries (lib_i needs lib_2i+1 and lib_2i+2): resolved,
    bundled and run; time and peak memory are printed for the record."""
    compiler = need_tool("gcc")
    libs = tmp_path / "libs"
    libs.mkdir()
    count = 500
    for index in reversed(range(count)):
        children = [c for c in (2 * index + 1, 2 * index + 2) if c < count]
        calls = " + ".join(f"f{c}()" for c in children) or "0"
        source = libs / f"l{index}.c"
        source.write_text("".join(f"int f{c}(void);\n" for c in children)
                          + f"int f{index}(void) {{ return 1 + {calls}; }}\n")
        subprocess.run([compiler, "-shared", "-fPIC", "-o", str(libs / f"libg{index}.so"),
                        str(source), f"-Wl,-soname,libg{index}.so", f"-L{libs}",
                        *(f"-lg{c}" for c in children)], check=True)
    program = gcc(tmp_path / "forest", '#include <stdio.h>\nint f0(void);\n'
                  'int main(void) { printf("%d\\n", f0()); return 0; }',
                  f"-L{libs}", "-lg0", f"-Wl,--disable-new-dtags,-rpath,{libs}")
    out = tmp_path / "forest.tar.zst"
    result, seconds, peak = timed_cli(str(program), "-o", str(out))
    assert result.returncode == 0, result.stderr
    print(f"bundle of a 500-library closure: {seconds:.1f} s, peak RSS {peak / 1024:.0f} MiB")
    top = unpack(out, tmp_path / "u") / "forest"
    assert len(list((top / "lib").glob("libg*.so"))) == count
    shutil.rmtree(libs)
    ran = subprocess.run([str(top / "bin" / "forest")], capture_output=True, text=True)
    assert (ran.returncode, ran.stdout) == (0, f"{count}\n"), ran.stderr


# --- the output ----------------------------------------------------------------------------


def test_a_full_disk_leaves_nothing(tmp_path: Path) -> None:
    """A 1 MiB tmpfs cannot hold sqlite3's artifact: exit 3, the tmpfs stays empty."""
    need_root()
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)], check=True)
    try:
        result = run_cli("/usr/bin/sqlite3", "-o", str(small / "sqlite3.tar.zst"))
        assert_one_line_error(result, 3, "No space left on device")
        assert list(small.iterdir()) == []
        directory = run_cli("/usr/bin/sqlite3", "-o", f"{small}/tree/")
        assert_one_line_error(directory, 3, "No space left on device")
        assert list(small.iterdir()) == []
    finally:
        subprocess.run(["umount", str(small)], check=False)


def test_two_builds_racing_for_one_out(tmp_path: Path) -> None:
    """Started together, writing the same OUT: whichever wins, OUT is one whole artifact
    and OUT.sha256 is its checksum. The same program with two SOURCE_DATE_EPOCHs: equal
    work, so the two finish close together, and different bytes, so a mix would show."""
    program = gcc(tmp_path / "src" / "same", HELLO)
    out = tmp_path / "same.tar.zst"
    base = {**os.environ, "PYTHONPATH": str(REPO)}
    winners = set()
    for _ in range(8):
        runs = [subprocess.Popen([sys.executable, "-m", "bundler", str(program), "-o",
                                  str(out)], stderr=subprocess.PIPE, text=True,
                                 env={**base, "SOURCE_DATE_EPOCH": epoch})
                for epoch in ("1000000000", "2000000000")]
        codes = [run.wait(timeout=120) for run in runs]
        assert all(code == 0 for code in codes), [run.stderr.read() for run in runs]
        digest = (tmp_path / "same.tar.zst.sha256").read_text().split()[0]
        assert digest == subprocess.run(["sha256sum", str(out)], capture_output=True,
                                        text=True).stdout.split()[0]
        check = tmp_path / "check"
        shutil.rmtree(check, ignore_errors=True)
        unpacked = unpack_artifact(str(out), str(check))
        manifest = load_manifest(unpacked.top, str(out))
        assert check_tree(unpacked.top, manifest, unpacked.modes).problems == ()
        for suffix in (".cdx.json", ".spdx.json"):  # beside OUT: from the same winner
            inside = Path(unpacked.top, ".bundle", "sbom" + suffix).read_bytes()
            assert (tmp_path / f"same.tar.zst{suffix}").read_bytes() == inside
        winners.add(digest[:12])
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            "check", "same.tar.zst", "same.tar.zst.cdx.json", "same.tar.zst.sha256",
            "same.tar.zst.spdx.json", "src"]
    print(f"winners over 8 races (archive digests): {sorted(winners)}")


# --- the launcher --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["native", "sh"])
@pytest.mark.parametrize("where", ["new\nline/dir", "-dash/-x", "dollar $HOME/`x`"])
def test_launcher_under_hostile_install_paths(tmp_path: Path, where: str, kind: str) -> None:
    program = gcc(tmp_path / "hello", HELLO)
    out = tmp_path / "h.tar.zst"
    bundle(str(program), "-o", str(out), "--launcher-type", kind)
    place = tmp_path / where
    top = unpack(out, place) / "hello"
    launcher = str(top / "bin" / "hello")
    for argv0 in (launcher, os.path.relpath(launcher, tmp_path)):
        relative = not argv0.startswith("/")
        call = ("./" + argv0) if relative else argv0
        ran = subprocess.run([call, "-x", "new\nline"], capture_output=True, text=True,
                             cwd=tmp_path)
        assert (ran.returncode, ran.stdout) == (0, f"[{call}][-x][new\nline]\n"), ran.stderr


@pytest.mark.parametrize("kind", ["native", "sh"])
def test_launcher_with_ifs_and_cdpath_set(tmp_path: Path, kind: str) -> None:
    program = gcc(tmp_path / "hello", HELLO)
    out = tmp_path / "h.tar.zst"
    bundle(str(program), "-o", str(out), "--launcher-type", kind)
    top = unpack(out, tmp_path / "with space") / "hello"
    (tmp_path / "decoy" / "bin").mkdir(parents=True)
    env = {"PATH": "/usr/bin:/bin", "IFS": "/ e", "CDPATH": str(tmp_path / "decoy")}
    ran = subprocess.run([str(top / "bin" / "hello"), "a b"], capture_output=True,
                         text=True, env=env, cwd=tmp_path)
    assert (ran.returncode, ran.stdout) == (0, f"[{top / 'bin' / 'hello'}][a b]\n"), ran.stderr


def test_launcher_on_a_read_only_file_system(tmp_path: Path) -> None:
    need_root()
    program = gcc(tmp_path / "hello", HELLO)
    out = tmp_path / "h.tar.zst"
    bundle(str(program), "-o", str(out))
    tree = unpack(out, tmp_path / "tree")
    mounted = tmp_path / "ro"
    mounted.mkdir()
    subprocess.run(["mount", "--bind", str(tree), str(mounted)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(mounted)], check=True)
        assert not os.access(mounted / "hello" / "bin", os.W_OK)
        launcher = str(mounted / "hello" / "bin" / "hello")
        ran = subprocess.run([launcher, "ro"], capture_output=True, text=True)
        assert (ran.returncode, ran.stdout) == (0, f"[{launcher}][ro]\n"), ran.stderr
    finally:
        subprocess.run(["umount", str(mounted)], check=False)


@pytest.mark.parametrize("kind", ["native", "sh"])
def test_launcher_without_proc(tmp_path: Path, kind: str) -> None:
    """No /proc in the root: not even at its prefix can the program be exec'd directly
    ($ORIGIN needs /proc/self/exe), so the launcher starts the loader, with the library
    path given."""
    need_root()
    program = gcc(tmp_path / "hello", HELLO)
    out = tmp_path / "h.tar.zst"
    bundle(str(program), "-o", str(out), "--launcher-type", kind)
    with empty_root(tmp_path) as root:
        subprocess.run(["umount", "-l", str(root / "proc")], check=True)
        unpack(out, root / "opt" / "hello", strip=True)
        chroot = shutil.which("chroot") or "/usr/sbin/chroot"
        ran = subprocess.run([chroot, str(root), "/opt/hello/bin/hello", "x"],
                             capture_output=True, text=True, env={"PATH": "/bin"})
        assert (ran.returncode, ran.stdout) == (0, "[/opt/hello/bin/hello][x]\n"), ran.stderr

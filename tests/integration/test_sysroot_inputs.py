"""`--sysroot` and where things come from: the program (the root's copy of a host path, or an
error), the dirs a missing library was searched in (inside the root, said so), and another
architecture's libraries installed on this machine through Debian multiarch.

The multiarch tests need `libsqlite3-dev:arm64` (scripts/test adds the arm64 architecture
and installs it; it brings libc6:arm64, so `/` holds the aarch64 loader too).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from support.cli import assert_one_line_error, run_cli
from support.needs import need, need_tool
from support.roots import debian11_tree, need_root

from bundler.errors import InputError
from bundler.inputs import sysroot_input
from bundler.sysroot import Sysroot

CROSS_ROOT = "/usr/aarch64-linux-gnu"
MULTIARCH_SQLITE = "/usr/lib/aarch64-linux-gnu/libsqlite3.so"
HOST_SQLITE3 = "/usr/bin/sqlite3"

SQLITE_VERSION = r"""
#include <stdio.h>
#include <sqlite3.h>
int main(void) { printf("sqlite %s\n", sqlite3_libversion()); return 0; }
"""


def x86_64_root(where: Path) -> Path:
    """A root with this machine's x86-64 loader and libc only (no programs)."""
    root = where / "root"
    (root / "lib64").mkdir(parents=True)
    (root / "lib/x86_64-linux-gnu").mkdir(parents=True)
    shutil.copy("/lib64/ld-linux-x86-64.so.2", root / "lib64")
    shutil.copy("/lib/x86_64-linux-gnu/libc.so.6", root / "lib/x86_64-linux-gnu")
    return root


def arm64_sqlite_program(where: Path) -> Path:
    """An aarch64 program linked against the multiarch libsqlite3:arm64."""
    compiler = need_tool("aarch64-linux-gnu-gcc")
    need(os.path.exists(MULTIARCH_SQLITE), "libsqlite3-dev:arm64 is not installed (multiarch)")
    source = where / "sqlite-version.c"
    source.write_text(SQLITE_VERSION)
    program = where / "sqlite-version"
    subprocess.run([compiler, "-O2", "-o", str(program), str(source),
                    "-L/usr/lib/aarch64-linux-gnu", "-lsqlite3"], check=True)
    return program


def manifest_of(artifact: Path) -> dict:
    with tarfile.open(artifact) as archive:
        member = next(m for m in archive.getmembers()
                      if m.name.endswith(".bundle/manifest.json"))
        handle = archive.extractfile(member)
        assert handle is not None
        return json.loads(handle.read())


# -- the program: the root's copy of a host path, or an error ------------------------------------

def test_host_program_missing_from_the_sysroot_is_an_error(tmp_path: Path) -> None:
    """The issue's case: this machine's sqlite3 with the root's libraries mixes two builds."""
    need(os.path.exists(HOST_SQLITE3), "sqlite3 is not installed")
    root = x86_64_root(tmp_path)
    out = tmp_path / "sqlite3.tar.zst"
    result = run_cli(HOST_SQLITE3, "--sysroot", str(root), "-o", str(out))
    assert_one_line_error(result, 2, HOST_SQLITE3, str(root), "mix two builds",
                          "SQLite header and source version mismatch")
    assert not out.exists()
    assert_one_line_error(run_cli("inspect", "--sysroot", str(root), HOST_SQLITE3), 2,
                          HOST_SQLITE3, str(root), "mix two builds")


def test_host_plugin_missing_from_the_sysroot_is_an_error(tmp_path: Path) -> None:
    libsqlite = Path("/usr/lib/x86_64-linux-gnu/libsqlite3.so.0")
    need(libsqlite.exists(), "libsqlite3-0 is not installed")
    root = x86_64_root(tmp_path)
    program = tmp_path / "own"  # the user's own build, outside the system dirs: taken as given
    shutil.copy("/usr/bin/true", program)
    result = run_cli(str(program), "--add", str(libsqlite), "--sysroot", str(root), "-o",
                     str(tmp_path / "own.tar.zst"))
    assert_one_line_error(result, 2, str(libsqlite), "--add object", str(root))


def test_host_program_is_taken_from_the_sysroot_when_it_has_it(tmp_path: Path) -> None:
    """`bundle /usr/bin/ls --sysroot DEBIAN11`: Debian 11's ls (8.32, glibc 2.31), said so;
    this machine's ls needs GLIBC_2.34 and would fail with the bundled 2.31."""
    tree = debian11_tree()
    out = tmp_path / "ls.tar.gz"
    result = run_cli("/usr/bin/ls", "--sysroot", str(tree), "-o", str(out),
                     "--launcher-type", "sh")
    assert result.returncode == 0, result.stderr
    assert (f"bundle: note: /usr/bin/ls: using {tree}/usr/bin/ls, the sysroot's copy"
            in result.stderr.splitlines())
    manifest = manifest_of(out)
    assert manifest["glibc"] == "2.31"
    # The root's files, named as the root has them (not where this host keeps it).
    sources = [f["source"] for f in manifest["files"] if f.get("source")]
    assert sources and all(os.path.isfile(f"{tree}{source}") for source in sources)
    subprocess.run(["tar", "-xzf", str(out), "-C", str(tmp_path)], check=True)
    ran = subprocess.run([str(tmp_path / "ls/bin/ls"), "--version"], capture_output=True,
                         text=True)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith("ls (GNU coreutils) 8.32")
    shown = run_cli("inspect", "--json", "--sysroot", str(tree), "/usr/bin/ls")
    assert shown.returncode == 0, shown.stderr
    assert "the sysroot's copy" in shown.stderr


def test_which_file_an_input_path_names(tmp_path: Path) -> None:
    """Inside the root or outside the system dirs: as given. A system path the root has:
    the root's copy, through the root's own absolute symlinks (never this machine's file)."""
    root = tmp_path / "root"
    (root / "usr/bin").mkdir(parents=True)
    (root / "opt").mkdir()
    (root / "opt/real-sh").write_bytes(b"\x7fELF root's own")
    (root / "usr/bin/sh").symlink_to("/opt/real-sh")  # absolute: re-rooted, not the host's
    sysroot = Sysroot(str(root))
    inside = str(root / "opt/real-sh")
    assert sysroot_input(inside, sysroot, "program").path == inside
    own = tmp_path / "build/prog"
    assert sysroot_input(str(own), sysroot, "program").note is None
    taken = sysroot_input("/usr/bin/sh", sysroot, "program")
    assert taken.path == str(root / "opt/real-sh")
    assert taken.note == f"/usr/bin/sh: using {root}/opt/real-sh, the sysroot's copy"
    with pytest.raises(InputError) as caught:
        sysroot_input("/usr/bin/env", sysroot, "program")
    assert "mix two builds" in caught.value.message
    assert sysroot_input("/usr/bin/env", Sysroot("/"), "program").path == "/usr/bin/env"
    cross = "/usr/aarch64-linux-gnu/lib/libc.so.6"  # a cross root's file is not the host's
    if os.path.exists(cross):
        assert sysroot_input(cross, sysroot, "program").path == cross


# -- the searched dirs are said to be inside the root ------------------------------------------

def test_missing_library_names_the_sysroot_it_was_searched_in(tmp_path: Path) -> None:
    need(os.path.isdir(CROSS_ROOT), "libc6-arm64-cross is not installed")
    compiler = need_tool("aarch64-linux-gnu-gcc")
    (tmp_path / "gone.c").write_text("int gone(void) { return 1; }\n")
    subprocess.run([compiler, "-shared", "-fPIC", "-o", str(tmp_path / "libgone.so"),
                    str(tmp_path / "gone.c")], check=True)
    (tmp_path / "main.c").write_text("int gone(void); int main(void) { return gone(); }\n")
    program = tmp_path / "needs-gone"
    subprocess.run([compiler, "-o", str(program), str(tmp_path / "main.c"),
                    f"-L{tmp_path}", "-lgone"], check=True)
    result = run_cli("inspect", "--sysroot", CROSS_ROOT, "--library-path", "/opt/mine",
                     str(program))
    assert_one_line_error(result, 2, "libgone.so: not found",
                          f"searched in the sysroot {CROSS_ROOT}: /opt/mine, ")
    if os.path.isdir("/usr/lib/aarch64-linux-gnu"):  # multiarch: this machine's, said so
        assert result.stderr.rstrip().endswith(
            "/usr/lib, /lib/aarch64-linux-gnu (on this machine), "
            "/usr/lib/aarch64-linux-gnu (on this machine)"), result.stderr
    host = run_cli("inspect", str(program))
    if "/lib/ld-linux-aarch64.so.1" in host.stderr:  # no libc6:arm64: the loader is missing
        return
    assert_one_line_error(host, 2, "libgone.so: not found; searched: ",
                          "/usr/lib/aarch64-linux-gnu")  # `/`: no sysroot to name
    assert "sysroot" not in host.stderr and "on this machine" not in host.stderr


# -- another architecture's libraries through Debian multiarch ----------------------------------

@pytest.mark.parametrize("sysroot", ["/", CROSS_ROOT], ids=["host-root", "cross-root"])
def test_multiarch_library_is_bundled_and_runs_under_qemu(tmp_path: Path, sysroot: str) -> None:
    """An arm64 program linked against libsqlite3:arm64 installed through multiarch: found
    with `/` (libc6:arm64's loader searches the multiarch dirs) and with the cross root
    (this machine's multiarch dirs after the root's, named in a note); bundled, it passes
    `bundle verify` under qemu."""
    need(os.path.isdir(CROSS_ROOT), "libc6-arm64-cross is not installed")
    program = arm64_sqlite_program(tmp_path)
    shown = run_cli("inspect", "--json", "--sysroot", sysroot, str(program))
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    sqlite = next(lib for lib in report["libraries"] if lib["soname"] == "libsqlite3.so.0")
    assert sqlite["host_path"].startswith("/usr/lib/aarch64-linux-gnu/")
    libc = next(lib for lib in report["libraries"] if lib["soname"] == "libc.so.6")
    if sysroot == CROSS_ROOT:
        assert sqlite["found_via"] == "multiarch"
        assert libc["host_path"].startswith(CROSS_ROOT + "/")  # the root's own come first
        assert any("this machine's multiarch dir" in note and "libsqlite3.so.0" in note
                   for note in report["notes"]), report["notes"]
    else:
        assert sqlite["found_via"] in ("cache", "default")
        assert libc["host_path"].startswith("/usr/lib/aarch64-linux-gnu/")
    out = tmp_path / "sqlite-version.tar.gz"
    built = run_cli(str(program), "--sysroot", sysroot, "-o", str(out))
    assert built.returncode == 0, built.stderr
    assert "lib/libsqlite3.so.0" in {f["path"] for f in manifest_of(out)["files"]}
    need_root()
    need_tool("qemu-aarch64-static")
    verified = run_cli("verify", str(out), "--emulator", "qemu-aarch64-static",
                       "--expect-output", r"^sqlite 3\.")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "PASS  under qemu-aarch64-static" in verified.stdout


def test_a_full_root_gets_no_multiarch_dirs_of_this_machine(tmp_path: Path) -> None:
    """A root with its own multiarch layout is complete in itself: this machine's
    libsqlite3:arm64 is not taken into it, and the error names only the root's dirs."""
    need(os.path.isdir(CROSS_ROOT), "libc6-arm64-cross is not installed")
    program = arm64_sqlite_program(tmp_path)
    root = tmp_path / "arm64-root"
    libdir = root / "lib/aarch64-linux-gnu"
    libdir.mkdir(parents=True)
    for name in ("ld-linux-aarch64.so.1", "libc.so.6", "libm.so.6"):
        shutil.copy(f"{CROSS_ROOT}/lib/{name}", libdir)
    (root / "lib/ld-linux-aarch64.so.1").symlink_to("aarch64-linux-gnu/ld-linux-aarch64.so.1")
    result = run_cli("inspect", "--sysroot", str(root), str(program))
    assert_one_line_error(result, 2, "libsqlite3.so.0: not found",
                          f"searched in the sysroot {root}: /lib/aarch64-linux-gnu")
    assert "on this machine" not in result.stderr

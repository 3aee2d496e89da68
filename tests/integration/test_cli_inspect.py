"""`bundle inspect` through the real command line: output, JSON shape, and every error.

Each error must be one line on stderr with exit code 2 and no traceback.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from support.cli import assert_one_line_error, run_cli
from support.needs import need, need_tool
from support.toolchain import gcc

HELLO = '#include <stdio.h>\nint main(void){puts("hello");return 0;}\n'
USES_NEW_GLIBC = r"""
#include <stdio.h>
#include <sys/random.h>
#include <threads.h>
int main(void){ char b[4]; getrandom(b, sizeof b, 0); thrd_t t; (void)t; puts("ok"); return 0; }
"""


@pytest.fixture(scope="module")
def hello(tmp_path_factory) -> Path:
    return gcc(tmp_path_factory.mktemp("hello") / "hello", HELLO)


def objdump_glibc_versions(path: Path) -> dict[str, set[str]]:
    """GLIBC_x.y -> imported symbols, as binutils' objdump -T reports them."""
    out = subprocess.run([need_tool("objdump"), "-T", str(path)], capture_output=True,
                         text=True, check=True).stdout
    versions: dict[str, set[str]] = {}
    for line in out.splitlines():
        match = re.search(r"\*UND\*\s+\S+\s+(?:\(?(GLIBC_[\d.]+)\)?)\s+(\S+)$", line)
        if match:
            versions.setdefault(match.group(1), set()).add(match.group(2))
    return versions


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.removeprefix("GLIBC_").split("."))


def test_json_has_the_documented_fields(hello: Path) -> None:
    result = run_cli("inspect", "--json", str(hello))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["static"] is False
    assert report["loader"]["path"] == "/lib64/ld-linux-x86-64.so.2"
    assert report["loader"]["realpath"] == os.path.realpath("/lib64/ld-linux-x86-64.so.2")
    (libc,) = report["libraries"]
    assert libc["soname"] == "libc.so.6"
    assert libc["found_via"] == "cache"
    assert os.path.realpath(libc["path"]) == os.path.realpath("/lib/x86_64-linux-gnu/libc.so.6")
    assert libc["glibc"] is True
    assert report["arch"] == "x86-64"
    assert report["requirements"]["min_kernel"].startswith("Linux ")


def test_glibc_required_matches_objdump(tmp_path: Path) -> None:
    program = gcc(tmp_path / "newglibc", USES_NEW_GLIBC)
    versions = objdump_glibc_versions(program)
    highest = max(versions, key=version_key)
    report = json.loads(run_cli("inspect", "--json", str(program)).stdout)
    assert report["glibc_required"] == highest.removeprefix("GLIBC_")
    forced = report["requirements"]["program_glibc"]["forced_by"]
    assert {s for f in forced for s in f["symbols"]} == versions[highest]
    libc_release = subprocess.run(["/lib/x86_64-linux-gnu/libc.so.6"], capture_output=True,
                                  text=True).stdout
    assert f"version {report['requirements']['bundled_glibc']}" in libc_release


def test_text_shows_tree_reasons_and_requirements() -> None:
    result = run_cli("inspect", "/usr/bin/ls")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "interpreter  /lib64/ld-linux-x86-64.so.2" in text
    assert re.search(r"libc\.so\.6 => \S+.*\[ld\.so\.cache\] \(glibc\)", text)
    assert "glibc needed to run unbundled" in text
    assert re.search(r"glibc that would be bundled: \d+\.\d+ \(/\S+/libc\.so\.6\)", text)
    assert "minimum kernel: Linux" in text


def test_static_program_says_static_and_contents(tmp_path: Path) -> None:
    source = ('#include <netdb.h>\n#include <stdio.h>\nint main(void){struct addrinfo *r;'
              'return getaddrinfo("localhost", 0, 0, &r);}\n')
    program = gcc(tmp_path / "static-nss", source, "-static")
    subprocess.run([need_tool("strip"), str(program)], check=True)
    result = run_cli("inspect", str(program))
    assert result.returncode == 0, result.stderr
    assert "statically linked" in result.stdout
    assert "glibc (linked in)" in result.stdout
    assert "NSS" in result.stdout
    report = json.loads(run_cli("inspect", "--json", str(program)).stdout)
    assert report["static"] is True and report["libraries"] == [] and report["loader"] is None
    assert report["static_contents"] == {"libc": "glibc", "go_runtime": False, "nss": True}
    clean = gcc(tmp_path / "static-clean", HELLO, "-static")
    report = json.loads(run_cli("inspect", "--json", str(clean)).stdout)
    assert report["static_contents"]["nss"] is False


def test_missing_library_names_the_chain(tmp_path: Path) -> None:
    lib = gcc(tmp_path / "libgone.so.1", "int gone(void){return 1;}\n", "-Wl,-soname,libgone.so.1",
              shared=True)
    program = gcc(tmp_path / "needsgone", "int gone(void);int main(void){return gone();}\n",
                  str(lib))
    lib.unlink()
    result = run_cli("inspect", str(program))
    assert_one_line_error(result, 2, "needsgone -> libgone.so.1: not found; searched:")
    allowed = run_cli("inspect", "--json", "--allow-missing", str(program))
    assert allowed.returncode == 0
    (unresolved,) = json.loads(allowed.stdout)["unresolved"]
    assert unresolved["chain"] == ["needsgone"] and unresolved["name"] == "libgone.so.1"


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda d: d / "nope", ("no such file",)),
        (lambda d: d, ("is a directory",)),
        (lambda d: _write(d / "text", b"just text\n"), ("not an ELF file",)),
        (lambda d: _write(d / "script", b"#!/bin/sh\necho hi\n"), ("is a script", "#!/bin/sh")),
        (lambda d: _write(d / "empty", b""), ("not an ELF file",)),
        (lambda d: _cut(d / "cut40", 40), ("truncated or corrupt ELF",)),
        (lambda d: _cut(d / "cuthalf", None), ("truncated or corrupt ELF",)),
        (lambda d: _write(d / "junk", b"\x7fELF" + os.urandom(4000)), ("ELF",)),
    ],
    ids=["missing", "directory", "text", "script", "empty", "cut40", "cut-half", "junk"],
)
def test_bad_inputs_are_one_line_errors(tmp_path: Path, make, words) -> None:
    target = make(tmp_path)
    result = run_cli("inspect", str(target))
    assert_one_line_error(result, 2, str(target), *words)


def test_foreign_architecture_is_refused_clearly(tmp_path: Path) -> None:
    foreign = Path("/usr/aarch64-linux-gnu/lib/libm.so.6")
    if not foreign.exists():
        need(False, "libc6-arm64-cross is not installed")
    # A root with only the x86-64 loader: `/` holds the aarch64 one too when libc6:arm64
    # is installed through multiarch, and then the object resolves.
    (tmp_path / "lib64").mkdir()
    shutil.copy("/lib64/ld-linux-x86-64.so.2", tmp_path / "lib64")
    result = run_cli("inspect", "--sysroot", str(tmp_path), str(foreign))
    assert_one_line_error(result, 2, "aarch64", "x86-64", "--sysroot")
    ok = run_cli("inspect", "--json", "--sysroot", "/usr/aarch64-linux-gnu", str(foreign))
    assert ok.returncode == 0, ok.stderr
    report = json.loads(ok.stdout)
    assert report["arch"] == "aarch64"
    assert report["loader"]["host_path"].startswith("/usr/aarch64-linux-gnu/")
    assert all(lib["host_path"].startswith("/usr/aarch64-linux-gnu/")
               for lib in report["libraries"])


def test_relative_library_path_and_bad_sysroot_are_errors(hello: Path) -> None:
    assert_one_line_error(run_cli("inspect", "--library-path", "lib", str(hello)), 2,
                          "--library-path")
    assert_one_line_error(run_cli("inspect", "--sysroot", "/nonexistent-root", str(hello)), 2,
                          "--sysroot")


def test_builders_ld_library_path_is_ignored(tmp_path: Path, hello: Path) -> None:
    decoy = tmp_path / "decoy"
    decoy.mkdir()
    shutil.copy("/lib/x86_64-linux-gnu/libc.so.6", decoy / "libc.so.6")
    result = run_cli("inspect", "--json", str(hello), env={"LD_LIBRARY_PATH": str(decoy)})
    report = json.loads(result.stdout)
    assert not report["libraries"][0]["host_path"].startswith(str(decoy))
    via_option = json.loads(run_cli("inspect", "--json", "--library-path", str(decoy),
                                    str(hello)).stdout)
    assert via_option["libraries"][0]["host_path"] == str(decoy / "libc.so.6")
    assert via_option["libraries"][0]["found_via"] == "library_path"


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _cut(path: Path, size: int | None) -> Path:
    data = Path("/usr/bin/ls").read_bytes()
    path.write_bytes(data[: size if size is not None else len(data) // 2])
    return path


"""The Go build fixtures (tests/support/gobuild.py) are what they claim to be.

Checked with the real tools: readelf for the ELF shape, `go version -m` for the build info,
and running the host-architecture builds here.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from support.gobuild import (
    AGENT_DIR,
    STATIC_TAGS,
    VARIANTS,
    assert_agent_output,
    build_agent,
    go_build,
    go_env,
)
from support.needs import need_tool

AGENT_VARIANTS = [name for name, spec in VARIANTS.items() if spec.fixture == AGENT_DIR]
# The ones this machine runs (arm64-dynamic runs under qemu, in the release tests)
NATIVE_AGENTS = [name for name in AGENT_VARIANTS if "GOARCH" not in dict(VARIANTS[name].env)]
STATIC = ["static-notags", "static-tags"]
NSS_WARNINGS = ["getaddrinfo", "getpwuid_r", "getpwnam_r", "getgrgid_r", "getgrouplist"]


def readelf(*args: str) -> str:
    tool = need_tool("readelf")
    return subprocess.run([tool, "-W", *args], capture_output=True, text=True,
                          check=True).stdout


def go_version_m(binary: Path) -> str:
    go = need_tool("go")
    result = subprocess.run([go, "version", "-m", str(binary)], capture_output=True,
                            text=True, env=go_env())
    assert result.returncode == 0, result.stderr
    return result.stdout


def run_agent(binary: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_builds_and_has_build_info(variant):
    build = go_build(variant)
    assert build.path.is_file() and os.access(build.path, os.X_OK)
    info = go_version_m(build.path)
    fixture = VARIANTS[variant].fixture.name
    assert f"\tpath\texample.com/{fixture}\n" in info
    if fixture == "myagent":
        assert "\tdep\tgithub.com/mattn/go-sqlite3\tv1.14." in info
        assert "\t=>\t/usr/share/gocode/src/github.com/mattn/go-sqlite3\t" in info
        assert "\tbuild\tCGO_ENABLED=1\n" in info
    elif fixture == "reexec":  # cgo, no dependencies: dynamically linked
        assert "\tbuild\tCGO_ENABLED=1\n" in info and "\tdep\t" not in info
    else:
        assert "\tbuild\tCGO_ENABLED=0\n" in info


@pytest.mark.parametrize("variant", ["dynamic", "stripped", "trimpath"])
def test_dynamic_variants_are_dynamic(variant):
    binary = build_agent(variant)
    assert "INTERP" in readelf("-l", str(binary))
    needed = readelf("-d", str(binary))
    assert "(NEEDED)" in needed and "libc.so.6" in needed


@pytest.mark.parametrize("variant", NATIVE_AGENTS)
def test_agent_runs_here(variant, tmp_path):
    binary = build_agent(variant, tmp_path)
    version = run_agent(binary, "--version")
    assert (version.returncode, version.stdout) == (0, "myagent 1.0\n")
    result = run_agent(binary)
    assert result.returncode == 0, result.stdout + result.stderr
    assert_agent_output(result.stdout, binary)


@pytest.mark.parametrize("variant", STATIC)
def test_static_variants_are_static(variant):
    binary = build_agent(variant)
    assert "INTERP" not in readelf("-l", str(binary))
    assert "(NEEDED)" not in readelf("-d", str(binary))
    assert "-extldflags '-static -lm'" in go_version_m(binary)


def test_static_link_warnings():
    """Without the tags, glibc warns about every NSS caller; with them only SQLite's dlopen
    is left: Debian's go-sqlite3 links the system libsqlite3.a, which was compiled with
    load_extension, so `sqlite_omit_load_extension` cannot remove `unixDlOpen`."""
    notags = go_build("static-notags").log
    for name in NSS_WARNINGS:
        assert f"warning: Using '{name}' in statically linked" in notags, notags
    tags = go_build("static-tags").log
    for name in NSS_WARNINGS:
        assert f"'{name}'" not in tags, tags
    assert "in function `unixDlOpen'" in tags
    assert "warning: Using 'dlopen' in statically linked" in tags


def test_build_info_shows_tags_and_trimpath():
    assert f"\tbuild\t-tags={STATIC_TAGS}\n" in go_version_m(build_agent("static-tags"))
    assert "-tags=" not in go_version_m(build_agent("static-notags"))
    trimmed = go_version_m(build_agent("trimpath"))
    assert "\tbuild\t-trimpath=true\n" in trimmed


def test_stripped_has_no_symbols():
    sections = readelf("-S", str(build_agent("stripped")))
    assert ".symtab" not in sections
    assert ".symtab" in readelf("-S", str(build_agent("dynamic")))


def test_386_is_elf32():
    header = readelf("-h", str(build_agent("386-purego")))
    assert "ELF32" in header and "Intel 80386" in header


def test_s390x_is_big_endian():
    header = readelf("-h", str(build_agent("s390x-purego")))
    assert "ELF64" in header and "big endian" in header and "S/390" in header


def test_second_build_is_cached_and_fixture_untouched(tmp_path):
    before = sorted(p.name for p in AGENT_DIR.iterdir())
    first = go_build("dynamic")
    again = go_build("dynamic")
    assert again.cached and again.path == first.path
    assert again.log == first.log
    copy = build_agent("dynamic", tmp_path)
    assert copy.read_bytes() == first.path.read_bytes() and os.access(copy, os.W_OK)
    assert sorted(p.name for p in AGENT_DIR.iterdir()) == before

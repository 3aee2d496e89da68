"""Agreement with the real loader on every dynamically linked program of this machine.

For each x86-64 executable in /usr/bin and /usr/sbin, the set of real paths that
`bundle inspect --json` lists (loader + libraries) must equal what the host's ld.so maps
with `--list`; CPU-specific hwcaps copies that ld.so prefers on this CPU count as their
baseline. Programs the loader cannot load must be unresolved for us too, by name.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from support.cli import run_cli
from support.needs import need
from support.toolchain import HOST_LOADER, gcc, ld_so_list

from bundler.elf import read_ident
from bundler.errors import BundleError
from bundler.inspection import inspect_program, inspection_json
from bundler.resolve import ResolveOptions
from bundler.sysroot import Sysroot

PROGRAM_DIRS = ("/usr/bin", "/usr/sbin")
SUMMARY: list[str] = []


def host_programs() -> list[str]:
    """Real paths of the x86-64 ELF executables in PROGRAM_DIRS, each once."""
    found: dict[str, None] = {}
    for directory in PROGRAM_DIRS:
        for name in sorted(os.listdir(directory)):
            path = os.path.realpath(os.path.join(directory, name))
            if not os.path.isfile(path) or path in found:
                continue
            try:
                with open(path, "rb") as handle:
                    ident = read_ident(handle.read(64))
            except OSError:
                continue
            if ident and ident.machine == "EM_X86_64" and ident.elf_class == 64:
                found[path] = None
    return list(found)


def loader_view(program: str) -> tuple[set[str], set[str]] | None:
    """(real paths mapped, names not found) per the loader's trace mode, None if static.

    Trace mode (what ldd uses) rather than `--list`: `--list` stops at the first missing
    library with exit 127, trace mode prints `NAME => not found` and goes on.
    """
    result = subprocess.run([HOST_LOADER, program], capture_output=True, text=True,
                            env={"LD_TRACE_LOADED_OBJECTS": "1"})
    text = result.stdout + result.stderr
    if "statically linked" in text or "not a dynamic executable" in text:
        return None
    paths, missing = set(), set()
    for line in result.stdout.splitlines():
        gone = re.match(r"\s*(\S+) => not found", line)
        if gone:
            missing.add(gone.group(1))
            continue
        match = re.search(r"(?:=> )?(/\S+) \(0x", line)
        if match:
            paths.add(os.path.realpath(match.group(1)))
    return paths, missing


def our_view(program: str, sysroot: Sysroot) -> tuple[set[str], set[str], dict[str, str]]:
    """(real paths, unresolved names, hwcaps variant -> baseline) per `inspect --json`."""
    report = inspection_json(inspect_program(program, sysroot, ResolveOptions(allow_missing=True)))
    paths = {os.path.realpath(lib["host_path"]) for lib in report["libraries"]}
    if report["loader"]:
        paths.add(os.path.realpath(report["loader"]["host_path"]))
    variants = {
        os.path.realpath(variant): os.path.realpath(lib["host_path"])
        for lib in report["libraries"] for variant in lib["hwcap_variants"]
    }
    return paths, {u["name"] for u in report["unresolved"]}, variants


@pytest.mark.slow
def test_every_host_program_agrees_with_ld_so() -> None:
    programs = host_programs()
    need(len(programs) > 50, "too few programs in /usr/bin to compare")
    sysroot = Sysroot("/")
    checked, disagreements = 0, []
    for program in programs:
        theirs = loader_view(program)
        if theirs is None:
            continue
        try:
            mine, unresolved, variants = our_view(program, sysroot)
        except BundleError as exc:
            disagreements.append(f"{program}: we fail: {exc.message}")
            continue
        checked += 1
        their_paths = {variants.get(path, path) for path in theirs[0]}
        if mine != their_paths or unresolved != theirs[1]:
            disagreements.append(
                f"{program}: only ours {sorted(mine - their_paths)}, only ld.so "
                f"{sorted(their_paths - mine)}, unresolved ours {sorted(unresolved)} "
                f"ld.so {sorted(theirs[1])}"
            )
    SUMMARY.append(f"agreement with the loader (ld.so trace mode): {checked} programs checked, "
                   f"{len(disagreements)} disagreements")
    SUMMARY.extend(disagreements)
    assert checked > 50
    assert not disagreements, "\n".join(disagreements)


def test_cli_json_lists_what_ld_so_maps() -> None:
    """The same comparison through the real command line, on a few well-known programs."""
    for program in ("/usr/bin/ls", "/usr/bin/curl", "/usr/bin/sqlite3", "/usr/bin/python3"):
        real = os.path.realpath(program)
        if not Path(real).exists() or loader_view(real) is None:
            continue
        result = run_cli("inspect", "--json", real)
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        listed = {os.path.realpath(lib["host_path"]) for lib in report["libraries"]}
        listed.add(os.path.realpath(report["loader"]["host_path"]))
        theirs = loader_view(real)
        assert theirs is not None
        assert listed == theirs[0], program


def test_i386_program_agrees_with_the_i386_loader(tmp_path: Path) -> None:
    """Another class and loader on the same machine: cache flags and system dirs differ."""
    i386_loader = "/lib/ld-linux.so.2"
    need(os.path.exists(i386_loader), "the i386 loader (gcc-multilib) is not installed")
    program = gcc(tmp_path / "hello32", "#include <math.h>\n#include <stdio.h>\n"
                  "int main(int c, char **v){printf(\"%f\\n\", cos(c)); return 0;}\n",
                  "-m32", "-Wl,--no-as-needed", "-lm")
    report = inspection_json(inspect_program(str(program), Sysroot("/"), ResolveOptions()))
    assert report["arch"] == "i386"
    ours = {os.path.realpath(lib["host_path"]) for lib in report["libraries"]}
    ours.add(os.path.realpath(report["loader"]["host_path"]))
    assert {lib["soname"] for lib in report["libraries"]} == {"libm.so.6", "libc.so.6"}
    assert ours == ld_so_list(program, loader=i386_loader)

"""Symbols and debug info survive patching (issue 13, item 6).

patch.py rewrites PT_INTERP and DT_RPATH with LIEF and puts back everything else. Checked on
real programs: the Go agent (with and without .symtab), Debian's sqlite3, gcc C programs with
-g, stripped, non-PIE, and one with no room left between its segments for the grown program
header table, a g++ program, and a shared library with DT_RUNPATH. Every section the patch
does not change on purpose keeps its header and bytes (read here with pyelftools, not with
the code under test); `nm`, `nm -D`, `readelf --debug-dump=info` and gdb see what they see
on the input; the bundled programs run; `bundle compare` on the artifact keeps every cause.
The interpreter and RPATH values are long, as versioned prefixes make them.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from support.cli import run_cli
from support.gobuild import build_agent
from support.needs import need, need_tool
from support.toolchain import gcc

from bundler.elf import read_section_table
from bundler.patch import PatchError, _changed_sections, patch_copy
from bundler.patch_spec import Patch

LONG_INTERP = "/opt/an-agent-with-a-long-name/lib/.bundle-0123456789abcdef/ld-linux-x86-64.so.2"
LONG_RPATH = ("$ORIGIN/../lib/.bundle-0123456789abcdef:"
              "/opt/an-agent-with-a-long-name/lib/.bundle-0123456789abcdef")
# What the patch changes on purpose: the interpreter path, the dynamic section and its
# strings, and the tables LIEF rebuilds with the strings (symbol order, hashes, versions,
# the relocations that name symbols by index). Nothing a debugger or symbolizer reads.
PATCHED = frozenset({".interp", ".dynamic", ".dynstr", ".dynsym", ".gnu.hash", ".hash",
                     ".gnu.version", ".gnu.version_r", ".gnu.version_d", ".rela.dyn",
                     ".rela.plt", ".rel.dyn", ".rel.plt", ".relr.dyn"})
C_SOURCE = """#include <stdio.h>
#include <math.h>
static int helper(int x) { return x * 3; }
int counter;
int main(int argc, char **argv) {
    counter = helper(argc);
    printf("hello %d %.3f\\n", counter, sqrt(2.0 * argc));
    return 0;
}
"""
CXX_SOURCE = """#include <iostream>
#include <string>
#include <vector>
namespace demo {
struct Greeter {
    std::string name;
    std::string greet() const { return "hi " + name; }
};
}
int main() {
    std::vector<demo::Greeter> all{{"a"}, {"b"}};
    for (const auto &g : all) std::cout << g.greet() << "\\n";
    return 0;
}
"""
LIB_SOURCE = "int lib_value(int x) { return x + 41; }\n"
USE_LIB_SOURCE = """#include <stdio.h>
int lib_value(int);
int main(void) { printf("%d\\n", lib_value(1)); return 0; }
"""
PROGRAMS = ["go-agent", "go-stripped", "sqlite3", "c-debug", "c-stripped", "c-nopie",
            "c-no-gap", "cxx-debug"]
DEBUGGABLE = {"c-debug": "main", "c-nopie": "main", "c-no-gap": "main", "cxx-debug": "main"}


# --- the programs ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("sections")


_built: dict[str, Path] = {}


def program(name: str, workdir: Path) -> Path:
    """The input program `name`, built (once per module) in `workdir`."""
    if name not in _built or not _built[name].exists():
        _built[name] = _build(name, workdir)
    return _built[name]


def _build(name: str, work: Path) -> Path:
    out = work / "inputs" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    if name == "go-agent":
        shutil.copyfile(build_agent("dynamic"), out)
    elif name == "go-stripped":
        shutil.copyfile(build_agent("stripped"), out)
    elif name == "sqlite3":
        need(Path("/usr/bin/sqlite3").is_file(), "sqlite3 is not installed")
        shutil.copyfile("/usr/bin/sqlite3", out)
    elif name == "c-debug":
        gcc(out, C_SOURCE, "-g", "-O1", "-lm")
    elif name == "c-stripped":
        gcc(out, C_SOURCE, "-g", "-lm")
        subprocess.run([need_tool("strip"), str(out)], check=True)
    elif name == "c-nopie":
        gcc(out, C_SOURCE, "-g", "-no-pie", "-lm")
    elif name == "c-no-gap":
        _build_without_gap(out)
    elif name == "cxx-debug":
        source = out.with_suffix(".cc")
        source.write_text(CXX_SOURCE)
        subprocess.run([need_tool("g++"), "-g", "-o", str(out), str(source)], check=True)
    out.chmod(0o755)
    return out


def _build_without_gap(out: Path) -> None:
    """A PIE with debug info whose code segment ends a few bytes before the data segment
    starts in the file, so no program header table fits between them: LIEF's other way
    (a new segment after .bss) is taken. Padded by trial, as the gap depends on gcc."""
    def gap_after_padding(size: int) -> int:
        source = C_SOURCE.replace("int counter;",
                                  f"int counter;\nconst char padding[{size}] = {{1}};")
        gcc(out, source, "-g", "-lm", "-Wl,-z,noseparate-code")
        loads = [s for s in _segments(out) if s["p_type"] == "PT_LOAD"]
        return loads[1]["p_offset"] - (loads[0]["p_offset"] + loads[0]["p_filesz"])

    start = gap_after_padding(1)
    for less in range(16, 1024, 8):
        if 0 < gap_after_padding(max(1, start - less)) < 128:
            return
    need(False, "could not pad a program to leave no gap between its segments")


def _segments(path: Path) -> list:
    with open(path, "rb") as handle:
        return [segment.header for segment in ELFFile(handle).iter_segments()]


# --- what tools see ---------------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    name: str
    kind: str
    flags: int
    address: int
    size: int
    sha256: str  # of the bytes in the file (compressed debug sections as they are)


def sections(path: Path) -> list[Section]:
    with open(path, "rb") as handle:
        elf = ELFFile(handle)
        result = []
        for section in elf.iter_sections():
            header = section.header
            data = b""
            if header["sh_type"] not in ("SHT_NOBITS", "SHT_NULL"):
                handle.seek(header["sh_offset"])
                data = handle.read(header["sh_size"])
            result.append(Section(section.name, str(header["sh_type"]), header["sh_flags"],
                                  header["sh_addr"], header["sh_size"],
                                  hashlib.sha256(data).hexdigest()))
        return result


def assert_sections_kept(source: Path, patched: Path) -> None:
    """Same sections in the same order; all but PATCHED with the same header and bytes."""
    before, after = sections(source), sections(patched)
    assert [s.name for s in after] == [s.name for s in before]
    changed = [old.name for old, new in zip(before, after)
               if old.name not in PATCHED and old != new]
    assert changed == [], f"{patched} changed {changed}"


def tool_output(*argv: str) -> str:
    """What a tool prints about a file: stdout, and stderr with the file's own path taken
    out (`nm` says "FILE: no symbols" there; DWARF names the sources by their paths)."""
    result = subprocess.run([need_tool(argv[0]), *argv[1:]], capture_output=True, text=True)
    return result.stdout + result.stderr.replace(argv[-1], "FILE")


def assert_tools_see_the_same(source: Path, patched: Path) -> None:
    for argv in (["nm"], ["nm", "-D"], ["readelf", "--debug-dump=info"]):
        seen = [tool_output(*argv, str(path)) for path in (source, patched)]
        assert seen[0] == seen[1], f"{' '.join(argv)} differs on {patched}"
    if any(s.name == ".symtab" for s in sections(source)):
        assert tool_output("nm", str(patched)).count("\n") > 10  # not an empty table


def dynamic_values(path: Path) -> tuple[str, str]:
    """(PT_INTERP, DT_RPATH) as readelf prints them."""
    text = tool_output("readelf", "-lW", "-d", str(path))
    interp = re.search(r"Requesting program interpreter: (.*)\]", text)
    rpath = re.search(r"\(RPATH\)\s+Library rpath: \[(.*)\]", text)
    assert rpath is not None and "RUNPATH" not in text, text
    return (interp.group(1) if interp else "", rpath.group(1))


# --- patch_copy, with long values ---------------------------------------------------------


@pytest.mark.parametrize("name", PROGRAMS)
def test_patch_keeps_every_other_section(name: str, workdir: Path, tmp_path: Path) -> None:
    source = program(name, workdir)
    patched = tmp_path / name
    patch_copy(str(source), str(patched), Patch(LONG_INTERP, LONG_RPATH))
    assert dynamic_values(patched) == (LONG_INTERP, LONG_RPATH)
    assert_sections_kept(source, patched)
    assert_tools_see_the_same(source, patched)
    if name == "c-no-gap":  # the table went after .bss, the way taken when no gap fits
        end_of_input = max(s["p_vaddr"] + s["p_memsz"] for s in _segments(source)
                           if s["p_type"] == "PT_LOAD")
        phdr = next(s for s in _segments(patched) if s["p_type"] == "PT_PHDR")
        assert phdr["p_vaddr"] >= end_of_input


def test_patched_library_keeps_every_other_section(tmp_path: Path) -> None:
    """A library that carries a search path of its own gets DT_RPATH (no PT_INTERP)."""
    library = gcc(tmp_path / "libdemo.so", LIB_SOURCE, "-g", "-Wl,-rpath,/somewhere/else",
                  "-Wl,--enable-new-dtags", shared=True)
    (tmp_path / "patched").mkdir()
    patched = tmp_path / "patched" / "libdemo.so"
    patch_copy(str(library), str(patched), Patch(None, LONG_RPATH))
    assert dynamic_values(patched) == ("", LONG_RPATH)
    assert_sections_kept(library, patched)
    assert_tools_see_the_same(library, patched)
    user = gcc(tmp_path / "use", USE_LIB_SOURCE, f"-L{tmp_path}", "-ldemo")
    ran = subprocess.run([str(user)], capture_output=True, text=True,
                         env={**os.environ, "LD_LIBRARY_PATH": str(patched.parent)})
    assert (ran.returncode, ran.stdout) == (0, "42\n"), ran.stderr


def test_verify_names_the_section_that_changed(workdir: Path, tmp_path: Path) -> None:
    source = program("c-debug", workdir)
    patched = tmp_path / "patched"
    patch_copy(str(source), str(patched), Patch(LONG_INTERP, LONG_RPATH))
    before = read_section_table(str(source))
    assert _changed_sections(str(source), str(patched), before) == []
    debug_info = next(s for s in read_section_table(str(patched)).sections
                      if s.name == ".debug_info")
    with open(patched, "r+b") as handle:
        handle.seek(debug_info.offset + debug_info.size // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0xFF]))
    assert _changed_sections(str(source), str(patched), before) == [
        "section .debug_info changed its bytes"]


def test_verify_rejects_lief_moving_the_sections(workdir: Path, tmp_path: Path,
                                                 monkeypatch) -> None:
    """What LIEF does to a PIE by default (every section one page up, DWARF left behind)
    is refused with one line naming a section."""
    import bundler.patch

    monkeypatch.setattr(bundler.patch, "_keep_addresses", lambda *args: None)
    with pytest.raises(PatchError) as caught:
        patch_copy(str(program("c-debug", workdir)), str(tmp_path / "patched"),
                   Patch(LONG_INTERP, LONG_RPATH))
    message = str(caught.value)
    assert "\n" not in message
    assert re.search(r"section \.\S+ changed its header \(and \d+ more sections\)", message)


# --- in an artifact -----------------------------------------------------------------------


def bundled(name: str, workdir: Path) -> Path:
    """The artifact directory of `name`, built with the CLI and installed at its prefix
    (so that libexec/NAME runs directly, as under gdb)."""
    out = workdir / "artifacts"
    top = out / name
    if not (top / "libexec" / name).exists():
        result = run_cli(str(program(name, workdir)), "-o", f"{out}/", "--prefix", str(top))
        assert result.returncode == 0, result.stderr
    return top


def run_input_and_artifact(name: str, workdir: Path) -> list[subprocess.CompletedProcess[str]]:
    top = bundled(name, workdir)
    args, stdin = {"sqlite3": ([":memory:"], "select 6*7;\n")}.get(name, ([], None))
    return [subprocess.run([str(path), *args], input=stdin, capture_output=True, text=True,
                           timeout=60)
            for path in (program(name, workdir), top / "bin" / name)]


@pytest.mark.parametrize("name", PROGRAMS)
def test_bundled_program_keeps_its_sections_and_runs(name: str, workdir: Path) -> None:
    source, top = program(name, workdir), bundled(name, workdir)
    assert_sections_kept(source, top / "libexec" / name)
    assert_tools_see_the_same(source, top / "libexec" / name)
    native, artifact = run_input_and_artifact(name, workdir)
    assert artifact.returncode == native.returncode == 0, artifact.stderr
    if name.startswith("go-"):  # its last line is its own path (/proc/self/exe)
        assert artifact.stdout.splitlines()[:3] == native.stdout.splitlines()[:3]
        assert artifact.stdout.splitlines()[0] == "sqlite: hello"
    else:
        assert artifact.stdout == native.stdout != ""


def gdb(*argv: str) -> str:
    result = subprocess.run([need_tool("gdb"), "-batch", "-nx", *argv], capture_output=True,
                            text=True, timeout=120)
    return result.stdout + result.stderr


@pytest.mark.parametrize("name", sorted(DEBUGGABLE))
def test_gdb_sees_the_same(name: str, workdir: Path) -> None:
    """Same lines, addresses and scopes; a breakpoint at main in the patched program,
    started at its prefix, stops at the same source line as in the input."""
    source, patched = program(name, workdir), bundled(name, workdir) / "libexec" / name
    function = DEBUGGABLE[name]
    queries = ["-ex", f"info line {function}", "-ex", f"info address {function}",
               "-ex", f"info scope {function}"]
    static = [gdb(*queries, str(path)) for path in (source, patched)]
    assert static[0] == static[1]
    assert "starts at address" in static[0]
    stops = []
    for path in (source, patched):
        text = gdb("-ex", f"break {function}", "-ex", "run", "-ex", "continue", str(path))
        need("Breakpoint 1, " in text or "ptrace" not in text, f"gdb cannot run here: {text}")
        stop = re.search(r"^Breakpoint 1, (.*)$", text, re.MULTILINE)
        assert stop is not None and "exited normally" in text, text
        stops.append(re.sub(r"0x[0-9a-f]+", "ADDR", stop.group(1)))
    assert stops[0] == stops[1]
    assert re.search(r"at \S+\.(c|cc):\d+$", stops[1]), stops[1]


def test_gdb_sees_the_go_functions(workdir: Path) -> None:
    source = program("go-agent", workdir)
    patched = bundled("go-agent", workdir) / "libexec" / "go-agent"
    seen = [gdb("-ex", r"info functions ^main\.main$", str(path)) for path in (source, patched)]
    assert seen[0] == seen[1]
    assert "main.main(void);" in seen[1]

"""A patched copy must link as its source does (bundler/loader_view.py, patch._verify).

LIEF rebuilds the tables a new DT_RPATH string moves (.dynstr, .dynsym, the hash, version
and relocation tables), so their bytes are not compared: what they mean to glibc's loader
is. Checked on libraries and programs gcc builds here: LIEF's own copies link as their
sources (RELR, both hash tables, versioned symbols); each change the loader would see,
made by hand in a copy, is named (the oracle for where a table lies is pyelftools, not
the code under test); a relocation LIEF bound to another version of its symbol is put
back, and the library then calls the code it called before (run); past
FULL_CHECK_SYMBOLS symbols only those relocations use are compared.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from support.toolchain import gcc, tool

from bundler import loader_view
from bundler.loader_view import (
    _gnu_hash,
    linking_differences,
    misbound,
    rebind_relocations,
    view_differences,
)
from bundler.patch import patch_copy
from bundler.patch_spec import Patch

TABLES_SOURCE = """#include <stdlib.h>
int exported_value = 7;
int *pointers[4] = {&exported_value, &exported_value + 1, &exported_value + 2, 0};
static int local_value = 3;
int *relative[3] = {&local_value, &local_value, &local_value};
extern char **environ;
char ***env_plus = &environ + 1;
int exported_function(int x) { return x + exported_value + (getenv("X") != 0); }
"""
# `value` at two versions; call_value calls the old one (as libdevmapper's own calls go to
# one of its two dm_task_get_info): LIEF binds the call to the first `value` it finds.
VERSIONED_SOURCES = {
    "lib.c": """int impl_old(void) { return 1; }
int impl_new(void) { return 2; }
__asm__(".symver impl_old,value@V1");
__asm__(".symver impl_new,value@@V2");
""",
    "call.c": """extern int old_value(void);
__asm__(".symver old_value,value@V1");
int call_value(void) { return old_value(); }
""",
}
VERSION_SCRIPT = "V1 { global: value; local: *; };\nV2 { global: value; call_value; } V1;\n"
MAIN_SOURCE = """#include <stdio.h>
int call_value(void);
int main(void) { printf("%d\\n", call_value()); return 0; }
"""
RPATH = Patch(None, "$ORIGIN")


@pytest.fixture(scope="module")
def tables_library(tmp_path_factory) -> Path:
    """A library with RELR, DT_HASH and DT_GNU_HASH, symbol versions (glibc's), RELA
    entries with addends and a PLT entry."""
    out = tmp_path_factory.mktemp("tables") / "libtables.so"
    return gcc(out, TABLES_SOURCE, "-Wl,-z,pack-relative-relocs", "-Wl,--hash-style=both",
               shared=True)


@pytest.fixture(scope="module")
def versioned(tmp_path_factory) -> Path:
    """libvers.so (value@V1, value@@V2, call_value calling value@V1) with a DT_RUNPATH,
    and `main` beside it calling call_value: prints 1."""
    work = tmp_path_factory.mktemp("versioned")
    (work / "lib.map").write_text(VERSION_SCRIPT)
    gcc(work / "libvers.so", VERSIONED_SOURCES, f"-Wl,--version-script={work / 'lib.map'}",
        "-Wl,-rpath,/nowhere", "-Wl,--enable-new-dtags", shared=True)
    gcc(work / "main", MAIN_SOURCE, f"-L{work}", "-lvers", "-Wl,-rpath,$ORIGIN")
    assert run(work / "main") == "1"  # the premise
    return work


def run(program: Path) -> str:
    return subprocess.run([str(program)], capture_output=True, text=True, check=True,
                          env={}).stdout.strip()


def section(path: Path, name: str) -> tuple[int, int, int]:
    """(file offset, size, entry size) of a section, as pyelftools reads the headers."""
    with open(path, "rb") as handle:
        found = ELFFile(handle).get_section_by_name(name)
        assert found is not None, name
        return found["sh_offset"], found["sh_size"], found["sh_entsize"]


def edit(path: Path, offset: int, layout: str, change) -> None:
    """Unpack `layout` at `offset`, pass the fields to `change`, pack its result back."""
    with open(path, "r+b") as handle:
        handle.seek(offset)
        size = struct.calcsize(layout)
        fields = list(struct.unpack(layout, handle.read(size)))
        handle.seek(offset)
        handle.write(struct.pack(layout, *change(fields)))


def dynsym_index(path: Path, name: str, version: str | None = None) -> int:
    with open(path, "rb") as handle:
        elf = ELFFile(handle)
        table = elf.get_section_by_name(".dynsym")
        versions = elf.get_section_by_name(".gnu.version")
        for number, symbol in enumerate(table.iter_symbols()):
            if symbol.name != name:
                continue
            if version is None or versions is None:
                return number
            index = versions.get_symbol(number)["ndx"]
            named = {verdef["vd_ndx"]: next(auxiliaries).name for verdef, auxiliaries in
                     elf.get_section_by_name(".gnu.version_d").iter_versions()}
            if named.get(index if isinstance(index, int) else -1) == version:
                return number
    raise AssertionError(f"{name}@{version} not in {path}")


# --- LIEF's copies ------------------------------------------------------------------------


def test_liefs_copy_of_each_table_links_as_its_source(tables_library: Path,
                                                      tmp_path: Path) -> None:
    """RELR, both hash tables, glibc's symbol versions, addends, the PLT: LIEF rebuilds
    them all, and they mean what the source's meant."""
    copy = tmp_path / "libtables.so"
    patch_copy(str(tables_library), str(copy), RPATH)  # _verify holds it to the view
    assert linking_differences(str(tables_library), str(copy)) == []
    before = loader_view.loader_view(str(tables_library))
    assert len(before.relr) >= 3 and before.relocations and before.plt_relocations
    assert before.gnu_hash_misses == frozenset() and before.sysv_hash_misses == frozenset()
    assert sum(before.symbols.values()) == before.symbol_count >= 8


def test_a_call_to_the_old_version_of_a_name_still_calls_it(versioned: Path,
                                                            tmp_path: Path) -> None:
    """LIEF 0.16.7 to 1.0.0 bind the PLT entry of value@V1 to value@@V2 (the first
    `value`); the patch puts the old binding back, and the copy runs the old code."""
    shutil.copy(versioned / "main", tmp_path / "main")
    patch_copy(str(versioned / "libvers.so"), str(tmp_path / "libvers.so"), RPATH)
    assert "value@V1" in tool("readelf", "-rW", str(tmp_path / "libvers.so"))
    assert run(tmp_path / "main") == "1"


def test_a_relocation_bound_to_the_other_version_is_put_back(versioned: Path,
                                                             tmp_path: Path) -> None:
    """The mis-binding made by hand (whatever LIEF does): r_info naming value@@V2 is
    told, then put back to value@V1, and the library calls the old code again."""
    source = versioned / "libvers.so"
    copy = tmp_path / "libvers.so"
    shutil.copy(source, copy)
    shutil.copy(versioned / "main", tmp_path / "main")
    offset, _, _ = section(copy, ".rela.plt")
    new = dynsym_index(copy, "value", "V2")
    edit(copy, offset, "<QQq", lambda f: [f[0], new << 32 | (f[1] & 0xFFFFFFFF), f[2]])
    assert run(tmp_path / "main") == "2"  # what the mis-binding does
    before = loader_view.loader_view(str(source))
    after = loader_view.loader_view(str(copy), before.hashes)
    assert misbound(before, after)
    (problem,) = view_differences(before, after)
    assert re.fullmatch(
        r"PLT relocation 0 is Relocation\(offset=(\d+), kind=7, symbol=\(b'value', "
        r"\('def', 'V2', '0'\)\), addend=0\) where the source has Relocation\(offset=\1, "
        r"kind=7, symbol=\(b'value', \('def', 'V1', '0'\)\), addend=0\)", problem), problem
    assert rebind_relocations(before, str(copy)) == 1
    assert linking_differences(str(source), str(copy)) == []
    assert copy.read_bytes() == source.read_bytes()
    assert run(tmp_path / "main") == "1"


# --- each change the loader would see, made by hand ---------------------------------------


def _relr(path: Path) -> None:  # the address entry moved one word: LIEF 0.15.1's kind
    offset, _, _ = section(path, ".relr.dyn")
    edit(path, offset, "<Q", lambda f: [f[0] + 8])


def _symbol_value(path: Path) -> None:
    offset, _, entry = section(path, ".dynsym")
    number = dynsym_index(path, "exported_function")
    edit(path, offset + number * entry + 8, "<Q", lambda f: [f[0] + 1])


def _hidden(path: Path) -> None:
    offset, _, _ = section(path, ".gnu.version")
    number = dynsym_index(path, "exported_value")
    edit(path, offset + 2 * number, "<H", lambda f: [f[0] | 0x8000])


def _local(path: Path) -> None:
    offset, _, _ = section(path, ".gnu.version")
    number = dynsym_index(path, "exported_value")
    edit(path, offset + 2 * number, "<H", lambda f: [0])


def _bloom(path: Path) -> None:
    offset, _, _ = section(path, ".gnu.hash")
    edit(path, offset + 16, "<Q", lambda f: [0])  # the first (here only) bloom word


def _sysv_buckets(path: Path) -> None:
    offset, _, _ = section(path, ".hash")
    count = struct.unpack("<I", path.read_bytes()[offset:offset + 4])[0]
    edit(path, offset + 8, f"<{count}I", lambda f: [0] * count)


def _addend(path: Path) -> None:
    offset, size, entry = section(path, ".rela.dyn")
    last = offset + size - entry  # environ + 8
    edit(path, last, "<QQq", lambda f: [f[0], f[1], f[2] + 8])


def _dynamic_entry(path: Path) -> None:
    offset, size, _ = section(path, ".dynamic")
    data = path.read_bytes()
    for at in range(offset, offset + size, 16):
        if struct.unpack("<q", data[at:at + 8])[0] == 12:  # DT_INIT
            edit(path, at, "<qQ", lambda f: [f[0], f[1] + 4])
            return
    raise AssertionError("no DT_INIT")


def _no_dt_null(path: Path) -> None:
    offset, size, _ = section(path, ".dynamic")
    data = path.read_bytes()
    for at in range(offset, offset + size, 16):
        if struct.unpack("<q", data[at:at + 8])[0] == 0:
            edit(path, at, "<qQ", lambda f: [0x6FFFFFFA, 0])  # DT_RELCOUNT, in place of
            # every DT_NULL


@pytest.mark.parametrize(("change", "said"), [
    (_relr, r"RELR address 0 is \d+ where the source has \d+$"),
    (_symbol_value, r"dynamic symbol exported_function@global: value (0x[0-9a-f]+), size "
                    r"\d+, .* became exported_function@global: value (?!\1)"),
    (_hidden, r"dynamic symbol exported_value@global: .* became exported_value@global "
              r"\(hidden\): "),
    (_bloom, r"a lookup through DT_GNU_HASH no longer finds \w+ \(\d+ lost\)$"),
    (_sysv_buckets, r"a lookup through DT_HASH no longer finds \w+ \(\d+ lost\)$"),
    (_addend, r"relocation 8 is Relocation\(.*addend=16\) where the source has "
              r"Relocation\(.*addend=8\)$"),
    (_dynamic_entry, r"dynamic entry \d+ is \(12, \d+\) where the source has \(12, \d+\)$"),
    (_no_dt_null, r"the loader's tables no longer read \(no DT_NULL inside PT_DYNAMIC\)$"),
])
def test_each_change_the_loader_would_see_is_named(tables_library: Path, tmp_path: Path,
                                                   change, said: str) -> None:
    copy = tmp_path / "libtables.so"
    shutil.copy(tables_library, copy)
    assert linking_differences(str(tables_library), str(copy)) == []
    if change is _no_dt_null:
        for _ in range(20):  # every DT_NULL of the table
            change(copy)
    else:
        change(copy)
    problems = linking_differences(str(tables_library), str(copy))
    assert len(problems) == 1 and re.match(said, problems[0]), problems


def test_a_source_the_reader_cannot_read_holds_its_copy_to_nothing(tmp_path: Path) -> None:
    """(patch._verify's other checks still hold it.)"""
    plain = tmp_path / "data.bin"
    plain.write_bytes(b"not ELF at all")
    assert loader_view.loader_view(str(plain)).problem == "not ELF"
    assert linking_differences(str(plain), str(plain)) == []


# --- the hashes ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/lib/x86_64-linux-gnu/libc.so.6", "tables"])
def test_a_sources_hashes_read_from_its_chains_are_the_names_hashes(path: str,
                                                                     tables_library: Path,
                                                                     ) -> None:
    """The source's GNU hashes come from its chain entries, the low bit from the name's
    bytes: each is the hash dl-hash.h computes."""
    view = loader_view.loader_view(str(tables_library) if path == "tables" else path)
    gnu, sysv = view.hashes
    assert len(gnu) >= 5
    assert all(_gnu_hash(name) == value for name, value in gnu.items())
    assert sysv and all(loader_view._sysv_hash(name) == v for name, v in sysv.items())


# --- a table too large to compare whole ---------------------------------------------------


def test_past_full_check_symbols_the_relocated_symbols_and_the_count_are_compared(
        tables_library: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(loader_view, "FULL_CHECK_SYMBOLS", 2)
    copy = tmp_path / "libtables.so"
    shutil.copy(tables_library, copy)
    view = loader_view.loader_view(str(tables_library))
    assert view.symbols is None and view.gnu_hash_misses is None and view.symbol_count > 2
    _symbol_value(copy)  # no relocation names exported_function: not seen
    assert linking_differences(str(tables_library), str(copy)) == []
    _local(copy)  # relocations name exported_value: seen through them
    assert re.match(r"relocation \d+ is Relocation\(.*symbol=\(b'exported_value', "
                    r"\('local',\)\)", linking_differences(str(tables_library), str(copy))[0])

"""The plain ELF reader (struct on a memory map) against pyelftools, which it stands in for.

`read_elf` takes an ordinary file's facts with `struct` (~10x less CPU a library) and leaves
every other file to pyelftools. The two must agree: on every ELF file of this machine's bin
and lib dirs, and on mutated files (tests/support/fuzzing.py's mutations, seeded), where
the plain reader either gives pyelftools' facts or declines, so that a broken file keeps
pyelftools' verdict.
"""

from __future__ import annotations

import os
import random
import struct
import subprocess
from pathlib import Path

import pytest
from support.fuzzing import build_corpus, mutate
from support.gobuild import build_agent
from support.needs import need_tool

from bundler import elf
from bundler.errors import InputError

HOST_DIRS = ("/usr/bin", "/usr/sbin", "/usr/lib/x86_64-linux-gnu", "/usr/aarch64-linux-gnu/lib")
MUTATIONS = 1500


def _elf_files(directory: str) -> list[str]:
    found = []
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    for name in names:
        path = os.path.join(directory, name)
        try:
            if not os.path.isfile(path) or os.path.islink(path):
                continue
            with open(path, "rb") as handle:
                if handle.read(4) == elf.ELF_MAGIC:
                    found.append(path)
        except OSError:
            continue
    return found


def _plain(path: str) -> elf.ElfFacts | None:
    with open(path, "rb") as handle:
        return elf._parse_mapped(path, handle, os.stat(path))


def _pyelftools(path: str) -> elf.ElfFacts:
    """read_elf's answer with the plain reader declining every file."""
    saved = elf._parse_mapped
    elf._parse_mapped = lambda *_: None  # type: ignore[assignment]
    try:
        return elf._read_elf_once.__wrapped__(path, 0, 0, 0, 0, 0)
    finally:
        elf._parse_mapped = saved  # type: ignore[assignment]


def test_plain_reader_agrees_on_this_machines_files():
    files = [path for directory in HOST_DIRS for path in _elf_files(directory)]
    assert len(files) > 100, "too few ELF files here to compare"
    read = declined = 0
    for path in files:
        plain = _plain(path)
        if plain is None:
            declined += 1
            continue
        read += 1
        assert plain == _pyelftools(path), path
    print(f"{read} files read by both readers alike, {declined} left to pyelftools")
    assert read >= 0.9 * len(files), f"the plain reader declined {declined} of {len(files)}"


def test_plain_reader_gives_pyelftools_facts_or_declines_on_mutated_files(tmp_path: Path):
    seeds = build_corpus(tmp_path / "corpus")
    rng = random.Random(21)
    case = tmp_path / "case"
    read = 0
    for _ in range(MUTATIONS):
        data, what = mutate(rng.choice(seeds), rng)
        case.write_bytes(data)
        plain = _plain(str(case))
        if plain is None:
            continue
        read += 1
        try:
            expected = _pyelftools(str(case))
        except InputError as error:
            pytest.fail(f"{what}: the plain reader read a file pyelftools refuses: {error}")
        assert plain == expected, what
    assert read > MUTATIONS // 4, f"the plain reader read only {read} of {MUTATIONS} cases"


def _hello(tmp_path: Path, *flags: str) -> Path:
    source = tmp_path / "hello.c"
    source.write_text("int main(void) { return 0; }\n")
    program = tmp_path / ("hello" + "".join(flags))
    subprocess.run(["gcc", *flags, "-o", str(program), str(source)], check=True)
    return program


def _declined_by_the_plain_reader(tmp_path: Path) -> Path:
    """gcc's hello with another OS ABI in its ELF header (FreeBSD's): a file the plain
    reader leaves to pyelftools, which reads it."""
    program = _hello(tmp_path, "-g")
    data = bytearray(program.read_bytes())
    data[7] = 9  # EI_OSABI: ELFOSABI_FREEBSD
    declined = tmp_path / "hello-freebsd-abi"
    declined.write_bytes(bytes(data))
    return declined


def test_a_file_the_plain_reader_declines_is_read_by_pyelftools(tmp_path: Path):
    program = _declined_by_the_plain_reader(tmp_path)
    assert _plain(str(program)) is None
    facts = elf.read_elf(str(program))
    assert facts.interpreter is not None and "libc.so.6" in facts.needed


def test_compressed_debug_sections_are_read_plainly_with_pyelftools_facts(tmp_path: Path):
    """DWARF compressed (gcc -gz, and every Go program by default) is read by the plain
    reader: pyelftools only reads their Elf_Chdr until their data is asked for, and
    neither reader asks. A compressed section whose Elf_Chdr runs past the end of the
    file, or a compressed string table, is left to pyelftools."""
    program = _hello(tmp_path, "-g", "-gz=zlib")  # (this gcc has no -gz=zstd)
    assert any(s.name == ".debug_info" and s.flags & elf.SHF_COMPRESSED
               for s in elf.plain_section_headers(str(program)) or ())
    assert _plain(str(program)) == _pyelftools(str(program))
    table = elf.read_section_table(str(program))
    debug = next(s for s in table.sections if s.name == ".debug_info")
    strtab = next(s for s in table.sections if s.name == ".strtab")
    data = program.read_bytes()

    def edited(name: str, section: elf.SectionHeader, at: int, value: int) -> str:
        """The program with one 8-byte field of one section header (ELF64) set."""
        copy = bytearray(data)
        where = table.table_offset + section.index * table.entry_size + at
        struct.pack_into("<Q", copy, where, value)
        (tmp_path / name).write_bytes(bytes(copy))
        return str(tmp_path / name)

    assert _plain(edited("chdr-in-the-file", debug, 24, len(data) - 24)) is not None
    assert _plain(edited("chdr-past-the-end", debug, 24, len(data) - 23)) is None  # sh_offset
    assert _plain(edited("compressed-strtab", strtab, 8, strtab.flags | elf.SHF_COMPRESSED)) \
        is None


def test_go_programs_are_read_plainly_with_pyelftools_facts():
    """Go compresses its DWARF by default: the demo agent and the go tool itself are read by
    the plain reader, to the same facts and twins' answers as pyelftools'."""
    programs = [str(build_agent("dynamic")), str(build_agent("static-tags")),
                os.path.realpath(need_tool("go"))]
    for path in programs:
        assert _plain(path) is not None, path
        assert _plain(path) == _pyelftools(path), path
        for name, (mine, theirs) in _twins(path).items():
            assert mine is not DECLINED and mine == theirs, (name, path)


def test_compiled_path_scan_reads_the_same_rodata_by_either_reader(monkeypatch):
    """compiled_paths.read_rodata takes the section headers from the plain reader where it
    reads the file: the bytes it scans are pyelftools' own."""
    from bundler import compiled_paths

    files = [path for directory in HOST_DIRS for path in _elf_files(directory)][::3]
    compiled_paths._rodata_once.cache_clear()  # (read once per file: here twice, two ways)
    plain = {path: compiled_paths.read_rodata(path) for path in files}
    monkeypatch.setattr(compiled_paths, "plain_section_headers", lambda _: None)
    compiled_paths._rodata_once.cache_clear()
    for path in files:
        assert plain[path] == compiled_paths.read_rodata(path), path
    assert sum(bool(data.strip(b"\0")) for data in plain.values()) > len(files) // 2


def test_section_headers_found_by_read_elf_are_those_read_anew(tmp_path):
    """plain_section_headers reuses what read_elf's plain reader found, for the very file
    as it was: the same headers as a fresh read, and none once the file has changed."""
    files = [path for directory in HOST_DIRS for path in _elf_files(directory)][:200]
    for path in files:
        elf.read_elf(path)
    fresh = {}
    for path in files:
        key = (path, elf.file_identity(os.stat(path)))
        remembered = elf._SECTIONS_READ.pop(key, None)
        fresh[path] = elf.plain_section_headers(path)  # read anew: nothing remembered
        assert (remembered or None) == fresh[path], path
    assert sum(headers is not None for headers in fresh.values()) > len(files) // 2
    other = elf.plain_section_headers("/bin/true")
    program = tmp_path / "prog"
    program.write_bytes(Path(next(p for p in files if fresh[p] not in (None, other)))
                        .read_bytes())
    before = elf.read_elf(str(program)) and elf.plain_section_headers(str(program))
    program.write_bytes(Path("/bin/true").read_bytes())  # another file at the same path
    assert elf.plain_section_headers(str(program)) != before


# The readers patch.py checks its copies with, and the symbol names static programs are
# judged by, have plain twins too: each must give pyelftools' answer or decline.
TWINS = {
    "read_link_facts": (elf._plain_link_facts, elf._link_facts),
    "read_section_table": (elf._plain_section_table, elf._section_table),
    "defined_symbol_names": (elf._plain_defined_names, elf._defined_names),
}


DECLINED = "the plain reader declined"


def _twins(path: str) -> dict[str, tuple[object, object]]:
    """{reader: (plain answer or DECLINED, pyelftools' answer or the InputError it
    gives)} for `path`."""
    answers = {}
    for name, (plain, pyelftools) in TWINS.items():
        mine = elf._plain_first(path, plain, lambda _: DECLINED)
        try:
            theirs: object = elf._plain_first(path, _declined, pyelftools)
        except elf.broken_elf(OSError) as error:
            theirs = error
        answers[name] = (mine, theirs)
    return answers


def _declined(_data) -> None:
    raise elf._Unusual("the plain reader stands aside: pyelftools reads")


def test_plain_twins_agree_on_this_machines_files():
    files = [path for directory in HOST_DIRS for path in _elf_files(directory)]
    read = dict.fromkeys(TWINS, 0)
    for path in files:
        for name, (mine, theirs) in _twins(path).items():
            if mine is not DECLINED:
                read[name] += 1
                assert mine == theirs, (name, path)
    for name in ("read_link_facts", "read_section_table"):
        assert read[name] >= 0.9 * len(files), (name, read[name], len(files))
    assert read["defined_symbol_names"] >= 0.9 * len(files)


def test_plain_twins_give_pyelftools_answers_or_decline_on_mutated_files(tmp_path: Path):
    seeds = build_corpus(tmp_path / "corpus")
    rng = random.Random(22)
    case = tmp_path / "case"
    read = dict.fromkeys(TWINS, 0)
    for _ in range(MUTATIONS // 3):
        data, what = mutate(rng.choice(seeds), rng)
        case.write_bytes(data)
        for name, (mine, theirs) in _twins(str(case)).items():
            if mine is DECLINED:
                continue
            read[name] += 1
            assert not isinstance(theirs, BaseException), (
                f"{name}, {what}: the plain reader read a file pyelftools refuses: {theirs}")
            assert mine == theirs, (name, what)
    assert min(read.values()) > MUTATIONS // 12, read


def test_patch_check_readers_decline_to_pyelftools_with_its_verdict(tmp_path: Path):
    """A file the plain reader declines (another OS ABI) is read by pyelftools, and
    a broken one gets pyelftools' InputError through the public readers."""
    program = _declined_by_the_plain_reader(tmp_path)
    assert elf._plain_first(str(program), elf._plain_link_facts,
                            lambda _: DECLINED) is DECLINED
    assert "libc.so.6" in elf.read_link_facts(str(program)).needed
    assert any(s.name == ".debug_info" for s in elf.read_section_table(str(program)).sections)
    assert "main" in (elf.defined_symbol_names(str(program)) or ())
    broken = tmp_path / "broken"
    broken.write_bytes(program.read_bytes()[:200])
    for reader in (elf.read_link_facts, elf.read_section_table, elf.defined_symbol_names):
        with pytest.raises(InputError):
            reader(str(broken))

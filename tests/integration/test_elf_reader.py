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
import subprocess
from pathlib import Path

import pytest
from support.fuzzing import build_corpus, mutate

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


def test_a_file_the_plain_reader_declines_is_read_by_pyelftools(tmp_path: Path):
    """A compressed section (gcc -gz=zlib): left to pyelftools, which reads it."""
    source = tmp_path / "hello.c"
    source.write_text("int main(void) { return 0; }\n")
    program = tmp_path / "hello"
    subprocess.run(["gcc", "-g", "-gz=zlib", "-o", str(program), str(source)], check=True)
    assert _plain(str(program)) is None
    facts = elf.read_elf(str(program))
    assert facts.interpreter is not None and "libc.so.6" in facts.needed


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

"""Everything the bundler needs to know about one ELF file, read once.

The facts are a frozen dataclass so that every later stage (resolver, requirements,
report) works from the same snapshot and never re-opens the file. Program headers are
preferred over section headers wherever both exist, because stripped or packed binaries
may have lost their section table while the loader only ever reads segments.

Ordinary files are read with `struct` (the plain reader, below); pyelftools reads the rest
and is imported only then (`pyelftools_file`): its import is ~30 ms of CPU, which sat on
the critical path of a small build twice, in the build and in the patch worker.
"""

from __future__ import annotations

import errno
import functools
import mmap
import os
import stat
import struct
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, TypeVar

from bundler.errors import InputError

if TYPE_CHECKING:
    from elftools.elf.elffile import ELFFile

ELF_MAGIC = b"\x7fELF"
DF_1_NODEFLIB = 0x800
DF_1_PIE = 0x08000000
VERSYM_INDEX_MASK = 0x7FFF
CAPABILITY_XATTR = "security.capability"
T = TypeVar("T")
# e_machine numbers -> pyelftools' names, for the machines met every day; the others are
# looked up in pyelftools' table (`_machine_name`). tests/unit/test_elf_names.py holds
# these to that table.
COMMON_MACHINES = {3: "EM_386", 62: "EM_X86_64", 183: "EM_AARCH64", 40: "EM_ARM",
                   243: "EM_RISCV", 21: "EM_PPC64", 20: "EM_PPC", 22: "EM_S390", 8: "EM_MIPS",
                   258: "EM_LOONGARCH"}

# pyelftools machine names -> the names users know (and `file(1)` prints).
MACHINE_NAMES = {
    "EM_X86_64": "x86-64",
    "EM_386": "i386",
    "EM_AARCH64": "aarch64",
    "EM_ARM": "arm",
    "EM_RISCV": "riscv",
    "EM_PPC64": "ppc64",
    "EM_PPC": "ppc",
    "EM_S390": "s390",
    "EM_MIPS": "mips",
    "EM_LOONGARCH": "loongarch",
}


@dataclass(frozen=True)
class ElfIdent:
    """The identity fields the loader checks before it accepts a candidate file."""

    elf_class: int  # 32 or 64
    little_endian: bool
    machine: str  # pyelftools name, e.g. "EM_X86_64"
    file_type: str  # "ET_DYN", "ET_EXEC", ...

    @property
    def machine_name(self) -> str:
        return MACHINE_NAMES.get(self.machine, self.machine)

    def describe(self) -> str:
        order = "LSB" if self.little_endian else "MSB"
        return f"ELF {self.elf_class}-bit {order} {self.machine_name}"


@dataclass(frozen=True)
class VersionNeed:
    """One required symbol version (`Vernaux`) and the imported symbols bound to it."""

    file: str  # the library that must define it (vn_file), e.g. "libc.so.6"
    version: str  # e.g. "GLIBC_2.34"
    weak: bool
    symbols: tuple[str, ...]


@dataclass(frozen=True)
class AbiTag:
    """The NT_GNU_ABI_TAG note: the oldest kernel this object was built to run on."""

    os: str
    kernel: tuple[int, int, int]

    def describe(self) -> str:
        return f"{self.os} {'.'.join(map(str, self.kernel))}"


@dataclass(frozen=True)
class ElfFacts:
    """What one ELF file says about itself; `path` is where it was read on this machine."""

    path: str
    size: int
    ident: ElfIdent
    pie: bool
    interpreter: str | None
    needed: tuple[str, ...]
    rpath: str | None  # raw DT_RPATH; ignored by the loader when DT_RUNPATH exists
    runpath: str | None
    flags_1: int
    soname: str | None
    version_needs: tuple[VersionNeed, ...]
    version_definitions: tuple[str, ...]
    abi_tag: AbiTag | None
    has_dynamic: bool
    imported_symbols: tuple[str, ...]
    section_names: tuple[str, ...]
    setuid: bool
    setgid: bool
    capabilities: bytes | None

    @property
    def is_static(self) -> bool:
        """True for programs the kernel runs without any loader (static and static-pie)."""
        if self.interpreter is not None or self.needed:
            return False
        return self.ident.file_type == "ET_EXEC" or bool(self.flags_1 & DF_1_PIE)

    @property
    def is_static_pie(self) -> bool:
        return self.is_static and self.ident.file_type == "ET_DYN"

    @property
    def effective_rpath(self) -> str | None:
        """DT_RPATH as the loader uses it: glibc drops it when DT_RUNPATH is present."""
        return None if self.runpath is not None else self.rpath

    @property
    def nodeflib(self) -> bool:
        return bool(self.flags_1 & DF_1_NODEFLIB)

    @property
    def kind(self) -> str:
        if self.is_static:
            return "static-pie executable" if self.is_static_pie else "static executable"
        if self.interpreter is not None:
            return "PIE executable" if self.pie else "executable"
        if self.ident.file_type == "ET_DYN":
            return "shared object"
        return self.ident.file_type


def read_ident(data: bytes) -> ElfIdent | None:
    """Decode the ELF identity from the first 20 bytes, or None when it is not ELF."""
    if len(data) < 20 or not data.startswith(ELF_MAGIC):
        return None
    elf_class = {1: 32, 2: 64}.get(data[4])
    little = {1: True, 2: False}.get(data[5])
    if elf_class is None or little is None:
        return None
    e_type, e_machine = struct.unpack_from("<HH" if little else ">HH", data, 16)
    return ElfIdent(elf_class, little, _machine_name(e_machine), _type_name(e_type))


def _machine_name(e_machine: int) -> str:
    common = COMMON_MACHINES.get(e_machine)
    return common if common is not None else _all_machines().get(e_machine, f"EM_{e_machine}")


@functools.cache
def _all_machines() -> dict[int, str]:
    from elftools.elf.enums import ENUM_E_MACHINE

    return {v: k for k, v in ENUM_E_MACHINE.items() if isinstance(v, int)}


def _type_name(e_type: int) -> str:
    return {0: "ET_NONE", 1: "ET_REL", 2: "ET_EXEC", 3: "ET_DYN", 4: "ET_CORE"}.get(
        e_type, f"ET_{e_type}"
    )


# pyelftools reports broken files through a zoo of exception types; a size field that lies
# makes it read gigabytes (OverflowError, MemoryError; both found by fuzzing).
_BROKEN_ANYWHERE = (struct.error, ValueError, KeyError, IndexError, TypeError, AttributeError,
                    AssertionError, UnicodeDecodeError, OverflowError, MemoryError)
_PYELFTOOLS_ERRORS = (("elftools.common.exceptions", "ELFError"),
                      ("elftools.construct.core", "ConstructError"))


def broken_elf(*also: type[BaseException]) -> tuple[type[BaseException], ...]:
    """The exceptions that mean a broken file, and `also`, for `except broken_elf()`: with
    pyelftools' own two once it is imported (none of its exceptions can be raised before),
    so that catching one never imports it."""
    loaded = (getattr(sys.modules.get(module), name, None) for module, name in _PYELFTOOLS_ERRORS)
    return _BROKEN_ANYWHERE + also + tuple(kind for kind in loaded if kind is not None)


def pyelftools_file(handle: BinaryIO) -> ELFFile:
    """pyelftools' reader of `handle` (from its start), imported on first use: for the
    files the plain reader declines and the readers that have no plain twin."""
    from elftools.elf.elffile import ELFFile

    handle.seek(0)
    return ELFFile(handle)


def read_elf(path: str) -> ElfFacts:
    """Read the facts of the ELF file at `path`; any unusable input is an `InputError`.

    Results are remembered per file identity and modification time: a closure walk
    meets libc.so.6 once per program, and an unchanged file never needs a second parse.
    """
    st = _stat_input(path)
    return _read_elf_once(path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@functools.lru_cache(maxsize=4096)
def _read_elf_once(
    path: str, _dev: int, _ino: int, _size: int, _mtime: int, _ctime: int
) -> ElfFacts:
    st = _stat_input(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(64)
            _reject_non_elf(path, head)
            handle.seek(0)
            return _parse(path, handle, st)
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None
    except broken_elf() as exc:
        # pyelftools reports broken files through a zoo of exception types.
        raise InputError(f"{path}: truncated or corrupt ELF file ({_short(exc)})") from None
    except OSError as exc:
        if exc.errno == errno.EINVAL:  # pyelftools seeking to a negative offset from the file
            raise InputError(f"{path}: truncated or corrupt ELF file (bad offset)") from None
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:120]


def _stat_input(path: str) -> os.stat_result:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except NotADirectoryError:
        raise InputError(f"{path}: no such file (a parent is not a directory)") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InputError(f"{path}: too many levels of symbolic links") from None
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{path}: is a directory, not a program")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{path}: not a regular file")
    return st


def _reject_non_elf(path: str, head: bytes) -> None:
    if head.startswith(b"#!"):
        interpreter = head[2:].split(b"\n", 1)[0].strip().decode("utf-8", "replace")
        raise InputError(
            f"{path}: is a script ('#!{interpreter}'), not an ELF program; "
            "bundle the interpreter it runs instead"
        )
    if not head.startswith(ELF_MAGIC):
        raise InputError(f"{path}: not an ELF file")
    if read_ident(head) is None or len(head) < 52:
        raise InputError(f"{path}: truncated or corrupt ELF file (bad ELF header)")


@dataclass(frozen=True)
class LinkFacts:
    """What a patch changes, read without the symbol tables (cheap on a 100 MB program)."""

    ident: ElfIdent
    interpreter: str | None
    needed: tuple[str, ...]
    rpath: str | None
    runpath: str | None
    phdr_where_old_kernels_look: bool  # see _phdr_where_old_kernels_look


def read_link_facts(path: str) -> LinkFacts:
    """The ELF header, PT_INTERP and dynamic entries of `path` (uncached: for checking a
    file just written)."""
    try:
        return _plain_first(path, _plain_link_facts, _link_facts)
    except broken_elf(OSError) as exc:
        raise InputError(f"{path}: truncated or corrupt ELF file ({_short(exc)})") from None


def _link_facts(handle: BinaryIO) -> LinkFacts:
    """read_link_facts by pyelftools (`_plain_link_facts` is its twin)."""
    elf = pyelftools_file(handle)
    ident, interpreter, values, _, _ = _program_headers(elf)
    return LinkFacts(ident, interpreter, tuple(str(v) for v in values.get("DT_NEEDED", [])),
                     _joined(values.get("DT_RPATH")), _joined(values.get("DT_RUNPATH")),
                     _phdr_where_old_kernels_look(elf))


def _plain_first(path: str, plain: Callable[[mmap.mmap], T],
                 otherwise: Callable[[BinaryIO], T]) -> T:
    """`plain` of the file mapped, or `otherwise` of it open where the plain reader does not
    mirror pyelftools on this file (or it cannot be mapped), so that a broken file keeps
    pyelftools' verdict."""
    with open(path, "rb") as handle:
        try:
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return plain(data)
        except (_Unusual, struct.error, IndexError, ValueError, OverflowError, OSError):
            pass
        handle.seek(0)
        return otherwise(handle)


def _phdr_where_old_kernels_look(elf: ELFFile) -> bool:
    """Linux before 5.18 passes AT_PHDR = (first PT_LOAD's p_vaddr - p_offset) + e_phoff,
    whatever PT_PHDR says, and the loader finds the program's segments there: a program
    header table moved elsewhere must keep that relation (true when there is no PT_PHDR)."""
    segments = list(elf.iter_segments())
    loads = [s for s in segments if s["p_type"] == "PT_LOAD"]
    phdr = next((s for s in segments if s["p_type"] == "PT_PHDR"), None)
    if phdr is None or not loads:
        return True
    return bool(phdr["p_vaddr"] == loads[0]["p_vaddr"] - loads[0]["p_offset"] + elf["e_phoff"])


def _program_headers(elf: ELFFile) -> tuple[ElfIdent, str | None, dict[str, list[object]],
                                            bool, AbiTag | None]:
    """(ident, PT_INTERP, dynamic values by tag, has PT_DYNAMIC, ABI tag note)."""
    ident = ElfIdent(elf.elfclass, elf.little_endian, elf["e_machine"], elf["e_type"])
    interpreter = None
    dynamic_tags: list[tuple[str, object]] = []
    has_dynamic = False
    abi_tag = None
    from elftools.elf.segments import InterpSegment

    for segment in elf.iter_segments():
        kind = segment["p_type"]
        if kind == "PT_INTERP":
            assert isinstance(segment, InterpSegment)  # pyelftools makes one of each PT_INTERP
            interpreter = segment.get_interp_name()
        elif kind == "PT_DYNAMIC":
            has_dynamic = True
            dynamic_tags = _dynamic_tags(segment)
        elif kind == "PT_NOTE":
            abi_tag = abi_tag or _abi_tag(segment)
    values: dict[str, list[object]] = {}
    for tag, value in dynamic_tags:
        values.setdefault(tag, []).append(value)
    return ident, interpreter, values, has_dynamic, abi_tag


def _parse(path: str, handle: BinaryIO, st: os.stat_result) -> ElfFacts:
    facts = _parse_mapped(path, handle, st)
    if facts is not None:
        return facts
    elf = pyelftools_file(handle)
    ident, interpreter, values, has_dynamic, abi_tag = _program_headers(elf)
    flags_1 = int(values.get("DT_FLAGS_1", [0])[0])  # type: ignore[call-overload]
    sections = list(elf.iter_sections())  # pyelftools parses the headers again per walk
    needs, definitions, imported = _versions(elf, sections)
    return _facts(path, st, ident, interpreter, values, flags_1, (needs, definitions, imported),
                  has_dynamic, abi_tag, tuple(s.name for s in sections))


def _by_version_index(imports: Iterable[tuple[int, str]],
                      versions: list[int]) -> dict[int, list[str]]:
    """The imported symbols grouped by their .gnu.version index (both readers)."""
    grouped: dict[int, list[str]] = {}
    for number, name in imports:
        if number < len(versions):
            grouped.setdefault(versions[number] & VERSYM_INDEX_MASK, []).append(name)
    return grouped


def _facts(path: str, st: os.stat_result, ident: ElfIdent, interpreter: str | None,
           values: dict[str, list[object]], flags_1: int,
           versions: tuple[tuple[VersionNeed, ...], tuple[str, ...], tuple[str, ...]],
           has_dynamic: bool, abi_tag: AbiTag | None,
           section_names: tuple[str, ...]) -> ElfFacts:
    """ElfFacts from what either reader found (`values`: dynamic entries by tag name)."""
    needs, definitions, imported = versions
    return ElfFacts(
        path=path,
        size=st.st_size,
        ident=ident,
        pie=_is_pie(ident, interpreter, flags_1, values),
        interpreter=interpreter,
        needed=tuple(str(v) for v in values.get("DT_NEEDED", [])),
        rpath=_joined(values.get("DT_RPATH")),
        runpath=_joined(values.get("DT_RUNPATH")),
        flags_1=flags_1,
        soname=_first(values.get("DT_SONAME")),
        version_needs=needs,
        version_definitions=definitions,
        abi_tag=abi_tag,
        has_dynamic=has_dynamic,
        imported_symbols=imported,
        section_names=section_names,
        setuid=bool(st.st_mode & stat.S_ISUID),
        setgid=bool(st.st_mode & stat.S_ISGID),
        capabilities=_capabilities(path),
    )


def _parse_mapped(path: str, handle: BinaryIO, st: os.stat_result) -> ElfFacts | None:
    """The plain reader's facts (below), or None where pyelftools reads the file."""
    try:
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return _parse_plain(path, data, st)
    except (OSError, ValueError):  # not mappable (a pipe, an empty file): pyelftools reads
        return None


def _is_pie(ident: ElfIdent, interpreter: str | None, flags_1: int,
            values: dict[str, list[object]]) -> bool:
    """DF_1_PIE where the linker set it (binutils >= 2.30); before that, an ET_DYN with an
    interpreter and no SONAME. libc.so.6 has an interpreter too, but also a SONAME."""
    if ident.file_type != "ET_DYN":
        return False
    if flags_1 & DF_1_PIE:
        return True
    return interpreter is not None and "DT_SONAME" not in values


def _dynamic_tags(segment) -> list[tuple[str, object]]:
    tags: list[tuple[str, object]] = []
    for tag in segment.iter_tags():
        name = tag.entry.d_tag
        if name == "DT_NEEDED":
            tags.append((name, tag.needed))
        elif name == "DT_RPATH":
            tags.append((name, tag.rpath))
        elif name == "DT_RUNPATH":
            tags.append((name, tag.runpath))
        elif name == "DT_SONAME":
            tags.append((name, tag.soname))
        elif name == "DT_FLAGS_1":
            tags.append((name, tag.entry.d_val))
        elif name == "DT_NULL":
            break
    return tags


def _joined(values: list[object] | None) -> str | None:
    # Several DT_RPATH entries are legal; the loader uses only the first one.
    return None if not values else str(values[0])


def _first(values: list[object] | None) -> str | None:
    return None if not values else str(values[0])


def _abi_tag(segment) -> AbiTag | None:
    for note in segment.iter_notes():
        if note["n_name"] == "GNU" and note["n_type"] == "NT_GNU_ABI_TAG":
            desc = note["n_desc"]
            os_name = {"ELF_NOTE_OS_LINUX": "Linux", "ELF_NOTE_OS_GNU": "Hurd"}.get(
                str(desc["abi_os"]), str(desc["abi_os"])
            )
            return AbiTag(os_name, (desc["abi_major"], desc["abi_minor"], desc["abi_tiny"]))
    return None


def _versions(elf: ELFFile, sections: list) -> tuple[tuple[VersionNeed, ...], tuple[str, ...],
                                                     tuple[str, ...]]:
    """Version needs (with the symbols bound to each), version definitions, imports."""
    verneed = verdef = versym = dynsym = None
    for section in sections:
        kind = section["sh_type"]
        if kind == "SHT_GNU_verneed":
            verneed = section
        elif kind == "SHT_GNU_verdef":
            verdef = section
        elif kind == "SHT_GNU_versym":
            versym = section
        elif kind == "SHT_DYNSYM":
            dynsym = section
    imports = _symbols(elf, dynsym, defined=False, sections=sections) if dynsym is not None else []
    versions = _version_indexes(elf, versym) if versym is not None else []
    symbols_by_index = _by_version_index(imports, versions)
    needs: list[VersionNeed] = []
    if verneed is not None:
        for need, auxiliaries in _chained(verneed.iter_versions(), verneed,
                                          lambda item: item[0].entry["vn_next"]):
            for aux in _chained(auxiliaries, verneed, lambda a: a.entry["vna_next"]):
                needs.append(
                    VersionNeed(
                        file=need.name,
                        version=aux.name,
                        weak=bool(aux.entry["vna_flags"] & 0x2),
                        symbols=tuple(sorted(symbols_by_index.get(aux.entry["vna_other"], ()))),
                    )
                )
    definitions: list[str] = []
    if verdef is not None:
        for definition, auxiliaries in _chained(verdef.iter_versions(), verdef,
                                                lambda item: item[0].entry["vd_next"]):
            names = [aux.name for aux in _chained(auxiliaries, verdef,
                                                  lambda a: a.entry["vda_next"])]
            if definition.entry["vd_flags"] & 0x1:  # VER_FLG_BASE names the file itself
                continue
            if names:
                definitions.append(names[0])
    return tuple(needs), tuple(definitions), tuple(sorted({name for _, name in imports}))


def _chained(items: Iterable[T], section, next_of: Callable[[T], int]) -> Iterator[T]:
    """Version records as ld.so and readelf walk them: up to the one whose `*_next` is 0.

    pyelftools trusts the counts (sh_info, vn_cnt, vd_cnt) alone, so a corrupt count with
    a zero `next` repeats one record until memory runs out. No valid section holds more
    records than its size over 8 (the smallest record, Elf_Verdaux).
    """
    limit = max(1, section["sh_size"] // 8)
    for number, item in enumerate(items):
        if number >= limit:
            raise ValueError(f"{section.name}: more version records than fit in the section")
        yield item
        if next_of(item) == 0:
            return


def _symbols(elf: ELFFile, table, *, defined: bool, sections: list | None = None,
             ) -> list[tuple[int, str]]:
    """(index, name) of the named symbols of `table`, defined or undefined ones.

    Decoded with `struct` straight from the section bytes: pyelftools' per-symbol
    parsing costs ~50 ms for libc.so.6, and a closure has dozens of libraries.
    """
    link = table["sh_link"]
    strtab = (sections[link] if sections is not None and link < len(sections)
              else elf.get_section(link)).data()
    return _symbol_names(table.data(), strtab, elf.elfclass == 64,
                         "<" if elf.little_endian else ">", defined=defined)


def defined_symbol_names(path: str) -> frozenset[str] | None:
    """Names defined in `.symtab`, or None when the file is stripped (no `.symtab`).

    For static programs, where the callers of NSS and dlopen are the evidence.
    """
    try:
        return _plain_first(path, _plain_defined_names, _defined_names)
    except broken_elf(OSError) as exc:
        raise InputError(f"{path}: cannot read its symbol table ({_short(exc)})") from None


def _defined_names(handle: BinaryIO) -> frozenset[str] | None:
    """defined_symbol_names by pyelftools (`_plain_defined_names` is its twin)."""
    elf = pyelftools_file(handle)
    for section in elf.iter_sections():
        if section["sh_type"] == "SHT_SYMTAB":
            return frozenset(name for _, name in _symbols(elf, section, defined=True))
    return None


def _version_indexes(elf: ELFFile, versym) -> list[int]:
    data = versym.data()
    order = "<" if elf.little_endian else ">"
    usable = data[: len(data) - len(data) % 2]
    return [value for (value,) in struct.iter_unpack(order + "H", usable)]


def _capabilities(path: str) -> bytes | None:
    try:
        return os.getxattr(path, CAPABILITY_XATTR)
    except (OSError, AttributeError):
        return None


SHF_ALLOC = 0x2


@dataclass(frozen=True)
class SectionHeader:
    """One section header as it is in the file: what patch.py compares and restores."""

    index: int
    name: str
    kind: str  # pyelftools name, e.g. "SHT_PROGBITS", "SHT_GNU_versym"
    flags: int
    address: int
    offset: int
    size: int
    alignment: int
    link: int
    raw: bytes  # the header's own bytes (e_shentsize of them), to write it back unchanged

    @property
    def allocated(self) -> bool:
        """Mapped at run time (SHF_ALLOC): its place is fixed by the segments."""
        return bool(self.flags & SHF_ALLOC)

    @property
    def file_size(self) -> int:
        """Bytes it occupies in the file (SHT_NOBITS sections occupy none)."""
        return 0 if self.kind in ("SHT_NOBITS", "SHT_NULL") else self.size


@dataclass(frozen=True)
class SectionTable:
    """The section headers of a file and the file ranges the rest of its layout occupies."""

    elf_class: int
    little_endian: bool
    table_offset: int  # e_shoff
    entry_size: int  # e_shentsize
    name_table: int  # e_shstrndx
    sections: tuple[SectionHeader, ...]
    fixed_ranges: tuple[tuple[int, int], ...]  # (start, end): ELF header, PHDR table, segments


def read_section_table(path: str) -> SectionTable:
    """Every section header of `path` with its raw bytes, read in one pass over the table."""
    try:
        return _plain_first(path, _plain_section_table, _section_table)
    except broken_elf(OSError) as exc:
        raise InputError(f"{path}: truncated or corrupt ELF file ({_short(exc)})") from None


def _section_table(handle: BinaryIO) -> SectionTable:
    """read_section_table by pyelftools (`_plain_section_table` is its twin)."""
    elf = pyelftools_file(handle)
    table_offset, entry_size = elf["e_shoff"], elf["e_shentsize"]
    sections = []
    for index, section in enumerate(elf.iter_sections()):
        header = section.header
        handle.seek(table_offset + index * entry_size)
        sections.append(SectionHeader(
            index=index, name=section.name, kind=str(header["sh_type"]),
            flags=header["sh_flags"], address=header["sh_addr"],
            offset=header["sh_offset"], size=header["sh_size"],
            alignment=header["sh_addralign"], link=header["sh_link"],
            raw=handle.read(entry_size)))
    fixed = [(0, elf["e_ehsize"]),
             (elf["e_phoff"], elf["e_phoff"] + elf["e_phnum"] * elf["e_phentsize"])]
    fixed += [(segment["p_offset"], segment["p_offset"] + segment["p_filesz"])
              for segment in elf.iter_segments() if segment["p_filesz"]]
    return SectionTable(elf.elfclass, elf.little_endian, table_offset, entry_size,
                        elf["e_shstrndx"], tuple(sections), tuple(fixed))


# --- layouts refused before LIEF reads them ------------------------------------------------

PT_NULL, PT_LOAD, PT_DYNAMIC, PT_INTERP, PT_NOTE, PT_PHDR, PT_TLS = 0, 1, 2, 3, 4, 6, 7
PT_GNU_STACK = 0x6474E551
PHDR_TABLE_LIMIT = 65536  # bytes: Linux's load_elf_phdrs refuses a larger table
INTERP_LIMIT = 4096  # PATH_MAX: Linux refuses a longer PT_INTERP
# Segments whose addresses must lie inside what the PT_LOADs map: they describe parts of it.
# PT_TLS is left out (its .tbss takes no address space), PT_GNU_STACK (p_memsz may be the
# stack size), and types we do not know.
INSIDE_LOADS = frozenset({PT_DYNAMIC, PT_INTERP, PT_NOTE, PT_PHDR, 0x6474E550, 0x6474E552,
                          0x6474E553})  # + PT_GNU_EH_FRAME, PT_GNU_RELRO, PT_GNU_PROPERTY


@dataclass(frozen=True)
class Segment:
    """One program header, as numbers."""

    kind: int  # p_type
    offset: int
    vaddr: int
    filesz: int
    memsz: int
    align: int
    flags: int  # p_flags: PF_X 1, PF_W 2, PF_R 4


@dataclass(frozen=True)
class ProgramHeaderTable:
    elf_class: int
    table_offset: int  # e_phoff
    entry_size: int  # e_phentsize
    count: int  # e_phnum
    segments: tuple[Segment, ...]  # empty when the table itself is out of bounds


def refuse_hostile_layout(path: str) -> None:
    """InputError when `path`'s program headers describe a layout no loader would map.

    LIEF trusts these numbers: a 140 KB /bin/ls whose PT_NOTE claimed 2.3 GB of file made
    it allocate 6.8 GB and run 23 s; one with scrambled PT_LOADs (a p_vaddr near 2^60, a
    note's p_memsz of 2^56) ran 88 s to 20 GB. The kernel and ld.so refuse most such files
    anyway (the PT_NOTE one still runs); so do we, before LIEF reads them.
    """
    try:
        with open(path, "rb") as handle:
            table = read_program_header_table(handle)
            size = os.fstat(handle.fileno()).st_size
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    problems = layout_problems(table, size)
    if problems:
        raise InputError(f"{path}: refused, its program headers are not a loadable layout: "
                         f"{problems[0]}")


def read_program_header_table(handle: BinaryIO) -> ProgramHeaderTable:
    """The program headers of the open file, as numbers; `segments` is empty where the
    table lies (its entry size or extent) or runs past the end of the file."""
    handle.seek(0)
    head = handle.read(64)
    ident = read_ident(head)
    if ident is None or len(head) < 52:
        return ProgramHeaderTable(0, 0, 0, 0, ())
    order = "<" if ident.little_endian else ">"
    if ident.elf_class == 64:
        (offset,) = struct.unpack_from(order + "Q", head, 32)
        entry_size, count = struct.unpack_from(order + "HH", head, 54)
        layout, expected = struct.Struct(order + "IIQQQQQQ"), 56
    else:
        (offset,) = struct.unpack_from(order + "I", head, 28)
        entry_size, count = struct.unpack_from(order + "HH", head, 42)
        layout, expected = struct.Struct(order + "IIIIIIII"), 32
    table = ProgramHeaderTable(ident.elf_class, offset, entry_size, count, ())
    if entry_size != expected or count * entry_size > PHDR_TABLE_LIMIT:
        return table
    handle.seek(offset)
    data = handle.read(count * entry_size)
    if len(data) < count * entry_size:
        return table
    segments = []
    for fields in layout.iter_unpack(data):
        if ident.elf_class == 64:
            kind, flags, p_offset, vaddr, _, filesz, memsz, align = fields
        else:
            kind, p_offset, vaddr, _, filesz, memsz, flags, align = fields
        segments.append(Segment(kind, p_offset, vaddr, filesz, memsz, align, flags))
    return ProgramHeaderTable(ident.elf_class, offset, entry_size, count, tuple(segments))


def layout_problems(table: ProgramHeaderTable, file_size: int) -> tuple[str, ...]:
    """What makes this program header table unloadable (empty: nothing). Pure and cheap:
    numbers only, the checks the kernel's ELF loader and glibc's _dl_map_object make."""
    expected = {64: 56, 32: 32}.get(table.elf_class)
    if expected is None:
        return ("not an ELF file",)
    if table.count == 0:
        return ("no program headers",)
    if table.entry_size != expected:
        return (f"e_phentsize is {table.entry_size}, not {expected}",)
    if table.count * table.entry_size > PHDR_TABLE_LIMIT:
        return (f"{table.count} program headers (over the kernel's 64 KiB table)",)
    if table.table_offset + table.count * table.entry_size > file_size:
        return ("the program header table extends past the end of the file",)
    problems: list[str] = []
    top = 1 << (48 if table.elf_class == 64 else 32)
    loads = [s for s in table.segments if s.kind == PT_LOAD]
    for number, segment in enumerate(table.segments):
        name = f"segment {number} ({_segment_name(segment.kind)})"
        if segment.kind != PT_NULL and segment.offset + segment.filesz > file_size:
            problems.append(f"{name} extends past the end of the file "
                            f"({segment.offset:#x} + {segment.filesz:#x} > {file_size:#x})")
        if segment.kind == PT_LOAD:
            problems += _load_problems(name, segment, top)
        if segment.kind == PT_INTERP and not 2 <= segment.filesz <= INTERP_LIMIT:
            problems.append(f"{name} is {segment.filesz} bytes long")
    for kind in (PT_INTERP, PT_DYNAMIC, PT_PHDR):
        if sum(s.kind == kind for s in table.segments) > 1:
            problems.append(f"more than one {_segment_name(kind)}")
    for first, second in zip(loads, loads[1:]):
        if second.vaddr < first.vaddr + first.memsz:
            problems.append(f"PT_LOAD at {second.vaddr:#x} overlaps or precedes the one at "
                            f"{first.vaddr:#x} (they must ascend without overlap)")
            break
    if loads:
        start = min(s.vaddr for s in loads)
        end = max(s.vaddr + s.memsz for s in loads)
        for number, segment in enumerate(table.segments):
            if segment.kind in INSIDE_LOADS and segment.memsz and not (
                    start <= segment.vaddr and segment.vaddr + segment.memsz <= end):
                problems.append(f"segment {number} ({_segment_name(segment.kind)}) lies "
                                "outside the PT_LOAD segments")
    return tuple(problems)


def _load_problems(name: str, segment: Segment, top: int) -> list[str]:
    problems = []
    if segment.filesz > segment.memsz:
        problems.append(f"{name} has p_filesz {segment.filesz:#x} > p_memsz {segment.memsz:#x}")
    if segment.vaddr + segment.memsz > top:
        problems.append(f"{name} ends at {segment.vaddr + segment.memsz:#x}, past the "
                        "address space")
    if segment.align & (segment.align - 1):
        problems.append(f"{name} has p_align {segment.align:#x}, not a power of two")
    elif segment.align > 1 and (segment.vaddr - segment.offset) % segment.align:
        problems.append(f"{name} has p_vaddr and p_offset not congruent modulo p_align")
    return problems


def _segment_name(kind: int) -> str:
    names = {PT_NULL: "PT_NULL", PT_LOAD: "PT_LOAD", PT_DYNAMIC: "PT_DYNAMIC",
             PT_INTERP: "PT_INTERP", PT_NOTE: "PT_NOTE", PT_PHDR: "PT_PHDR", PT_TLS: "PT_TLS",
             0x6474E550: "PT_GNU_EH_FRAME", PT_GNU_STACK: "PT_GNU_STACK",
             0x6474E552: "PT_GNU_RELRO", 0x6474E553: "PT_GNU_PROPERTY"}
    return names.get(kind, f"type {kind:#x}")


# --- the same facts without pyelftools, for ordinary files ---------------------------------
#
# pyelftools builds an object per section and segment through `construct` (~2 ms a library,
# ~5 ms on a busy machine: 1.1 s of ffmpeg's build, seconds for a closure of 1,000). The
# reader below takes the same fields with `struct` from a memory map, for the files every
# build meets: x86-64, i386 and aarch64 objects whose headers, sections and notes are all
# where they say. Anything else (another machine or OS ABI, a section type pyelftools checks
# in ways not mirrored here, a compressed section, a table or string that runs past the end of
# the file, text that is not UTF-8) is left to pyelftools, so every broken file keeps
# pyelftools' verdict. tests/integration/test_elf_reader.py holds the two readers to the same
# facts on every ELF file of this machine's lib and bin dirs.

FAST_MACHINES = frozenset({3, 62, 183})  # EM_386, EM_X86_64, EM_AARCH64
FAST_OSABI = frozenset({0, 3})  # System V, GNU/Linux: pyelftools' enums are the common ones
SHT_NULL, SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB, SHT_RELA, SHT_HASH = 0, 1, 2, 3, 4, 5
SHT_DYNAMIC = 6
SHT_NOBITS, SHT_REL, SHT_DYNSYM, SHT_RELR = 8, 9, 11, 19
SHT_GNU_HASH, SHT_VERDEF, SHT_VERNEED, SHT_VERSYM = 0x6FFFFFF6, 0x6FFFFFFD, 0x6FFFFFFE, 0x6FFFFFFF
# Section types pyelftools makes plain Section objects of (no checks), and those whose checks
# are mirrored in _check_section; any other type goes to pyelftools.
_PLAIN_SECTIONS = frozenset({SHT_NULL, SHT_PROGBITS, SHT_STRTAB, 7, SHT_NOBITS, 14, 15, 16, 17})
_CHECKED_SECTIONS = frozenset({SHT_SYMTAB, SHT_DYNSYM, SHT_RELA, SHT_REL, SHT_RELR, SHT_HASH,
                               SHT_GNU_HASH, SHT_DYNAMIC, SHT_VERDEF, SHT_VERNEED, SHT_VERSYM})
SHT_X86_64_UNWIND = 0x70000001  # pyelftools' SHT_AMD64_UNWIND: a plain Section on x86-64
SHF_COMPRESSED = 0x800
DT_NULL, DT_NEEDED, DT_STRTAB, DT_SONAME, DT_RPATH, DT_RUNPATH = 0, 1, 5, 14, 15, 29
DT_FLAGS_1 = 0x6FFFFFFB
_DYNAMIC_STRINGS = {DT_NEEDED: "DT_NEEDED", DT_SONAME: "DT_SONAME", DT_RPATH: "DT_RPATH",
                    DT_RUNPATH: "DT_RUNPATH"}
_ABI_OS = {0: "Linux", 1: "Hurd", 2: "ELF_NOTE_OS_SOLARIS2", 3: "ELF_NOTE_OS_FREEBSD",
           4: "ELF_NOTE_OS_NETBSD", 5: "ELF_NOTE_OS_SYLLABLE"}
NT_GNU_ABI_TAG, NT_GNU_PROPERTY_TYPE_0 = 1, 5


class _Unusual(Exception):
    """Something the plain reader does not mirror: pyelftools reads the file instead."""


@dataclass(frozen=True)
class _Section:
    name: str
    kind: int
    flags: int
    offset: int
    size: int
    link: int
    info: int
    entry_size: int


class _Plain:
    """One file's bytes, read as pyelftools reads them where the plain reader goes."""

    def __init__(self, data, little: bool, elf_class: int, machine: int = 0) -> None:
        self.data = data
        self.machine = machine
        self.size = len(data)
        self.order = "<" if little else ">"
        self.wide = elf_class == 64

    def unpack(self, layout: str, offset: int) -> tuple:
        fmt = self.order + layout
        if offset < 0 or offset + struct.calcsize(fmt) > self.size:
            raise _Unusual("past the end")
        return struct.unpack_from(fmt, self.data, offset)

    def cstring(self, offset: int) -> bytes | None:
        """pyelftools' parse_cstring_from_stream: None when the file ends first. A string
        starting past the end is left to pyelftools (its seek there may fail: EINVAL past
        the file system's largest offset)."""
        if offset >= self.size:
            raise _Unusual("string past the end")
        end = self.data.find(b"\0", offset)
        return None if end < 0 else bytes(self.data[offset:end])

    def section_string(self, table: _Section, offset: int) -> str:
        """StringTableSection.get_string (unbounded by the section, as pyelftools reads)."""
        text = self.cstring(table.offset + offset)
        return text.decode("utf-8", errors="replace") if text else ""

    def bytes_at(self, offset: int, size: int) -> bytes:
        """Section.data(), for a section inside the file (pyelftools' read of one running
        past the end may fail: a huge size, an offset it cannot seek to)."""
        if offset + size > self.size:
            raise _Unusual("section past the end")
        return bytes(self.data[offset:offset + size])


def _parse_plain(path: str, data, st: os.stat_result) -> ElfFacts | None:
    """The facts `_parse` gives, read with struct; None where pyelftools must read."""
    try:
        return _read_plain(path, data, st)
    except (_Unusual, struct.error, IndexError, ValueError, OverflowError):
        return None


def _read_plain(path: str, data, st: os.stat_result) -> ElfFacts:
    elf, ident, sections, e_phoff, e_phnum, phdr, phdr_size = _plain_layout(data)
    _remember_sections(path, st, sections)
    segments = program_headers(elf.unpack, phdr, elf.wide, e_phoff, e_phnum, phdr_size)
    interpreter, values, has_dynamic, abi_tag = _plain_program_headers(elf, segments, sections)
    flags_1 = values.get(DT_FLAGS_1, [0])[0]
    needs, definitions, imported = _plain_versions(elf, sections)
    names = {DT_NEEDED: "DT_NEEDED", DT_SONAME: "DT_SONAME", DT_RPATH: "DT_RPATH",
             DT_RUNPATH: "DT_RUNPATH", DT_FLAGS_1: "DT_FLAGS_1"}
    by_name = {names[tag]: list(found) for tag, found in values.items() if tag in names}
    return _facts(path, st, ident, interpreter, by_name, flags_1, (needs, definitions, imported),
                  has_dynamic, abi_tag, tuple(s.name for s in sections))


def program_headers(unpack: Callable[[str, int], tuple], layout: str, wide: bool, at: int,
                    count: int, size: int) -> list[tuple[int, int, int, int]]:
    """(p_type, p_offset, p_vaddr, p_filesz) of each of `count` program headers of `size`
    bytes from offset `at`, read by `unpack(layout, offset)` (ELF64 puts p_flags second)."""
    headers = []
    for number in range(count):
        fields = unpack(layout, at + number * size)
        if wide:
            kind, _, offset, vaddr, _, filesz, _, _ = fields
        else:
            kind, offset, vaddr, _, filesz, _, _, _ = fields
        headers.append((kind, offset, vaddr, filesz))
    return headers


@dataclass(frozen=True)
class PlainSection:
    """A section header as the plain reader gives it (compiled_paths reads .rodata by it)."""

    name: str
    kind: int  # sh_type
    flags: int
    offset: int
    size: int


def plain_section_headers(path: str) -> tuple[PlainSection, ...] | None:
    """The section headers of `path`, named, read with struct; None where the plain reader
    declines the file (pyelftools must read it) or it has no section headers. Those the
    resolver's read_elf found are reused while the file is unchanged (the scan of 1,000
    libraries spent 0.45 s reading them again)."""
    try:
        known = _SECTIONS_READ.get((path, file_identity(os.stat(path))))
    except OSError:
        return None
    if known is not None:
        return known or None
    try:
        with open(path, "rb") as handle, \
                mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            sections = _plain_layout(data)[2]
    except (OSError, _Unusual, struct.error, IndexError, ValueError, OverflowError):
        return None
    return _plain_headers(sections) or None


# The section headers read_elf's plain reader found, by (path, identity): at most
# SECTIONS_KEPT files, the oldest forgotten first.
SECTIONS_KEPT = 8192
_SECTIONS_READ: dict[tuple[str, tuple[int, ...]], tuple[PlainSection, ...]] = {}
_SECTIONS_LOCK = threading.Lock()


def file_identity(st: os.stat_result) -> tuple[int, ...]:
    """A file as it is now: device, inode, size, mtime and ctime (a change to any is a
    change of the file, for the caches keyed by it)."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _plain_headers(sections: list[_Section]) -> tuple[PlainSection, ...]:
    return tuple(PlainSection(s.name, s.kind, s.flags, s.offset, s.size) for s in sections)


def _remember_sections(path: str, st: os.stat_result, sections: list[_Section]) -> None:
    headers = _plain_headers(sections)
    with _SECTIONS_LOCK:  # the build's analysis thread reads ELF files too
        if len(_SECTIONS_READ) >= SECTIONS_KEPT:
            del _SECTIONS_READ[next(iter(_SECTIONS_READ))]
        _SECTIONS_READ[(path, file_identity(st))] = headers


def _plain_layout(data) -> tuple[_Plain, ElfIdent, list[_Section], int, int, str, int]:
    """The file, its ident, its checked sections and where its program headers are."""
    ident = read_ident(bytes(data[:20]))
    if ident is None:
        raise _Unusual("not ELF")
    elf = _Plain(data, ident.little_endian, ident.elf_class, data[18] | data[19] << 8
                 if ident.little_endian else data[18] << 8 | data[19])
    if elf.wide:
        (e_type, e_machine, _, _, e_phoff, e_shoff, _, _, e_phentsize, e_phnum, e_shentsize,
         e_shnum, e_shstrndx) = elf.unpack("HHIQQQIHHHHHH", 16)
        phdr, phdr_size, shdr, shdr_size = "IIQQQQQQ", 56, "IIQQQQIIQQ", 64
    else:
        (e_type, e_machine, _, _, e_phoff, e_shoff, _, _, e_phentsize, e_phnum, e_shentsize,
         e_shnum, e_shstrndx) = elf.unpack("HHIIIIIHHHHHH", 16)
        phdr, phdr_size, shdr, shdr_size = "IIIIIIII", 32, "IIIIIIIIII", 40
    if (e_machine not in FAST_MACHINES or data[7] not in FAST_OSABI or e_phnum >= 0xFFFF
            or e_type not in (2, 3)):
        raise _Unusual("machine, OS ABI, file type or program header count")
    if e_phnum and e_phentsize != phdr_size:
        raise _Unusual("program header size")
    sections = _plain_sections(elf, e_shoff, e_shentsize, e_shnum, e_shstrndx, shdr, shdr_size)
    return elf, ident, sections, e_phoff, e_phnum, phdr, phdr_size


def _plain_sections(elf: _Plain, e_shoff: int, e_shentsize: int, e_shnum: int,
                    e_shstrndx: int, shdr: str, shdr_size: int) -> list[_Section]:
    """Every section header, named, with the checks pyelftools makes creating each."""
    if e_shoff == 0:
        return []
    if e_shnum == 0 or e_shentsize != shdr_size or e_shstrndx >= e_shnum:
        raise _Unusual("section header table")
    raw = []
    for number in range(e_shnum):
        (name, kind, flags, _, offset, size, link, info, _,
         entry_size) = elf.unpack(shdr, e_shoff + number * shdr_size)
        raw.append((name, kind, flags, offset, size, link, info, entry_size))
    names_at = raw[e_shstrndx][3]
    sections = [_Section(elf.section_string(_Section("", 0, 0, names_at, 0, 0, 0, 0), name),
                         kind, flags, offset, size, link, info, entry_size)
                for name, kind, flags, offset, size, link, info, entry_size in raw]
    for section in sections:
        _check_section(elf, section, sections)
    return sections


def _check_section(elf: _Plain, section: _Section, sections: list[_Section]) -> None:
    """What pyelftools' _make_section checks (or reads) for this section's type."""
    if section.flags & SHF_COMPRESSED:
        # pyelftools reads a compressed section's Elf_Chdr when it makes the section and
        # decompresses only in data(), which nothing here calls for SHT_PROGBITS: the DWARF
        # sections Go (by default) and gcc -gz compress. Any other kind compressed is left
        # to pyelftools (its data() of a string or symbol table would decompress it).
        if section.kind != SHT_PROGBITS:
            raise _Unusual("compressed section other than SHT_PROGBITS")
        _within(elf, section.offset + (24 if elf.wide else 12))
    kind = section.kind
    if kind in _PLAIN_SECTIONS or (kind == SHT_X86_64_UNWIND and elf.machine == 62):
        if kind == SHT_PROGBITS and section.name == ".stab":
            raise _Unusual(".stab")
        return
    if kind not in _CHECKED_SECTIONS:
        raise _Unusual(f"section type {kind:#x}")
    if kind in (SHT_SYMTAB, SHT_DYNSYM):
        _linked(section, sections, (SHT_STRTAB,))
        if section.entry_size <= 0 or section.size % section.entry_size:
            raise _Unusual("symbol table entry size")
    elif kind in (SHT_VERNEED, SHT_VERDEF):
        _linked(section, sections, (SHT_STRTAB,))
    elif kind in (SHT_VERSYM, SHT_HASH, SHT_GNU_HASH):
        _check_section(elf, _linked(section, sections, (SHT_SYMTAB, SHT_DYNSYM)), sections)
        if kind == SHT_HASH and section.size != 0:  # ELFHashTable reads the whole table
            buckets, chains = elf.unpack("II", section.offset)
            _within(elf, section.offset + 8 + 4 * (buckets + chains))
        elif kind == SHT_GNU_HASH:  # GNUHashTable reads its parameters, bloom and buckets
            buckets, _, bloom, _ = elf.unpack("IIII", section.offset)
            _within(elf, section.offset + 16 + (8 if elf.wide else 4) * bloom + 4 * buckets)
    elif kind in (SHT_REL, SHT_RELA):
        sizes = {(SHT_REL, True): 16, (SHT_RELA, True): 24, (SHT_REL, False): 8,
                 (SHT_RELA, False): 12}
        if section.entry_size != sizes[(kind, elf.wide)]:
            raise _Unusual("relocation entry size")
    elif kind == SHT_RELR:
        if section.entry_size != (8 if elf.wide else 4):
            raise _Unusual("RELR entry size")
    elif kind == SHT_DYNAMIC:
        _linked(section, sections, (SHT_STRTAB, SHT_NOBITS, SHT_NULL))


def _within(elf: _Plain, end: int) -> None:
    if end > elf.size:
        raise _Unusual("past the end")


def _linked(section: _Section, sections: list[_Section], kinds: tuple[int, ...]) -> _Section:
    if section.link >= len(sections) or sections[section.link].kind not in kinds:
        raise _Unusual("section link")
    return sections[section.link]


def _plain_program_headers(elf: _Plain, segments: list[tuple[int, int, int, int]],
                           sections: list[_Section],
                           ) -> tuple[str | None, dict[int, list], bool, AbiTag | None]:
    """PT_INTERP, the dynamic values by tag, whether there is a PT_DYNAMIC, the ABI tag."""
    interpreter = None
    values: dict[int, list] = {}
    has_dynamic = False
    abi_tag = None
    for kind, offset, _, filesz in segments:
        if kind == PT_INTERP:
            text = elf.cstring(offset)
            if text is None:
                raise _Unusual("PT_INTERP runs past the end")
            interpreter = text.decode("utf-8")
        elif kind == PT_DYNAMIC:
            has_dynamic = True
            values = _plain_dynamic(elf, offset, filesz, segments, sections)
        elif kind == PT_NOTE:
            abi_tag = abi_tag or _plain_abi_tag(elf, offset, filesz)
    return interpreter, values, has_dynamic, abi_tag


def _plain_dynamic(elf: _Plain, offset: int, filesz: int,
                   segments: list[tuple[int, int, int, int]], sections: list[_Section],
                   ) -> dict[int, list]:
    """The dynamic entries up to DT_NULL (read past p_filesz, as pyelftools does)."""
    if filesz == 0:
        return {}
    layout, size = ("qQ", 16) if elf.wide else ("iI", 8)
    tags = []
    at = offset
    while True:
        tag, value = elf.unpack(layout, at)
        tags.append((tag, value))
        at += size
        if tag == DT_NULL:
            break
    table = next((s for s in sections if s.kind == SHT_DYNAMIC and s.offset == offset), None)
    if table is not None:
        strings = sections[table.link]
        if strings.kind != SHT_STRTAB:
            raise _Unusual("dynamic string table")

        def string(at: int) -> str:
            return elf.section_string(strings, at)
    else:
        address = next((v for t, v in tags if t == DT_STRTAB), None)
        start = None if address is None else next(
            (address - vaddr + seg_offset for kind, seg_offset, vaddr, seg_filesz in segments
             if kind == PT_LOAD and vaddr <= address and address + 1 <= vaddr + seg_filesz),
            None)
        if start is None:
            raise _Unusual("no dynamic string table by address")

        def string(at: int) -> str:
            text = elf.cstring(start + at)
            return text.decode("utf-8") if text else ""
    values: dict[int, list] = {}
    for tag, value in tags:
        if tag in _DYNAMIC_STRINGS:
            value = string(value)
        if tag in _DYNAMIC_STRINGS or tag == DT_FLAGS_1:
            values.setdefault(tag, []).append(value)
    return values


def _plain_abi_tag(elf: _Plain, offset: int, size: int) -> AbiTag | None:
    """The NT_GNU_ABI_TAG note of a PT_NOTE, parsing the notes before it as pyelftools'
    iter_notes does (GNU property notes included)."""
    end = offset + size
    while offset + 12 < end:
        namesz, descsz, kind = elf.unpack("III", offset)
        offset += 12
        name = None
        if namesz:
            padded = (namesz + 3) & ~3
            raw = elf.data[offset:offset + padded]
            if len(raw) < padded or b"\0" not in raw:
                raise _Unusual("note name")
            name = bytes(raw[:raw.index(b"\0")]).decode("latin-1")
            offset += padded
        if offset + descsz > elf.size:
            raise _Unusual("note past the end")
        if kind == NT_GNU_ABI_TAG and name == "GNU":
            abi_os, major, minor, tiny = elf.unpack("IIII", offset)
            return AbiTag(_ABI_OS.get(abi_os, str(abi_os)), (major, minor, tiny))
        if kind == NT_GNU_PROPERTY_TYPE_0 and name == "GNU":
            at, note_end = offset, offset + descsz
            while at < note_end:
                _, datasz = elf.unpack("II", at)
                if at + 8 + max(datasz, 8) + 8 > elf.size:
                    raise _Unusual("property past the end")
                at += _round_property(datasz + 8, elf.wide)
        offset += (descsz + 3) & ~3
    return None


def _round_property(size: int, wide: bool) -> int:
    align = 8 if wide else 4
    return (size + align - 1) & ~(align - 1)


def _plain_versions(elf: _Plain, sections: list[_Section],
                    ) -> tuple[tuple[VersionNeed, ...], tuple[str, ...], tuple[str, ...]]:
    """_versions, from the section headers."""
    verneed = verdef = versym = dynsym = None
    for section in sections:
        if section.kind == SHT_VERNEED:
            verneed = section
        elif section.kind == SHT_VERDEF:
            verdef = section
        elif section.kind == SHT_VERSYM:
            versym = section
        elif section.kind == SHT_DYNSYM:
            dynsym = section
    imports: list[tuple[int, str]] = []
    if dynsym is not None:
        strtab = sections[dynsym.link]
        imports = _symbol_names(elf.bytes_at(dynsym.offset, dynsym.size),
                                _section_data(elf, strtab), elf.wide, elf.order,
                                defined=False)
    versions: list[int] = []
    if versym is not None:
        data = _section_data(elf, versym)
        usable = data[: len(data) - len(data) % 2]
        versions = [value for (value,) in struct.iter_unpack(elf.order + "H", usable)]
    symbols_by_index = _by_version_index(imports, versions)
    needs: list[VersionNeed] = []
    if verneed is not None:
        strings = sections[verneed.link]
        for file_at, auxiliaries in _plain_records(elf, verneed, "HHIII", 1, 3, 4):
            file = elf.section_string(strings, file_at)
            for fields in auxiliaries:
                _, flags, other, name_at, _ = fields
                needs.append(VersionNeed(
                    file=file, version=elf.section_string(strings, name_at),
                    weak=bool(flags & 0x2),
                    symbols=tuple(sorted(symbols_by_index.get(other, ())))))
    definitions: list[str] = []
    if verdef is not None:
        strings = sections[verdef.link]
        for flags, auxiliaries in _plain_records(elf, verdef, "HHHHIII", 3, 5, 6,
                                                 flags_at=1):
            names = [elf.section_string(strings, fields[0]) for fields in auxiliaries]
            if flags & 0x1:
                continue
            if names:
                definitions.append(names[0])
    return tuple(needs), tuple(definitions), tuple(sorted({name for _, name in imports}))


def _section_data(elf: _Plain, section: _Section) -> bytes:
    if section.kind == SHT_NOBITS:
        return b"\0" * section.size
    return elf.bytes_at(section.offset, section.size)


def _plain_records(elf: _Plain, section: _Section, layout: str, count_at: int, aux_at: int,
                   next_at: int, flags_at: int | None = None):
    """(vn_file or vd_flags, auxiliary records) of a verneed/verdef section, walked as
    pyelftools' iter_versions under `_chained`: sh_info records, each to a zero `next`,
    no more than the section's size over 8."""
    limit = max(1, section.size // 8)
    aux_layout = "IHHII" if layout == "HHIII" else "II"
    aux_next = 4 if layout == "HHIII" else 1
    at = section.offset
    for number in range(section.info):
        if number >= limit:
            raise _Unusual("more version records than fit")
        fields = elf.unpack(layout, at)
        count = fields[count_at]
        if count <= 0:
            raise _Unusual("no auxiliary entries")
        auxiliaries = []
        aux = at + fields[aux_at]
        for aux_number in range(count):
            if aux_number >= limit:
                raise _Unusual("more version records than fit")
            entry = elf.unpack(aux_layout, aux)
            auxiliaries.append(entry)
            if entry[aux_next] == 0:
                break
            aux += entry[aux_next]
        yield (fields[2] if flags_at is None else fields[flags_at]), auxiliaries
        if fields[next_at] == 0:
            return
        at += fields[next_at]


def _symbol_names(data: bytes, strtab: bytes, wide: bool, order: str, *, defined: bool,
                  ) -> list[tuple[int, str]]:
    """(index, name) of the named symbols of a symbol table's bytes, defined or undefined."""
    if wide:
        layout, size, name_at, shndx_at = struct.Struct(order + "IBBHQQ"), 24, 0, 3
    else:
        layout, size, name_at, shndx_at = struct.Struct(order + "IIIBBH"), 16, 0, 5
    result = []
    for number, fields in enumerate(layout.iter_unpack(data[: len(data) - len(data) % size])):
        offset = fields[name_at]
        if (fields[shndx_at] != 0) != defined or offset == 0 or offset >= len(strtab):
            continue
        end = strtab.find(b"\0", offset)
        name = strtab[offset: end if end >= 0 else len(strtab)].decode("utf-8", "replace")
        if name:
            result.append((number, name))
    return result


# pyelftools' names of the section types the plain reader accepts (_PLAIN_SECTIONS,
# _CHECKED_SECTIONS and x86-64's unwind tables); tests/unit/test_elf_names.py holds them
# to pyelftools' tables.
SECTION_KIND_NAMES = {
    SHT_NULL: "SHT_NULL", SHT_PROGBITS: "SHT_PROGBITS", SHT_SYMTAB: "SHT_SYMTAB",
    SHT_STRTAB: "SHT_STRTAB",
    SHT_RELA: "SHT_RELA", SHT_HASH: "SHT_HASH", SHT_DYNAMIC: "SHT_DYNAMIC", 7: "SHT_NOTE",
    SHT_NOBITS: "SHT_NOBITS", SHT_REL: "SHT_REL", SHT_DYNSYM: "SHT_DYNSYM",
    14: "SHT_INIT_ARRAY", 15: "SHT_FINI_ARRAY", 16: "SHT_PREINIT_ARRAY", 17: "SHT_GROUP",
    SHT_RELR: "SHT_RELR", SHT_GNU_HASH: "SHT_GNU_HASH", SHT_VERDEF: "SHT_GNU_verdef",
    SHT_VERNEED: "SHT_GNU_verneed", SHT_VERSYM: "SHT_GNU_versym",
    SHT_X86_64_UNWIND: "SHT_AMD64_UNWIND",
}


def _plain_link_facts(data) -> LinkFacts:
    """read_link_facts with struct (`_link_facts` is its twin); raises what `_plain_first`
    takes as "let pyelftools read it"."""
    elf, ident, sections, e_phoff, e_phnum, phdr, phdr_size = _plain_layout(data)
    segments = program_headers(elf.unpack, phdr, elf.wide, e_phoff, e_phnum, phdr_size)
    interpreter, values, _, _ = _plain_program_headers(elf, segments, sections)
    loads = [s for s in segments if s[0] == PT_LOAD]
    table = next((s for s in segments if s[0] == PT_PHDR), None)
    where_old_kernels_look = (table is None or not loads
                              or table[2] == loads[0][2] - loads[0][1] + e_phoff)
    return LinkFacts(ident, interpreter, tuple(values.get(DT_NEEDED, ())),
                     _joined(values.get(DT_RPATH)), _joined(values.get(DT_RUNPATH)),
                     where_old_kernels_look)


def _plain_section_table(data) -> SectionTable:
    """read_section_table with struct (`_section_table` is its twin)."""
    elf, ident, sections, e_phoff, e_phnum, phdr, phdr_size = _plain_layout(data)
    header, layout = ("HHIQQQIHHHHHH", "IIQQQQIIQQ") if elf.wide else \
        ("HHIIIIIHHHHHH", "IIIIIIIIII")
    (_, _, _, _, _, e_shoff, _, e_ehsize, e_phentsize, _, e_shentsize, _,
     e_shstrndx) = elf.unpack(header, 16)
    headers = []
    for index, section in enumerate(sections):
        at = e_shoff + index * e_shentsize
        _, kind, flags, address, offset, size, link, _, alignment, _ = elf.unpack(layout, at)
        name = SECTION_KIND_NAMES.get(kind)
        if name is None:
            raise _Unusual(f"section type {kind:#x}")
        headers.append(SectionHeader(index, section.name, name, flags, address, offset, size,
                                     alignment, link, bytes(data[at:at + e_shentsize])))
    segments = program_headers(elf.unpack, phdr, elf.wide, e_phoff, e_phnum, phdr_size)
    fixed = [(0, e_ehsize), (e_phoff, e_phoff + e_phnum * e_phentsize)]
    fixed += [(offset, offset + filesz) for _, offset, _, filesz in segments if filesz]
    return SectionTable(ident.elf_class, ident.little_endian, e_shoff, e_shentsize,
                        e_shstrndx, tuple(headers), tuple(fixed))


def _plain_defined_names(data) -> frozenset[str] | None:
    """defined_symbol_names with struct (`_defined_names` is its twin)."""
    elf, _, sections, _, _, _, _ = _plain_layout(data)
    table = next((s for s in sections if s.kind == SHT_SYMTAB), None)
    if table is None:
        return None
    names = _symbol_names(_section_data(elf, table), _section_data(elf, sections[table.link]),
                          elf.wide, elf.order, defined=True)
    return frozenset(name for _, name in names)

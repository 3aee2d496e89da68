"""What glibc's loader reads of an ELF file to link it, as a value two files can be
compared by: the check that a patched copy links exactly as its source does.

patch.py lets LIEF rebuild the tables a new DT_RPATH string forces it to move (.dynstr,
and with it .dynsym, the hash tables, the version tables and the relocation tables), so
their bytes cannot be compared with the source's. What they mean can: this module reads
them the way ld.so does, from PT_DYNAMIC and the addresses its entries give, never from
section headers, and `view_differences` says where two files' meanings part:

- every dynamic entry but those that locate the rebuilt tables (DT_STRTAB, DT_SYMTAB, ...)
  and DT_RPATH/DT_RUNPATH, the patch's own: with string values read as strings;
- every dynamic symbol (name, value, size, type and binding, visibility, section, and its
  version by name: which file's or which definition, hidden or not), in any order, for a
  table of up to FULL_CHECK_SYMBOLS (node's 75,000: how many, and those relocations use);
- every relocation of DT_RELA/DT_REL and of DT_JMPREL, in order, its symbol by name and
  version (glibc applies them in order; IRELATIVE resolvers run as they come);
- every address DT_RELR relocates, in order (LIEF 0.15.1 rewrote .relr.dyn wrongly:
  Debian 12's iconv and getent crashed at start, and nothing but running them showed it);
- which defined symbols a lookup through DT_GNU_HASH (bloom filter, bucket, chain) or
  through DT_HASH misses (where the symbols are compared): a symbol a hash table lost is
  one a plugin or dlsym cannot see, or one a library's reference no longer finds in the
  program first (an allocator the program exports would then be two allocators).

A relocation LIEF bound to another version of its symbol (it binds each to the first
symbol of the name) is put back before the comparison (`rebind_relocations`).

Read with struct over the whole file. The symbol tables are handled column by column
with map() and the operator module, not symbol by symbol (node's 75,000 dynamic symbols:
0.4 s of CPU a file symbol by symbol, 0.25 s by columns, and bundling node took 34% longer
with both views; past FULL_CHECK_SYMBOLS only the count and the relocated ones are read).
A file this cannot read (no PT_DYNAMIC, an entry pointing outside the file) gives a view
saying why: a copy is held to a source that read cleanly, and refused if it then does not
read; a source this cannot read holds its copy to nothing here.
"""

from __future__ import annotations

import itertools
import mmap
import struct
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import compress, repeat
from operator import and_, eq, floordiv, mod, rshift, xor
from typing import NamedTuple

from bundler.elf import program_headers

PT_LOAD, PT_DYNAMIC = 1, 2
DT_NULL, DT_NEEDED, DT_PLTRELSZ, DT_HASH, DT_STRTAB, DT_SYMTAB = 0, 1, 2, 4, 5, 6
DT_RELA, DT_RELASZ, DT_STRSZ, DT_SYMENT = 7, 8, 10, 11
DT_SONAME, DT_RPATH, DT_REL, DT_RELSZ, DT_PLTREL = 14, 15, 17, 18, 20
DT_JMPREL, DT_RUNPATH, DT_RELRSZ, DT_RELR = 23, 29, 35, 36
DT_GNU_HASH, DT_VERSYM = 0x6FFFFEF5, 0x6FFFFFF0
DT_VERDEF, DT_VERDEFNUM, DT_VERNEED, DT_VERNEEDNUM = 0x6FFFFFFC, 0x6FFFFFFD, 0x6FFFFFFE, 0x6FFFFFFF
DT_AUXILIARY, DT_FILTER, DT_CONFIG, DT_DEPAUDIT, DT_AUDIT = (0x7FFFFFFD, 0x7FFFFFFF, 0x6FFFFEFA,
                                                              0x6FFFFEFB, 0x6FFFFEFC)
# Where the rebuilt tables are, and how big: LIEF moves them. (Their contents are compared.)
LOCATING = frozenset({DT_HASH, DT_STRTAB, DT_SYMTAB, DT_RELA, DT_RELASZ, DT_STRSZ, DT_REL,
                      DT_RELSZ, DT_JMPREL, DT_PLTRELSZ, DT_RELR, DT_RELRSZ, DT_GNU_HASH,
                      DT_VERSYM, DT_VERDEF, DT_VERNEED})
PATCHED = frozenset({DT_RPATH, DT_RUNPATH})  # what patch.py sets
STRINGS = frozenset({DT_NEEDED, DT_SONAME, DT_AUXILIARY, DT_FILTER, DT_CONFIG, DT_DEPAUDIT,
                     DT_AUDIT})
VERSYM_HIDDEN = 0x8000
SHN_UNDEF = 0
# Past this many dynamic symbols, they are not compared whole, nor looked up through the
# hash tables (node's 75,000: 0.25-0.3 s of CPU for each of the source and its copy, and
# +34% on bundling node; Debian's python3.11, perl and bash have 2,200-2,600, checked in
# ~10 ms each): those the relocations name are still held to the source's.
FULL_CHECK_SYMBOLS = 10_000

Version = tuple[str, ...]  # ("need", file, name) / ("def", name, flags) / ("local",) / ...
Hashes = tuple[Mapping[bytes, int], Mapping[bytes, int]]  # name -> its GNU, its SysV hash
# One dynamic symbol, as bytes (hashed once, where a tuple's hash is computed anew at
# every lookup: comparing node's 75,000 as tuples took 0.1 s): its name, NUL, its version
# (RECORD_VERSION's fields joined by US), NUL, then RECORD_FIELDS packed.
SymbolRecord = bytes
RECORD_FIELDS = struct.Struct("<?QQBBH")  # hidden, value, size, info, other, section


class _Unreadable(ValueError):
    """The file cannot be read as the loader reads it; the message says where."""


class Relocation(NamedTuple):
    offset: int
    kind: int  # the machine's relocation type
    symbol: tuple[bytes, Version] | None  # (name, version); None: symbol 0
    addend: int | None  # None in a REL table


@dataclass(frozen=True)
class LoaderView:
    """What the loader links by, order kept where the loader's order matters."""

    problem: str | None  # why the file could not be read; then the rest is empty
    entries: tuple[tuple[int, int | str], ...] = ()  # (tag, value), sorted
    symbol_count: int = 0
    # how many of each symbol; None: more than FULL_CHECK_SYMBOLS, not compared, and the
    # hash lookups neither (a symbol is then held to the source's where a relocation uses it)
    symbols: Mapping[SymbolRecord, int] | None = field(default_factory=Counter)
    relocations: tuple[Relocation, ...] = ()  # DT_RELA/DT_REL's, in order
    plt_relocations: tuple[Relocation, ...] = ()  # DT_JMPREL's, in order
    relr: tuple[int, ...] = ()  # the addresses DT_RELR relocates, in order
    # the defined symbols a lookup does not find (a linker's table: none); None: no table
    gnu_hash_misses: frozenset[tuple[bytes, Version]] | None = None  # DT_GNU_HASH
    sysv_hash_misses: frozenset[tuple[bytes, Version]] | None = None  # DT_HASH
    # the hashed names' GNU and SysV hash values, for reading another file's tables by
    # (loader_view's `hashes`): not part of what the loader links by
    hashes: Hashes = field(default=({}, {}), compare=False)


def linking_differences(source: str, copy: str) -> list[str]:
    """How `copy` links differently from `source`, each a short phrase; [] when alike
    (OSError if either cannot be opened)."""
    before = loader_view(source)
    return view_differences(before, loader_view(copy, before.hashes))


def loader_view(path: str, hashes: Hashes | None = None) -> LoaderView:
    """The view of the ELF file at `path` (OSError if it cannot be opened).

    The hash lookups need each name's hash, which Python computes at ~8 ms per 1,000 of
    node's names. Without `hashes`, a name's GNU hash is the one its own chain entry
    stores (the linker's, trusted: a wrong one would fail in the source too; its low bit,
    which the chain entry gives over to its end-of-chain mark, is that of 1 + the sum of
    the name's bytes, as 33 is odd); with `hashes` (the source's view's), those are used,
    so a copy is held to the source's hashes, not to what its own tables claim. A name
    neither gives is hashed here."""
    with open(path, "rb") as handle, \
            mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        try:
            return _Reader(data, hashes).view()
        except (_Unreadable, struct.error, IndexError, ValueError, OverflowError) as exc:
            return LoaderView(problem=str(exc) or type(exc).__name__)


def misbound(source: LoaderView, copy: LoaderView) -> bool:
    """Whether `rebind_relocations` may have something to put back."""
    return not source.problem and not copy.problem and (
        source.relocations != copy.relocations
        or source.plt_relocations != copy.plt_relocations)


def rebind_relocations(source: LoaderView, copy: str) -> int:
    """Give every relocation of `copy` that names another version of its symbol than the
    source's relocation in the same place the source's symbol again, in place; how many.

    LIEF (0.16.7 to 1.0.0, at least) rebuilds .dynsym and then binds each relocation to
    the first symbol of its name: in a library that defines a name at two versions
    (libdevmapper's dm_task_get_info@Base and @@DM_1_02_97), the library's own calls went
    to the other version's code. Only that is put back: the same place, type and addend,
    a symbol of the same name, and exactly one symbol of the copy with the source's name
    and version; anything else stays for `view_differences` to report."""
    if source.problem:
        return 0
    with open(copy, "r+b") as handle, \
            mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_WRITE) as data:
        reader = _Reader(data, source.hashes, every_symbol=True)
        try:
            view = reader.view()
        except (_Unreadable, struct.error, IndexError, ValueError, OverflowError):
            return 0
        index: dict[tuple[bytes, Version], list[int]] = {}
        assert isinstance(reader.symbols, _Symbols)  # every_symbol
        for number, key in enumerate(zip(reader.symbols.names, reader.symbols.versions)):
            index.setdefault(key, []).append(number)
        shift = 32 if reader.wide else 8
        rebound = 0
        for (address, _, with_addend), old, new in zip(
                reader.tables, (source.relocations, source.plt_relocations),
                (view.relocations, view.plt_relocations)):
            if len(old) != len(new):
                continue
            layout = reader.relocation_layout(with_addend)
            entry = struct.calcsize(layout)
            for number, (was, now) in enumerate(zip(old, new)):
                if (was == now or was.symbol is None or now.symbol is None
                        or was._replace(symbol=now.symbol) != now
                        or was.symbol[0] != now.symbol[0]
                        or len(index.get(was.symbol, ())) != 1):
                    continue
                at = reader._at(address + number * entry, entry)
                fields = list(struct.unpack_from(layout, data, at))
                fields[1] = index[was.symbol][0] << shift | now.kind
                struct.pack_into(layout, data, at, *fields)
                rebound += 1
        if rebound:
            data.flush()
        return rebound


def view_differences(before: LoaderView, after: LoaderView) -> list[str]:
    """How `after` links differently from `before`, each a short phrase; [] when alike.
    Symbols are compared in any order (LIEF orders them by its hash table), all else in
    the order the loader meets it."""
    if before.problem:  # nothing to hold `after` to (the other checks of a copy still do)
        return []
    if after.problem:
        return [f"the loader's tables no longer read ({after.problem})"]
    problems = []
    if before.entries != after.entries:
        problems.append(_first("dynamic entry", before.entries, after.entries))
    if before.symbol_count != after.symbol_count:
        problems.append(f"{after.symbol_count} dynamic symbols where the source has "
                        f"{before.symbol_count}")
    elif before.symbols is not None and after.symbols is not None \
            and before.symbols != after.symbols:
        problems.append(_symbols_changed(before.symbols, after.symbols))
    for label, old, new in (("relocation", before.relocations, after.relocations),
                            ("PLT relocation", before.plt_relocations, after.plt_relocations),
                            ("RELR address", before.relr, after.relr)):
        if old != new:
            problems.append(_first(label, old, new))
    looked_up = before.symbols is not None and after.symbols is not None
    for label, missed_before, missed_after in (
            ("DT_GNU_HASH", before.gnu_hash_misses, after.gnu_hash_misses),
            ("DT_HASH", before.sysv_hash_misses, after.sysv_hash_misses)):
        if looked_up and missed_before != missed_after:  # (the same symbols, checked above)
            problems.append(_lookups(label, missed_before, missed_after))
    return problems


def _first(label: str, old: Sequence, new: Sequence) -> str:
    """The first place two sequences part, described."""
    for number, (a, b) in enumerate(zip(old, new)):
        if a != b:
            return f"{label} {number} is {_short(b)} where the source has {_short(a)}"
    plural = label + ("es" if label.endswith("s") else "s")
    return f"{len(new)} {plural} where the source has {len(old)}"


def _symbols_changed(before: Mapping[SymbolRecord, int], after: Mapping[SymbolRecord, int],
                     ) -> str:
    lost = sorted((Counter(before) - Counter(after)).elements())
    gained = sorted((Counter(after) - Counter(before)).elements())
    if lost and gained:
        return f"dynamic symbol {_told(lost[0])} became {_told(gained[0])}"
    if lost:
        return f"dynamic symbol {_told(lost[0])} is gone ({len(lost)} in all)"
    return f"dynamic symbol {_told(gained[0])} was added ({len(gained)} in all)"


def _told(record: SymbolRecord) -> str:
    name, version, fields = record.split(b"\0", 2)
    hidden, value, size, info, other, section = RECORD_FIELDS.unpack(fields)
    return _clipped(f"{name.decode(errors='replace')}@"
                    f"{version.decode().replace(chr(31), ' ')}"
                    f"{' (hidden)' if hidden else ''}: value {value:#x}, size {size}, "
                    f"info {info:#x}, other {other:#x}, section {section}")


def _short(item: object) -> str:
    return _clipped(repr(item))


def _clipped(text: str) -> str:
    return text if len(text) <= 160 else text[:157] + "..."


def _lookups(label: str, before: frozenset | None, after: frozenset | None) -> str:
    """Two files' misses of one hash table, told apart."""
    if before is None or after is None:
        return f"{label} {'added' if before is None else 'removed'}"
    lost, gained = sorted(after - before), sorted(before - after)
    if lost:
        return (f"a lookup through {label} no longer finds "
                f"{lost[0][0].decode(errors='replace')} ({len(lost)} lost)")
    return (f"a lookup through {label} now finds {gained[0][0].decode(errors='replace')} "
            f"({len(gained)} gained)")


@dataclass(frozen=True)
class _Symbols:
    """The dynamic symbol table as columns, in table order."""

    names: list[bytes]
    versions: list[Version]
    hidden: list[bool]
    values: tuple[int, ...]
    sizes: tuple[int, ...]
    infos: tuple[int, ...]
    others: tuple[int, ...]
    sections: tuple[int, ...]

    def records(self) -> Counter[SymbolRecord]:
        labels = {version: "\x1f".join(version).encode("utf-8", "surrogateescape")
                  for version in set(self.versions)}
        return Counter(map(b"\0".join, zip(
            self.names, map(labels.__getitem__, self.versions),
            map(RECORD_FIELDS.pack, self.hidden, self.values, self.sizes, self.infos,
                self.others, self.sections))))

    @property
    def count(self) -> int:
        return len(self.names)

    def key(self, number: int) -> tuple[bytes, Version]:
        return self.names[number], self.versions[number]

    def findable(self) -> list[bool]:
        """Which a lookup may find: named and defined (glibc's check_match skips
        undefined ones)."""
        return [bool(name) and section != SHN_UNDEF
                for name, section in zip(self.names, self.sections)]


class _OneByOne:
    """The dynamic symbols of a table too large to check whole: read one at a time, those
    the relocations name."""

    def __init__(self, reader: _Reader, table: int, layout: str, versym: int | None,
                 versions: dict[int, Version], count: int) -> None:
        self.reader, self.table, self.layout = reader, table, layout
        self.entry = struct.calcsize(layout)
        self.versym, self.versions, self.count = versym, versions, count

    def key(self, number: int) -> tuple[bytes, Version]:
        reader = self.reader
        name_at = struct.unpack_from(self.layout, reader.data, self.table + number * self.entry)[0]
        index = 1 if self.versym is None else reader._unpack("H", self.versym + 2 * number)[0]
        version = self.versions.get(index & ~VERSYM_HIDDEN & 0xFFFF)
        if version is None:
            raise _Unreadable(f"version index {index & ~VERSYM_HIDDEN} is defined nowhere")
        return reader.name(name_at), version


class _Offsets(dict):
    """DT_STRTAB's strings by offset: found by splitting the table at its NULs; an offset
    inside a string (a suffix the linker shares) is read when asked for."""

    def __init__(self, reader: _Reader) -> None:
        table = bytes(reader.data[reader.strtab:reader.strtab + reader.strsz])
        parts = table.split(b"\0")[:-1]  # the last part has no NUL after it
        super().__init__(zip(itertools.accumulate((len(p) + 1 for p in parts), initial=0),
                             parts))
        self.reader = reader

    def __missing__(self, offset: int) -> bytes:
        name = self[offset] = self.reader.name(offset)
        return name


class _Reader:
    def __init__(self, data, hashes: Hashes | None, every_symbol: bool = False) -> None:
        if data[:4] != b"\x7fELF" or data[4] not in (1, 2) or data[5] not in (1, 2):
            raise _Unreadable("not ELF")
        self.data = data
        self.given = hashes
        self.every_symbol = every_symbol  # read whole even past FULL_CHECK_SYMBOLS
        self.gnu_hashes: dict[bytes, int] = {}
        self.sysv_hashes: dict[bytes, int] = {}
        self.wide = data[4] == 2
        self.order = "<" if data[5] == 1 else ">"
        self.word = 8 if self.wide else 4
        if self.wide:
            phoff, phentsize, phnum = self._unpack("Q", 0x20)[0], *self._unpack("HH", 0x36)
            layout = "IIQQQQQQ"
        else:
            phoff, phentsize, phnum = self._unpack("I", 0x1C)[0], *self._unpack("HH", 0x2A)
            layout = "IIIIIIII"
        if phnum and phentsize != struct.calcsize(self.order + layout):
            raise _Unreadable("program header size")
        self.loads: list[tuple[int, int, int]] = []  # (vaddr, offset, filesz)
        self.dynamic: tuple[int, int] | None = None
        for kind, offset, vaddr, filesz in program_headers(self._unpack, layout, self.wide,
                                                           phoff, phnum, phentsize):
            if kind == PT_LOAD:
                self.loads.append((vaddr, offset, filesz))
            elif kind == PT_DYNAMIC:
                self.dynamic = (offset, filesz)

    def _unpack(self, layout: str, offset: int) -> tuple:
        if offset < 0:
            raise _Unreadable("negative offset")
        return struct.unpack_from(self.order + layout, self.data, offset)

    def _at(self, address: int, size: int = 1) -> int:
        """The file offset of `size` bytes the loader maps at `address`."""
        for vaddr, offset, filesz in self.loads:
            if vaddr <= address and address + size <= vaddr + filesz:
                return offset + address - vaddr
        raise _Unreadable(f"address {address:#x} is in no loaded part of the file")

    def name(self, offset: int) -> bytes:
        """The string at `offset` of DT_STRTAB, which must end inside it."""
        if offset >= self.strsz:
            raise _Unreadable(f"string {offset} past the string table")
        start = self.strtab + offset
        end = self.data.find(b"\0", start, self.strtab + self.strsz)
        if end < 0:
            raise _Unreadable(f"string {offset} not ended inside the string table")
        return bytes(self.data[start:end])

    def _string(self, offset: int) -> str:
        return self.name(offset).decode("utf-8", "surrogateescape")

    def view(self) -> LoaderView:
        if self.dynamic is None:
            raise _Unreadable("no PT_DYNAMIC")
        tags = self._entries()
        first = {tag: value for tag, value in reversed(tags)}
        if DT_STRTAB not in first or DT_STRSZ not in first:
            raise _Unreadable("no DT_STRTAB or DT_STRSZ")
        self.strsz = first[DT_STRSZ]
        self.strtab = self._at(first[DT_STRTAB], self.strsz)
        entries = tuple(sorted(
            ((tag, self._string(value) if tag in STRINGS else value)
             for tag, value in tags if tag not in LOCATING and tag not in PATCHED),
            key=lambda e: (e[0], str(e[1]))))
        symbols = self.symbols = self._symbols(first, self._versions(first))
        # (address, size, with addend) of DT_RELA or DT_REL's table, and of DT_JMPREL's
        self.tables = ((first[DT_RELA], first.get(DT_RELASZ, 0), True) if DT_RELA in first
                       else (first[DT_REL], first.get(DT_RELSZ, 0), False) if DT_REL in first
                       else (0, 0, False),
                       (first.get(DT_JMPREL, 0), first.get(DT_PLTRELSZ, 0),
                        first.get(DT_PLTREL) == DT_RELA))
        relocations, plt = (self._relocations(*table, symbols) for table in self.tables)
        relr = self._relr(first[DT_RELR], first.get(DT_RELRSZ, 0)) if DT_RELR in first else ()
        if not isinstance(symbols, _Symbols):  # too many to check whole
            return LoaderView(problem=None, entries=entries, symbol_count=symbols.count,
                              symbols=None, relocations=relocations, plt_relocations=plt,
                              relr=relr)
        return LoaderView(
            problem=None, entries=entries, symbol_count=symbols.count,
            symbols=symbols.records(), relocations=relocations, plt_relocations=plt,
            relr=relr,
            gnu_hash_misses=(self._gnu_misses(first[DT_GNU_HASH], symbols)
                             if DT_GNU_HASH in first else None),
            sysv_hash_misses=(self._sysv_misses(first[DT_HASH], symbols)
                              if DT_HASH in first else None),
            hashes=(self.gnu_hashes, self.sysv_hashes))

    def _entries(self) -> list[tuple[int, int]]:
        """The dynamic entries up to DT_NULL, as the loader reads them."""
        assert self.dynamic is not None
        offset, size = self.dynamic
        layout, step = ("qQ", 16) if self.wide else ("iI", 8)
        tags: list[tuple[int, int]] = []
        for at in range(offset, offset + size - step + 1, step):
            tag, value = self._unpack(layout, at)
            if tag == DT_NULL:
                return tags
            tags.append((tag, value))
        raise _Unreadable("no DT_NULL inside PT_DYNAMIC")

    def _symbol_count(self, first: dict[int, int]) -> int:
        """How many dynamic symbols there are: no entry says it; the hash tables bound it
        (DT_HASH's nchain, or the end of DT_GNU_HASH's last chain), as readelf finds it."""
        if DT_HASH in first:
            return int(self._unpack("II", self._at(first[DT_HASH], 8))[1])
        if DT_GNU_HASH not in first:
            return 0
        table = self._at(first[DT_GNU_HASH], 16)
        buckets_count, base, bloom_count, _ = self._unpack("IIII", table)
        buckets_at = table + 16 + bloom_count * self.word
        buckets = self._unpack(f"{buckets_count}I", buckets_at)
        last = max(buckets, default=0)
        if last < base:
            return int(base)
        at = buckets_at + 4 * (buckets_count + last - base)  # the last chain's first entry
        while True:  # to its end mark, 1,024 entries at a time (a hostile one never ends)
            count = min(1024, (len(self.data) - at) // 4)
            if count <= 0:
                raise _Unreadable("DT_GNU_HASH's last chain runs past the end of the file")
            end = next((n for n, word in enumerate(self._unpack(f"{count}I", at)) if word & 1),
                       None)
            if end is not None:
                return int(last) + end + 1
            last += count
            at += 4 * count

    def _versions(self, first: dict[int, int]) -> dict[int, Version]:
        """DT_VERSYM's index -> the version it names (DT_VERNEED's, DT_VERDEF's)."""
        names: dict[int, Version] = {0: ("local",), 1: ("global",)}
        if DT_VERNEED in first:
            at = self._at(first[DT_VERNEED], 16)
            for _ in range(first.get(DT_VERNEEDNUM, 0)):
                _, count, file_at, aux, following = self._unpack("HHIII", at)
                file = self._string(file_at)
                entry = at + aux
                for _ in range(count):
                    _, _, index, name_at, aux_next = self._unpack("IHHII", entry)
                    names[index] = ("need", file, self._string(name_at))
                    entry += aux_next
                if not following:
                    break
                at += following
        if DT_VERDEF in first:
            at = self._at(first[DT_VERDEF], 20)
            for _ in range(first.get(DT_VERDEFNUM, 0)):
                _, flags, index, count, _, aux, following = self._unpack("HHHHIII", at)
                if count:
                    names[index] = ("def", self._string(self._unpack("I", at + aux)[0]),
                                    str(flags))
                if not following:
                    break
                at += following
        return names

    def _symbols(self, first: dict[int, int], versions: dict[int, Version],
                 ) -> _Symbols | _OneByOne:
        count = self._symbol_count(first)
        if not count:
            return _Symbols([], [], [], (), (), (), (), ())
        if DT_SYMTAB not in first:
            raise _Unreadable("symbols but no DT_SYMTAB")
        layout = self.order + ("IBBHQQ" if self.wide else "IIIBBH")
        entry = struct.calcsize(layout)
        if first.get(DT_SYMENT, entry) != entry:
            raise _Unreadable("symbol entry size")
        table = self._at(first[DT_SYMTAB], entry * count)
        if count > FULL_CHECK_SYMBOLS and not self.every_symbol:
            versym = self._at(first[DT_VERSYM], 2 * count) if DT_VERSYM in first else None
            return _OneByOne(self, table, layout, versym, versions, count)
        columns = tuple(zip(*struct.iter_unpack(layout,
                                                self.data[table:table + entry * count])))
        if self.wide:
            name_at, infos, others, sections, values, sizes = columns
        else:
            name_at, values, sizes, infos, others, sections = columns
        indexes: tuple[int, ...] = (1,) * count
        if DT_VERSYM in first:
            indexes = self._unpack(f"{count}H", self._at(first[DT_VERSYM], 2 * count))
        numbers = list(map(and_, indexes, repeat(~VERSYM_HIDDEN & 0xFFFF)))
        unknown = set(numbers) - versions.keys()
        if unknown:
            raise _Unreadable(f"version index {min(unknown)} is defined nowhere")
        return _Symbols(list(map(_Offsets(self).__getitem__, name_at)),
                        list(map(versions.__getitem__, numbers)),
                        list(map(bool, map(and_, indexes, repeat(VERSYM_HIDDEN)))),
                        values, sizes, infos, others, sections)

    def relocation_layout(self, with_addend: bool) -> str:
        return self.order + (("QQq" if with_addend else "QQ") if self.wide else (
            "IIi" if with_addend else "II"))

    def _relocations(self, address: int, size: int, with_addend: bool,
                     symbols: _Symbols | _OneByOne) -> tuple[Relocation, ...]:
        if not size:
            return ()
        layout = self.relocation_layout(with_addend)
        entry = struct.calcsize(layout)
        if size % entry:
            raise _Unreadable("relocation table size")
        at = self._at(address, size)
        shift, mask = (32, 0xFFFFFFFF) if self.wide else (8, 0xFF)
        relocations = []
        for fields in struct.iter_unpack(layout, self.data[at:at + size]):
            number = fields[1] >> shift
            if number and number >= symbols.count:
                raise _Unreadable(f"relocation of symbol {number}, past the symbol table")
            relocations.append(Relocation(fields[0], fields[1] & mask,
                                          symbols.key(number) if number else None,
                                          fields[2] if with_addend else None))
        return tuple(relocations)

    def _relr(self, address: int, size: int) -> tuple[int, ...]:
        """The addresses a DT_RELR table relocates: an even entry is an address (and the
        next word is where a bitmap starts), an odd one a bitmap of the words after it."""
        if not size:
            return ()
        if size % self.word:
            raise _Unreadable("RELR table size")
        at = self._at(address, size)
        addresses = []
        where = 0
        for (entry,) in struct.iter_unpack(self.order + ("Q" if self.wide else "I"),
                                           self.data[at:at + size]):
            if not entry & 1:
                addresses.append(entry)
                where = entry + self.word
                continue
            bits, number = entry >> 1, 0
            while bits:
                if bits & 1:
                    addresses.append(where + number * self.word)
                bits >>= 1
                number += 1
            where += (8 * self.word - 1) * self.word
        return tuple(addresses)

    def _gnu_misses(self, address: int, symbols: _Symbols) -> frozenset[tuple[bytes, Version]]:
        """Which defined symbols a DT_GNU_HASH lookup misses (dl-lookup.c's do_lookup_x):
        it finds one whose name has its two bits set in the bloom filter word its hash
        picks, whose entry is on the chain its bucket starts (no chain ends between them:
        where chains end is counted once, not walked per symbol), and whose entry stores
        the name's hash, but for the low bit (the end-of-chain mark). A symbol below the
        table's first hashed one is on no chain."""
        table = self._at(address, 16)
        buckets_count, base, bloom_count, shift = self._unpack("IIII", table)
        if not buckets_count or not bloom_count or bloom_count & (bloom_count - 1):
            raise _Unreadable("DT_GNU_HASH header")
        count = len(symbols.names)
        bits = 8 * self.word
        bloom = self._unpack(f"{bloom_count}{'Q' if self.wide else 'I'}", table + 16)
        buckets_at = table + 16 + bloom_count * self.word
        buckets = self._unpack(f"{buckets_count}I", buckets_at)
        chains = self._unpack(f"{max(count - base, 0)}I", buckets_at + 4 * buckets_count)
        names = symbols.names[base:]
        if self.given is None:  # the source's own hashes, its linker's (see loader_view)
            odd = map(bytes.count, map(bytes.translate, names, repeat(_LOW_BITS)),
                      repeat(b"\1"))  # bytes with the low bit set: the hash's low bit is
            hashes = list(map(xor, map(and_, chains, repeat(~1 & 0xFFFFFFFF)),  # 5381's (1)
                              map(xor, map(and_, odd, repeat(1)), repeat(1))))  # + theirs
            self.gnu_hashes.update(zip(names, hashes))
        else:
            known = self.given[0]
            hashes = [known.get(name) or _gnu_hash(name) for name in names]
        # chain[i]: how many chains end before entry i
        chain = list(itertools.accumulate(map(and_, chains, repeat(1)), initial=0))
        words = list(map(bloom.__getitem__, map(and_, map(floordiv, hashes, repeat(bits)),
                                                 repeat(bloom_count - 1))))
        in_bloom = map(and_, map(and_, map(rshift, words, map(mod, hashes, repeat(bits))),
                                 map(rshift, words, map(mod, map(rshift, hashes,
                                                                 repeat(shift)),
                                                        repeat(bits)))),
                       repeat(1))
        # where its bucket's chain starts (below 0: before the first hashed symbol, on no
        # chain); entry i is on that chain when it starts at or before i, no chain ending
        # between them
        starts = [buckets[h % buckets_count] - base for h in hashes]
        on_chain = [0 <= start <= number and chain[start] == chain[number]
                    for number, start in enumerate(starts)]
        stored = map(eq, map(rshift, map(xor, chains, hashes), repeat(1)), repeat(0))
        missed = map(_missed, symbols.findable()[base:], in_bloom, on_chain, stored)
        return frozenset(compress(zip(names, symbols.versions[base:]), missed))

    def _sysv_hash_of(self, name: bytes) -> int:
        if self.given is not None:
            return self.given[1].get(name) or _sysv_hash(name)
        value = self.sysv_hashes[name] = _sysv_hash(name)
        return value

    def _sysv_misses(self, address: int, symbols: _Symbols) -> frozenset[tuple[bytes, Version]]:
        """Which defined symbols a DT_HASH lookup misses: it walks the chain the name's
        bucket starts. Each entry is walked from the first bucket that reaches it only
        (a linker's chains never meet; where a hostile table's do, or cycle, the later
        bucket stops there and misses what lies beyond: never more work than entries)."""
        table = self._at(address, 8)
        buckets_count, chains_count = self._unpack("II", table)
        if not buckets_count:
            raise _Unreadable("DT_HASH has no buckets")
        buckets = self._unpack(f"{buckets_count}I", table + 8)
        chains = self._unpack(f"{chains_count}I", table + 8 + 4 * buckets_count)
        bucket_of: dict[int, int] = {}  # entry -> the bucket whose chain reaches it
        for bucket, index in enumerate(buckets):
            while 0 < index < chains_count and index not in bucket_of:
                bucket_of[index] = bucket
                index = chains[index]
        return frozenset(
            symbols.key(number) for number, findable in enumerate(symbols.findable())
            if findable and bucket_of.get(number) != (
                self._sysv_hash_of(symbols.names[number]) % buckets_count))

_LOW_BITS = bytes(byte & 1 for byte in range(256))  # bytes.translate: each byte's low bit


def _missed(findable: bool, in_bloom: int, on_chain: bool, stored: bool) -> bool:
    return findable and not (in_bloom and on_chain and stored)


def _gnu_hash(name: bytes) -> int:
    """dl-hash.h's _dl_new_hash (h * 33 + c from 5381, 32 bits)."""
    value = 5381
    for byte in name:
        value = (value * 33 + byte) & 0xFFFFFFFF
    return value


def _sysv_hash(name: bytes) -> int:
    """dl-hash.h's _dl_elf_hash."""
    value = 0
    for byte in name:
        value = (value << 4) + byte
        high = value & 0xF0000000
        if high:
            value ^= high >> 24
        value &= ~high
    return value & 0xFFFFFFFF

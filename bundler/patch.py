"""The only LIEF user: rewrite PT_INTERP and DT_RPATH of a copy, patchelf-style.

Each original is patched exactly once, straight from the source file (a second LIEF pass
over LIEF output can corrupt non-PIE binaries, GLIBC-NOTES section 5). LIEF does the
dynamic edit; everything else in the file is then put back as it was in the source
(`_restore_sections`), so that `nm`, `readelf --debug-dump`, gdb, perf and `bundle compare`
see in the copy what they see in the original. The result is re-read and checked before it
is accepted, so a patch that went wrong is an error, never a broken file in an artifact.
`import lief` costs 0.32-0.43 s since LIEF 0.16 (measured, quiet machine: median 0.36 s for
0.16.7, 0.41 s for 1.0.0; 0.04 s for 0.15.1), so it happens here, on first use, and never
in `inspect`.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
from typing import BinaryIO

from bundler.elf import (
    SectionHeader,
    SectionTable,
    file_identity,
    read_elf,
    read_link_facts,
    read_section_table,
)
from bundler.errors import BundleError
from bundler.loader_view import (
    LoaderView,
    loader_view,
    misbound,
    rebind_relocations,
    view_differences,
)
from bundler.patch_spec import Patch

# The sections the patch changes, and may move, on purpose: the new interpreter path, the
# new DT_RPATH entry and its string (LIEF writes a new .dynstr, so every table that holds
# offsets into it or indexes of .dynsym follows: LIEF rebuilds the dynamic symbol table in
# its own order, and with it the hash tables, the symbol versions and the dynamic
# relocations, which name symbols by index). All of them are allocated sections the loader
# reads; none of them is read by debuggers or symbolizers, which use .symtab and DWARF.
CHANGED_NAMES = frozenset({".interp"})
CHANGED_KINDS = frozenset({
    "SHT_DYNAMIC", "SHT_DYNSYM", "SHT_HASH", "SHT_GNU_HASH", "SHT_GNU_versym",
    "SHT_GNU_verneed", "SHT_GNU_verdef", "SHT_RELA", "SHT_REL", "SHT_RELR",
})


class PatchError(BundleError):
    """A file could not be patched safely."""


class Parsed:
    """`source` read by LIEF, its program header table already given room
    (`_keep_addresses`): everything of a patch that does not depend on the Patch itself.

    `prepare` makes one ahead of the job, while the build is still resolving (on node: 0.15 s
    of CPU; the job then takes 1.02 s instead of 1.16 s, LIEF 1.0.0, medians of 5);
    `patch_copy` uses it only for the very file it was made from, unchanged since (same
    inode, size, mtime and ctime), and only once (patching mutates it)."""

    def __init__(self, source: str, binary, original, linking: LoaderView,
                 identity: tuple[int, ...]) -> None:
        self.source = source
        self.binary = binary
        self.original = original  # bundler.elf's facts of the source, for _verify
        self.linking = linking  # what the loader links it by, for _verify
        self.identity = identity

    def matches(self, source: str) -> bool:
        return _identity(source) == self.identity


def prepare(source: str) -> Parsed:
    """Parse `source` with LIEF and make room for one more program header; PatchError if
    either fails (the file changed while it was read included)."""
    lief = _import_lief()
    lief.logging.disable()
    identity = _identity(source)
    original = read_elf(source)
    linking = loader_view(source)  # ahead too (Debian's bash, 2,576 symbols: ~10 ms)
    binary = lief.ELF.parse(source, _parser_config(lief))
    if binary is None:
        raise PatchError(f"{source}: LIEF cannot parse this file")
    _keep_addresses(binary, lief, source)
    if identity is None or _identity(source) != identity:
        raise PatchError(f"{source}: changed while it was read")
    return Parsed(source, binary, original, linking, identity)


def _identity(path: str) -> tuple[int, ...] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return file_identity(info)


def patch_copy(source: str, dest: str, patch: Patch, parsed: Parsed | None = None) -> str:
    """Write `source` with `patch` applied to `dest`, then verify `dest`; the rewriter that
    wrote it (`rewriter`). `parsed`: a `prepare(source)` made earlier, used when it is still
    of this file (else parsed now)."""
    lief = _import_lief()
    lief.logging.disable()
    if parsed is None or not parsed.matches(source):
        parsed = None  # a stale one is dropped before the file is parsed anew
        parsed = prepare(source)
    binary, original, linking = parsed.binary, parsed.original, parsed.linking
    parsed.binary = None  # used once: patching mutates it
    if binary is None:
        raise AssertionError(f"{source}: a prepared parse used twice")
    if patch.interpreter is not None:
        if not binary.has_interpreter:
            raise PatchError(f"{source}: has no PT_INTERP to rewrite")
        binary.interpreter = patch.interpreter
    tags = lief.ELF.DynamicEntry.TAG
    binary.remove(tags.RUNPATH)
    binary.remove(tags.RPATH)
    binary.add(lief.ELF.DynamicEntryRpath(patch.rpath))
    try:
        binary.write(dest)
    except Exception as exc:  # LIEF raises assorted types from its C++ core
        raise PatchError(f"{source}: LIEF could not write the patched copy ({exc})") from None
    before = read_section_table(source)
    _restore_sections(source, dest, before)
    os.chmod(dest, 0o755)
    copy = loader_view(dest, linking.hashes)
    if misbound(linking, copy) and rebind_relocations(linking, dest):
        copy = loader_view(dest, linking.hashes)
    _verify(source, dest, original, linking, copy, patch, lief, before)
    return rewriter(lief)


def rewriter(lief) -> str:
    """Which LIEF wrote a patched copy, as the manifest records it ("lief 1.0.0-d05b3499b":
    the release and LIEF's commit). The copy's bytes depend on it: every release allowed
    (pyproject.toml) lays the added segment out its own way, so the same program, patch and
    bundle give other bytes under another LIEF."""
    return f"lief {lief.__version__}"


def _parser_config(lief):
    """Everything but the static symbol table (.symtab), which PT_INTERP and DT_RPATH do not
    touch and `_restore_sections` puts back byte for byte: parsing it (LIEF then writes it
    in its own order, put back all the same) cost ~1.2x the CPU of patching node (99 MB,
    whole process, LIEF 1.0). Relocations must be parsed: without them LIEF's output of
    node failed with "undefined symbol"."""
    config = lief.ELF.ParserConfig()
    config.parse_symtab_symbols = False
    return config


def _keep_addresses(binary, lief, source: str) -> None:
    """Make room for the grown program header table without moving a single section.

    The new interpreter path and .dynstr go to a new PT_LOAD, so the program header table
    needs one more entry. For a PIE, LIEF's default makes that room by shifting every
    section one page up (measured: .text, .data, .bss, every .symtab value moved by 0x1000
    while DWARF kept the old addresses, so gdb put breakpoints in the wrong place). The
    table goes instead into the padding between two segments (SEGMENT_GAP, found in 629 of
    654 programs and libraries of this Debian), else into a new segment after .bss
    (BSS_END: .bss gets file bytes). Both keep the table where kernels before 5.18 look for
    it (checked by `_verify`)."""
    relocation = lief.ELF.Binary.PHDR_RELOC
    if (binary.relocate_phdr_table(relocation.SEGMENT_GAP) == 0
            and binary.relocate_phdr_table(relocation.BSS_END) == 0):
        raise PatchError(f"{source}: no room for one more program header without moving "
                         "its sections (no gap between segments, none after .bss)")


def _import_lief():
    """`import lief` where patching happens, never in `inspect`.

    Most of its cost (LIEF >= 0.16, nanobind) is making its enums, 67,355 members in LIEF
    1.0.0, 95% of them for its disassembler; each goes through `EnumMeta.__setattr__`.
    Lifting that guard during the import measured 9-10% less (0.393 -> 0.357 s), but it
    means changing a standard-library class under LIEF's feet: not done. The worker
    imports it while the build resolves, so a small build never waits for it."""
    import lief

    return lief


def _changed_on_purpose(before: SectionTable) -> frozenset[int]:
    """Indexes of the sections the patch rewrites: CHANGED_NAMES, CHANGED_KINDS (allocated
    relocation tables only: .rela.debug_* of an object file are debug data) and the string
    table of .dynamic (.dynstr)."""
    indexes = set()
    for section in before.sections:
        if section.name in CHANGED_NAMES or (section.kind in CHANGED_KINDS
                                             and section.allocated):
            indexes.add(section.index)
            if section.kind == "SHT_DYNAMIC":
                indexes.add(section.link)
    return frozenset(indexes)


def _restore_sections(source: str, dest: str, before: SectionTable) -> None:
    """Put back every section header and every non-allocated section of `source` that the
    patch does not change on purpose.

    LIEF rewrites what it did not parse: .symtab left unparsed comes out with size 0, and
    a full parse writes it (and .strtab) in another order; .shstrtab is rebuilt, the .bss
    header gets a new address. Allocated sections stay where they are (`_keep_addresses`),
    so their headers are the source's; non-allocated ones (.symtab, .strtab, .debug_*,
    .comment, .gnu_debuglink, .shstrtab) get their source bytes back, where LIEF left
    their place (it keeps their space) or, if that place is taken, at the end of the file.
    """
    if not before.sections:  # no section headers (sstrip, packers): nothing to put back
        return
    after = read_section_table(dest)
    if [s.name for s in after.sections] != [s.name for s in before.sections]:
        raise PatchError(f"{source}: LIEF changed the section table "
                         f"({len(before.sections)} -> {len(after.sections)} sections)")
    changed = _changed_on_purpose(before)
    taken = list(after.fixed_ranges)
    taken += [(s.offset, s.offset + s.file_size) for s in after.sections
              if s.file_size and (s.index in changed or s.allocated)]
    end = os.path.getsize(dest)
    headers = []
    with open(source, "rb") as original, open(dest, "r+b") as copy:
        for old, new in zip(before.sections, after.sections):
            if old.index in changed:
                headers.append(old.raw[:4] + new.raw[4:])  # sh_name: into the source's
            elif old.allocated:
                headers.append(new.raw if _moved(old, new) else old.raw)
            elif not old.file_size:
                headers.append(old.raw)
            else:
                offset, end = _place(old, new.offset, taken, end)
                taken.append((offset, offset + old.file_size))
                _copy_range(original, old.offset, copy, offset, old.file_size)
                headers.append(_with_offset(old.raw, offset, before))
        # LIEF's place for the table, unless a section is now there or it is misaligned
        # (LIEF's BSS_END output failed LIEF's own check_layout: "shdr offset misaligned").
        table_size = len(before.sections) * before.entry_size
        alignment = 8 if before.elf_class == 64 else 4
        table_offset = after.table_offset
        if table_offset % alignment or any(
                _overlaps(table_offset, table_offset + table_size, r) for r in taken):
            table_offset = _align(end, alignment)
        copy.seek(table_offset)
        copy.write(b"".join(headers))
        if table_offset != after.table_offset:
            copy.seek(0x28 if before.elf_class == 64 else 0x20)
            copy.write(struct.pack(_order(before) + ("Q" if before.elf_class == 64 else "I"),
                                   table_offset))


def _copy_range(source: BinaryIO, start: int, dest: BinaryIO, at: int, size: int) -> None:
    """Copy `size` bytes at `start` of `source` to `at` in `dest`, 1 MiB at a time (debug
    sections can be gigabytes)."""
    source.seek(start)
    dest.seek(at)
    while size > 0:
        chunk = source.read(min(size, 1 << 20))
        if not chunk:
            raise PatchError(f"{source.name}: ends inside a section")
        dest.write(chunk)
        size -= len(chunk)


def _place(section: SectionHeader, wanted: int, taken: list[tuple[int, int]],
           end: int) -> tuple[int, int]:
    """(offset, new file end): `wanted` if the section fits there, else the end of the file."""
    size = section.file_size
    aligned = wanted % max(section.alignment, 1) == 0
    if aligned and not any(_overlaps(wanted, wanted + size, r) for r in taken):
        return wanted, max(end, wanted + size)
    offset = _align(end, max(section.alignment, 1))
    return offset, offset + size


def _overlaps(start: int, end: int, other: tuple[int, int]) -> bool:
    return start < other[1] and other[0] < end


def _align(value: int, alignment: int) -> int:
    return -(-value // alignment) * alignment


def _order(table: SectionTable) -> str:
    return "<" if table.little_endian else ">"


def _with_offset(raw: bytes, offset: int, table: SectionTable) -> bytes:
    """A section header with sh_offset replaced (the rest stays the source's)."""
    header = bytearray(raw)
    if table.elf_class == 64:
        struct.pack_into(_order(table) + "Q", header, 24, offset)
    else:
        struct.pack_into(_order(table) + "I", header, 16, offset)
    return bytes(header)


def _moved(old: SectionHeader, new: SectionHeader) -> bool:
    """An allocated section whose bytes LIEF put elsewhere (in memory or in the file): its
    header is LIEF's, so that `_verify` names it. (A .bss header LIEF gave a new address
    while the segments still map it where it was is only a header: put back.)"""
    return bool(old.file_size) and (new.address, new.offset) != (old.address, old.offset)


def _verify(source: str, dest: str, original, linking: LoaderView, copy: LoaderView,
            patch: Patch, lief, before: SectionTable) -> None:
    """Accept `dest` only if it is `source` with the patch and nothing else.

    Changed on purpose, so not compared byte for byte: .interp (the new loader path),
    .dynamic (the new DT_RPATH entry), .dynstr (its string; LIEF writes the table anew),
    and what LIEF rebuilds with .dynstr: .dynsym (offsets into .dynstr, in LIEF's symbol
    order), .gnu.hash/.hash (follow that order), .gnu.version (one entry per .dynsym
    symbol), .gnu.version_r/.gnu.version_d (offsets into .dynstr), and the allocated
    .rela*/.rel*/.relr tables (symbols by .dynsym index). What they mean to the loader
    must be the source's (`linking` against `copy`, loader_view.py: entries, symbols and
    versions, relocations, RELR, hash lookups; a relocation LIEF bound to another version
    of its symbol was put back first). Every other section, .symtab, .strtab and the
    DWARF sections included, must have the source's header and bytes
    (`_changed_sections`).
    """
    written = read_link_facts(dest)
    problems = []
    if patch.interpreter is not None and written.interpreter != patch.interpreter:
        problems.append(f"interpreter is {written.interpreter!r}")
    if written.rpath != patch.rpath:
        problems.append(f"DT_RPATH is {written.rpath!r}")
    if written.runpath is not None:
        problems.append("DT_RUNPATH is still there")
    if written.needed != original.needed:
        problems.append(f"DT_NEEDED changed to {list(written.needed)}")
    if written.ident != original.ident:
        problems.append("ELF header changed")
    if not written.phdr_where_old_kernels_look:
        problems.append("the program header table is not where Linux < 5.18 looks for it")
    reparsed = lief.ELF.parse(dest, _parser_config(lief))
    if reparsed is None:
        problems.append("LIEF cannot parse it")
    elif hasattr(lief.ELF, "check_layout"):
        # LIEF's own check of segments, sections and tables against each other exists from
        # LIEF 1.0 on. With older LIEF it is skipped, and the checks above and below still
        # hold the copy to its source: the link facts read back (bundler.elf), the program
        # header table where old kernels look, and every section's header and bytes.
        ok, reason = lief.ELF.check_layout(reparsed)
        if not ok:
            problems.append(f"layout check failed: {reason.strip()}")
    problems += view_differences(linking, copy)
    problems += _changed_sections(source, dest, before)
    if problems:
        raise PatchError(f"{source}: the patched copy is wrong: " + "; ".join(problems))


def _changed_sections(source: str, dest: str, before: SectionTable) -> list[str]:
    """Every section the patch does not change on purpose has the source's header (every
    field but sh_offset: name, type, flags, address, size, link, info, alignment) and bytes
    in `dest`, and an allocated one also its file offset (nothing the segments map moved).

    The bytes are hashed through one 1 MiB buffer: reading dominates (measured: hashing
    node's 51 MB .rodata in both files cost the same CPU as comparing the bytes, ~0.08 s),
    and mapping both files instead raised the peak memory of patching node by 80 MB.
    SHA-1: nothing here is adversarial (both files are ours; the manifest has SHA-256)."""
    after = read_section_table(dest)
    if len(after.sections) != len(before.sections):
        return [f"{len(before.sections)} sections became {len(after.sections)}"]
    changed = _changed_on_purpose(before)
    problems: list[str] = []
    buffer = memoryview(bytearray(1 << 20))
    with open(source, "rb") as old_file, open(dest, "rb") as new_file:
        for old, new in zip(before.sections, after.sections):
            if old.index in changed:
                continue
            name = old.name or f"[{old.index}]"
            if new.name != old.name or (_with_offset(new.raw, 0, after)
                                        != _with_offset(old.raw, 0, before)):
                problems.append(f"section {name} changed its header")
            elif old.allocated and old.file_size and new.offset != old.offset:
                problems.append(f"section {name} moved in the file")
            elif old.file_size and (_digest(old_file, old.offset, old.file_size, buffer)
                                    != _digest(new_file, new.offset, new.file_size, buffer)):
                problems.append(f"section {name} changed its bytes")
    if len(problems) > 1:  # a shifted layout changes them all: the first one says it
        return [f"{problems[0]} (and {len(problems) - 1} more sections)"]
    return problems


def _digest(handle: io.BufferedIOBase, offset: int, size: int, buffer: memoryview) -> bytes:
    """SHA-1 of `size` bytes at `offset` (a short file digests what is there)."""
    digest = hashlib.sha1(usedforsecurity=False)
    handle.seek(offset)
    while size > 0:
        count = handle.readinto(buffer[:min(size, len(buffer))])
        if not count:
            break
        digest.update(buffer[:count])
        size -= count
    return digest.digest()

"""Go's embedded build info (`go version -m`), read without Go (GLIBC-NOTES section 4).

The blob sits in `.go.buildinfo` (else the first writable, non-executable PT_LOAD) on
a 16-byte boundary: `\\xff Go buildinf:`, pointer size, flags (bit 0 big endian, bit 1
inline strings). Go >= 1.18 inlines two uvarint-prefixed strings (version, module info);
older releases store two pointers to Go string headers. `go_version_m` renders the result
the way `go version -m` prints it, which is how the tests hold this reader to Go's.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import BinaryIO

from bundler.elf import (
    PT_LOAD,
    SHT_NOBITS,
    PlainSection,
    broken_elf,
    plain_section_headers,
    pyelftools_file,
    read_program_header_table,
)
from bundler.errors import InputError

MAGIC = b"\xff Go buildinf:"
ALIGN = 16
SEARCH_LIMIT = 64 * 1024
PF_X, PF_W = 0x1, 0x2
_QUOTE_KEY = set('= \t\r\n"`')
_QUOTE_VALUE = set(' \t\r\n"`')
_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
            "\v": "\\v", "\\": "\\\\", '"': '\\"'}
_UNESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
              "\\": "\\", '"': '"', "'": "'"}


@dataclass(frozen=True)
class Module:
    path: str
    version: str
    sum: str = ""
    replace: Module | None = None


@dataclass(frozen=True)
class BuildInfo:
    go_version: str
    path: str  # the main package
    main: Module | None
    deps: tuple[Module, ...]
    settings: tuple[tuple[str, str], ...]

    def setting(self, key: str) -> str | None:
        return next((value for k, value in self.settings if k == key), None)

    @property
    def tags(self) -> tuple[str, ...]:
        value = self.setting("-tags") or ""
        return tuple(t for t in value.split(",") if t)

    @property
    def ldflags(self) -> str | None:
        return self.setting("-ldflags")

    @property
    def cgo_enabled(self) -> bool | None:
        value = self.setting("CGO_ENABLED")
        return None if value is None else value == "1"

    def dep(self, path: str) -> Module | None:
        return next((m for m in self.deps if m.path == path), None)


def read_build_info(path: str) -> BuildInfo | None:
    """The build info of the Go program at `path`, or None when it is not a Go program."""
    try:
        with open(path, "rb") as handle:
            layout = _layout(path, handle)
            blob = _find_blob(layout, handle)
            if blob is None:
                return None
            version, modinfo = _strings(layout, handle, blob)
        if not version:
            return None
        return parse_modinfo(version, modinfo)  # Go's own parser refuses what this does
    except broken_elf(OSError) as exc:
        raise InputError(f"{path}: unreadable Go build info ({exc})") from None


@dataclass(frozen=True)
class _Layout:
    """Where the build info can be: `.go.buildinfo` (`_Section`) and the PT_LOAD segments
    (p_flags, p_offset, p_vaddr, p_filesz)."""

    buildinfo: _Section | None
    loads: tuple[tuple[int, int, int, int], ...]


@dataclass(frozen=True)
class _Section:
    nobits: bool  # SHT_NOBITS: no bytes in the file
    offset: int
    size: int


def _layout(path: str, handle: BinaryIO) -> _Layout:
    """From the section headers read_elf's plain reader already read and the program
    headers, else (a file that reader declines) from pyelftools, whose verdict a broken
    file then gets."""
    table = read_program_header_table(handle)
    sections = plain_section_headers(path) if table.segments or not table.count else None
    if sections is not None:
        return _Layout(_named(sections, ".go.buildinfo"),
                       tuple((s.flags, s.offset, s.vaddr, s.filesz) for s in table.segments
                             if s.kind == PT_LOAD))
    elf = pyelftools_file(handle)
    return _Layout(_pyelftools_section(elf, ".go.buildinfo"),
                   tuple((s["p_flags"], s["p_offset"], s["p_vaddr"], s["p_filesz"])
                         for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"))


def _section(path: str, handle: BinaryIO, name: str) -> _Section | None:
    """The section `name`, by the plain reader's headers or else pyelftools'."""
    sections = plain_section_headers(path)
    if sections is None:
        return _pyelftools_section(pyelftools_file(handle), name)
    return _named(sections, name)


def _named(sections: tuple[PlainSection, ...], name: str) -> _Section | None:
    """The last section named `name`, as pyelftools' get_section_by_name finds it."""
    found = next((s for s in reversed(sections) if s.name == name), None)
    return None if found is None else _Section(found.kind == SHT_NOBITS, found.offset,
                                               found.size)


def _pyelftools_section(elf, name: str) -> _Section | None:
    found = elf.get_section_by_name(name)
    return None if found is None else _Section(found["sh_type"] == "SHT_NOBITS",
                                               found["sh_offset"], found["sh_size"])


def _find_blob(layout: _Layout, handle: BinaryIO) -> bytes | None:
    if layout.buildinfo is not None:
        if layout.buildinfo.nobits:
            return None
        data = _read_at(handle, layout.buildinfo.offset, layout.buildinfo.size)
    else:
        segment = next((s for s in layout.loads if s[0] & PF_W and not s[0] & PF_X), None)
        if segment is None:
            return None
        data = _read_at(handle, segment[1], segment[3])
    for offset in range(0, len(data) - 32 + 1, ALIGN):
        if data.startswith(MAGIC, offset):
            return data[offset:]
    return None


def _read_at(handle: BinaryIO, offset: int, size: int, limit: int = SEARCH_LIMIT) -> bytes:
    """At most `limit` bytes at `offset`: a header may claim any size (fuzzing found a
    p_filesz that made pyelftools read gigabytes)."""
    handle.seek(offset)
    return handle.read(min(size, limit))


def _strings(layout: _Layout, handle: BinaryIO, blob: bytes) -> tuple[str, str]:
    pointer_size, flags = blob[14], blob[15]
    if flags & 0x2:  # inline strings (Go >= 1.18)
        version, position = _uvarint_string(blob, 32)
        modinfo, _ = _uvarint_string(blob, position)
        return version, _strip_sentinels(modinfo)
    order = ">" if flags & 0x1 else "<"
    code = {4: "I", 8: "Q"}.get(pointer_size)
    if code is None:
        raise ValueError(f"pointer size {pointer_size}")
    version_at, modinfo_at = struct.unpack_from(order + code * 2, blob, 16)
    version = _go_string(layout, handle, version_at, order + code * 2)
    modinfo = _go_string(layout, handle, modinfo_at, order + code * 2)
    return version, _strip_sentinels(modinfo)


def uvarint_bytes(data: bytes, position: int) -> tuple[bytes, int]:
    """A string stored as a uvarint length then its bytes (inline build info, Go >= 1.18);
    returns the bytes and the position after them."""
    length, shift = 0, 0
    while True:
        byte = data[position]
        position += 1
        length |= (byte & 0x7F) << shift
        if byte < 0x80:
            break
        shift += 7
        if shift > 63:
            raise ValueError("uvarint too long")
    end = position + length
    if end > len(data):
        raise ValueError("string runs past the build info")
    return data[position:end], end


def _uvarint_string(data: bytes, position: int) -> tuple[str, int]:
    raw, end = uvarint_bytes(data, position)
    return raw.decode("utf-8", "replace"), end


def _go_string(layout: _Layout, handle: BinaryIO, address: int, header: str) -> str:
    """A Go string header {data pointer, length} at virtual `address`, and its bytes."""
    pointer, length = struct.unpack(header, _read_virtual(layout, handle, address,
                                                          struct.calcsize(header)))
    return _read_virtual(layout, handle, pointer, length).decode("utf-8", "replace")


def _read_virtual(layout: _Layout, handle: BinaryIO, address: int, size: int) -> bytes:
    for _, offset, start, filesz in layout.loads:
        if start <= address and address + size <= start + filesz:
            handle.seek(offset + address - start)
            data = handle.read(size)
            if len(data) == size:
                return data
    raise ValueError(f"address {address:#x} is not in the file")


def _strip_sentinels(modinfo: str) -> str:
    # Module info is wrapped in 16-byte sentinels since Go 1.13.
    if len(modinfo) >= 33 and modinfo[-17] == "\n":
        return modinfo[16:-16]
    return modinfo


def parse_modinfo(go_version: str, text: str) -> BuildInfo:
    """Parse module info lines as Go's debug.ParseBuildInfo does."""
    path = ""
    main: Module | None = None
    deps: list[Module] = []
    settings: list[tuple[str, str]] = []
    for line in text.split("\n"):
        word, _, rest = line.partition("\t")
        if word == "path":
            path = rest
        elif word in ("mod", "dep"):
            module = _module(rest)
            if word == "mod":
                main = module
            else:
                deps.append(module)
        elif word == "=>":
            replacement = _module(rest)
            if deps:
                deps[-1] = Module(deps[-1].path, deps[-1].version, "", replacement)
            elif main is not None:
                main = Module(main.path, main.version, "", replacement)
        elif word == "build":
            settings.append(_setting(rest))
    return BuildInfo(go_version, path, main, tuple(deps), tuple(settings))


def _module(rest: str) -> Module:
    fields = rest.split("\t")
    return Module(fields[0], fields[1] if len(fields) > 1 else "",
                  fields[2] if len(fields) > 2 else "")


def _setting(rest: str) -> tuple[str, str]:
    if rest.startswith('"'):
        key, after = go_unquote_prefix(rest)
        value = after[1:] if after.startswith("=") else after
    else:
        key, _, value = rest.partition("=")
    if value.startswith('"'):
        value, _ = go_unquote_prefix(value)
    return key, value


def go_unquote_prefix(text: str) -> tuple[str, str]:
    """Undo Go's strconv.Quote for the quoted string at the start of `text`."""
    out: list[str] = []
    raw = bytearray()
    position = 1
    while position < len(text):
        char = text[position]
        if char == '"':
            _flush(raw, out)
            return "".join(out), text[position + 1:]
        if char != "\\":
            _flush(raw, out)
            out.append(char)
            position += 1
            continue
        code = text[position + 1]
        if code in _UNESCAPES:
            _flush(raw, out)
            out.append(_UNESCAPES[code])
            position += 2
        elif code == "x":
            raw.append(int(text[position + 2:position + 4], 16))  # a byte, maybe of UTF-8
            position += 4
        elif code in "uU":
            width = 4 if code == "u" else 8
            _flush(raw, out)
            out.append(chr(int(text[position + 2:position + 2 + width], 16)))
            position += 2 + width
        elif code in "01234567":
            raw.append(int(text[position + 1:position + 4], 8))
            position += 4
        else:
            raise ValueError(f"bad escape \\{code}")
    raise ValueError("unterminated quoted string")


def _flush(raw: bytearray, out: list[str]) -> None:
    if raw:
        out.append(raw.decode("utf-8", "replace"))
        raw.clear()


def go_quote(text: str) -> str:
    """Go's strconv.Quote, for rendering settings the way `go version -m` does."""
    out = ['"']
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif char.isprintable():
            out.append(char)
        elif ord(char) < 0x80:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) < 0x10000:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    out.append('"')
    return "".join(out)


def go_version_m(info: BuildInfo) -> list[str]:
    """The lines `go version -m FILE` prints after its first one, without the leading tab.

    Mirrors Go 1.19's debug.BuildInfo.String (Debian 12's toolchain, the tests' oracle),
    including its empty line after a replaced module.
    """
    lines = []
    if info.path:
        lines.append(f"path\t{info.path}")

    def module(word: str, mod: Module) -> None:
        version = mod.version or "(devel)"
        if mod.replace is None:
            lines.append(f"{word}\t{mod.path}\t{version}\t{mod.sum}")
        else:
            lines.append(f"{word}\t{mod.path}\t{version}")
            module("=>", mod.replace)
            lines.append("")  # Go 1.19's BuildInfo.String ends a replaced module twice

    if info.main is not None and (info.main.path or info.main.version):
        module("mod", info.main)
    for dep in info.deps:
        module("dep", dep)
    for key, value in info.settings:
        key = go_quote(key) if _QUOTE_KEY & set(key) else key
        value = go_quote(value) if _QUOTE_VALUE & set(value) else value
        lines.append(f"build\t{key}={value}")
    return lines


def function_names(path: str) -> frozenset[str]:
    """Function names of a Go program: `.symtab`, or `.gopclntab` when it is stripped.

    The pclntab's name table holds every Go function as a NUL-terminated string, and the
    runtime needs it, so `-s -w` keeps it.
    """
    from bundler.elf import defined_symbol_names

    names = defined_symbol_names(path)
    if names is not None:
        return names
    try:
        with open(path, "rb") as handle:
            section = _section(path, handle, ".gopclntab")
            data = b""
            if section is not None and not section.nobits:
                size = min(section.size, os.fstat(handle.fileno()).st_size)
                data = _read_at(handle, section.offset, size, limit=size)
    except broken_elf(OSError) as exc:
        raise InputError(f"{path}: unreadable .gopclntab ({exc})") from None
    return frozenset(
        part.decode("ascii") for part in data.split(b"\0")
        if 2 < len(part) < 512 and part.isascii() and b"." in part
    )

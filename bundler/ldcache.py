"""Readers for `/etc/ld.so.cache` (new, old and compat formats) and `/etc/ld.so.conf`.

The layout follows glibc's `sysdeps/generic/dl-cache.h`. A cache that does not parse is
treated as absent, because that is what ld.so does with it (and says nothing); the reason
is kept so that the report can say it.
"""

from __future__ import annotations

import fnmatch
import functools
import posixpath
import struct
from dataclasses import dataclass

from bundler.sysroot import Sysroot

OLD_MAGIC = b"ld.so-1.7.0"
NEW_MAGIC = b"glibc-ld.so.cache1.1"
OLD_HEADER = 16
OLD_ENTRY = 12
NEW_HEADER = 48
NEW_ENTRY = 24
HWCAP_GLIBC_HWCAPS = 1 << 62  # entry belongs to a glibc-hwcaps subdirectory
CACHE_PATH = "/etc/ld.so.cache"
CONF_PATH = "/etc/ld.so.conf"
MAX_CONF_FILES = 1000


@dataclass(frozen=True)
class CacheEntry:
    name: str  # the SONAME-like key the loader looks up
    path: str
    flags: int
    hwcap: int

    @property
    def is_baseline(self) -> bool:
        """Not from a glibc-hwcaps or legacy hwcap subdirectory: runs on every CPU."""
        return self.hwcap == 0


@dataclass(frozen=True)
class LdCache:
    format: str  # "new", "old" or "compat"
    entries: tuple[CacheEntry, ...]

    def lookup(self, name: str, flags: frozenset[int]) -> CacheEntry | None:
        """The baseline entry the loader would use for `name` on this architecture."""
        for entry in self.entries:
            if entry.name == name and entry.flags in flags and entry.is_baseline:
                return entry
        return None

    def variants(self, name: str, flags: frozenset[int]) -> tuple[str, ...]:
        """CPU-specific (hwcap) entries for `name`, which a bundle must not take."""
        return tuple(
            e.path
            for e in self.entries
            if e.name == name and e.flags in flags and not e.is_baseline
        )


@dataclass(frozen=True)
class CacheReading:
    """The outcome of reading a sysroot's cache: the cache, or why there is none."""

    cache: LdCache | None
    problem: str | None


class CacheFormatError(ValueError):
    """The bytes are not a cache the loader would accept."""


def parse_ld_so_cache(data: bytes) -> LdCache:
    """Parse cache bytes in any of the three formats; raises CacheFormatError."""
    if data.startswith(NEW_MAGIC):
        return LdCache("new", _parse_new(data, 0))
    if data.startswith(OLD_MAGIC):
        if len(data) < OLD_HEADER:
            raise CacheFormatError("truncated header")
        (count,) = struct.unpack_from("<I", data, 12)
        old_end = OLD_HEADER + OLD_ENTRY * count
        if old_end > len(data):
            raise CacheFormatError(f"header claims {count} entries, file is {len(data)} bytes")
        new_start = (old_end + 7) & ~7
        if data[new_start:new_start + len(NEW_MAGIC)] == NEW_MAGIC:
            return LdCache("compat", _parse_new(data, new_start))
        return LdCache("old", _parse_old(data, count, old_end))
    raise CacheFormatError("unknown magic")


def _string_at(data: bytes, start: int, offset: int) -> str | None:
    position = start + offset
    if offset < 0 or position >= len(data):
        return None
    end = data.find(b"\0", position)
    if end < 0:
        return None
    return data[position:end].decode("utf-8", "surrogateescape")


def _parse_new(data: bytes, start: int) -> tuple[CacheEntry, ...]:
    if len(data) < start + NEW_HEADER:
        raise CacheFormatError("truncated header")
    count, _strings_length, endian = struct.unpack_from("<IIB", data, start + 20)
    if endian not in (0, 2):  # 0: unknown (old writers), 2: little endian, 3: big endian
        raise CacheFormatError("cache is not little endian")
    table_end = start + NEW_HEADER + NEW_ENTRY * count
    if table_end > len(data):
        raise CacheFormatError(f"header claims {count} entries, file is {len(data)} bytes")
    entries = []
    for number in range(count):
        flags, key, value, _os, hwcap = struct.unpack_from(
            "<iIIIQ", data, start + NEW_HEADER + NEW_ENTRY * number
        )
        name, path = _string_at(data, start, key), _string_at(data, start, value)
        if name and path:  # the loader skips entries whose strings are out of range
            entries.append(CacheEntry(name, path, flags, hwcap))
    return tuple(entries)


def _parse_old(data: bytes, count: int, strings_start: int) -> tuple[CacheEntry, ...]:
    entries = []
    for number in range(count):
        flags, key, value = struct.unpack_from("<iII", data, OLD_HEADER + OLD_ENTRY * number)
        name = _string_at(data, strings_start, key)
        path = _string_at(data, strings_start, value)
        if name and path:
            # The old format has no hwcap field, yet ldconfig (2.33+) writes glibc-hwcaps
            # entries into it, sorted before the baseline: mark them by their path.
            hwcap = HWCAP_GLIBC_HWCAPS if "/glibc-hwcaps/" in path else 0
            entries.append(CacheEntry(name, path, flags, hwcap))
    return tuple(entries)


def read_ld_so_cache(sysroot: Sysroot) -> CacheReading:
    data = sysroot.read_bytes(CACHE_PATH)
    if data is None:
        return CacheReading(None, None)
    try:
        return CacheReading(_parsed(data), None)
    except CacheFormatError as exc:
        return CacheReading(None, f"{CACHE_PATH} is not a valid cache ({exc}); ld.so ignores it")


def read_ld_so_conf(sysroot: Sysroot, path: str = CONF_PATH) -> tuple[str, ...]:
    """The library dirs ldconfig would scan: `path` with its `include` globs, in order.

    Include loops and repeated files are read once; relative include patterns are
    relative to the including file's directory, as in ldconfig.
    """
    dirs: list[str] = []
    seen: set[str] = set()
    _read_conf(sysroot, path, dirs, seen)
    unique: list[str] = []
    for directory in dirs:
        if directory not in unique:
            unique.append(directory)
    return tuple(unique)


def _read_conf(sysroot: Sysroot, path: str, dirs: list[str], seen: set[str]) -> None:
    canonical = sysroot.resolve(path)
    if canonical is None or canonical in seen or len(seen) >= MAX_CONF_FILES:
        return
    seen.add(canonical)
    data = sysroot.read_bytes(canonical)
    if data is None:
        return
    for raw in data.decode("utf-8", "surrogateescape").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        if words[0] == "include" and len(words) > 1:
            for pattern in words[1:]:
                if not pattern.startswith("/"):
                    pattern = posixpath.join(posixpath.dirname(path), pattern)
                for included in _glob(sysroot, pattern):
                    _read_conf(sysroot, included, dirs, seen)
        elif words[0] == "hwcap":
            continue
        else:
            directory = line.split("=", 1)[0].strip().rstrip("/") or "/"
            if directory.startswith("/"):
                dirs.append(directory)


def _glob(sysroot: Sysroot, pattern: str) -> list[str]:
    """Expand a glob whose wildcards are in the last component, inside the sysroot."""
    directory, leaf = posixpath.split(pattern)
    if not any(ch in leaf for ch in "*?["):
        return [pattern]
    return [
        posixpath.join(directory, name)
        for name in sysroot.list_dir(directory)
        if fnmatch.fnmatchcase(name, leaf)
    ]


@functools.lru_cache(maxsize=4)
def _parsed(data: bytes) -> LdCache:
    """One parse per cache content: the resolver reads the cache, and `--nss auto` reads it
    again for the directories of the modules it names."""
    return parse_ld_so_cache(data)

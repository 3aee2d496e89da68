"""ld.so.cache and ld.so.conf readers, checked against glibc's own `ldconfig`.

Every cache here is written by the real `ldconfig` (`-r ROOT -c new|old|compat`) and every
expectation is what `ldconfig -p` prints for the same file, so the parser is held to the
tool that defines the format rather than to our reading of `dl-cache.h`.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.needs import need, need_tool
from support.toolchain import gcc

from bundler.ldcache import (
    HWCAP_GLIBC_HWCAPS,
    NEW_ENTRY,
    NEW_HEADER,
    NEW_MAGIC,
    OLD_MAGIC,
    LdCache,
    parse_ld_so_cache,
    read_ld_so_cache,
    read_ld_so_conf,
)
from bundler.machine import ARCHITECTURES
from bundler.sysroot import Sysroot

HOST_LIBDIR = Path("/lib/x86_64-linux-gnu")
X86_64 = next(a for a in ARCHITECTURES if a.name == "x86-64")
I386 = next(a for a in ARCHITECTURES if a.name == "i386")
X32 = next(a for a in ARCHITECTURES if a.name == "x32")
FORMATS = ("new", "old", "compat")
# What `ldconfig -p` prints inside the parentheses -> the cache entry's flags
# (glibc elf/cache.c print_entry: type name, then the architecture byte's name).
PRINTED_FLAGS = {"libc6,x86-64": 0x0303, "libc6,x32": 0x0803, "libc6": 0x0003, "ELF": 0x0001}
_LISTING = re.compile(r"^\t(\S+) \(([^)]*)\) => (.*)$")


@dataclass(frozen=True)
class Printed:
    """One line of `ldconfig -p`: the oracle for one cache entry."""

    name: str
    flags: int
    hwcap: bool  # ldconfig printed a `hwcap:` part
    path: str


def ldconfig_listing(cache: Path) -> list[Printed]:
    """Entries of `cache` as glibc's `ldconfig -p -C` prints them, in file order."""
    ldconfig = need_tool("ldconfig")
    out = subprocess.run([ldconfig, "-p", "-C", str(cache)], capture_output=True, check=True)
    entries = []
    for line in out.stdout.decode("utf-8", "surrogateescape").splitlines():
        match = _LISTING.match(line)
        if not match:
            continue
        name, inside, path = match.groups()
        kind = inside.split(", hwcap:")[0].split(", OS ABI:")[0]
        assert kind in PRINTED_FLAGS, f"unexpected ldconfig -p flags {inside!r}"
        entries.append(Printed(name, PRINTED_FLAGS[kind], ", hwcap:" in inside, path))
    return entries


def parsed_listing(cache: LdCache) -> list[Printed]:
    """The same view of our parse, to compare with `ldconfig_listing` as a whole."""
    return [Printed(e.name, e.flags, e.hwcap != 0, e.path) for e in cache.entries]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def copy_host_lib(name: str, directory: Path) -> bool:
    """Copy a host library (following symlinks) under its SONAME; False if it is absent."""
    source = HOST_LIBDIR / name
    if not source.exists():
        return False
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, directory / name)
    return True


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root with libraries in two conf-listed dirs and one glibc-hwcaps variant.

    /opt/a comes in through `include /etc/ld.so.conf.d/*.conf`, /opt/b through a relative
    include, so the caches also prove ldconfig scanned what our conf reader lists.
    """
    need_tool("ldconfig")
    root = tmp_path_factory.mktemp("cacheroot")
    write(root / "etc/ld.so.conf", "include /etc/ld.so.conf.d/*.conf\ninclude sub/more.conf\n")
    write(root / "etc/ld.so.conf.d/a.conf", "/opt/a\n")
    write(root / "etc/sub/more.conf", "/opt/b\n")
    assert copy_host_lib("libz.so.1", root / "opt/a")
    copy_host_lib("libsqlite3.so.0", root / "opt/a")  # optional: more entries if present
    source = "int bar(void) { return 7; }\n"
    gcc(root / "opt/b/libbar.so.1", source, "-Wl,-soname,libbar.so.1", shared=True)
    gcc(root / "opt/b/glibc-hwcaps/x86-64-v2/libbar.so.1", source, "-Wl,-soname,libbar.so.1",
        shared=True)
    for fmt in FORMATS:
        subprocess.run(["ldconfig", "-r", str(root), "-c", fmt, "-C", f"/etc/ld.so.cache.{fmt}",
                        "-f", "/etc/ld.so.conf"], check=True, capture_output=True)
    return root


def cache_file(root: Path, fmt: str) -> Path:
    return root / f"etc/ld.so.cache.{fmt}"


# -- the three formats against ldconfig -p ----------------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS)
def test_parse_matches_ldconfig_p(cache_root: Path, fmt: str) -> None:
    path = cache_file(cache_root, fmt)
    cache = parse_ld_so_cache(path.read_bytes())
    assert cache.format == fmt
    expected = ldconfig_listing(path)
    names = {p.name for p in expected}
    assert {"libz.so.1", "libbar.so.1"} <= names  # the fixture really produced entries
    if fmt == "old":
        # The old format has no hwcap field, so ldconfig prints none (we mark glibc-hwcaps
        # paths ourselves, see test_hwcaps_entry_is_a_variant_not_the_lookup).
        assert not any(p.hwcap for p in expected)
        assert [(p.name, p.flags, p.path) for p in parsed_listing(cache)] == [
            (p.name, p.flags, p.path) for p in expected
        ]
    else:
        assert parsed_listing(cache) == expected


@pytest.mark.parametrize("fmt", FORMATS)
def test_lookup_finds_conf_dirs(cache_root: Path, fmt: str) -> None:
    cache = parse_ld_so_cache(cache_file(cache_root, fmt).read_bytes())
    found = cache.lookup("libz.so.1", X86_64.cache_flags)
    assert found is not None and found.path == "/opt/a/libz.so.1"
    assert cache.lookup("libz.so.1", I386.cache_flags) is None
    assert cache.lookup("libnothere.so.1", X86_64.cache_flags) is None


def test_ldconfig_made_a_glibc_hwcaps_entry(cache_root: Path) -> None:
    """Guard for the next test: ldconfig itself marked the variant (bit 62) in the new format."""
    printed = ldconfig_listing(cache_file(cache_root, "new"))
    variants = [p for p in printed if p.hwcap]
    assert [p.path for p in variants] == ["/opt/b/glibc-hwcaps/x86-64-v2/libbar.so.1"]
    cache = parse_ld_so_cache(cache_file(cache_root, "new").read_bytes())
    entry = next(e for e in cache.entries if "glibc-hwcaps" in e.path)
    assert entry.hwcap & HWCAP_GLIBC_HWCAPS


@pytest.mark.parametrize("fmt", FORMATS)
def test_hwcaps_entry_is_a_variant_not_the_lookup(cache_root: Path, fmt: str) -> None:
    """A bundle must run on every x86-64 CPU: the baseline copy, never the v2 one.

    ldconfig sorts the glibc-hwcaps entry first; the old format cannot even mark it, so a
    reader that takes the first matching name would pick the x86-64-v2 build there.
    """
    cache = parse_ld_so_cache(cache_file(cache_root, fmt).read_bytes())
    assert any("glibc-hwcaps" in e.path for e in cache.entries)
    found = cache.lookup("libbar.so.1", X86_64.cache_flags)
    assert found is not None and found.path == "/opt/b/libbar.so.1"
    assert cache.variants("libbar.so.1", X86_64.cache_flags) == (
        "/opt/b/glibc-hwcaps/x86-64-v2/libbar.so.1",
    )
    assert cache.variants("libz.so.1", X86_64.cache_flags) == ()


# -- the host's own cache --------------------------------------------------------------------

@pytest.fixture(scope="module")
def host_cache() -> LdCache:
    need(os.path.isfile("/etc/ld.so.cache"), "this machine has no /etc/ld.so.cache")
    return parse_ld_so_cache(Path("/etc/ld.so.cache").read_bytes())


def test_host_cache_matches_ldconfig_p(host_cache: LdCache) -> None:
    expected = ldconfig_listing(Path("/etc/ld.so.cache"))
    assert len(expected) > 10
    assert parsed_listing(host_cache) == expected


def test_host_x86_64_entries_have_flags_0x303(host_cache: LdCache) -> None:
    printed = ldconfig_listing(Path("/etc/ld.so.cache"))
    x86_64 = [(e.name, e.path) for e in host_cache.entries if e.flags == 0x303]
    assert x86_64 == [(p.name, p.path) for p in printed if p.flags == 0x303]
    assert ("libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6") in x86_64
    assert X86_64.cache_flags == frozenset({0x303})


def test_host_lookup_never_returns_other_abis(host_cache: LdCache) -> None:
    """gcc-multilib puts i386 (and x32) libc in the same cache under the same names."""
    others = [e for e in host_cache.entries if e.flags != 0x303]
    need(any(e.flags in I386.cache_flags for e in others),
         "no i386 entries in /etc/ld.so.cache (gcc-multilib not installed)")
    assert all(e.flags in (I386.cache_flags | X32.cache_flags) for e in others)
    for entry in others:
        found = host_cache.lookup(entry.name, X86_64.cache_flags)
        assert found is None or found.flags == 0x303, entry
        assert entry.path not in host_cache.variants(entry.name, X86_64.cache_flags)
    libc32 = host_cache.lookup("libc.so.6", I386.cache_flags)
    assert libc32 is not None and libc32.flags in I386.cache_flags
    assert host_cache.lookup("libc.so.6", X86_64.cache_flags).path != libc32.path


# -- ld.so.conf -----------------------------------------------------------------------------

def ldconfig_scanned_dirs(root: Path) -> list[str]:
    """The conf-listed dirs `ldconfig -v` scans, in order (builtin dirs left out)."""
    out = subprocess.run([need_tool("ldconfig"), "-r", str(root), "-N", "-X", "-v"],
                         capture_output=True, text=True, check=True)
    return re.findall(r"^(/\S*): \(from (?!<builtin>)", out.stdout, re.M)


def test_conf_order_includes_comments_and_hwcap(tmp_path: Path) -> None:
    write(tmp_path / "etc/ld.so.conf",
          "# a comment line\n/opt/first\ninclude /etc/ld.so.conf.d/*.conf\n"
          "hwcap 1 nosegneg\ninclude sub/extra.conf\n/opt/last   # trailing comment\n"
          "/opt/a\n")
    write(tmp_path / "etc/ld.so.conf.d/b.conf", "/opt/b/\n")
    write(tmp_path / "etc/ld.so.conf.d/a.conf", "# only a comment\n/opt/a\n")
    write(tmp_path / "etc/ld.so.conf.d/c.txt", "/opt/never\n")  # not matched by *.conf
    write(tmp_path / "etc/sub/extra.conf", "/opt/extra\n")
    for name in ("first", "a", "b", "extra", "last", "never"):
        (tmp_path / "opt" / name).mkdir(parents=True)
    expected = ("/opt/first", "/opt/a", "/opt/b", "/opt/extra", "/opt/last")
    assert read_ld_so_conf(Sysroot(str(tmp_path))) == expected
    assert tuple(ldconfig_scanned_dirs(tmp_path)) == expected


def test_conf_include_of_itself_terminates(tmp_path: Path) -> None:
    write(tmp_path / "etc/ld.so.conf", "/opt/one\ninclude /etc/ld.so.conf\ninclude ld.so.conf\n"
                                       "/opt/two\n")
    assert read_ld_so_conf(Sysroot(str(tmp_path))) == ("/opt/one", "/opt/two")


def test_conf_mutual_include_terminates(tmp_path: Path) -> None:
    write(tmp_path / "etc/ld.so.conf", "include /etc/x/*.conf\n/opt/top\n")
    write(tmp_path / "etc/x/a.conf", "/opt/a\ninclude b.conf\n")
    write(tmp_path / "etc/x/b.conf", "/opt/b\ninclude /etc/x/a.conf\n")
    assert read_ld_so_conf(Sysroot(str(tmp_path))) == ("/opt/a", "/opt/b", "/opt/top")


def test_conf_missing_is_empty(tmp_path: Path) -> None:
    assert read_ld_so_conf(Sysroot(str(tmp_path))) == ()


# -- damaged caches: the reading says why, nothing raises -------------------------------------

def reading_of(tmp_path: Path, data: bytes):
    """`read_ld_so_cache` of a sysroot whose /etc/ld.so.cache holds `data`."""
    write(tmp_path / "etc/ld.so.cache", "").write_bytes(data)
    return read_ld_so_cache(Sysroot(str(tmp_path)))


def test_good_cache_reads(tmp_path: Path, cache_root: Path) -> None:
    reading = reading_of(tmp_path, cache_file(cache_root, "new").read_bytes())
    assert reading.problem is None and reading.cache is not None
    assert reading.cache.lookup("libz.so.1", X86_64.cache_flags) is not None


def test_no_cache_is_no_problem(tmp_path: Path) -> None:
    reading = read_ld_so_cache(Sysroot(str(tmp_path)))
    assert reading.cache is None and reading.problem is None


def table_end(data: bytes) -> int:
    """Where the (first) entry table of a cache file ends, read from its header."""
    if data.startswith(NEW_MAGIC):
        return NEW_HEADER + NEW_ENTRY * struct.unpack_from("<I", data, 20)[0]
    return 16 + 12 * struct.unpack_from("<I", data, 12)[0]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("where", ["in-magic", "in-header", "in-table"])
def test_truncated_cache(tmp_path: Path, cache_root: Path, fmt: str, where: str) -> None:
    data = cache_file(cache_root, fmt).read_bytes()
    keep = {"in-magic": 5, "in-header": 14 if fmt != "new" else 40,
            "in-table": table_end(data) - 6}[where]
    reading = reading_of(tmp_path, data[:keep])
    assert reading.cache is None
    assert reading.problem and reading.problem.startswith("/etc/ld.so.cache is not a valid cache")
    expected = {"in-magic": "unknown magic", "in-header": "truncated header",
                "in-table": "header claims"}[where]
    assert expected in reading.problem


def test_cut_string_table_keeps_entries_whose_strings_remain(
    tmp_path: Path, cache_root: Path
) -> None:
    """Like ld.so, strings past the end of the file only lose their own entries."""
    data = cache_file(cache_root, "new").read_bytes()
    whole = parse_ld_so_cache(data)
    last_path = max(data.index(e.path.encode() + b"\0") for e in whole.entries)
    reading = reading_of(tmp_path, data[:last_path + 3])
    assert reading.problem is None and reading.cache is not None
    kept = reading.cache.entries
    assert 0 < len(kept) < len(whole.entries)
    assert set(kept) <= set(whole.entries)


@pytest.mark.parametrize("fmt", FORMATS)
def test_header_claims_a_billion_entries(tmp_path: Path, cache_root: Path, fmt: str) -> None:
    data = bytearray(cache_file(cache_root, fmt).read_bytes())
    if fmt == "new":
        struct.pack_into("<I", data, 20, 10**9)
    else:
        struct.pack_into("<I", data, 12, 10**9)  # the old header's count comes first
    reading = reading_of(tmp_path, bytes(data))
    assert reading.cache is None
    assert reading.problem and str(10**9) in reading.problem


def test_compat_new_part_claims_a_billion_entries(tmp_path: Path, cache_root: Path) -> None:
    data = bytearray(cache_file(cache_root, "compat").read_bytes())
    start = data.index(NEW_MAGIC)
    struct.pack_into("<I", data, start + 20, 10**9)
    reading = reading_of(tmp_path, bytes(data))
    assert reading.cache is None and reading.problem and str(10**9) in reading.problem


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("prefix", [b"", NEW_MAGIC, OLD_MAGIC + b"\0"])
def test_random_bytes(tmp_path: Path, seed: int, prefix: bytes) -> None:
    noise = random.Random(seed).randbytes(4096)
    reading = reading_of(tmp_path, prefix + noise)
    if reading.cache is None:
        assert reading.problem and "ld.so ignores it" in reading.problem
    else:  # random counts that happen to fit: every entry kept has in-range strings
        assert reading.problem is None
        assert all(e.name and e.path for e in reading.cache.entries)


def test_big_endian_cache_is_refused(tmp_path: Path, cache_root: Path) -> None:
    data = bytearray(cache_file(cache_root, "new").read_bytes())
    data[28] = 3  # ldconfig's "big endian" flag value
    reading = reading_of(tmp_path, bytes(data))
    assert reading.cache is None and reading.problem and "endian" in reading.problem


@pytest.mark.parametrize("field", [4, 8])  # the key (name) or the value (path) offset
def test_out_of_range_string_offset_skips_entry(
    tmp_path: Path, cache_root: Path, field: int
) -> None:
    data = bytearray(cache_file(cache_root, "new").read_bytes())
    whole = parse_ld_so_cache(bytes(data))
    struct.pack_into("<I", data, NEW_HEADER + field, 0xFFFFFF00)  # entry 0
    reading = reading_of(tmp_path, bytes(data))
    assert reading.problem is None and reading.cache is not None
    assert reading.cache.entries == whole.entries[1:]


def test_old_format_out_of_range_offset_skips_entry(tmp_path: Path, cache_root: Path) -> None:
    data = bytearray(cache_file(cache_root, "old").read_bytes())
    whole = parse_ld_so_cache(bytes(data))
    struct.pack_into("<I", data, 16 + 8, len(data) + 100)  # entry 0's path offset
    reading = reading_of(tmp_path, bytes(data))
    assert reading.cache is not None and reading.cache.entries == whole.entries[1:]


def test_new_entry_size_is_what_ldconfig_writes(cache_root: Path) -> None:
    """The entry table plus strings must end where ldconfig's file ends (no slack)."""
    data = cache_file(cache_root, "new").read_bytes()
    count, strings = struct.unpack_from("<II", data, 20)
    assert NEW_HEADER + NEW_ENTRY * count + strings <= len(data)
    assert len(parse_ld_so_cache(data).entries) == count

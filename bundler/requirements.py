"""What a closure needs from the system it runs on, were it not bundled.

Pure functions over `ElfFacts`: the highest GLIBC_x.y each object needs and the imported
symbols that force it, the other versioned needs (GLIBCXX_, OPENSSL_, ...), and what the
libc that would be bundled provides (release, minimum kernel).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from bundler.elf import ElfFacts
from bundler.glibc import ABI_MARKERS, format_version, glibc_version_key, is_glibc
from bundler.resolve import Closure, Library

_FAMILY = re.compile(r"^(.*?)[_.]?(\d+(?:[._]\d+)*)$")


@dataclass(frozen=True)
class ForcedBy:
    """One object's imports that are bound to the version that sets the requirement."""

    object: str
    version: str  # e.g. "GLIBC_2.34" or "GLIBC_ABI_DT_RELR"
    symbols: tuple[str, ...]


@dataclass(frozen=True)
class GlibcNeed:
    """The oldest glibc that could satisfy some objects, and why."""

    release: str  # e.g. "2.34"
    forced_by: tuple[ForcedBy, ...]


@dataclass(frozen=True)
class OtherNeed:
    """A non-glibc versioned need: the newest version of one family from one library."""

    library: str  # vn_file, e.g. "libstdc++.so.6"
    family: str  # e.g. "GLIBCXX"
    highest: str  # e.g. "GLIBCXX_3.4.30"
    needed_by: tuple[str, ...]
    symbols: tuple[str, ...]


@dataclass(frozen=True)
class Requirements:
    program_glibc: GlibcNeed | None
    closure_glibc: GlibcNeed | None  # the program and its non-glibc libraries
    other: tuple[OtherNeed, ...]
    bundled_glibc: str | None  # release of the libc.so.6 that would be bundled
    libc_path: str | None
    min_kernel: str | None  # from that libc's ABI tag (or the static program's)


def glibc_need(objects: Iterable[tuple[str, ElfFacts]]) -> GlibcNeed | None:
    """The highest glibc version needed by `objects` ((label, facts) pairs), and why.

    An object may need one version from several glibc files (libc.so.6 and ld.so);
    its symbols are merged into one entry per object and version.
    """
    best: tuple[int, ...] | None = None
    forced: dict[tuple[str, str], set[str]] = {}
    for label, facts in objects:
        for need in facts.version_needs:
            key = glibc_version_key(need.version) if is_glibc(need.file) else None
            if key is None:
                continue
            if best is None or key > best:
                best, forced = key, {}
            if key == best:
                symbols = forced.setdefault((label, need.version), set())
                symbols.update(need.symbols)
                if need.version in ABI_MARKERS:
                    symbols.add(f"({need.version}: an ABI marker, no symbol)")
    if best is None:
        return None
    return GlibcNeed(
        format_version(best),
        tuple(ForcedBy(label, version, tuple(sorted(symbols)))
              for (label, version), symbols in forced.items()),
    )


def other_needs(objects: Iterable[tuple[str, ElfFacts]]) -> tuple[OtherNeed, ...]:
    """The newest version per (library, family) of every non-glibc versioned need."""
    groups: dict[tuple[str, str], list[tuple[tuple[int, ...], str, str, tuple[str, ...]]]] = {}
    for label, facts in objects:
        for need in facts.version_needs:
            if is_glibc(need.file):
                continue
            family, key = _family_and_key(need.version)
            groups.setdefault((need.file, family), []).append(
                (key, need.version, label, need.symbols)
            )
    result = []
    for (library, family), entries in sorted(groups.items()):
        top = max(key for key, *_ in entries)
        at_top = [e for e in entries if e[0] == top]
        result.append(OtherNeed(
            library=library, family=family, highest=at_top[0][1],
            needed_by=tuple(sorted({e[2] for e in at_top})),
            symbols=tuple(sorted({s for e in at_top for s in e[3]})),
        ))
    return tuple(result)


def _family_and_key(version: str) -> tuple[str, tuple[int, ...]]:
    match = _FAMILY.match(version)
    if not match or not match.group(1):
        return version, ()
    numbers = tuple(int(p) for p in re.split(r"[._]", match.group(2)))
    return match.group(1), numbers


def requirements_of(closure: Closure, libc: Library | None, release: str | None) -> Requirements:
    """Requirements of the program alone and of the program with its non-glibc libraries."""
    program = (closure.program_label, closure.program)
    own = [(lib.name, lib.facts) for lib in closure.libraries
           if not is_glibc(lib.soname or lib.name)]
    tag = (libc.facts.abi_tag if libc else None) or (
        closure.program.abi_tag if closure.program.is_static else None
    )
    return Requirements(
        program_glibc=glibc_need([program]),
        closure_glibc=glibc_need([program, *own]),
        other=other_needs([program, *own]),
        bundled_glibc=release,
        libc_path=libc.realpath if libc else None,
        min_kernel=tag.describe() if tag else None,
    )

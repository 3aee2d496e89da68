"""What glibc itself loads at run time for the programs, decided with their closures.

glibc dlopens libraries no DT_NEEDED names: libgcc_s.so.1 when a thread is cancelled or
exits, and the NSS modules nsswitch.conf names when anything looks up a user, group or
host (GLIBC-NOTES section 2). `resolve_programs` walks each program's closure once, decides
from them what glibc will load, and has the resolver add those, searched as libc.so.6
searches them: the build never resolves twice.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import dataclass

from bundler import nss
from bundler.elf import ElfFacts
from bundler.glibc import release_key
from bundler.ldcache import read_ld_so_cache
from bundler.resolve import (
    Closure,
    ResolveOptions,
    closure_objects,
    libc_release,
    resolve_closure,
    resolve_closures,
)
from bundler.sysroot import Sysroot

THREAD_SYMBOLS = frozenset({"pthread_create", "pthread_cancel", "pthread_exit"})


@dataclass(frozen=True)
class RuntimeLoads:
    """What glibc will dlopen for these programs, and why."""

    names: tuple[str, ...]  # asked of the resolver: libgcc_s.so.1 first, then NSS modules
    missing: tuple[str, ...]  # of those, the ones the build root could not give
    nss_lookups: bool  # a program, a library or an --add plugin calls an NSS lookup
    # Of the missing NSS modules, those the programs' own lookups would load
    # (nss.needed_missing): what the `missing-nss` gate fails on.
    missing_needed: tuple[str, ...] = ()


def resolve_programs(paths: Sequence[str], added_paths: Sequence[str], sysroot: Sysroot,
                     options: ResolveOptions, nss_choice: str,
                     ) -> tuple[list[Closure], list[Closure], RuntimeLoads]:
    """The programs' closures with what glibc loads at run time, the --add plugins'
    closures, and what glibc's loads are.

    The plugins are resolved after the programs' own libraries (a program's missing
    library is the first error) and before the decision: their NSS calls count, since
    glibc looks up for whoever calls; their threads do not decide libgcc_s.
    `nss_choice` is `--nss`: auto, none or a list of sources.
    """
    asked: list[str] = []
    added: list[Closure] = []
    lookups = False
    databases: frozenset[str] = frozenset()

    def decide(closures: list[Closure]) -> tuple[str, ...]:
        nonlocal lookups, databases
        added.extend(resolve_closure(path, sysroot, options) for path in added_paths)
        lookups = calls_nss([*closures, *added])
        databases = nss.databases_looked_up(
            symbol for c in (*closures, *added) for _, facts in closure_objects(c)
            for symbol in facts.imported_symbols)
        asked.extend(threads_need(closures) + nss_modules(
            nss_choice, sysroot, closures, lookups, options.library_path))
        return tuple(asked)

    closures = resolve_closures(paths, sysroot, options, decide)
    found = {name for c in closures for lib in c.libraries for name in (*lib.aliases, lib.name)}
    missing = tuple(sorted(name for name in set(asked) if name not in found))
    needed = nss.needed_missing(nss_choice, sysroot, missing, databases) if lookups else ()
    return closures, added, RuntimeLoads(tuple(asked), missing, lookups, needed)


def uses_threads(objects: list[tuple[str, ElfFacts]]) -> bool:
    return any(THREAD_SYMBOLS.intersection(f.imported_symbols) for _, f in objects)


def threads_need(closures: list[Closure]) -> tuple[str, ...]:
    """What glibc will dlopen for these programs' threads: libgcc_s.so.1 when they use them.

    pthread_cancel and pthread_exit unwind through libgcc_s; without it glibc aborts with
    "libgcc_s.so.1 must be installed for pthread_cancel to work" (GLIBC-NOTES section 2).
    """
    threads = any(uses_threads(closure_objects(c)) for c in closures)
    return ("libgcc_s.so.1",) if threads else ()


def calls_nss(closures: list[Closure]) -> bool:
    """Whether the programs, their libraries or the --add plugins call an NSS lookup.

    Closure-wide: glibc does the lookup for whoever calls getaddrinfo or getpwnam, a
    library (libcurl, libpam) as much as the program; a Go program with the cgo resolver
    or cgo os/user imports getaddrinfo/getpwuid_r itself. glibc's own objects are left out
    (closure_objects): they call into NSS only for a caller that is counted here.
    """
    return any(objects_call_nss(closure_objects(c)) for c in closures)


def objects_call_nss(objects: list[tuple[str, ElfFacts]]) -> bool:
    return any(nss.NSS_CALLERS.intersection(f.imported_symbols) for _, f in objects)


def nss_modules(choice: str, sysroot: Sysroot, closures: list[Closure], lookups: bool,
                library_path: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The libnss_*.so.2 modules to bundle for `--nss`, judged by the bundled libc; auto
    looks for modules where the loader looks for libraries (nss.py says why all of them)."""
    _, release = libc_release(closures[0])
    first = closures[0]
    dirs = [*library_path, *(first.search.system_dirs if first.search else ())]
    cache = read_ld_so_cache(sysroot).cache if choice == "auto" and lookups else None
    if cache is not None:
        dirs += [posixpath.dirname(e.path) for e in cache.entries
                 if e.flags in first.arch.cache_flags and e.is_baseline
                 and nss.source_of(posixpath.basename(e.name)) is not None]
    return nss.module_names(choice, sysroot, release_key(release), lookups, dirs)

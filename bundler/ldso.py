"""Facts about the target's dynamic loader read from its file, never by running it.

glibc compiles its system search dirs into ld.so as one NUL-separated string constant
(`SYSTEM_DIRS` in `elf/dl-load.c`, e.g. "/lib/x86_64-linux-gnu/\\0/usr/lib/..."), and
`$LIB` is the first of them without its slashes. Reading them from the sysroot's own
loader makes Fedora's `/lib64` and Debian's multiarch dirs both come out right; the
`machine.py` table is only the fallback for a loader we cannot read.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from bundler.machine import Architecture

# rtld.c's option string, compared with strcmp: in every ld.so since glibc 2.33.
ARGV0_OPTION = b"\0--argv0\0"
# A run of two or more NUL-terminated absolute directory names ending in '/'.
_DIRS_RUN = re.compile(rb"(?:/[A-Za-z0-9_.+/-]*/\0){2,}")


@dataclass(frozen=True)
class LoaderSearchFacts:
    system_dirs: tuple[str, ...]
    lib_token: str  # the value of `$LIB`
    from_loader: bool  # False: the architecture's Debian defaults were used
    argv0: bool = False  # the loader takes --argv0 (supports_argv0)


def search_facts(loader_bytes: bytes | None, arch: Architecture) -> LoaderSearchFacts:
    """System dirs and `$LIB` of the loader whose content is `loader_bytes`."""
    dirs = _system_dirs(loader_bytes) if loader_bytes else None
    argv0 = supports_argv0(loader_bytes)
    if not dirs:
        return LoaderSearchFacts(arch.default_dirs, arch.lib_token, False, argv0)
    return LoaderSearchFacts(dirs, dirs[0].strip("/"), True, argv0)


def supports_argv0(loader_bytes: bytes | None) -> bool:
    """Whether this ld.so takes `--argv0` (the launcher's loader start passes it, so the
    program sees the argv[0] it was started with). Read from the file, as pax-utils'
    lddtree does, not from a table of releases: a distribution's backport counts, and an
    unreadable loader is taken not to have it (the start works, argv[0] is libexec/NAME)."""
    return loader_bytes is not None and ARGV0_OPTION in loader_bytes


def system_dirs_run(data: bytes) -> bytes | None:
    """The loader's SYSTEM_DIRS string as it sits in the file ("/lib/x86_64-linux-gnu/\\0
    ... /usr/lib/\\0"), for sealing.py to replace as a whole."""
    for match in _DIRS_RUN.finditer(data):
        names = [n.decode() for n in match.group(0).split(b"\0") if n]
        if any(n.rstrip("/").endswith(("/lib", "/lib64", "/lib32")) for n in names) and all(
            "lib" in n for n in names
        ):
            return match.group(0)
    return None


def _system_dirs(data: bytes) -> tuple[str, ...] | None:
    run = system_dirs_run(data)
    if run is None:
        return None
    return tuple(n.decode().rstrip("/") or "/" for n in run.split(b"\0") if n)


def read_loader(top: str, relative: str) -> bytes | None:
    """The bytes of an unpacked artifact's loader (`relative` to its top, as the manifest
    names it); None when it is not a regular file. The tree was checked against the
    manifest and its symlinks stay inside it (safe_unpack), so this reads nothing else."""
    path = os.path.join(top, relative)
    if os.path.islink(path) or not os.path.isfile(path):
        return None
    with open(path, "rb") as handle:
        return handle.read()

"""Facts about the target's dynamic loader read from its file, never by running it.

glibc compiles its system search dirs into ld.so as one NUL-separated string constant
(`SYSTEM_DIRS` in `elf/dl-load.c`, e.g. "/lib/x86_64-linux-gnu/\\0/usr/lib/..."), and
`$LIB` is the first of them without its slashes. Reading them from the sysroot's own
loader makes Fedora's `/lib64` and Debian's multiarch dirs both come out right; the
`machine.py` table is only the fallback for a loader we cannot read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bundler.machine import Architecture

# A run of two or more NUL-terminated absolute directory names ending in '/'.
_DIRS_RUN = re.compile(rb"(?:/[A-Za-z0-9_.+/-]*/\0){2,}")


@dataclass(frozen=True)
class LoaderSearchFacts:
    system_dirs: tuple[str, ...]
    lib_token: str  # the value of `$LIB`
    from_loader: bool  # False: the architecture's Debian defaults were used


def search_facts(loader_bytes: bytes | None, arch: Architecture) -> LoaderSearchFacts:
    """System dirs and `$LIB` of the loader whose content is `loader_bytes`."""
    dirs = _system_dirs(loader_bytes) if loader_bytes else None
    if not dirs:
        return LoaderSearchFacts(arch.default_dirs, arch.lib_token, False)
    return LoaderSearchFacts(dirs, dirs[0].strip("/"), True)


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

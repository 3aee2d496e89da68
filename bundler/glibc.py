"""Which objects are glibc, and which glibc a libc.so.6 is.

glibc's shared objects are one unit with its loader (GLIBC-NOTES section 2): they are
bundled together and never judged one by one, so the rest of the tool needs to tell
them apart from the program's own libraries.
"""

from __future__ import annotations

import re

# Sonames installed by glibc 2.17 .. 2.41 (libcrypt and libnsl.so.2 moved out to
# libxcrypt and libnsl, and are ordinary libraries).
GLIBC_SONAMES = frozenset({
    "libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1",
    "libresolv.so.2", "libutil.so.1", "libanl.so.1", "libmvec.so.1", "libBrokenLocale.so.1",
    "libthread_db.so.1", "libc_malloc_debug.so.0", "libnsl.so.1", "libmemusage.so",
    "libpcprofile.so", "libnss_files.so.2", "libnss_dns.so.2", "libnss_compat.so.2",
    "libnss_hesiod.so.2", "libnss_db.so.2", "libcidn.so.1",
    "ld-linux-x86-64.so.2", "ld-linux-x32.so.2", "ld-linux.so.2", "ld-linux-aarch64.so.1",
    "ld-linux-armhf.so.3", "ld-linux.so.3", "ld-linux-riscv64-lp64d.so.1", "ld64.so.2",
    "ld64.so.1",
})

_RELEASE_BANNER = re.compile(rb"GNU C Library [^\n\0]*? version (\d+\.\d+(?:\.\d+)?)")
_GLIBC_VERSION = re.compile(r"^GLIBC_(\d+(?:\.\d+)+)$")
# GLIBC_ABI_DT_RELR marks objects using DT_RELR relocations, which need glibc >= 2.36.
ABI_MARKERS = {"GLIBC_ABI_DT_RELR": (2, 36)}


def is_glibc(name: str | None) -> bool:
    return name is not None and name in GLIBC_SONAMES


def glibc_version_key(version: str) -> tuple[int, ...] | None:
    """(2, 34) for "GLIBC_2.34"; the implied release for ABI markers; None otherwise."""
    if version in ABI_MARKERS:
        return ABI_MARKERS[version]
    match = _GLIBC_VERSION.match(version)
    return tuple(int(p) for p in match.group(1).split(".")) if match else None


def format_version(key: tuple[int, ...]) -> str:
    return ".".join(str(p) for p in key)


def release_of_libc(data: bytes, version_definitions: tuple[str, ...]) -> str | None:
    """The glibc release of a libc.so.6: its banner, else its newest symbol version."""
    match = _RELEASE_BANNER.search(data)
    if match:
        return match.group(1).decode()
    keys = [k for k in (glibc_version_key(v) for v in version_definitions) if k]
    return format_version(max(keys)) if keys else None




def release_key(release: str | None) -> tuple[int, ...]:
    """A release as numbers, for comparing ("2.100" > "2.34"); () when unknown."""
    if not release:
        return ()
    return tuple(int(p) for p in release.split(".") if p.isdigit())

"""Keep GCONV_PATH and LOCPATH to the bundled glibc: rename them inside its own copy.

The launcher must point the bundled glibc at lib/gconv and lib/locale, and environment
variables are inherited by every program the bundled one starts. Measured in the Debian 11
root: a host `iconv -f latin1 -t utf-8` (glibc 2.31) with GCONV_PATH pointing at glibc
2.36's modules fails ("failed to start conversion processing"), and LOCPATH makes host
programs skip their locale-archive. So the bundled libc.so.6 reads a variable of its own
instead: the name is replaced, byte for byte and at the same length, in the string table of
the bundled libc.so.6 (its getenv). Host programs never read the new name.

The loader's copy is NOT renamed: its list of variables that secure mode (setuid, setgid,
capabilities) unsets holds the real GCONV_PATH and LOCPATH, and renaming them there let a
caller's GCONV_PATH through a setuid artifact to the host programs it started as root (a
reviewer's local root). That list cannot grow in place, so the renamed variable is not on
it: an artifact with a privileged program is never scoped (its programs keep glibc's own
names, which the loader strips; sealing.py points its gconv dir at PREFIX/lib/gconv).

The name carries a digest of the libc file, so two bundles with different glibc builds do
not read each other's settings; bundles with the same build may, harmlessly.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

# The scoped name: this prefix, then hex digits of the libc's sha256 up to the length.
SCOPED_PREFIXES = {"GCONV_PATH": "BGC", "LOCPATH": "BLP"}
# Other variables (a recipe's, --env's): "B", then hex digits of a digest of the name and
# the libc's sha256; a shorter name would carry too few digits to be its own.
OTHER_PREFIX = "B"
MIN_SCOPED_LENGTH = 6
MAX_SCOPED_LENGTH = 64  # "B" and 63 of sha256's 64 hex digits


@dataclass(frozen=True)
class Rename:
    """Replace the NUL-terminated string `original` by `scoped` (same length) in a copy:
    how the bundled glibc gets variables of its own (scoping.py) and is kept from host
    paths (sealing.py). `whole=False`: `original` is a run of several strings, replaced
    wherever it occurs."""

    original: str
    scoped: str
    whole: bool = True


def scoped_name(variable: str, libc_sha256: str) -> str:
    """The same-length name the bundled copies read instead of `variable`."""
    prefix = SCOPED_PREFIXES.get(variable)
    if prefix is not None:
        return prefix + libc_sha256[: len(variable) - len(prefix)].upper()
    digest = hashlib.sha256(f"{variable}\0{libc_sha256}".encode()).hexdigest()
    return OTHER_PREFIX + digest[: len(variable) - len(OTHER_PREFIX)].upper()


def whole_string_count(data: bytes, name: str) -> int | None:
    """How many times `name` is a whole NUL-terminated string in `data`; None when it is
    also the tail of a longer string (the linker shares tails: renaming would be unsafe)."""
    needle = name.encode() + b"\0"
    count, start = 0, data.find(needle)
    while start != -1:
        if start > 0 and data[start - 1] != 0:
            return None
        count += 1
        start = data.find(needle, start + 1)
    return count


def apply_renames(data: bytes, renames: tuple[Rename, ...]) -> bytes:
    """`data` with each whole-string occurrence renamed (every occurrence of a run, for
    `whole=False`); the length never changes."""
    for rename in renames:
        assert len(rename.original) == len(rename.scoped)
        original, scoped = rename.original.encode(), rename.scoped.encode()
        if rename.whole:  # the NUL after is looked at, not taken: "\0A\0A\0" renames both
            pattern = re.compile(b"\0" + re.escape(original) + b"(?=\0)")
            data = pattern.sub((b"\0" + scoped).replace(b"\\", b"\\\\"), data)
        else:
            data = data.replace(original, scoped)
    return data

"""Keep GCONV_PATH and LOCPATH to the bundled glibc: rename them inside its own copy.

The launcher must point the bundled glibc at lib/gconv and lib/locale, and environment
variables are inherited by every program the bundled one starts. Measured in the Debian 11
root: a host `iconv -f latin1 -t utf-8` (glibc 2.31) with GCONV_PATH pointing at glibc
2.36's modules fails ("failed to start conversion processing"), and LOCPATH makes host
programs skip their locale-archive. So the bundled libc.so.6 reads a variable of its own
instead: the name is replaced, byte for byte and at the same length, in the string table of
the bundled libc.so.6 (its getenv) and loader (its list of variables unset for setuid
programs, so secure mode still drops it). Host programs never read the new name.

The name carries a digest of the libc file, so two bundles with different glibc builds do
not read each other's settings; bundles with the same build may, harmlessly.
"""

from __future__ import annotations

import dataclasses

from bundler.plan import BundlePlan, Rename

# The scoped name: this prefix, then hex digits of the libc's sha256 up to the length.
SCOPED_PREFIXES = {"GCONV_PATH": "BGC", "LOCPATH": "BLP"}


def scoped_name(variable: str, libc_sha256: str) -> str:
    prefix = SCOPED_PREFIXES[variable]
    return prefix + libc_sha256[: len(variable) - len(prefix)].upper()


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
    """`data` with each whole-string occurrence renamed; the length never changes."""
    for rename in renames:
        assert len(rename.original) == len(rename.scoped)
        data = data.replace(b"\0" + rename.original.encode() + b"\0",
                            b"\0" + rename.scoped.encode() + b"\0")
    return data


def scope_environment(plan: BundlePlan, libc_dest: str, libc: bytes, loader: bytes,
                      libc_sha256: str) -> BundlePlan:
    """The plan with each variable the launcher sets renamed in the bundled libc and
    loader where both hold it as a whole string; the others stay unscoped (the report
    says programs started by the bundled one inherit them)."""
    renames = []
    settings = []
    for setting in plan.env:
        in_libc = whole_string_count(libc, setting.means)
        in_loader = whole_string_count(loader, setting.means)
        if setting.means in SCOPED_PREFIXES and in_libc and in_loader:
            scoped = scoped_name(setting.means, libc_sha256)
            renames.append(Rename(setting.means, scoped))
            settings.append(dataclasses.replace(setting, variable=scoped, scoped=True))
        else:
            settings.append(setting)
    if not renames:
        return dataclasses.replace(plan, env=tuple(settings))
    loader_dest = f"lib/{plan.loader_name}"
    files = tuple(dataclasses.replace(f, renames=tuple(renames))
                  if f.dest in (libc_dest, loader_dest) and f.kind != "alias" else f
                  for f in plan.files)
    return dataclasses.replace(plan, env=tuple(settings), files=files)

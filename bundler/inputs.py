"""Which file a program path names when `--sysroot ROOT` is given: the root's, not the host's.

`bundle /usr/bin/sqlite3 --sysroot ROOT` used to take this machine's sqlite3 and ROOT's
libsqlite3: two builds mixed, and the artifact failed at run time ("SQLite header and
source version mismatch"). A program installed on the host (under its system dirs) was
built against the host's libraries, so with another root it is refused, unless the root
holds the same path: then the root's copy is the one meant, and is taken (with a note).
A program elsewhere (a build directory, /tmp) is the user's own cross or old-root build
and is taken as given; so is a path inside ROOT. `--static` is the user's own static build
and is not looked at here.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from bundler.errors import InputError
from bundler.machine import ARCHITECTURES
from bundler.sysroot import Sysroot

# Where the host's installed programs and libraries live (FHS): what is there was built
# against the host's own libraries.
HOST_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")


@dataclass(frozen=True)
class SysrootInput:
    """One input path as the build will read it, and the note that says why, if changed."""

    given: str
    path: str  # the file on this machine to read
    note: str | None = None


def host_system_path(path: str) -> str | None:
    """The host system dir (`/usr`, ...) that holds `path` after symlinks, or None.

    A cross root's file (`/usr/aarch64-linux-gnu/...`, Debian's libc6-arm64-cross) is
    not the host's own build: it belongs to that root."""
    real = os.path.realpath(path)
    if any(real.startswith(f"/usr/{arch.multiarch}/") for arch in ARCHITECTURES):
        return None
    if real.startswith(("/usr/local/", "/usr/src/")):  # the user's own builds and sources
        return None
    return next((d for d in HOST_SYSTEM_DIRS if real == d or real.startswith(d + "/")), None)


def sysroot_input(given: str, sysroot: Sysroot, kind: str) -> SysrootInput:
    """The file to read for an input path; `kind` names it in messages ("program",
    "--add object").

    Raises InputError for the host's file when the root has no copy of it.
    """
    if sysroot.is_host or sysroot.target_path(given) is not None:
        return SysrootInput(given, given)
    if host_system_path(given) is None:
        return SysrootInput(given, given)  # the user's own build, outside any system tree
    target = os.path.abspath(given)
    real = sysroot.resolve(target)
    if real is not None and sysroot.is_file(target):
        # Read through the root's own symlinks (absolute ones re-rooted), so the host's
        # file is never reached; the given name is kept when it leads to the same file.
        direct = sysroot.host_path(target)
        resolved = sysroot.host_path(real)
        path = direct if os.path.realpath(direct) == os.path.realpath(resolved) else resolved
        return SysrootInput(given, path, f"{given}: using {path}, the sysroot's copy")
    if not os.path.lexists(given):
        return SysrootInput(given, given)  # reading it says "not found"
    raise InputError(
        f"{given}: this machine's {kind}, and the sysroot {sysroot.root} has no copy of it "
        f"({sysroot.host_path(target)}): with the sysroot's libraries it would mix two "
        "builds (e.g. \"SQLite header and source version mismatch\"); give the sysroot's "
        "copy, or a program built for it from outside the system dirs"
    )


def sysroot_inputs(paths: tuple[str, ...], sysroot: Sysroot, kind: str,
                   ) -> tuple[SysrootInput, ...]:
    return tuple(sysroot_input(path, sysroot, kind) for path in paths)


def note_substitutions(inputs: tuple[SysrootInput, ...]) -> None:
    """One `bundle: note:` line on stderr per input read from the sysroot instead."""
    for item in inputs:
        if item.note:
            print(f"bundle: note: {item.note}", file=sys.stderr)

"""Check an unpacked artifact against its manifest (manifest.py), file by file.

The manifest records every file's sha256, size and mode and every symlink's target when
the artifact is written; a file changed afterwards (by a mirror, a repack, a hand) is
named, as is anything the manifest does not know.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from bundler.archive import sha256_of
from bundler.manifest import NOT_LISTED, FileRecord, Manifest
from bundler.tree import walk


@dataclass(frozen=True)
class IntegrityResult:
    checked: int  # files and symlinks compared
    problems: tuple[str, ...]  # "lib/libz.so.1: sha256 differs from the manifest", ...


def check_tree(top: str, manifest: Manifest, modes: dict[str, int]) -> IntegrityResult:
    """Compare the tree under `top` with the manifest's records.

    `modes` are the modes the archive claimed (unpacking drops setuid bits on disk). The
    records' paths are relative without `..` (manifest.load), and every symlink under
    `top` resolves inside it (safe_unpack), so nothing here reads outside `top`.
    """
    problems: list[str] = []
    listed: set[str] = set()
    for record in manifest.files:
        listed.add(record.path)
        problems += _check_record(top, record, modes.get(record.path))
    for relative in sorted(_present(top)):
        if relative not in listed and relative not in NOT_LISTED:
            problems.append(f"{relative}: not in the manifest")
    return IntegrityResult(len(listed), tuple(problems))


def _check_record(top: str, record: FileRecord, claimed: int | None) -> list[str]:
    relative = record.path
    path = os.path.join(top, relative)
    try:
        info = os.lstat(path)
    except OSError:
        return [f"{relative}: missing"]
    if record.type == "symlink":
        if not stat.S_ISLNK(info.st_mode):
            return [f"{relative}: should be a symlink"]
        target = os.readlink(path)
        return [] if target == record.target else [
            f"{relative}: symlink to {target!r}, the manifest says {record.target!r}"]
    if not stat.S_ISREG(info.st_mode):
        return [f"{relative}: should be a regular file"]
    problems = []
    if info.st_size != record.size:
        problems.append(f"{relative}: {info.st_size} bytes, the manifest says {record.size}")
    elif sha256_of(path) != record.sha256:
        problems.append(f"{relative}: sha256 differs from the manifest (changed after bundling)")
    mode = stat.S_IMODE(claimed if claimed is not None else info.st_mode)
    if mode != record.mode:
        problems.append(f"{relative}: mode {mode:04o}, the manifest says {record.mode:04o}")
    return problems


def _present(top: str) -> set[str]:
    """Every file and symlink under `top`, relative ("/"-separated); not recursive."""
    return {relative for relative, info in walk(top) if not stat.S_ISDIR(info.st_mode)}

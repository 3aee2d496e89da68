"""Check an unpacked artifact against its `.bundle/manifest.json`, file by file.

The manifest records every file's sha256, size and mode and every symlink's target when
the artifact is written; a file changed afterwards (by a mirror, a repack, a hand) is
named, as is anything the manifest does not know.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass

from bundler.archive import sha256_of
from bundler.errors import InputError

MANIFEST = ".bundle/manifest.json"
NOT_LISTED = frozenset({MANIFEST, ".bundle/report.md"})  # written after the records
MAX_MANIFEST = 64 << 20


@dataclass(frozen=True)
class IntegrityResult:
    checked: int  # files and symlinks compared
    problems: tuple[str, ...]  # "lib/libz.so.1: sha256 differs from the manifest", ...


def load_manifest(top: str, artifact: str) -> dict:
    path = os.path.join(top, MANIFEST)
    try:
        if os.path.islink(path) or os.path.getsize(path) > MAX_MANIFEST:
            raise ValueError("not a plain file of sensible size")
        with open(path) as handle:
            manifest = json.load(handle)
        if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), list):
            raise ValueError("no file list")
    except (OSError, ValueError) as exc:
        raise InputError(f"{artifact}: its manifest is missing or unreadable ({exc})") from None
    return manifest


def check_tree(top: str, manifest: dict, modes: dict[str, int]) -> IntegrityResult:
    """Compare the tree under `top` with the manifest's records.

    `modes` are the modes the archive claimed (unpacking drops setuid bits on disk).
    """
    problems: list[str] = []
    listed: set[str] = set()
    for record in manifest["files"]:
        if not isinstance(record, dict) or not isinstance(record.get("path"), str):
            problems.append(f"manifest: a record without a path: {record!r:.80}")
            continue
        relative = record["path"]
        listed.add(relative)
        problems += _check_record(top, relative, record, modes.get(relative))
    for relative in sorted(_present(top)):
        if relative not in listed and relative not in NOT_LISTED:
            problems.append(f"{relative}: not in the manifest")
    return IntegrityResult(len(listed), tuple(problems))


def _check_record(top: str, relative: str, record: dict, claimed: int | None) -> list[str]:
    path = os.path.join(top, relative)
    if relative.startswith("/") or ".." in relative.split("/"):
        return [f"{relative}: the manifest names a path outside the artifact"]
    try:
        info = os.lstat(path)
    except OSError:
        return [f"{relative}: missing"]
    if record.get("type") == "symlink":
        if not stat.S_ISLNK(info.st_mode):
            return [f"{relative}: should be a symlink"]
        target = os.readlink(path)
        return [] if target == record.get("target") else [
            f"{relative}: symlink to {target!r}, the manifest says {record.get('target')!r}"]
    if not stat.S_ISREG(info.st_mode):
        return [f"{relative}: should be a regular file"]
    problems = []
    if info.st_size != record.get("size"):
        problems.append(f"{relative}: {info.st_size} bytes, the manifest says "
                        f"{record.get('size')}")
    elif sha256_of(path) != record.get("sha256"):
        problems.append(f"{relative}: sha256 differs from the manifest (changed after bundling)")
    mode = claimed if claimed is not None else stat.S_IMODE(info.st_mode)
    if f"{stat.S_IMODE(mode):04o}" != record.get("mode"):
        problems.append(f"{relative}: mode {stat.S_IMODE(mode):04o}, the manifest says "
                        f"{record.get('mode')}")
    return problems


def _present(top: str) -> set[str]:
    """Every file and symlink under `top`, relative ("/"-separated)."""
    found = set()
    for directory, dirs, files in os.walk(top):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(directory, d))]:
            found.add(os.path.relpath(os.path.join(directory, name), top).replace(os.sep, "/"))
    return found

"""Check an unpacked artifact against its manifest (manifest.py), file by file.

The manifest records every file's sha256, size and mode and every symlink's target when
the artifact is written; a file changed afterwards (by a mirror, a repack, a hand) is
named, as is anything the manifest does not know.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass

from bundler.archive import sha256_of
from bundler.errors import InputError, UnsafeArtifactError
from bundler.manifest import MANIFEST_PATH, NOT_LISTED, FileRecord, Manifest
from bundler.manifest import load as load_manifest
from bundler.safe_unpack import Unpacked, unpack_artifact
from bundler.scratch import drop_scratch, make_scratch
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


@dataclass(frozen=True)
class CheckedArtifact:
    """An artifact unpacked safely, its manifest loaded, and its tree compared with it."""

    unpacked: Unpacked
    manifest: Manifest
    integrity: IntegrityResult

    @property
    def top(self) -> str:
        return self.unpacked.top


def unpack_and_check(artifact: str, into: str) -> CheckedArtifact:
    """What verify reports and compare and the build's --run refuse on: the artifact
    unpacked into `into` (safe_unpack), its manifest (manifest.load) and every difference
    between the two (check_tree)."""
    return checked_against_manifest(artifact, unpack_artifact(artifact, into))


def checked_against_manifest(artifact: str, unpacked: Unpacked) -> CheckedArtifact:
    manifest = load_manifest(unpacked.top, artifact)
    return CheckedArtifact(unpacked, manifest,
                           check_tree(unpacked.top, manifest, unpacked.modes))


@contextlib.contextmanager
def unpacked(artifact: str) -> Iterator[CheckedArtifact]:
    """The artifact, unpacked safely into a temporary directory and checked against its
    manifest (exit 4 naming the first difference: nothing is analysed or run);
    a directory artifact is copied by the same rules (its symlinks judged, nothing read
    through one that leaves it)."""
    if not os.path.lexists(artifact):
        raise InputError(f"{artifact}: no such file")
    scratch = make_scratch("bundle-compare")  # swept by a later run if SIGKILL leaves it
    try:
        result = unpack_artifact(artifact, os.path.join(scratch.path, "unpacked"))
        if not os.path.isfile(os.path.join(result.top, MANIFEST_PATH)):
            raise InputError(f"{artifact}: not an artifact (no */{MANIFEST_PATH})")
        checked = checked_against_manifest(artifact, result)
        problems = checked.integrity.problems
        if problems:  # a launcher changed after bundling must not be run, nor analysed
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise UnsafeArtifactError(f"{artifact}: differs from its manifest: "
                                      f"{problems[0]}{more}; nothing was run")
        yield checked
    finally:
        drop_scratch(scratch)

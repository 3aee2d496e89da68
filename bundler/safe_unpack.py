"""Unpack an artifact that may be hostile, without writing anything outside the target.

A release pipeline verifies what it is about to publish, and `bundle compare` reads
artifacts from elsewhere: every member is judged before a byte is written. Refused:
absolute names, `..`, more than one top directory, symlinks or hard links whose target
leaves the artifact, device files and FIFOs, members larger than a limit, a total larger
than the limit or the free space, duplicate names, and any write through a symlink
(files are created with O_EXCL|O_NOFOLLOW under parents checked to be real directories).
setuid/setgid bits are not given to unpacked files; the modes the archive claims are kept
for the manifest check.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import zstandard

from bundler.archive import artifact_tops
from bundler.errors import EXIT_VERIFY_FAILED, BundleError, InputError

CHUNK = 1 << 20
MAX_MEMBER = 4 << 30  # a shared library over 4 GiB is not plausible; a lie is
MAX_TOTAL = 16 << 30
MAX_MEMBERS = 200_000
MAGICS = (
    (b"\x28\xb5\x2f\xfd", "zst"),
    (b"\x1f\x8b", "gz"),
    (b"\xfd7zXZ\x00", "xz"),
)


class UnsafeArtifactError(BundleError):
    """The archive holds something that must not be unpacked (exit 4: verification)."""

    exit_code = EXIT_VERIFY_FAILED


@dataclass(frozen=True)
class Limits:
    member: int = MAX_MEMBER
    total: int = MAX_TOTAL
    members: int = MAX_MEMBERS


@dataclass(frozen=True)
class Unpacked:
    top: str  # host path of the artifact's top directory
    name: str  # the top directory's name
    modes: dict[str, int]  # relative path (under top) -> mode claimed by the archive
    sha256: str | None  # of the archive file (None for a directory artifact)


class _HashingReader:
    """A file wrapper that hashes what is read through it (one pass for checksum + unpack)."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.digest.update(data)
        return data

    def drain(self) -> str:
        while self.read(CHUNK):
            pass
        return self.digest.hexdigest()


def archive_kind(head: bytes) -> str | None:
    """zst, gz, xz or tar by magic bytes (the ending may lie); None when neither."""
    for magic, kind in MAGICS:
        if head.startswith(magic):
            return kind
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    return None


def checked_name(raw: str) -> str:
    """The member name, normalised; raises for absolute names and `..`."""
    if "\0" in raw or not raw.strip("/."):
        raise UnsafeArtifactError(f"member {raw!r}: empty or invalid name")
    if raw.startswith("/"):
        raise UnsafeArtifactError(f"member {raw!r}: absolute name")
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArtifactError(f"member {raw!r}: '..' leaves the target directory")
    return "/".join(parts)


def link_stays_inside(name: str, target: str, top: str) -> bool:
    """Whether symlink `name` -> `target` resolves (lexically) inside directory `top`."""
    if not target or target.startswith("/") or "\0" in target:
        return False
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
    return resolved == top or resolved.startswith(top + "/")


def unpack_artifact(artifact: str, into: str, limits: Limits = Limits()) -> Unpacked:
    """Unpack ARTIFACT (an archive, or a directory artifact's top) into `into`."""
    os.makedirs(into, mode=0o700, exist_ok=True)
    if os.path.isdir(artifact):
        return _copy_directory(artifact, into, limits)
    try:
        raw = open(artifact, "rb")  # noqa: SIM115 (closed below, also on error)
    except OSError as exc:
        raise InputError(f"{artifact}: cannot read ({exc.strerror or exc})") from None
    with raw:
        kind = archive_kind(raw.read(512))
        raw.seek(0)
        if kind is None:
            raise InputError(f"{artifact}: not an artifact (neither a tar archive, compressed "
                             "or not, nor a directory)")
        reader = _HashingReader(raw)
        stream: BinaryIO = reader  # type: ignore[assignment]
        if kind == "zst":
            stream = zstandard.ZstdDecompressor().stream_reader(reader)  # type: ignore[arg-type]
        mode = {"gz": "r|gz", "xz": "r|xz"}.get(kind, "r|")
        try:
            with tarfile.open(fileobj=stream, mode=mode) as tar:  # type: ignore[call-overload]
                writer = _Writer(into, limits)
                for member in tar:
                    writer.add(member, tar)
                top, name = writer.finish(artifact)
            digest = reader.drain()
        except (tarfile.TarError, zstandard.ZstdError, EOFError, OSError) as exc:
            raise UnsafeArtifactError(
                f"{artifact}: cannot unpack: {' '.join(str(exc).split())}") from None
    return Unpacked(top, name, writer.modes, digest)


class _Writer:
    """Judges and writes one member at a time into `into`."""

    def __init__(self, into: str, limits: Limits) -> None:
        self.into = os.path.abspath(into)
        self.limits = limits
        self.top: str | None = None
        self.total = 0
        self.count = 0
        self.modes: dict[str, int] = {}
        self.files: set[str] = set()
        self.directories: list[tuple[str, int]] = []
        self.free = _free_bytes(self.into)

    def add(self, member: tarfile.TarInfo, tar: tarfile.TarFile) -> None:
        name = self._accept(member)
        path = self._path(name)
        if member.isdir():
            self._directory(path, name, member.mode)
        elif member.isreg():
            source = tar.extractfile(member)
            assert source is not None
            self._file(path, name, source, member.size, member.mode)
        elif member.issym():
            if not link_stays_inside(name, member.linkname, self.top or ""):
                raise UnsafeArtifactError(f"member {name}: symlink to {member.linkname!r} "
                                          "leaves the artifact")
            os.symlink(member.linkname, path)
        elif member.islnk():
            target = checked_name(member.linkname)
            if target not in self.files:
                raise UnsafeArtifactError(f"member {name}: hard link to {member.linkname!r}, "
                                          "which is not a file of the artifact")
            os.link(self._path(target), path, follow_symlinks=False)
            self.files.add(name)
        self.modes[self._relative(name)] = member.mode

    def _accept(self, member: tarfile.TarInfo) -> str:
        name = checked_name(member.name)
        self.count += 1
        if self.count > self.limits.members:
            raise UnsafeArtifactError(f"more than {self.limits.members} members")
        top = name.split("/", 1)[0]
        if self.top is None:
            self.top = top
        elif top != self.top:
            raise UnsafeArtifactError(f"member {name}: a second top directory next to "
                                      f"{self.top}/")
        if not (member.isdir() or member.isreg() or member.issym() or member.islnk()):
            kind = ("device file" if member.ischr() or member.isblk()
                    else "FIFO" if member.isfifo() else "special member")
            raise UnsafeArtifactError(f"member {name}: {kind}; an artifact has none")
        if member.isreg():
            if member.size > self.limits.member:
                raise UnsafeArtifactError(
                    f"member {name}: claims {member.size} bytes, over the limit of "
                    f"{self.limits.member}")
            self.total += member.size
            if self.total > min(self.limits.total, self.free):
                raise UnsafeArtifactError(
                    f"member {name}: the members so far claim {self.total} bytes, more than "
                    f"{'the limit' if self.total > self.limits.total else 'the free space'}")
        return name

    def _path(self, name: str) -> str:
        """The host path for `name`, creating parents; refuses parents that are not real
        directories created here (a symlink among them would lead the write outside)."""
        parent = self.into
        parts = name.split("/")
        for part in parts[:-1]:
            parent = os.path.join(parent, part)
            try:
                info = os.lstat(parent)
            except FileNotFoundError:
                os.mkdir(parent, 0o700)
                continue
            if not stat.S_ISDIR(info.st_mode):
                where = parent[len(self.into) + 1:]
                raise UnsafeArtifactError(f"member {name}: goes through {where}, which is not "
                                          "a directory")
        path = os.path.join(parent, parts[-1])
        if os.path.lexists(path) and not os.path.isdir(path):
            raise UnsafeArtifactError(f"member {name}: appears twice")
        return path

    def _directory(self, path: str, name: str, mode: int) -> None:
        if os.path.islink(path):
            raise UnsafeArtifactError(f"member {name}: a directory over a symlink")
        if not os.path.isdir(path):
            os.mkdir(path, 0o700)
        self.directories.append((path, mode))

    def _file(self, path: str, name: str, source: BinaryIO, size: int, mode: int) -> None:
        if os.path.lexists(path):
            raise UnsafeArtifactError(f"member {name}: appears twice")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        descriptor = os.open(path, flags, 0o600)
        written = 0
        with os.fdopen(descriptor, "wb") as out:
            while chunk := source.read(CHUNK):
                written += len(chunk)
                out.write(chunk)
        if written != size:
            raise UnsafeArtifactError(f"member {name}: {written} bytes instead of {size}")
        self.files.add(name)
        os.chmod(path, (mode & 0o777) | 0o600)  # never setuid/setgid here

    def finish(self, artifact: str) -> tuple[str, str]:
        if self.top is None:
            raise InputError(f"{artifact}: an empty archive")
        for path, mode in reversed(self.directories):
            os.chmod(path, (mode & 0o777) | 0o700)
        return os.path.join(self.into, self.top), self.top

    def _relative(self, name: str) -> str:
        assert self.top is not None
        return name[len(self.top) + 1:] if name != self.top else ""


def _free_bytes(path: str) -> int:
    try:
        info = os.statvfs(path)
    except OSError:
        return MAX_TOTAL
    return info.f_bavail * info.f_frsize


def _walk(top: str) -> Iterator[tuple[str, os.stat_result]]:
    for directory, dirs, files in os.walk(top):
        for entry in sorted(dirs) + sorted(files):
            path = os.path.join(directory, entry)
            yield path, os.lstat(path)


def _copy_directory(artifact: str, into: str, limits: Limits) -> Unpacked:
    """A directory artifact (`-o DIR/`): DIR/NAME or NAME itself, copied by the same rules."""
    source = os.path.abspath(artifact)
    tops = artifact_tops(source)
    if not tops and os.path.isfile(os.path.join(source, ".bundle", "manifest.json")):
        source, tops = os.path.dirname(source), [os.path.basename(source)]
    if not tops:
        raise InputError(f"{artifact}: not an artifact (no */.bundle/manifest.json)")
    base = os.path.join(source, tops[0])
    writer = _Writer(into, limits)
    members = [(base, os.lstat(base)), *_walk(base)]
    for path, info in members:
        name = os.path.relpath(path, source).replace(os.sep, "/")
        member = tarfile.TarInfo(name)
        member.mode = stat.S_IMODE(info.st_mode)
        if stat.S_ISDIR(info.st_mode):
            member.type = tarfile.DIRTYPE
            writer.add(member, None)  # type: ignore[arg-type]
        elif stat.S_ISLNK(info.st_mode):
            member.type, member.linkname = tarfile.SYMTYPE, os.readlink(path)
            writer.add(member, None)  # type: ignore[arg-type]
        elif stat.S_ISREG(info.st_mode):
            member.size = info.st_size
            with open(path, "rb") as handle:
                writer.add(member, _OneFile(handle))  # type: ignore[arg-type]
        else:
            member.type = tarfile.CHRTYPE if stat.S_ISCHR(info.st_mode) else tarfile.FIFOTYPE
            writer.add(member, None)  # type: ignore[arg-type]
    top, name = writer.finish(artifact)
    return Unpacked(top, name, writer.modes, None)


class _OneFile:
    """Stands in for a TarFile whose only member's data is an open file."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle

    def extractfile(self, member: tarfile.TarInfo) -> BinaryIO:
        return self.handle

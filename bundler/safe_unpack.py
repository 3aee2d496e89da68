"""Unpack an artifact that may be hostile, without writing anything outside the target.

A release pipeline verifies what it is about to publish, and `bundle compare` reads
artifacts from elsewhere: every member is judged before a byte is written. Refused:
absolute names, `..`, names with control characters or nested deeper than MAX_DEPTH, more
than one top directory, symlinks or hard links whose target leaves the artifact, device
files, FIFOs and sparse members, members larger than a limit, a total larger than the limit
or the free space, duplicate names, and any write through a symlink (files are created with
O_EXCL|O_NOFOLLOW under parents checked to be real directories). setuid/setgid bits are not
given to unpacked files; the modes the archive claims are kept for the manifest check.

Symlinks are judged by where they lead, not by their text: once everything is written,
every link is resolved hop by hop inside the artifact's top (a relative target from the
link's directory, an absolute one from the top, at most MAX_HOPS links in a chain), and a
chain that leaves the top or loops is refused (exit 4) before anything reads through it.
The artifact given must be a regular file or a directory: a FIFO, a device or a socket is
opened without blocking and refused before a byte is read (exit 2).
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, BinaryIO

import zstandard

from bundler.archive import artifact_tops
from bundler.errors import InputError, UnsafeArtifactError
from bundler.manifest import MANIFEST_PATH
from bundler.tree import walk

CHUNK = 1 << 20
MAX_MEMBER = 4 << 30  # a shared library over 4 GiB is not plausible; a lie is
MAX_TOTAL = 16 << 30
MAX_MEMBERS = 200_000
MAX_DEPTH = 64  # path components of a member name; an artifact built by bundle has ~6
MAX_NAME = 1024  # characters of a member name
MAX_HOPS = 40  # symlinks in one chain, as the kernel's (MAXSYMLINKS)
MAGICS = (
    (b"\x28\xb5\x2f\xfd", "zst"),
    (b"\x1f\x8b", "gz"),
    (b"\xfd7zXZ\x00", "xz"),
)


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
    size: int | None = None  # bytes of the archive file, as hashed (None for a directory)


class _HashingReader:
    """A file wrapper that hashes what is read through it (one pass for checksum + unpack)."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.digest.update(data)
        self.size += len(data)
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
    """The member name, normalised; raises for absolute names, `..`, control characters
    (they would reach the terminal) and names too long or too deep."""
    if "\0" in raw or not raw.strip("/.") or not raw.isprintable():
        raise UnsafeArtifactError(f"member {raw!r}: empty or invalid name (control "
                                  "characters included)")
    if len(raw) > MAX_NAME or raw.count("/") >= MAX_DEPTH:
        raise UnsafeArtifactError(f"member {raw[:60]!r}...: a name longer than {MAX_NAME} "
                                  f"characters or deeper than {MAX_DEPTH} levels")
    if raw.startswith("/"):
        raise UnsafeArtifactError(f"member {raw!r}: absolute name")
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArtifactError(f"member {raw!r}: '..' leaves the target directory")
    return "/".join(parts)


def link_stays_inside(name: str, target: str, top: str) -> bool:
    """Whether symlink `name` -> `target` stays (lexically, by its text alone) inside
    directory `top`: the first judgement, when the member comes; `resolve_inside` judges
    the whole chain once the tree is written."""
    if not target or target.startswith("/") or "\0" in target or not target.isprintable():
        return False
    depth = name.count("/")  # parts above the link, the top included
    for part in target.split("/"):
        if part == "..":
            depth -= 1
            if depth < 1:
                return False
        elif part not in ("", "."):
            depth += 1
    return True


def resolve_inside(top: str, relative: str) -> str:
    """Where `relative` (a path under the directory `top`) leads, following every symlink
    hop by hop as the kernel would, with `top` as the root: a relative target continues
    from the link's directory, an absolute one from `top`. Raises UnsafeArtifactError when
    the chain leaves `top` (a `..` above it) or holds more than MAX_HOPS links. Parents
    are only ever real directories already resolved, so no lstat here follows a link."""
    pending = [p for p in reversed(relative.split("/")) if p]
    resolved: list[str] = []
    hops = 0
    while pending:
        part = pending.pop()
        if part == ".":
            continue
        if part == "..":
            if not resolved:
                raise UnsafeArtifactError(f"{relative}: a chain of symlinks that leaves the "
                                          "artifact")
            resolved.pop()
            continue
        host = os.path.join(top, *resolved, part)
        try:
            info = os.lstat(host)
        except FileNotFoundError:
            resolved.append(part)  # dangling: what follows is judged by its text alone
            continue
        if not stat.S_ISLNK(info.st_mode):
            resolved.append(part)
            continue
        hops += 1
        if hops > MAX_HOPS:
            raise UnsafeArtifactError(f"{relative}: more than {MAX_HOPS} symlinks in a chain "
                                      "(a loop?)")
        target = os.readlink(host)
        if target.startswith("/"):
            resolved = []
        pending.extend(p for p in reversed(target.split("/")) if p)
    return "/".join(resolved)


def unpack_artifact(artifact: str, into: str, limits: Limits = Limits()) -> Unpacked:
    """Unpack ARTIFACT (an archive, or a directory artifact's top) into `into`."""
    os.makedirs(into, mode=0o700, exist_ok=True)
    if os.path.isdir(artifact):
        return _copy_directory(artifact, into, limits)
    raw = open_regular(artifact)
    with raw:
        kind = archive_kind(raw.read(512))
        raw.seek(0)
        if kind is None:
            raise InputError(f"{artifact}: not an artifact (neither a tar archive, compressed "
                             "or not, nor a directory)")
        reader = _HashingReader(raw)
        stream: BinaryIO = reader  # type: ignore[assignment]
        if kind == "zst":
            # a large artifact is many frames (framed_zstd.py), one stream end to end
            stream = zstandard.ZstdDecompressor().stream_reader(
                reader, read_across_frames=True)  # type: ignore[arg-type]
        mode = {"gz": "r|gz", "xz": "r|xz"}.get(kind, "r|")
        try:
            with tarfile.open(fileobj=stream, mode=mode) as tar:  # type: ignore[call-overload]
                writer = _Writer(into, limits)
                for member in tar:
                    writer.add(member, tar)
                top, name = writer.finish(artifact)
            digest = reader.drain()
        except (tarfile.TarError, zstandard.ZstdError, EOFError, OSError,
                UnicodeError) as exc:
            raise UnsafeArtifactError(
                f"{artifact}: cannot unpack: {' '.join(str(exc).split())}") from None
    return Unpacked(top, name, writer.modes, digest, reader.size)


def open_regular(path: str) -> BinaryIO:
    """`path` open for reading if it is a regular file; a FIFO, device, socket or
    directory is refused before a byte is read (O_NONBLOCK: a FIFO without a writer does
    not hang the open)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        descriptor = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a socket, or a FIFO opened for writing elsewhere
            raise InputError(f"{path}: not a regular file (a socket?)") from None
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    info = os.fstat(descriptor)
    if not stat.S_ISREG(info.st_mode):
        os.close(descriptor)
        kind = ("a FIFO" if stat.S_ISFIFO(info.st_mode)
                else "a device" if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode)
                else "a socket" if stat.S_ISSOCK(info.st_mode) else "not a file")
        raise InputError(f"{path}: {kind}, not a regular file: give the artifact file or "
                         "its directory")
    os.set_blocking(descriptor, True)
    return os.fdopen(descriptor, "rb")


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
        self.links: list[str] = []
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
            self.links.append(name)
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
        if member.issparse():
            raise UnsafeArtifactError(f"member {name}: a sparse file; an artifact has none")
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

    def _file(self, path: str, name: str, source: IO[bytes], size: int, mode: int) -> None:
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
        top = os.path.join(self.into, self.top)
        if not stat.S_ISDIR(os.lstat(top).st_mode):
            raise UnsafeArtifactError(f"{artifact}: its top {self.top} is not a directory")
        for name in self.links:
            resolve_inside(top, self._relative(name))
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


def _copy_directory(artifact: str, into: str, limits: Limits) -> Unpacked:
    """A directory artifact (`-o DIR/`): DIR/NAME or NAME itself, copied by the same rules."""
    source = os.path.abspath(artifact)
    tops = artifact_tops(source)
    if not tops and os.path.isfile(os.path.join(source, MANIFEST_PATH)):
        source, tops = os.path.dirname(source), [os.path.basename(source)]
    if not tops:
        raise InputError(f"{artifact}: not an artifact (no */{MANIFEST_PATH})")
    base = os.path.join(source, tops[0])
    if not stat.S_ISDIR(os.lstat(base).st_mode):
        raise UnsafeArtifactError(f"{artifact}: {tops[0]} is a symlink, not a directory")
    writer = _Writer(into, limits)
    try:
        _copy_members(source, tops[0], writer)
    except OSError as exc:
        raise UnsafeArtifactError(f"{artifact}: cannot copy: {exc.strerror or exc}") from None
    top, name = writer.finish(artifact)
    return Unpacked(top, name, writer.modes, None)


def _copy_members(source: str, top: str, writer: _Writer) -> None:
    base = os.path.join(source, top)
    members = _prefixed(top, os.lstat(base), walk(base))
    for name, info in members:
        path = os.path.join(source, name)
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
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
            with os.fdopen(os.open(path, flags), "rb") as handle:
                writer.add(member, _OneFile(handle))  # type: ignore[arg-type]
        else:
            member.type = tarfile.CHRTYPE if stat.S_ISCHR(info.st_mode) else tarfile.FIFOTYPE
            writer.add(member, None)  # type: ignore[arg-type]


def _prefixed(top: str, info: os.stat_result, entries: Iterator[tuple[str, os.stat_result]],
              ) -> Iterator[tuple[str, os.stat_result]]:
    """The top itself, then every entry under it, named as archive members ("top/a/b")."""
    yield top, info
    for relative, entry in entries:
        yield f"{top}/{relative}", entry


class _OneFile:
    """Stands in for a TarFile whose only member's data is an open file."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle

    def extractfile(self, member: tarfile.TarInfo) -> BinaryIO:
        return self.handle

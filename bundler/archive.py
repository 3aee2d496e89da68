"""Deterministic archives (tar + zstd/gzip/xz, plain tar, or a directory), written atomically.

Same inputs give byte-identical output: entries sorted, uid/gid 0 with no names, one
mtime (`SOURCE_DATE_EPOCH` or 0; a carried data file keeps its own, clamped to
SOURCE_DATE_EPOCH when that is set: caches keyed by it, like python's .pyc, stay valid),
normalised modes, GNU tar headers (no pax timestamps),
compressor headers without names or dates. Output goes to a temporary file beside OUT
and is renamed into place only when complete, so a failure, Ctrl-C or SIGTERM leaves
no partial artifact and an existing OUT untouched; what SIGKILL leaves is named as
temporary and swept by the next run (scratch.py). Each file's sha256 and size are taken
from the bytes that went into the archive, and a file that changes while it is read is
refused: the manifest describes exactly what was archived.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import gzip
import hashlib
import lzma
import os
import shutil
import tarfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, Literal, Protocol

import zstandard

from bundler.elf import file_identity
from bundler.errors import EnvironmentUnfitError, InputError
from bundler.exhaustive import assert_never
from bundler.framed_zstd import AheadFrames, FramedZstd
from bundler.manifest import MANIFEST_PATH
from bundler.progress import Progress
from bundler.scratch import Held, directory_lock, make_dir, make_file, written_file
from bundler.signals import checkpoint, deferred_signals, note_written

# The level curve of real artifacts (benchmarks/zstd_curve.py; BENCHMARKS.md has the
# table): level 6 against 9 is +0-4% size for 35-45% less time (node 32.8 MiB in 3.2 s
# against 31.6 MiB in 5.1 s, curl 8.1 against 7.9 MiB, the demo agent the same size), and
# below 6 the size grows faster (level 3: +8-11%); past 9 each point of ratio costs
# seconds (level 12 doubles the time for 1%). So 6.
ZSTD_LEVEL = 6
FORMATS = (
    (".tar.zst", "zst"),
    (".tar.zstd", "zst"),
    (".tzst", "zst"),
    (".tar.gz", "gz"),
    (".tgz", "gz"),
    (".tar.xz", "xz"),
    (".txz", "xz"),
    (".tar", "tar"),
)
CHUNK = 1 << 20
EntryKind = Literal["file", "symlink", "dir"]


@dataclass(frozen=True)
class Entry:
    """One member: a regular file (from `source`), a symlink, or a directory."""

    path: str  # relative, "/"-separated, starting with the artifact's top directory
    kind: EntryKind
    mode: int
    source: str | None = None
    link_target: str | None = None
    ready: Callable[[], None] | None = field(default=None, compare=False)  # before reading
    size_hint: int | None = None  # for a file not written yet: about how big (its original)
    mtime: int | None = None  # a carried file's own (None: the archive's one mtime)
    ahead: AheadFrames | None = field(default=None, compare=False)  # its source's frames


MULTITHREAD_FROM = 32 << 20  # measured: below this, more cores buy nothing (one frame)


def planned_size(entries: list[Entry]) -> int:
    """The bytes the files will hold, known before patched copies exist (deterministic:
    it decides whether a .tar.zst is framed, which changes the output's bytes)."""
    return sum(e.size_hint if e.size_hint is not None else os.path.getsize(e.source)
               for e in entries if e.kind == "file" and e.source)


def output_format(out: str) -> str:
    """The format named by OUT's ending; a trailing "/" means a directory."""
    if out.endswith("/"):
        return "dir"
    for ending, fmt in FORMATS:
        if out.endswith(ending):
            return fmt
    endings = ", ".join(e for e, _ in FORMATS)
    raise InputError(f"-o {out}: unknown format; end it with one of {endings}, or / for a "
                     "directory")


def source_date_epoch() -> int:
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not value:
        return 0
    if not value.isdigit():
        raise InputError(f"SOURCE_DATE_EPOCH={value!r}: must be a whole number of seconds")
    return int(value)


def sha256_of(path: str) -> str:
    """sha256 of a file, computed once per file identity: the input program's is wanted by
    the report, the manifest and compare (a 100 MB program is read for it once), and every
    library's by the plan, whose digests the archive then takes for the same unchanged files
    instead of hashing their bytes again (`known_digest`: ffmpeg's 240 MB, 0.14 s of CPU)."""
    known = known_digest(os.stat(path))
    return known.sha256 if known is not None else _remembered(path, sha1=False).sha256


def digests_ahead(path: str) -> str:
    """sha256_of, with the SHA-1 the archive's digests also need taken in the same read and
    remembered with it: for the files hashed in a thread before they are archived
    (build._hash_ahead), so that the archive hashes none of their bytes again."""
    known = known_digest(os.stat(path))
    if known is not None and known.sha1:
        return known.sha256
    return _remembered(path, sha1=True).sha256


def known_digest(st: os.stat_result) -> Digest | None:
    """The digests sha256_of or digests_ahead took of the file `st` describes, if they took
    them of the file as it is now (same device, inode, size, mtime and ctime; ctime no
    program can set). `sha1` is "" where only sha256_of read it."""
    return _DIGESTS_BY_IDENTITY.get(file_identity(st))


_DIGESTS_BY_IDENTITY: dict[tuple[int, ...], Digest] = {}
_REMEMBERED = 16384  # files; a release builds several closures in one process


def _remembered(path: str, sha1: bool) -> Digest:
    """`_digest_of(path, sha1)`, remembered by the file's identity if it did not change
    while it was read."""
    identity = file_identity(os.stat(path))
    made = _digest_of(path, sha1)
    if file_identity(os.stat(path)) == identity:
        if len(_DIGESTS_BY_IDENTITY) >= _REMEMBERED:
            _DIGESTS_BY_IDENTITY.clear()
        _DIGESTS_BY_IDENTITY[identity] = made
    return made


@dataclass(frozen=True)
class Digest:
    """A file as it went into the artifact: the sha256 and size of the bytes written, and
    their SHA-1, which SPDX 2.3 requires of every file it lists (the SBOMs)."""

    sha256: str
    size: int
    sha1: str = ""


class OutputWriter:
    """The output being written (`open_output`): entries are added in batches, and each
    batch's file digests come back, so the build can write the entries made from them
    (the manifest) last, without reading a file twice."""

    def __init__(self, place: Callable[[Entry], Digest | None]) -> None:
        self._place: Callable[[Entry], Digest | None] | None = place
        self.archive_sha256: str | None = None  # once in place; None for a directory
        self.companions: list[tuple[str, bytes]] = []  # (suffix, content): beside()
        self.stale: list[str] = []  # suffixes whose OUT+suffix goes when OUT is in place
        self.written: dict[str, Digest] = {}  # every file's digest so far, by entry path
        self.frames_reused = 0  # zstd frames made ahead of their patched copy (framed_zstd)

    def beside(self, suffix: str, content: bytes | None) -> None:
        """A file to put next to OUT as OUT+`suffix` (e.g. OUT.cdx.json), in place with
        OUT and OUT.sha256 or not at all; None: an OUT+`suffix` left by an earlier build
        is removed then (it would describe another artifact)."""
        if self._place is None:
            raise AssertionError("a companion added after the output was written")
        if content is None:
            self.stale.append(suffix)
        else:
            self.companions.append((suffix, content))

    def add(self, entries: Iterable[Entry]) -> dict[str, Digest]:
        """Write `entries`, sorted by path; the digest of each file among them, taken from
        the bytes written (an entry still being patched is waited for: Entry.ready)."""
        if self._place is None:
            raise AssertionError("entries added after the output was written")
        digests = {}
        for entry in sorted(entries, key=lambda e: e.path):
            digest = self._place(entry)
            if digest is not None:
                digests[entry.path] = digest
        self.written.update(digests)
        return digests

    def _close(self) -> None:
        self._place = None


@contextlib.contextmanager
def open_output(out: str, epoch: int, planned: int, level: int = ZSTD_LEVEL,
                ) -> Iterator[OutputWriter]:
    """Write to `out` in the format its name asks for, atomically: leaving the block
    normally puts OUT (and OUT.sha256) in place, whole; leaving it by an exception, Ctrl-C
    or SIGTERM removes what was written and leaves an existing OUT untouched.

    `planned`: the bytes the files will hold (`planned_size`); it decides zstd's framing.
    Files are copied into the tar stream 1 MiB at a time (tarfile's 16 KiB meant 15,000
    reads, each hashed twice, for ffmpeg's 236 MB).
    """
    fmt = output_format(out)
    target = out.rstrip("/") or out
    parent = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(parent):
        raise InputError(f"-o {out}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"-o {out}: directory {parent} is not writable")
    if fmt != "dir" and os.path.isdir(target):
        raise InputError(f"-o {out}: is a directory; end it with / to write a directory")
    if fmt == "dir":
        _check_replaceable(out, target)
    with deferred_signals():
        if fmt == "dir":
            with _writing_directory(target, parent) as writer:
                yield writer
        else:
            with _writing_file(target, parent, fmt, epoch, level, planned) as writer:
                yield writer


@contextlib.contextmanager
def _writing_file(out: str, parent: str, fmt: str, epoch: int, level: int, planned: int,
                  ) -> Iterator[OutputWriter]:
    parts: list[Held] = []  # the archive, then its checksum file, until renamed
    try:
        parts.append(make_file(parent, os.path.basename(out)))
        handle = parts[0].handle
        assert handle is not None
        with handle:
            hashed = _HashingWriter(handle)
            progress = Progress(f"bundle: writing {os.path.basename(out)}", planned)
            try:
                with _tar_writer(hashed, fmt, level, epoch, planned) as (tar, framed):  # type: ignore[arg-type]
                    writer = OutputWriter(functools.partial(
                        _add_entry, tar, epoch=epoch, progress=progress, framed=framed))
                    try:
                        yield writer
                    finally:
                        writer._close()
                    writer.frames_reused = framed.frames_reused if framed else 0
            finally:
                progress.finish()
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(parts[0].path, 0o644)
        digest = hashed.digest.hexdigest()
        named = [(out, ""), (out + ".sha256", ".sha256")]
        parts.append(_companion_part(out, ".sha256",
                                     f"{digest}  {os.path.basename(out)}\n".encode()))
        for suffix, content in writer.companions:
            parts.append(_companion_part(out, suffix, content))
            named.append((out + suffix, suffix))
        # Two builds writing the same OUT each finish whole temporary files; without the
        # lock one could rename its archive while the other renames its checksum file.
        with directory_lock(parent):
            for part, (path, _) in zip(parts, named):
                os.replace(part.path, path)
            _remove_stale(out, writer.stale)
            note_written(out)
    except OSError as exc:
        for part in parts:
            part.discard()
        raise EnvironmentUnfitError(f"cannot write {out}: {exc.strerror or exc}") from None
    except BaseException:
        for part in parts:
            part.discard()
        raise
    for part in parts:
        part.release()
    writer.archive_sha256 = digest


class _HashingWriter:
    """The output file, hashing every byte written to it (OUT.sha256 without a re-read)."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self.raw.write(data)

    def flush(self) -> None:
        self.raw.flush()


class _TarStream(Protocol):
    """What tarfile is given to write to (typeshed's tarfile._Fileobj): the raw file or a
    compressor over it (GzipFile, LZMAFile and zstd's writer are no BinaryIO)."""

    def read(self, size: int, /) -> bytes: ...
    def write(self, data: bytes, /) -> object: ...
    def tell(self) -> int: ...
    def seek(self, pos: int, /) -> object: ...
    def close(self) -> object: ...


@contextlib.contextmanager
def _tar_writer(raw: BinaryIO, fmt: str, level: int, epoch: int, planned: int,
                ) -> Iterator[tuple[tarfile.TarFile, FramedZstd | None]]:
    """The tar stream over its compressor; the framed zstd writer too, for a large artifact.

    A large .tar.zst is written as independent frames compressed on every core, some of
    them ahead of time (framed_zstd.py); a small one as one frame, compressed as it is
    written (frames would only be compressed at the end, after waiting for the patched
    program). `planned` decides, so the output does not depend on timing."""
    if fmt == "zst" and planned >= MULTITHREAD_FROM:
        framed = FramedZstd(raw, level)
        try:
            # mode "w": header, data and padding go straight to the framed writer, which
            # is told where each file's data begins (mode "w|" buffers them in records)
            with tarfile.open(fileobj=framed, mode="w",  # type: ignore[call-overload]
                              format=tarfile.GNU_FORMAT, copybufsize=CHUNK) as tar:
                yield tar, framed
            framed.close()
        except BaseException:
            framed.abandon()
            raise
        return
    with (_compressor(raw, fmt, level, epoch) as stream,
          tarfile.open(fileobj=stream, mode="w|",  # type: ignore[call-overload]
                       format=tarfile.GNU_FORMAT, copybufsize=CHUNK) as tar):
        yield tar, None


@contextlib.contextmanager
def _compressor(raw: BinaryIO, fmt: str, level: int, epoch: int) -> Iterator[_TarStream]:
    if fmt == "tar":
        yield raw
    elif fmt == "zst":
        compressor = zstandard.ZstdCompressor(level=level, write_checksum=True)
        with compressor.stream_writer(raw, closefd=False) as stream:
            yield stream
    elif fmt == "gz":
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=epoch,
                           compresslevel=9) as stream:
            yield stream
    elif fmt == "xz":
        with lzma.LZMAFile(raw, mode="wb", preset=6) as stream:
            yield stream
    else:  # pragma: no cover - output_format() guards this
        raise AssertionError(fmt)


def _add_entry(tar: tarfile.TarFile, entry: Entry, epoch: int, progress: Progress,
               framed: FramedZstd | None = None) -> Digest | None:
    info = tarfile.TarInfo(entry.path)
    info.mtime = entry_mtime(entry, epoch)
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = entry.mode
    if entry.kind == "dir":
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    elif entry.kind == "symlink":
        info.type = tarfile.SYMTYPE
        info.linkname = entry.link_target or ""
        info.mode = 0o777
        tar.addfile(info)
    elif entry.kind == "file":
        assert entry.source is not None
        if entry.ready is not None:
            entry.ready()  # a patched copy still being written by the worker
        with open(entry.source, "rb") as source:
            before = os.fstat(source.fileno())
            info.size = before.st_size
            reader = _CheckedReader(source, progress, known_digest(before))
            if framed is not None and framed.frames_alone(info.size):
                framed.expect_file(len(info.tobuf(tar.format, tar.encoding, tar.errors)),
                                   info.size, entry.ahead)
            try:
                tar.addfile(info, reader)
            except OSError:  # tarfile's "unexpected end of data": it shrank
                refuse_if_changed(entry.source, before, os.fstat(source.fileno()))
                raise
            refuse_if_changed(entry.source, before, os.fstat(source.fileno()))
        checkpoint()
        return reader.digests()
    else:
        assert_never(entry.kind)
    checkpoint()
    return None


def refuse_if_changed(path: str, before: os.stat_result, after: os.stat_result) -> None:
    """A file written to while it was archived (a library being upgraded, a log): its bytes
    may be half old, half new, so the build stops rather than ship them."""
    if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
        raise InputError(f"{path}: changed while it was being bundled ({before.st_size} -> "
                         f"{after.st_size} bytes); bundle again once it is stable")


class _CheckedReader:
    """A file whose every read is a check point for a deferred Ctrl-C or SIGTERM, and is
    hashed on the way into the archive."""

    def __init__(self, handle: BinaryIO, progress: Progress, known: Digest | None = None,
                 ) -> None:
        self.handle = handle
        # the file's digests, taken before for this very identity (known_digest): not redone
        self.known_sha256 = known.sha256 if known is not None else None
        self.known_sha1 = known.sha1 if known is not None and known.sha1 else None
        self.digest = hashlib.sha256()
        self.sha1 = hashlib.sha1(usedforsecurity=False)
        self.count = 0  # bytes read: what the archive holds
        self.progress = progress

    def read(self, size: int = -1) -> bytes:
        checkpoint()
        data = self.handle.read(size)
        if self.known_sha256 is None:
            self.digest.update(data)
        if self.known_sha1 is None:
            self.sha1.update(data)
        self.count += len(data)
        self.progress.advance(len(data))
        return data

    def digests(self) -> Digest:
        return Digest(self.known_sha256 or self.digest.hexdigest(), self.count,
                      self.known_sha1 or self.sha1.hexdigest())


@contextlib.contextmanager
def _writing_directory(out: str, parent: str) -> Iterator[OutputWriter]:
    held: list[Held] = []
    try:
        held.append(make_dir(parent, os.path.basename(out)))
        staging = held[0].path
        writer = OutputWriter(functools.partial(_place_entry, staging))
        try:
            yield writer
        finally:
            writer._close()
        os.chmod(staging, 0o755)
        for suffix, content in writer.companions:
            held.append(_companion_part(out, suffix, content))
        with directory_lock(parent):
            _replace_directory(staging, out)
            for part, (suffix, _) in zip(held[1:], writer.companions):
                os.replace(part.path, out + suffix)
            _remove_stale(out, writer.stale)
            note_written(out + "/")
    except OSError as exc:
        for temporary in held:
            temporary.discard()
        raise EnvironmentUnfitError(f"cannot write {out}/: {exc.strerror or exc}") from None
    except BaseException:
        for temporary in held:
            temporary.discard()
        raise
    for temporary in held:
        temporary.release()


def _place_entry(staging: str, entry: Entry) -> Digest | None:
    checkpoint()
    dest = os.path.join(staging, entry.path)
    digest = None
    if entry.kind == "dir":
        os.makedirs(dest, exist_ok=True)
    elif entry.kind == "symlink":
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        os.symlink(entry.link_target or "", dest)
        return None
    elif entry.kind == "file":
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        assert entry.source is not None
        if entry.ready is not None:
            entry.ready()
        before = _stat_input(entry.source)
        copy_file(entry.source, dest)
        refuse_if_changed(entry.source, before, _stat_input(entry.source))
        digest = _digest_of(dest)  # the copy: what the artifact holds
    else:
        assert_never(entry.kind)
    os.chmod(dest, entry.mode)
    if entry.mtime is not None and entry.kind == "file":
        os.utime(dest, (entry.mtime, entry.mtime))
    return digest


def entry_mtime(entry: Entry, epoch: int) -> int:
    """The archive's mtime, or a carried file's own: clamped to SOURCE_DATE_EPOCH when it
    is set (a positive `epoch`), as reproducible builds do."""
    if entry.mtime is None:
        return epoch
    return min(entry.mtime, epoch) if epoch > 0 else max(entry.mtime, 0)


def _stat_input(path: str) -> os.stat_result:
    try:
        return os.stat(path)
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _digest_of(path: str, sha1: bool = True) -> Digest:
    """sha256, size and (unless `sha1` is False: "") SHA-1 of the bytes read from `path`
    now, in one pass through one buffer."""
    digest = hashlib.sha256()
    second = hashlib.sha1(usedforsecurity=False) if sha1 else None
    size = 0
    buffer = memoryview(bytearray(CHUNK))
    with open(path, "rb") as handle:
        while count := handle.readinto(buffer):
            digest.update(buffer[:count])
            if second is not None:
                second.update(buffer[:count])
            size += count
    return Digest(digest.hexdigest(), size, second.hexdigest() if second is not None else "")


FICLONE = 0x40049409  # linux/fs.h: _IOW(0x94, 9, int)


def copy_file(source: str, dest: str) -> None:
    """A copy-on-write clone where the file system offers one (btrfs, XFS, bcachefs), else
    shutil's copy, which uses sendfile on Linux: the bytes never pass through Python."""
    with open(source, "rb") as src, open(dest, "wb") as dst:
        try:
            fcntl.ioctl(dst.fileno(), FICLONE, src.fileno())
            return
        except OSError:
            pass
    shutil.copyfile(source, dest)


def artifact_tops(directory: str) -> list[str]:
    """Names in `directory` that are artifacts' top dirs (they hold a manifest)."""
    return [name for name in sorted(os.listdir(directory))
            if os.path.isfile(os.path.join(directory, name, MANIFEST_PATH))]


def _check_replaceable(out: str, target: str) -> None:
    """An existing OUT/ is replaced only when it holds nothing but earlier artifacts.

    `-o ~/` or `-o ./` by mistake must not delete a home or a work tree.
    """
    if not os.path.lexists(target):
        return
    if os.path.islink(target) or not os.path.isdir(target):
        raise InputError(f"-o {out}: exists and is not a directory")
    try:
        names = os.listdir(target)
    except OSError as exc:
        raise InputError(f"-o {out}: cannot read it: {exc.strerror}") from None
    strangers = sorted(set(names) - set(artifact_tops(target)))
    if strangers:
        raise InputError(
            f"-o {out}: exists and holds other things than an artifact "
            f"({', '.join(sorted(strangers)[:3])}); remove it or name a new directory"
        )


def _replace_directory(staging: str, out: str) -> None:
    """Move the finished tree into place; an old OUT is swapped out, then removed."""
    if not os.path.lexists(out):
        os.rename(staging, out)
        return
    if not os.path.isdir(out) or os.path.islink(out):
        raise InputError(f"-o {out}/: exists and is not a directory")
    old = make_dir(os.path.dirname(out), f"{os.path.basename(out)}.old", directory_locked=True)
    try:
        os.rename(out, os.path.join(old.path, "tree"))
    except BaseException:  # e.g. -o ./ (the cwd cannot be moved): leave no `old` behind
        old.discard()
        raise
    os.rename(staging, out)
    old.discard()


def _remove_stale(out: str, suffixes: list[str]) -> None:
    """Remove OUT+suffix for each suffix (a regular file or a symlink, not a directory)."""
    for suffix in suffixes:
        path = out + suffix
        if os.path.islink(path) or os.path.isfile(path):
            os.unlink(path)


def _companion_part(out: str, suffix: str, content: bytes) -> Held:
    """OUT+`suffix`'s content (OUT.sha256, an SBOM) in a temporary beside OUT, to be
    renamed into place with it."""
    return written_file(os.path.dirname(os.path.abspath(out)), os.path.basename(out) + suffix,
                        content)

"""Temporary files and directories beside an output: named as temporary, locked while the
process that made them lives, and swept by the next run once that process is gone.

Every temporary thing `bundle` makes beside OUT (the build's staging directory, the archive
being written, a directory artifact being assembled, the checksum and report files before
their rename) is called `.STEM.PID.XXXXXXXX.part` and holds an flock for as long as its
maker runs. SIGKILL cannot be caught, so nothing removes them then; the kernel does drop
the lock, and the next `bundle` writing into that directory removes every such name whose
lock it can take. The lock, not the pid, decides: a pid may be reused, or belong to
another PID namespace sharing the directory. Making a temporary and locking it happen
under the directory's own lock, which the sweep holds too, so a sweep never sees one
unlocked in between. The pid in the name is for the people who find one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from typing import BinaryIO

from bundler.tree import remove_tree

SUFFIX = ".part"
_NAME = re.compile(r"\..+\.[0-9]+\.[a-z0-9_]{8}\.part")


class Held:
    """A temporary path and the lock that says its maker is alive. `release()` once the
    path is renamed away or removed (also for a file still open for writing: the lock is
    on a duplicate of its descriptor)."""

    def __init__(self, path: str, lock: int, handle: BinaryIO | None = None) -> None:
        self.path = path
        self.handle = handle  # a file's write handle; None for a directory
        self._lock: int | None = lock

    def release(self) -> None:
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def discard(self) -> None:
        """Remove it (whatever it is by now) and release the lock."""
        if self.handle is not None:
            with contextlib.suppress(OSError):
                self.handle.close()
        if os.path.isdir(self.path) and not os.path.islink(self.path):
            remove_tree(self.path)
        else:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
        self.release()


def temp_name_prefix(stem: str) -> str:
    return f".{stem}.{os.getpid()}."


def make_dir(parent: str, stem: str, *, directory_locked: bool = False) -> Held:
    """A new, locked `.STEM.PID.XXXXXXXX.part` directory in `parent` (mode 0700).
    `directory_locked`: the caller holds directory_lock(parent) already."""
    with _unless(directory_locked, parent):
        path = tempfile.mkdtemp(dir=parent, prefix=temp_name_prefix(stem), suffix=SUFFIX)
        lock = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        fcntl.flock(lock, fcntl.LOCK_EX)
    return Held(path, lock)


def make_file(parent: str, stem: str, *, directory_locked: bool = False) -> Held:
    """A new, locked, empty `.STEM.PID.XXXXXXXX.part` file in `parent` (mode 0600), open for
    writing as `.handle`."""
    with _unless(directory_locked, parent):
        descriptor, path = tempfile.mkstemp(dir=parent, prefix=temp_name_prefix(stem),
                                            suffix=SUFFIX)
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        lock = os.dup(descriptor)  # same open file: the lock outlives the write handle
    return Held(path, lock, os.fdopen(descriptor, "wb"))


def written_file(parent: str, stem: str, content: bytes, mode: int = 0o644) -> Held:
    """A temporary in `parent` holding `content` with `mode`, for the caller to rename into
    place (os.replace, then release()); removed, and the error raised, if writing fails."""
    part = make_file(parent, stem)
    try:
        assert part.handle is not None
        with part.handle as handle:
            handle.write(content)
        os.chmod(part.path, mode)
    except BaseException:
        part.discard()
        raise
    return part


def replace_with(path: str, content: bytes) -> None:
    """`path` replaced by a file holding `content`, atomically: a reader sees the old file
    or the new one, never half of it, and a symlink at `path` is replaced, not followed."""
    part = written_file(os.path.dirname(os.path.abspath(path)), os.path.basename(path),
                        content)
    try:
        os.replace(part.path, path)
    except BaseException:
        part.discard()
        raise
    part.release()


@contextlib.contextmanager
def directory_lock(directory: str) -> Iterator[None]:
    """An exclusive flock on `directory`: while an artifact is put in place (two builds
    writing the same OUT must not leave one's archive with the other's checksum file), while
    a temporary is made and locked, and while stale ones are swept. Each is short.
    Not re-entrant: flock locks of two descriptors conflict within one process too."""
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def _unless(held: bool, directory: str) -> Iterator[None]:
    if held:
        yield
    else:
        with directory_lock(directory):
            yield


def is_temporary_name(name: str) -> bool:
    return _NAME.fullmatch(name) is not None


def sweep(directory: str) -> list[str]:
    """Remove the temporaries in `directory` whose maker is gone (their lock is free);
    return their names. Only this user's regular files and directories are touched, never
    through a symlink. A directory that cannot be read or locked is left alone: the write
    that follows reports it."""
    removed: list[str] = []
    try:
        names = [name for name in os.listdir(directory) if is_temporary_name(name)]
        if not names:
            return removed
        with directory_lock(directory):
            for name in names:
                if _remove_if_orphaned(directory, name):
                    removed.append(name)
    except OSError:
        pass
    return removed


def _remove_if_orphaned(directory: str, name: str) -> bool:
    path = os.path.join(directory, name)
    try:
        info = os.lstat(path)
    except OSError:
        return False
    is_dir = stat.S_ISDIR(info.st_mode)
    if info.st_uid != os.geteuid() or not (is_dir or stat.S_ISREG(info.st_mode)):
        return False
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_DIRECTORY if is_dir else 0)
    try:
        descriptor = os.open(path, flags)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held: its build is alive
            return False
        if is_dir:
            remove_tree(path)
        else:
            os.unlink(path)
        return not os.path.lexists(path)
    except OSError:
        return False
    finally:
        os.close(descriptor)


def make_scratch(stem: str) -> Held:
    """A private (0700) temporary directory under TMPDIR for one run (verify, compare, a
    launcher's compile), named and locked like the temporaries beside OUT: when SIGKILL
    leaves one, the next run's sweep removes it once its lock is free. Give it back with
    drop_scratch."""
    parent = tempfile.gettempdir()
    sweep(parent)
    return make_dir(parent, stem)


def drop_scratch(held: Held) -> None:
    remove_tree(held.path)
    held.release()

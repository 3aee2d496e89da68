"""Compiled launchers kept between builds, in the user's cache directory.

Compiling launcher.c costs a C compiler run (~0.2 s of CPU, a quarter of a small build's
and the one thing its main process waited for). The compiled launcher holds no artifact's
values (native_launcher.py writes them in afterwards), so one compile serves every build
made with the same compiler, flags and source. It is kept under
`$XDG_CACHE_HOME/bundle/launchers` (else `~/.cache/...`), named by a digest of everything
the output depends on: launcher.c, the flags, the compiler command and the identity (path,
device, inode, size, mtime) of the driver and of the cc1, as and ld it runs, so an
upgraded toolchain is a new name (ccache's default checks the driver alone).

What is read from it ends up in artifacts shipped to other machines, so the directory is
used only when it is this user's and nobody else can write to it, entries are opened
without following symlinks and must be this user's regular files, and native_launcher.py
checks what it reads as it checks a fresh compile (a static ELF for the architecture,
holding the values' space exactly once). Anything else: the launcher is compiled, as if
there were no cache. The cache is an optimisation only: every failure to read or write it
is silent.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterator

MAX_ENTRY = 1 << 22  # a launcher is ~8 KiB plus its values' space (at most 1 MiB)
SUBDIR = ("bundle", "launchers")


def cache_dir() -> str | None:
    """Where compiled launchers are kept: None when no absolute base is known (the XDG
    base directory spec ignores a relative $XDG_CACHE_HOME)."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):
        home = os.environ.get("HOME", "")
        if not os.path.isabs(home):
            return None
        base = os.path.join(home, ".cache")
    return os.path.join(base, *SUBDIR)


def load(key: str) -> bytes | None:
    """The entry named `key`, if the cache and the entry can be trusted; else None."""
    directory = cache_dir()
    if directory is None:
        return None
    with _opened_dir(directory) as folder:
        if folder is None:
            return None
        try:
            handle = os.open(key, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK,
                             dir_fd=folder)
        except OSError:
            return None
        with open(handle, "rb") as reader:
            info = os.fstat(reader.fileno())
            if not (stat.S_ISREG(info.st_mode) and _private(info)
                    and 0 < info.st_size <= MAX_ENTRY):
                return None
            data = reader.read(MAX_ENTRY + 1)
        return data if len(data) == info.st_size else None


def store(key: str, data: bytes) -> None:
    """Keep `data` as `key`, atomically (a reader sees the whole entry or none)."""
    directory = cache_dir()
    if directory is None or len(data) > MAX_ENTRY:
        return
    with contextlib.suppress(OSError):
        os.makedirs(directory, mode=0o700, exist_ok=True)
    with _opened_dir(directory) as folder:
        if folder is None:
            return
        temporary = f".new-{os.getpid()}-{secrets.token_hex(8)}"
        try:
            handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                             | os.O_CLOEXEC, 0o600, dir_fd=folder)
        except OSError:
            return
        try:
            with open(handle, "wb") as writer:
                writer.write(data)
            os.replace(temporary, key, src_dir_fd=folder, dst_dir_fd=folder)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=folder)


@contextlib.contextmanager
def _opened_dir(path: str) -> Iterator[int | None]:
    """`path` opened as a directory, if it is a real one (not a symlink) of this user that
    only it can write; its entries are then opened relative to it, so the checked
    directory is the one used."""
    try:
        folder = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        yield None
        return
    try:
        trusted = _private(os.fstat(folder))
    except OSError:
        trusted = False
    try:
        yield folder if trusted else None
    finally:
        os.close(folder)


def _private(info: os.stat_result) -> bool:
    return info.st_uid == os.geteuid() and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)

"""Paths of the target system, looked up inside a sysroot the way the kernel would.

Every file the resolver touches goes through `Sysroot`, so that `--sysroot DIR` never
reads from `/` by accident: absolute symlink targets (`/lib64/ld-linux-x86-64.so.2 ->
/lib/x86_64-linux-gnu/...`, merged-/usr `lib -> usr/lib`) are re-rooted at DIR, and `..`
is applied after symlinks, as the kernel does (no lexical normalisation).
"""

from __future__ import annotations

import os
import stat
from collections import deque

from bundler.errors import InputError

MAX_SYMLINKS = 40  # Linux's limit before ELOOP


class Sysroot:
    """The root of the target file system; target paths are absolute within it."""

    def __init__(self, root: str = "/") -> None:
        real = os.path.realpath(root)
        if not os.path.isdir(real):
            raise InputError(f"--sysroot {root}: not a directory")
        self.root = real
        self._resolved: dict[str, str | None] = {}

    @property
    def is_host(self) -> bool:
        return self.root == "/"

    def host_path(self, target_path: str) -> str:
        """Where the target path lives on this machine (no symlink resolution)."""
        if self.is_host:
            return target_path
        return self.root + target_path

    def target_path(self, host_path: str) -> str | None:
        """The target path of a file given by its host path, or None when outside."""
        real = os.path.realpath(host_path)
        if self.is_host:
            return real
        if real == self.root:
            return "/"
        if real.startswith(self.root + "/"):
            return real[len(self.root):]
        return None

    def resolve(self, target_path: str) -> str | None:
        """The canonical target path of an existing file or dir, or None if it is missing.

        Symlink loops and too-long chains count as missing, as ELOOP does for the loader.
        """
        if target_path not in self._resolved:
            self._resolved[target_path] = self._walk(target_path)
        return self._resolved[target_path]

    def _walk(self, target_path: str) -> str | None:
        pending = deque(target_path.split("/"))
        done: list[str] = []
        followed = 0
        while pending:
            part = pending.popleft()
            if part in ("", "."):
                continue
            if part == "..":
                if done:
                    done.pop()
                continue
            candidate = "/" + "/".join([*done, part])
            try:
                mode = os.lstat(self.host_path(candidate)).st_mode
            except OSError:
                return None
            if stat.S_ISLNK(mode):
                followed += 1
                if followed > MAX_SYMLINKS:
                    return None
                try:
                    link = os.readlink(self.host_path(candidate))
                except OSError:
                    return None
                if link.startswith("/"):
                    done = []
                pending.extendleft(reversed(link.split("/")))
                continue
            if pending and any(p not in ("", ".") for p in pending) and not stat.S_ISDIR(mode):
                return None
            done.append(part)
        return "/" + "/".join(done)

    def is_file(self, target_path: str) -> bool:
        resolved = self.resolve(target_path)
        return resolved is not None and os.path.isfile(self.host_path(resolved))

    def is_dir(self, target_path: str) -> bool:
        resolved = self.resolve(target_path)
        return resolved is not None and os.path.isdir(self.host_path(resolved))

    def read_bytes(self, target_path: str, limit: int | None = None) -> bytes | None:
        """The content (or its first `limit` bytes) of a target file, None if unreadable."""
        resolved = self.resolve(target_path)
        if resolved is None:
            return None
        try:
            with open(self.host_path(resolved), "rb") as handle:
                return handle.read() if limit is None else handle.read(limit)
        except OSError:
            return None

    def list_dir(self, target_path: str) -> list[str]:
        resolved = self.resolve(target_path)
        if resolved is None:
            return []
        try:
            return sorted(os.listdir(self.host_path(resolved)))
        except OSError:
            return []

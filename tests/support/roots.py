"""Isolated roots to run artifacts in: an empty one (busybox only) and an old Debian.

Every mount made here is undone in a `finally`, also when the test fails. Roots are
copies: the cached debootstrap tree (made by scripts/test, keyed by its inputs) is
never modified by a test.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

from support.needs import need

BUSYBOX = "/bin/busybox"
ROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def need_root() -> None:
    need(os.geteuid() == 0, "needs root (chroot and mounts)")


@contextlib.contextmanager
def mounted_proc(root: Path) -> Iterator[Path]:
    """`/proc` inside `root` for the duration ($ORIGIN and /proc/self/exe need it)."""
    proc = root / "proc"
    proc.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "proc", "proc", str(proc)], check=True)
    try:
        yield root
    finally:
        subprocess.run(["umount", "-l", str(proc)], check=False)


@contextlib.contextmanager
def empty_root(where: Path) -> Iterator[Path]:
    """A root holding nothing but a static busybox as /bin/sh and a mounted /proc."""
    need_root()
    need(os.path.exists(BUSYBOX), "busybox-static is not installed")
    root = where / "empty-root"
    (root / "bin").mkdir(parents=True)
    (root / "tmp").mkdir()
    shutil.copy2(BUSYBOX, root / "bin" / "sh")
    with mounted_proc(root):
        yield root


def debian11_tree() -> Path:
    """The cached Debian 11 minbase tree (scripts/test makes it)."""
    value = os.environ.get("BUNDLE_ROOT_BULLSEYE", "")
    need(bool(value) and (Path(value) / ".complete").exists(),
         "no Debian 11 root: run ./scripts/test (it debootstraps one) or set BUNDLE_ROOT_BULLSEYE")
    return Path(value)


@contextlib.contextmanager
def debian11_root(where: Path) -> Iterator[Path]:
    """A private copy of the Debian 11 root with /proc mounted."""
    need_root()
    tree = debian11_tree()
    root = where / "debian11"
    subprocess.run(["cp", "-a", "--reflink=auto", str(tree), str(root)], check=True)
    with mounted_proc(root):
        yield root


def chroot_run(root: Path, argv: Sequence[str], *, stdin: str | None = None,
               env: dict[str, str] | None = None, timeout: float = 60,
               ) -> subprocess.CompletedProcess[str]:
    """Run `argv` inside `root` with a minimal environment."""
    full_env = {"PATH": ROOT_PATH, "HOME": "/root", "LANG": "C"}
    full_env.update(env or {})
    return subprocess.run(["chroot", str(root), *argv], input=stdin, capture_output=True,
                          text=True, env=full_env, timeout=timeout)


def unpack(artifact: Path, into: Path, *, strip: bool = False) -> Path:
    """Unpack with the system tar, as a user would; returns `into`."""
    into.mkdir(parents=True, exist_ok=True)
    command = ["tar", "-xf", str(artifact), "-C", str(into)]
    if str(artifact).endswith(".tar.zst"):
        command.insert(1, "--zstd")
    if strip:
        command.append("--strip-components=1")
    subprocess.run(command, check=True)
    return into

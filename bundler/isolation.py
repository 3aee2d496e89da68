"""Run a command in an isolated root: a bare one made here, or a tree the user gives.

The command runs under `unshare --mount --pid --fork` (plus `--user --map-root-user`
when not root), so every mount (the user's root as an overlay, /proc, /dev/null,
/dev/urandom) lives in a private mount namespace and disappears with it: nothing is left
mounted after a failure, a timeout or Ctrl-C, and the user's root is never written (the
overlay's upper layer is in our temporary directory).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass

from bundler.elf import read_elf
from bundler.errors import BundleError, EnvironmentUnfitError, InputError
from bundler.launcher import shell_quote

BARE_ETC = {
    "hosts": "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n",
    "passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n",
    "group": "root:x:0:\nnogroup:x:65534:\n",
    "nsswitch.conf": "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n",
}
DEVICES = ("null", "urandom")
ROOT_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": "/root", "LANG": "C"}
STATIC_SHELLS = ("/bin/busybox", "/usr/bin/busybox")


@dataclass(frozen=True)
class Isolation:
    """How commands are isolated on this machine."""

    user_namespace: bool  # not root: unshare --user --map-root-user


@dataclass(frozen=True)
class Outcome:
    exit_code: int | None  # None: timed out
    stdout: str
    stderr: str
    seconds: float


def probe_isolation() -> Isolation:
    """A private mount namespace directly where this process may (root with
    CAP_SYS_ADMIN), else inside a user namespace (an unprivileged user, or root without
    the capability in a container)."""
    if shutil.which("unshare") is None or shutil.which("chroot") is None:
        raise EnvironmentUnfitError("verify: needs unshare and chroot (util-linux, coreutils)")
    why = ""
    for user_namespace in (False, True):
        command = ["unshare", *(["--user", "--map-root-user"] if user_namespace else []),
                   "--mount", "--pid", "--fork", "true"]
        probe = subprocess.run(command, capture_output=True, text=True)
        if probe.returncode == 0:
            return Isolation(user_namespace=user_namespace)
        why = " ".join(probe.stderr.split()) or f"exit {probe.returncode}"
    raise EnvironmentUnfitError(
        "verify: cannot isolate the run: no mount namespace for this user and no user "
        f"namespace either ({why}); run as root, or allow unprivileged user namespaces")


def static_shell() -> str | None:
    """A statically linked busybox for the bare root's /bin/sh, when this host has one."""
    for candidate in STATIC_SHELLS:
        if os.path.isfile(candidate):
            try:
                if read_elf(candidate).is_static:
                    return candidate
            except BundleError:  # an unreadable file just is not a shell
                continue
    return None


def make_bare_root(root: str) -> list[str]:
    """An empty root: /proc, /dev/{null,urandom} mount points, a minimal /etc, a static
    /bin/sh when one is available. Returns notes for the output."""
    notes = []
    for directory in ("proc", "dev", "etc", "tmp", "root", "bin"):
        os.makedirs(os.path.join(root, directory), exist_ok=True)
    os.chmod(os.path.join(root, "tmp"), 0o1777)
    for device in DEVICES:
        open(os.path.join(root, "dev", device), "w").close()  # bind-mount targets
    for name, text in BARE_ETC.items():
        with open(os.path.join(root, "etc", name), "w") as handle:
            handle.write(text)
    shell = static_shell()
    if shell:
        shutil.copy2(shell, os.path.join(root, "bin", "sh"))
    else:
        notes.append("no static busybox on this host: the bare root has no /bin/sh, so "
                     "launcher scripts cannot run (install busybox-static)")
    return notes


def check_user_root(root: str) -> str:
    real = os.path.realpath(root)
    if not os.path.isdir(real):
        raise InputError(f"--root {root}: not a directory")
    if real == "/":
        raise InputError("--root /: that is this host, not an isolated root")
    if any(c in real for c in ",:\n"):
        raise InputError(f"--root {root}: a path with ',' ':' or a newline cannot be an "
                         "overlay layer")
    return real


def overlay_layers(upper: str, lower: str) -> None:
    """What the overlay's upper layer must hold so mount points exist in the merged view."""
    for directory in ("proc", "dev", "tmp"):
        if not os.path.isdir(os.path.join(lower, directory)):
            os.makedirs(os.path.join(upper, directory), exist_ok=True)
    for device in DEVICES:
        target = os.path.join(lower, "dev", device)
        if not os.path.exists(target):
            os.makedirs(os.path.join(upper, "dev"), exist_ok=True)
            open(os.path.join(upper, "dev", device), "w").close()


def setup_script(root: str, overlay: tuple[str, str, str] | None) -> str:
    """The sh run inside the new namespaces before exec chroot ROOT COMMAND."""
    q = shell_quote
    lines = ["set -e"]
    if overlay is not None:
        lower, upper, work = overlay
        layers = f"lowerdir={lower},upperdir={upper},workdir={work}"
        lines.append(f"mount -t overlay overlay -o {q(layers)} {q(root)}")
    lines.append(f"mount -t proc proc {q(root + '/proc')}")
    for device in DEVICES:
        lines.append(f"mount --bind /dev/{device} {q(f'{root}/dev/{device}')}")
    lines.append(f'exec chroot {q(root)} "$@"')
    return "\n".join(lines) + "\n"


def run_isolated(isolation: Isolation, script: str, command: list[str],
                 env: dict[str, str], timeout: float) -> Outcome:
    """Run `command` in the root `script` prepares; output decoded leniently."""
    argv = ["unshare", *(["--user", "--map-root-user"] if isolation.user_namespace else []),
            "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child",
            "sh", "-c", script, "verify", *command]
    started = time.perf_counter()
    try:
        done = subprocess.run(argv, capture_output=True, env=env, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as expired:
        return Outcome(None, _text(expired.stdout), _text(expired.stderr),
                       time.perf_counter() - started)
    return Outcome(done.returncode, _text(done.stdout), _text(done.stderr),
                   time.perf_counter() - started)


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode("utf-8", "replace")


def remove_tree(path: str) -> None:
    """rm -rf that also gets through directories left without permissions (overlayfs
    leaves its work dir mode 000 when run in a user namespace)."""
    if not os.path.lexists(path):
        return
    if os.path.isdir(path) and not os.path.islink(path):
        os.chmod(path, 0o700)
        for directory, dirs, _ in os.walk(path):
            for name in dirs:
                child = os.path.join(directory, name)
                if not os.path.islink(child):
                    os.chmod(child, 0o700)  # before os.walk descends into it
    shutil.rmtree(path, ignore_errors=True)

"""Run an untrusted program in a bubblewrap sandbox it cannot leave or see out of.

`bundle verify` and `compare --run` run programs nobody has vetted yet: that is their
point. A chroot (the previous design) is no boundary for root: a program escaped it by
fchdir, joined the host's mount namespace through /proc/1/ns/mnt, had every capability,
could open /proc/sys/kernel/core_pattern for writing and reached the host's 127.0.0.1.
So every run happens under bubblewrap (`bwrap`, Debian's `bubblewrap`), in its own user,
mount, PID, network (loopback only), IPC, UTS and cgroup namespaces, after `pivot_root`
into a root built only from what the run needs, with no capabilities, `no_new_privs`, no
further user namespaces, a new session (no terminal to inject into), its own /proc (with
/proc/sys read-only: PROC_COVERED) and a minimal /dev. Nothing is written on the host: the
root tmpfs is remounted read-only, every host tree is bound read-only, and the only
writable places are a fresh tmpfs /tmp and HOME per run (and /dev/shm), gone with the
mount namespace.

Where bubblewrap or user namespaces are missing, verify stops with exit 3 naming what to
install or enable: a weaker mode would give a PASS that means less than it says.

The whole sandbox dies with the run: bwrap is PID 1 of the run's PID namespace (when it
exits the kernel kills everything left in it, also double-forked daemons), it runs with
`--die-with-parent`, and it is killed when the run times out or is interrupted.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import selectors
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass

from bundler.elf import read_elf
from bundler.errors import BundleError, EnvironmentUnfitError, InputError
from bundler.signals import checkpoint

BARE_ETC = {
    "hosts": "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n",
    "passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n",
    "group": "root:x:0:\nnogroup:x:65534:\n",
    "nsswitch.conf": "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n",
}
ROOT_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": "/root", "LANG": "C"}
STATIC_SHELLS = ("/bin/busybox", "/usr/bin/busybox")
HOSTNAME = "bundle-sandbox"
# Fresh writable tmpfs per run (mode): the run's /tmp and HOME.
SCRATCH = {"/tmp": "1777", "/root": "0700"}
# Kernel interfaces the sandbox gets its own copies of (bwrap --proc, --dev).
KERNEL_MOUNTS = {"/proc": "--proc", "/dev": "--dev"}
# Parts of /proc that act on the whole machine, shown read-only over the run's own /proc.
# bwrap 0.8 left /proc/sys writable here: measured, a run started by root (uid 0 in its
# user namespace is the host's uid 0) opened /proc/sys/kernel/core_pattern for writing,
# as sysctl writes are checked by uid, not by capability. The host's /proc/sys shows the
# same tree (net/ for the reader's own network namespace).
PROC_COVERED = ("/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus")
# Per stream, what is kept of a run's output; the rest is counted, not stored (a program
# printing 256 MiB made the old verify grow to 813 MB).
OUTPUT_LIMIT = 1 << 20
READ_CHUNK = 1 << 16
POLL_SECONDS = 0.1  # how often a run's wait looks at pending signals
# Namespaces and privileges, the same for every run: --unshare-all only *tries* a user
# namespace (and as root skips it), so --unshare-user makes it a requirement.
SANDBOX_FLAGS = ("--unshare-all", "--unshare-user", "--disable-userns", "--uid", "0",
                 "--gid", "0", "--hostname", HOSTNAME, "--die-with-parent", "--new-session",
                 "--cap-drop", "ALL")


@dataclass(frozen=True)
class Sandbox:
    """How runs are sandboxed on this machine."""

    bwrap: str  # the bubblewrap binary
    by_root: bool  # started by root: still uid 0 inside a user namespace, no capabilities

    def describe(self) -> str:
        who = "started by root" if self.by_root else "started by an unprivileged user"
        return (f"sandboxed by bubblewrap ({who}; own user, mount, PID, network, IPC and UTS "
                "namespaces, no capabilities)")


@dataclass(frozen=True)
class Layout:
    """What a run's root holds. `base` is a host tree shown read-only as `/` (a bare root
    made here, or the user's --root DIR); `binds` are host paths shown read-only at paths
    inside it (the artifact at its prefix, an emulator); /proc, /dev and SCRATCH are the
    sandbox's own, made fresh for each run."""

    base: str
    binds: tuple[tuple[str, str], ...] = ()  # (host path, path inside)


@dataclass(frozen=True)
class Outcome:
    exit_code: int | None  # None: timed out
    stdout: str  # at most OUTPUT_LIMIT bytes of it, decoded leniently
    stderr: str
    seconds: float
    stdout_bytes: int = 0  # how much the run wrote in all
    stderr_bytes: int = 0

    @property
    def truncated(self) -> bool:
        return max(self.stdout_bytes, self.stderr_bytes) > OUTPUT_LIMIT


def probe_sandbox() -> Sandbox:
    """bubblewrap with the namespaces every run needs, or exit 3 saying what is missing."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise EnvironmentUnfitError(
            "cannot sandbox the run: bubblewrap is not installed (Debian: apt-get install "
            "bubblewrap; version 0.8 or newer)")
    true = shutil.which("true") or "/bin/true"
    try:
        probe = subprocess.run([bwrap, *SANDBOX_FLAGS, "--ro-bind", "/", "/", "--", true],
                               capture_output=True, text=True, errors="replace", env={},
                               stdin=subprocess.DEVNULL, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EnvironmentUnfitError(f"cannot sandbox the run: {bwrap}: {exc}") from None
    if probe.returncode != 0:
        why = " ".join(probe.stderr.split())[:300] or f"exit {probe.returncode}"
        raise EnvironmentUnfitError(
            f"cannot sandbox the run: bubblewrap could not create a user namespace and the "
            f"others ({why}); enable unprivileged user namespaces (sysctl "
            "kernel.unprivileged_userns_clone=1, user.max_user_namespaces > 0, or AppArmor's "
            "kernel.apparmor_restrict_unprivileged_userns=0) and use bubblewrap 0.8 or newer")
    return Sandbox(bwrap=bwrap, by_root=os.geteuid() == 0)


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
    """An empty root's files: a minimal /etc and a static /bin/sh when one is available
    (/proc, /dev, /tmp and HOME are the sandbox's own). Returns notes for the output."""
    notes = []
    for directory in ("etc", "bin"):
        os.makedirs(os.path.join(root, directory), mode=0o755, exist_ok=True)
    for name, text in BARE_ETC.items():
        with open(os.path.join(root, "etc", name), "w") as handle:
            handle.write(text)
        os.chmod(os.path.join(root, "etc", name), 0o644)
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
    return real


def inside_path(path: str) -> str:
    """A path inside the sandbox where a host tree is shown: absolute, normalised, and not
    one of the sandbox's own mounts (a backstop: a manifest's prefix is data)."""
    if not path.startswith("/") or posixpath.normpath(path) != path or path == "/" \
            or "\0" in path:
        raise InputError(f"{path!r}: not a normalised absolute path inside the root")
    for own in KERNEL_MOUNTS:
        if path == own or path.startswith(own + "/"):
            raise InputError(f"{path}: inside the sandbox's own {own}")
    if path in SCRATCH:
        raise InputError(f"{path}: the sandbox's own fresh {path}")
    return path


def mount_arguments(layout: Layout) -> list[str]:
    """bwrap's mount options for `layout`, in the order bwrap must make them.

    bubblewrap 0.8 has no overlay, so the base tree is shown by binding each of its
    entries read-only, except along the paths to what is put inside it: those directories
    (e.g. `/` and `/opt` for a prefix /opt/NAME) are made fresh in the sandbox's root tmpfs
    and filled the same way, one level down. The base is never written, and what is put
    inside it never mixes with the base's own files.
    """
    binds = {inside_path(target): source for source, target in layout.binds}
    own = {**{path: (flag, path) for path, flag in KERNEL_MOUNTS.items()},
           **{path: ("--perms", mode, "--tmpfs", path) for path, mode in SCRATCH.items()}}
    own["/proc"] += tuple(word for path in PROC_COVERED
                          for word in ("--ro-bind-try", path, path))
    targets = set(binds) | set(own)
    spine = {ancestor for target in targets for ancestor in _ancestors(target)}
    arguments: list[str] = []
    for directory in sorted(spine | targets):
        if directory in own:
            arguments += own[directory]
        elif directory in binds:
            arguments += ["--ro-bind", binds[directory], directory]
        elif any(directory == t or directory.startswith(t + "/") for t in own):
            continue  # inside a fresh tmpfs: bwrap makes it when binding below it
        else:
            if directory != "/":
                arguments += ["--dir", directory]
            arguments += _base_entries(layout.base, directory, spine | targets)
    return [*arguments, "--remount-ro", "/"]


def _ancestors(path: str) -> list[str]:
    parts = path.strip("/").split("/")[:-1]
    return ["/"] + ["/" + "/".join(parts[:depth]) for depth in range(1, len(parts) + 1)]


def _base_entries(base: str, directory: str, taken: set[str]) -> list[str]:
    """Bind the entries of BASE/directory read-only, but not those made otherwise."""
    host = base.rstrip("/") + directory
    if os.path.islink(host) or not os.path.isdir(host):
        return []  # replaced by an empty directory
    try:
        names = sorted(os.listdir(host))
    except OSError as exc:
        raise InputError(f"{host}: cannot list it for the root ({exc.strerror or exc})") \
            from None
    arguments = []
    for name in names:
        inside = posixpath.join(directory, name)
        if inside in taken:
            continue
        source = os.path.join(host, name)
        if os.path.islink(source):
            arguments += ["--symlink", os.readlink(source), inside]
        else:
            arguments += ["--ro-bind", source, inside]
    return arguments


def sandbox_argv(sandbox: Sandbox, layout: Layout, command: Sequence[str],
                 env: dict[str, str], status_fd: int) -> list[str]:
    """The bwrap command line: namespaces, the root, the environment, then the command."""
    environment = [word for name, value in sorted(env.items())
                   for word in ("--setenv", name, value)]
    return [sandbox.bwrap, *SANDBOX_FLAGS, "--json-status-fd", str(status_fd),
            *mount_arguments(layout), "--chdir", "/", "--clearenv", *environment,
            "--", *command]


class _Capture:
    """One stream's output: the first OUTPUT_LIMIT bytes kept, everything counted."""

    def __init__(self) -> None:
        self.kept = bytearray()
        self.total = 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        room = OUTPUT_LIMIT - len(self.kept)
        if room > 0:
            self.kept += data[:room]

    def text(self) -> str:
        return bytes(self.kept).decode("utf-8", "replace")


def run_sandboxed(sandbox: Sandbox, layout: Layout, command: Sequence[str],
                  env: dict[str, str], timeout: float, wrapper: Sequence[str] = (),
                  ) -> Outcome:
    """Run `command` in a sandbox with `layout`'s root; bounded output, killed whole on a
    timeout or a signal (which `checkpoint` raises while we wait). `wrapper` runs bwrap
    itself, outside the sandbox (verify --trace: strace)."""
    status_read, status_write = os.pipe()
    started = time.perf_counter()
    try:
        argv = [*wrapper, *sandbox_argv(sandbox, layout, command, env, status_write)]
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, env={}, pass_fds=(status_write,),
                                   start_new_session=True)
    except BaseException:
        os.close(status_read)
        raise
    finally:
        os.close(status_write)
    try:
        out, err, status, finished = _collect(process, status_read, started + timeout)
    finally:
        _kill(process)
        os.close(status_read)
    seconds = time.perf_counter() - started
    if not finished:
        return Outcome(None, out.text(), err.text(), seconds, out.total, err.total)
    code = _exit_code(status)
    if code is None and err.text().startswith("bwrap: execvp "):
        code = 127  # the command could not be started (missing, or its #! interpreter is)
    elif code is None:  # bwrap failed before the command started: not the program's doing
        why = " ".join(err.text().split())[:300] or f"bwrap exit {process.returncode}"
        raise EnvironmentUnfitError(f"cannot sandbox the run: {why}")
    return Outcome(code, out.text(), err.text(), seconds, out.total, err.total)


def _collect(process: subprocess.Popen, status_fd: int, deadline: float,
             ) -> tuple[_Capture, _Capture, bytearray, bool]:
    """Read stdout, stderr and bwrap's status until all are closed or the deadline."""
    assert process.stdout is not None and process.stderr is not None
    out, err, status = _Capture(), _Capture(), bytearray()
    sinks = {process.stdout.fileno(): out.add, process.stderr.fileno(): err.add,
             status_fd: lambda data: status.extend(data[:65536 - len(status)])}
    with selectors.DefaultSelector() as selector:
        for fd in sinks:
            selector.register(fd, selectors.EVENT_READ)
        while sinks:
            checkpoint()
            left = deadline - time.perf_counter()
            if left <= 0:
                return out, err, status, False
            for key, _ in selector.select(min(left, POLL_SECONDS)):
                data = os.read(key.fd, READ_CHUNK)
                if data:
                    sinks[key.fd](data)
                else:
                    selector.unregister(key.fd)
                    del sinks[key.fd]
    while True:  # bwrap exits right after closing its status fd
        checkpoint()
        left = deadline - time.perf_counter()
        if left <= 0:
            return out, err, status, False
        try:
            process.wait(timeout=min(left, POLL_SECONDS))
            return out, err, status, True
        except subprocess.TimeoutExpired:
            continue


def _exit_code(status: bytearray) -> int | None:
    """The command's exit status from bwrap's JSON lines; None when it never ran."""
    for line in bytes(status).decode("utf-8", "replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        code = record.get("exit-code") if isinstance(record, dict) else None
        if isinstance(code, int):
            return code
    return None


def _kill(process: subprocess.Popen) -> None:
    """bwrap and with it the sandbox: bwrap's own PID 1 has --die-with-parent, and the
    kernel kills a PID namespace whole when its PID 1 dies."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()

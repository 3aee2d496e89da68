"""`bundle verify`'s sandbox, attacked for real (issue 14).

A hostile C program (tests/fixtures/hostile.c), bundled by `bundle` so that it passes
every manifest check, is run by `bundle verify` as root and as `nobody` and tries each way
out: reading and writing the host's files, fchdir and `..` out of the root, joining other
namespaces through /proc/N/ns, /proc/sys writes, a TCP connection to a listener on the
host's 127.0.0.1, mounts, capabilities, a daemon left behind. The host is checked around
each run: a sentinel directory (world-writable, so only the sandbox protects it), the
mount table, leftover processes, temporary directories. Signals sent to verify while the
program runs must end it with its message and exit code, leaving nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.cli import run_cli
from support.measure import run_with_peak
from support.needs import need_tool
from support.paths import FIXTURES, REPO
from support.roots import need_root
from support.toolchain import gcc
from test_verify import _unprivileged_command

from bundler.tree import remove_tree

HOSTILE_SOURCE = FIXTURES / "hostile.c"
ATTACKS = {"plain-read", "plain-write", "dotdot-walk", "fchdir-out", "setns", "core-pattern",
           "sysrq", "tcp-127.0.0.1", "network", "mount", "mount-proc", "userns", "capabilities",
           "no-new-privs", "chattr+i", "open-by-handle", "shared-root", "write-root", "daemon"}
SECRET = "the host's secret\n"
# Mounts other test sessions on this machine make and undo meanwhile (tests/support/roots.py's
# mounted_proc under pytest's basetemp); this file's runs never touch pytest's basetemp.
OTHER_TESTS = " /tmp/pytest-of-"


@dataclass(frozen=True)
class HostState:
    """What a run must leave as it was."""

    sentinel: tuple[tuple[str, str], ...]  # (name, sha256) of everything in the dir
    mounts: frozenset[str]

    @staticmethod
    def of(sentinel_dir: Path) -> HostState:
        files = tuple(sorted((str(p.relative_to(sentinel_dir)),
                              hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "")
                             for p in sentinel_dir.rglob("*")))
        return HostState(files, frozenset(
            line for line in Path("/proc/self/mountinfo").read_text().splitlines()
            if OTHER_TESTS not in line))


def leftovers() -> list[str]:
    """Processes of the hostile program (either start), its daemon, or the bwrap running
    it, anywhere on the host: "PID COMM: CMDLINE"."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if comm.startswith("hostile") or "/hostile/" in cmdline:
            found.append(f"{entry.name} {comm}: {cmdline}")
    return found


@pytest.fixture(scope="module")
def place() -> Iterator[Path]:
    """A directory `nobody` can read: the artifact, the package copy for the system python,
    the sentinel directory and the verify runs' TMPDIR."""
    need_root()
    need_tool("bwrap")
    where = Path(tempfile.mkdtemp(prefix="bundle-sandbox-test."))
    where.chmod(0o755)
    try:
        yield where
    finally:
        remove_tree(str(where))


@pytest.fixture(scope="module")
def hostile_artifact(place: Path) -> Path:
    program = gcc(place / "build" / "hostile", HOSTILE_SOURCE.read_text(), "-Wall")
    artifact = place / "hostile.tar.zst"
    result = run_cli(str(program), "-o", str(artifact))
    assert result.returncode == 0, result.stderr
    artifact.chmod(0o644)
    Path(f"{artifact}.sha256").chmod(0o644)
    return artifact


@pytest.fixture
def sentinel_dir(place: Path) -> Iterator[Path]:
    """World-writable and world-readable: on the host, nothing but the sandbox stops the
    program from reading the sentinel or writing beside it."""
    where = place / "sentinel"
    where.mkdir()
    where.chmod(0o777)
    (where / "sentinel").write_text(SECRET)
    (where / "sentinel").chmod(0o644)
    try:
        yield where
    finally:
        shutil.rmtree(where, ignore_errors=True)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.setblocking(False)
    try:
        yield server
    finally:
        server.close()


def accepted(server: socket.socket) -> bool:
    try:
        connection, _ = server.accept()
    except BlockingIOError:
        return False
    connection.close()
    return True


def verify_command(who: str, place: Path) -> tuple[list[str], dict[str, str]]:
    """`bundle verify` as root (this venv) or as nobody (the system python, setpriv)."""
    tmp = place / f"tmp-{who}"
    tmp.mkdir(exist_ok=True)
    if who == "nobody":
        shutil.chown(tmp, 65534, 65534)
        command = _unprivileged_command(place)
        command = [word if not word.startswith("TMPDIR=") else f"TMPDIR={tmp}"
                   for word in command]
        return command, dict(os.environ)
    env = {**os.environ, "TMPDIR": str(tmp),
           "PYTHONPATH": str(REPO)}
    return [sys.executable, "-m", "bundler", "verify"], env


def assert_nothing_left(place: Path, who: str, before: HostState, sentinel_dir: Path) -> None:
    after = HostState.of(sentinel_dir)
    assert after.sentinel == before.sentinel, "the sentinel directory changed"
    assert after.mounts == before.mounts, sorted(after.mounts ^ before.mounts)
    assert leftovers() == []
    assert list((place / f"tmp-{who}").iterdir()) == []
    assert not Path("/tmp/hostile-was-here").exists() and not Path("/hostile-in-root").exists()


def test_the_detection_works_on_the_host(hostile_artifact: Path, place: Path,
                                         sentinel_dir: Path, listener: socket.socket) -> None:
    """Run unsandboxed (as nobody, only the harmless attempts), the program reads the
    sentinel, writes beside it and reaches the listener: the checks below can fail."""
    program = place / "build" / "hostile"
    program.chmod(0o755)
    (place / "build").chmod(0o755)
    port = str(listener.getsockname()[1])
    ran = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                          str(program), "harmless", str(sentinel_dir), port],
                         capture_output=True, text=True, timeout=30)
    print(ran.stdout)
    assert "ESCAPE plain-read: read the host's sentinel" in ran.stdout
    assert "ESCAPE plain-write: wrote a host file" in ran.stdout
    assert "ESCAPE tcp-127.0.0.1: connected" in ran.stdout
    assert ran.returncode == 3
    assert accepted(listener)


@pytest.mark.parametrize("who", ["root", "nobody"])
def test_a_hostile_program_cannot_leave_the_sandbox(hostile_artifact: Path, place: Path,
                                                    sentinel_dir: Path,
                                                    listener: socket.socket, who: str) -> None:
    before = HostState.of(sentinel_dir)
    assert leftovers() == []
    command, env = verify_command(who, place)
    port = str(listener.getsockname()[1])
    ran = subprocess.run([*command, str(hostile_artifact), "--expect-output", "(?m)^done$",
                          "--", "attack", str(sentinel_dir), port],
                         capture_output=True, text=True, env=env, cwd=place, timeout=120)
    print(ran.stdout, ran.stderr)
    assert "ESCAPE" not in ran.stdout + ran.stderr
    assert ran.returncode == 0, ran.stdout + ran.stderr
    started_by = "started by root" if who == "root" else "started by an unprivileged user"
    assert f"sandboxed by bubblewrap ({started_by}" in ran.stdout
    assert "verify: PASS (2 of 2 runs passed)" in ran.stdout
    assert not accepted(listener), "the program reached the host's 127.0.0.1"
    assert_nothing_left(place, who, before, sentinel_dir)
    time.sleep(1.5)  # the daemon would try writing to the host once a second
    assert_nothing_left(place, who, before, sentinel_dir)


def test_each_attack_is_tried_and_held(hostile_artifact: Path, place: Path,
                                       sentinel_dir: Path, listener: socket.socket,
                                       monkeypatch) -> None:
    """Every attempt ran and said why it failed, in both runs (the second run finds no
    file of the first); uid 0 inside, but no capability and no host name."""
    from bundler.verify import VerifyRequest, verify

    monkeypatch.setenv("TMPDIR", str(place / "tmp-root"))
    (place / "tmp-root").mkdir(exist_ok=True)
    port = str(listener.getsockname()[1])
    result = verify(VerifyRequest(str(hostile_artifact),
                                  args=("attack", str(sentinel_dir), port)))
    assert len(result.runs) == 2
    for run in result.runs:
        print(run.label, run.outcome.stdout, run.outcome.stderr, sep="\n")
        held = set(re.findall(r"^held ([^:]+):", run.outcome.stdout, re.M))
        assert held == ATTACKS
        assert "ESCAPE" not in run.outcome.stdout
        assert "held capabilities: CapEff:\t0000000000000000" in run.outcome.stdout
        assert "held no-new-privs: NoNewPrivs:\t1" in run.outcome.stdout
        assert re.search(r"^held core-pattern: (Read-only file system|Permission denied)",
                         run.outcome.stdout, re.M)
        assert "hostname bundle-sandbox" in run.outcome.stdout
        assert "deep tree 1100" in run.outcome.stdout  # made in its own /tmp, gone with it
        assert run.outcome.exit_code == 0 and run.passed
    assert not accepted(listener)
    assert leftovers() == []


def test_output_is_bounded(hostile_artifact: Path, place: Path) -> None:
    """256 MiB of stdout in each run: verify keeps OUTPUT_LIMIT of it, and its peak memory
    stays far below the output (the chroot design grew to 813 MB).

    Its peak is measured by GNU time (support.measure): measured from pytest, it would
    carry pytest's own high-water mark (283 MiB in a full run against 38 MiB alone)."""
    command, env = verify_command("root", place)
    out, err = place / "flood.out", place / "flood.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        process, peak_kib = run_with_peak([*command, str(hostile_artifact), "--", "flood",
                                           "256"], env=env, stdout=stdout, stderr=stderr)
    print(out.read_text()[-400:], err.read_text(), f"verify peak RSS {peak_kib / 1024:.0f} MiB")
    assert process.returncode == 0, err.read_text()
    assert "verify: PASS (2 of 2 runs passed)" in out.read_text()
    assert out.read_text().count("output: 268435456 bytes on stdout, 0 on stderr; only the "
                                 "first 1.0 MiB of each kept and judged") == 2
    assert peak_kib < 150 * 1024


def test_compare_run_sandboxes_the_static_build_and_the_artifact(
        hostile_artifact: Path, place: Path, sentinel_dir: Path,
        listener: socket.socket) -> None:
    """`compare --run`: both sides are untrusted and run in the sandbox, never on the host
    (test_the_detection_works_on_the_host shows what the same attempts do there)."""
    static = gcc(place / "build" / "hostile-static", HOSTILE_SOURCE.read_text(), "-static")
    before = HostState.of(sentinel_dir)
    port = str(listener.getsockname()[1])
    tmp = place / "tmp-compare"
    tmp.mkdir(exist_ok=True)
    ran = run_cli("compare", str(hostile_artifact), str(static), "--json", "--run",
                  f"harmless {sentinel_dir} {port}", env={"TMPDIR": str(tmp)})
    assert ran.returncode == 0, ran.stderr
    runs = json.loads(ran.stdout)["runs"]
    for side in ("static", "artifact"):
        print(side, runs[side])
        assert runs[side]["exit_codes"] == [0] * 5
        assert "held plain-read: no such file" in runs[side]["output"]
        assert "held tcp-127.0.0.1: Connection refused" in runs[side]["output"]
        assert "ESCAPE" not in runs[side]["output"] + runs[side]["errors"]
    assert runs["outputs_match"]
    assert not accepted(listener)
    after = HostState.of(sentinel_dir)
    assert after == before
    assert leftovers() == []
    assert list(tmp.iterdir()) == []


SIGNALS = {signal.SIGINT: (130, "interrupted"), signal.SIGTERM: (143, "terminated"),
           signal.SIGHUP: (129, "hung up")}


def start_compare_run(artifact: Path, place: Path, tmp: Path,
                      args: str) -> subprocess.Popen[str]:
    """`bundle compare ARTIFACT hostile-static --run ARGS` (the hostile program built
    static, once), with `tmp` as its TMPDIR so what it leaves there can be seen."""
    static = place / "build" / "hostile-static"
    if not static.exists():
        gcc(static, HOSTILE_SOURCE.read_text(), "-static")
    tmp.mkdir(exist_ok=True)
    env = {**os.environ, "TMPDIR": str(tmp),
           "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "bundler", "compare", str(artifact),
                             str(static), "--run", args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)


def signal_once(process: subprocess.Popen[str], started: Callable[[], bool], signum: int,
                what: str) -> tuple[str, str]:
    """Send `signum` to `process` once `started()` says the sandboxed program runs (and a
    moment more, into its sleep); its (stdout, stderr). Killed if it outlives the test."""
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not started():
            time.sleep(0.05)
        assert started(), f"{what} never started"
        time.sleep(0.2)
        process.send_signal(signum)
        return process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


@pytest.mark.parametrize("point", ["prefix-run", "loader-run"])
@pytest.mark.parametrize("signum", sorted(SIGNALS), ids=lambda s: signal.Signals(s).name)
def test_signals_during_a_run_leave_nothing(hostile_artifact: Path, place: Path,
                                            sentinel_dir: Path, signum: int,
                                            point: str) -> None:
    before = HostState.of(sentinel_dir)
    command, env = verify_command("root", place)
    process = subprocess.Popen([*command, str(hostile_artifact), "--", "sleep",
                                point.removesuffix("-run")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=env)
    started = ("/opt/hostile/" if point == "prefix-run" else "/tmp/bundle-verify/hostile/")

    def sleeping() -> bool:
        return any(started in line for line in leftovers() if " bwrap: " not in line)

    stdout, stderr = signal_once(process, sleeping, signum, point)
    code, word = SIGNALS[signum]
    assert process.returncode == code, stderr
    assert stderr == f"bundle: {word}; nothing was written\n"
    assert "Traceback" not in stderr and stdout == ""
    assert_nothing_left(place, "root", before, sentinel_dir)


def test_sigkill_kills_the_sandbox_and_the_next_run_sweeps(hostile_artifact: Path,
                                                           place: Path) -> None:
    """SIGKILL cannot be handled: the sandbox still dies with verify (bwrap's
    --die-with-parent, then its PID namespace), the temporary directory stays, named and
    locked as temporary, and the next verify removes it."""
    command, env = verify_command("root", place)
    tmp = place / "tmp-root"
    process = subprocess.Popen([*command, str(hostile_artifact), "--", "sleep", "prefix"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(
                " hostile: " in line for line in leftovers()):
            time.sleep(0.05)
        assert any(" hostile: " in line for line in leftovers()), "never started"
    finally:
        process.kill()
        process.wait()
    deadline = time.monotonic() + 10
    while leftovers() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert leftovers() == []
    left = [p.name for p in tmp.iterdir()]
    assert len(left) == 1 and re.fullmatch(r"\.bundle-verify\.\d+\.\w{8}\.part", left[0]), left
    again = subprocess.run([*command, str(hostile_artifact), "--", "sleep", "never"],
                           capture_output=True, text=True, env=env, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert list(tmp.iterdir()) == []


def test_remove_tree_gets_through_deep_and_locked_trees(tmp_path: Path) -> None:
    """1,100 nested directories (shutil.rmtree's recursion gave a RecursionError) and a
    directory without permissions: removed, no exception."""
    top = tmp_path / "work"
    top.mkdir()
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(1100):  # by descriptor: os.makedirs recurses too
        os.mkdir("d", dir_fd=fd)
        inner = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = inner
    os.close(fd)
    with pytest.raises(RecursionError):
        shutil.rmtree(top)  # what the old remove_tree met
    locked = top / "locked"
    (locked / "inner").mkdir(parents=True)
    (locked / "inner" / "file").write_text("x")
    (locked / "inner").chmod(0)
    locked.chmod(0)
    remove_tree(str(top))
    assert not top.exists()


@pytest.mark.parametrize("signum", sorted(SIGNALS), ids=lambda s: signal.Signals(s).name)
def test_signals_during_compare_run_leave_nothing(hostile_artifact: Path, place: Path,
                                                  signum: int) -> None:
    """The static build sleeps in its sandbox (away from a prefix, `sleep loader` sleeps)
    when compare is stopped."""
    tmp = place / "tmp-compare-signal"
    process = start_compare_run(hostile_artifact, place, tmp, "sleep loader")
    stdout, stderr = signal_once(
        process, lambda: any(" hostile-static: " in line for line in leftovers()), signum,
        "the static build")
    code, word = SIGNALS[signum]
    assert (process.returncode, stderr) == (code, f"bundle: {word}; nothing was written\n")
    assert stdout == ""
    assert leftovers() == []
    assert list(tmp.iterdir()) == []


def test_the_root_is_the_base_read_only_with_the_artifact_put_inside(tmp_path: Path) -> None:
    """bwrap 0.8 has no overlay: the base's entries are bound one by one, except along the
    way to what is put inside it; the sandbox's own /proc, /dev, /tmp and HOME replace the
    base's; the root is remounted read-only last."""
    from bundler.errors import InputError
    from bundler.isolation import Layout, mount_arguments

    base = tmp_path / "base"
    for directory in ("etc", "opt/other", "tmp/stale", "root", "proc", "usr/lib"):
        (base / directory).mkdir(parents=True)
    (base / "lib").symlink_to("usr/lib")
    words = mount_arguments(Layout(str(base), (("/host/app", "/opt/app"),
                                               ("/host/copy", "/tmp/bundle-verify/app"))))
    text = " ".join(words)
    print(text)
    assert f"--ro-bind {base}/etc /etc" in text
    assert f"--ro-bind {base}/usr /usr" in text
    assert "--symlink usr/lib /lib" in text
    assert f"--dir /opt --ro-bind {base}/opt/other /opt/other --ro-bind /host/app /opt/app" in text
    assert "--perms 1777 --tmpfs /tmp --ro-bind /host/copy /tmp/bundle-verify/app" in text
    assert "--perms 0700 --tmpfs /root" in text
    assert "--proc /proc --ro-bind-try /proc/sys /proc/sys" in text
    assert "--dev /dev" in text
    assert not any(f"{base}/{own}" in words for own in ("tmp", "root", "proc", "opt"))
    assert words[-2:] == ["--remount-ro", "/"]
    for wrong in ("/opt/../etc", "opt/app", "/proc/app", "/dev/x", "/tmp", "/"):
        with pytest.raises(InputError):
            mount_arguments(Layout(str(base), (("/host/app", wrong),)))


def _handles_signals(pid: int) -> bool:
    """Whether the process has its own handlers for SIGINT, SIGTERM and SIGHUP yet (before,
    the interpreter is still starting: nothing of bundle runs, nothing is made)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    caught = int(re.search(r"^SigCgt:\s*([0-9a-f]+)", status, re.M).group(1), 16)
    wanted = (1 << (signal.SIGINT - 1)) | (1 << (signal.SIGTERM - 1)) | (1 << (signal.SIGHUP - 1))
    return caught & wanted == wanted


@pytest.mark.parametrize("seed", range(12))
def test_a_signal_at_a_random_point_of_verify(hostile_artifact: Path, place: Path,
                                              sentinel_dir: Path, seed: int) -> None:
    """From the moment bundle's code runs: unpacking, checking, either run, cleaning up,
    printing. Either the signal stops it (its line, its code) or it came after the outcome
    was settled (exit 0); nothing is left either way."""
    before = HostState.of(sentinel_dir)
    command, env = verify_command("root", place)
    process = subprocess.Popen([*command, str(hostile_artifact), "--", "sleep", "never"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=env)
    stdout = stopped_or_finished(process, seed, 0.6)
    if process.returncode == 0:
        assert stdout.endswith("verify: PASS (2 of 2 runs passed)\n")
    assert_nothing_left(place, "root", before, sentinel_dir)


def stopped_or_finished(process: subprocess.Popen[str], seed: int, within: float) -> str:
    """Send a signal chosen by `seed` at a moment chosen by it (up to `within` s after
    bundle's own handlers are in place); assert the outcome is either that signal's line
    and exit code, or a finished run (exit 0, nothing on stderr). Returns stdout."""
    import random

    chance = random.Random(seed)
    signum = chance.choice(sorted(SIGNALS))
    delay = chance.uniform(0, within)
    deadline = time.monotonic() + 30
    while not _handles_signals(process.pid) and time.monotonic() < deadline:
        time.sleep(0.002)
    time.sleep(delay)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=120)
    code, word = SIGNALS[signum]
    print(signal.Signals(signum).name, f"{delay:.3f}", process.returncode, stderr)
    if process.returncode == 0:
        assert stderr == "", stderr
    else:
        assert (process.returncode, stderr) == (code, f"bundle: {word}; nothing was written\n")
    return stdout


@pytest.mark.parametrize("seed", range(8))
def test_a_signal_at_a_random_point_of_compare(hostile_artifact: Path, place: Path,
                                               sentinel_dir: Path, seed: int) -> None:
    """`bundle compare --run`: unpacking, the manifest check, the analysis, the sandboxed
    runs of both builds, the report. Stopped (its line, its code) or finished (exit 0);
    no temporary directory, process or mount is left either way."""
    before = HostState.of(sentinel_dir)
    tmp = place / f"tmp-compare-random-{seed}"
    process = start_compare_run(hostile_artifact, place, tmp, "flood 1")
    stdout = stopped_or_finished(process, 1000 + seed, 1.5)
    if process.returncode == 0:
        assert "Verdict" in stdout
    assert list(tmp.iterdir()) == []
    assert leftovers() == []
    assert HostState.of(sentinel_dir) == before

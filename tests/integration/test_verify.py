"""`bundle verify`: hostile archives, tampering, isolated runs, other architectures.

Hostile archives are written here with tarfile (and one header by hand); each must be
refused with nothing written outside the target. Runs happen in real isolated roots
(bare, Debian 11) in bubblewrap's sandbox, started by root and by the `nobody` user
(tests/integration/test_sandbox.py attacks that sandbox).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.cli import assert_one_line_error, run_cli
from support.files import write_tar
from support.gobuild import build_agent
from support.needs import need, need_tool
from support.roots import debian11_tree, need_root
from support.toolchain import gcc

from bundler.safe_unpack import Limits, UnsafeArtifactError, unpack_artifact

HELLO = r"""
#include <stdio.h>
#include <string.h>
int main(int argc, char **argv) {
    printf("hello from %s\n", argc > 1 ? argv[1] : "nowhere");
    if (argc > 2 && strcmp(argv[2], "fail") == 0) { fprintf(stderr, "told to fail\n"); return 7; }
    return 0;
}
"""
SLEEPER = r"""
#include <unistd.h>
int main(void) { sleep(60); return 0; }
"""
AARCH64 = r"""
#include <math.h>
#include <pthread.h>
#include <stdio.h>
static void *work(void *arg) { double *x = arg; *x = sqrt(*x) + cos(0.0); return 0; }
int main(int argc, char **argv) {
    double x = 15.0 + argc; pthread_t t;
    pthread_create(&t, 0, work, &x);
    pthread_join(t, 0);
    printf("aarch64 computed %.1f\n", x);
    return 0;
}
"""


def mounts_mentioning(text: str) -> list[str]:
    return [line for line in Path("/proc/self/mountinfo").read_text().splitlines()
            if text in line]


def verify_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli("verify", *args, env=env)


# --- hostile archives -----------------------------------------------------------------


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "", mode: int = 0o644,
            ) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, mode
    return info


def _ok(name: str) -> tuple[tarfile.TarInfo, bytes]:
    return _member(f"app/{name}"), b"fine\n"


def _snapshot(directory: Path) -> set[str]:
    return {str(p.relative_to(directory)) for p in directory.rglob("*")}


HOSTILE = {
    "traversal": [(_member("app"), None), (_member("app/../evil"), b"x")],
    "absolute": [(_member("/tmp/bundle-test-absolute-evil"), b"x")],
    "escaping-symlink": [(_member("app/lib", tarfile.SYMTYPE, "../../outside"), None),
                         (_member("app/lib/payload"), b"x")],
    "absolute-symlink": [(_member("app/etc", tarfile.SYMTYPE, "/etc"), None)],
    "write-through-inner-symlink": [_ok("real"), (_member("app/d", tarfile.SYMTYPE, "real"),
                                                  None), (_member("app/d/x"), b"x")],
    "escaping-hardlink": [(_member("app/passwd", tarfile.LNKTYPE, "etc/passwd"), None)],
    "hardlink-to-nothing": [(_member("app/h", tarfile.LNKTYPE, "app/missing"), None)],
    "device": [(_member("app/null", tarfile.CHRTYPE), None)],
    "fifo": [(_member("app/pipe", tarfile.FIFOTYPE), None)],
    "two-tops": [_ok("a"), (_member("other/b"), b"x")],
    "duplicate": [_ok("a"), _ok("a")],
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archives_are_refused_and_nothing_leaks(tmp_path: Path, case: str) -> None:
    archive = write_tar(tmp_path / f"{case}.tar", HOSTILE[case])
    into = tmp_path / "sandbox" / "into"
    into.mkdir(parents=True)
    before = _snapshot(tmp_path)
    with pytest.raises(UnsafeArtifactError) as refused:
        unpack_artifact(str(archive), str(into))
    print(case, "->", refused.value.message)
    leaked = {p for p in _snapshot(tmp_path) - before if not p.startswith("sandbox/into")}
    assert leaked == set()
    assert not Path("/tmp/bundle-test-absolute-evil").exists()
    assert not (tmp_path / "outside").exists() and not (tmp_path / "sandbox" / "evil").exists()


def test_a_member_claiming_10_gib_is_refused_before_reading(tmp_path: Path) -> None:
    """Only a header claims the size: the data is not there, and nothing is written."""
    header = _member("app/huge.so")
    header.size = 10 << 30
    archive = tmp_path / "huge.tar"
    archive.write_bytes(header.tobuf(format=tarfile.GNU_FORMAT) + b"\0" * 1024)
    into = tmp_path / "into"
    with pytest.raises(UnsafeArtifactError, match="claims 10737418240 bytes"):
        unpack_artifact(str(archive), str(into))
    assert not (into / "app" / "huge.so").exists()
    with pytest.raises(UnsafeArtifactError, match="more than"):  # a total over the limit
        unpack_artifact(str(write_tar(tmp_path / "many.tar", [_ok("a"), _ok("b")])),
                        str(tmp_path / "into2"), Limits(member=100, total=6))


def test_hostile_archive_through_the_cli(tmp_path: Path, private_tmp: Path) -> None:
    need_root()
    archive = write_tar(tmp_path / "evil.tar", HOSTILE["escaping-symlink"])
    result = verify_cli(str(archive))
    assert_one_line_error(result, 4, "symlink", "leaves the artifact")
    assert list(private_tmp.iterdir()) == []
    not_an_archive = tmp_path / "junk.tar.zst"
    not_an_archive.write_bytes(b"just text\n" * 100)
    assert_one_line_error(verify_cli(str(not_an_archive)), 2, "not an artifact")


# --- a real artifact: integrity and runs ----------------------------------------------


@pytest.fixture(scope="module")
def hello_artifact(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("hello")
    program = gcc(work / "hello", HELLO)
    out = work / "hello.tar.zst"
    result = run_cli(str(program), "-o", str(out))
    assert result.returncode == 0, result.stderr
    return out


def _repack(artifact: Path, out: Path, change) -> Path:
    """The artifact's members into a plain tar, `change(info, data)` applied to each."""
    with _zst_tar(artifact) as source, tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as tar:
        for info in source:
            member = source.extractfile(info) if info.isreg() else None
            data = member.read() if member is not None else None
            info, data = change(info, data)
            if info is not None:
                if data is not None:
                    info.size = len(data)
                tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out


def _zst_tar(path: Path) -> tarfile.TarFile:
    import zstandard

    data = zstandard.ZstdDecompressor().stream_reader(path.open("rb"),
                                                      read_across_frames=True).read()
    return tarfile.open(fileobj=io.BytesIO(data), mode="r:")


def test_good_artifact_passes_in_the_bare_root(hello_artifact: Path, private_tmp: Path) -> None:
    need_root()
    result = verify_cli(str(hello_artifact), "--expect-output", "^hello from verify$", "--",
                        "verify")
    assert result.returncode == 0, result.stdout + result.stderr
    print(result.stdout)
    assert "sha256 matches hello.tar.zst.sha256" in result.stdout
    assert re.search(r"^PASS  at its prefix /opt/hello \(launcher, direct start\): exit 0",
                     result.stdout, re.M)
    assert re.search(r"^PASS  from /tmp/bundle-verify/hello", result.stdout, re.M)
    assert result.stdout.rstrip().endswith("verify: PASS (2 of 2 runs passed)")
    assert list(private_tmp.iterdir()) == [] and mounts_mentioning("bundle-verify") == []


def test_failing_runs_say_why(hello_artifact: Path, private_tmp: Path) -> None:
    need_root()
    result = verify_cli(str(hello_artifact), "--", "x", "fail")
    assert result.returncode == 4
    assert "FAIL  at its prefix" in result.stdout
    assert "exit 7, expected 0" in result.stdout and "stderr: told to fail" in result.stdout
    wrong = verify_cli(str(hello_artifact), "--expect-exit", "0", "--expect-output", "bye")
    assert wrong.returncode == 4 and "stdout does not match 'bye'" in wrong.stdout
    assert list(private_tmp.iterdir()) == [] and mounts_mentioning("bundle-verify") == []
    assert_one_line_error(verify_cli(str(hello_artifact), "--expect-output", "("), 2,
                          "--expect-output", "regular expression")


def test_directory_artifacts_programs_and_environment(tmp_path: Path, private_tmp: Path) -> None:
    """`-o DIR/` artifacts verify too; --program picks one of several; --env reaches it."""
    need_root()
    first = gcc(tmp_path / "src" / "first", HELLO)
    second = gcc(tmp_path / "src" / "printenv", r"""
#include <stdio.h>
#include <stdlib.h>
int main(void) { const char *v = getenv("GREETING"); printf("%s\n", v ? v : "(unset)"); return 0; }
""")
    out = tmp_path / "out"
    assert run_cli(str(first), str(second), "--name", "pair", "-o", f"{out}/").returncode == 0
    picked = verify_cli(f"{out}/", "--program", "printenv", "--env", "GREETING=hi there",
                        "--expect-output", "^hi there$")
    assert picked.returncode == 0, picked.stdout + picked.stderr
    assert "a directory artifact" in picked.stdout
    assert_one_line_error(verify_cli(f"{out}/", "--program", "nope"), 2, "--program nope",
                          "first, printenv")
    assert_one_line_error(verify_cli(f"{out}/", "--env", "=x"), 2, "--env", "NAME=VALUE")
    assert_one_line_error(verify_cli(str(tmp_path / "missing.tar.zst")), 2, "no such file")


def test_no_way_to_isolate_is_exit_3(hello_artifact: Path, tmp_path: Path) -> None:
    """Without bubblewrap; and with a bwrap that cannot make its user namespace, as in a
    container whose seccomp profile blocks unshare(2): exit 3 naming what to install or
    enable, never a weaker sandbox. (Switching user namespaces off for real needs writing
    /proc/sys/user/max_user_namespaces, which this VM refuses even to root.)"""
    bare_path = tmp_path / "bin"
    bare_path.mkdir()
    result = verify_cli(str(hello_artifact), env={"PATH": str(bare_path)})
    assert_one_line_error(result, 3, "bubblewrap", "apt-get install bubblewrap")
    refusing = bare_path / "bwrap"
    refusing.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace, "
                        "likely because the kernel does not allow non-privileged user "
                        "namespaces' >&2\nexit 1\n")
    refusing.chmod(0o755)
    result = verify_cli(str(hello_artifact), env={"PATH": f"{bare_path}:/usr/bin:/bin"})
    assert_one_line_error(result, 3, "cannot sandbox", "user namespace",
                          "No permissions to create new namespace")


def test_a_tampered_file_is_caught_by_name(hello_artifact: Path, tmp_path: Path) -> None:
    need_root()

    def flip(info: tarfile.TarInfo, data: bytes | None):
        if info.name == "hello/libexec/hello" and data is not None:
            data = data[:-1] + bytes([data[-1] ^ 1])
        return info, data

    tampered = _repack(hello_artifact, tmp_path / "tampered.tar", flip)
    result = verify_cli(str(tampered))
    assert result.returncode == 4, result.stdout + result.stderr
    assert "libexec/hello: sha256 differs from the manifest" in result.stdout
    assert "PASS" not in result.stdout  # nothing is run from a tampered artifact

    def setuid_and_extra(info: tarfile.TarInfo, data: bytes | None):
        if info.name == "hello/lib/libc.so.6":
            info.mode = 0o4755
        return info, data

    changed = _repack(hello_artifact, tmp_path / "changed.tar", setuid_and_extra)
    with tarfile.open(changed, "a") as tar:
        extra = _member("hello/lib/libextra.so", mode=0o755)
        extra.size = 4
        tar.addfile(extra, io.BytesIO(b"\x7fELF"))
    result = verify_cli(str(changed))
    assert result.returncode == 4
    assert "lib/libc.so.6: mode 4755, the manifest says 0755" in result.stdout
    assert "lib/libextra.so: not in the manifest" in result.stdout


def test_a_wrong_checksum_file_fails(hello_artifact: Path, tmp_path: Path) -> None:
    need_root()
    copy = tmp_path / "hello.tar.zst"
    shutil.copy2(hello_artifact, copy)
    (tmp_path / "hello.tar.zst.sha256").write_text("0" * 64 + "  hello.tar.zst\n")
    result = verify_cli(str(copy))
    assert result.returncode == 4 and "MISMATCH" in result.stdout


def test_ctrl_c_leaves_no_mount_and_no_directory(tmp_path: Path, private_tmp: Path) -> None:
    need_root()
    program = gcc(tmp_path / "sleeper", SLEEPER)
    artifact = tmp_path / "sleeper.tar.zst"
    assert run_cli(str(program), "-o", str(artifact)).returncode == 0
    process = subprocess.Popen([sys.executable, "-m", "bundler", "verify", str(artifact)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "TMPDIR": str(private_tmp)})
    deadline = time.monotonic() + 30
    while not _namespaced_sleeper_running() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _namespaced_sleeper_running(), "the run never started"
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert list(private_tmp.iterdir()) == [] and mounts_mentioning("bundle-verify") == []
    assert not _namespaced_sleeper_running()


def _namespaced_sleeper_running() -> bool:
    # by its name (comm): the native launcher keeps argv[0] as bin/sleeper at the prefix
    found = subprocess.run(["pgrep", "-x", "sleeper"], capture_output=True)
    return found.returncode == 0


# --- the demo agent: bare and Debian 11, root and unprivileged --------------------------

AGENT_OUTPUT = r"(?m)^sqlite: hello$"


@pytest.fixture(scope="module")
def agent_artifact(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("agent")
    agent = work / "myagent"
    shutil.copyfile(build_agent("dynamic"), agent)
    agent.chmod(0o755)
    out = work / "myagent.tar.zst"
    result = run_cli(str(agent), "-o", str(out))
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def shared_place() -> Iterator[Path]:
    """A directory the `nobody` user can read: the artifact, the Debian 11 tree, and a copy
    of this package with its pure-Python and C dependencies for the system python3."""
    need_root()
    place = Path(tempfile.mkdtemp(prefix="bundle-verify-test."))
    place.chmod(0o755)
    try:
        yield place
    finally:
        shutil.rmtree(place, ignore_errors=True)


def _unprivileged_command(place: Path) -> list[str]:
    system_python = shutil.which("python3", path="/usr/bin:/bin")
    need(system_python is not None, "no /usr/bin/python3 to run as nobody")
    assert system_python is not None
    version = subprocess.run([system_python, "-c", "import sys; print(sys.version_info[:2])"],
                             capture_output=True, text=True).stdout.strip()
    need(version == str(tuple(sys.version_info[:2])),
         f"/usr/bin/python3 is {version}; the test venv's compiled modules need the same")
    site = place / "site"
    if not site.exists():
        import click
        import elftools
        import zstandard

        import bundler
        for module in (click, elftools, zstandard, bundler):
            source = Path(module.__file__).parent  # type: ignore[arg-type]
            shutil.copytree(source, site / source.name,
                            ignore=shutil.ignore_patterns("__pycache__"))
        subprocess.run(["chmod", "-R", "a+rX", str(place)], check=True)
    need_tool("setpriv")
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "env",
            f"PYTHONPATH={site}", f"HOME={place}", f"TMPDIR={place}", system_python, "-m",
            "bundler", "verify"]


@pytest.mark.parametrize("who", ["root", "nobody"])
@pytest.mark.parametrize("where", ["bare", "debian11"])
def test_demo_agent_verifies(agent_artifact: Path, shared_place: Path, who: str,
                             where: str) -> None:
    artifact = shared_place / agent_artifact.name
    if not artifact.exists():
        shutil.copy2(agent_artifact, artifact)
        shutil.copy2(f"{agent_artifact}.sha256", f"{artifact}.sha256")
        artifact.chmod(0o644)
    root_args: list[str] = []
    if where == "debian11":
        tree = shared_place / "debian11"
        if not tree.exists():
            subprocess.run(["cp", "-a", "--reflink=auto", str(debian11_tree()), str(tree)],
                           check=True)
        root_args = ["--root", str(tree)]
        before = subprocess.run(["find", str(tree), "-newer", str(artifact)],
                                capture_output=True, text=True).stdout
    command = (_unprivileged_command(shared_place) if who == "nobody"
               else [sys.executable, "-m", "bundler", "verify"])
    ran = subprocess.run([*command, str(artifact), *root_args, "--expect-output",
                          AGENT_OUTPUT], capture_output=True, text=True, cwd=shared_place)
    print(ran.stdout)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    started_by = "started by root" if who == "root" else "started by an unprivileged user"
    assert f"sandboxed by bubblewrap ({started_by}" in ran.stdout
    assert "verify: PASS (2 of 2 runs passed)" in ran.stdout
    if where == "debian11":
        after = subprocess.run(["find", str(tree), "-newer", str(artifact)],
                               capture_output=True, text=True).stdout
        assert after == before  # the overlay kept the tree unchanged
    assert mounts_mentioning("bundle-verify") == []
    assert not any("bundle-verify." in p.name for p in shared_place.iterdir())


def test_verify_catches_a_library_left_to_the_host(tmp_path: Path, private_tmp: Path) -> None:
    """--exclude libsqlite3: fine on the build host, broken where it is absent; verify must
    say so before the artifact is published."""
    need_root()
    agent = tmp_path / "myagent"
    shutil.copyfile(build_agent("dynamic"), agent)
    agent.chmod(0o755)
    out = tmp_path / "myagent.tar.zst"
    assert run_cli(str(agent), "-o", str(out), "--exclude", "libsqlite3.so*").returncode == 0
    result = verify_cli(str(out), "--", "--version")
    assert result.returncode == 4, result.stdout
    assert "libsqlite3.so.0: cannot open shared object file" in result.stdout
    assert result.stdout.rstrip().endswith("verify: FAIL (0 of 2 runs passed)")


# --- another architecture --------------------------------------------------------------

CROSS_SYSROOT = "/usr/aarch64-linux-gnu"


@pytest.fixture(scope="module")
def aarch64_artifact(tmp_path_factory) -> Path:
    compiler = need_tool("aarch64-linux-gnu-gcc")
    need(os.path.exists(f"{CROSS_SYSROOT}/lib/libc.so.6"), "libc6-arm64-cross is missing")
    work = tmp_path_factory.mktemp("aarch64")
    program = work / "compute"
    (work / "compute.c").write_text(AARCH64)
    subprocess.run([compiler, "-O2", "-o", str(program), str(work / "compute.c"), "-lm",
                    "-pthread"], check=True)
    out = work / "compute.tar.zst"
    result = run_cli(str(program), "--sysroot", CROSS_SYSROOT, "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "(aarch64)" in result.stderr
    return out


def test_aarch64_artifact_names_its_architecture(aarch64_artifact: Path, tmp_path: Path) -> None:
    subprocess.run(["tar", "--zstd", "-xf", str(aarch64_artifact), "-C", str(tmp_path)],
                   check=True)
    top = tmp_path / "compute"
    manifest = json.loads((top / ".bundle" / "manifest.json").read_text())
    assert manifest["arch"] == "aarch64"
    assert manifest["loader"] == "lib/ld-linux-aarch64.so.1"
    names = {f["path"] for f in manifest["files"]}
    assert {"lib/libc.so.6", "lib/libm.so.6", "lib/libgcc_s.so.1"} <= names
    assert "arch         aarch64" in (top / ".bundle" / "report.md").read_text()


def test_aarch64_passes_under_qemu(aarch64_artifact: Path, private_tmp: Path) -> None:
    need_root()
    need_tool("qemu-aarch64-static")
    result = verify_cli(str(aarch64_artifact), "--emulator", "qemu-aarch64-static",
                        "--expect-output", r"^aarch64 computed 5\.0$")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS  under qemu-aarch64-static, through the bundled loader" in result.stdout
    assert list(private_tmp.iterdir()) == []
    native = verify_cli(str(aarch64_artifact))
    assert_one_line_error(native, 3, "aarch64 artifact", "--emulator")


def test_x86_64_program_against_the_aarch64_sysroot_is_refused(tmp_path: Path) -> None:
    need(os.path.isdir(CROSS_SYSROOT), "libc6-arm64-cross is missing")
    program = gcc(tmp_path / "hello", HELLO)
    result = run_cli(str(program), "--sysroot", CROSS_SYSROOT, "-o", str(tmp_path / "x.tar.zst"))
    assert_one_line_error(result, 2, "x86-64", "aarch64", "--sysroot")
    assert not (tmp_path / "x.tar.zst").exists()


def test_the_two_native_runs_are_the_two_starts(agent_artifact: Path, private_tmp: Path) -> None:
    """At the prefix the program itself is the process image; from elsewhere the bundled
    loader is (a copy there, since the launcher knows its prefix by inode)."""
    need_root()
    from bundler.verify import VerifyRequest, verify

    result = verify(VerifyRequest(str(agent_artifact)))
    exes = [next(line for line in run.outcome.stdout.splitlines() if line.startswith("exe:"))
            for run in result.runs]
    assert exes == ["exe: /opt/myagent/libexec/myagent",
                    "exe: /tmp/bundle-verify/myagent/lib/ld-linux-x86-64.so.2"]

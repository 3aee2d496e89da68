"""Shared test helpers: real gcc builds, the host loader as an oracle, and skip rules.

A test that needs a tool skips with a reason on a developer's machine, but fails in CI
(`CI=true`): CI installs everything, so a skip there would hide a broken set-up.
"""

from __future__ import annotations

import hashlib
import io
import os
import pty
import re
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Sequence
from pathlib import Path

import pytest

HOST_LOADER = "/lib64/ld-linux-x86-64.so.2"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need(condition: bool, reason: str) -> None:
    """Skip (or, in CI, fail) when a precondition of a test is not met."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI must provide this: {reason}")
    pytest.skip(reason)


def need_tool(name: str) -> str:
    path = shutil.which(name)
    need(path is not None, f"{name} is not installed")
    assert path is not None
    return path


def gcc(
    out: Path, sources: dict[str, str] | str, *flags: str, shared: bool = False,
    cwd: Path | None = None,
) -> Path:
    """Compile C source text with gcc into `out`; `flags` go last (e.g. -L, -l, -Wl,...)."""
    compiler = need_tool("gcc")
    work = cwd or out.parent
    work.mkdir(parents=True, exist_ok=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(sources, str):
        sources = {f"{out.name}.c": sources}
    files = []
    for name, text in sources.items():
        source = work / name
        source.write_text(text)
        files.append(str(source))
    command = [compiler, "-o", str(out), *files]
    if shared:
        command[1:1] = ["-shared", "-fPIC"]
    command += list(flags)
    subprocess.run(command, check=True, capture_output=True, text=True)
    return out


def sha256(path: Path | str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def tool(name: str, *args: str) -> str:
    """stdout of a system tool that must succeed (readelf, patchelf, objdump ...)."""
    result = subprocess.run([need_tool(name), *args], capture_output=True, text=True)
    assert result.returncode == 0, (name, args, result.stderr)
    return result.stdout


def ld_so_list(program: Path | str, *, library_path: Sequence[str] = (), loader: str = HOST_LOADER,
               ) -> set[str]:
    """Real paths of everything the host loader maps for `program` (vdso aside)."""
    command = [loader]
    if library_path:
        command += ["--library-path", ":".join(library_path)]
    command += ["--list", str(program)]
    result = subprocess.run(command, capture_output=True, text=True, env={})
    if result.returncode != 0:
        raise AssertionError(f"ld.so --list failed: {result.stdout}{result.stderr}")
    paths = set()
    for line in result.stdout.splitlines():
        match = re.search(r"(?:=> )?(/\S+) \(0x", line)
        if match:
            paths.add(os.path.realpath(match.group(1)))
    return paths


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | str | None = None,
            ) -> subprocess.CompletedProcess[str]:
    """Run `python -m bundler ARGS` as a user would (in `cwd`, if given), capturing output."""
    full_env = dict(os.environ)
    full_env.pop("LD_LIBRARY_PATH", None)
    full_env.update(env or {})
    full_env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    return subprocess.run([sys.executable, "-m", "bundler", *args], capture_output=True,
                          text=True, env=full_env, cwd=cwd)


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int,
                          *words: str) -> None:
    """A user error: exit `code`, nothing on stdout, one `bundle: error:` line naming `words`."""
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip("\n").splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("bundle: error: "), lines[0]
    for word in words:
        assert word in lines[0], (word, lines[0])


@pytest.fixture
def c_lib():
    """Build a shared library: c_lib(path, source, *flags)."""

    def build(out: Path, source: str, *flags: str) -> Path:
        return gcc(out, source, *flags, shared=True)

    return build


def pytest_terminal_summary(terminalreporter) -> None:
    """Print what the agreement test measured (count checked, disagreements)."""
    try:
        from test_agreement import SUMMARY
    except ImportError:
        return
    if SUMMARY:
        terminalreporter.section("agreement with the real loader")
        for line in SUMMARY:
            terminalreporter.write_line(line)


def read_pty(argv: list[str], env: dict[str, str], cwd: Path | None = None, *,
             stderr_too: bool = False) -> tuple[int, str]:
    """Run argv with stdout (and stderr when `stderr_too`) on a real pseudo-terminal;
    return its exit code and output, CRLF folded back to LF."""
    master, slave = pty.openpty()
    process = subprocess.Popen(argv, stdout=slave,
                               stderr=slave if stderr_too else subprocess.DEVNULL,
                               stdin=subprocess.DEVNULL, env=env, cwd=cwd)
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    return process.wait(timeout=60), b"".join(chunks).decode().replace("\r\n", "\n")


def write_tar(out: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    """A tar of exactly these members (hostile ones included: tarfile writes what it is
    given), each regular member's size taken from its bytes."""
    with tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out

"""The command line as a user meets it: `python -m bundler` in a subprocess, its one-line
errors, and its output on a real terminal."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

from support.paths import REPO


def cli_command(*args: str) -> list[str]:
    """`python -m bundler ARGS`, with the interpreter running the tests."""
    return [sys.executable, "-m", "bundler", *args]


def cli_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The test's environment as a user's shell would pass it, plus `env`, importing the
    package from this checkout."""
    full_env = dict(os.environ)
    full_env.pop("LD_LIBRARY_PATH", None)
    full_env.update(env or {})
    full_env["PYTHONPATH"] = str(REPO)
    return full_env


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | str | None = None,
            ) -> subprocess.CompletedProcess[str]:
    """Run `python -m bundler ARGS` as a user would (in `cwd`, if given), capturing output."""
    return subprocess.run(cli_command(*args), capture_output=True, text=True,
                          env=cli_env(env), cwd=cwd)


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

"""The progress line: drawn on a terminal for a large artifact, never in a pipe."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from support.cli import read_pty, run_cli
from support.needs import need
from support.paths import REPO
from support.toolchain import gcc

from bundler.progress import progress_line

BIG = "char big[48 << 20] = {1}; int big_size(void) { return sizeof big; }\n"


def test_progress_line() -> None:
    assert progress_line("bundle: writing a.tar.zst", 50 << 20, 100 << 20) == (
        "bundle: writing a.tar.zst [############............]  50%   50/100 MiB")
    assert progress_line("x", 0, 0).startswith("x [" + "#" * 24 + "] 100%")


def _bundle_on_a_terminal(args: list[str]) -> tuple[int, str]:
    """Run `bundle ARGS` with stderr (and stdout) on a pseudo-terminal."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return read_pty([sys.executable, "-m", "bundler", *args], env, stderr_too=True)


def test_progress_on_a_terminal_only(tmp_path: Path) -> None:
    program = gcc(tmp_path / "hello", "int main(void) { return 0; }\n")
    big = gcc(tmp_path / "libbig.so", BIG, shared=True)
    assert big.stat().st_size > 48 << 20
    code, shown = _bundle_on_a_terminal([str(program), "--add", str(big), "-o",
                                         str(tmp_path / "tty.tar.zst")])
    assert code == 0, shown
    assert "\rbundle: writing tty.tar.zst [" in shown and "MiB" in shown
    assert "\r\x1b[K" in shown  # the line is cleared before the summary
    piped = run_cli(str(program), "--add", str(big), "-o", str(tmp_path / "pipe.tar.zst"))
    assert piped.returncode == 0 and "writing" not in piped.stderr and "\r" not in piped.stderr


def test_the_entry_point_knows_the_commands_that_never_patch() -> None:
    """entry.py decides before importing click; it must agree with the CLI's commands."""
    from bundler.cli import cli
    from bundler.entry import NO_PATCHING, PATCHING, needs_patching

    assert set(cli.commands) == NO_PATCHING | PATCHING
    assert not NO_PATCHING & PATCHING
    assert needs_patching(["./myagent", "-o", "x.tar.zst"]) and needs_patching(["build", "x"])
    assert needs_patching(["release"]) and not needs_patching(["diff", "a", "b"])
    assert not needs_patching(["inspect", "x"]) and not needs_patching(["--help"])
    assert not needs_patching([])


def test_the_console_script_runs_the_entry_point(tmp_path: Path) -> None:
    """`bundle` (pyproject's console script) forks the worker and builds like -m bundler."""
    script = Path(sys.executable).parent / "bundle"
    need(script.exists(), "no console script next to this python (not a venv install)")
    program = gcc(tmp_path / "hello", "int main(void) { return 0; }\n")
    ran = subprocess.run([str(script), str(program), "-o", str(tmp_path / "h.tar.zst")],
                         capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    assert "from bundler.entry import script" in script.read_text()

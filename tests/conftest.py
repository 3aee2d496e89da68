"""pytest fixtures and hooks for tests/unit and tests/integration.

Only what pytest itself must find here; the helper functions tests import are in
tests/support/ (`from support.toolchain import gcc`, ...).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from support.toolchain import gcc


@pytest.fixture
def c_lib():
    """Build a shared library: c_lib(path, source, *flags)."""

    def build(out: Path, source: str, *flags: str) -> Path:
        return gcc(out, source, *flags, shared=True)

    return build


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch) -> Path:
    """TMPDIR for a verify (or signature check) run, to prove it leaves nothing behind."""
    where = tmp_path / "tmpdir"
    where.mkdir()
    monkeypatch.setenv("TMPDIR", str(where))
    return where


def pytest_terminal_summary(terminalreporter) -> None:
    """Print what the agreement test measured (count checked, disagreements)."""
    agreement = sys.modules.get("test_agreement")
    summary = getattr(agreement, "SUMMARY", None)
    if summary:
        terminalreporter.section("agreement with the real loader")
        for line in summary:
            terminalreporter.write_line(line)

"""Skip rules: what a test needs from the machine.

A test that needs a tool skips with a reason on a developer's machine, but fails in CI
(`CI=true`): CI installs everything, so a skip there would hide a broken set-up.
"""

from __future__ import annotations

import os
import shutil

import pytest

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

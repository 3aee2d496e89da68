"""Where the clone and the test fixtures are, computed once from this file's place."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # the clone: PYTHONPATH for `python -m bundler`
FIXTURES = REPO / "tests" / "fixtures"

"""report_render.py: the pieces of text the report and `bundle inspect` share."""

from __future__ import annotations

from bundler.report_render import SYMBOLS_SHOWN, symbols_text


def test_the_symbols_that_force_a_version_are_cut_at_one_length() -> None:
    names = tuple(f"sym{n}" for n in range(SYMBOLS_SHOWN + 2))
    assert symbols_text(names) == ", ".join(names[:SYMBOLS_SHOWN]) + " (+2 more)"
    assert symbols_text(names[:SYMBOLS_SHOWN]) == ", ".join(names[:SYMBOLS_SHOWN])
    assert symbols_text(("memcpy",)) == "memcpy"
    assert symbols_text(()) == ""

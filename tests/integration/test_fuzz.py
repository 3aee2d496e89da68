"""A fast, seeded subset of the fuzz harness (tests/support/fuzzing.py; ./scripts/fuzz
runs 20,000+).

Every case must end cleanly: a result or one `BundleError`, within the time limit, with
nothing left in the output directory unless it is a whole artifact.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from support.fuzzing import build_corpus, mutate, run
from support.needs import need_tool


def test_three_hundred_mutated_files(tmp_path: Path) -> None:
    need_tool("gcc")
    tally = run(cases=300, seed=20261126, build_every=10, work=tmp_path)
    print(f"fuzz subset: {dict(tally.outcomes)}")
    assert tally.failures == []
    assert tally.cases == 300 and tally.builds == 30
    # Not a harness that only ever fails early: both clean outcomes occur.
    assert tally.outcomes["ok"] > 30 and tally.outcomes["error"] > 30


def test_mutated_files_through_the_cli(tmp_path: Path) -> None:
    """The CLI's last line of defence: no traceback, one line, exit 2, for twenty cases."""
    import random

    need_tool("gcc")
    rng = random.Random(7)
    corpus = build_corpus(tmp_path)
    for index in range(20):
        seed = rng.choice(corpus)
        data, description = mutate(seed, rng)
        case = tmp_path / f"case{index}"
        case.write_bytes(data)
        case.chmod(0o755)
        for args in (["inspect", str(case)], [str(case), "-o", str(tmp_path / "o.tar.zst")]):
            result = subprocess.run([sys.executable, "-m", "bundler", *args],
                                    capture_output=True, text=True, timeout=60)
            assert "Traceback" not in result.stderr, (description, result.stderr)
            if result.returncode != 0:
                assert result.returncode in (2, 3, 4), (description, result.stderr)
                assert len(result.stderr.strip().splitlines()) == 1, result.stderr
                assert not (tmp_path / "o.tar.zst").exists()
            (tmp_path / "o.tar.zst").unlink(missing_ok=True)
            (tmp_path / "o.tar.zst.sha256").unlink(missing_ok=True)


def test_text_from_files_cannot_split_lines_or_drive_the_terminal() -> None:
    """A DT_NEEDED name with a newline (found by fuzzing) or an escape sequence."""
    from bundler.text import one_line, terminal_safe

    hostile = "lib\nevil\x1b]0;title\x07\x1b[2J.so\t"
    assert one_line(hostile) == "lib\\nevil\\x1b]0;title\\x07\\x1b[2J.so\\t"
    assert "\n" not in one_line(hostile) and "\x1b" not in one_line(hostile)
    assert terminal_safe(f"\x1b[1mHeading\x1b[0m\n{hostile}\n") == (
        "\x1b[1mHeading\x1b[0m\nlib\nevil\\x1b]0;title\\x07\\x1b[2J.so\t\n")

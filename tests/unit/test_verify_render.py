"""verify's text: each run's output is shown, PASS or FAIL, a few lines of each stream."""

from __future__ import annotations

from bundler.integrity import IntegrityResult
from bundler.isolation import Outcome
from bundler.verify import LINE_CHARS, SHOWN_LINES, RunCheck, VerifyResult, render


def _render(*runs: RunCheck) -> list[str]:
    result = VerifyResult("prog.tar.zst", "prog", "x86-64", "2.36", "no prog.tar.zst.sha256 "
                          "beside it", IntegrityResult(3, ()), "bare", runs, ())
    return render(result).splitlines()


def _run(stdout: str, stderr: str = "", *, passed: bool = True,
         reasons: tuple[str, ...] = ()) -> RunCheck:
    outcome = Outcome(0 if passed else 7, stdout, stderr, 0.004, len(stdout), len(stderr))
    return RunCheck("at its prefix /opt/prog (launcher, direct start)", outcome, passed,
                    reasons)


def test_a_passing_run_shows_its_stdout_and_stderr() -> None:
    lines = _render(_run("one\ntwo\n", "warning: deprecated flag\n"))
    run = lines.index("PASS  at its prefix /opt/prog (launcher, direct start): exit 0 in 4 ms")
    assert lines[run + 1:run + 4] == ["      stdout: one", "      stdout: two",
                                      "      stderr: warning: deprecated flag"]
    assert lines[-1] == "verify: PASS (1 of 1 runs passed)"


def test_long_output_is_cut_to_a_few_lines_saying_how_many_more() -> None:
    out = "".join(f"line {n}\n" for n in range(SHOWN_LINES + 7))
    wide = "x" * (LINE_CHARS + 50)
    lines = _render(_run(out, f"{wide}\n"))
    shown = [line for line in lines if line.startswith("      stdout: ")]
    assert shown == [f"      stdout: line {n}" for n in range(SHOWN_LINES)] + [
        "      stdout: (7 more lines)"]
    assert f"      stderr: {'x' * LINE_CHARS}... (50 more characters)" in lines


def test_no_output_is_said_and_an_empty_stderr_is_not_shown() -> None:
    lines = _render(_run(""))
    assert "      stdout: (none)" in lines
    assert not any("stderr" in line for line in lines)


def test_a_failing_run_gives_its_reasons_before_its_output() -> None:
    lines = _render(_run("hello\n", "told to fail\n", passed=False,
                         reasons=("exit 7, expected 0",)))
    run = next(n for n, line in enumerate(lines) if line.startswith("FAIL  "))
    assert lines[run + 1:run + 4] == ["      exit 7, expected 0", "      stdout: hello",
                                      "      stderr: told to fail"]
    assert lines[-1] == "verify: FAIL (0 of 1 runs passed)"

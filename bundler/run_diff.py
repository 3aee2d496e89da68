"""How the two builds' outputs differ in compare mode's runs, line by line, and why when
that is known.

side_by_side.py shows the static build at RUN_PLACE/static/NAME and the artifact at
RUN_PLACE/artifact/NAME: away from its prefix, where the launcher starts the program
through the bundled loader. A line naming the program's own path (argv[0], os.Executable,
/proc/self/exe) therefore differs between the two for that reason alone; such lines are
found by comparing them with every path under RUN_PLACE replaced by one placeholder.
Pure functions of the RunComparison: the report renders them (report_render.py).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from bundler.report_model import RunComparison
from bundler.side_by_side import RUN_PLACE, SHOWN_OUTPUT
from bundler.text import one_line

SHOWN_DIFF_LINES = 12  # per stream: the first differing lines, enough to see the pattern
OWN_PATH = re.compile(re.escape(RUN_PLACE) + r"/(?:static|artifact)/[^\s'\"`]*")
OWN_PATH_CAUSE = (
    "the line names the program's own path (argv[0], os.Executable, /proc/self/exe): the "
    f"static build runs as {RUN_PLACE}/static/NAME, the artifact from "
    f"{RUN_PLACE}/artifact/NAME, away from its prefix")
LOADER_NOTE = ("; started there through its loader, the artifact's os.Executable and "
               "/proc/self/exe name the bundled loader (at its prefix they name "
               "libexec/NAME)")


@dataclass(frozen=True)
class Hunk:
    """One run of differing lines: where they start (1-based) on each side, the lines,
    and their cause when every line pair differs only by it."""

    static_start: int
    static_lines: tuple[str, ...]
    artifact_start: int
    artifact_lines: tuple[str, ...]
    cause: str | None


@dataclass(frozen=True)
class StreamDifference:
    stream: str  # "stdout" or "stderr" of the first run of each
    hunks: tuple[Hunk, ...]
    truncated: bool  # an output reached SHOWN_OUTPUT characters: only that much compared

    @property
    def explained(self) -> bool:
        return all(h.cause is not None for h in self.hunks)


def differences(runs: RunComparison) -> tuple[StreamDifference, ...]:
    """The streams whose first-run texts differ (stdout first), each as its hunks."""
    found = []
    for stream, static, artifact in (("stdout", runs.static.output, runs.artifact.output),
                                     ("stderr", runs.static.errors, runs.artifact.errors)):
        if static != artifact:
            found.append(StreamDifference(stream, _hunks(static, artifact), max(
                len(static), len(artifact)) >= SHOWN_OUTPUT))
    return tuple(found)


def own_path_cause(static_line: str, artifact_line: str) -> str | None:
    """Why two differing lines differ, when they differ only in the program's own path."""
    if static_line == artifact_line or not OWN_PATH.search(artifact_line):
        return None
    if OWN_PATH.sub("PATH", static_line) != OWN_PATH.sub("PATH", artifact_line):
        return None
    loader = any(m.group().rsplit("/", 1)[-1].startswith("ld-")
                 for m in OWN_PATH.finditer(artifact_line))
    return OWN_PATH_CAUSE + (LOADER_NOTE if loader else "")


def _hunks(static: str, artifact: str) -> tuple[Hunk, ...]:
    ours, theirs = static.splitlines(), artifact.splitlines()
    hunks = []
    matcher = difflib.SequenceMatcher(None, ours, theirs, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        left, right = tuple(ours[i1:i2]), tuple(theirs[j1:j2])
        causes = [own_path_cause(a, b) for a, b in zip(left, right, strict=False)]
        known = [c for c in causes if c is not None]
        # every pair explained; the fullest wording (the loader note) for the whole hunk
        cause = (max(known, key=len) if len(left) == len(right) and len(known) == len(causes)
                 else None)
        hunks.append(Hunk(i1 + 1, left, j1 + 1, right, cause))
    return tuple(hunks)


def diff_lines(difference: StreamDifference, limit: int = SHOWN_DIFF_LINES) -> list[str]:
    """A small unified-style diff (no context lines), its first `limit` changed lines,
    every output line escaped to one inert line (text.one_line), each hunk's cause after it."""
    lines = [f"--- static {difference.stream}", f"+++ artifact {difference.stream}"]
    shown = hidden = 0
    for hunk in difference.hunks:
        changed = ([f"-{one_line(line)}" for line in hunk.static_lines]
                   + [f"+{one_line(line)}" for line in hunk.artifact_lines])
        room = max(limit - shown, 0)
        if room == 0:
            hidden += len(changed)
            continue
        lines.append(f"@@ {_range('-', hunk.static_start, len(hunk.static_lines))} "
                     f"{_range('+', hunk.artifact_start, len(hunk.artifact_lines))} @@")
        lines += changed[:room]
        shown += min(room, len(changed))
        hidden += max(len(changed) - room, 0)
        if hunk.cause is not None:
            lines.append(f"cause: {hunk.cause}")
    if hidden:
        lines.append(f"({hidden} more changed line{'s' if hidden != 1 else ''} not shown)")
    if difference.truncated:
        lines.append(f"(only the first {SHOWN_OUTPUT} characters of each were kept and "
                     "compared)")
    return lines


def _range(sign: str, start: int, count: int) -> str:
    """A unified diff's range: START for one line, START,COUNT otherwise (an empty side
    names the line before it, as diff -U0 does)."""
    if count == 1:
        return f"{sign}{start}"
    return f"{sign}{start - 1 if count == 0 else start},{count}"

"""Benchmarks of bundle as a user installs it, against the peers a user would pick instead
(issues 8 and 21).

Run through ./scripts/bench, which installs everything: the package by a non-editable
`pip install` of the checkout into its own venv (README's "Install"), exodus and staticx
from PyPI into theirs, and builds the demo agent (tests/support/gobuild.py, cached); it
hands over their console scripts and the agent. This module measures only what it is
handed and imports nothing from tests/.

Every build is a separate process under GNU time (peak RSS, CPU time), in rounds: each
round builds every program with every tool, the tools' order rotating from round to round,
so drift and other load hit all tools alike; ratios to the floor (`tar -cf - FILES | zstd
-T0 -6` of the files bundle's artifact holds, at bundle's own level: the issue's -9 would
flatter bundle since it moved to 6) are taken within a round. Every figure is
shown as min / median / max. The growth of build time with the number of libraries and
their bytes is measured the same way, on closures that benchmarks/closure.py generates.
Prints the tables and writes BENCHMARKS.md (or --out FILE).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from bundler.archive import ZSTD_LEVEL  # the default level, which the floor is run at

sys.path.insert(0, str(Path(__file__).resolve().parent))
from closure import make_closure  # sibling modules, not a package
from measure import (
    Spread,
    block_overheads,
    manual_route_script,
    parse_ldd,
    preserved_section,
    round_ratios,
    spread,
)

REPO = Path(__file__).resolve().parents[1]
GNU_TIME = "/usr/bin/time"
HELLO_C = r"""
#include <stdio.h>
int main(int argc, char **argv) { (void)argc; (void)argv; puts("hello 1.0"); return 0; }
"""
# A build that takes longer than this in the first round is measured in that round only: its
# distance from bundle dwarfs its spread, and repeating it would double the run (staticx on
# node takes about 90 s).
SLOW_BUILD_SECONDS = 30.0
# A build still running after this is stopped and shown as such (it bounds the whole run).
BUILD_TIMEOUT_SECONDS = 150.0


@dataclass(frozen=True)
class Sample:
    seconds: float
    max_rss_kib: int
    cpu_seconds: float  # user + system of the process and the children it waited for


class Failed(Exception):
    """A measured command failed: the table shows it, the run goes on."""


def run_measured(argv: Sequence[str], env: dict[str, str] | None = None,
                 timeout: float | None = None) -> Sample:
    """Wall time, peak RSS and CPU time of one run.

    The peak comes from GNU time (`%M`, the largest of the process and the children it
    waited for). Not from our own wait4: a child forked from this Python process starts
    with our RSS high-water mark, which exec carries over (measured: `tar | zstd` reported
    the benchmark's own 99 MiB). The CPU time (`%U` + `%S`) is the whole process tree's:
    bundle's LIEF worker, its compiler and zstd's threads, the floor's tar and zstd, as
    each parent waits for its children. A run over `timeout` is stopped, with its whole
    process group (the tool's own children too), and counts as failed.
    """
    with tempfile.NamedTemporaryFile("r") as report:
        command = [GNU_TIME, "-f", "%M %U %S", "-o", report.name, *argv]
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   env=env, start_new_session=True)
        try:
            _, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise Failed(f"stopped after {timeout:.0f} s") from None
        elapsed = time.perf_counter() - started
        if process.returncode != 0:
            last = stderr.decode(errors="replace").strip().splitlines()[-3:]
            raise Failed(f"exit {process.returncode}: {' | '.join(last)}")
        peak, user, system = report.read().split()[-3:]
    return Sample(elapsed, int(peak), float(user) + float(system))


def spawn_seconds(argv: Sequence[str]) -> float:
    """One start of a short program, as a service manager would: fork+exec+wait."""
    with open(os.devnull, "wb") as null:
        started = time.perf_counter()
        pid = os.posix_spawn(argv[0], list(argv), os.environ,
                             file_actions=[(os.POSIX_SPAWN_DUP2, null.fileno(), 1),
                                           (os.POSIX_SPAWN_DUP2, null.fileno(), 2)])
        _, status = os.waitpid(pid, 0)
        elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise Failed(f"{' '.join(argv)} exited {os.waitstatus_to_exitcode(status)}")
    return elapsed


def bash(script: str) -> list[str]:
    return ["bash", "-c", f"set -o pipefail; {script}"]


# --- the programs ----------------------------------------------------------------------


@dataclass(frozen=True)
class Program:
    name: str
    path: Path
    start_args: tuple[str, ...]
    large: bool = False
    build_args: tuple[str, ...] = ()  # bundle's own options for it (a closure's --library-path)


def programs(work: Path, agent: Path, quick: bool, with_large: bool,
             only: set[str] | None) -> list[Program]:
    """sqlite3, curl, the demo agent (dynamic Go CGO); node (99 MB) and ffmpeg (the Debian
    program with 150+ libraries) unless --quick or --no-large; --programs picks some."""
    copy = work / "myagent"
    shutil.copyfile(agent, copy)
    copy.chmod(0o755)
    chosen = [Program("sqlite3", Path("/usr/bin/sqlite3"), ("--version",)),
              Program("curl", Path("/usr/bin/curl"), ("--version",)),
              Program("myagent", copy, ("--version",))]
    if not quick and with_large:
        for name, args in (("node", ("--version",)), ("ffmpeg", ("-version",))):
            found = shutil.which(name)
            if found:
                chosen.append(Program(name, Path(os.path.realpath(found)), args, large=True))
            else:
                step(f"no {name} here: its rows are left out")
    return [p for p in chosen if only is None or p.name in only]


def library_count(program: Path) -> int:
    ldd = subprocess.run(["ldd", str(program)], capture_output=True, text=True, check=True)
    return len(parse_ldd(ldd.stdout))


# --- the tools -------------------------------------------------------------------------


@dataclass(frozen=True)
class Starts:
    """How an extracted artifact is started: the default start, and the program started
    directly at the prefix (None: the tool has none)."""

    default: list[str] | None
    direct: list[str] | None


@dataclass(frozen=True)
class Tool:
    name: str
    what: str  # the artifact, in the table's words
    ending: str
    # (program, output, work) -> (argv, environment)
    command: Callable[[Program, Path, Path], tuple[list[str], dict[str, str]]]
    # (program, artifact, place to extract into, work) -> starts
    unpack: Callable[[Program, Path, Path, Path], Starts] | None
    starts_like: str | None = None  # the same artifact as another tool's: no start of its own


def _env(**changes: str | None) -> dict[str, str]:
    env = dict(os.environ)
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def bundle_prefix(work: Path, program: Program) -> Path:
    return work / "prefix" / program.name


def make_tools(options: argparse.Namespace, work: Path) -> list[Tool]:
    def bundle_command(bundle: str, env: dict[str, str]):
        def command(program: Program, out: Path, work: Path):
            return ([bundle, str(program.path), *program.build_args, "-o", str(out),
                     "--name", program.name,
                     "--prefix", str(bundle_prefix(work, program))], env)
        return command

    def bundle_unpack(program: Program, artifact: Path, place: Path, work: Path) -> Starts:
        extract(artifact, place)
        prefix = bundle_prefix(work, program)
        shutil.rmtree(prefix, ignore_errors=True)
        prefix.mkdir(parents=True)
        extract(artifact, prefix, strip=1)
        return Starts([str(place / program.name / "bin" / program.name)],
                      [str(prefix / "libexec" / program.name)])

    def exodus_command(shell: bool):
        def command(program: Program, out: Path, work: Path):
            argv = [str(options.exodus), "--tarball", "-q", "-o", str(out), str(program.path)]
            if shell:
                argv.insert(1, "--shell-launchers")
            return argv, _env(PYTHONDONTWRITEBYTECODE=None)
        return command

    def exodus_unpack(program: Program, artifact: Path, place: Path, work: Path) -> Starts:
        extract(artifact, place)
        return Starts([str(place / "exodus" / "bin" / program.path.name)], None)

    def staticx_command(program: Program, out: Path, work: Path):
        return [str(options.staticx), str(program.path), str(out)], _env(
            PYTHONDONTWRITEBYTECODE=None)

    def staticx_unpack(program: Program, artifact: Path, place: Path, work: Path) -> Starts:
        return Starts([str(artifact)], None)

    def manual_command(program: Program, out: Path, work: Path):
        stage = work / "manual-stage"
        return bash(manual_route_script(str(program.path), program.name, str(out), str(stage),
                                        ZSTD_LEVEL)), dict(os.environ)

    def manual_unpack(program: Program, artifact: Path, place: Path, work: Path) -> Starts:
        extract(artifact, place)
        return Starts([str(place / program.name / "bin" / program.name)], None)

    def floor_command(program: Program, out: Path, work: Path):
        tree = work / "trees" / program.name
        return bash(f"tar -C {shlex.quote(str(tree))} -cf - {shlex.quote(program.name)} | "
                    f"zstd -T0 -{ZSTD_LEVEL} -q -c > {shlex.quote(str(out))}"), dict(os.environ)

    # bundle's cache of compiled launchers starts empty, as on a fresh machine: its first
    # build compiles the launcher, the later ones reuse it (as a machine's later builds do)
    launchers = str(work / "bundle-cache")
    tools = [
        Tool("bundle", "`.tar.zst`, native launcher", "tar.zst",
             bundle_command(str(options.bundle), _env(PYTHONDONTWRITEBYTECODE=None,
                                                      XDG_CACHE_HOME=launchers)),
             bundle_unpack),
        Tool("bundle, no .pyc", "the same", "tar.zst",
             bundle_command(str(options.bundle_nopyc), _env(PYTHONDONTWRITEBYTECODE="1",
                                                            XDG_CACHE_HOME=launchers)),
             None, starts_like="bundle"),
        Tool("exodus, bash launcher", "`.tgz`", "tgz", exodus_command(True), exodus_unpack),
    ]
    if shutil.which("musl-gcc"):
        tools.append(Tool("exodus, musl C launcher", "`.tgz`", "tgz", exodus_command(False),
                          exodus_unpack))
    else:
        step("no musl-gcc (apt musl-tools): exodus's C launcher is left out")
    tools += [
        Tool("staticx", "one executable", "staticx", staticx_command, staticx_unpack),
        Tool("manual (ldd + LD_LIBRARY_PATH)", "`.tar.zst`", "tar.zst", manual_command,
             manual_unpack),
        Tool(FLOOR, "`.tar.zst` of bundle's files", "tar.zst", floor_command, None),
    ]
    return tools


FLOOR = "floor (tar, zstd -T0)"


def fresh_copy(program: Path, into: Path) -> Path:
    """`program` copied to a new file in `into` (emptied first), its name kept: the
    unbundled side of a start measurement is a new file in every block, as the artifacts'
    extractions are (measure_starts, settle). Its libraries stay the system's."""
    shutil.rmtree(into, ignore_errors=True)
    into.mkdir(parents=True)
    copy = into / program.name
    shutil.copy2(program, copy)
    return copy


def settle(*roots: Path) -> None:
    """Every regular file under `roots` replaced by a copy the kernel makes (shutil's
    sendfile), so that the files of every side of a start measurement come into the page
    cache the same way, the way the system's libraries the unbundled program loads start.

    Measured (Linux 6.18, ext4, the demo agent, 600 starts each, round-robin): the same
    program bytes started 0.40-0.52 ms slower when the file had been written in 10 KiB
    pieces (as GNU tar extracts) or dropped from the cache and read back from disk than
    when written in 1 MiB pieces or copied by the kernel, for as long as the pages stayed
    cached (the sizes of the page-cache folios, not the bytes). A fresh extraction against
    a fresh copy of the unbundled program charged bundle 0.45 ms for how tar writes; with
    the program and the bundled libraries re-copied, bundle's direct start was -0.08 ms."""
    for root in roots:
        for directory, _, names in os.walk(root):
            for name in names:
                path = Path(directory, name)
                if path.is_symlink() or not path.is_file():
                    continue
                fresh = path.with_name(f".{name}.settling")
                shutil.copy2(path, fresh)
                fresh.replace(path)


def extract(artifact: Path, into: Path, strip: int = 0) -> None:
    into.mkdir(parents=True, exist_ok=True)
    argv = ["tar", "-xf", str(artifact), "-C", str(into)]
    if strip:
        argv.append(f"--strip-components={strip}")
    subprocess.run(argv, check=True)


# --- builds, round-robin -----------------------------------------------------------------


@dataclass
class Builds:
    """Per (program, tool): round -> sample, the failure if any, the artifact's size."""

    samples: dict[tuple[str, str], dict[int, Sample]] = field(default_factory=dict)
    failures: dict[tuple[str, str], str] = field(default_factory=dict)
    sizes: dict[tuple[str, str], int] = field(default_factory=dict)


def artifact_path(work: Path, program: Program, tool: Tool) -> Path:
    slug = "".join(c if c.isalnum() else "-" for c in tool.name)
    return work / "out" / f"{program.name}.{slug}.{tool.ending}"


def build_once(program: Program, tool: Tool, work: Path) -> Sample:
    out = artifact_path(work, program, tool)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    argv, env = tool.command(program, out, work)
    return run_measured(argv, env, timeout=BUILD_TIMEOUT_SECONDS)


def prepare_floor_tree(program: Program, tools: list[Tool], work: Path) -> None:
    """The files of bundle's artifact, unpacked once: what the floor archives every round."""
    tree = work / "trees" / program.name
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir(parents=True)
    extract(artifact_path(work, program, tools[0]), tree)


def run_rounds(chosen: list[Program], tools: list[Tool], work: Path, rounds: int,
               large_rounds: int, max_minutes: float | None, keep_going: bool = False,
               ) -> Builds:
    """Round 1 builds everything; a program's later rounds start only while the run is
    within --max-minutes (the tables then show the n each figure has).

    A failed warm-up build with bundle (tools[0]) ends the run, as the program tables need
    its artifact; with `keep_going` it is recorded against every tool of that program
    instead (the growth rows: a closure bundle cannot build is a row that says so, not a
    run lost after its minutes of builds)."""
    builds = Builds()
    began = time.monotonic()
    step("warm-up: a build of each program with bundle (page cache, .pyc), then the rest")
    for program in chosen:
        try:
            build_once(program, tools[0], work)
        except Failed as failure:
            if not keep_going:
                raise
            step(f"  {tools[0].name} on {program.name} fails: {failure}")
            for tool in tools:  # no artifact, so no files for the floor either
                builds.failures[(program.name, tool.name)] = (
                    str(failure) if tool is tools[0] else f"{tools[0].name} failed")
            continue
        prepare_floor_tree(program, tools, work)
        if not program.large:  # the peers' warm-up too; on large programs it costs minutes
            for tool in tools[1:]:
                with contextlib.suppress(Failed):  # round 1 records it
                    build_once(program, tool, work)
    for number in range(max(rounds, large_rounds)):
        order = tools[number % len(tools):] + tools[:number % len(tools)]
        for program in chosen:
            if number >= (large_rounds if program.large else rounds):
                continue
            if number > 0 and max_minutes and time.monotonic() - began > 60 * max_minutes:
                step(f"--max-minutes {max_minutes:g} reached: no round {number + 1} of "
                     f"{program.name}")
                continue
            step(f"round {number + 1}: {program.name}")
            for tool in order:
                key = (program.name, tool.name)
                taken = builds.samples.setdefault(key, {})
                if key in builds.failures:
                    continue
                if number > 0 and taken and max(s.seconds for s in taken.values()) \
                        > SLOW_BUILD_SECONDS:
                    continue
                try:
                    taken[number] = build_once(program, tool, work)
                except Failed as failure:
                    builds.failures[key] = str(failure)
                    step(f"  {tool.name} on {program.name} fails: {failure}")
                    continue
                builds.sizes[key] = artifact_path(work, program, tool).stat().st_size
    return builds


# --- start overhead ---------------------------------------------------------------------


@dataclass(frozen=True)
class StartResult:
    default: Spread | None
    direct: Spread | None
    runs: int
    failure: str | None = None


def measure_starts(program: Program, tools: list[Tool], builds: Builds, work: Path,
                   runs: int, blocks: int, budget: float) -> tuple[float, dict[str, StartResult]]:
    """Every tool's default start (and direct start) against the program unbundled, in
    round-robin blocks; a variant slower than budget/runs seconds per start gets fewer cycles
    (at least 2 a block). Returns the unbundled median (ms) and the overheads.

    Each block starts from a fresh extraction of every artifact and a fresh copy of the
    program, every file then copied once more by the kernel (`settle`): how a file's pages
    came into the cache moved the demo agent's start by up to 0.5 ms (see `settle`), more
    than the tools differ, so every side's files come into it alike, and the spread over
    the blocks shows what is left."""
    failures: dict[str, str] = {}

    def placed() -> dict[str, list[str]]:
        fresh = fresh_copy(program.path, work / "start" / program.name / "unbundled")
        variants = {"unbundled": [str(fresh), *program.start_args]}
        for tool in tools:
            key = (program.name, tool.name)
            if (tool.unpack is None or key in builds.failures or key not in builds.sizes
                    or tool.name in failures):
                continue
            place = work / "start" / program.name / tool.ending / tool.name.replace(" ", "-")
            shutil.rmtree(place, ignore_errors=True)
            starts = tool.unpack(program, artifact_path(work, program, tool), place, work)
            for kind, argv in (("default", starts.default), ("direct", starts.direct)):
                if argv is not None:
                    variants[f"{tool.name}|{kind}"] = [*argv, *program.start_args]
        settle(work / "start" / program.name, bundle_prefix(work, program))
        return variants

    allowed: dict[str, int] = {}
    timings: dict[str, list[list[float]]] = {}  # variant -> one list of starts per block
    for block in range(blocks):
        variants = {name: argv for name, argv in placed().items()
                    if block == 0 or name in allowed}
        for name, argv in list(variants.items()):  # warm-up (and, first, the cycles each gets)
            try:
                spawn_seconds(argv)
                first = min(spawn_seconds(argv) for _ in range(2))
            except Failed as failure:
                failures[name.split("|")[0]] = str(failure)
                allowed.pop(name, None)
                del variants[name]
                continue
            if block == 0:
                allowed[name] = max(2, min(runs, int(budget / max(first, 1e-6))) // blocks)
        allowed["unbundled"] = max(allowed.values())
        for name in variants:
            timings.setdefault(name, []).append([])
        for cycle in range(allowed["unbundled"]):
            for name, argv in list(variants.items()):
                if cycle < allowed[name] and name in variants:
                    try:
                        timings[name][block].append(spawn_seconds(argv))
                    except Failed as failure:
                        failures[name.split("|")[0]] = str(failure)
                        del variants[name]
    results: dict[str, StartResult] = {}
    for tool in tools:
        if tool.name in failures:
            results[tool.name] = StartResult(None, None, 0, failures[tool.name])
            continue
        default = timings.get(f"{tool.name}|default")
        direct = timings.get(f"{tool.name}|direct")
        if default is None and direct is None:
            continue
        results[tool.name] = StartResult(
            spread([x * 1000 for x in block_overheads(timings["unbundled"], default)])
            if default else None,
            spread([x * 1000 for x in block_overheads(timings["unbundled"], direct)])
            if direct else None,
            sum(len(b) for b in (default or direct or [])))
    base = [t for block in timings["unbundled"] for t in block]
    return statistics.median(base) * 1000, results


# --- the per-program table --------------------------------------------------------------


def program_table(program: Program, tools: list[Tool], builds: Builds,
                  starts: dict[str, StartResult], base_ms: float) -> list[str]:
    floor = {r: s.seconds for r, s in builds.samples.get((program.name, FLOOR), {}).items()}
    rows = []
    for tool in tools:
        key = (program.name, tool.name)
        failure = builds.failures.get(key)
        if failure:
            rows.append([tool.name, f"fails: {failure[:80]}", "", "", "", "", ""])
            continue
        taken = builds.samples.get(key, {})
        if not taken:
            continue
        seconds = spread([s.seconds for s in taken.values()])
        rss = spread([s.max_rss_kib / 1024 for s in taken.values()])
        ratios = round_ratios({r: s.seconds for r, s in taken.items()}, floor)
        start = starts.get(tool.starts_like or tool.name)
        if tool.name == FLOOR:
            default_text = direct_text = "(files only)"
        elif start is None:
            default_text = direct_text = "-"
        elif start.failure:
            default_text, direct_text = f"fails: {start.failure[:60]}", "-"
        else:
            default_text = start.default.text("{:.2f}", signed=True) if start.default else "-"
            direct_text = (start.direct.text("{:.2f}", signed=True) if start.direct
                           else "none")
        if tool.starts_like:
            default_text = direct_text = f"as {tool.starts_like}"
        rows.append([tool.name, seconds.text(),
                     spread(ratios).text("{:.2f}") if ratios else "-",
                     rss.text("{:.0f}"), mib(builds.sizes.get(key)) + f" ({tool.what})",
                     default_text, direct_text])
    header = ["tool", "build wall (s)", "x floor (same round)", "peak RSS (MiB)", "artifact",
              "start, default (ms over unbundled)", "start, direct at the prefix (ms)"]
    return [*table(header, rows), "", f"Unbundled `{program.path} "
            f"{' '.join(program.start_args)}` (a fresh copy in each block): median "
            f"{base_ms:.2f} ms a start."]


# --- the targets of issue 21 ----------------------------------------------------------


def median_build(builds: Builds, program: str, tool: str) -> float | None:
    taken = builds.samples.get((program, tool))
    if not taken or (program, tool) in builds.failures:
        return None
    return statistics.median(s.seconds for s in taken.values())


def targets(chosen: list[Program], tools: list[Tool], builds: Builds,
            starts: dict[str, dict[str, StartResult]], largest: dict[str, int],
            thousand: Spread | None) -> list[list[str]]:
    """Each target against medians of this run; `no` says by how much. `thousand`: the
    1,000-library closure's bundle / floor ratios, if the growth rows had it."""
    rows = []
    peers = [t.name for t in tools if t.name not in ("bundle", "bundle, no .pyc", FLOOR)]
    for program in chosen:
        mine = median_build(builds, program.name, "bundle")
        if mine is None:
            rows.append([f"{program.name}: bundle builds", "fails", yes(False)])
            continue
        beaten = {p: median_build(builds, program.name, p) for p in peers}
        slower = [f"{p} {v:.2f} s" for p, v in beaten.items() if v is not None and v <= mine]
        rows.append([f"{program.name}: build faster than every peer (median)",
                     f"bundle {mine:.2f} s; " + ("; ".join(slower) + " not slower"
                                                 if slower else "all peers slower"),
                     yes(not slower)])
        mine_start = starts.get(program.name, {}).get("bundle")
        if mine_start and mine_start.default:
            behind = [f"{p} {r.default.median:+.2f} ms"
                      for p, r in starts.get(program.name, {}).items()
                      if p in peers and r.default and r.default.median <= mine_start.default.median]
            rows.append([f"{program.name}: default start cheaper than every peer's (median)",
                         f"bundle {mine_start.default.median:+.2f} ms; "
                         + ("; ".join(behind) if behind else "all peers dearer"),
                         yes(not behind)])
            rows.append([f"{program.name}: native launcher start overhead <= 0.2 ms",
                         f"{mine_start.default.median:+.2f} ms",
                         yes(mine_start.default.median <= 0.2)])
        if mine_start and mine_start.direct:
            direct = mine_start.direct
            rows.append([f"{program.name}: direct start at the prefix indistinguishable "
                         "(median at most +0.1 ms)", direct.text("{:.2f}", signed=True),
                         yes(direct.median <= 0.1)])
        taken = builds.samples.get((program.name, "bundle"), {})
        if taken and program.name in largest:
            peak = statistics.median(s.max_rss_kib * 1024 for s in taken.values())
            rows.append([f"{program.name}: peak RSS <= 2x the largest file",
                         f"{peak / 2**20:.0f} MiB vs {largest[program.name] / 2**20:.1f} MiB "
                         f"({peak / largest[program.name]:.1f}x)",
                         yes(peak <= 2 * largest[program.name])])
    sqlite = median_build(builds, "sqlite3", "bundle")
    if sqlite is not None:
        rows.append(["sqlite3: bundle <= 0.3 s", f"{sqlite:.2f} s", yes(sqlite <= 0.3)])
    floor = {r: s.seconds for r, s in builds.samples.get(("node", FLOOR), {}).items()}
    node = {r: s.seconds for r, s in builds.samples.get(("node", "bundle"), {}).items()}
    if floor and node:
        ratio = spread(round_ratios(node, floor))
        rows.append(["node: bundle <= 1.3x the floor", ratio.text("{:.2f}") + "x",
                     yes(ratio.median <= 1.3)])
    if thousand is None:
        rows.append(["1,000 libraries <= 2x the floor", "not measured in this run", "-"])
    else:
        rows.append(["1,000 libraries <= 2x the floor (wall, same round)",
                     thousand.text("{:.2f}") + "x", yes(thousand.median <= 2)])
    return rows


def yes(flag: bool) -> str:
    return "yes" if flag else "**no**"


# --- sizes per format (sqlite3, curl, the demo agent) -----------------------------------


def sizes_table(chosen: list[Program], bundle: str, work: Path, static: Path) -> list[str]:
    rows = []
    for program in chosen:
        if program.large:
            continue
        sizes = {}
        for ending in ("tar.zst", "tar.gz", "tar.xz"):
            out = work / f"{program.name}.size.{ending}"
            run_measured([bundle, str(program.path), "-o", str(out), "--name", program.name])
            sizes[ending] = out.stat().st_size
        tree = work / "trees" / program.name / program.name
        raw = sum(p.stat().st_size for p in tree.rglob("*") if p.is_file() and not p.is_symlink())
        static_raw = static_zst = None
        if program.name == "myagent":
            import zstandard

            data = static.read_bytes()
            static_raw = len(data)
            static_zst = len(zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(data))
        rows.append([program.name, mib(raw), mib(sizes["tar.zst"]), mib(sizes["tar.gz"]),
                     mib(sizes["tar.xz"]), mib(static_raw), mib(static_zst)])
    return table(["program", "raw", ".tar.zst", ".tar.gz", ".tar.xz", "static build",
                  "static, zstd"], rows)


# --- bundle's own launchers (hello and the demo agent) ----------------------------------


def launcher_startup(name: str, program: Path, args: list[str], bundle: str, work: Path,
                     runs: int, blocks: int) -> list[list[str]]:
    """Unbundled; libexec/ directly at the prefix; the launcher at the prefix (direct start)
    and elsewhere (loader start), native and sh; the env launcher. Each block extracts the
    artifacts and copies the program afresh, then has the kernel copy every file once more
    (measure_starts says why)."""
    place = work / f"launchers-{name}"
    shutil.rmtree(place, ignore_errors=True)
    place.mkdir(parents=True)
    artifacts = {}
    for kind, extra in (("native", ["--launcher-type", "native"]),
                        ("sh", ["--launcher-type", "sh"]), ("env", ["--launcher", "env"])):
        artifacts[kind] = place / f"{name}-{kind}.tar"
        run_measured([bundle, str(program), "-o", str(artifacts[kind]), "--prefix",
                      str(place / f"{kind}-prefix" / name), *extra])

    def placed() -> dict[str, list[str]]:
        variants: dict[str, list[str]] = {
            "unbundled": [str(fresh_copy(program, place / "unbundled")), *args]}
        for kind, artifact in artifacts.items():
            prefix = place / f"{kind}-prefix" / name
            shutil.rmtree(prefix, ignore_errors=True)
            shutil.rmtree(place / f"{kind}-elsewhere", ignore_errors=True)
            prefix.mkdir(parents=True)
            extract(artifact, prefix, strip=1)
            extract(artifact, place / f"{kind}-elsewhere")
            elsewhere = place / f"{kind}-elsewhere" / name / "bin" / name
            if kind == "native":
                variants["libexec/ directly at the prefix"] = [
                    str(prefix / "libexec" / name), *args]
                variants["native launcher at the prefix (direct start)"] = [
                    str(prefix / "bin" / name), *args]
                variants["native launcher elsewhere (loader start)"] = [str(elsewhere), *args]
            elif kind == "sh":
                variants["sh launcher at the prefix"] = [str(prefix / "bin" / name), *args]
                variants["sh launcher elsewhere"] = [str(elsewhere), *args]
            else:
                variants["env launcher elsewhere"] = [str(elsewhere), *args]
        settle(place)
        return variants

    timings: dict[str, list[list[float]]] = {}
    for _ in range(blocks):
        variants = placed()
        for argv in variants.values():  # warm the page cache and the dentries
            spawn_seconds(argv)
        for variant in variants:
            timings.setdefault(variant, []).append([])
        for _ in range(max(2, runs // blocks)):  # round robin: drift hits every variant alike
            for variant, argv in variants.items():
                timings[variant][-1].append(spawn_seconds(argv))
    rows = []
    for variant, values in timings.items():
        over = spread([x * 1000 for x in block_overheads(timings["unbundled"], values)])
        every = [t for block in values for t in block]
        rows.append([name, variant, f"{statistics.median(every) * 1000:.2f} ms",
                     over.text("{:.2f}", signed=True)])
    return rows


# --- inspect against ld.so --list --------------------------------------------------------


def inspect_rows(bundle: str, target: str, runs: int) -> list[list[str]]:
    loader = os.path.realpath("/lib64/ld-linux-x86-64.so.2")
    python = str(Path(bundle).parent / "python")
    commands: dict[str, list[str]] = {
        f"ld.so --list {target}": [loader, "--list", target],
        "python -I -S -c pass (interpreter floor)": [python, "-I", "-S", "-c", "pass"],
        "python -c 'import bundler.cli' (imports)": [python, "-c", "import bundler.cli"],
        f"bundle inspect {target}": [bundle, "inspect", target],
    }
    timings: dict[str, list[float]] = {what: [] for what in commands}
    for argv in commands.values():
        spawn_seconds(argv)
    for _ in range(runs):  # round robin, spawned directly (no GNU time in between)
        for what, argv in commands.items():
            timings[what].append(spawn_seconds(argv))
    return [[what, spread([x * 1000 for x in t]).text("{:.1f}")]
            for what, t in timings.items()]


# --- growth with the number of libraries and bytes (benchmarks/closure.py) --------------

KIB = 1024
DEFAULT_LIBRARY_KIB = 64  # the data of each library in the rows by number of libraries
GROWTH_SIZES = "10,100,1000,100x512"  # by number of libraries, then by bytes
QUICK_GROWTH_SIZES = "10,100"
# The cost per library added over the last step (100 -> 1,000) at most this many times that
# over the first (10 -> 100) reads as linear. A quadratic term would make it about 10x (the
# closure's size grows tenfold between the steps), N log N about 1.5x; noise on a shared
# machine moves it by some tens of percent.
LINEAR_SLOPE_RATIO = 1.5
# The growth rows take this many times the programs' rounds: a round of them is seconds,
# and the first step (10 -> 100 libraries) adds a tenth of a second of CPU, within what
# five rounds' medians move by on this machine (the CPU of the 10-library build spread
# over 0.43 s in one run).
GROWTH_ROUND_FACTOR = 3


@dataclass(frozen=True)
class GrowthPoint:
    """A generated closure: `count` libraries with `kib` KiB of data each."""

    count: int
    kib: int

    @property
    def label(self) -> str:
        return f"{self.count:,} x {self.kib} KiB"

    @property
    def slug(self) -> str:
        """Its program's name in the run (the artifact's, the floor tree's)."""
        return f"closure-{self.count}x{self.kib}k"


def growth_sizes(text: str) -> tuple[GrowthPoint, ...]:
    """--growth-sizes: `10,100,1000,100x512` is 10, 100 and 1,000 libraries of 64 KiB, then
    100 of 512 KiB."""
    points = []
    for item in text.split(","):
        count, times, kib = item.strip().partition("x")
        try:
            point = GrowthPoint(int(count), int(kib) if times else DEFAULT_LIBRARY_KIB)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not N or NxKIB: {item!r}") from None
        if point.count < 1 or point.kib < 1:
            raise argparse.ArgumentTypeError(f"not a closure: {item!r}")
        points.append(point)
    if len(set(points)) != len(points):
        raise argparse.ArgumentTypeError(f"a closure named twice: {text!r}")
    return tuple(points)


def growth_references(points: Sequence[GrowthPoint]) -> dict[GrowthPoint, GrowthPoint]:
    """The row each row's growth is taken from: the nearest row above with the same data
    per library and another number of libraries (growth per library), else one above with
    the same number of libraries (growth per MiB of data). The first row has none."""
    found = {}
    for index, point in enumerate(points):
        above = points[:index][::-1]
        same_bytes = [p for p in above if p.kib == point.kib and p.count != point.count]
        same_count = [p for p in above if p.count == point.count]
        if same_bytes or same_count:
            found[point] = (same_bytes or same_count)[0]
    return found


def per_unit_ms(before: float, after: float, units_before: float, units_after: float,
                ) -> float:
    """Milliseconds per unit added (library, or MiB) between two medians in seconds."""
    return (after - before) * 1000 / (units_after - units_before)


def linearity_sentence(steps: Sequence[GrowthStep]) -> str:
    """Whether build time grows linearly with the number of libraries, from the steps by
    number of libraries in order: the CPU time per library added over the last step
    against the first. Linear growth keeps it constant, whatever the fixed cost of a
    build. The work (CPU: every process and thread of the build) decides, not the wall
    time: a small build's wall time is held up by the patch worker's fixed chain (LIEF's
    import and the patch, beside the resolving), so from 10 to 100 libraries it barely
    rises while the work does (measured: 1.19 and 1.18 s, CPU 1.62 and 1.93 s), and the
    wall time's last step then looks steeper than its first whatever the growth. The
    floor's steps, whose files grow linearly, show what noise does; a first step whose CPU
    rises less than its rows' CPU spread is said to be within the noise."""
    if len(steps) < 2:
        return ("Whether the growth is linear takes two steps by the number of libraries "
                f"(10 -> 100 -> 1,000); this run has {len(steps)}.")
    first, last = steps[0], steps[-1]
    spans = (f"each library added cost bundle {first.cpu_ms:.2f} ms of CPU from "
             f"{first.start.count:,} to {first.end.count:,} libraries and "
             f"{last.cpu_ms:.2f} ms from {last.start.count:,} to {last.end.count:,}")
    others = (f" (wall time: {first.bundle_ms:.2f} and {last.bundle_ms:.2f} ms; the floor's "
              f"wall time, whose files grow linearly: {first.floor_ms:.2f} and "
              f"{last.floor_ms:.2f} ms)")
    if first.cpu_ms <= 0:
        return (f"Linear or not cannot be told from this run: {spans}{others}; the first "
                "step is within the noise.")
    ratio = last.cpu_ms / first.cpu_ms
    verdict = "linear" if ratio <= LINEAR_SLOPE_RATIO else "**faster than linear**"
    noise = (f" The first step's rise in CPU ({first.rise_seconds:.2f} s) is smaller than "
             f"the spread of its rows' CPU times ({first.noise_seconds:.2f} s): the verdict "
             "is within this run's noise (more rounds, or a quieter machine, decide it)."
             if first.rise_seconds < first.noise_seconds else "")
    return (f"Growth with the number of libraries is {verdict}: {spans}, {ratio:.2f}x the "
            f"first{others}. Linear here means at most {LINEAR_SLOPE_RATIO:g}x; a quadratic "
            "term would show as about 10x. The CPU time decides: a small build's wall time "
            "is held up by the patch worker's fixed chain (LIEF's import and the patch), "
            f"which hides what the first libraries added cost.{noise}")


@dataclass(frozen=True)
class GrowthRun:
    """The growth rows' measurements: builds keyed by each point's slug."""

    points: tuple[GrowthPoint, ...]
    builds: Builds
    trees: dict[GrowthPoint, tuple[int, int]]  # files and raw bytes of bundle's artifact
    unmade: dict[GrowthPoint, str]  # closures that could not be generated, and why
    rounds: int

    def seconds(self, point: GrowthPoint, tool: str, cpu: bool = False) -> dict[int, float]:
        return {r: s.cpu_seconds if cpu else s.seconds
                for r, s in self.builds.samples.get((point.slug, tool), {}).items()}

    def median(self, point: GrowthPoint, tool: str, cpu: bool = False) -> float | None:
        taken = self.builds.samples.get((point.slug, tool))
        if not taken or (point.slug, tool) in self.builds.failures:
            return None
        return statistics.median(s.cpu_seconds if cpu else s.seconds for s in taken.values())

    def ratio(self, point: GrowthPoint) -> Spread | None:
        """bundle / floor wall time, within each round."""
        ratios = round_ratios(self.seconds(point, "bundle"), self.seconds(point, FLOOR))
        return spread(ratios) if ratios else None


def bench_cache() -> Path:
    """What outlives a run: BUNDLE_CACHE_DIR, as scripts/lib/setup.sh sets and exports it."""
    home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bundle-dev"
    return Path(os.environ.get("BUNDLE_CACHE_DIR") or home)


def measure_growth(points: Sequence[GrowthPoint], tools: list[Tool], work: Path, rounds: int,
                   max_minutes: float | None) -> GrowthRun:
    """bundle and the floor on each generated closure, round-robin like the programs: each
    round builds every closure with both, their order rotating; the closures take turns
    in every round, so drift hits the rows alike and the growth between them stays a
    difference of like figures. The closures are kept in the cache (generating 1,000
    libraries takes minutes; closure.py names them by their inputs)."""
    home = bench_cache() / "closures"
    chosen: list[Program] = []
    unmade: dict[GrowthPoint, str] = {}
    for point in points:
        step(f"growth: the closure of {point.label} (generated once, kept in {home})")
        try:
            program = make_closure(home, point.count, point.kib * KIB)
        except (RuntimeError, OSError) as error:
            unmade[point] = str(error).strip().splitlines()[0][:120]
            step(f"  not generated: {unmade[point]}")
            continue
        chosen.append(Program(point.slug, program, (),
                              build_args=("--library-path", str(program.parent / "lib"))))
    mine = [t for t in tools if t.name in ("bundle", FLOOR)]
    builds = run_rounds(chosen, mine, work, rounds, rounds, max_minutes, keep_going=True)
    trees = {}
    for point in points:
        tree = work / "trees" / point.slug
        if point not in unmade and tree.is_dir():
            files = [p for p in tree.rglob("*") if p.is_file() and not p.is_symlink()]
            trees[point] = (len(files), sum(p.stat().st_size for p in files))
    return GrowthRun(tuple(points), builds, trees, unmade, rounds)


def growth_section(run: GrowthRun, tag: str) -> list[str]:
    """The growth table, the growth from row to row and whether it is linear."""
    references = growth_references(run.points)
    rows = []
    steps: list[GrowthStep] = []
    for point in run.points:
        failure = run.unmade.get(point) or run.builds.failures.get((point.slug, "bundle"))
        if failure:
            rows.append([point.label, "-", f"fails: {failure[:80]}", "", "", "", "", ""])
            continue
        files, raw = run.trees[point]
        cells = [point.label, f"{files:,} / {raw / 2**20:.1f} MiB"]
        for tool in ("bundle", FLOOR):
            seconds = run.seconds(point, tool)
            failed = run.builds.failures.get((point.slug, tool))
            cells += ([f"fails: {failed[:60]}", "-"] if failed else
                      [spread(list(seconds.values())).text(),
                       f"{run.median(point, tool, cpu=True):.2f}"] if seconds else ["-", "-"])
        ratio = run.ratio(point)
        cpu = (run.median(point, "bundle", cpu=True), run.median(point, FLOOR, cpu=True))
        cells.append("-" if ratio is None else ratio.text("{:.2f}")
                     + (f" (CPU {cpu[0] / cpu[1]:.2f})" if cpu[0] and cpu[1] else ""))
        taken = growth_step(run, point, references.get(point))
        cells.append("-" if taken is None else taken.text())
        steps += [taken] if taken and taken.unit == "library" else []
        rows.append(cells)
    header = ["closure (libraries x data each)", "files / raw (bundle's artifact)",
              "bundle wall (s)", "bundle CPU (s, median)", "floor wall (s)",
              "floor CPU (s, median)", "bundle x floor (wall, same round)",
              "growth from the row above, from medians: bundle wall / CPU / floor wall"]
    intro = (f"`benchmarks/closure.py` generates a program needing N shared libraries "
             f"(library i needs 2i+1, 2i+2, i+1 and libc; data of its own in each, text-like, "
             f"stripped), built with the installed `bundle PROGRAM --library-path DIR/lib`, "
             f"against the floor of the same files (bundle's artifact unpacked, `tar -cf - | "
             f"zstd -T0 -{ZSTD_LEVEL}`). {run.rounds} rounds, bundle and the floor in "
             f"rotating order and the closures in turn in each round; wall time min / median "
             f"/ max; CPU is the whole process tree's (user + system, LIEF's worker and "
             f"zstd's threads included); \"x floor\" is taken within a round (CPU: of the "
             f"medians). The growth is per library added (from the row above with the same "
             f"data per library) or per MiB of data added (from the row with the same number "
             f"of libraries).")
    return ["", f"## Growth with the number of libraries and bytes — {tag}", "", intro, "",
            *table(header, rows), "", linearity_sentence(steps)]


@dataclass(frozen=True)
class GrowthStep:
    """The growth from one row to another, from the medians: ms per library added (the
    number of libraries changed) or per MiB of data added (the data per library changed)."""

    start: GrowthPoint
    end: GrowthPoint
    unit: str  # "library" or "MiB"
    bundle_ms: float  # wall
    cpu_ms: float  # bundle's CPU
    floor_ms: float  # the floor's wall
    rise_seconds: float  # bundle's CPU, median to median
    noise_seconds: float  # the wider of the two rows' spreads of bundle's CPU (max - min)

    def text(self) -> str:
        return (f"{self.bundle_ms:+.2f} / {self.cpu_ms:+.2f} / {self.floor_ms:+.2f} ms per "
                f"{self.unit} (from {self.start.label})")


def growth_step(run: GrowthRun, point: GrowthPoint, reference: GrowthPoint | None,
                ) -> GrowthStep | None:
    """The step from `reference` to `point`, or None when either lacks a figure."""
    if reference is None or reference not in run.trees or point not in run.trees:
        return None
    before, after = ([run.median(p, "bundle"), run.median(p, "bundle", cpu=True),
                      run.median(p, FLOOR)] for p in (reference, point))
    pairs = [(b, a) for b, a in zip(before, after) if b is not None and a is not None]
    if len(pairs) < 3:
        return None
    if reference.kib == point.kib:
        units, unit = (float(reference.count), float(point.count)), "library"
    else:  # the data measured: bundle's artifact, raw
        units = (run.trees[reference][1] / 2**20, run.trees[point][1] / 2**20)
        unit = "MiB"
    wall, cpu, floor = (per_unit_ms(b, a, *units) for b, a in pairs)
    cpu_before, cpu_after = pairs[1]
    noise = max(max(t) - min(t) for t in (run.seconds(reference, "bundle", cpu=True).values(),
                                           run.seconds(point, "bundle", cpu=True).values()))
    return GrowthStep(reference, point, unit, wall, cpu, floor, cpu_after - cpu_before,
                      noise)


# --- the report ------------------------------------------------------------------------


def version_of(python: Path, package: str) -> str:
    result = subprocess.run([str(python), "-c", "import sys; from importlib import metadata; "
                             f"print(metadata.version({package!r}))"],
                            capture_output=True, text=True)
    return result.stdout.strip() or "missing"


def versions_tag() -> str:
    """LIEF, zstandard, pyelftools and Python of the installed bundle: in every heading."""
    found = {}
    for package in ("lief", "zstandard", "pyelftools"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "missing"
    return (f"LIEF {found['lief']}, zstandard {found['zstandard']}, pyelftools "
            f"{found['pyelftools']}, Python {platform.python_version()}")


def machine(options: argparse.Namespace) -> list[str]:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown")
    memory = next((line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal")), "0")
    distro = "unknown"
    if Path("/etc/os-release").exists():
        fields = dict(line.split("=", 1) for line in
                      Path("/etc/os-release").read_text().splitlines() if "=" in line)
        distro = fields.get("PRETTY_NAME", distro).strip('"')
    zstd = subprocess.run(["zstd", "--version"], capture_output=True, text=True).stdout.strip()
    musl = shutil.which("musl-gcc")
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return [
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; "
        f"load average before the run {load}",
        f"- machine: {cpu}, {os.cpu_count()} cores, {int(memory) / 2**20:.1f} GiB, "
        f"Linux {platform.release()}, {distro}",
        f"- bundle {version_of(Path(sys.executable), 'bundle')} (pip install of the checkout, "
        f"its `bundle` console script); {versions_tag()}, click {metadata.version('click')}",
        f"- peers from PyPI: exodus-bundler "
        f"{version_of(options.exodus.parent / 'python', 'exodus-bundler')}, staticx "
        f"{version_of(options.staticx.parent / 'python', 'staticx')}; musl-gcc "
        f"{'yes' if musl else 'no'}; {zstd}; /bin/sh is {os.path.realpath('/bin/sh')}",
    ]


def table(header: Sequence[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |"
              for row in rows]
    return lines


def mib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:.1f} MiB"


PLACEHOLDERS = {
    "zstd": ["<!-- zstd -->", "## The zstd level curve", "",
             "(to be measured: time and size per zstd level on this machine)",
             "<!-- /zstd -->"],
}


def kept_sections(out: Path) -> list[str]:
    """The zstd section, measured by another script (benchmarks/zstd_curve.py): kept from
    the file this run replaces (between its markers), else a placeholder to fill."""
    old = out.read_text() if out.exists() else ""
    lines: list[str] = []
    for key, placeholder in PLACEHOLDERS.items():
        lines += ["", *(preserved_section(old, key) or placeholder)]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "BENCHMARKS.md")
    parser.add_argument("--quick", action="store_true",
                        help="2 rounds, short start loops, sqlite3, curl and the agent only, "
                        "growth rows of 10 and 100 libraries")
    parser.add_argument("--rounds", type=int, help="rounds of builds (default 5, quick 2)")
    parser.add_argument("--no-large", action="store_true", help="skip node and ffmpeg")
    parser.add_argument("--max-minutes", type=float,
                        help="start no further round of builds after this many minutes")
    parser.add_argument("--programs", help="comma-separated: only these (sqlite3, curl, "
                        "myagent, node, ffmpeg)")
    parser.add_argument("--growth-sizes", type=growth_sizes,
                        help=f"the generated closures of the growth rows: N (libraries of "
                        f"{DEFAULT_LIBRARY_KIB} KiB) or NxKIB, comma-separated (default "
                        f"{GROWTH_SIZES}; quick {QUICK_GROWTH_SIZES})")
    parser.add_argument("--bundle", type=Path, required=True, help="the installed console script")
    parser.add_argument("--bundle-nopyc", type=Path, required=True,
                        help="the same, installed with pip --no-compile")
    parser.add_argument("--exodus", type=Path, required=True)
    parser.add_argument("--staticx", type=Path, required=True)
    parser.add_argument("--agent", type=Path, required=True,
                        help="the demo agent, dynamic build (scripts/bench passes it)")
    parser.add_argument("--static-agent", type=Path, required=True,
                        help="the demo agent, static build with the pure-Go tags")
    options = parser.parse_args(argv)
    rounds = options.rounds or (2 if options.quick else 5)
    large_rounds = min(rounds, 3)
    # 15 s a variant: 200 starts of a 63 ms program (ffmpeg) too; at 6 s its medians moved
    # by more than the differences between the tools
    start_runs, start_budget = (40, 1.5) if options.quick else (200, 15.0)
    blocks = min(rounds, 5) if not options.quick else 3
    began = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="bundle-bench."))
    tag = versions_tag()
    lines = ["# Benchmarks", "",
             "Written by `./scripts/bench` (`benchmarks/bench.py`): bundle installed the way "
             "README says (non-editable `pip install` of the checkout, its console script), "
             "the peers from PyPI, each build a separate process under GNU time, in rounds "
             "with the tools' order rotating. Figures are min / median / max; ratios to the "
             "floor are taken within a round. \"no .pyc\": the same install with `pip install "
             "--no-compile`, run with PYTHONDONTWRITEBYTECODE=1 (this machine's default), so "
             "bundle and its dependencies are compiled at every start; plain `pip install` "
             "writes the .pyc files, and the other rows run with them. bundle's cache of "
             "compiled launchers (`XDG_CACHE_HOME`) starts empty: the run's first bundle build "
             "compiles the launcher, as on a fresh machine (in the max), and the later builds "
             "reuse it, as a machine's later builds do.", ""]
    lines += machine(options)
    try:
        only = set(options.programs.split(",")) if options.programs else None
        chosen = programs(work, options.agent, options.quick, not options.no_large, only)
        tools = make_tools(options, work)
        counts = {p.name: library_count(p.path) for p in chosen}
        builds = run_rounds(chosen, tools, work, rounds, large_rounds, options.max_minutes)
        points = options.growth_sizes or growth_sizes(
            QUICK_GROWTH_SIZES if options.quick else GROWTH_SIZES)
        growth = measure_growth(points, tools, work, rounds * GROWTH_ROUND_FACTOR,
                                options.max_minutes)
        lines += ["", f"Rounds: {rounds} ({large_rounds} for node and ffmpeg); a build over "
                  f"{SLOW_BUILD_SECONDS:.0f} s in its first round is measured once (n=1), one "
                  f"over {BUILD_TIMEOUT_SECONDS:.0f} s is stopped"
                  + (f"; a program's rounds after the first start only within "
                     f"--max-minutes {options.max_minutes:g} of the builds' start (n says how "
                     "many ran)" if options.max_minutes else "") + ". "
                  f"Start overhead: `PROGRAM {{--version|-version}}` by posix_spawn + wait, "
                  f"round-robin with the unbundled program, up to {start_runs} starts each "
                  f"(fewer for slow starts), as the difference of medians over {blocks} "
                  "blocks, each on a fresh extraction of every artifact and a fresh copy of the "
                  "program, every file then copied once more by the kernel (sendfile), so that "
                  "all sides' pages come into the page cache alike (the same bytes written by "
                  "GNU tar started up to 0.5 ms slower than a kernel copy). exodus, staticx "
                  "and the manual route have no direct start "
                  "(\"none\"; the manual route's program needs its wrapper's variable). "
                  "Direct start of bundle: `PREFIX/libexec/NAME`, what `bundle service` runs."]
        all_starts: dict[str, dict[str, StartResult]] = {}
        largest: dict[str, int] = {}
        for number, program in enumerate(chosen, 1):
            step(f"start overhead: {program.name}")
            base_ms, starts = measure_starts(program, tools, builds, work, start_runs, blocks,
                                             start_budget)
            all_starts[program.name] = starts
            tree = work / "trees" / program.name / program.name
            files = [p for p in tree.rglob("*") if p.is_file() and not p.is_symlink()]
            largest[program.name] = max(p.stat().st_size for p in files)
            lines += ["", f"## 1.{number} {program.name} ({counts[program.name]} libraries "
                      f"by ldd; bundle's artifact: {len(files)} files, "
                      f"{sum(p.stat().st_size for p in files) / 2**20:.1f} MiB) — {tag}", ""]
            lines += program_table(program, tools, builds, starts, base_ms)
        lines += ["", f"## Targets (issue 21) — {tag}", ""]
        lines += table(["target", "measured", "met"],
                       targets(chosen, tools, builds, all_starts, largest,
                               growth.ratio(GrowthPoint(1000, DEFAULT_LIBRARY_KIB))))
        interpreter = run_measured([str(options.bundle.parent / "python"), "-c",
                                    "import lief, bundler.build"])
        lines += ["", "What bounds peak RSS on small programs: the interpreter with LIEF and "
                  f"bundler.build imported peaks at {interpreter.max_rss_kib / 1024:.0f} MiB "
                  f"({interpreter.seconds:.2f} s)."]
        lines += growth_section(growth, tag)
        lines += kept_sections(options.out)
        bundle = str(options.bundle)
        step("sizes per format")
        lines += ["", f"## 2. Artifact sizes per format — {tag}", ""]
        lines += sizes_table(chosen, bundle, work, options.static_agent)
        step("bundle's launchers")
        hello = work / "hello"
        (work / "hello.c").write_text(HELLO_C)
        subprocess.run(["gcc", "-O2", "-o", str(hello), str(work / "hello.c")], check=True)
        runs = 100 if options.quick else 400
        starts_rows = (launcher_startup("hello", hello, ["--version"], bundle, work, runs,
                                        blocks)
                       + launcher_startup("myagent", work / "myagent", ["--version"], bundle,
                                          work, runs, blocks))
        lines += ["", f"## 3. bundle's launchers (`--version`, {runs} runs each, round robin, "
                  f"posix_spawn + wait; over unbundled by {blocks} blocks) — {tag}", ""]
        lines += table(["program", "how it is started", "median", "over unbundled (ms)"],
                       starts_rows)
        step("inspect")
        lines += ["", f"## 4. `bundle inspect` against `ld.so --list` (ms) — {tag}", ""]
        lines += table(["command", "ms"], inspect_rows(bundle, "/usr/bin/sqlite3",
                                                       10 if options.quick else 30))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    minutes = (time.monotonic() - began) / 60
    lines += ["", f"The run took {minutes:.1f} min: `{command_line(options)}`."]
    text = "\n".join(lines) + "\n"
    options.out.write_text(text)
    print(text)
    print(f"bench: wrote {options.out} in {minutes:.1f} min", file=sys.stderr)
    return 0


def command_line(options: argparse.Namespace) -> str:
    """The command a reader repeats (scripts/bench adds the installed tools' paths)."""
    words = ["./scripts/bench"]
    words += ["--quick"] if options.quick else []
    words += [f"--rounds {options.rounds}"] if options.rounds else []
    words += ["--no-large"] if options.no_large else []
    words += [f"--programs {options.programs}"] if options.programs else []
    words += [f"--max-minutes {options.max_minutes:g}"] if options.max_minutes else []
    if options.growth_sizes:
        words += ["--growth-sizes " + ",".join(
            str(p.count) if p.kib == DEFAULT_LIBRARY_KIB else f"{p.count}x{p.kib}"
            for p in options.growth_sizes)]
    return " ".join(words)


def step(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())

"""Benchmarks of bundle as a user installs it, against the peers a user would pick instead
(issues 8 and 21).

Run through ./scripts/bench, which installs everything: the package by a non-editable
`pip install` of the checkout into its own venv (README's "Install"), exodus and staticx
from PyPI into theirs, and builds the demo agent (tests/support/gobuild.py, cached); it
hands over their console scripts and the agent. This module measures only what it is
handed and imports nothing from tests/.

Every build is a separate process under GNU time (wall time, peak RSS), in rounds: each
round builds every program with every tool, the tools' order rotating from round to round,
so drift and other load hit all tools alike; ratios to the floor (`tar -cf - FILES | zstd
-T0 -9` of the files bundle's artifact holds) are taken within a round. Every figure is
shown as min / median / max. Prints the tables and writes BENCHMARKS.md (or --out FILE).
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
from measure import (  # a sibling module, not a package
    Spread,
    manual_route_script,
    overhead_blocks,
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


class Failed(Exception):
    """A measured command failed: the table shows it, the run goes on."""


def run_measured(argv: Sequence[str], env: dict[str, str] | None = None,
                 timeout: float | None = None) -> Sample:
    """Wall time and peak RSS of one run.

    The peak comes from GNU time (`%M`, the largest of the process and the children it
    waited for). Not from our own wait4: a child forked from this Python process starts
    with our RSS high-water mark, which exec carries over (measured: `tar | zstd` reported
    the benchmark's own 99 MiB). A run over `timeout` is stopped, with its whole process
    group (the tool's own children too), and counts as failed.
    """
    with tempfile.NamedTemporaryFile("r") as report:
        command = [GNU_TIME, "-f", "%M", "-o", report.name, *argv]
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
        peak = int(report.read().split()[-1])
    return Sample(elapsed, peak)


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
            return ([bundle, str(program.path), "-o", str(out), "--name", program.name,
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

    tools = [
        Tool("bundle", "`.tar.zst`, native launcher", "tar.zst",
             bundle_command(str(options.bundle), _env(PYTHONDONTWRITEBYTECODE=None)),
             bundle_unpack),
        Tool("bundle, no .pyc", "the same", "tar.zst",
             bundle_command(str(options.bundle_nopyc), _env(PYTHONDONTWRITEBYTECODE="1")),
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
               large_rounds: int, max_minutes: float | None) -> Builds:
    """Round 1 builds everything; a program's later rounds start only while the run is
    within --max-minutes (the tables then show the n each figure has)."""
    builds = Builds()
    began = time.monotonic()
    step("warm-up: a build of each program with bundle (page cache, .pyc), then the rest")
    for program in chosen:
        build_once(program, tools[0], work)
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
    """Every tool's default start (and direct start) against the program unbundled, in one
    round-robin loop; a variant slower than budget/runs seconds per start gets fewer cycles
    (at least 3 a block). Returns the unbundled median (ms) and the overheads."""
    variants: dict[str, list[str]] = {"unbundled": [str(program.path), *program.start_args]}
    failures: dict[str, str] = {}
    for tool in tools:
        key = (program.name, tool.name)
        if tool.unpack is None or key in builds.failures or key not in builds.sizes:
            continue
        place = work / "start" / program.name / tool.ending / str(len(variants))
        shutil.rmtree(place, ignore_errors=True)
        starts = tool.unpack(program, artifact_path(work, program, tool), place, work)
        for kind, argv in (("default", starts.default), ("direct", starts.direct)):
            if argv is not None:
                variants[f"{tool.name}|{kind}"] = [*argv, *program.start_args]
    allowed: dict[str, int] = {}
    for name, argv in list(variants.items()):  # warm-up, and how many cycles each gets
        try:
            spawn_seconds(argv)
            first = min(spawn_seconds(argv) for _ in range(2))
        except Failed as failure:
            failures[name.split("|")[0]] = str(failure)
            del variants[name]
            continue
        allowed[name] = max(2 * blocks, min(runs, int(budget / max(first, 1e-6))))
    allowed["unbundled"] = max(allowed.values())
    timings: dict[str, list[float]] = {name: [] for name in variants}
    for cycle in range(allowed["unbundled"]):
        for name, argv in variants.items():
            if cycle < allowed[name]:
                timings[name].append(spawn_seconds(argv))
    base = timings["unbundled"]
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
            spread([x * 1000 for x in overhead_blocks(base, default, blocks)]) if default
            else None,
            spread([x * 1000 for x in overhead_blocks(base, direct, blocks)]) if direct
            else None,
            len(default or direct or []))
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
            f"{' '.join(program.start_args)}`: median {base_ms:.2f} ms a start."]


# --- the targets of issue 21 ----------------------------------------------------------


def median_build(builds: Builds, program: str, tool: str) -> float | None:
    taken = builds.samples.get((program, tool))
    if not taken or (program, tool) in builds.failures:
        return None
    return statistics.median(s.seconds for s in taken.values())


def targets(chosen: list[Program], tools: list[Tool], builds: Builds,
            starts: dict[str, dict[str, StartResult]], largest: dict[str, int],
            ) -> list[list[str]]:
    """Each target against medians of this run; `no` says by how much."""
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
    rows.append(["1,000 libraries <= 2x the floor", "see the growth section", "-"])
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
    and elsewhere (loader start), native and sh; the env launcher."""
    place = work / f"launchers-{name}"
    shutil.rmtree(place, ignore_errors=True)
    variants: dict[str, list[str]] = {"unbundled": [str(program), *args]}
    for kind, extra in (("native", ["--launcher-type", "native"]),
                        ("sh", ["--launcher-type", "sh"]), ("env", ["--launcher", "env"])):
        prefix = place / f"{kind}-prefix" / name
        prefix.mkdir(parents=True)
        artifact = place / f"{name}-{kind}.tar"
        run_measured([bundle, str(program), "-o", str(artifact), "--prefix", str(prefix),
                      *extra])
        extract(artifact, prefix, strip=1)
        extract(artifact, place / f"{kind}-elsewhere")
        elsewhere = place / f"{kind}-elsewhere" / name / "bin" / name
        if kind == "native":
            variants["libexec/ directly at the prefix"] = [str(prefix / "libexec" / name), *args]
            variants["native launcher at the prefix (direct start)"] = [
                str(prefix / "bin" / name), *args]
            variants["native launcher elsewhere (loader start)"] = [str(elsewhere), *args]
        elif kind == "sh":
            variants["sh launcher at the prefix"] = [str(prefix / "bin" / name), *args]
            variants["sh launcher elsewhere"] = [str(elsewhere), *args]
        else:
            variants["env launcher elsewhere"] = [str(elsewhere), *args]
    timings: dict[str, list[float]] = {v: [] for v in variants}
    for argv in variants.values():  # warm the page cache and the dentries
        spawn_seconds(argv)
    for _ in range(runs):  # round robin: drift hits every variant alike
        for variant, argv in variants.items():
            timings[variant].append(spawn_seconds(argv))
    base = timings["unbundled"]
    rows = []
    for variant, values in timings.items():
        over = spread([x * 1000 for x in overhead_blocks(base, values, blocks)])
        rows.append([name, variant, f"{statistics.median(values) * 1000:.2f} ms",
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
    "growth": ["<!-- growth -->", "## Growth with the number of libraries", "",
               "(to be measured: build time against 10, 100 and 1,000 generated libraries)",
               "<!-- /growth -->"],
    "zstd": ["<!-- zstd -->", "## The zstd level curve", "",
             "(to be measured: time and size per zstd level on this machine)",
             "<!-- /zstd -->"],
}


def kept_sections(out: Path) -> list[str]:
    """The growth and zstd sections, measured by other means: kept from the file this run
    replaces (between their markers), else a placeholder to fill."""
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
                        help="2 rounds, short start loops, sqlite3, curl and the agent only")
    parser.add_argument("--rounds", type=int, help="rounds of builds (default 5, quick 2)")
    parser.add_argument("--no-large", action="store_true", help="skip node and ffmpeg")
    parser.add_argument("--max-minutes", type=float,
                        help="start no further round of builds after this many minutes")
    parser.add_argument("--programs", help="comma-separated: only these (sqlite3, curl, "
                        "myagent, node, ffmpeg)")
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
    start_runs, start_budget = (40, 1.5) if options.quick else (200, 6.0)
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
             "writes the .pyc files, and the other rows run with them.", ""]
    lines += machine(options)
    try:
        only = set(options.programs.split(",")) if options.programs else None
        chosen = programs(work, options.agent, options.quick, not options.no_large, only)
        tools = make_tools(options, work)
        counts = {p.name: library_count(p.path) for p in chosen}
        builds = run_rounds(chosen, tools, work, rounds, large_rounds, options.max_minutes)
        lines += ["", f"Rounds: {rounds} ({large_rounds} for node and ffmpeg); a build over "
                  f"{SLOW_BUILD_SECONDS:.0f} s in its first round is measured once (n=1), one "
                  f"over {BUILD_TIMEOUT_SECONDS:.0f} s is stopped"
                  + (f"; a program's rounds after the first start only within "
                     f"--max-minutes {options.max_minutes:g} of the builds' start (n says how "
                     "many ran)" if options.max_minutes else "") + ". "
                  f"Start overhead: `PROGRAM {{--version|-version}}` by posix_spawn + wait, "
                  f"round-robin with the unbundled program, up to {start_runs} starts each "
                  f"(fewer for slow starts), as the difference of medians over {blocks} "
                  "blocks. exodus, staticx and the manual route have no direct start "
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
                       targets(chosen, tools, builds, all_starts, largest))
        interpreter = run_measured([str(options.bundle.parent / "python"), "-c",
                                    "import lief, bundler.build"])
        lines += ["", "What bounds peak RSS on small programs: the interpreter with LIEF and "
                  f"bundler.build imported peaks at {interpreter.max_rss_kib / 1024:.0f} MiB "
                  f"({interpreter.seconds:.2f} s)."]
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
    return " ".join(words)


def step(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())

"""Benchmarks of bundle against the floors it can be compared with (issue 8).

Run through ./scripts/bench, which installs what is needed and builds the demo agent (the
Go builds of tests/support/gobuild.py, cached) to hand it over as --agent/--static-agent:
this module measures the programs it is given and imports nothing from tests/. Every figure
is a median over repeated runs on a warm page cache, and every ratio is computed from
figures of the same run. Prints the tables and writes BENCHMARKS.md (or --out FILE).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bundler.archive import ZSTD_LEVEL  # the default level, which the floor is run at

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
BUNDLE = [PYTHON, "-m", "bundler"]
HELLO_C = r"""
#include <stdio.h>
int main(int argc, char **argv) { (void)argc; (void)argv; puts("hello 1.0"); return 0; }
"""


@dataclass(frozen=True)
class Sample:
    seconds: float
    max_rss_kib: int


GNU_TIME = "/usr/bin/time"


def run_measured(argv: Sequence[str], *, stdout=subprocess.DEVNULL) -> Sample:
    """Wall time and peak RSS of one run.

    The peak comes from GNU time (`%M`, the largest of the process and the children it
    waited for). Not from our own wait4: a child forked from this Python process starts
    with our RSS high-water mark, which exec carries over (measured: `tar | zstd` reported
    the benchmark's own 99 MiB).
    """
    with tempfile.NamedTemporaryFile("r") as report:
        command = [GNU_TIME, "-f", "%M", "-o", report.name, *argv]
        started = time.perf_counter()
        process = subprocess.run(command, stdout=stdout, stderr=subprocess.PIPE)
        elapsed = time.perf_counter() - started
        if process.returncode != 0:
            raise SystemExit(f"bench: {' '.join(argv)} failed ({process.returncode}): "
                             f"{process.stderr.decode(errors='replace')}")
        peak = int(report.read().split()[-1])
    return Sample(elapsed, peak)


def median_of(samples: list[Sample]) -> Sample:
    return Sample(statistics.median(s.seconds for s in samples),
                  int(statistics.median(s.max_rss_kib for s in samples)))


def spawn_seconds(argv: Sequence[str]) -> float:
    """One start of a short program, as a service manager would: fork+exec+wait."""
    with open(os.devnull, "wb") as null:
        started = time.perf_counter()
        pid = os.posix_spawn(argv[0], list(argv), os.environ,
                             file_actions=[(os.POSIX_SPAWN_DUP2, null.fileno(), 1)])
        _, status = os.waitpid(pid, 0)
        elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"bench: {' '.join(argv)} exited {status}")
    return elapsed


# --- the programs --------------------------------------------------------------------


def programs(work: Path, with_large: bool, dynamic_agent: Path) -> dict[str, Path]:
    """sqlite3, curl, the demo agent (dynamic Go CGO) and a large program (node)."""
    chosen = {"sqlite3": Path("/usr/bin/sqlite3"), "curl": Path("/usr/bin/curl")}
    agent = work / "myagent"
    shutil.copyfile(dynamic_agent, agent)
    agent.chmod(0o755)
    chosen["myagent"] = agent
    node = shutil.which("node") or shutil.which("nodejs")
    if with_large and node:
        chosen["node"] = Path(os.path.realpath(node))
    return chosen


def static_agent(work: Path, build: Path) -> Path:
    path = work / "myagent-static"
    shutil.copyfile(build, path)
    path.chmod(0o755)
    return path


# --- 1. bundle time and memory against tar | zstd --------------------------------------


@dataclass(frozen=True)
class BundleRow:
    name: str
    input_mib: float
    files: int
    raw_mib: float
    bundle: Sample
    floor: Sample

    @property
    def ratio(self) -> float:
        return self.bundle.seconds / self.floor.seconds


def bundle_times(name: str, program: Path, work: Path, runs: int) -> BundleRow:
    out = work / f"{name}.tar.zst"
    command = [*BUNDLE, str(program), "-o", str(out), "--name", name]
    run_measured(command)  # warm-up: page cache, .pyc files
    samples = [run_measured(command) for _ in range(runs)]
    tree = work / f"{name}-tree"
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir()
    with _zst(out) as tar:
        tar.extractall(tree, filter="tar")
    files = [p for p in (tree / name).rglob("*") if p.is_file() and not p.is_symlink()]
    raw = sum(p.stat().st_size for p in files)
    floor_out = work / f"{name}.floor.tar.zst"
    pipeline = (f"tar -cf - -C {shlex_quote(str(tree))} {shlex_quote(name)} | "
                f"zstd -T0 -{ZSTD_LEVEL} -q -c > {shlex_quote(str(floor_out))}")
    floor = ["bash", "-c", f"set -o pipefail; {pipeline}"]
    run_measured(floor)
    floors = [run_measured(floor) for _ in range(runs)]
    return BundleRow(name, program.stat().st_size / 2**20, len(files), raw / 2**20,
                     median_of(samples), median_of(floors))


def _zst(path: Path) -> tarfile.TarFile:
    import io

    import zstandard

    with path.open("rb") as raw:
        data = zstandard.ZstdDecompressor().stream_reader(raw).read()
    return tarfile.open(fileobj=io.BytesIO(data), mode="r:")


def shlex_quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


# --- 2. sizes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SizeRow:
    name: str
    raw: int
    zst: int
    gz: int
    xz: int
    static_raw: int | None
    static_zst: int | None


def sizes(name: str, program: Path, work: Path, static: Path | None) -> SizeRow:
    result = {}
    for ending in ("tar.zst", "tar.gz", "tar.xz"):
        out = work / f"{name}.size.{ending}"
        run_measured([*BUNDLE, str(program), "-o", str(out), "--name", name])
        result[ending] = out.stat().st_size
    raw = sum(p.stat().st_size for p in (work / f"{name}-tree" / name).rglob("*")
              if p.is_file() and not p.is_symlink())
    static_raw = static_zst = None
    if static is not None:
        import zstandard

        data = static.read_bytes()
        static_raw = len(data)
        static_zst = len(zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(data))
    return SizeRow(name, raw, result["tar.zst"], result["tar.gz"], result["tar.xz"],
                   static_raw, static_zst)


# --- 3. start-up ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StartRow:
    program: str
    variant: str
    median_ms: float
    overhead_ms: float


def startup(name: str, program: Path, args: list[str], work: Path, runs: int,
            ) -> list[StartRow]:
    """Unbundled; libexec/ started directly at the prefix; the launcher at the prefix
    (direct start) and elsewhere (loader start), native (the default where a compiler is)
    and the sh script; the env launcher."""
    place = work / f"start-{name}"
    shutil.rmtree(place, ignore_errors=True)
    prefix = place / "prefix" / name
    prefix.mkdir(parents=True)
    artifact = place / f"{name}.tar"
    run_measured([*BUNDLE, str(program), "-o", str(artifact), "--prefix", str(prefix)])
    subprocess.run(["tar", "-xf", str(artifact), "-C", str(prefix), "--strip-components=1"],
                   check=True)
    elsewhere = place / "elsewhere"
    elsewhere.mkdir()
    subprocess.run(["tar", "-xf", str(artifact), "-C", str(elsewhere)], check=True)
    sh_artifact = place / f"{name}-sh.tar"
    sh_prefix = place / "sh-prefix" / name
    sh_prefix.mkdir(parents=True)
    run_measured([*BUNDLE, str(program), "-o", str(sh_artifact), "--prefix", str(sh_prefix),
                  "--launcher-type", "sh"])
    subprocess.run(["tar", "-xf", str(sh_artifact), "-C", str(sh_prefix),
                    "--strip-components=1"], check=True)
    sh_place = place / "sh-elsewhere"
    sh_place.mkdir()
    subprocess.run(["tar", "-xf", str(sh_artifact), "-C", str(sh_place)], check=True)
    env_artifact = place / f"{name}-env.tar"
    run_measured([*BUNDLE, str(program), "-o", str(env_artifact), "--launcher", "env"])
    env_place = place / "env"
    env_place.mkdir()
    subprocess.run(["tar", "-xf", str(env_artifact), "-C", str(env_place)], check=True)
    variants = {
        "unbundled": [str(program), *args],
        "libexec/ directly at the prefix": [str(prefix / "libexec" / name), *args],
        "launcher at the prefix (direct start)": [str(prefix / "bin" / name), *args],
        "launcher elsewhere (loader start)": [str(elsewhere / name / "bin" / name), *args],
        "sh launcher at the prefix": [str(sh_prefix / "bin" / name), *args],
        "sh launcher elsewhere": [str(sh_place / name / "bin" / name), *args],
        "env launcher elsewhere": [str(env_place / name / "bin" / name), *args],
    }
    timings: dict[str, list[float]] = {v: [] for v in variants}
    for argv in variants.values():  # warm the page cache and the dentries
        spawn_seconds(argv)
    for _ in range(runs):  # round robin: drift hits every variant alike
        for variant, argv in variants.items():
            timings[variant].append(spawn_seconds(argv))
    base = statistics.median(timings["unbundled"]) * 1000
    return [StartRow(name, v, statistics.median(t) * 1000,
                     statistics.median(t) * 1000 - base) for v, t in timings.items()]


# --- 4. inspect against ld.so --list ------------------------------------------------------


@dataclass(frozen=True)
class InspectRow:
    what: str
    median_ms: float


def inspect_times(target: str, runs: int) -> list[InspectRow]:
    loader = os.path.realpath("/lib64/ld-linux-x86-64.so.2")
    commands: dict[str, list[str]] = {
        f"ld.so --list {target}": [loader, "--list", target],
        "python -I -S -c pass (interpreter floor)": [PYTHON, "-I", "-S", "-c", "pass"],
        "python -c 'import bundler.cli' (imports)": [PYTHON, "-c", "import bundler.cli"],
        f"bundle inspect {target}": [*BUNDLE, "inspect", target],
    }
    timings: dict[str, list[float]] = {what: [] for what in commands}
    for argv in commands.values():
        spawn_seconds(argv)
    for _ in range(runs):  # round robin, spawned directly (no GNU time in between)
        for what, argv in commands.items():
            timings[what].append(spawn_seconds(argv))
    return [InspectRow(what, statistics.median(t) * 1000) for what, t in timings.items()]


# --- the report ------------------------------------------------------------------------------


def machine() -> list[str]:
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
    from importlib import metadata

    versions = {}
    for package in ("lief", "zstandard", "pyelftools", "click"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "missing"
    zstd = subprocess.run(["zstd", "--version"], capture_output=True, text=True).stdout.strip()
    return [
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- machine: {cpu}, {os.cpu_count()} cores, {int(memory) / 2**20:.1f} GiB, "
        f"Linux {platform.release()}, {distro}",
        f"- python {platform.python_version()}; " + ", ".join(
            f"{k} {v}" for k, v in versions.items()) + f"; {zstd}",
        f"- /bin/sh is {os.path.realpath('/bin/sh')}",
    ]


def table(header: Sequence[str], rows: list[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def mib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:.1f} MiB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(REPO / "BENCHMARKS.md"))
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--no-large", action="store_true", help="skip the large program")
    parser.add_argument("--agent", type=Path, required=True,
                        help="the demo agent, dynamic build (scripts/bench passes it)")
    parser.add_argument("--static-agent", type=Path, required=True,
                        help="the demo agent, static build with the pure-Go tags")
    options = parser.parse_args(argv)
    reps = 3 if options.quick else 5
    start_runs = 100 if options.quick else 400
    work = Path(tempfile.mkdtemp(prefix="bundle-bench."))
    lines = ["# Benchmarks", "", "Written by `./scripts/bench` (`benchmarks/bench.py`); "
             "medians over repeated runs, warm page cache, ratios from the same run.", ""]
    lines += machine()
    try:
        chosen = programs(work, not options.no_large, options.agent)
        static = static_agent(work, options.static_agent)
        step("1. bundle time and peak memory against tar | zstd")
        rows = [bundle_times(n, p, work, 3 if n == "node" else reps) for n, p in chosen.items()]
        lines += ["", f"## 1. Bundle time and peak memory (default `.tar.zst`, zstd level "
                  f"{ZSTD_LEVEL}) against the floor `tar -cf - FILES | zstd -T0 -{ZSTD_LEVEL}`",
                  ""]
        lines += table(["program", "input", "files", "raw bundle", "bundle time", "peak RSS",
                        "floor time", "floor RSS", "ratio"],
                       [[r.name, f"{r.input_mib:.1f} MiB", str(r.files), f"{r.raw_mib:.1f} MiB",
                         f"{r.bundle.seconds:.2f} s", f"{r.bundle.max_rss_kib / 1024:.0f} MiB",
                         f"{r.floor.seconds:.2f} s", f"{r.floor.max_rss_kib / 1024:.0f} MiB",
                         f"{r.ratio:.2f}x"] for r in rows])
        step("2. sizes")
        size_rows = [sizes(n, p, work, static if n == "myagent" else None)
                     for n, p in chosen.items()]
        lines += ["", "## 2. Artifact sizes", ""]
        lines += table(["program", "raw", ".tar.zst", ".tar.gz", ".tar.xz", "static build",
                        "static, zstd"],
                       [[r.name, mib(r.raw), mib(r.zst), mib(r.gz), mib(r.xz),
                         mib(r.static_raw), mib(r.static_zst)] for r in size_rows])
        step("3. start-up")
        hello = work / "hello"
        (work / "hello.c").write_text(HELLO_C)
        subprocess.run(["gcc", "-O2", "-o", str(hello), str(work / "hello.c")], check=True)
        starts = (startup("hello", hello, ["--version"], work, start_runs)
                  + startup("myagent", chosen["myagent"], ["--version"], work, start_runs))
        lines += ["", f"## 3. Start-up (`--version`, {start_runs} runs each, round robin, "
                  "posix_spawn + wait)", ""]
        lines += table(["program", "how it is started", "median", "over unbundled"],
                       [[s.program, s.variant, f"{s.median_ms:.2f} ms",
                         f"{s.overhead_ms:+.2f} ms"] for s in starts])
        step("4. inspect")
        inspected = inspect_times("/usr/bin/sqlite3", 10 if options.quick else 30)
        lines += ["", "## 4. `bundle inspect` against `ld.so --list`", ""]
        lines += table(["command", "median"], [[r.what, f"{r.median_ms:.1f} ms"]
                                               for r in inspected])
        lines += ["", "## Targets", ""]
        lines += table(["target", "measured", "met"], targets(rows, starts, inspected))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = "\n".join(lines) + "\n"
    Path(options.out).write_text(text)
    print(text)
    print(f"bench: wrote {options.out}", file=sys.stderr)
    return 0


def targets(rows: list[BundleRow], starts: list[StartRow],
            inspected: list[InspectRow]) -> list[list[str]]:
    by_name = {r.name: r for r in rows}
    result = []
    if "node" in by_name:
        large = by_name["node"]
        result.append(["bundle of the large program <= 1.5x the floor",
                       f"{large.ratio:.2f}x ({large.bundle.seconds:.2f} s vs "
                       f"{large.floor.seconds:.2f} s)", yes(large.ratio <= 1.5)])
    sqlite = by_name["sqlite3"]
    result.append(["bundle of sqlite3 <= 0.5 s", f"{sqlite.bundle.seconds:.2f} s",
                   yes(sqlite.bundle.seconds <= 0.5)])
    for row in starts:
        if row.variant.startswith("launcher"):
            result.append([f"{row.program}: {row.variant} <= 1.0 ms over unbundled",
                           f"{row.overhead_ms:+.2f} ms", yes(row.overhead_ms <= 1.0)])
        if row.variant.startswith("libexec/"):
            result.append([f"{row.program}: libexec/ at the prefix indistinguishable from "
                           "unbundled (within 0.1 ms)", f"{row.overhead_ms:+.2f} ms",
                           yes(abs(row.overhead_ms) <= 0.1)])
    loader_list = inspected[0].median_ms
    inspect = inspected[-1].median_ms
    result.append(["bundle inspect sqlite3 <= 3x ld.so --list",
                   f"{inspect / loader_list:.0f}x ({inspect:.1f} ms vs {loader_list:.2f} ms)",
                   yes(inspect <= 3 * loader_list)])
    return result


def yes(flag: bool) -> str:
    return "yes" if flag else "**no**"


def step(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())

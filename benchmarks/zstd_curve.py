"""The zstd level curve of real artifacts: compression time and size per level (issue 21).

Each artifact directory (`bundle PROGRAM -o DIR/`) is written once as the same tar stream
the archive writer makes (sorted entries, one mtime), held in memory, then compressed at
every level with the archive writer's own threading rule (archive.MULTITHREAD_FROM), the
best of `--rounds` runs taken per level (the least disturbed by the machine). Prints a
Markdown table: per artifact, size as a share of level 1's output and the time, so the
trade of each level is read off directly; `--out FILE` also writes it.

    python benchmarks/zstd_curve.py DIR/sqlite3 DIR/node ... [--levels 1,3,6,9,12,19]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tarfile
import time
from pathlib import Path

import zstandard

from bundler.archive import MULTITHREAD_FROM, ZSTD_LEVEL

DEFAULT_LEVELS = (1, 3, 5, 6, 7, 9, 12, 15, 19)


def tar_stream(top: Path) -> bytes:
    """The artifact's files as one tar stream, in the archive writer's order."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w|", format=tarfile.GNU_FORMAT) as tar:
        for path in sorted(p for p in top.rglob("*")):
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(top.parent)))
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if info.isreg():
                with open(path, "rb") as handle:
                    tar.addfile(info, handle)
            else:
                tar.addfile(info)
    return buffer.getvalue()


def compress_seconds(data: bytes, level: int, rounds: int) -> tuple[float, int]:
    """The best time of `rounds` compressions at `level`, and the output's size."""
    threads = -1 if len(data) >= MULTITHREAD_FROM else 0
    best, size = float("inf"), 0
    for _ in range(rounds):
        compressor = zstandard.ZstdCompressor(level=level, threads=threads,
                                              write_checksum=True)
        started = time.perf_counter()
        size = len(compressor.compress(data))
        best = min(best, time.perf_counter() - started)
    return best, size


def curve(tops: list[Path], levels: tuple[int, ...], rounds: int) -> str:
    lines = ["| artifact | raw | " + " | ".join(f"level {n}" for n in levels) + " |",
             "|---|---|" + "---|" * len(levels)]
    for top in tops:
        data = tar_stream(top)
        cells = []
        for level in levels:
            seconds, size = compress_seconds(data, level, rounds)
            mark = "**" if level == ZSTD_LEVEL else ""
            cells.append(f"{mark}{size / (1 << 20):.1f} MiB, {seconds:.2f} s{mark}")
        lines.append(f"| {top.name} | {len(data) / (1 << 20):.1f} MiB | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tops", nargs="+", type=Path, help="artifact top directories")
    parser.add_argument("--levels", default=",".join(map(str, DEFAULT_LEVELS)))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    levels = tuple(int(n) for n in args.levels.split(","))
    table = (f"zstandard {zstandard.__version__} (libzstd {zstandard.ZSTD_VERSION}), "
             f"{os.cpu_count()} cores, best of {args.rounds}; the default level in bold\n\n"
             + curve(args.tops, levels, args.rounds))
    sys.stdout.write(table)
    if args.out:
        args.out.write_text(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

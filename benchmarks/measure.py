"""Pure helpers of the benchmark (benchmarks/bench.py): spreads, ratios from the same round,
start overheads by blocks, ldd's output, the manual route's script, and the sections of
BENCHMARKS.md other people's measurements fill.

Pure so that tests/unit/test_bench_measure.py checks them in well under a second; the
benchmark itself is never asserted on in the test suite (timings depend on the machine).
"""

from __future__ import annotations

import re
import shlex
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath


@dataclass(frozen=True)
class Spread:
    """min / median / max of repeated measurements: a reader sees the noise, not one draw."""

    low: float
    median: float
    high: float
    count: int

    def text(self, fmt: str = "{:.2f}", signed: bool = False) -> str:
        """`low / median / high` (one number when there was one measurement)."""
        show = (lambda v: ("+" if v >= 0 else "") + fmt.format(v)) if signed else fmt.format
        if self.count == 1:
            return f"{show(self.median)} (n=1)"
        return f"{show(self.low)} / {show(self.median)} / {show(self.high)}"


def spread(values: Sequence[float]) -> Spread:
    if not values:
        raise ValueError("no measurements")
    return Spread(min(values), statistics.median(values), max(values), len(values))


def round_ratios(times: dict[int, float], floor: dict[int, float]) -> list[float]:
    """time / floor of each round both were measured in (round -> seconds): a ratio from
    figures of the same round, so drift between rounds cancels instead of adding up."""
    return [times[r] / floor[r] for r in sorted(times) if r in floor and floor[r] > 0]


def block_overheads(base: Sequence[Sequence[float]], variant: Sequence[Sequence[float]],
                    ) -> list[float]:
    """Start overhead of `variant` over `base`, one per block (seconds per start; block b of
    each is a list of starts, one per round-robin cycle, cycle i of both taken back to back;
    `variant` may stop a block earlier than `base`, which is then taken over the same
    cycles): the difference of their medians. The spread of these is that of a repeated
    measurement (each block on fresh files), not the noise of single starts."""
    if len(variant) > len(base):
        raise ValueError("the variant has more blocks than the base")
    result = []
    for own, theirs in zip(variant, base):
        if not own:
            continue
        if len(own) > len(theirs):
            raise ValueError("the variant has more cycles in a block than the base")
        result.append(statistics.median(own) - statistics.median(theirs[:len(own)]))
    return result


_ARROW = re.compile(r"^\s*(\S+)\s+=>\s+(\S+)\s+\(0x[0-9a-f]+\)\s*$")
_DIRECT = re.compile(r"^\s*(/\S+)\s+\(0x[0-9a-f]+\)\s*$")
_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found\s*$")


def parse_ldd(text: str) -> list[str]:
    """The files ldd names (`libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)` and the
    loader's own `/lib64/ld-linux-x86-64.so.2 (0x...)`), in order, without duplicates;
    linux-vdso has no file. A library ldd cannot find is an error: a manual route without
    it would not start."""
    files: list[str] = []
    for line in text.splitlines():
        missing = _NOT_FOUND.match(line)
        if missing:
            raise ValueError(f"ldd: {missing.group(1)} not found")
        arrow = _ARROW.match(line)
        path = arrow.group(2) if arrow else (m.group(1) if (m := _DIRECT.match(line)) else None)
        if path and path.startswith("/") and path not in files:
            files.append(path)
    return files


def manual_route_script(program: str, name: str, out: str, stage: str, level: int) -> str:
    """What someone does by hand instead of `bundle`: copy the program and what ldd lists,
    write an LD_LIBRARY_PATH wrapper, `tar | zstd`. The wrapper finds its directory with
    `${0%/*}` (no readlink/dirname processes: the careful way) and the program runs under the
    host's loader (its PT_INTERP) with the copied libraries: what this route gives, and why it
    breaks where the host's glibc is older than the copied one."""
    top = PurePosixPath(stage) / name
    q = shlex.quote
    wrapper = (
        "#!/bin/sh\n"
        'here="${0%/*}/.."\n'
        f'LD_LIBRARY_PATH="$here/lib${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}" '
        f'exec "$here/lib/{name}" "$@"\n'
    )
    return "\n".join([
        "set -euo pipefail",
        f"rm -rf {q(str(top))}",
        f"mkdir -p {q(str(top / 'bin'))} {q(str(top / 'lib'))}",
        f"cp -L {q(program)} {q(str(top / 'lib' / name))}",
        f"ldd {q(program)} | awk '$2 == \"=>\" && $3 ~ /^\\// {{print $3}} "
        f"$1 ~ /^\\// {{print $1}}' | sort -u | xargs -r cp -L -t {q(str(top / 'lib'))}",
        f"cat > {q(str(top / 'bin' / name))} <<'WRAPPER'",
        wrapper + "WRAPPER",
        f"chmod 755 {q(str(top / 'bin' / name))}",
        f"tar -C {q(stage)} -cf - {q(name)} | zstd -T0 -{level} -q -c > {q(out)}",
        "",
    ])


def preserved_section(old_text: str, key: str) -> list[str] | None:
    """The lines between `<!-- KEY -->` and `<!-- /KEY -->` of the BENCHMARKS.md a run is
    about to replace (markers included), or None. A section measured by other means (the
    zstd level curve, benchmarks/zstd_curve.py) is kept across runs of ./scripts/bench
    instead of being wiped; it says its own date and machine."""
    start, end = f"<!-- {key} -->", f"<!-- /{key} -->"
    lines = old_text.splitlines()
    if start not in lines or end not in lines:
        return None
    first, last = lines.index(start), lines.index(end)
    return lines[first:last + 1] if first < last else None

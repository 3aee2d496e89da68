"""The benchmark's pure helpers (benchmarks/measure.py): spreads, same-round ratios, start
overheads by blocks, ldd's output, the manual route's script (run for real on /usr/bin/env),
and the sections of BENCHMARKS.md that a run keeps. Nothing here times anything."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from support.needs import need_tool

MEASURE = Path(__file__).resolve().parents[2] / "benchmarks" / "measure.py"


def _load():
    spec = importlib.util.spec_from_file_location("bench_measure", MEASURE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


measure = _load()


def test_spread_is_min_median_max_and_says_when_there_was_one_draw():
    s = measure.spread([3.0, 1.0, 2.0, 10.0])
    assert (s.low, s.median, s.high, s.count) == (1.0, 2.5, 10.0, 4)
    assert s.text() == "1.00 / 2.50 / 10.00"
    assert measure.spread([0.5]).text() == "0.50 (n=1)"
    assert measure.spread([-0.25, 0.5, 1.0]).text("{:.2f}", signed=True) == \
        "-0.25 / +0.50 / +1.00"
    with pytest.raises(ValueError):
        measure.spread([])


def test_ratios_pair_figures_of_the_same_round_only():
    tool = {0: 2.0, 1: 3.0, 2: 9.0}
    floor = {0: 1.0, 1: 1.5, 3: 1.0}
    assert measure.round_ratios(tool, floor) == [2.0, 2.0]


def test_block_overheads_are_differences_of_medians_over_the_same_cycles_of_each_block():
    base = [[1.0, 1.0, 1.0, 9.0], [2.0, 2.0, 2.0, 2.0], [5.0, 5.0]]
    variant = [[1.5, 1.5, 1.5], [2.25, 2.25, 2.25, 2.25]]  # 3 cycles in block 0, no block 2
    assert measure.block_overheads(base, variant) == [0.5, 0.25]
    assert measure.block_overheads(base, [[], [3.0]]) == [1.0]  # an empty block: none
    with pytest.raises(ValueError):
        measure.block_overheads(variant, base)  # more blocks than the base
    with pytest.raises(ValueError):
        measure.block_overheads([[1.0]], [[1.0, 2.0]])  # more cycles than the base's block


LDD = """\
\tlinux-vdso.so.1 (0x00007ffc8a5f3000)
\tlibz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x00007f0e1c0a0000)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f0e1be00000)
\tlibz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x00007f0e1c0a0000)
\t/lib64/ld-linux-x86-64.so.2 (0x00007f0e1c0e0000)
"""


def test_parse_ldd_names_files_once_in_order_without_the_vdso():
    assert measure.parse_ldd(LDD) == ["/lib/x86_64-linux-gnu/libz.so.1",
                                      "/lib/x86_64-linux-gnu/libc.so.6",
                                      "/lib64/ld-linux-x86-64.so.2"]
    assert measure.parse_ldd("\tnot a dynamic executable\n") == []
    with pytest.raises(ValueError, match=r"libgone\.so\.3 not found"):
        measure.parse_ldd("\tlibgone.so.3 => not found\n" + LDD)


def test_parse_ldd_reads_this_hosts_ldd():
    need_tool("ldd")
    out = subprocess.run(["ldd", "/usr/bin/env"], capture_output=True, text=True, check=True)
    files = measure.parse_ldd(out.stdout)
    assert any(Path(f).name == "libc.so.6" for f in files)
    assert all(Path(f).is_file() for f in files)


def test_the_manual_route_copies_the_closure_and_its_wrapper_sets_the_library_path(
        tmp_path: Path):
    for tool in ("bash", "ldd", "tar", "zstd"):
        need_tool(tool)
    out = tmp_path / "env.tar.zst"
    script = measure.manual_route_script("/usr/bin/env", "env", str(out), str(tmp_path / "st"), 3)
    subprocess.run(["bash", "-c", script], check=True)
    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    subprocess.run(["tar", "--zstd", "-xf", str(out), "-C", str(unpacked)], check=True)
    top = unpacked / "env"
    assert (top / "lib" / "libc.so.6").is_file()
    shown = subprocess.run([str(top / "bin" / "env")], capture_output=True, text=True,
                           check=True, env={"LD_LIBRARY_PATH": "/elsewhere"}).stdout
    assert f"LD_LIBRARY_PATH={top}/bin/../lib:/elsewhere" in shown.splitlines()


def test_marked_sections_are_kept_and_unmarked_ones_are_not():
    old = "# B\n\n<!-- growth -->\n## Growth\n| a |\n<!-- /growth -->\n\ntail\n"
    assert measure.preserved_section(old, "growth") == [
        "<!-- growth -->", "## Growth", "| a |", "<!-- /growth -->"]
    assert measure.preserved_section(old, "zstd") is None
    assert measure.preserved_section("<!-- zstd -->\nno end\n", "zstd") is None
    assert measure.preserved_section("<!-- /zstd -->\n<!-- zstd -->\n", "zstd") is None

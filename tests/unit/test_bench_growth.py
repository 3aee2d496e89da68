"""The growth rows' decisions in the benchmark (benchmarks/bench.py): which closures a
--growth-sizes names, which row each row's growth is taken from, and the sentence that says
whether the growth is linear. Nothing here times anything: the figures are made up."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench.py"


def _load():
    spec = importlib.util.spec_from_file_location("bench_growth", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


bench = _load()
Point = bench.GrowthPoint


def test_growth_sizes_are_libraries_of_64_kib_or_n_x_kib():
    assert bench.growth_sizes(bench.GROWTH_SIZES) == (
        Point(10, 64), Point(100, 64), Point(1000, 64), Point(100, 512))
    assert bench.growth_sizes(" 10, 20x128") == (Point(10, 64), Point(20, 128))
    assert Point(1000, 64).label == "1,000 x 64 KiB"
    assert Point(100, 512).slug == "closure-100x512k"


@pytest.mark.parametrize("text", ["10,", "x64", "10x", "0", "10x0", "-5", "ten", "10,10"])
def test_growth_sizes_refuse_what_names_no_closure_or_one_twice(text):
    with pytest.raises(argparse.ArgumentTypeError):
        bench.growth_sizes(text)


def test_each_row_grows_from_the_row_above_with_the_same_data_else_the_same_count():
    points = bench.growth_sizes(bench.GROWTH_SIZES)
    assert bench.growth_references(points) == {
        Point(100, 64): Point(10, 64),
        Point(1000, 64): Point(100, 64),
        Point(100, 512): Point(100, 64),  # per MiB, not per library
    }
    assert bench.growth_references([Point(100, 512), Point(10, 64)]) == {}


def test_growth_per_unit_is_milliseconds_per_unit_added():
    assert bench.per_unit_ms(1.0, 1.9, 10, 100) == pytest.approx(10.0)
    assert bench.per_unit_ms(2.0, 1.1, 10, 100) == pytest.approx(-10.0)


def _step(start: int, end: int, cpu: float, wall: float = 1.0, floor: float = 2.5,
          noise: float = 0.0) -> object:
    rise = cpu * (end - start) / 1000
    return bench.GrowthStep(Point(start, 64), Point(end, 64), "library", wall, cpu, floor,
                            rise, noise)


def test_a_constant_cost_per_library_is_linear():
    sentence = bench.linearity_sentence([_step(10, 100, 6.4), _step(100, 1000, 8.8)])
    assert sentence.startswith("Growth with the number of libraries is linear:")
    assert "6.40 ms of CPU from 10 to 100 libraries and 8.80 ms from 100 to 1,000" \
        in sentence
    assert "1.38x the first" in sentence
    assert "noise" not in sentence


def test_the_work_decides_not_the_wall_time_a_fixed_chain_holds_up():
    """From 10 to 100 libraries a small build's wall time hardly rises (the patch worker's
    chain bounds it) while its CPU does: linear by the work, whatever the wall says."""
    sentence = bench.linearity_sentence([_step(10, 100, 3.5, wall=0.1),
                                         _step(100, 1000, 3.6, wall=2.1)])
    assert "is linear:" in sentence and "1.03x the first" in sentence
    assert "(wall time: 0.10 and 2.10 ms;" in sentence
    steep = bench.linearity_sentence([_step(10, 100, 3.5, wall=2.0),
                                      _step(100, 1000, 9.0, wall=2.0)])
    assert "is **faster than linear**" in steep


def test_a_first_step_that_rises_less_than_its_rows_spread_is_said_to_be_noise():
    sentence = bench.linearity_sentence([_step(10, 100, 2.0, noise=0.4),
                                         _step(100, 1000, 3.5)])
    assert "is **faster than linear**" in sentence
    assert ("rise in CPU (0.18 s) is smaller than the spread of its rows' CPU times "
            "(0.40 s)") in sentence


def test_a_cost_per_library_that_grows_with_the_closure_is_not_linear():
    sentence = bench.linearity_sentence([_step(10, 100, 5.0), _step(100, 1000, 50.0)])
    assert "is **faster than linear**" in sentence and "10.00x" in sentence


def test_noise_in_the_first_step_or_a_single_step_decides_nothing():
    noisy = bench.linearity_sentence([_step(10, 100, -3.0), _step(100, 1000, 8.0)])
    assert noisy.startswith("Linear or not cannot be told")
    assert "linear:" not in noisy
    single = bench.linearity_sentence([_step(10, 100, 6.0)])
    assert single.startswith("Whether the growth is linear takes two steps")


def test_a_step_says_its_three_slopes_and_where_it_is_from():
    step = bench.GrowthStep(Point(100, 64), Point(100, 512), "MiB", 60.0, 45.5, 30.25, 2.6,
                            0.1)
    assert step.text() == "+60.00 / +45.50 / +30.25 ms per MiB (from 100 x 64 KiB)"

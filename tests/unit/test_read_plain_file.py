"""tree.read_plain_file reads what fstat says and then to the end: every byte up to the limit
and one more (so a caller knows the file is longer), whatever the size fstat gave, a /proc
file's 0 included; never through a final symlink, never from a FIFO."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bundler.tree import NotRegularFile, read_plain_file


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, 64 * 1024, 64 * 1024 + 1, 300_001])
@pytest.mark.parametrize("limit", [0, 1, 4096, 64 * 1024, 1 << 20])
def test_every_byte_to_the_limit_and_one_more(tmp_path: Path, size: int, limit: int):
    data = os.urandom(size)
    path = tmp_path / "f"
    path.write_bytes(data)
    found, reported = read_plain_file(str(path), limit)
    assert found == data[:limit + 1]
    assert reported == size


def test_a_file_whose_size_says_0_is_read_to_its_end():
    with open("/proc/self/mountinfo", "rb") as handle:
        expected = handle.read()
    assert os.stat("/proc/self/mountinfo").st_size == 0 and len(expected) > 0
    found, reported = read_plain_file("/proc/self/mountinfo", 1 << 20)
    assert reported == 0
    # the same process reads it: its mounts did not change in between
    assert found == expected


def test_a_file_that_grew_after_fstat_is_read_past_the_size(tmp_path: Path):
    path = tmp_path / "growing"
    path.write_bytes(b"x" * 10)
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        original_fstat = os.fstat

        def fstat_then_grow(fd: int) -> os.stat_result:
            info = original_fstat(fd)
            os.write(descriptor, b"y" * 100_000)  # grows between fstat and the read
            return info

        os.fstat = fstat_then_grow  # type: ignore[assignment]
        try:
            found, reported = read_plain_file(str(path), 1 << 20)
        finally:
            os.fstat = original_fstat  # type: ignore[assignment]
    finally:
        os.close(descriptor)
    assert reported == 10
    assert found == b"x" * 10 + b"y" * 100_000


def test_symlinks_and_fifos_are_refused(tmp_path: Path):
    target = tmp_path / "target"
    target.write_bytes(b"secret")
    os.symlink(target, tmp_path / "link")
    with pytest.raises(OSError):
        read_plain_file(str(tmp_path / "link"), 100)
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(NotRegularFile):
        read_plain_file(str(tmp_path / "fifo"), 100)
    with pytest.raises(NotRegularFile):
        read_plain_file(str(tmp_path), 100)

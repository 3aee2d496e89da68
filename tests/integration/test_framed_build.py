"""A large program's artifact (issue 21): the frames of its unchanged bytes are made while
LIEF patches it, and the artifact is the very same as without them.

The program is a real gcc build holding 34 MiB of data in .rodata (`.incbin`), patched by
real LIEF: what is measured here is that LIEF leaves the blocks it does not change where
they were, which is what makes compressing them ahead worth it.
"""

from __future__ import annotations

import io
import os
import random
import subprocess
from pathlib import Path

import pytest
import zstandard
from support.needs import need_tool
from support.toolchain import gcc

import bundler.archive
import bundler.build
from bundler.archive import ZSTD_LEVEL
from bundler.build import BuildRequest, build
from bundler.framed_zstd import FRAME, AheadFrames, FramedZstd, ahead_pool
from bundler.patch import patch_copy
from bundler.patch_spec import Patch

BIG = r"""
#include <stdio.h>
extern const unsigned char blob[], blob_end[];
__asm__(".section .rodata\n.global blob\nblob:\n.incbin \"" BLOB "\"\n"
        ".global blob_end\nblob_end:\n.previous\n");
int main(void) { printf("%ld\n", (long)(blob_end - blob)); return 0; }
"""
BLOB_SIZE = 34 << 20


@pytest.fixture(scope="module")
def big_program(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("big")
    rng = random.Random(21)
    words = [bytes(rng.randrange(97, 123) for _ in range(rng.randrange(2, 9)))
             for _ in range(4096)]
    text = b" ".join(rng.choices(words, k=BLOB_SIZE // 5))
    (work / "blob").write_bytes((text * 2)[:BLOB_SIZE])
    return gcc(work / "big", BIG, f'-DBLOB="{work / "blob"}"')


def test_lief_leaves_most_blocks_of_a_large_program_in_place(tmp_path, big_program):
    copy = tmp_path / "patched"
    patch_copy(str(big_program), str(copy), Patch("/opt/big/lib/ld-linux-x86-64.so.2",
                                                   "$ORIGIN/../lib"))
    data = copy.read_bytes()
    raw = io.BytesIO()
    with ahead_pool() as pool:
        ahead = AheadFrames(str(big_program), ZSTD_LEVEL, pool)
        for task in ahead._blocks:
            task.result()  # made while LIEF works on a program this size or larger
        writer = FramedZstd(raw, ZSTD_LEVEL, 2)
        writer.expect_file(512, len(data), ahead)
        writer.write(b"\0" * 512)
        writer.write(data)
        writer.close()
    blocks = os.path.getsize(big_program) // FRAME
    # LIEF rewrites the tables at the start (the dynamic symbols, their hashes and
    # versions), and a page before its appended segment: the blocks in between are the
    # source's (measured: block 0 only differs)
    assert writer.frames_reused >= blocks - 2 > 0
    out = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw.getvalue()),
                                                     read_across_frames=True).read()
    assert out == b"\0" * 512 + data


def test_the_artifact_is_the_same_with_and_without_frames_made_ahead(
        tmp_path, big_program, monkeypatch):
    writers: list[FramedZstd] = []

    class Recorded(FramedZstd):  # the real writer, remembered to read its counts
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            writers.append(self)

    monkeypatch.setattr(bundler.archive, "FramedZstd", Recorded)
    ahead = build(BuildRequest((str(big_program),), str(tmp_path / "ahead.tar.zst"),
                               sbom=(), recipes=False))
    monkeypatch.setattr(bundler.build, "AHEAD_FROM", 1 << 62)  # none made ahead
    plain = build(BuildRequest((str(big_program),), str(tmp_path / "plain.tar.zst"),
                               sbom=(), recipes=False))
    assert [w.frames_reused > 0 for w in writers] == [True, False]
    assert Path(ahead.out).read_bytes() == Path(plain.out).read_bytes()
    subprocess.run([need_tool("zstd"), "-q", "-t", ahead.out], check=True)
    target = tmp_path / "unpacked"
    target.mkdir()
    subprocess.run(["tar", "--zstd", "-xf", ahead.out, "-C", str(target)], check=True)
    run = subprocess.run([str(target / "big" / "bin" / "big")], capture_output=True,
                         text=True, check=True)
    assert run.stdout == f"{BLOB_SIZE}\n"

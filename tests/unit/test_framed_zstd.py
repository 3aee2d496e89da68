"""The framed zstd writer: one valid stream, frames where the tar stream alone says, and a
patched copy's unchanged blocks taken from its source's frames made ahead - only when they
are the same bytes (real zstd; the bytes are made here)."""

from __future__ import annotations

import io
import random
import threading
from concurrent.futures import ThreadPoolExecutor

import zstandard

from bundler.framed_zstd import FRAME, AheadFrames, FramedZstd, ahead_pool

LEVEL = 3  # the tests' level: quicker, and the behaviour is the same at every level


def sample(size: int, seed: int) -> bytes:
    """Compressible but not trivial: words from a small vocabulary, like program text."""
    rng = random.Random(seed)
    words = [bytes(rng.randrange(97, 123) for _ in range(rng.randrange(2, 9)))
             for _ in range(512)]
    out = b" ".join(rng.choices(words, k=size // 4 + 1))
    while len(out) < size:
        out += out
    return out[:size]


def framed(parts: list[tuple[bytes, bytes]], ahead: list[AheadFrames | None] | None = None,
           workers: int = 2, level: int = LEVEL, one_buffer: bool = False,
           ) -> tuple[bytes, FramedZstd]:
    """Write (header, data) members as tarfile would: header, data, then 512-byte padding.
    `one_buffer`: as a writer that reuses one buffer would, each piece copied into it,
    handed over as a view, and the buffer scribbled over as soon as `write` returns."""
    raw = io.BytesIO()
    writer = FramedZstd(raw, level, workers)
    buffer = bytearray(10240)  # tarfile's copy size is not the frame's

    def write(data: bytes) -> None:
        for start in range(0, len(data), len(buffer)):
            piece = data[start:start + len(buffer)]
            if not one_buffer:
                writer.write(piece)
                continue
            buffer[:len(piece)] = piece
            writer.write(memoryview(buffer)[:len(piece)])
            buffer[:len(piece)] = b"\xa5" * len(piece)

    for number, (header, data) in enumerate(parts):
        writer.expect_file(len(header), len(data), ahead[number] if ahead else None)
        write(header)
        write(data)
        write(b"\0" * (-len(data) % 512))
    writer.close()
    return raw.getvalue(), writer


def plain(parts: list[tuple[bytes, bytes]]) -> bytes:
    return b"".join(h + d + b"\0" * (-len(d) % 512) for h, d in parts)


def frames_of(stream: bytes) -> list[int]:
    """The decompressed size of each frame in `stream`, in order."""
    sizes, at = [], 0
    while at < len(stream):
        size = zstandard.frame_content_size(stream[at:])
        length = zstandard.frame_header_size(stream[at:])
        assert size > 0 and length > 0
        decoder = zstandard.ZstdDecompressor().decompressobj()
        decoder.decompress(stream[at:])
        sizes.append(size)
        at = len(stream) - len(decoder.unused_data)
    return sizes


def decompressed(stream: bytes) -> bytes:
    return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(stream),
                                                      read_across_frames=True).read()


def test_frames_are_one_stream_cut_where_the_tar_stream_says():
    big = sample(2 * FRAME + 1000, 1)
    parts = [(b"H" * 512, sample(3000, 2)), (b"I" * 1024, big), (b"J" * 512, b"tail")]
    stream, writer = framed(parts)
    assert decompressed(stream) == plain(parts)
    # frame 1: the first member and the big one's header; then its two whole blocks; then
    # its last 1000 bytes, padding and the rest
    sizes = frames_of(stream)
    assert sizes == [512 + 3000 + 72 + 1024, FRAME, FRAME, 1000 + 24 + 512 + 4 + 508]
    assert (writer.frames_reused, writer.frames_compressed) == (0, 4)


def test_the_output_does_not_depend_on_the_number_of_threads():
    parts = [(b"H" * 512, sample(FRAME * 3 + 77, 3)), (b"I" * 512, sample(FRAME + 5, 4))]
    assert framed(parts, workers=1)[0] == framed(parts, workers=4)[0]


def test_small_members_gather_into_frames_of_frame_bytes():
    parts = [(b"H" * 512, sample(FRAME // 3, seed)) for seed in range(8)]
    stream, _ = framed(parts)
    sizes = frames_of(stream)
    assert sizes[:-1] == [FRAME] * (len(sizes) - 1) and sum(sizes) == len(plain(parts))


def test_every_byte_survives_reused_buffers_on_both_sides():
    """The writer's buffer may be reused once `write` returns, and the frames' own buffers
    are reused once their frames are written: across many more frames than are in flight
    (8 here, 2 or 3 in flight), every byte comes out as written, and the stream is the one
    written from immutable bytes."""
    parts = [(b"H" * 512, sample(1 << 18, seed) * 11) for seed in range(8)]
    parts[3:3] = [(b"I" * 512, sample(1 << 18, 20) * 65 + b"odd"),
                  (b"J" * 1024, sample(1 << 18, 21) * 33)]
    for workers in (1, 2):
        stream = framed(parts, workers=workers, one_buffer=True)[0]
        assert decompressed(stream) == plain(parts)
        assert stream == framed(parts, workers=workers)[0]
        assert len(frames_of(stream)) >= 8


def patched_pair(tmp_path, changed_blocks: tuple[int, ...]) -> tuple[str, bytes]:
    """A source of 3.5 blocks, and its "patched copy": a byte changed in each of
    `changed_blocks`, and a new tail appended (what LIEF does to a program)."""
    source = sample(3 * FRAME + FRAME // 2, 5)
    copy = bytearray(source)
    for block in changed_blocks:
        copy[block * FRAME + 4096] ^= 0xFF
    copy += sample(300_000, 6)
    path = tmp_path / "source"
    path.write_bytes(source)
    return str(path), bytes(copy)


def test_unchanged_blocks_take_the_frames_made_ahead(tmp_path):
    source, copy = patched_pair(tmp_path, changed_blocks=(1,))
    parts = [(b"H" * 512, copy)]
    with ahead_pool() as pool:
        ahead = AheadFrames(source, LEVEL, pool)
        for task in ahead._blocks:
            task.result()  # all made before the copy comes, as on a large program
        stream, writer = framed(parts, [ahead])
    assert writer.frames_reused == 2  # blocks 0 and 2; 1 changed, and the rest is new
    assert stream == framed(parts)[0]  # the same bytes as without any frame made ahead
    assert decompressed(stream) == plain(parts)


def test_a_source_changed_after_its_frames_were_made_gives_none_of_them(tmp_path):
    source, copy = patched_pair(tmp_path, changed_blocks=())
    with ahead_pool() as pool:
        ahead = AheadFrames(source, LEVEL, pool)
        for task in ahead._blocks:
            task.result()
        # the copy is made from the source as it is now, after the frames were made
        with open(source, "rb") as handle:
            now = bytearray(handle.read())
        now[10] ^= 0xFF
        now[2 * FRAME + 10] ^= 0xFF
        copy = bytes(now) + copy[len(now):]
        parts = [(b"H" * 512, copy)]
        stream, writer = framed(parts, [ahead])
    assert writer.frames_reused == 1  # block 1 only: 0 and 2 are not what was compressed
    assert decompressed(stream) == plain(parts)
    assert stream == framed(parts)[0]


def test_frames_made_at_another_level_are_not_taken(tmp_path):
    level = LEVEL + 1
    source, copy = patched_pair(tmp_path, changed_blocks=())
    parts = [(b"H" * 512, copy)]
    with ahead_pool() as pool:
        stream, writer = framed(parts, [AheadFrames(source, LEVEL, pool)], level=level)
    assert writer.frames_reused == 0
    assert stream == framed(parts, level=level)[0]


def test_a_source_that_shrinks_before_its_blocks_are_read_gives_no_frames(tmp_path):
    source, copy = patched_pair(tmp_path, changed_blocks=())
    gate = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        pool.submit(gate.wait)  # the blocks wait behind this
        ahead = AheadFrames(source, LEVEL, pool)
        with open(source, "r+b") as handle:
            handle.truncate(FRAME + 10)  # block 0 is still whole, 1 and 2 are gone
        gate.set()
        for task in ahead._blocks:
            task.result()
        parts = [(b"H" * 512, copy)]
        stream, writer = framed(parts, [ahead])
    assert writer.frames_reused == 1
    assert stream == framed(parts)[0]

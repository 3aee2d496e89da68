"""A large artifact's zstd stream as independent frames, compressed on every core, the
unchanged parts of a patched program before LIEF has even written it.

Why frames: a patched copy exists only when LIEF is done (node, 99 MB: 1.3-1.7 s after the
build starts), and one zstd stream can only compress it then. But LIEF changes few of its
bytes: of node's 95 MiB, 7 MiB-blocks differ (the dynamic symbol tables it rebuilds, the
header tables), and the rest is the source's, byte for byte, plus the segment it appends. So
the source's FRAME-sized blocks are compressed ahead (`AheadFrames`), while LIEF works; when
the copy is archived, each of its blocks whose digest is the source block's takes that
block's frame, and only the others are compressed then.

Concatenated frames are one valid zstd stream (`zstd -d`, `tar --zstd` and python-zstandard
with read_across_frames read it whole). The output does not depend on timing, the number of
cores or whether a frame was made ahead: where frames begin follows from the tar stream
alone (every FRAME bytes, and at the start of the data of every file of FRAME bytes or more,
so that its blocks line up with its source's), and a frame made ahead is the one-shot
compression of the very same bytes with the same settings.

Measured (node's artifact, 105 MiB of tar, level 6): 8 MiB frames 34.37 MB against 34.36 MB
for zstd's own multithreaded single frame; 4 MiB frames +1.2%, 2 MiB +2.4%. So 8 MiB.
"""

from __future__ import annotations

import collections
import concurrent.futures
import hashlib
import os
from collections.abc import Iterator
from concurrent.futures import Executor, Future
from contextlib import contextmanager
from typing import BinaryIO

import zstandard

FRAME = 8 << 20
AHEAD_FROM = 2 * FRAME  # a smaller source has at most one block to win


def compress_frame(data: bytes | memoryview, level: int) -> bytes:
    """One whole frame, the same way whether made ahead or in order (content size and
    checksum in it): the same bytes always give the same frame."""
    return zstandard.ZstdCompressor(level=level, write_checksum=True).compress(data)


def block_digest(data: bytes | bytearray | memoryview) -> bytes:
    """What decides that a block of the copy is the source's (a cryptographic digest: the
    program is untrusted input, and a collision would put the source's bytes in the
    artifact in place of LIEF's)."""
    return hashlib.sha256(data).digest()  # 1.2 GB/s here (SHA-NI); blake2b 0.73


def cores() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
               else (os.cpu_count() or 1))


@contextmanager
def ahead_pool() -> Iterator[Executor]:
    """Threads for compressing ahead: one core fewer than the machine has (the patch worker
    runs LIEF on one), at least one. Queued blocks are dropped when the build ends, also by
    an error; a block being compressed finishes (a fraction of a second)."""
    pool = concurrent.futures.ThreadPoolExecutor(max(1, cores() - 1),
                                                 thread_name_prefix="bundle-ahead")
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class AheadFrames:
    """The full FRAME-sized blocks of `source`, each read, digested and compressed by a task
    of `pool`, for the archive writer to take where the patched copy has the same block."""

    def __init__(self, source: str, level: int, pool: Executor) -> None:
        self.source = source
        self.level = level
        size = os.path.getsize(source)
        self._blocks: list[Future[tuple[bytes, bytes]]] = [
            pool.submit(_read_and_compress, source, index * FRAME, level)
            for index in range(size // FRAME)]

    def frame_for(self, index: int, block: memoryview, level: int) -> bytes | None:
        """Block `index`'s frame if the source's block was `block` (and was compressed at
        `level`); None: compress the copy's block now. Runs in a writer thread (the digest
        and the wait are off the thread that writes the tar stream)."""
        if level != self.level or index >= len(self._blocks):
            return None
        task = self._blocks[index]
        if task.cancel():  # not started yet: compressing it now costs the same
            return None
        try:
            made, frame = task.result()
        except (OSError, zstandard.ZstdError):  # the source went or shrank: no matter
            return None
        return frame if made == block_digest(block) else None

    def cancel(self) -> None:
        for task in self._blocks:
            task.cancel()


def _read_and_compress(source: str, offset: int, level: int) -> tuple[bytes, bytes]:
    with open(source, "rb") as handle:
        data = os.pread(handle.fileno(), FRAME, offset)
    if len(data) != FRAME:
        return b"", b""
    return block_digest(data), compress_frame(data, level)


class FramedZstd:
    """The file object tarfile writes a large artifact to (mode "w": header, data and
    padding are written straight through). `expect_file` says where the next file's data
    begins, so that its blocks become frames of their own."""

    def __init__(self, raw: BinaryIO, level: int, workers: int | None = None) -> None:
        self.raw = raw
        self.level = level
        self.workers = workers or cores()
        self._pool = concurrent.futures.ThreadPoolExecutor(self.workers,
                                                           thread_name_prefix="bundle-zstd")
        # each frame being made, with the buffer it is made of (reused once it is done)
        self._queue: collections.deque[tuple[Future[tuple[bytes, bool]], bytearray]] = \
            collections.deque()
        self._spare: list[bytearray] = []
        self._pending = _Gathered(self._spare)  # tar bytes of the frame being gathered
        self._offset = 0
        self._header_left = 0  # bytes of the expected file's header still to come
        self._data_left = 0  # bytes of its data still to come as whole blocks
        self._block = _Gathered(self._spare)
        self._block_index = 0
        self._ahead: AheadFrames | None = None
        self.frames_reused = 0
        self.frames_compressed = 0

    def tell(self) -> int:
        return self._offset

    @staticmethod
    def frames_alone(size: int) -> bool:
        """Whether a file of `size` bytes starts a frame and is framed block by block (the
        writer tells `expect_file` of it); a smaller one is gathered with what is around."""
        return size >= FRAME

    def expect_file(self, header_size: int, size: int, ahead: AheadFrames | None) -> None:
        """The next `header_size` bytes are a member's header and the `size` after them its
        data; data of FRAME bytes or more starts a frame and is framed block by block."""
        if not self.frames_alone(size):
            return
        self._header_left = header_size
        self._data_left = size - size % FRAME
        self._block_index = 0
        self._ahead = ahead

    def write(self, data: bytes | bytearray | memoryview) -> int:
        view = memoryview(data)
        written = len(view)
        self._offset += written
        while view:
            if self._header_left:
                taken = min(self._header_left, len(view))
                self._gather(view[:taken])
                view = view[taken:]
                self._header_left -= taken
                if not self._header_left and self._data_left:
                    self._cut()
            elif self._data_left:
                taken = min(FRAME - self._block.size, self._data_left, len(view))
                self._block.add(view[:taken])
                view = view[taken:]
                self._data_left -= taken
                if self._block.size == FRAME:
                    self._emit_block()
            else:
                self._gather(view)
                break
        return written

    def flush(self) -> None:
        """tarfile flushes nothing; frames are written in order as they are done."""

    def close(self) -> None:
        """Write every frame still pending, in order. (Not on an error: `abandon`.)"""
        self._cut()
        self._drain(0)
        self._pool.shutdown(wait=True)

    def abandon(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self._ahead is not None:
            self._ahead.cancel()

    def _gather(self, view: memoryview) -> None:
        while view:
            taken = min(FRAME - self._pending.size, len(view))
            self._pending.add(view[:taken])
            view = view[taken:]
            if self._pending.size == FRAME:
                self._submit(self._pending.take())

    def _cut(self) -> None:
        if self._pending.size:
            self._submit(self._pending.take())

    def _emit_block(self) -> None:
        buffer, block = self._block.take()
        self._queue.append((self._pool.submit(_frame_of_block, block, self._ahead,
                                              self._block_index, self.level), buffer))
        self._block_index += 1
        if not self._data_left:
            self._ahead = None
        self._drain(2 * self.workers)

    def _submit(self, taken: tuple[bytearray, memoryview]) -> None:
        buffer, data = taken
        self._queue.append((self._pool.submit(_frame_of_block, data, None, 0, self.level),
                            buffer))
        self._drain(2 * self.workers)

    def _drain(self, keep: int) -> None:
        """Write the frames at the head of the queue that are done, and wait for the head
        while more than `keep` are queued (what bounds the memory held)."""
        while self._queue and (self._queue[0][0].done() or len(self._queue) > keep):
            making, buffer = self._queue.popleft()
            frame, reused = making.result()
            if len(self._spare) <= keep:  # done with: the next frame is gathered in it
                self._spare.append(buffer)
            self.raw.write(frame)
            if reused:
                self.frames_reused += 1
            else:
                self.frames_compressed += 1


class _Gathered:
    """Bytes gathered for one frame, as the pieces written, until `take` copies them into a
    FRAME-sized buffer: the one copy of each byte. A piece of an immutable bytes object
    (what tarfile writes: its headers, and each read of a file) is kept as it is; any other
    is copied first, since its writer may reuse its buffer.

    The buffers are reused (`spare`: FramedZstd gives one back once its frame is written):
    a fresh 8 MiB for every frame took ~10 ms of page faults on the writing thread each
    (the 1,000 libraries: 0.127 s for 11 frames, against ~1 ms for the copy into a buffer
    already mapped). Before, a bytearray grown by `+=` and cut from the front cost 7-10
    times the CPU of gathering pieces (165 MB in 64 KiB and 1 MiB writes: 0.24-0.35 s
    against 0.03 s)."""

    def __init__(self, spare: list[bytearray]) -> None:
        self._spare = spare
        self._pieces: list[bytes | memoryview] = []
        self.size = 0

    def add(self, view: memoryview) -> None:
        self._pieces.append(view if isinstance(view.obj, bytes) else bytes(view))
        self.size += len(view)

    def take(self) -> tuple[bytearray, memoryview]:
        """(the buffer, a view of the bytes gathered in it); they are then forgotten here,
        and the buffer is not touched until it is given back."""
        buffer = self._spare.pop() if self._spare else bytearray(FRAME)
        at = 0
        for piece in self._pieces:
            buffer[at:at + len(piece)] = piece
            at += len(piece)
        self._pieces.clear()
        self.size = 0
        return buffer, memoryview(buffer)[:at]


def _frame_of_block(block: memoryview, ahead: AheadFrames | None, index: int,
                    level: int) -> tuple[bytes, bool]:
    """(the frame of `block`, whether it was made ahead)."""
    frame = ahead.frame_for(index, block, level) if ahead is not None else None
    if frame is not None:
        return frame, True
    return compress_frame(block, level), False

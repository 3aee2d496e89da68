"""archive.open_output on small files: the build adds entries in batches and gets each
file's digest back, the manifest made from them goes last; leaving the block by an
exception leaves no output and an existing OUT untouched (test_artifact.py and
test_interrupts.py check the same through the CLI, with signals)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from bundler.archive import (
    Digest,
    Entry,
    digests_ahead,
    known_digest,
    open_output,
    planned_size,
    sha256_of,
)
from bundler.manifest import MANIFEST_PATH


class Stop(Exception):
    """Raised by a test inside the block."""


def sources(tmp_path: Path) -> dict[str, Path]:
    made = {}
    for name, data in (("b.bin", b"second" * 1000), ("a.bin", b"first\n")):
        path = tmp_path / "src" / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        made[name] = path
    return made


def first_batch(files: dict[str, Path]) -> list[Entry]:
    return [Entry("top/lib/b.bin", "file", 0o644, source=str(files["b.bin"])),
            Entry("top", "dir", 0o755), Entry("top/lib", "dir", 0o755),
            Entry("top/lib/a.bin", "file", 0o755, source=str(files["a.bin"])),
            Entry("top/lib/a.so", "symlink", 0o777, link_target="a.bin")]


def digest(data: bytes) -> Digest:
    return Digest(hashlib.sha256(data).hexdigest(), len(data),
                  hashlib.sha1(data, usedforsecurity=False).hexdigest())


def members(archive: Path) -> list[str]:
    tar = subprocess.run(["zstd", "-dc", str(archive)], capture_output=True, check=True)
    (archive.parent / "plain.tar").write_bytes(tar.stdout)
    with tarfile.open(archive.parent / "plain.tar") as opened:
        return opened.getnames()


@pytest.mark.parametrize("out_name", ["t.tar.zst", "t/"])
def test_batches_give_digests_and_go_in_in_order(tmp_path: Path, out_name: str) -> None:
    files = sources(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    out = work / out_name
    entries = first_batch(files)
    with open_output(f"{work}/{out_name}", 0, planned_size(entries)) as writer:
        digests = writer.add(entries)
        assert digests == {"top/lib/a.bin": digest(b"first\n"),
                           "top/lib/b.bin": digest(b"second" * 1000)}
        made = tmp_path / "src" / "manifest"  # made from the digests, added last
        made.write_text(repr(sorted(digests)))
        last = writer.add([Entry(f"top/{MANIFEST_PATH}", "file", 0o644, source=str(made))])
        assert last == {f"top/{MANIFEST_PATH}": digest(made.read_bytes())}
    if out_name.endswith("/"):
        assert writer.archive_sha256 is None
        assert (out / "top" / "lib" / "a.bin").read_bytes() == b"first\n"
        assert (out / "top" / MANIFEST_PATH).read_text() == repr(sorted(digests))
        assert sorted(p.name for p in work.iterdir()) == ["t"]
        return
    whole = hashlib.sha256(out.read_bytes()).hexdigest()
    assert writer.archive_sha256 == whole
    assert Path(f"{out}.sha256").read_text() == f"{whole}  t.tar.zst\n"
    assert sorted(p.name for p in work.iterdir()) == ["t.tar.zst", "t.tar.zst.sha256"]
    assert members(out) == ["top", "top/lib", "top/lib/a.bin", "top/lib/a.so",
                            "top/lib/b.bin", f"top/{MANIFEST_PATH}"]  # each batch sorted


@pytest.mark.parametrize("out_name", ["t.tar.zst", "t/"])
def test_an_exception_in_the_block_leaves_an_existing_out_untouched(tmp_path: Path,
                                                                      out_name: str) -> None:
    files = sources(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    entries = first_batch(files)
    (tmp_path / "src" / "manifest").write_text("{}")  # `top` is an artifact's top now
    with open_output(f"{work}/{out_name}", 0, planned_size(entries)) as writer:
        writer.add(entries)
        writer.add([Entry(f"top/{MANIFEST_PATH}", "file", 0o644,
                          source=str(tmp_path / "src" / "manifest"))])
    before = sorted((p.relative_to(work), p.read_bytes() if p.is_file() else None)
                    for p in work.rglob("*"))
    files["a.bin"].write_bytes(b"changed\n")  # what a wrongly renamed OUT would hold
    with pytest.raises(Stop), open_output(f"{work}/{out_name}", 0,
                                          planned_size(entries)) as again:
        again.add(entries)
        raise Stop
    after = sorted((p.relative_to(work), p.read_bytes() if p.is_file() else None)
                   for p in work.rglob("*"))
    assert after == before  # no temporary left, the earlier output as it was
    with pytest.raises(AssertionError, match="added after the output was written"):
        again.add(entries)


def test_an_entry_being_made_is_waited_for(tmp_path: Path) -> None:
    made = tmp_path / "patched"
    work = tmp_path / "work"
    work.mkdir()

    def ready() -> None:  # as PatchWorker.wait: the copy exists once this returns
        made.write_bytes(b"patched copy")

    late = Entry("top/libexec/prog", "file", 0o755, source=str(made), ready=ready,
                 size_hint=12)
    entries = [Entry("top", "dir", 0o755), late]
    assert planned_size(entries) == 12  # from the hint: the copy does not exist yet
    with open_output(str(work / "t.tar.zst"), 0, planned_size(entries)) as writer:
        assert writer.add(entries) == {"top/libexec/prog": digest(b"patched copy")}


def test_a_digest_the_plan_took_is_reused_only_for_the_very_same_file(tmp_path: Path) -> None:
    """sha256_of (the plan's), digests_ahead (the hash thread's) and the archive's digests
    agree whether the plan hashed the file first or not; a file rewritten since, same size,
    other bytes, is hashed anew, never given the digest of the bytes it held when the plan
    read it."""
    files = sources(tmp_path)
    kept, rewritten = files["b.bin"], files["a.bin"]
    assert sha256_of(str(kept)) == hashlib.sha256(kept.read_bytes()).hexdigest()
    assert known_digest(kept.stat()) == Digest(hashlib.sha256(kept.read_bytes()).hexdigest(),
                                              kept.stat().st_size, "")  # no SHA-1 taken
    sha256_of(str(rewritten))
    before = rewritten.stat()
    rewritten.write_bytes(b"FIRST\n")  # same size; the ctime moves whatever mtime says
    os.utime(rewritten, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert known_digest(rewritten.stat()) is None
    entries = first_batch(files)
    ahead = tmp_path / "src" / "c.bin"  # hashed ahead (build._hash_ahead): both digests
    ahead.write_bytes(b"third" * 999)
    assert digests_ahead(str(ahead)) == hashlib.sha256(b"third" * 999).hexdigest()
    assert known_digest(ahead.stat()) == digest(b"third" * 999)
    entries.append(Entry("top/lib/c.bin", "file", 0o644, source=str(ahead)))
    with open_output(str(tmp_path / "t.tar.zst"), 0, planned_size(entries)) as writer:
        assert writer.add(entries) == {"top/lib/a.bin": digest(b"FIRST\n"),
                                       "top/lib/b.bin": digest(b"second" * 1000),
                                       "top/lib/c.bin": digest(b"third" * 999)}
    unpacked = tmp_path / "plain.tar"
    unpacked.write_bytes(subprocess.run(["zstd", "-dc", str(tmp_path / "t.tar.zst")],
                                        capture_output=True, check=True).stdout)
    with tarfile.open(unpacked) as opened:
        member = opened.extractfile("top/lib/a.bin")
        assert member is not None and member.read() == b"FIRST\n"

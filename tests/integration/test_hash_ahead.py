"""build._hash_ahead: the closure's files hashed in a thread while the plan is made. The
plan gets the digests sha256_of would give, files outside the closure are hashed when
asked, and a file that cannot be read fails the way sha256_of fails in the plan."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from bundler.archive import Digest, known_digest
from bundler.build import _hash_ahead, _hash_pool


def closure(*paths: Path, loader: Path | None = None) -> SimpleNamespace:
    """What _hash_ahead reads of a resolve.Closure: its libraries' and loader's host paths."""
    return SimpleNamespace(libraries=[SimpleNamespace(host_path=str(p)) for p in paths],
                           loader=SimpleNamespace(host_path=str(loader)) if loader else None)


def test_the_plan_gets_each_files_sha256_hashed_ahead_or_on_demand(tmp_path: Path) -> None:
    files = {}
    for name, size in (("libbig.so", 3 << 20), ("libsmall.so", 100), ("ld.so", 5000),
                       ("data.bin", 70)):
        files[name] = tmp_path / name
        files[name].write_bytes(bytes(range(256)) * (size // 256) + b"x" * (size % 256))
    with _hash_pool() as pool:
        digest = _hash_ahead(pool, [closure(files["libbig.so"], files["libsmall.so"],
                                            loader=files["ld.so"])])
        for path in files.values():  # data.bin is not in the closure: hashed when asked
            assert digest(str(path)) == hashlib.sha256(path.read_bytes()).hexdigest()
    # remembered for the archive, which then takes both for the same unchanged file; a
    # file outside the closure was hashed by sha256_of: its SHA-1 is the archive's to take
    big = files["libbig.so"].read_bytes()
    assert known_digest(files["libbig.so"].stat()) == Digest(
        hashlib.sha256(big).hexdigest(), len(big),
        hashlib.sha1(big, usedforsecurity=False).hexdigest())
    assert known_digest(files["data.bin"].stat()).sha1 == ""


def test_a_file_gone_before_it_was_hashed_fails_as_sha256_of_does(tmp_path: Path) -> None:
    kept, gone = tmp_path / "libkept.so", tmp_path / "libgone.so"
    kept.write_bytes(b"kept")
    gone.write_bytes(b"soon gone")
    unlinked = threading.Event()
    with _hash_pool() as pool:
        pool.submit(unlinked.wait, 10)  # the pool runs in order: nothing hashed before it
        digest = _hash_ahead(pool, [closure(kept, gone)])
        gone.unlink()
        unlinked.set()
        assert digest(str(kept)) == hashlib.sha256(b"kept").hexdigest()
        with pytest.raises(FileNotFoundError):
            digest(str(gone))

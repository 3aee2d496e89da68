"""SHA256SUMS as `bundle release` writes it and `bundle verify --key` reads it: the real
`sha256sum` must agree with both (it is what a user downloading the release runs)."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest
from support.needs import need_tool

from bundler.errors import InputError, UnsafeArtifactError
from bundler.signing import SUMS_LIMIT, parse_sums, read_sums, sums_text

A = "a" * 64
B = "b" * 64


def _files(directory: Path, contents: dict[str, bytes]) -> list[tuple[str, str]]:
    entries = []
    for name, data in contents.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        entries.append((name, hashlib.sha256(data).hexdigest()))
    return entries


def test_sums_text_is_sha256sums_format_sorted_by_name() -> None:
    text = sums_text([("z.tar.zst", B.upper()), ("a b.tar.gz", A)])
    assert text == f"{A}  a b.tar.gz\n{B}  z.tar.zst\n"
    assert parse_sums(text, "SHA256SUMS") == {"a b.tar.gz": A, "z.tar.zst": B}


def test_sha256sum_checks_what_sums_text_writes(tmp_path: Path) -> None:
    sha256sum = need_tool("sha256sum")
    entries = _files(tmp_path, {"agent-amd64.tar.zst": b"amd64 bytes", "agent arm64.tar.gz":
                                b"arm64 bytes", "sbom/agent.cdx.json": b"{}", "-dash": b"x"})
    (tmp_path / "SHA256SUMS").write_text(sums_text(entries))
    good = subprocess.run([sha256sum, "--strict", "-c", "SHA256SUMS"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert good.returncode == 0, good.stdout + good.stderr
    assert good.stdout.count(": OK") == 4
    (tmp_path / "agent-amd64.tar.zst").write_bytes(b"amd64 bytez")  # one byte changed
    bad = subprocess.run([sha256sum, "--strict", "-c", "SHA256SUMS"], cwd=tmp_path,
                         capture_output=True, text=True)
    assert bad.returncode == 1
    assert "agent-amd64.tar.zst: FAILED" in bad.stdout


@pytest.mark.parametrize("mode", ["--text", "--binary"])
def test_parse_sums_reads_what_sha256sum_writes(tmp_path: Path, mode: str) -> None:
    sha256sum = need_tool("sha256sum")
    entries = _files(tmp_path, {"one.tar.zst": b"1", "two words.tar": b"2"})
    written = subprocess.run([sha256sum, mode, *sorted(name for name, _ in entries)],
                             cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert ("*one.tar.zst" in written) == (mode == "--binary")
    assert parse_sums(written, "SHA256SUMS") == dict(entries)


@pytest.mark.parametrize(("name", "why"), [
    ("new\nline", "escape"), ("back\\slash", "escape"), ("tab\there", "escape"),
    ("", "empty"), ("/abs/path", "relative"), ("../up", "relative"), ("a/../b", "relative"),
])
def test_sums_text_refuses_names_sha256sum_would_escape_or_cannot_check(
        name: str, why: str) -> None:
    with pytest.raises(InputError, match=why):
        sums_text([(name, A)])


def test_sums_text_refuses_duplicates_and_non_hashes() -> None:
    with pytest.raises(InputError, match="given twice"):
        sums_text([("x", A), ("x", B)])
    with pytest.raises(InputError, match="not a sha256"):
        sums_text([("x", "abc")])


@pytest.mark.parametrize(("text", "line", "words"), [
    (f"{A}  good\nnot a line\n", 2, "not a sha256sum line"),
    (f"{A} good\n", 1, "not a sha256sum line"),  # one space and no marker
    (f"{A[:-1]}  short\n", 1, "not a sha256sum line"),
    (f"SHA256 (x) = {A}\n", 1, "not a sha256sum line"),  # BSD style
    (f"\\{A}  esc\\\\aped\n", 1, "not a sha256sum line"),
    (f"{A}  crlf\r\n", 1, "control character"),
    (f"{A}  good\n\n{B}  after-blank\n", 2, "not a sha256sum line"),
    (f"{A}  /etc/passwd\n", 1, "not a path relative"),
    (f"{A}  x\n{B}  x\n", 2, "listed twice"),
], ids=["junk", "one-space", "short-hash", "bsd-style", "escaped", "crlf", "blank-line",
        "absolute", "twice"])
def test_parse_sums_refuses_malformed_lines_naming_them(text: str, line: int,
                                                         words: str) -> None:
    with pytest.raises(UnsafeArtifactError) as refused:
        parse_sums(text, "dist/SHA256SUMS")
    message = refused.value.message
    assert message.startswith(f"dist/SHA256SUMS: line {line}"), message
    assert words in message and "\n" not in message


def test_parse_sums_accepts_upper_case_and_no_final_newline_but_not_nothing() -> None:
    assert parse_sums(f"{A.upper()}  x", "S") == {"x": A}
    with pytest.raises(UnsafeArtifactError, match="lists no files"):
        parse_sums("", "S")
    with pytest.raises(UnsafeArtifactError, match="line 1"):  # an empty line
        parse_sums("\n", "S")


def test_read_sums_caps_the_size_and_refuses_fifos_and_binary(tmp_path: Path) -> None:
    huge = tmp_path / "huge"
    huge.write_bytes((f"{A}  x\n" * (SUMS_LIMIT // 67 + 2)).encode())
    with pytest.raises(UnsafeArtifactError, match="at most"):
        read_sums(str(huge))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # no writer: a blocking read would hang the test
    with pytest.raises(InputError, match="not a regular file"):
        read_sums(str(fifo))
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe" + A.encode() + b"  x\n")
    with pytest.raises(UnsafeArtifactError, match="not UTF-8"):
        read_sums(str(binary))
    good = tmp_path / "SHA256SUMS"
    good.write_text(sums_text([("x", A)]))
    assert read_sums(str(good)) == {"x": A}

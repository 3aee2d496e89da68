"""Go build info read without Go, held line for line to `go version -m`."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from support.gobuild import STATIC_TAGS, VARIANTS, build_agent
from support.needs import need_tool

from bundler.elf import read_elf
from bundler.golang import (
    go_quote,
    go_unquote_prefix,
    go_version_m,
    read_build_info,
    uvarint_bytes,
)
from bundler.static_build import static_side


def go_version_m_output(path: str) -> list[str]:
    done = subprocess.run([need_tool("go"), "version", "-m", path], capture_output=True,
                          text=True, check=True)
    return done.stdout.rstrip("\n").split("\n")


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_reader_agrees_with_go_version_m(variant: str) -> None:
    binary = str(build_agent(variant))
    info = read_build_info(binary)
    assert info is not None
    ours = [f"{binary}: {info.go_version}"] + [f"\t{line}" for line in go_version_m(info)]
    assert ours == go_version_m_output(binary)


def test_settings_and_deps_of_the_static_agent() -> None:
    info = read_build_info(str(build_agent("static-tags")))
    assert info is not None
    assert info.path == "example.com/myagent"
    assert info.main is not None and info.main.path == "example.com/myagent"
    assert info.tags == tuple(STATIC_TAGS.split(","))
    assert info.cgo_enabled is True
    assert info.ldflags == "-linkmode external -extldflags '-static -lm'"
    sqlite = info.dep("github.com/mattn/go-sqlite3")
    assert sqlite is not None and sqlite.version.startswith("v1.14.")
    assert sqlite.replace is not None
    assert sqlite.replace.path == "/usr/share/gocode/src/github.com/mattn/go-sqlite3"
    assert info.setting("GOARCH") == "amd64"


def test_other_word_sizes_and_byte_orders() -> None:
    i386 = read_build_info(str(build_agent("386-purego")))
    s390x = read_build_info(str(build_agent("s390x-purego")))
    assert i386 is not None and i386.setting("GOARCH") == "386"
    assert s390x is not None and s390x.setting("GOARCH") == "s390x"
    assert s390x.cgo_enabled is False


def test_non_go_programs_have_no_build_info() -> None:
    assert read_build_info("/usr/bin/ls") is None


@pytest.mark.parametrize("text", ["plain", "with space", 'quote " and \\ back', "tab\tnl\n",
                                  "ctrl \x01 del \x7f", "unicode é 漢", "\u2028 sep"])
def test_quote_round_trip(text: str) -> None:
    quoted = go_quote(text)
    assert go_unquote_prefix(quoted + "=rest") == (text, "=rest")


def test_static_build_is_recognised_as_the_same_go_module(tmp_path) -> None:
    """Compare mode judges sameness by Go module path, whatever the file names."""
    dynamic = build_agent("dynamic")
    static = build_agent("static-tags", tmp_path / "renamed")
    side = static_side(str(static), read_elf(str(dynamic)), "myagent")
    assert side.same_program is True
    assert side.identity == "same Go module (example.com/myagent)"
    assert side.really_static is True
    other = build_agent("386-purego")
    mismatch = static_side(str(other), read_elf(str(dynamic)), "myagent")
    assert mismatch.same_program is False


def pointer_format_copy(source: Path, dest: Path) -> None:
    """Rewrite a Go 1.19 binary's build info into the pre-1.18 pointer format.

    No older Go is at hand, so the older layout is made from a real file: the header's
    flags say "not inline", its two pointers name Go string headers {data, len} written
    at the start of .noptrdata (mapped from the file), followed by the strings.
    """
    data = bytearray(source.read_bytes())
    with open(source, "rb") as handle:
        elf = ELFFile(handle)
        info = elf.get_section_by_name(".go.buildinfo")
        spare = elf.get_section_by_name(".noptrdata")
        at, spare_at, spare_addr = info["sh_offset"], spare["sh_offset"], spare["sh_addr"]
        blob = bytes(data[at:at + info["sh_size"]])
    assert blob[15] & 0x2, "expected the inline format"
    version, after = uvarint_bytes(blob, 32)
    modinfo, _ = uvarint_bytes(blob, after)
    version_addr = spare_addr + 32
    modinfo_addr = version_addr + len(version)
    struct.pack_into("<QQQQ", data, spare_at, version_addr, len(version), modinfo_addr,
                     len(modinfo))
    data[spare_at + 32:spare_at + 32 + len(version) + len(modinfo)] = version + modinfo
    data[at + 15] = 0  # little endian, strings through pointers
    struct.pack_into("<QQ", data, at + 16, spare_addr, spare_addr + 16)
    dest.write_bytes(bytes(data))
    dest.chmod(0o755)  # `go version` skips files that are not executable


def test_pointer_format_agrees_with_go_version_m(tmp_path: Path) -> None:
    crafted = tmp_path / "oldformat"
    pointer_format_copy(build_agent("dynamic"), crafted)
    info = read_build_info(str(crafted))
    assert info is not None
    ours = [f"{crafted}: {info.go_version}"] + [f"\t{line}" for line in go_version_m(info)]
    assert ours == go_version_m_output(str(crafted))
    assert ours[1:] == [f"\t{line}" for line in go_version_m(
        read_build_info(str(build_agent("dynamic"))))]

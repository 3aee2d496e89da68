"""`read_elf` against binutils: every fact is compared with what `readelf`/`objdump` print.

The files are built by gcc here (PIE, non-PIE, shared with RPATH and a version script,
static, static-pie, -m32, stripped, without section headers) plus the host's libc.so.6 and,
if installed, the aarch64 cross libc. Broken inputs must all end as one-line InputErrors.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.needs import need, need_tool
from support.toolchain import gcc

from bundler.elf import DF_1_PIE, AbiTag, ElfFacts, read_elf
from bundler.errors import InputError

HOST_LIBC = "/lib/x86_64-linux-gnu/libc.so.6"
CROSS_LIBC = "/usr/aarch64-linux-gnu/lib/libc.so.6"
READELF_MACHINES = {
    "Advanced Micro Devices X86-64": "EM_X86_64",
    "Intel 80386": "EM_386",
    "AArch64": "EM_AARCH64",
}
# The DF_1_* names readelf prints (binutils `readelf.c`), bit by bit.
DF_1_BITS = {"NOW": 0x1, "GLOBAL": 0x2, "NODELETE": 0x8, "ORIGIN": 0x80, "NODEFLIB": 0x800,
             "PIE": DF_1_PIE}

LIB_SOURCE = """
#include <stdio.h>
#include <string.h>
#include <math.h>
int demo(const char *s) { char b[64]; strncpy(b, s, 63); b[63] = 0; return printf("%s", b)
    + (int)exp(1.0); }
"""
VER_SOURCE = "int v1(void) { return 1; }\nint v2(void) { return 2; }\n"
VER_SCRIPT = "DEMO_1.0 { global: v1; local: *; };\nDEMO_2.0 { global: v2; } DEMO_1.0;\n"
PROG_SOURCE = """
#include <stdio.h>
#include <math.h>
int demo(const char *s);
int v1(void);
int v2(void);
int main(int argc, char **argv) { printf("%f\\n", exp(argc)); return demo(argv[0]) + v1()
    + v2(); }
"""
PLAIN_SOURCE = """
#include <stdio.h>
#include <math.h>
int main(int argc, char **argv) { (void)argv; printf("%f\\n", exp(argc)); return 0; }
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every gcc-built input, by name; built once for the module."""
    need_tool("readelf")
    out = tmp_path_factory.mktemp("elf")
    files: dict[str, Path] = {}
    files["libdemo"] = gcc(out / "lib/libdemo.so.1", LIB_SOURCE, "-Wl,-soname,libdemo.so.1",
                           "-Wl,--disable-new-dtags", "-Wl,-rpath,/opt/rp:$ORIGIN/x",
                           "-Wl,-z,nodefaultlib", "-Wl,-z,nodelete", "-lm", shared=True)
    (out / "ver.map").write_text(VER_SCRIPT)
    files["libver"] = gcc(out / "lib/libver.so.1", VER_SOURCE, "-Wl,-soname,libver.so.1",
                          f"-Wl,--version-script={out / 'ver.map'}", shared=True)
    files["prog"] = gcc(out / "bin/prog", PROG_SOURCE, f"-L{out / 'lib'}", "-l:libdemo.so.1",
                        "-l:libver.so.1", "-lm", "-Wl,--enable-new-dtags",
                        "-Wl,-rpath,$ORIGIN/../lib", "-Wl,-z,now")
    files["nopie"] = gcc(out / "bin/nopie", PLAIN_SOURCE, "-no-pie", "-lm")
    files["static"] = gcc(out / "bin/static", PLAIN_SOURCE, "-static", "-lm")
    files["static_pie"] = gcc(out / "bin/static_pie", PLAIN_SOURCE, "-static-pie", "-lm")
    # Without gcc-multilib the m32 tests skip (or fail in CI) through `need`.
    with contextlib.suppress(subprocess.CalledProcessError):
        files["m32"] = gcc(out / "bin/m32", PLAIN_SOURCE, "-m32", "-lm")
    files["stripped"] = out / "bin/stripped"
    shutil.copy(files["prog"], files["stripped"])
    subprocess.run([need_tool("strip"), "--strip-all", str(files["stripped"])], check=True)
    files["noshdr"] = drop_section_headers(files["prog"], out / "bin/noshdr")
    return files


def drop_section_headers(source: Path, out: Path) -> Path:
    """A copy with e_shoff, e_shnum and e_shstrndx zeroed: only program headers remain.

    This is what `sstrip` and some packers leave; the kernel and ld.so never look at
    section headers, so every loader-relevant fact must still be readable.
    """
    data = bytearray(source.read_bytes())
    assert data[4] == 2, "64-bit layout assumed"
    struct.pack_into("<Q", data, 0x28, 0)  # e_shoff
    struct.pack_into("<HH", data, 0x3C, 0, 0)  # e_shnum, e_shstrndx
    out.write_bytes(bytes(data))
    out.chmod(0o755)
    return out


def input_path(built: dict[str, Path], name: str) -> str:
    """A gcc-built file by name, or a system library (skipped if the system lacks it)."""
    if name == "libc":
        return HOST_LIBC
    if name == "cross_libc":
        need(os.path.isfile(CROSS_LIBC), "libc6-arm64-cross is not installed")
        return CROSS_LIBC
    need(name in built, f"{name} could not be built (gcc-multilib missing?)")
    return str(built[name])


def tool_output(tool: str, *args: str) -> str:
    """stdout of readelf/objdump/getcap in the C locale (their wording is what we parse)."""
    result = subprocess.run([need_tool(tool), *args], capture_output=True, text=True,
                            env={"LC_ALL": "C", "PATH": os.environ.get("PATH", "")})
    assert result.returncode == 0, result.stderr
    return result.stdout


GCC_BUILT = ["prog", "nopie", "libdemo", "libver", "static", "static_pie", "m32", "stripped",
             "noshdr"]
EVERYTHING = [*GCC_BUILT, "libc", "cross_libc"]
DYNAMIC = ["prog", "nopie", "libdemo", "m32", "stripped", "libc", "cross_libc"]


# -- ELF header and program headers -----------------------------------------------------------

@pytest.mark.parametrize("name", EVERYTHING)
def test_header_matches_readelf(built: dict[str, Path], name: str) -> None:
    path = input_path(built, name)
    text = tool_output("readelf", "-W", "-h", path)
    field = dict(re.findall(r"^\s+([^:]+):\s+(.*?)\s*$", text, re.M))
    facts = read_elf(path)
    assert facts.ident.elf_class == {"ELF64": 64, "ELF32": 32}[field["Class"]]
    assert facts.ident.little_endian == ("little endian" in field["Data"])
    assert facts.ident.machine == READELF_MACHINES[field["Machine"]]
    assert facts.ident.file_type == "ET_" + field["Type"].split()[0]
    if name in GCC_BUILT:  # readelf calls a DYN with DF_1_PIE "Position-Independent"
        assert facts.pie == ("Position-Independent Executable" in field["Type"])
    assert facts.size == os.path.getsize(path)


@pytest.mark.parametrize("name", EVERYTHING)
def test_interpreter_matches_readelf(built: dict[str, Path], name: str) -> None:
    path = input_path(built, name)
    found = re.search(r"\[Requesting program interpreter: (.*)\]",
                      tool_output("readelf", "-W", "-l", path))
    assert read_elf(path).interpreter == (found.group(1) if found else None)


def readelf_dynamic(path: str) -> dict[str, list[str]]:
    """DT_NEEDED/SONAME/RPATH/RUNPATH values and FLAGS_1 names as `readelf -d` prints them."""
    text = tool_output("readelf", "-W", "-d", path)
    tags: dict[str, list[str]] = {}
    for tag, value in re.findall(r"\((NEEDED|SONAME|RPATH|RUNPATH)\)\s+[^:]+: \[(.*)\]", text):
        tags.setdefault(tag, []).append(value)
    flags = re.search(r"\(FLAGS_1\)\s+Flags: (.*)", text)
    tags["FLAGS_1"] = flags.group(1).split() if flags else []
    tags["dynamic"] = [] if "no dynamic section" in text else ["yes"]
    return tags


@pytest.mark.parametrize("name", EVERYTHING)
def test_dynamic_matches_readelf(built: dict[str, Path], name: str) -> None:
    path = input_path(built, name)
    expected = readelf_dynamic(path)
    facts = read_elf(path)
    assert list(facts.needed) == expected.get("NEEDED", [])
    assert facts.soname == (expected["SONAME"][0] if "SONAME" in expected else None)
    assert facts.rpath == (expected["RPATH"][0] if "RPATH" in expected else None)
    assert facts.runpath == (expected["RUNPATH"][0] if "RUNPATH" in expected else None)
    assert set(expected["FLAGS_1"]) <= set(DF_1_BITS), expected["FLAGS_1"]
    assert facts.flags_1 == sum(DF_1_BITS[flag] for flag in expected["FLAGS_1"])
    assert facts.has_dynamic == bool(expected["dynamic"])


def test_the_inputs_cover_what_they_should(built: dict[str, Path]) -> None:
    """Guards the oracle tests above: each tag really occurs in some input."""
    lib, prog = read_elf(str(built["libdemo"])), read_elf(str(built["prog"]))
    assert lib.rpath == "/opt/rp:$ORIGIN/x" and lib.runpath is None
    assert lib.effective_rpath == lib.rpath
    assert lib.nodeflib and lib.soname == "libdemo.so.1"
    assert prog.runpath == "$ORIGIN/../lib" and prog.rpath is None
    assert prog.needed[:2] == ("libdemo.so.1", "libver.so.1")
    assert prog.flags_1 & 0x1 and prog.pie and prog.kind == "PIE executable"


# -- symbol versions ----------------------------------------------------------------------------

def readelf_version_needs(path: str) -> list[tuple[str, str, bool]]:
    """(file, version, weak) in `.gnu.version_r` order, from `readelf -V`."""
    text = tool_output("readelf", "-W", "-V", path)
    section = text.split("Version needs section", 1)
    if len(section) == 1:
        return []
    needs, current = [], None
    for line in section[1].splitlines():
        file_match = re.search(r"Version: \d+\s+File: (\S+)", line)
        if file_match:
            current = file_match.group(1)
            continue
        name_match = re.search(r"Name: (\S+)\s+Flags: (\S+)", line)
        if name_match and current:
            needs.append((current, name_match.group(1), "WEAK" in name_match.group(2)))
        if line.strip() == "" and needs:
            break
    return needs


def objdump_versioned_imports(path: str) -> set[tuple[str, str]]:
    """(version, symbol) of every undefined dynamic symbol that carries a version."""
    pairs = set()
    for line in tool_output("objdump", "-T", "-w", path).splitlines():
        match = re.match(r"^[0-9a-f]+ .{7} \*UND\*\s+[0-9a-f]+\s+\(?([^\s)]+)\)?\s+(\S+)$", line)
        if match and match.group(1) != "Base":
            pairs.add((match.group(1), match.group(2)))
    return pairs


@pytest.mark.parametrize("name", DYNAMIC)
def test_version_needs_match_readelf(built: dict[str, Path], name: str) -> None:
    path = input_path(built, name)
    expected = readelf_version_needs(path)
    assert expected, "every dynamic input here needs some symbol version"
    assert [(n.file, n.version, n.weak) for n in read_elf(path).version_needs] == expected


@pytest.mark.parametrize("name", DYNAMIC)
def test_version_symbols_match_objdump(built: dict[str, Path], name: str) -> None:
    """Every undefined symbol bound to GLIBC_x.y (or DEMO_n) is listed under that version."""
    path = input_path(built, name)
    expected = objdump_versioned_imports(path)
    assert expected
    facts = read_elf(path)
    ours = {(need.version, symbol) for need in facts.version_needs for symbol in need.symbols}
    assert ours == expected
    assert {symbol for _, symbol in expected} <= set(facts.imported_symbols)


def test_program_needs_its_own_library_versions(built: dict[str, Path]) -> None:
    needs = {(n.file, n.version): n.symbols for n in read_elf(str(built["prog"])).version_needs}
    assert needs[("libver.so.1", "DEMO_1.0")] == ("v1",)
    assert needs[("libver.so.1", "DEMO_2.0")] == ("v2",)
    assert "exp" in needs[("libm.so.6", "GLIBC_2.29")]


def readelf_version_definitions(path: str) -> list[str]:
    """Version names defined by `path`, in order, without the BASE (file name) entry."""
    text = tool_output("readelf", "-W", "-V", path)
    return [name for flags, name in
            re.findall(r"Rev: \d+\s+Flags: (\S+)\s+Index: \d+\s+Cnt: \d+\s+Name: (\S+)", text)
            if "BASE" not in flags]


@pytest.mark.parametrize("name", ["libc", "libver", "cross_libc", "prog"])
def test_version_definitions_match_readelf(built: dict[str, Path], name: str) -> None:
    path = input_path(built, name)
    assert list(read_elf(path).version_definitions) == readelf_version_definitions(path)


def test_libc_defines_the_glibc_versions() -> None:
    definitions = read_elf(HOST_LIBC).version_definitions
    assert definitions[0] == "GLIBC_2.2.5"
    assert {"GLIBC_2.34", "GLIBC_PRIVATE"} <= set(definitions)
    assert "libc.so.6" not in definitions


# -- notes, kinds, file modes -------------------------------------------------------------------

@pytest.mark.parametrize("name", EVERYTHING)
def test_abi_tag_matches_readelf(built: dict[str, Path], name: str) -> None:
    path = input_path(built, name)
    found = re.search(r"OS: (\w+), ABI: (\d+)\.(\d+)\.(\d+)", tool_output("readelf", "-n", path))
    expected = None if found is None else AbiTag(
        found.group(1), (int(found.group(2)), int(found.group(3)), int(found.group(4))))
    assert read_elf(path).abi_tag == expected


def test_libc_abi_tag_is_linux_3_2() -> None:
    """GLIBC-NOTES 2: the minimum kernel of Debian 12's glibc."""
    tag = read_elf(HOST_LIBC).abi_tag
    assert tag == AbiTag("Linux", (3, 2, 0)) and tag.describe() == "Linux 3.2.0"


@pytest.mark.parametrize(("name", "kind", "static", "static_pie"), [
    ("prog", "PIE executable", False, False),
    ("nopie", "executable", False, False),
    ("libdemo", "shared object", False, False),
    ("static", "static executable", True, False),
    ("static_pie", "static-pie executable", True, True),
    ("m32", "PIE executable", False, False),
])
def test_kind(built: dict[str, Path], name: str, kind: str, static: bool,
              static_pie: bool) -> None:
    facts = read_elf(input_path(built, name))
    assert (facts.kind, facts.is_static, facts.is_static_pie) == (kind, static, static_pie)


def test_static_programs_have_no_loader_facts(built: dict[str, Path]) -> None:
    for name in ("static", "static_pie"):
        facts = read_elf(str(built[name]))
        assert facts.interpreter is None and facts.needed == () and facts.version_needs == ()
    assert read_elf(str(built["static"])).ident.file_type == "ET_EXEC"
    assert read_elf(str(built["static_pie"])).ident.file_type == "ET_DYN"
    assert read_elf(str(built["static_pie"])).flags_1 & DF_1_PIE


def test_m32_program(built: dict[str, Path]) -> None:
    facts = read_elf(input_path(built, "m32"))
    assert (facts.ident.elf_class, facts.ident.machine) == (32, "EM_386")
    assert facts.ident.describe() == "ELF 32-bit LSB i386"
    assert facts.interpreter == "/lib/ld-linux.so.2"
    versions = {n.version for n in facts.version_needs}
    assert "GLIBC_2.0" in versions  # i386 symbols start at 2.0, x86-64's at 2.2.5


def copy_with_mode(source: Path, out: Path, mode: int) -> str:
    shutil.copy(source, out)
    os.chmod(out, mode)
    return str(out)


def test_setuid_and_setgid(built: dict[str, Path], tmp_path: Path) -> None:
    plain = copy_with_mode(built["nopie"], tmp_path / "plain", 0o755)
    suid = copy_with_mode(built["nopie"], tmp_path / "suid", 0o4755)
    sgid = copy_with_mode(built["nopie"], tmp_path / "sgid", 0o2755)
    assert (read_elf(plain).setuid, read_elf(plain).setgid) == (False, False)
    assert (read_elf(suid).setuid, read_elf(suid).setgid) == (True, False)
    assert (read_elf(sgid).setuid, read_elf(sgid).setgid) == (False, True)


def test_mode_change_is_seen_on_the_next_read(built: dict[str, Path], tmp_path: Path) -> None:
    """The per-file cache must not hide a chmod done after a first read."""
    path = copy_with_mode(built["nopie"], tmp_path / "later", 0o755)
    assert not read_elf(path).setuid
    os.chmod(path, 0o4755)
    assert read_elf(path).setuid


def test_file_capabilities(built: dict[str, Path], tmp_path: Path) -> None:
    setcap = need_tool("setcap")
    path = copy_with_mode(built["nopie"], tmp_path / "capped", 0o755)
    assert read_elf(path).capabilities is None
    result = subprocess.run([setcap, "cap_net_raw+ep", path], capture_output=True, text=True)
    need(result.returncode == 0, f"setcap failed here: {result.stderr.strip()}")
    caps = read_elf(path).capabilities
    assert caps is not None
    # struct vfs_cap_data: magic_etc (revision | effective bit), permitted[0], inheritable[0]
    magic_etc, permitted, inheritable = struct.unpack_from("<III", caps)
    assert magic_etc & 0xFF000000 in (0x02000000, 0x03000000)  # VFS_CAP_REVISION_2 or _3
    assert magic_etc & 0x1  # effective
    assert permitted == 1 << 13 and inheritable == 0  # CAP_NET_RAW is capability 13
    if shutil.which("getcap"):
        assert "cap_net_raw=ep" in tool_output("getcap", path)


# -- damaged section tables: program headers still speak ---------------------------------------

def loader_facts(facts: ElfFacts) -> tuple:
    """What the kernel and ld.so read from program headers and the dynamic segment."""
    return (facts.ident, facts.pie, facts.interpreter, facts.needed, facts.rpath,
            facts.runpath, facts.soname, facts.flags_1, facts.abi_tag, facts.has_dynamic,
            facts.kind)


def test_stripped_binary_keeps_all_facts(built: dict[str, Path]) -> None:
    full, stripped = read_elf(str(built["prog"])), read_elf(str(built["stripped"]))
    assert ".symtab" in full.section_names and ".symtab" not in stripped.section_names
    assert loader_facts(stripped) == loader_facts(full)
    assert stripped.version_needs == full.version_needs
    assert stripped.imported_symbols == full.imported_symbols


def test_no_section_headers_keeps_program_header_facts(built: dict[str, Path]) -> None:
    noshdr = str(built["noshdr"])
    assert "There are no sections" in tool_output("readelf", "-W", "-S", noshdr)
    facts = read_elf(noshdr)
    assert facts.section_names == ()
    assert loader_facts(facts) == loader_facts(read_elf(str(built["prog"])))
    assert facts.interpreter == "/lib64/ld-linux-x86-64.so.2"
    assert facts.needed[:2] == ("libdemo.so.1", "libver.so.1")


def test_corrupt_version_count_does_not_loop(built: dict[str, Path], tmp_path: Path) -> None:
    """sh_info of .gnu.version_r inflated: ld.so stops at vn_next == 0, and so must we."""
    data = bytearray(built["prog"].read_bytes())
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    for number in range(shnum):
        header = shoff + number * shentsize
        if struct.unpack_from("<I", data, header + 4)[0] == 0x6FFFFFFE:  # SHT_GNU_verneed
            struct.pack_into("<I", data, header + 44, 20000)  # sh_info: entry count
            break
    else:
        pytest.fail("no .gnu.version_r in the test program")
    path = tmp_path / "inflated"
    path.write_bytes(bytes(data))
    assert read_elf(str(path)).version_needs == read_elf(str(built["prog"])).version_needs


# -- inputs that are not usable ELF files ----------------------------------------------------------

@dataclass(frozen=True)
class BadInput:
    """A way to make an unusable input, and the words its error must contain."""

    name: str
    kind: str  # regex on the message after "PATH: "


def make_bad(case: str, built: dict[str, Path], tmp_path: Path) -> str:
    """Create the input for `case` under `tmp_path` and return its path."""
    elf = built["prog"].read_bytes()
    path = tmp_path / case
    if case == "missing":
        return str(path)
    if case == "directory":
        path.mkdir()
    elif case == "text":
        path.write_text("just some text\nnot a program\n")
    elif case == "script":
        path.write_text("#!/bin/sh\necho hello\n")
        path.chmod(0o755)
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "cut40":
        path.write_bytes(elf[:40])
    elif case == "cut_half":
        path.write_bytes(elf[: len(elf) // 2])
    elif case == "huge_phoff":
        data = bytearray(elf)
        struct.pack_into("<Q", data, 0x20, 1 << 62)  # e_phoff far beyond any file
        path.write_bytes(bytes(data))
    elif case.startswith("magic_noise"):
        seed = int(case.rsplit("_", 1)[1])
        path.write_bytes(b"\x7fELF" + random.Random(seed).randbytes(4000))
    elif case.startswith("ident_noise"):  # a valid 64-bit LSB ident, then noise
        seed = int(case.rsplit("_", 1)[1])
        path.write_bytes(b"\x7fELF\x02\x01\x01" + bytes(9) + random.Random(seed).randbytes(4000))
    else:
        raise AssertionError(case)
    return str(path)


BAD_INPUTS = [
    BadInput("missing", "no such file"),
    BadInput("directory", "is a directory"),
    BadInput("text", "not an ELF file"),
    BadInput("script", r"is a script \('#!/bin/sh'\)"),
    BadInput("empty", "not an ELF file|empty"),
    BadInput("cut40", "truncated or corrupt"),
    BadInput("cut_half", "truncated or corrupt"),
    BadInput("huge_phoff", "truncated or corrupt"),
    *(BadInput(f"magic_noise_{seed}", "truncated or corrupt") for seed in range(4)),
    *(BadInput(f"ident_noise_{seed}", "truncated or corrupt") for seed in range(12)),
]


@pytest.mark.parametrize("bad", BAD_INPUTS, ids=lambda bad: bad.name)
def test_bad_input_is_one_line_input_error(
    built: dict[str, Path], tmp_path: Path, bad: BadInput
) -> None:
    path = make_bad(bad.name, built, tmp_path)
    with pytest.raises(InputError) as caught:
        read_elf(path)
    message = caught.value.message
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert re.search(bad.kind, message[len(path) + 2:]), message


def test_every_truncation_is_an_input_error(built: dict[str, Path], tmp_path: Path) -> None:
    """The loader cannot map a cut file; whichever structure the cut lands in, we say so."""
    elf = built["nopie"].read_bytes()
    for length in range(0, len(elf), 37):
        path = tmp_path / f"cut{length}"
        path.write_bytes(elf[:length])
        with pytest.raises(InputError, match=r"truncated or corrupt|not an ELF file"):
            read_elf(str(path))
        path.unlink()


def test_damaged_bytes_raise_only_input_error(built: dict[str, Path], tmp_path: Path) -> None:
    """Random byte changes (mostly in the headers): a result or an InputError, nothing else."""
    elf = built["prog"].read_bytes()
    path = tmp_path / "damaged"
    for seed in range(600):
        chance = random.Random(seed)
        data = bytearray(elf)
        span = 1024 if seed % 2 else len(data)
        for _ in range(chance.randrange(1, 12)):
            data[chance.randrange(0, span)] = chance.randrange(256)
        path.write_bytes(bytes(data))
        try:
            read_elf(str(path))
        except InputError as error:
            assert "\n" not in error.message and error.message.startswith(f"{path}: ")

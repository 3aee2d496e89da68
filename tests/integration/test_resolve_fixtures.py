"""The resolver on real gcc-built fixtures, checked against the host's own loader.

Each scenario builds small shared objects and a program with exactly the dynamic tags the
case is about (DT_RPATH, DT_RUNPATH, $ORIGIN, DF_1_NODEFLIB, glibc-hwcaps dirs, files of the
wrong class or not ELF at all), asserts the exact file `resolve_closure` picks for each
library and why (`found_via`, `via_object`), and, wherever the host loader can load the
program, that the loader maps the same real files.

Two ways of asking the host loader are used. `ld.so --list` (`support.toolchain.ld_so_list`) for
programs that load; for a missing library glibc 2.36's `--list` exits 127 at the first one,
so those cases use ldd's trace mode (`LD_TRACE_LOADED_OBJECTS=1`), which prints
`NAME => not found` and goes on. A program is always given to the loader by its real path:
started through an explicit `ld.so PATH`, `$ORIGIN` is PATH as typed, not what the kernel
would use.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from support.needs import need, need_tool
from support.toolchain import HOST_LOADER, gcc, ld_so_list

from bundler import runtime_loads
from bundler.errors import MissingLibraryError
from bundler.resolve import (
    Closure,
    Library,
    ResolveOptions,
    Unresolved,
    resolve_closure,
    resolve_closures,
)
from bundler.sysroot import Sysroot

Builder = Callable[..., Path]
DT_RUNPATH = 29


# -- building fixtures ---------------------------------------------------------------------
def func_of(soname: str) -> str:
    """The C function a fixture library defines, so that every DT_NEEDED has a real use."""
    return re.sub(r"\W", "_", soname.split(".so")[0]) + "_fn"


def lib_source(soname: str, needs: Sequence[str] = (), tag: int = 0) -> str:
    """C text defining `func_of(soname)`; it calls each needed library, returns `tag` + sum."""
    lines = [f"int {func_of(name)}(void);" for name in needs]
    body = " + ".join([str(tag), *(f"{func_of(name)}()" for name in needs)])
    lines.append(f"int {func_of(soname)}(void) {{ return {body}; }}")
    return "\n".join(lines) + "\n"


def build_lib(c_lib: Builder, out: Path, *flags: str, needs: Sequence[Path] = (),
              soname: str | None = None, tag: int = 0) -> Path:
    """A shared library with SONAME `soname` (default: its file name) linked to `needs`.

    `needs` are linked by path, so each DT_NEEDED is that file's SONAME, which these
    fixtures keep equal to its file name. `tag` makes same-named copies distinct files.
    """
    soname = soname or out.name
    source = lib_source(soname, [path.name for path in needs], tag)
    return c_lib(out, source, f"-Wl,-soname,{soname}", *map(str, needs), *flags)


def build_prog(out: Path, needs: Sequence[Path | str], *flags: str,
               calls: Sequence[str] | None = None) -> Path:
    """A program calling one function of each needed library (`calls`: their SONAMEs).

    `-rpath-link` names every fixture dir so that ld, which checks the needs of needed
    libraries when it links a program, finds them without their paths entering the file.
    """
    calls = calls if calls is not None else [Path(n).name for n in needs]
    decls = "".join(f"int {func_of(name)}(void);\n" for name in calls)
    total = " + ".join(["0", *(f"{func_of(name)}()" for name in calls)])
    source = f"{decls}int main(void) {{ return ({total}) < 0; }}\n"
    dirs = sorted({str(Path(n).parent) for n in needs if "/" in str(n)})
    links = [f"-Wl,-rpath-link,{d}" for d in dirs]
    return gcc(out, source, *map(str, needs), *links, *flags)


def with_rpath(*dirs: Path | str) -> tuple[str, str]:
    """Link flags giving DT_RPATH (the old tag, inherited by dependencies)."""
    return "-Wl,--disable-new-dtags", "-Wl,-rpath," + ":".join(map(str, dirs))


def with_runpath(*dirs: Path | str) -> tuple[str, str]:
    """Link flags giving DT_RUNPATH (searched for the object's own needs only)."""
    return "-Wl,--enable-new-dtags", "-Wl,-rpath," + ":".join(map(str, dirs))


def retag_debug_entry(path: Path, tag: int, value: int) -> None:
    """Rewrite the file's DT_DEBUG entry in place as (`tag`, `value`).

    GNU ld emits DT_RPATH or DT_RUNPATH, never both, and patchelf converts one into the
    other; DT_DEBUG is only a slot the loader fills for debuggers, so reusing it is the
    smallest edit that yields a real file carrying both tags.
    """
    with path.open("r+b") as handle:
        elf = ELFFile(handle)
        dynamic = elf.get_section_by_name(".dynamic")
        assert dynamic is not None and elf.elfclass == 64 and elf.little_endian
        index = next(i for i, t in enumerate(dynamic.iter_tags()) if t.entry.d_tag == "DT_DEBUG")
        handle.seek(dynamic["sh_offset"] + index * dynamic["sh_entsize"])
        handle.write(struct.pack("<qQ", tag, value))


def dynamic_value(path: Path, tag: str) -> int:
    """The raw d_val of the first dynamic entry `tag` (a .dynstr offset for string tags)."""
    with path.open("rb") as handle:
        dynamic = ELFFile(handle).get_section_by_name(".dynamic")
        assert dynamic is not None
        return next(t.entry.d_val for t in dynamic.iter_tags() if t.entry.d_tag == tag)


# -- our side -------------------------------------------------------------------------------
def resolve(program: Path | str, library_path: Sequence[str] = (),
            allow_missing: bool = False) -> Closure:
    return resolve_closure(str(program), Sysroot("/"),
                           ResolveOptions(tuple(library_path), allow_missing))


def lib(closure: Closure, name: str) -> Library:
    """The one library of the closure that was requested as `name`."""
    matches = [library for library in closure.libraries if library.name == name]
    assert len(matches) == 1, [library.name for library in closure.libraries]
    return matches[0]


def our_paths(closure: Closure) -> set[str]:
    """Real paths of everything we say the loader maps: the libraries and the loader."""
    assert closure.loader is not None
    return {os.path.realpath(library.host_path) for library in closure.libraries} | {
        closure.loader.realpath
    }


def assert_loader_agrees(closure: Closure, program: Path, library_path: Sequence[str] = (),
                         variants: dict[str, str] | None = None) -> None:
    """The host loader maps the same real files (a hwcaps copy counts as its baseline)."""
    swap = variants or {}
    theirs = ld_so_list(os.path.realpath(program), library_path=library_path)
    assert {swap.get(path, path) for path in theirs} == our_paths(closure)


# -- the loader's side ----------------------------------------------------------------------
@dataclass(frozen=True)
class Trace:
    """What the loader printed in trace mode (ldd): name -> path as opened, and the misses."""

    returncode: int
    stderr: str
    found: dict[str, str]
    missing: frozenset[str]

    def real_paths(self) -> set[str]:
        return {os.path.realpath(path) for path in self.found.values()}


def trace(program: Path | str, *, by_kernel: bool = False, chroot: Path | None = None,
          ) -> Trace:
    """Run the loader in trace mode on `program`, started by the kernel or explicitly.

    `by_kernel` execs the program itself, so `$ORIGIN` comes from /proc/self/exe; the
    explicit start (`ld.so PROGRAM`) keeps the path as typed. Nothing is executed past the
    loader: trace mode exits after mapping. `chroot` enters a sysroot in the child itself,
    since under chroot(8) the host's loader would take LD_TRACE_LOADED_OBJECTS for chroot.
    """

    def enter() -> None:
        if chroot is not None:
            os.chroot(chroot)
            os.chdir("/")

    command = [str(program)] if by_kernel else [HOST_LOADER, str(program)]
    result = subprocess.run(command, capture_output=True, text=True,
                            env={"LD_TRACE_LOADED_OBJECTS": "1"}, preexec_fn=enter)
    found: dict[str, str] = {}
    missing: set[str] = set()
    for line in result.stdout.splitlines():
        named = re.match(r"\s*(\S+) => (.*?)(?: \(0x[0-9a-f]+\))?$", line)
        bare = re.match(r"\s*(/\S+) \(0x[0-9a-f]+\)$", line)
        if named and named.group(2) == "not found":
            missing.add(named.group(1))
        elif named:
            found[named.group(1)] = named.group(2)
        elif bare:
            found[bare.group(1)] = bare.group(1)
    return Trace(result.returncode, result.stderr, found, frozenset(missing))


def list_directly(program: Path | str) -> subprocess.CompletedProcess[str]:
    """`ld.so --list` on the program's real path, keeping a failure (`ld_so_list` raises)."""
    return subprocess.run([HOST_LOADER, "--list", os.path.realpath(program)],
                          capture_output=True, text=True, env={})


def says_not_found(listing: subprocess.CompletedProcess[str], name: str) -> bool:
    """Whether `ld.so --list` reports `name` missing: glibc 2.36 stops with "cannot open
    shared object file" (exit 127) where ldd's trace mode prints "NAME => not found"."""
    return (f"{name} => not found" in listing.stdout
            or f"{name}: cannot open shared object file" in listing.stderr)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The test's directory by its real path, so expected paths need no symlink resolving."""
    return tmp_path.resolve()


# -- 1. DT_RPATH is inherited down the loading chain ---------------------------------------
def test_rpath_of_program_is_inherited_by_grandchildren(root: Path, c_lib: Builder) -> None:
    """Only the program's DT_RPATH names the dirs of libb and libc_: they are found through
    it although they are needed by liba and libb, which have no search path of their own."""
    first, rest = root / "a", root / "bc"
    lib_c = build_lib(c_lib, rest / "libchain_c.so.1")
    lib_b = build_lib(c_lib, rest / "libchain_b.so.1", needs=[lib_c])
    lib_a = build_lib(c_lib, first / "libchain_a.so.1", needs=[lib_b])
    prog = build_prog(root / "bin" / "prog", [lib_a], *with_rpath(first, rest))

    closure = resolve(prog)

    assert (closure.program.rpath, closure.program.runpath) == (f"{first}:{rest}", None)
    expected = {
        "libchain_a.so.1": (first, "prog", 1),
        "libchain_b.so.1": (rest, "libchain_a.so.1", 2),
        "libchain_c.so.1": (rest, "libchain_b.so.1", 3),
    }
    for name, (directory, loaded_by, depth) in expected.items():
        found = lib(closure, name)
        assert found.path == f"{directory}/{name}"
        assert (found.found_via, found.via_object, found.search_dir) == ("rpath", "prog",
                                                                         str(directory))
        assert (found.loaded_by, found.depth) == (loaded_by, depth)
        assert found.facts.rpath is None and found.facts.runpath is None
    assert closure.chain_of(lib(closure, "libchain_c.so.1")) == (
        "prog", "libchain_a.so.1", "libchain_b.so.1", "libchain_c.so.1")
    assert_loader_agrees(closure, prog)


def test_requesters_own_rpath_comes_before_the_inherited_one(root: Path, c_lib: Builder,
                                                             ) -> None:
    """glibc walks DT_RPATH from the requesting object up to the program: libb's own
    RPATH copy of libc_ wins over the one in the program's RPATH dir."""
    shared, own = root / "shared", root / "own"
    build_lib(c_lib, shared / "libchain_c.so.1", tag=1)
    own_c = build_lib(c_lib, own / "libchain_c.so.1", tag=2)
    lib_b = build_lib(c_lib, shared / "libchain_b.so.1", *with_rpath(own), needs=[own_c])
    lib_a = build_lib(c_lib, shared / "libchain_a.so.1", needs=[lib_b])
    prog = build_prog(root / "prog", [lib_a], *with_rpath(shared), "-Wl,-rpath-link," + str(own))

    closure = resolve(prog)

    found = lib(closure, "libchain_c.so.1")
    assert (found.path, found.found_via, found.via_object) == (
        f"{own}/libchain_c.so.1", "rpath", "libchain_b.so.1")
    assert lib(closure, "libchain_b.so.1").via_object == "prog"
    assert_loader_agrees(closure, prog)


def test_rpath_of_an_intermediate_loader_is_inherited(root: Path, c_lib: Builder) -> None:
    """libb has no search path; its loader liba has DT_RPATH A. libc_ is found in A
    through liba, before the program's RPATH dir P (which also holds a copy)."""
    top, middle = root / "p", root / "a"
    build_lib(c_lib, top / "libchain_c.so.1", tag=1)
    mid_c = build_lib(c_lib, middle / "libchain_c.so.1", tag=2)
    lib_b = build_lib(c_lib, middle / "libchain_b.so.1", needs=[mid_c])
    lib_a = build_lib(c_lib, top / "libchain_a.so.1", *with_rpath(middle), needs=[lib_b])
    prog = build_prog(root / "prog", [lib_a], *with_rpath(top), "-Wl,-rpath-link," + str(middle))

    closure = resolve(prog)

    found = lib(closure, "libchain_c.so.1")
    assert (found.path, found.found_via, found.via_object) == (
        str(mid_c), "rpath", "libchain_a.so.1")
    assert lib(closure, "libchain_b.so.1").via_object == "libchain_a.so.1"
    assert_loader_agrees(closure, prog)


def test_runpath_on_a_library_cuts_off_the_inherited_rpath(root: Path, c_lib: Builder) -> None:
    """A requester with DT_RUNPATH skips every DT_RPATH, its loaders' included: libb, only
    in the program's RPATH dir, is not found for liba, whose RUNPATH names an empty dir."""
    shared, empty = root / "lib", root / "empty"
    empty.mkdir()
    lib_b = build_lib(c_lib, shared / "libcut_b.so.1")
    lib_a = build_lib(c_lib, shared / "libcut_a.so.1", *with_runpath(empty), needs=[lib_b])
    prog = build_prog(root / "prog", [lib_a], *with_rpath(shared))

    closure = resolve(prog, allow_missing=True)

    assert closure.search is not None
    assert lib(closure, "libcut_a.so.1").found_via == "rpath"
    assert closure.unresolved == (Unresolved(
        "libcut_b.so.1", ("prog", "libcut_a.so.1"),
        (str(empty), "ld.so.cache", *closure.search.system_dirs), "not found"),)
    loader = trace(prog)
    assert loader.missing == {"libcut_b.so.1"}
    assert loader.real_paths() == our_paths(closure)


# -- 2. DT_RUNPATH is not inherited -----------------------------------------------------------
def test_runpath_does_not_reach_a_grandchild(root: Path, c_lib: Builder) -> None:
    """The program's DT_RUNPATH finds liba but not liba's own need, though both sit in the
    same dir: DT_RUNPATH serves only the object that carries it."""
    shared = root / "x"
    lib_b = build_lib(c_lib, shared / "libb.so.1")
    lib_a = build_lib(c_lib, shared / "liba.so.1", needs=[lib_b])
    prog = build_prog(root / "prog", [lib_a], *with_runpath(shared))

    with pytest.raises(MissingLibraryError) as raised:
        resolve(prog)
    closure = resolve(prog, allow_missing=True)

    assert closure.search is not None
    searched = ("ld.so.cache", *closure.search.system_dirs)
    assert raised.value.message == (
        "prog -> liba.so.1 -> libb.so.1: not found; searched: " + ", ".join(searched))
    assert closure.unresolved == (
        Unresolved("libb.so.1", ("prog", "liba.so.1"), searched, "not found"),)
    found = lib(closure, "liba.so.1")
    assert (found.path, found.found_via, found.via_object) == (
        f"{shared}/liba.so.1", "runpath", "prog")

    loader = trace(os.path.realpath(prog))
    assert loader.missing == {"libb.so.1"}
    assert loader.found["liba.so.1"] == found.path
    assert loader.real_paths() == our_paths(closure)
    assert says_not_found(list_directly(prog), "libb.so.1")


def test_runpath_origin_on_the_library_finds_its_own_need(root: Path, c_lib: Builder) -> None:
    """With DT_RUNPATH `$ORIGIN` on liba itself, libb is found next to it ("runpath" of
    liba, not of the program)."""
    shared = root / "x"
    lib_b = build_lib(c_lib, shared / "libb.so.1")
    lib_a = build_lib(c_lib, shared / "liba.so.1", *with_runpath("$ORIGIN"), needs=[lib_b])
    prog = build_prog(root / "prog", [lib_a], *with_runpath(shared))

    closure = resolve(prog)

    found = lib(closure, "libb.so.1")
    assert (found.path, found.found_via, found.via_object, found.search_dir) == (
        f"{shared}/libb.so.1", "runpath", "liba.so.1", str(shared))
    assert_loader_agrees(closure, prog)


# -- 3. $ORIGIN ---------------------------------------------------------------------------------
@pytest.mark.parametrize("origin", ["$ORIGIN", "${ORIGIN}"])
def test_origin_with_dotdot(root: Path, c_lib: Builder, origin: str) -> None:
    """RPATH `$ORIGIN/../lib` on DIR/bin/prog: the loader opens DIR/bin/../lib/NAME, and
    the path it prints is exactly ours."""
    liborg = build_lib(c_lib, root / "lib" / "liborg.so.1")
    prog = build_prog(root / "bin" / "prog", [liborg], *with_rpath(f"{origin}/../lib"))

    closure = resolve(prog)

    assert closure.program.rpath == f"{origin}/../lib"
    found = lib(closure, "liborg.so.1")
    assert found.path == f"{root}/bin/../lib/liborg.so.1"
    assert found.realpath == str(liborg)
    assert (found.found_via, found.via_object) == ("rpath", "prog")
    assert trace(prog).found["liborg.so.1"] == found.path
    assert_loader_agrees(closure, prog)


@pytest.mark.parametrize(("link", "explicit_start_gets"), [("file", "decoy"), ("dir", "real")])
def test_origin_of_a_program_started_through_a_symlink(root: Path, c_lib: Builder, link: str,
                                                       explicit_start_gets: str) -> None:
    """The kernel gives ld.so /proc/self/exe, the program's real path, so `$ORIGIN/../lib`
    is DIR/real/lib even when the program is started as DIR/alias/prog. A decoy sits where
    the symlink's own dir (or a lexical `..`) would lead: DIR/lib."""
    real = build_lib(c_lib, root / "real" / "lib" / "liborg.so.1", tag=1)
    decoy = build_lib(c_lib, root / "lib" / "liborg.so.1", tag=2)
    prog = build_prog(root / "real" / "bin" / "prog", [real], *with_rpath("$ORIGIN/../lib"))
    if link == "file":
        (root / "alias").mkdir()
        (root / "alias" / "prog").symlink_to("../real/bin/prog")
    else:
        (root / "alias").symlink_to("real/bin")
    started = root / "alias" / "prog"

    closure = resolve(started)

    found = lib(closure, "liborg.so.1")
    assert found.path == f"{root}/real/bin/../lib/liborg.so.1"
    assert found.realpath == str(real)
    by_kernel = trace(started, by_kernel=True)
    assert by_kernel.found["liborg.so.1"] == found.path
    assert by_kernel.real_paths() == our_paths(closure)
    assert_loader_agrees(closure, prog)
    # Why the oracle is always given the real path: `ld.so PATH` takes $ORIGIN from PATH.
    explicit = os.path.realpath(trace(started).found["liborg.so.1"])
    assert explicit == str({"decoy": decoy, "real": real}[explicit_start_gets])


# -- 4. a library of the wrong class ---------------------------------------------------------
def test_wrong_class_candidate_is_skipped(root: Path, c_lib: Builder) -> None:
    """A 32-bit libwcls.so.1 first on the RPATH is passed over, as the loader does; the
    search goes on to the 64-bit copy, and the skip is noted."""
    narrow, wide = root / "a", root / "b"
    try:
        build_lib(c_lib, narrow / "libwcls.so.1", "-m32")
    except subprocess.CalledProcessError as error:
        need(False, f"gcc -m32 cannot build: {error.stderr.strip()[:200]}")
    good = build_lib(c_lib, wide / "libwcls.so.1")
    prog = build_prog(root / "prog", [good], *with_rpath(narrow, wide))

    closure = resolve(prog)

    found = lib(closure, "libwcls.so.1")
    assert (found.path, found.found_via, found.search_dir) == (str(good), "rpath", str(wide))
    assert any(note.startswith(f"skipped {narrow}/libwcls.so.1: ELF 32-bit")
               for note in closure.notes), closure.notes
    assert_loader_agrees(closure, prog)


# -- 5. versioned symlinks ------------------------------------------------------------------
def test_versioned_symlink_chain(root: Path, c_lib: Builder) -> None:
    """libver.so -> libver.so.1 -> libver.so.1.2.3 with SONAME libver.so.1: the program
    needs libver.so.1, the loader opens DIR/libver.so.1, and the file is libver.so.1.2.3."""
    shared = root / "lib"
    full = build_lib(c_lib, shared / "libver.so.1.2.3", soname="libver.so.1")
    (shared / "libver.so.1").symlink_to("libver.so.1.2.3")
    (shared / "libver.so").symlink_to("libver.so.1")
    prog = build_prog(root / "prog", [], f"-L{shared}", "-lver", *with_rpath(shared),
                      calls=["libver.so.1"])

    closure = resolve(prog)

    assert "libver.so.1" in closure.program.needed
    found = lib(closure, "libver.so.1")
    assert (found.path, found.realpath, found.soname) == (
        f"{shared}/libver.so.1", str(full), "libver.so.1")
    assert os.path.realpath(found.host_path) == str(full)
    assert trace(prog).found["libver.so.1"] == found.path
    assert_loader_agrees(closure, prog)


# -- 6. a dependency cycle --------------------------------------------------------------------
def test_cycle_is_resolved_once_each(root: Path, c_lib: Builder) -> None:
    """libcyc_a needs libcyc_b needs libcyc_a. libcyc_b is linked against a stub libcyc_a
    (same SONAME), then the real libcyc_a against libcyc_b. Each is loaded once."""
    shared = root / "lib"
    stub = c_lib(root / "stub" / "libcyc_a.so.1", "int cyc_leaf(void) { return 0; }\n",
                 "-Wl,-soname,libcyc_a.so.1")
    lib_b = c_lib(shared / "libcyc_b.so.1",
                  "int cyc_leaf(void);\nint libcyc_b_fn(void) { return cyc_leaf() + 1; }\n",
                  "-Wl,-soname,libcyc_b.so.1", str(stub))
    lib_a = c_lib(shared / "libcyc_a.so.1",
                  "int libcyc_b_fn(void);\nint cyc_leaf(void) { return 0; }\n"
                  "int libcyc_a_fn(void) { return libcyc_b_fn(); }\n",
                  "-Wl,-soname,libcyc_a.so.1", str(lib_b))
    prog = build_prog(root / "prog", [lib_a], *with_rpath(shared))

    closure = resolve(prog)

    names = [library.name for library in closure.libraries]
    assert names.count("libcyc_a.so.1") == 1 and names.count("libcyc_b.so.1") == 1
    cyc_a, cyc_b = lib(closure, "libcyc_a.so.1"), lib(closure, "libcyc_b.so.1")
    assert "libcyc_a.so.1" in cyc_b.facts.needed
    assert (cyc_a.path, cyc_b.path) == (str(lib_a), str(lib_b))
    assert cyc_a.requested_by == ("prog", "libcyc_b.so.1")
    assert cyc_b.requested_by == ("libcyc_a.so.1",)
    assert_loader_agrees(closure, prog)


# -- 7. glibc-hwcaps --------------------------------------------------------------------------
def hwcaps_searched(level: str) -> bool:
    """Whether the host loader says it searches glibc-hwcaps/`level` on this CPU."""
    text = subprocess.run([HOST_LOADER, "--help"], capture_output=True, text=True,
                          env={}).stdout
    return re.search(rf"^\s*{re.escape(level)} \(supported, searched\)", text, re.M) is not None


def test_hwcaps_variant_is_recorded_but_baseline_is_taken(root: Path, c_lib: Builder) -> None:
    """DIR/glibc-hwcaps/x86-64-v2/libhw.so.1 is what ld.so takes on a v2 CPU; a bundle
    must take DIR/libhw.so.1, which runs on every x86-64, and list the variant."""
    shared = root / "lib"
    base = build_lib(c_lib, shared / "libhw.so.1", tag=1)
    variant = build_lib(c_lib, shared / "glibc-hwcaps" / "x86-64-v2" / "libhw.so.1", tag=2)
    prog = build_prog(root / "prog", [base], *with_rpath(shared))

    closure = resolve(prog)

    found = lib(closure, "libhw.so.1")
    assert (found.path, found.found_via, found.via_object) == (str(base), "rpath", "prog")
    assert found.hwcap_variants == (str(variant),)
    if hwcaps_searched("x86-64-v2"):
        assert str(variant) in ld_so_list(prog)
        assert_loader_agrees(closure, prog, variants={str(variant): str(base)})


# -- 8. a missing library ----------------------------------------------------------------------
def test_missing_library(root: Path, c_lib: Builder) -> None:
    """A needed library that is nowhere: the error names the chain and every place
    searched; with allow_missing the rest of the closure is still resolved."""
    shared = root / "lib"
    gone = build_lib(c_lib, shared / "libgone.so.1")
    prog = build_prog(root / "prog", [gone], *with_rpath(shared))
    gone.unlink()

    with pytest.raises(MissingLibraryError) as raised:
        resolve(prog)
    closure = resolve(prog, allow_missing=True)

    assert closure.search is not None
    searched = (str(shared), "ld.so.cache", *closure.search.system_dirs)
    assert raised.value.message == (
        "prog -> libgone.so.1: not found; searched: " + ", ".join(searched))
    assert closure.unresolved == (Unresolved("libgone.so.1", ("prog",), searched, "not found"),)
    assert lib(closure, "libc.so.6").found_via == "cache"

    loader = trace(prog)
    assert loader.missing == {"libgone.so.1"}
    assert loader.real_paths() == our_paths(closure)
    assert says_not_found(list_directly(prog), "libgone.so.1")


# -- 9. --library-path (the loader's LD_LIBRARY_PATH) -----------------------------------------
@pytest.mark.parametrize(("tags", "winner", "via"), [
    (with_rpath, "r", ("rpath", "prog")),
    (with_runpath, "l", ("library_path", None)),
])
def test_library_path_between_rpath_and_runpath(
    root: Path, c_lib: Builder, tags: Callable[..., tuple[str, str]], winner: str,
    via: tuple[str, str | None],
) -> None:
    """The same library in the program's own search dir and in a --library-path dir:
    DT_RPATH is searched before --library-path, DT_RUNPATH after it."""
    own, extra = root / "r", root / "l"
    mine = build_lib(c_lib, own / "libord.so.1", tag=1)
    build_lib(c_lib, extra / "libord.so.1", tag=2)
    prog = build_prog(root / "prog", [mine], *tags(own))

    closure = resolve(prog, library_path=[str(extra)])

    found = lib(closure, "libord.so.1")
    assert found.path == str({"r": own, "l": extra}[winner] / "libord.so.1")
    assert (found.found_via, found.via_object) == via
    assert_loader_agrees(closure, prog, library_path=[str(extra)])


def test_builders_own_ld_library_path_is_ignored(root: Path, c_lib: Builder,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """LD_LIBRARY_PATH of the process running the resolver says nothing about the target:
    a decoy it names (which would win for the loader if given to it) is not taken."""
    own, decoy_dir = root / "u", root / "decoy"
    mine = build_lib(c_lib, own / "libenv.so.1", tag=1)
    decoy = build_lib(c_lib, decoy_dir / "libenv.so.1", tag=2)
    prog = build_prog(root / "prog", [mine], *with_runpath(own))
    assert str(decoy) in ld_so_list(prog, library_path=[str(decoy_dir)])
    monkeypatch.setenv("LD_LIBRARY_PATH", str(decoy_dir))

    closure = resolve(prog)

    found = lib(closure, "libenv.so.1")
    assert (found.path, found.found_via, found.via_object) == (str(mine), "runpath", "prog")
    assert_loader_agrees(closure, prog)


# -- 10. DF_1_NODEFLIB ----------------------------------------------------------------------
@pytest.mark.parametrize(("nodeflib", "program_needs_libm"),
                         [(True, False), (False, False), (True, True)])
def test_nodeflib_skips_default_dirs(root: Path, c_lib: Builder, nodeflib: bool,
                                     program_needs_libm: bool) -> None:
    """libndf needs libm.so.6, which only the default dirs (and cache entries under them)
    hold. With `-z nodefaultlib` on libndf it is not found, unless the program has already
    loaded it; without the flag the cache finds it."""
    shared = root / "lib"
    flags = ["-Wl,-z,nodefaultlib"] if nodeflib else []
    libndf = c_lib(shared / "libndf.so.1",
                   "double cos(double);\nint libndf_fn(void) { return (int)cos(0.5); }\n",
                   "-Wl,-soname,libndf.so.1", "-fno-builtin", "-Wl,--no-as-needed", "-lm",
                   *flags)
    extra = ["-Wl,--no-as-needed", "-lm"] if program_needs_libm else []
    prog = build_prog(root / "prog", [libndf], *with_rpath(shared), *extra,
                      calls=["libndf.so.1"])

    closure = resolve(prog, allow_missing=True)

    assert closure.search is not None
    assert lib(closure, "libndf.so.1").facts.nodeflib is nodeflib
    if nodeflib and not program_needs_libm:
        assert closure.unresolved == (
            Unresolved("libm.so.6", ("prog", "libndf.so.1"), (str(shared), "ld.so.cache"),
                       "not found"),)
        loader = trace(prog)
        assert loader.missing == {"libm.so.6"}
        assert loader.real_paths() == our_paths(closure)
        return
    libm = lib(closure, "libm.so.6")
    assert not closure.unresolved
    assert libm.found_via == "cache"
    assert libm.requested_by == (("prog", "libndf.so.1") if program_needs_libm
                                 else ("libndf.so.1",))
    assert_loader_agrees(closure, prog)


@pytest.mark.root
def test_nodeflib_still_takes_cache_entries_outside_the_default_dirs(
    root: Path, c_lib: Builder,
) -> None:
    """glibc drops only the ld.so.cache entries that lie under a default dir (a prefix
    match in `_dl_map_object`), so a DF_1_NODEFLIB object still gets a library that the
    cache lists in, say, /opt. Checked in a chroot with its own cache (`ldconfig -r`)."""
    need(os.geteuid() == 0, "chroot needs root")
    ldconfig = need_tool("ldconfig")
    sysroot = root / "sysroot"
    multiarch = sysroot / "lib" / "x86_64-linux-gnu"
    multiarch.mkdir(parents=True)
    for name in ("ld-linux-x86-64.so.2", "libc.so.6"):
        shutil.copy2(os.path.realpath(f"/lib/x86_64-linux-gnu/{name}"), multiarch / name)
    (sysroot / "lib64").mkdir()
    (sysroot / "lib64" / "ld-linux-x86-64.so.2").symlink_to(
        "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
    in_opt = build_lib(c_lib, sysroot / "opt" / "extra" / "libndf_opt.so.1")
    in_usr = build_lib(c_lib, sysroot / "usr" / "lib" / "x86_64-linux-gnu" / "libndf_sys.so.1")
    libndf = build_lib(c_lib, sysroot / "app" / "libndf.so.1", "-Wl,-z,nodefaultlib",
                       needs=[in_opt, in_usr])
    prog = build_prog(sysroot / "app" / "prog", [libndf], *with_rpath("/app"),
                      "-Wl,-rpath-link," + str(in_opt.parent), "-Wl,-rpath-link," +
                      str(in_usr.parent))
    (sysroot / "etc").mkdir()
    (sysroot / "etc" / "ld.so.conf").write_text("/opt/extra\n")
    subprocess.run([ldconfig, "-r", str(sysroot)], check=True, capture_output=True)

    closure = resolve_closure(str(prog), Sysroot(str(sysroot)), ResolveOptions(allow_missing=True))

    found = lib(closure, "libndf_opt.so.1")
    assert (found.path, found.found_via) == ("/opt/extra/libndf_opt.so.1", "cache")
    assert [(u.name, u.chain) for u in closure.unresolved] == [
        ("libndf_sys.so.1", ("prog", "libndf.so.1"))]
    loader = trace("/app/prog", chroot=sysroot)
    assert loader.found["libndf_opt.so.1"] == "/opt/extra/libndf_opt.so.1"
    assert loader.missing == {"libndf_sys.so.1"}
    assert closure.loader is not None
    assert {library.path for library in closure.libraries} | {closure.loader.path} == set(
        loader.found.values())


# -- 11. DT_RPATH is ignored when the same object has DT_RUNPATH -----------------------------
@pytest.mark.parametrize("add_runpath", [True, False])
def test_rpath_ignored_when_object_also_has_runpath(root: Path, c_lib: Builder,
                                                    add_runpath: bool) -> None:
    """The program gets DT_RPATH "A:B" and (patched into its DT_DEBUG slot) DT_RUNPATH "B".
    With both, glibc drops the RPATH: libboth comes from B, and libboth's own need (only in
    A) is not found, since a dropped RPATH is not inherited either. Without the RUNPATH,
    A wins and the need is found through the program's RPATH."""
    first, second = root / "a", root / "b"
    dep = build_lib(c_lib, first / "libboth_dep.so.1")
    in_first = build_lib(c_lib, first / "libboth.so.1", needs=[dep], tag=1)
    in_second = build_lib(c_lib, second / "libboth.so.1", needs=[dep], tag=2)
    prog = build_prog(root / "prog", [in_second], *with_rpath(first, second))
    if add_runpath:
        rpath_at = dynamic_value(prog, "DT_RPATH")
        retag_debug_entry(prog, DT_RUNPATH, rpath_at + len(f"{first}:"))

    closure = resolve(prog, allow_missing=True)

    assert closure.program.rpath == f"{first}:{second}"
    found = lib(closure, "libboth.so.1")
    loader = trace(prog)
    if add_runpath:
        assert closure.program.runpath == str(second)
        assert (found.path, found.found_via) == (str(in_second), "runpath")
        assert [(u.name, u.chain) for u in closure.unresolved] == [
            ("libboth_dep.so.1", ("prog", "libboth.so.1"))]
        assert loader.missing == {"libboth_dep.so.1"}
    else:
        assert closure.program.runpath is None
        assert (found.path, found.found_via) == (str(in_first), "rpath")
        assert lib(closure, "libboth_dep.so.1").via_object == "prog"
        assert not closure.unresolved and not loader.missing
    assert loader.found["libboth.so.1"] == found.path
    assert loader.real_paths() == our_paths(closure)


# -- 12. a file that is not a loadable ELF stops the loader --------------------------------
@pytest.mark.parametrize(("kind", "problem"), [
    ("text", "invalid ELF header"),
    ("short text", "file too short"),
    ("empty file", "file too short"),
    ("directory", "cannot read file data"),
])
def test_unloadable_candidate_stops_the_search(root: Path, c_lib: Builder, kind: str,
                                               problem: str) -> None:
    """Unlike a wrong-class ELF file, a non-ELF file (or a dir) with the library's name
    earlier on the path ends the load: the good copy later on the path is never reached."""
    blocked, good_dir = root / "a", root / "b"
    good = build_lib(c_lib, good_dir / "libtxt.so.1")
    prog = build_prog(root / "prog", [good], *with_rpath(blocked, good_dir))
    blocker = blocked / "libtxt.so.1"
    if kind == "directory":
        blocker.mkdir(parents=True)
    else:
        blocked.mkdir()
        blocker.write_text({"text": "not an ELF file, only text. " * 5,
                            "short text": "hi\n", "empty file": ""}[kind])

    with pytest.raises(MissingLibraryError) as raised:
        resolve(prog)
    closure = resolve(prog, allow_missing=True)

    assert raised.value.message.startswith(f"prog -> libtxt.so.1: {blocker}: {problem}")
    assert [(u.name, u.chain) for u in closure.unresolved] == [("libtxt.so.1", ("prog",))]
    assert closure.unresolved[0].problem.startswith(f"{blocker}: {problem}")
    loader = trace(prog)
    assert loader.returncode != 0
    assert f"{blocker}: {problem}" in loader.stderr
    listing = list_directly(prog)
    assert listing.returncode != 0 and f"{blocker}: {problem}" in listing.stderr


def test_runtime_loaded_library_is_searched_as_libc_would(tmp_path: Path) -> None:
    """`runtime_loaded`: what glibc dlopens itself joins the closure; a miss is only a note."""
    program = gcc(tmp_path / "plain", "int main(void){return 0;}\n")
    options = ResolveOptions(runtime_loaded=("libgcc_s.so.1", "libnot-there.so.9"))
    closure = resolve_closure(str(program), Sysroot("/"), options)
    (gcc_s,) = [lib for lib in closure.libraries if lib.name == "libgcc_s.so.1"]
    assert gcc_s.runtime is True
    assert gcc_s.loaded_by == "libc.so.6"
    assert gcc_s.found_via == "cache"
    assert gcc_s.reason.endswith("loaded at run time by glibc")
    assert os.path.realpath(gcc_s.host_path) == os.path.realpath(
        "/lib/x86_64-linux-gnu/libgcc_s.so.1")
    assert not closure.unresolved
    assert any("libnot-there.so.9 (loaded at run time by glibc) not found" in note
               for note in closure.notes)
    plain = resolve_closure(str(program), Sysroot("/"))
    assert "libgcc_s.so.1" not in {lib.name for lib in plain.libraries}


def test_what_glibc_loads_is_decided_once_from_every_programs_closure(tmp_path: Path) -> None:
    """resolve_programs walks each program once: the decision sees both DT_NEEDED closures
    (no run-time loads yet), and each closure then gets libgcc_s because one program uses
    threads; the plugin's closure is resolved, not given libgcc_s."""
    threads = gcc(tmp_path / "threads", "#include <pthread.h>\nstatic void *f(void *a)"
                  "{return a;}\nint main(void){pthread_t t; pthread_create(&t, 0, f, 0);"
                  "return pthread_join(t, 0);}\n", "-pthread")
    plain = gcc(tmp_path / "plain", "int main(void){return 0;}\n")
    plugin = gcc(tmp_path / "plugin.so", "int plugin(void){return 1;}\n", shared=True)
    seen: list[list[str]] = []

    def decide(closures: list[Closure]) -> tuple[str, ...]:
        seen.append([lib.name for c in closures for lib in c.libraries if lib.runtime])
        return runtime_loads.threads_need(closures)

    closures = resolve_closures([str(threads), str(plain)], Sysroot("/"), ResolveOptions(),
                                decide)
    assert seen == [[]]  # called once, before anything was loaded at run time
    for closure in closures:
        (gcc_s,) = [lib for lib in closure.libraries if lib.name == "libgcc_s.so.1"]
        assert gcc_s.runtime is True
    resolved, added, loads = runtime_loads.resolve_programs(
        [str(threads), str(plain)], [str(plugin)], Sysroot("/"), ResolveOptions(), "none")
    assert loads.names == ("libgcc_s.so.1",) and loads.missing == ()
    assert loads.nss_lookups is False
    assert [c.program_label for c in added] == ["plugin.so"]
    assert "libgcc_s.so.1" not in {lib.name for lib in added[0].libraries}
    assert [c.program_label for c in resolved] == ["threads", "plain"]

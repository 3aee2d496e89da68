"""Resolving inside `--sysroot DIR`: the target's files only, looked up as its kernel would.

The roots are built from the host's real glibc plus a gcc-built library in a directory
only the root's ld.so.conf names, and indexed by the real `ldconfig -r`. The real loader,
run in a chroot of the same root, is the oracle for what it would map; an audit hook proves
that nothing outside the root is opened while resolving.
"""

from __future__ import annotations

import importlib.machinery
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.needs import need, need_tool
from support.toolchain import gcc

from bundler.errors import InputError, MissingLibraryError
from bundler.resolve import Closure, Library, ResolveOptions, resolve_closure
from bundler.sysroot import Sysroot

MULTIARCH = "x86_64-linux-gnu"
HOST_LIBDIR = Path("/lib") / MULTIARCH
LOADER = "ld-linux-x86-64.so.2"
CROSS_ROOT = Path("/usr/aarch64-linux-gnu")
FOO_SOURCE = "int foo(void) { return 42; }\n"
PROG_SOURCE = (
    "#include <math.h>\n"
    "int foo(void);\n"
    "int main(int argc, char **argv) { (void)argv; return foo() + (int)exp(argc) - 42; }\n"
)


@dataclass(frozen=True)
class Root:
    """A built sysroot and the program that lives inside it."""

    path: Path
    prog: Path


def build_root(root: Path, *, with_foo: bool = True, run_ldconfig: bool = True) -> Root:
    """A merged-/usr x86-64 root: glibc from the host, libfoo in /opt/foo/lib.

    The symlinks are the ones that catch a resolver reading the host: `lib -> usr/lib` is
    relative, the PT_INTERP symlink in /lib64 is absolute and points at a path that also
    exists on the host, so only re-rooting it keeps the lookup inside the root.
    """
    need_tool("gcc")
    libdir = root / "usr/lib" / MULTIARCH
    libdir.mkdir(parents=True)
    for name in ("libc.so.6", LOADER, "libm.so.6"):
        shutil.copy(HOST_LIBDIR / name, libdir / name)  # follows the host's symlinks
    (root / "lib").symlink_to("usr/lib")
    (root / "lib64").mkdir()
    (root / "lib64" / LOADER).symlink_to(f"/lib/{MULTIARCH}/{LOADER}")
    foo_dir = root / "opt/foo/lib"
    foo = gcc(foo_dir / "libfoo.so.1", FOO_SOURCE, "-Wl,-soname,libfoo.so.1", shared=True)
    prog = gcc(root / "opt/foo/bin/prog", PROG_SOURCE, f"-L{foo_dir}", "-l:libfoo.so.1", "-lm")
    if not with_foo:
        foo.unlink()
    (root / "etc").mkdir()
    (root / "etc/ld.so.conf").write_text("/opt/foo/lib\n")
    if run_ldconfig:
        subprocess.run([need_tool("ldconfig"), "-r", str(root)], check=True, capture_output=True)
    return Root(root, prog)


@pytest.fixture
def root(tmp_path: Path) -> Root:
    return build_root(tmp_path / "root")


def inside(path: str, root: Path) -> bool:
    """Whether a host path, with the host's own symlinks followed, lies inside `root`."""
    real, top = os.path.realpath(path), os.path.realpath(root)
    return real == top or real.startswith(top + "/")


def by_name(closure: Closure) -> dict[str, Library]:
    return {lib.name: lib for lib in closure.libraries}


# -- the sysroot test -------------------------------------------------------------------

def test_closure_stays_inside_the_root(root: Root) -> None:
    closure = resolve_closure(str(root.prog), Sysroot(str(root.path)))
    libs = by_name(closure)
    assert set(libs) == {"libfoo.so.1", "libm.so.6", "libc.so.6"}
    for lib in closure.libraries:
        assert inside(lib.host_path, root.path), lib
        assert lib.host_path == str(root.path) + lib.realpath
    assert libs["libfoo.so.1"].found_via == "cache"
    assert libs["libfoo.so.1"].path == "/opt/foo/lib/libfoo.so.1"
    assert libs["libc.so.6"].found_via in ("cache", "default")
    assert libs["libc.so.6"].realpath == f"/usr/lib/{MULTIARCH}/libc.so.6"
    assert closure.loader is not None
    assert closure.loader.path == f"/lib64/{LOADER}"
    assert closure.loader.realpath == f"/usr/lib/{MULTIARCH}/{LOADER}"
    assert closure.loader.host_path == str(root.path) + closure.loader.realpath
    assert closure.sysroot == str(root.path)
    assert not closure.unresolved


def chroot_ld_so_list(root: Path, program: str) -> dict[str, str]:
    """name -> path the root's own loader maps for `program`, run inside a chroot."""
    need(os.geteuid() == 0, "chroot needs root")
    chroot = need_tool("chroot")
    result = subprocess.run([chroot, str(root), f"/lib64/{LOADER}", "--list", program],
                            capture_output=True, text=True, env={})
    assert result.returncode == 0, result.stdout + result.stderr
    return dict(re.findall(r"^\s*(\S+) => (/\S+) \(0x", result.stdout, re.M))


def test_closure_matches_the_loader_in_a_chroot(root: Root) -> None:
    closure = resolve_closure(str(root.prog), Sysroot(str(root.path)))
    mapped = chroot_ld_so_list(root.path, "/opt/foo/bin/prog")
    assert mapped  # the oracle really listed something
    assert {name: lib.path for name, lib in by_name(closure).items()} == mapped


class OpenRecorder:
    """Paths opened or listed while switched on, seen through a process-wide audit hook.

    Audit hooks cannot be removed, so one hook is installed once and does nothing unless
    a test switched recording on.
    """

    def __init__(self) -> None:
        self.on = False
        self.paths: list[str] = []
        sys.addaudithook(self._hook)

    def _hook(self, event: str, args: tuple) -> None:
        if not self.on or event not in ("open", "os.listdir", "os.scandir"):
            return
        path = args[0] if args else None
        if path is None:
            path = os.getcwd()  # listdir(None) lists the working directory
        self.paths.append(f"<fd {path}>" if isinstance(path, int) else os.fsdecode(path))

    def during(self, action: Callable[[], object]) -> list[str]:
        self.paths = []
        self.on = True
        try:
            action()
        finally:
            self.on = False
        return list(self.paths)


_RECORDER: list[OpenRecorder] = []


def opened_during(action: Callable[[], object]) -> list[str]:
    """Every path opened or listed while `action()` runs."""
    if not _RECORDER:
        _RECORDER.append(OpenRecorder())
    return _RECORDER[0].during(action)


def python_import(path: str) -> bool:
    """A module file or sys.path dir touched by Python's import system, not by the resolver.

    All imports happen before recording starts; this only keeps a lazy import inside the
    standard library from being mistaken for a read of the target.
    """
    real = os.path.realpath(path)
    search = {os.path.realpath(entry or ".") for entry in sys.path}
    if real in search:
        return True
    parent = os.path.dirname(real)
    if os.path.basename(parent) == "__pycache__":
        parent = os.path.dirname(parent)
    return parent in search and real.endswith(tuple(importlib.machinery.all_suffixes()))


@pytest.mark.parametrize("with_cache", [True, False], ids=["cache", "search-dirs"])
def test_nothing_outside_the_root_is_read(tmp_path: Path, with_cache: bool) -> None:
    """Both lookup paths: the cache, and the directory walks (--library-path, default dirs)."""
    built = build_root(tmp_path / "root", run_ldconfig=with_cache)
    sysroot = Sysroot(str(built.path))
    options = ResolveOptions() if with_cache else ResolveOptions(library_path=("/opt/foo/lib",))
    results: list[Closure] = []
    opened = opened_during(
        lambda: results.append(resolve_closure(str(built.prog), sysroot, options)))
    assert results and len(results[0].libraries) == 3
    expected_via = {"cache"} if with_cache else {"library_path", "default"}
    assert {lib.found_via for lib in results[0].libraries} == expected_via
    # The hook saw the reads that must happen (so an empty list cannot pass by accident).
    assert str(built.path / f"usr/lib/{MULTIARCH}/libc.so.6") in opened
    if with_cache:
        assert str(built.path / "etc/ld.so.cache") in opened
    else:
        assert str(built.path / "opt/foo/lib") in opened  # listed for hwcap variants
    outside = [p for p in opened
               if not (p == str(built.prog) or inside(p, built.path) or python_import(p))]
    assert outside == []


def test_missing_library_names_the_chain(root: Root, tmp_path: Path) -> None:
    other = build_root(tmp_path / "other", with_foo=False)
    with pytest.raises(MissingLibraryError) as caught:
        resolve_closure(str(root.prog), Sysroot(str(other.path)))
    message = caught.value.message
    assert "prog -> libfoo.so.1" in message and "not found" in message
    assert "\n" not in message


def test_no_cache_gives_a_note_about_ldconfig(tmp_path: Path) -> None:
    bare = build_root(tmp_path / "bare", run_ldconfig=False)
    assert not (bare.path / "etc/ld.so.cache").exists()
    closure = resolve_closure(str(bare.prog), Sysroot(str(bare.path)),
                              ResolveOptions(allow_missing=True))
    assert any("ldconfig" in note and "ld.so.cache" in note for note in closure.notes), \
        closure.notes
    # Without a cache ld.so does not read ld.so.conf: libfoo is not found, glibc is.
    assert [u.name for u in closure.unresolved] == ["libfoo.so.1"]
    assert {lib.found_via for lib in closure.libraries} == {"default"}


# -- a foreign-architecture root -----------------------------------------------------------------

def test_aarch64_root_resolves_inside_it() -> None:
    need((CROSS_ROOT / "lib/libm.so.6").is_file(), "libc6-arm64-cross is not installed")
    closure = resolve_closure(str(CROSS_ROOT / "lib/libm.so.6"), Sysroot(str(CROSS_ROOT)))
    assert closure.arch.name == "aarch64"
    libs = by_name(closure)
    assert "libc.so.6" in libs
    assert libs["libc.so.6"].host_path == str(CROSS_ROOT / "lib/libc.so.6")
    assert libs["libc.so.6"].found_via == "default"  # the cross root has no ld.so.cache
    assert closure.loader is not None
    assert closure.loader.host_path == str(CROSS_ROOT / "lib/ld-linux-aarch64.so.1")
    assert closure.loader.facts.ident.machine == "EM_AARCH64"
    for lib in closure.libraries:
        assert inside(lib.host_path, CROSS_ROOT)
        assert lib.facts.ident.machine == "EM_AARCH64"


def test_aarch64_object_against_an_x86_64_root_is_refused(tmp_path: Path) -> None:
    """A root holding only the x86-64 loader (not `/`: with libc6:arm64 installed through
    multiarch, this machine holds the aarch64 loader too, and then the object resolves)."""
    need((CROSS_ROOT / "lib/libm.so.6").is_file(), "libc6-arm64-cross is not installed")
    (tmp_path / "lib64").mkdir()
    shutil.copy("/lib64/ld-linux-x86-64.so.2", tmp_path / "lib64")
    with pytest.raises(InputError) as caught:
        resolve_closure(str(CROSS_ROOT / "lib/libm.so.6"), Sysroot(str(tmp_path)))
    message = caught.value.message
    assert "aarch64" in message and "x86-64" in message and "holds" in message
    assert not isinstance(caught.value, MissingLibraryError)


# -- Sysroot.resolve ----------------------------------------------------------------------------

def test_absolute_symlink_is_rerooted(tmp_path: Path) -> None:
    (tmp_path / "only-here").mkdir()
    (tmp_path / "only-here/file").write_text("x")
    (tmp_path / "abs").symlink_to("/only-here/file")
    (tmp_path / "host-passwd").symlink_to("/etc/passwd")  # exists on the host, not in the root
    sysroot = Sysroot(str(tmp_path))
    assert sysroot.resolve("/abs") == "/only-here/file"
    assert sysroot.is_file("/abs")
    assert sysroot.read_bytes("/abs") == b"x"
    assert sysroot.resolve("/host-passwd") is None
    assert sysroot.read_bytes("/host-passwd") is None


def test_dotdot_after_symlink_uses_the_link_target(tmp_path: Path) -> None:
    """`/a/link/..` is the parent of where link points (kernel), not `/a` (lexical)."""
    (tmp_path / "b/c").mkdir(parents=True)
    (tmp_path / "b/target").write_text("kernel")
    (tmp_path / "a").mkdir()
    (tmp_path / "a/target").write_text("lexical")
    (tmp_path / "a/link").symlink_to("/b/c")
    (tmp_path / "a/rel").symlink_to("../b/c")
    sysroot = Sysroot(str(tmp_path))
    assert sysroot.resolve("/a/link/../target") == "/b/target"
    assert sysroot.read_bytes("/a/link/../target") == b"kernel"
    assert sysroot.resolve("/a/rel/../target") == "/b/target"
    # Checked against the kernel itself: the host resolves the relative link the same way.
    assert Path(tmp_path / "a/rel/../target").read_text() == "kernel"
    assert sysroot.resolve("/../../a/target") == "/a/target"  # `..` stops at the root


def test_file_used_as_directory_is_missing(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    sysroot = Sysroot(str(tmp_path))
    assert sysroot.resolve("/file/..") is None
    assert sysroot.resolve("/file/x") is None


def test_symlink_loops_are_missing(tmp_path: Path) -> None:
    (tmp_path / "self").symlink_to("self")
    (tmp_path / "one").symlink_to("/two")
    (tmp_path / "two").symlink_to("one")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir/up").symlink_to("/dir/up/x")
    sysroot = Sysroot(str(tmp_path))
    assert sysroot.resolve("/self") is None
    assert sysroot.resolve("/one") is None
    assert sysroot.resolve("/two/file") is None
    assert sysroot.resolve("/dir/up") is None
    assert not sysroot.is_file("/one")
    assert sysroot.list_dir("/self") == []


def test_long_but_finite_chain_resolves(tmp_path: Path) -> None:
    """A chain of 30 links is legal (Linux allows 40) and must not count as a loop."""
    (tmp_path / "end").write_text("x")
    previous = "end"
    for number in range(30):
        (tmp_path / f"l{number}").symlink_to(previous)
        previous = f"l{number}"
    assert Sysroot(str(tmp_path)).resolve(f"/{previous}") == "/end"


def test_target_path_maps_back(root: Root) -> None:
    sysroot = Sysroot(str(root.path))
    assert sysroot.target_path(str(root.prog)) == "/opt/foo/bin/prog"
    assert sysroot.target_path("/etc/passwd") is None
    assert sysroot.host_path("/etc/ld.so.cache") == str(root.path / "etc/ld.so.cache")

"""The bundle plan's decisions, on closures of real programs built here."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.roots import debian11_tree
from support.toolchain import gcc

from bundler.errors import InputError
from bundler.plan import PlanOptions, make_plan, validate_name, validate_prefix
from bundler.resolve import Closure, resolve_closure
from bundler.sysroot import Sysroot

MAIN = "int foo(void);\nint main(void){return foo();}\n"


def closure_of(path: Path | str) -> Closure:
    return resolve_closure(str(path), Sysroot("/"))


def libfoo(directory: Path, value: int, *flags: str) -> Path:
    return gcc(directory / "libfoo.so.1", f"int foo(void){{return {value};}}\n",
               "-Wl,-soname,libfoo.so.1", *flags, shared=True)


def program_with(directory: Path, name: str, lib: Path, needed_as: str | None = None) -> Path:
    link = [str(lib)] if needed_as is None else [f"-L{lib.parent}", f"-l:{needed_as}"]
    return gcc(directory / name, MAIN, *link, f"-Wl,-rpath,{lib.parent}",
               "-Wl,--disable-new-dtags")


def test_what_is_patched_and_what_is_copied() -> None:
    plan = make_plan([closure_of("/usr/bin/sqlite3")], "2.36", "Linux 3.2.0", PlanOptions())
    by_dest = {f.dest: f for f in plan.files}
    assert plan.prefix == "/opt/sqlite3"
    program = by_dest["libexec/sqlite3"]
    assert program.patch is not None
    assert program.patch.interpreter == "/opt/sqlite3/lib/ld-linux-x86-64.so.2"
    assert program.patch.rpath == "$ORIGIN/../lib"
    assert by_dest["lib/ld-linux-x86-64.so.2"].patch is None
    assert by_dest["lib/libc.so.6"].patch is None
    assert by_dest["lib/libm.so.6"].patch is None  # glibc's own objects are never rewritten
    # No DT_RPATH/RUNPATH of its own: found through the program's, bundled byte for byte.
    assert by_dest["lib/libsqlite3.so.0"].patch is None
    assert by_dest["bin/sqlite3"].kind == "launcher"
    assert plan.loader_supports_argv0 is True  # this host's ld.so (2.36) takes --argv0


def test_a_loader_without_argv0_is_read_as_such() -> None:
    """Debian 11's ld.so (glibc 2.31) has no --argv0: read from the file itself."""
    root = debian11_tree()
    old = make_plan([resolve_closure(str(root / "bin/ls"), Sysroot(str(root)))], "2.31", None,
                    PlanOptions())
    assert old.loader_supports_argv0 is False


def test_a_library_without_needs_is_copied_untouched(tmp_path: Path) -> None:
    lib = libfoo(tmp_path / "lib", 0, "-nostdlib")
    program = program_with(tmp_path, "prog", lib)
    plan = make_plan([closure_of(program)], "2.36", None, PlanOptions())
    entry = next(f for f in plan.files if f.dest == "lib/libfoo.so.1")
    assert entry.patch is None and entry.source == str(lib)


def test_two_programs_share_lib_and_names_become_symlinks(tmp_path: Path) -> None:
    lib = libfoo(tmp_path / "lib", 0)
    first = program_with(tmp_path, "first", lib)
    # Link `second` against a copy without SONAME, so that it records "libfoo.so"; at
    # run time that name is a symlink to the same libfoo.so.1 `first` uses.
    unversioned = gcc(tmp_path / "lib" / "libfoo.so", "int foo(void){return 0;}\n",
                      shared=True)
    second = program_with(tmp_path, "second", unversioned, needed_as="libfoo.so")
    unversioned.unlink()
    unversioned.symlink_to("libfoo.so.1")
    second_closure = closure_of(second)
    assert second_closure.program.needed[0] == "libfoo.so"
    plan = make_plan([closure_of(first), second_closure], "2.36", None,
                     PlanOptions(name="pair"))
    by_dest = {f.dest: f for f in plan.files}
    assert plan.programs == ("first", "second")
    assert {"bin/first", "bin/second", "libexec/first", "libexec/second"} <= set(by_dest)
    assert by_dest["lib/libfoo.so.1"].kind == "library"
    assert by_dest["lib/libfoo.so"].kind == "alias"
    assert by_dest["lib/libfoo.so"].link_target == "libfoo.so.1"
    assert plan.prefix == "/opt/pair"


def test_two_different_files_under_one_name_are_refused(tmp_path: Path) -> None:
    one = program_with(tmp_path, "one", libfoo(tmp_path / "a", 1))
    two = program_with(tmp_path, "two", libfoo(tmp_path / "b", 2))
    with pytest.raises(InputError, match=r"lib/libfoo\.so\.1: two different files"):
        make_plan([closure_of(one), closure_of(two)], "2.36", None, PlanOptions())


def test_static_programs_and_repeated_names_are_refused(tmp_path: Path) -> None:
    static = gcc(tmp_path / "static", "int main(void){return 0;}\n", "-static")
    with pytest.raises(InputError, match="statically linked"):
        make_plan([closure_of(static)], None, None, PlanOptions())
    hello = gcc(tmp_path / "hello", "int main(void){return 0;}\n")
    with pytest.raises(InputError, match="given twice"):
        make_plan([closure_of(hello), closure_of(hello)], "2.36", None, PlanOptions())


@pytest.mark.parametrize("prefix", ["relative/dir", "/", "//", "/opt/x\0y"])
def test_bad_prefixes(prefix: str) -> None:
    with pytest.raises(InputError, match="--prefix"):
        validate_prefix(prefix)


def test_prefix_is_normalised_and_odd_characters_kept() -> None:
    assert validate_prefix("/opt//my agent/") == "/opt/my agent"
    assert validate_prefix("/opt/it's \"q\"") == "/opt/it's \"q\""


@pytest.mark.parametrize("prefix", ["/opt/a:b", "/opt/a;b", "/opt/$ORIGIN", "/proc/x",
                                    "/opt/tab\there"])
def test_prefixes_that_cannot_be_in_rpath_or_interp(prefix: str) -> None:
    """':' splits DT_RPATH, '$' starts a substitution there, /proc belongs to the kernel:
    the same rule as an artifact's manifest is held to (manifest.prefix_problem)."""
    with pytest.raises(InputError, match="--prefix"):
        validate_prefix(prefix)


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "x\ny"])
def test_bad_names(name: str) -> None:
    with pytest.raises(InputError, match="--name"):
        validate_name(name)


def test_exclude_leaves_a_library_and_what_only_it_needs() -> None:
    """sqlite3 -> libreadline.so.8 -> libtinfo.so.6: excluding readline takes tinfo too."""
    closure = closure_of("/usr/bin/sqlite3")
    plan = make_plan([closure], "2.36", None, PlanOptions(exclude=("libreadline*",)))
    dests = {f.dest for f in plan.files}
    assert plan.excluded == ("libreadline.so.8", "libtinfo.so.6")
    assert "lib/libreadline.so.8" not in dests and "lib/libtinfo.so.6" not in dests
    assert {"lib/libsqlite3.so.0", "lib/libz.so.1", "lib/libm.so.6"} <= dests
    libm_kept = make_plan([closure], "2.36", None, PlanOptions(exclude=("libsqlite3.so.0",)))
    assert libm_kept.excluded == ("libsqlite3.so.0",)  # libm: glibc, and needed elsewhere
    with pytest.raises(InputError, match="part of glibc"):
        make_plan([closure], "2.36", None, PlanOptions(exclude=("libm.so.*",)))


def test_nsswitch_services_are_read_like_glibc() -> None:
    from bundler.nss import nsswitch_services

    text = ("# comment\npasswd: files systemd\ngroup: files [NOTFOUND=return] sss\n"
            "hosts: files mdns4_minimal [NOTFOUND=return] dns\nnetgroup: nis # trailing\n")
    assert nsswitch_services(text) == ("files", "systemd", "sss", "mdns4_minimal", "dns", "nis")


def test_nss_module_names_by_choice_and_glibc(tmp_path: Path) -> None:
    from bundler.nss import module_names

    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "nsswitch.conf").write_text("passwd: files systemd\nhosts: files dns\n")
    sysroot = Sysroot(str(root))
    assert module_names("auto", sysroot, (2, 36), True) == ("libnss_systemd.so.2",)
    assert module_names("auto", sysroot, (2, 31), True) == (
        "libnss_files.so.2", "libnss_systemd.so.2", "libnss_dns.so.2")
    assert module_names("auto", sysroot, (2, 36), False) == ()
    assert module_names("none", sysroot, (2, 36), True) == ()
    assert module_names("compat,sss", sysroot, (2, 36), False) == (
        "libnss_compat.so.2", "libnss_sss.so.2")
    with pytest.raises(InputError, match="not a service name"):
        module_names("../evil", sysroot, (2, 36), True)

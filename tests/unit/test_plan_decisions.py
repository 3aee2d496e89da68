"""plan.py's decisions on hand-built closures: layout, refusals, --exclude, the lib/ ID."""

from __future__ import annotations

import dataclasses

import pytest
from support.builders import AARCH64, LIBC, LOADER_NAME, closure, elf, library, loader, program

from bundler.errors import InputError
from bundler.ldso import supports_argv0
from bundler.plan import (
    BundlePlan,
    PlanOptions,
    Rename,
    excluded_libraries,
    identify,
    library_identity,
    make_plan,
    program_patch,
    validate_prefix,
)
from bundler.resolve import Unresolved

LIBFOO = library("libfoo.so.1", needed=("libbar.so.2", "libc.so.6"))
LIBBAR = library("libbar.so.2", needed=("libc.so.6",))
FOO_CLOSURE = closure(program(needed=("libfoo.so.1", "libc.so.6")), (LIBFOO, LIBBAR, LIBC))


def plan_of(*closures: object, glibc: str | None = "2.36", **options: object) -> BundlePlan:
    return make_plan(list(closures or (closure(),)), glibc, None,  # type: ignore[arg-type]
                     PlanOptions(**options))  # type: ignore[arg-type]


def by_dest(plan: BundlePlan) -> dict:
    return {f.dest: f for f in plan.files}


def test_the_layout_of_one_program() -> None:
    plan = plan_of()
    files = by_dest(plan)
    assert [f.dest for f in plan.files] == sorted(files)
    assert set(files) == {"bin/prog", "libexec/prog", f"lib/{LOADER_NAME}", "lib/libc.so.6",
                          *(f"lib/glibc-hwcaps/x86-64-v{level}" for level in (2, 3, 4))}
    assert (plan.name, plan.prefix, plan.arch) == ("prog", "/opt/prog", "x86-64")
    assert plan.programs == ("prog",) and plan.missing == () and plan.excluded == ()
    prog = files["libexec/prog"]
    assert (prog.kind, prog.mode, prog.source, prog.privileged) == (
        "program", 0o755, "/usr/bin/prog", False)
    assert prog.patch.interpreter == f"/opt/prog/lib/{LOADER_NAME}"
    assert prog.patch.rpath == "$ORIGIN/../lib"
    assert files["bin/prog"].kind == "launcher" and files["bin/prog"].program == "prog"
    ld = files[f"lib/{LOADER_NAME}"]
    assert (ld.kind, ld.source, ld.patch) == ("loader", loader().host_path, None)
    libc = files["lib/libc.so.6"]
    assert (libc.kind, libc.patch, libc.mode) == ("library", None, 0o755)  # libc runs


def test_the_argv0_feature_is_the_loaders_not_the_releases() -> None:
    """Read from the loader file (ldso.supports_argv0), whatever the release says."""
    assert plan_of(closure(argv0=True), glibc="2.31").loader_supports_argv0 is True
    assert plan_of(closure(argv0=False), glibc="2.36").loader_supports_argv0 is False
    assert plan_of(closure(argv0=True), glibc=None).loader_supports_argv0 is True


def test_argv0_is_the_option_string_in_the_loader() -> None:
    assert supports_argv0(b"..\0--argv0\0--list\0") is True
    assert supports_argv0(b"usage: --argv0 STRING\0") is False  # the help text alone
    assert supports_argv0(b"\0--argv0x\0") is False
    assert supports_argv0(None) is False


def test_only_libraries_with_a_search_path_of_their_own_are_patched() -> None:
    with_rpath = library("librp.so.1", needed=("libc.so.6",), rpath="/build/lib")
    with_runpath = library("librun.so.1", needed=("libc.so.6",), runpath="$ORIGIN")
    needs_nothing = library("libleaf.so.1", runpath="/build/lib")
    plain = library("libplain.so.1", needed=("libc.so.6",))
    glibc_rpath = library("libm.so.6", needed=("libc.so.6",), rpath="/x")
    files = by_dest(plan_of(closure(libraries=(with_rpath, with_runpath, needs_nothing, plain,
                                               glibc_rpath, LIBC))))
    assert files["lib/librp.so.1"].patch.rpath == "$ORIGIN"
    assert files["lib/librp.so.1"].patch.interpreter is None
    assert files["lib/librun.so.1"].patch.rpath == "$ORIGIN"
    assert files["lib/libleaf.so.1"].patch is None
    assert files["lib/libplain.so.1"].patch is None
    assert files["lib/libm.so.6"].patch is None  # glibc's own objects are never rewritten
    assert files["lib/libplain.so.1"].mode == 0o644


def test_other_names_of_a_library_become_relative_symlinks() -> None:
    foo = library("libfoo.so", soname="libfoo.so.1", aliases=("libfoo.so", "libfoo.so.1"))
    files = by_dest(plan_of(closure(libraries=(foo, LIBC))))
    assert files["lib/libfoo.so.1"].kind == "library"
    alias = files["lib/libfoo.so"]
    assert (alias.kind, alias.link_target, alias.mode, alias.source) == (
        "alias", "libfoo.so.1", 0o777, None)


def test_a_library_without_soname_goes_under_its_first_name() -> None:
    anon = library("libanon.so", soname=None, aliases=("libanon.so", "libanon-1.so"))
    files = by_dest(plan_of(closure(libraries=(anon, LIBC))))
    assert files["lib/libanon-1.so"].kind == "library"  # sorted(names)[0]
    assert files["lib/libanon.so"].link_target == "libanon-1.so"


def test_two_programs_share_one_copy_and_conflicting_files_are_refused() -> None:
    two = plan_of(closure(program("/usr/bin/a")), closure(program("/usr/bin/b")))
    assert two.programs == ("a", "b")
    assert sum(f.dest == "lib/libc.so.6" for f in two.files) == 1
    other_foo = library("libfoo.so.1", host_path="/other/libfoo.so.1")
    with pytest.raises(InputError, match=r"lib/libfoo.so.1: two different files want this "
                                         r"name \(/usr/lib/x86_64-linux-gnu/libfoo.so.1 and "
                                         r"/other/libfoo.so.1, the second for b\)"):
        plan_of(closure(program("/usr/bin/a"), (LIBFOO, LIBC)),
                closure(program("/usr/bin/b"), (other_foo, LIBC)))
    with pytest.raises(InputError, match="a: given twice"):
        plan_of(closure(program("/usr/bin/a")), closure(program("/usr/local/bin/a")))


@pytest.mark.parametrize(("the_closure", "message"), [
    (closure(elf("/usr/bin/st", file_type="ET_EXEC")), "statically linked"),
    (closure(elf("/usr/lib/libx.so", needed=("libc.so.6",))), "a shared library, not a program"),
    (closure(loader_=False), f"its interpreter /lib64/{LOADER_NAME} was not found"),
    (closure(libraries=(library("/opt/libx.so"), LIBC)), "needs /opt/libx.so by path"),
])
def test_what_cannot_run_from_a_bundle_is_refused(the_closure: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        plan_of(the_closure)


def test_programs_of_other_architectures_or_loaders_are_refused() -> None:
    with pytest.raises(InputError, match="another architecture or loader than /usr/bin/a"):
        plan_of(closure(program("/usr/bin/a")), closure(program("/usr/bin/b"), arch=AARCH64))
    other_loader = loader(realpath="/opt/glibc/ld-linux-x86-64.so.2")
    with pytest.raises(InputError, match="another architecture or loader"):
        plan_of(closure(program("/usr/bin/a")), closure(program("/usr/bin/b"),
                                                        loader_=other_loader))


def test_launcher_name_and_prefix_options() -> None:
    with pytest.raises(InputError, match="--launcher exec: choose one of loader, env"):
        plan_of(launcher="exec")
    plan = plan_of(name="tool", prefix="/srv//tool/")
    assert (plan.name, plan.prefix) == ("tool", "/srv/tool")
    assert by_dest(plan)["libexec/prog"].patch.interpreter == f"/srv/tool/lib/{LOADER_NAME}"
    with pytest.raises(InputError, match="--name 'a/b'"):
        plan_of(name="a/b")


@pytest.mark.parametrize("name", ["a\tb", "a\x1bb", "a\nb", "x" * 256, "..", "a/b"])
def test_names_the_manifest_would_refuse_are_refused(name: str) -> None:
    # the manifest's reader refuses such program names (bundle verify: exit 4), so the
    # build must not write them
    with pytest.raises(InputError, match="must be a plain file name"):
        plan_of(name=name)
    assert plan_of(name="é b-1.2").name == "é b-1.2"


def test_every_program_file_name_must_be_plain() -> None:
    with pytest.raises(InputError, match=r"/usr/bin/b\tc: its file name 'b\\tc' holds a "
                                         r"control character"):
        plan_of(closure(program("/usr/bin/a")), closure(program("/usr/bin/b\tc")))


def test_unresolved_libraries_are_listed_as_missing() -> None:
    gone = Unresolved("libgone.so.1", ("prog",), ("/usr/lib",), "not found")
    plan = plan_of(closure(unresolved=(gone,)))
    assert plan.missing == ("prog -> libgone.so.1: not found; searched: /usr/lib",)


def test_privileged_programs_need_allow_setuid_and_keep_their_bits() -> None:
    suid = closure(program(setuid=True, capabilities=b"\x01"))
    with pytest.raises(InputError, match="has setuid and file capabilities"):
        plan_of(suid)
    prog = by_dest(plan_of(suid, allow_setuid=True))["libexec/prog"]
    assert prog.privileged is True and prog.mode == 0o4755
    assert prog.patch.rpath == "/opt/prog/lib:$ORIGIN/../lib"  # absolute first
    sgid = by_dest(plan_of(closure(program(setgid=True)), allow_setuid=True))["libexec/prog"]
    assert sgid.mode == 0o2755


def test_added_plugins_go_into_lib_and_must_be_shared_objects() -> None:
    plugin = closure(elf("/usr/lib/plug.so", needed=("libc.so.6",)), label="plug.so")
    plan = make_plan([closure()], "2.36", None, PlanOptions(), added=[plugin])
    entry = by_dest(plan)["lib/plug.so"]
    assert (entry.kind, entry.mode, entry.source) == ("library", 0o644, "/usr/lib/plug.so")
    with pytest.raises(InputError, match="--add /usr/bin/other: not a shared object"):
        make_plan([closure()], "2.36", None, PlanOptions(),
                  added=[closure(program("/usr/bin/other"))])
    arm = closure(elf("/usr/lib/plug.so", machine="EM_AARCH64"), arch=AARCH64)
    with pytest.raises(InputError, match=r"--add /usr/lib/plug\.so: aarch64"):
        make_plan([closure()], "2.36", None, PlanOptions(), added=[arm])


# --- --exclude ----------------------------------------------------------------------------


def test_exclude_leaves_out_a_library_and_what_only_it_needs() -> None:
    assert excluded_libraries([FOO_CLOSURE], ()) == set()
    assert excluded_libraries([FOO_CLOSURE], ("libfoo*",)) == {"libfoo.so.1", "libbar.so.2"}
    plan = plan_of(FOO_CLOSURE, exclude=("libfoo.so.1",))
    assert plan.excluded == ("libbar.so.2", "libfoo.so.1")
    assert "lib/libfoo.so.1" not in by_dest(plan) and "lib/libbar.so.2" not in by_dest(plan)
    assert "lib/libc.so.6" in by_dest(plan)


def test_exclude_keeps_what_the_program_needs_directly() -> None:
    direct = closure(program(needed=("libfoo.so.1", "libbar.so.2", "libc.so.6")),
                     (LIBFOO, LIBBAR, LIBC))
    assert excluded_libraries([direct], ("libfoo.so.1",)) == {"libfoo.so.1"}
    # ... and what another program of the same bundle needs
    other = closure(program("/usr/bin/other", needed=("libbar.so.2", "libc.so.6")),
                    (LIBBAR, LIBC))
    assert excluded_libraries([FOO_CLOSURE, other], ("libfoo.so.1",)) == {"libfoo.so.1"}


def test_exclude_keeps_what_a_run_time_library_needs() -> None:
    gcc_s = library("libgcc_s.so.1", needed=("libbar.so.2",), runtime=True)
    with_runtime = closure(program(needed=("libfoo.so.1", "libc.so.6")),
                           (LIBFOO, LIBBAR, LIBC, gcc_s))
    assert excluded_libraries([with_runtime], ("libfoo.so.1",)) == {"libfoo.so.1"}


def test_exclude_matches_requested_names_and_never_leaves_out_glibc() -> None:
    foo = library("libfoo.so", soname="libfoo.so.1")
    by_name = closure(program(needed=("libfoo.so", "libc.so.6")), (foo, LIBC))
    assert excluded_libraries([by_name], ("libfoo.so",)) == {"libfoo.so.1"}
    with pytest.raises(InputError, match=r"--exclude: libc\.so\.6 is part of glibc"):
        excluded_libraries([FOO_CLOSURE], ("libc.*",))
    libm = library("libm.so.6", needed=("libc.so.6",))
    gl = closure(program(needed=("libfoo.so.1", "libc.so.6")),
                 (library("libfoo.so.1", needed=("libm.so.6",)), libm, LIBC))
    assert excluded_libraries([gl], ("libfoo.so.1",)) == {"libfoo.so.1"}  # libm stays


def test_exclude_keeps_what_an_added_plugin_needs() -> None:
    # libbar.so.2 is reached through the excluded libfoo.so.1, but also through the plugin
    # given with --add: it is not "needed only by an excluded library" and stays.
    plugin = closure(elf("/usr/lib/plug.so", needed=("libbar.so.2", "libc.so.6")),
                     (LIBBAR, LIBC), label="plug.so")
    plan = make_plan([FOO_CLOSURE], "2.36", None, PlanOptions(exclude=("libfoo.so.1",)),
                     added=[plugin])
    assert plan.excluded == ("libfoo.so.1",)
    assert {"lib/plug.so", "lib/libbar.so.2"} <= set(by_dest(plan))


# --- the program patch and lib/'s identity ---------------------------------------------------


def test_program_patch() -> None:
    plain = program_patch("/opt/p", LOADER_NAME, "lib", False)
    assert (plain.interpreter, plain.rpath) == (f"/opt/p/lib/{LOADER_NAME}", "$ORIGIN/../lib")
    home = "lib/.bundle-0123456789abcdef"
    named = program_patch("/opt/p", LOADER_NAME, home, False)
    assert named.interpreter == f"/opt/p/{home}/{LOADER_NAME}"
    assert named.rpath == f"$ORIGIN/../{home}:/opt/p/{home}"
    privileged = program_patch("/opt/p", LOADER_NAME, home, True)
    assert privileged.rpath == f"/opt/p/{home}:$ORIGIN/../{home}"
    assert program_patch("/opt/p", LOADER_NAME, "lib", True).rpath == (
        "/opt/p/lib:$ORIGIN/../lib")


def digest_of(path: str) -> str:
    return f"sha256 of {path}"


def test_the_library_identity_follows_what_is_under_lib_only() -> None:
    plan = plan_of(FOO_CLOSURE)
    ident = library_identity(plan, digest_of)
    assert len(ident) == 16 and int(ident, 16) >= 0
    assert library_identity(plan, digest_of) == ident

    def changed(which: str, **change: object) -> BundlePlan:
        files = tuple(dataclasses.replace(f, **change) if f.dest == which else f  # type: ignore
                      for f in plan.files)
        return dataclasses.replace(plan, files=files)

    # the content of a library, a rename in it, its name, its mode: another ID
    assert library_identity(plan, lambda p: digest_of(p) + (
        "!" if p.endswith("libbar.so.2") else "")) != ident
    assert library_identity(changed("lib/libc.so.6", renames=(Rename("LOCPATH", "BLP1234"),)),
                            digest_of) != ident
    assert library_identity(changed("lib/libbar.so.2", dest="lib/libbaz.so.2"), digest_of) != ident
    assert library_identity(changed("lib/libbar.so.2", mode=0o755), digest_of) != ident
    # the programs, launchers, prefix and name are not under lib/: the same ID
    assert library_identity(changed("libexec/prog", source="/elsewhere/prog"), digest_of) == ident
    assert library_identity(changed("bin/prog", mode=0o700), digest_of) == ident
    assert library_identity(dataclasses.replace(plan, prefix="/srv/x", name="x"),
                            digest_of) == ident
    # a source path is only its digest: the same bytes from elsewhere give the same ID
    moved = changed("lib/libbar.so.2", source="/copy/libbar.so.2")
    assert library_identity(moved, lambda p: digest_of(p.replace("/copy",
                                                                 "/usr/lib/x86_64-linux-gnu"))
                            ) == ident


def test_identify_points_programs_at_lib_bundle_id() -> None:
    plan = plan_of(closure(program("/usr/bin/a")),
                   closure(program("/usr/bin/b", setuid=True)), allow_setuid=True)
    ident = library_identity(plan, digest_of)
    home = f"lib/.bundle-{ident}"
    done = identify(plan, digest_of)
    files = by_dest(done)
    assert done.library_home == home
    assert [f.dest for f in done.files] == sorted(files)
    link = files[home]
    assert (link.kind, link.link_target, link.mode) == ("alias", ".", 0o777)
    a, b = files["libexec/a"], files["libexec/b"]
    assert a.patch.interpreter == b.patch.interpreter == f"/opt/a/{home}/{LOADER_NAME}"
    assert a.patch.rpath == f"$ORIGIN/../{home}:/opt/a/{home}"
    assert b.patch.rpath == f"/opt/a/{home}:$ORIGIN/../{home}"  # privileged: absolute first
    # everything else is as it was
    assert {d: f for d, f in files.items() if not d.startswith("libexec/") and d != home} == {
        d: f for d, f in by_dest(plan).items() if not d.startswith("libexec/")}


# --- validate_prefix --------------------------------------------------------------------------


@pytest.mark.parametrize(("given", "normal"), [
    ("/opt/x", "/opt/x"), ("/opt/x/", "/opt/x"), ("//opt//x//", "/opt/x"), ("/opt/./x", "/opt/x"),
    ("/opt/a b", "/opt/a b"), ("/system", "/system"), ("/devices/x", "/devices/x"),
])
def test_prefixes_are_normalised(given: str, normal: str) -> None:
    assert validate_prefix(given) == normal


@pytest.mark.parametrize(("given", "message"), [
    ("opt/x", "must be an absolute path"),
    ("/opt/\0x", "must be an absolute path"),
    ("/", "the bundle needs a directory of its own"),
    ("//", "the bundle needs a directory of its own"),
    ("/opt/..", "the bundle needs a directory of its own"),
    ("/opt/a:b", "holds ':', ';' or '\\$'"),
    ("/opt/$ORIGIN", "holds ':', ';' or '\\$'"),
    ("/opt/a\nb", "control character"),
    ("/proc", "inside /proc"),
    ("/opt/../sys/x", "inside /sys"),
    ("/dev/shm/x", "inside /dev"),
    ("/" + "a" * 1024, "too long"),
])
def test_prefixes_that_are_refused(given: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        validate_prefix(given)


def test_glibc_hwcaps_levels_lead_back_to_lib() -> None:
    """x86-64 with glibc 2.33 or later: each level links to lib/; nothing before 2.33 (no
    glibc-hwcaps) or for architectures glibc has no levels for."""
    from bundler.plan import hwcaps_shortcuts

    made = hwcaps_shortcuts("x86-64", "2.36")
    assert [(f.dest, f.kind, f.link_target) for f in made] == [
        (f"lib/glibc-hwcaps/x86-64-v{level}", "alias", "..") for level in (2, 3, 4)]
    assert hwcaps_shortcuts("x86-64", "2.33") == made
    assert hwcaps_shortcuts("x86-64", "2.31") == []
    assert hwcaps_shortcuts("x86-64", None) == []
    assert hwcaps_shortcuts("aarch64", "2.36") == hwcaps_shortcuts("i386", "2.41") == []

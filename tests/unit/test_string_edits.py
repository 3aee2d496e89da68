"""sealing.py and scoping.py on small synthetic blobs: which strings of the bundled loader
and libc are renamed, and that the renames keep every length (tests/integration/test_sealing.py does
the same on real glibc files)."""

from __future__ import annotations

import dataclasses

import pytest
from support.builders import closure

from bundler.plan import (
    BundlePlan,
    EnvSetting,
    PlanOptions,
    make_plan,
    scope_environment,
    seal_plan,
)
from bundler.scoping import Rename, apply_renames, scoped_name, whole_string_count
from bundler.sealing import (
    LD_SO_CACHE,
    LD_SO_PRELOAD,
    Seal,
    never_opened,
    seal_libc,
    seal_loader,
)

SYSTEM_DIRS = b"/lib/x86_64-linux-gnu/\0/usr/lib/x86_64-linux-gnu/\0/lib/\0/usr/lib/\0"
LOADER = (b"\x7fELF junk\0" + LD_SO_PRELOAD.encode() + b"\0LD_LIBRARY_PATH\0"
          + LD_SO_CACHE.encode() + b"\0GCONV_PATH\0LOCPATH\0" + SYSTEM_DIRS + b"tail")
GCONV = "/usr/lib/x86_64-linux-gnu/gconv"
LIBC = (b"\x7fELF\0" + GCONV.encode() + b"\0" + GCONV.encode() + b"/gconv-modules.cache\0"
        b"/usr/lib/locale/locale-archive\0/usr/lib/locale\0GCONV_PATH\0LOCPATH\0end")


@pytest.mark.parametrize(("path", "sealed"), [
    ("/etc/ld.so.cache", "/dev/null/xxxxxx"),
    ("/etc/ld.so.preload", "/dev/null/xxxxxxxx"),
    ("/usr/lib/x86_64-linux-gnu/", "/dev/null/xxxxxxxxxxxxxxx/"),
    ("/usr/lib64/", "/dev/null//"),
    ("/usr/lib6/", "/dev/null/"),
    ("/usr/lib/", "/sys/////"),
    ("/lib/", "/sys/"),
    ("/lib", None),
    ("/usr/lib", None),  # 8 characters without a trailing '/': nothing fits
])
def test_never_opened_paths_keep_the_length(path: str, sealed: str | None) -> None:
    assert never_opened(path) == sealed
    if sealed is not None:
        assert len(sealed) == len(path)
        assert sealed.startswith(("/dev/null/", "/sys/"))
        assert sealed.endswith("/") == path.endswith("/")


def test_a_loader_is_sealed_from_the_host() -> None:
    seal = seal_loader(LOADER, keep_host_search=False)
    assert seal.sealed == ("ld.so.preload /etc/ld.so.preload", "ld.so.cache /etc/ld.so.cache",
                           "system dirs /lib/x86_64-linux-gnu/, /usr/lib/x86_64-linux-gnu/, "
                           "/lib/, /usr/lib/")
    assert seal.unsealed == ()
    run = [r for r in seal.renames if not r.whole]
    assert len(run) == 1 and run[0].original == SYSTEM_DIRS.decode()
    sealed = apply_renames(LOADER, seal.renames)
    assert len(sealed) == len(LOADER)
    for gone in (b"/etc/ld.so", b"/lib/\0", b"/usr/lib/\0", b"x86_64-linux-gnu/\0"):
        assert gone not in sealed
    assert b"\0/dev/null/xxxxxx\0GCONV_PATH\0LOCPATH\0" in sealed
    assert sealed.endswith(b"\0/sys/\0/sys/////\0tail")


def test_a_system_dirs_run_is_replaced_everywhere_it_sits() -> None:
    twice = LOADER + b"\0x" + SYSTEM_DIRS  # ld.so 2.36 holds it twice, once not NUL-preceded
    sealed = apply_renames(twice, seal_loader(twice, keep_host_search=False).renames)
    assert b"/usr/lib/\0" not in sealed and len(sealed) == len(twice)


def test_exclude_keeps_the_cache_and_system_dirs_but_not_the_preload_file() -> None:
    seal = seal_loader(LOADER, keep_host_search=True)
    assert seal.renames == (Rename(LD_SO_PRELOAD, "/dev/null/xxxxxxxx"),)
    assert seal.sealed == ("ld.so.preload /etc/ld.so.preload",)
    assert seal.unsealed == ("ld.so.cache and system dirs: kept for the libraries left to the "
                             "host (--exclude)",)


def test_tail_shared_and_missing_strings_are_left_and_said() -> None:
    shared = (b"\0/etc/ld.so.preload\0x" + LD_SO_CACHE.encode() + b"\0" + LD_SO_CACHE.encode()
              + b"\0")
    seal = seal_loader(shared, keep_host_search=False)
    assert [r.original for r in seal.renames] == [LD_SO_PRELOAD]
    assert seal.unsealed == (
        "ld.so.cache /etc/ld.so.cache: not a whole string of its own, left as it is",
        "system dirs: not found in the loader, or one too short to seal",
    )
    nothing = seal_loader(b"\0nothing here\0", keep_host_search=False)
    assert nothing.renames == () and nothing.sealed == ()
    assert nothing.unsealed[0] == ("ld.so.preload /etc/ld.so.preload: not a whole string of "
                                   "its own, left as it is")


def test_a_libc_is_sealed_from_host_gconv_and_locales() -> None:
    seal = seal_libc(LIBC)
    assert [r.original for r in seal.renames] == [
        GCONV, GCONV + "/gconv-modules.cache", "/usr/lib/locale/locale-archive",
        "/usr/lib/locale"]
    assert all(r.whole and len(r.scoped) == len(r.original) for r in seal.renames)
    assert seal.unsealed == ()
    assert seal.sealed[0] == f"gconv dir {GCONV}"
    sealed = apply_renames(LIBC, seal.renames)
    assert len(sealed) == len(LIBC)
    assert b"/usr/lib" not in sealed and b"\0GCONV_PATH\0LOCPATH\0end" in sealed


def test_a_privileged_libc_gets_the_prefix_gconv_dir_when_it_fits() -> None:
    seal = seal_libc(LIBC, gconv_home="/opt/p/lib/gconv")
    assert seal.renames[0] == Rename(GCONV, "/opt/p/lib/gconv" + "\0" * (len(GCONV) - 16))
    assert seal.sealed[0] == "gconv dir (now /opt/p/lib/gconv)"
    too_long = seal_libc(LIBC, gconv_home="/opt/" + "p" * len(GCONV))
    assert too_long.renames[0] == Rename(GCONV, never_opened(GCONV) or "")


def test_what_a_libc_does_not_hold_is_said() -> None:
    seal = seal_libc(b"\0nothing\0")
    assert seal.renames == ()
    assert seal.unsealed == ("gconv dir: not found in libc.so.6",
                             "gconv-modules.cache: not found in libc.so.6",
                             "locale-archive: not found in libc.so.6",
                             "locale dir: not found in libc.so.6")
    # two different gconv caches: which is the compiled-in one is not known, nothing is guessed
    two = LIBC + b"\0/usr/lib64/gconv/gconv-modules.cache\0"
    assert "gconv dir: not found in libc.so.6" in seal_libc(two).unsealed


def plan_with_env() -> BundlePlan:
    plan = make_plan([closure()], "2.36", None, PlanOptions())
    env = (EnvSetting("GCONV_PATH", "GCONV_PATH", "lib/gconv"),
           EnvSetting("LOCPATH", "LOCPATH", "lib/locale"))
    return dataclasses.replace(plan, env=env)


def test_seal_plan_adds_the_edits_to_the_copies_and_records_them() -> None:
    plan = plan_with_env()
    ld_seal = seal_loader(LOADER, keep_host_search=False)
    libc_seal = Seal((Rename("/a/b", "/x/y"),), ("one",), ("two",))
    sealed = seal_plan(plan, [("lib/ld-linux-x86-64.so.2", ld_seal), ("lib/libc.so.6",
                                                                     libc_seal)])
    files = {f.dest: f for f in sealed.files}
    assert files["lib/ld-linux-x86-64.so.2"].renames == ld_seal.renames
    assert files["lib/libc.so.6"].renames == libc_seal.renames
    assert files["libexec/prog"].renames == ()
    assert sealed.sealed == (*ld_seal.sealed, "one")
    assert sealed.unsealed == ("two",)


def test_variables_are_scoped_in_libc_only() -> None:
    plan = plan_with_env()
    digest = "abcdef0123456789" * 4
    scoped = scope_environment(plan, "lib/libc.so.6", LIBC, LOADER, digest)
    assert scoped_name("GCONV_PATH", digest) == "BGCABCDEF0"
    assert scoped_name("LOCPATH", digest) == "BLPABCD"
    assert scoped.env == (EnvSetting("BGCABCDEF0", "GCONV_PATH", "lib/gconv", scoped=True),
                          EnvSetting("BLPABCD", "LOCPATH", "lib/locale", scoped=True))
    files = {f.dest: f for f in scoped.files}
    assert files["lib/libc.so.6"].renames == (Rename("GCONV_PATH", "BGCABCDEF0"),
                                              Rename("LOCPATH", "BLPABCD"))
    assert files["lib/ld-linux-x86-64.so.2"].renames == ()  # secure mode's list stays whole
    renamed = apply_renames(LIBC, files["lib/libc.so.6"].renames)
    assert b"\0BGCABCDEF0\0BLPABCD\0end" in renamed and len(renamed) == len(LIBC)


def test_a_privileged_artifact_is_never_scoped() -> None:
    plan = plan_with_env()
    files = tuple(dataclasses.replace(f, privileged=True) if f.kind == "program" else f
                  for f in plan.files)
    privileged = dataclasses.replace(plan, files=files)
    assert scope_environment(privileged, "lib/libc.so.6", LIBC, LOADER, "0" * 64) is privileged


def test_a_variable_is_scoped_only_where_both_copies_know_it_whole() -> None:
    plan = plan_with_env()
    loader_without = LOADER.replace(b"\0LOCPATH\0", b"\0LOCPATZ\0")
    half = scope_environment(plan, "lib/libc.so.6", LIBC, loader_without, "0" * 64)
    assert [s.scoped for s in half.env] == [True, False]
    assert half.env[1] == plan.env[1]
    tail = LIBC.replace(b"\0GCONV_PATH\0", b"XGCONV_PATH\0")  # only the tail of a string
    other = scope_environment(plan, "lib/libc.so.6", tail, LOADER, "0" * 64)
    assert [s.scoped for s in other.env] == [False, True]
    unknown = dataclasses.replace(plan, env=(EnvSetting("FOO", "FOO", "lib/foo"),))
    same = scope_environment(unknown, "lib/libc.so.6", LIBC + b"FOO\0", LOADER + b"FOO\0",
                             "0" * 64)
    assert same.env == unknown.env and same.files == unknown.files


def test_whole_renames_touch_whole_strings_only() -> None:
    data = b"\0GCONV_PATH\0MY_GCONV_PATH\0GCONV_PATHS\0"
    assert whole_string_count(data, "GCONV_PATH") is None  # also a tail: unsafe
    assert whole_string_count(b"\0GCONV_PATH\0x\0GCONV_PATH\0", "GCONV_PATH") == 2
    assert whole_string_count(b"\0nothing\0", "GCONV_PATH") == 0
    renamed = apply_renames(data, (Rename("GCONV_PATH", "BGC0000000"),))
    assert renamed == b"\0BGC0000000\0MY_GCONV_PATH\0GCONV_PATHS\0"
    run = apply_renames(b"x/a/\0/b/\0y/a/\0/b/\0", (Rename("/a/\0/b/\0", "/c/\0/d/\0",
                                                           whole=False),))
    assert run == b"x/c/\0/d/\0y/c/\0/d/\0"


def test_adjacent_copies_of_a_whole_string_are_all_renamed() -> None:
    data = b"\0LOCPATH\0LOCPATH\0"
    assert whole_string_count(data, "LOCPATH") == 2
    assert apply_renames(data, (Rename("LOCPATH", "BLP0000"),)) == b"\0BLP0000\0BLP0000\0"


def test_renames_of_another_length_are_refused() -> None:
    with pytest.raises(AssertionError):
        apply_renames(b"\0abc\0", (Rename("abc", "abcd"),))

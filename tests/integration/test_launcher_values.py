"""The native launcher compiled once, its values written in, and kept between builds.

Real compiles with the host's gcc and real runs of the launchers: a launcher is run from
a top whose lib/ holds a loader that is a script printing what it was given (NUL-separated,
so newlines in values stay visible), which is exactly what the launcher passes on. The
cache is each test's own ($XDG_CACHE_HOME in tmp_path), and is attacked the ways someone
who can write near it would: a changed entry, another architecture's launcher, a dynamic
file, a symlink, a directory others may write to, an entry of another user.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bundler import launcher_cache, native_launcher
from bundler.errors import InputError
from bundler.plan import BundlePlan, EnvSetting

RECORDING_LOADER = """#!/bin/sh
for word in "$@"; do printf '%s\\0' "$word"; done
printf 'env=%s\\0' "$PROBE_VALUE"
"""


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A cache of this test's own, and no launcher remembered from another test."""
    home = tmp_path / "cache-home"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    native_launcher.generic_launcher.cache_clear()
    yield home / "bundle" / "launchers"
    native_launcher.generic_launcher.cache_clear()


@pytest.fixture
def compiler() -> native_launcher.Compiler:
    found = native_launcher.find_compiler("x86-64", "x86_64-linux-gnu")
    assert found is not None, "scripts/test installs gcc"
    return found


def plan_with(value: str, prefix: str = "/opt/prog-nowhere") -> BundlePlan:
    return BundlePlan(name="prog", prefix=prefix, launcher="loader", arch="x86-64",
                      loader_name="ld.so", loader_supports_argv0=True, glibc_release="2.36",
                      min_kernel=None, programs=("prog",), files=(), missing=(),
                      env=(EnvSetting("PROBE_VALUE", "PROBE_VALUE", "", value=value,
                                      why="--env"),))


def run_launcher(tmp_path: Path, launcher: bytes, *caller: str) -> list[str]:
    """What the launcher at TOP/bin/prog passed to the loader, and PROBE_VALUE."""
    top = tmp_path / "top"
    shutil.rmtree(top, ignore_errors=True)
    for sub in ("bin", "lib", "libexec"):
        (top / sub).mkdir(parents=True)
    (top / "libexec" / "prog").write_text("")
    loader = top / "lib" / "ld.so"
    loader.write_text(RECORDING_LOADER)
    loader.chmod(0o755)
    path = top / "bin" / "prog"
    path.write_bytes(launcher)
    path.chmod(0o755)
    done = subprocess.run([str(path), *caller], capture_output=True, check=True)
    return done.stdout.decode().split("\0")[:-1]


def expected(tmp_path: Path, value: str, args: tuple[str, ...], *caller: str) -> list[str]:
    top = str(tmp_path / "top")
    return ["--library-path", f"{top}/lib", "--argv0", f"{top}/bin/prog",
            f"{top}/libexec/prog", *(a.replace("{top}", top) for a in args), *caller,
            f"env={value.replace('{top}', top)}"]


HOSTILE = 'a"b\\c\n$x`id` \'q\' ??/ */ #define %s {top}/z'


def test_values_of_any_bytes_arrive_as_given(tmp_path: Path,
                                             compiler: native_launcher.Compiler) -> None:
    """Quotes, backslashes, newlines, `$`, trigraphs and C comment marks are data."""
    args = (HOSTILE, "{top}/bin/x", "")
    launcher = native_launcher.launcher_for(compiler, plan_with(HOSTILE), "prog", 1, args)
    assert run_launcher(tmp_path, launcher, "caller's", "two words") == expected(
        tmp_path, HOSTILE, args, "caller's", "two words")


def test_values_over_a_page_get_a_larger_space(tmp_path: Path,
                                               compiler: native_launcher.Compiler) -> None:
    value = "{top}/" + "v" * 9000
    launcher = native_launcher.launcher_for(compiler, plan_with(value), "prog")
    blob = native_launcher.values_blob(plan_with(value), "prog")
    assert native_launcher.values_space(len(blob)) == 16384
    assert run_launcher(tmp_path, launcher) == expected(tmp_path, value, ())


def test_one_compile_serves_every_artifact(compiler: native_launcher.Compiler) -> None:
    """Two artifacts' launchers differ only in their values' space."""
    space = native_launcher.MIN_VALUES_SPACE
    generic = native_launcher.generic_launcher(compiler, space)
    first = native_launcher.launcher_for(compiler, plan_with("a"), "prog")
    second = native_launcher.launcher_for(compiler, plan_with("b", "/opt/other"), "other")
    at = generic.find(native_launcher.VALUES_MAGIC)
    assert len(first) == len(second) == len(generic)
    assert first[:at] == second[:at] == generic[:at]
    assert first[at + space:] == second[at + space:] == generic[at + space:]
    assert first[at:at + space] != second[at:at + space]


def test_values_that_cannot_be(compiler: native_launcher.Compiler) -> None:
    with pytest.raises(InputError, match="NUL byte"):
        native_launcher.values_blob(plan_with("a\0b"), "prog")
    with pytest.raises(InputError, match="at most"):
        native_launcher.values_space(native_launcher.MAX_VALUES_SPACE + 1)


# --- the cache -------------------------------------------------------------------------------


def entry_of(cache: Path) -> Path:
    entries = [p for p in cache.iterdir() if not p.name.startswith(".")]
    assert len(entries) == 1, entries
    return entries[0]


def test_kept_and_used_again(own_cache: Path, compiler: native_launcher.Compiler) -> None:
    """The second build reads the entry (a harmless change to it shows that it was read)."""
    space = native_launcher.MIN_VALUES_SPACE
    fresh = native_launcher.generic_launcher(compiler, space)
    entry = entry_of(own_cache)
    assert entry.read_bytes() == fresh
    assert stat.S_IMODE(own_cache.stat().st_mode) == 0o700
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600
    entry.write_bytes(fresh + b"kept")  # still a static x86-64 launcher holding its space
    native_launcher.generic_launcher.cache_clear()
    assert native_launcher.generic_launcher(compiler, space) == fresh + b"kept"


def unfit_entries(fresh: bytes) -> dict[str, bytes]:
    i386 = native_launcher.find_compiler("i386", "i386-linux-gnu")
    assert i386 is not None, "scripts/test installs gcc-multilib"
    space = native_launcher.MIN_VALUES_SPACE
    at = fresh.find(native_launcher.VALUES_MAGIC)
    return {
        "another architecture": native_launcher.compile_launcher(i386, space),
        "a dynamic program": Path("/bin/true").read_bytes(),
        "no values' space": fresh[:at] + b"\1" + fresh[at + 1:],
        "two values' spaces": fresh + fresh[at:at + space],
        "truncated": fresh[:100],
        "empty": b"",
    }


def test_an_unfit_entry_is_compiled_again(own_cache: Path,
                                          compiler: native_launcher.Compiler) -> None:
    space = native_launcher.MIN_VALUES_SPACE
    fresh = native_launcher.generic_launcher(compiler, space)
    entry = entry_of(own_cache)
    for why, data in unfit_entries(fresh).items():
        entry.write_bytes(data)
        native_launcher.generic_launcher.cache_clear()
        assert native_launcher.generic_launcher(compiler, space) == fresh, why
        assert entry.read_bytes() == fresh, why  # and the entry made good


def test_an_entry_or_cache_others_control_is_not_read(
        own_cache: Path, tmp_path: Path, compiler: native_launcher.Compiler) -> None:
    """Each is refused in turn: the launcher then comes from the compiler."""
    space = native_launcher.MIN_VALUES_SPACE
    fresh = native_launcher.generic_launcher(compiler, space)
    entry = entry_of(own_cache)
    planted = fresh + b"planted"  # would pass every check: only trust keeps it out
    elsewhere = tmp_path / "planted"
    elsewhere.write_bytes(planted)

    def used() -> bytes:
        native_launcher.generic_launcher.cache_clear()
        return native_launcher.generic_launcher(compiler, space)

    entry.unlink()
    entry.symlink_to(elsewhere)  # an entry that is a symlink
    assert used() == fresh
    entry.write_bytes(planted)
    os.chmod(entry, 0o622)  # an entry others may write
    assert used() == fresh
    entry.write_bytes(planted)
    os.chmod(entry, 0o600)
    if os.geteuid() == 0:
        os.chown(entry, 65534, 65534)  # an entry of another user
        assert used() == fresh
        entry.write_bytes(planted)
        os.chown(entry, 0, 0)
    os.chmod(own_cache, 0o777)  # a cache directory others may write
    assert used() == fresh
    os.chmod(own_cache, 0o700)
    entry.write_bytes(planted)
    moved = own_cache.with_name("real")
    own_cache.rename(moved)
    own_cache.symlink_to(moved)  # the cache directory is a symlink
    assert used() == fresh
    assert (moved / entry.name).read_bytes() == planted  # nothing written through it


def test_a_changed_toolchain_is_a_new_entry(tmp_path: Path) -> None:
    """A copy of the driver is another driver; touched, it is another again (the copy
    answers -print-prog-name, though it could not compile away from its tools)."""
    driver = Path(os.path.realpath(shutil.which("gcc") or "/usr/bin/gcc"))
    copy = tmp_path / "bin" / driver.name
    copy.parent.mkdir()
    shutil.copy2(driver, copy)
    source = native_launcher.source_text()
    space = native_launcher.MIN_VALUES_SPACE
    keys = [native_launcher._cache_key(native_launcher.Compiler((str(driver),), "x86-64"),
                                       space, source)]
    copied = native_launcher.Compiler((str(copy),), "x86-64")
    keys.append(native_launcher._cache_key(copied, space, source))
    os.utime(copy, ns=(0, 1_000_000_000))
    keys.append(native_launcher._cache_key(copied, space, source))
    keys.append(native_launcher._cache_key(copied, space, source + "\n"))
    keys.append(native_launcher._cache_key(copied, space * 2, source))
    assert None not in keys and len(set(keys)) == len(keys)


def test_no_cache_where_none_can_be(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    compiler: native_launcher.Compiler) -> None:
    """A relative $XDG_CACHE_HOME and no $HOME: no cache; a read-only one: not written.
    The launcher is compiled all the same."""
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    monkeypatch.delenv("HOME")
    assert launcher_cache.cache_dir() is None
    space = native_launcher.MIN_VALUES_SPACE
    assert native_launcher.generic_launcher(compiler, space)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    monkeypatch.setenv("XDG_CACHE_HOME", str(locked))
    native_launcher.generic_launcher.cache_clear()
    if os.geteuid() != 0:  # root writes anyway
        assert native_launcher.generic_launcher(compiler, space)
        assert list(locked.iterdir()) == []


def test_a_driver_that_writes_files_writes_them_elsewhere(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """Asking the driver for its tools runs it in a private directory, not the caller's."""
    fake = tmp_path / "tools" / "cc"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho litter > litter\n")
    fake.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert native_launcher._cache_key(native_launcher.Compiler((str(fake),), "x86-64"),
                                      native_launcher.MIN_VALUES_SPACE, "") is None
    assert list(work.iterdir()) == []


def test_warmed_while_the_build_resolves(own_cache: Path, tmp_path: Path) -> None:
    """`warm` leaves the compiled launcher in the cache for the program's architecture, and
    nothing for the sh launcher; what it cannot read is left for the build to report."""
    native_launcher.warm("sh", "/bin/true")
    assert not own_cache.exists()
    text = tmp_path / "text"
    text.write_text("not a program\n")
    for odd in (str(text), str(tmp_path / "missing"), str(tmp_path)):
        native_launcher.warm("auto", odd)  # no exception
    assert not own_cache.exists()
    native_launcher.warm("auto", "/bin/true")
    entry = entry_of(own_cache)
    assert entry.name.startswith(f"x86-64-{native_launcher.MIN_VALUES_SPACE}-")

"""Locale extraction from real locale-archives and the renaming of glibc's variables.

Archives are written by this machine's `localedef`; the extracted category files must be
byte for byte what `localedef --no-archive` writes for the same locale.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from support.cli import assert_one_line_error, run_cli
from support.needs import need

from bundler.errors import InputError
from bundler.locales import (
    CATEGORY_FILES,
    normalize_name,
    parse_archive_index,
    select_files,
    validate_names,
)
from bundler.plan import BundlePlan, EnvSetting, StagedFile, scope_environment
from bundler.scoping import (
    Rename,
    apply_renames,
    scoped_name,
    whole_string_count,
)
from bundler.sysroot import Sysroot

HOST_LIBC = Path("/lib/x86_64-linux-gnu/libc.so.6")
HOST_LOADER = Path("/lib64/ld-linux-x86-64.so.2")


def localedef(prefix: Path, *args: str) -> None:
    need(shutil.which("localedef") is not None, "localedef (libc-bin) is not installed")
    need(Path("/usr/share/i18n/locales/en_US").exists(), "the locales package is not installed")
    (prefix / "usr/lib/locale").mkdir(parents=True, exist_ok=True)
    subprocess.run(["localedef", f"--prefix={prefix}", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def archive_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("locale-root")
    localedef(root, "-i", "en_US", "-f", "UTF-8", "en_US.UTF-8")
    localedef(root, "-i", "de_DE", "-f", "ISO-8859-1", "de_DE")
    return root


@pytest.mark.parametrize(("given", "normal"), [
    ("en_US.UTF-8", "en_US.utf8"), ("C.UTF-8", "C.utf8"), ("de_DE", "de_DE"),
    ("de_DE.ISO-8859-15@euro", "de_DE.iso885915@euro"), ("xx.8859-1", "xx.iso88591"),
])
def test_names_normalize_like_glibc(given: str, normal: str) -> None:
    assert normalize_name(given) == normal


def test_names_that_are_paths_are_refused() -> None:
    assert validate_names(("C.UTF-8,en_US.UTF-8", "C.UTF-8")) == ("C.UTF-8", "en_US.UTF-8")
    for bad in ("../etc", "/tmp/x", "a/b", ".hidden"):
        with pytest.raises(InputError, match="not a locale name"):
            validate_names((bad,))


def test_archive_categories_match_localedefs_own_files(tmp_path: Path, archive_root) -> None:
    reference = tmp_path / "ref"
    localedef(reference, "--no-archive", "-i", "en_US", "-f", "UTF-8", "en_US.UTF-8")
    files = select_files(("en_US.UTF-8",), Sysroot(str(archive_root)))
    assert {f.dest for f in files} == {f"en_US.utf8/{c}" for c in CATEGORY_FILES.values()}
    data = (archive_root / "usr/lib/locale/locale-archive").read_bytes()
    for item in files:
        assert item.offset is not None and item.length
        expected = (reference / "usr/lib/locale" / item.dest).read_bytes()
        assert data[item.offset:item.offset + item.length] == expected, item.dest


def test_directory_locales_and_unknown_names(archive_root) -> None:
    host = select_files(("C.UTF-8",), Sysroot("/"))
    need(bool(host), "this host has no compiled C.UTF-8")
    assert all(f.offset is None and f.dest.startswith("C.utf8/") for f in host)
    with pytest.raises(InputError, match="not compiled") as refused:
        select_files(("fr_FR.UTF-8",), Sysroot(str(archive_root)))
    assert "de_DE" in str(refused.value) and "en_US.utf8" in str(refused.value)


def _reader(data: bytes):
    return lambda offset, size: data[offset:offset + size]


def test_lying_archives_raise_value_errors(archive_root) -> None:
    good = (archive_root / "usr/lib/locale/locale-archive").read_bytes()
    assert "en_US.utf8" in parse_archive_index(_reader(good))
    cases = {
        "short": good[:20],
        "magic": b"\0\0\0\0" + good[4:],
        "huge table": good[:16] + struct.pack("I", 0xFFFFFFFF) + good[20:],
        "truncated": good[:good.index(b"en_US.utf8") + 20],
    }
    for name, data in cases.items():
        with pytest.raises(ValueError):
            parse_archive_index(_reader(data))
        print(name, "refused")


def test_a_broken_archive_is_a_one_line_error(tmp_path: Path) -> None:
    """--sysroot whose locale-archive is garbage: exit 2 naming the file."""
    root = tmp_path / "root"
    libs = root / "usr/lib/x86_64-linux-gnu"
    libs.mkdir(parents=True)
    (root / "usr/bin").mkdir()
    (root / "lib64").mkdir()
    (root / "lib").symlink_to("usr/lib")
    shutil.copy2("/usr/bin/true", root / "usr/bin/true")
    shutil.copy2(HOST_LIBC.resolve(), libs / "libc.so.6")
    shutil.copy2(HOST_LOADER.resolve(), root / "lib64/ld-linux-x86-64.so.2")
    (root / "usr/lib/locale").mkdir()
    (root / "usr/lib/locale/locale-archive").write_bytes(b"\x09\x01\x02\xde" + b"\xff" * 100)
    out = tmp_path / "true.tar.zst"
    result = run_cli(str(root / "usr/bin/true"), "--sysroot", str(root), "-o", str(out),
                     "--locale", "C.UTF-8")
    assert_one_line_error(result, 2, "locale-archive", "unreadable")
    assert not out.exists()


def test_whole_strings_only() -> None:
    assert whole_string_count(b"\0GCONV_PATH\0x\0GCONV_PATH\0", "GCONV_PATH") == 2
    assert whole_string_count(b"\0XGCONV_PATH\0", "GCONV_PATH") is None  # a shared tail
    assert whole_string_count(b"\0GCONV_PATHS\0", "GCONV_PATH") == 0
    renamed = apply_renames(b"\0LOCPATH\0NLOCPATH\0", (Rename("LOCPATH", "BLP1234"),))
    assert renamed == b"\0BLP1234\0NLOCPATH\0"


def test_scoped_names_have_the_original_length() -> None:
    digest = hashlib.sha256(b"x").hexdigest()
    for variable in ("GCONV_PATH", "LOCPATH"):
        name = scoped_name(variable, digest)
        assert len(name) == len(variable) and name.isidentifier() and name.isupper()


def _plan(env: tuple[EnvSetting, ...]) -> BundlePlan:
    files = (StagedFile("lib/ld-linux-x86-64.so.2", "loader", 0o755, source=str(HOST_LOADER)),
             StagedFile("lib/libc.so.6", "library", 0o755, source=str(HOST_LIBC)),
             StagedFile("lib/libm.so.6", "library", 0o644, source="/usr/lib/libm.so.6"))
    return BundlePlan("x", "/opt/x", "loader", "x86-64", "ld-linux-x86-64.so.2", True, "2.36",
                      "3.2.0", ("x",), files, (), (), env)


def test_this_hosts_glibc_is_renamed_in_libc_only() -> None:
    """Real glibc 2.36 bytes: both names are whole strings in libc.so.6 and ld.so; only
    libc's copy is renamed, so the loader's secure mode still strips the real names."""
    libc, loader = HOST_LIBC.read_bytes(), HOST_LOADER.read_bytes()
    env = (EnvSetting("GCONV_PATH", "GCONV_PATH", "lib/gconv"),
           EnvSetting("LOCPATH", "LOCPATH", "lib/locale"))
    digest = hashlib.sha256(libc).hexdigest()
    plan = scope_environment(_plan(env), "lib/libc.so.6", libc, loader, digest)
    assert [(e.variable, e.scoped) for e in plan.env] == [
        (scoped_name("GCONV_PATH", digest), True), (scoped_name("LOCPATH", digest), True)]
    renamed = {f.dest: f.renames for f in plan.files}
    assert renamed["lib/libm.so.6"] == ()
    assert renamed["lib/libc.so.6"] != () and renamed["lib/ld-linux-x86-64.so.2"] == ()
    new_libc = apply_renames(libc, renamed["lib/libc.so.6"])
    assert len(new_libc) == len(libc)
    assert whole_string_count(new_libc, "GCONV_PATH") == 0
    assert whole_string_count(new_libc, plan.env[0].variable) == 1


def test_a_privileged_artifact_is_never_scoped() -> None:
    libc, loader = HOST_LIBC.read_bytes(), HOST_LOADER.read_bytes()
    env = (EnvSetting("GCONV_PATH", "GCONV_PATH", "lib/gconv"),)
    plan = _plan(env)
    files = tuple(dataclasses.replace(f, kind="program", privileged=True, dest="libexec/x")
                  if f.dest == "lib/libm.so.6" else f for f in plan.files)
    scoped = scope_environment(dataclasses.replace(plan, files=files), "lib/libc.so.6", libc,
                               loader, hashlib.sha256(libc).hexdigest())
    assert [(e.variable, e.scoped) for e in scoped.env] == [("GCONV_PATH", False)]
    assert all(f.renames == () for f in scoped.files)


def test_unrenamable_variables_stay_unscoped() -> None:
    libc = b"\0XGCONV_PATH\0LOCPATH\0"
    env = (EnvSetting("GCONV_PATH", "GCONV_PATH", "lib/gconv"),
           EnvSetting("LOCPATH", "LOCPATH", "lib/locale"))
    plan = scope_environment(_plan(env), "lib/libc.so.6", libc, b"\0LOCPATH\0", "ab" * 32)
    assert [(e.variable, e.scoped) for e in plan.env] == [
        ("GCONV_PATH", False), ("BLPABAB", True)]
    plan = scope_environment(_plan(env), "lib/libc.so.6", libc, b"", "ab" * 32)
    assert not any(e.scoped for e in plan.env)  # the loader lacks it: secure mode would not
    assert all(f.renames == () for f in plan.files)  # unset the new name, so no rename

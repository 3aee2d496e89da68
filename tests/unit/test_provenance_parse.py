"""provenance.py's parsers and decisions on small texts and tiny trees written here: dpkg's
status and .list files, the Source field, DEP-5 copyright -> SPDX, licence kinds, os-release,
Go build info -> modules, and the database lookup through a root's own symlinks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bundler import provenance
from bundler.golang import parse_modinfo
from bundler.inventory import NOASSERTION, GoModule
from bundler.licences import licence_kind, licence_of_copyright, spdx_id, synopsis_expression
from bundler.provenance import (
    StatusEntry,
    by_name,
    find_provenance,
    go_modules,
    list_owner,
    parse_list,
    parse_os_release,
    parse_source_field,
    parse_status,
)
from bundler.sysroot import Sysroot

STATUS = """\
Package: libc6
Status: install ok installed
Priority: optional
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u14
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Description: GNU C Library: Shared libraries
 Contains the standard libraries that are used by nearly all programs on
 the system. Package: not-a-package
Homepage: https://www.gnu.org/software/libc/libc.html

Package: libbrotli1
Status: install ok installed
Architecture: amd64
Source: brotli (1.0.9-2)
Version: 1.0.9-2+b6

Package: oldlib
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

this line is junk
Package: zlib1g
Status: install ok installed
Architecture: amd64
Version: 1:1.2.13.dfsg-1
"""


def test_status_keeps_every_paragraph_with_its_state_and_source() -> None:
    entries = {e.name: e for e in parse_status(STATUS)}
    assert set(entries) == {"libc6", "libbrotli1", "oldlib", "zlib1g"}
    libc = entries["libc6"]
    assert (libc.key, libc.version, libc.source, libc.source_version, libc.multi_arch) == (
        "libc6:amd64", "2.36-9+deb12u14", "glibc", "2.36-9+deb12u14", "same")
    assert libc.installed
    assert libc.maintainer == "GNU Libc Maintainers <debian-glibc@lists.debian.org>"
    brotli = entries["libbrotli1"]
    assert (brotli.version, brotli.source, brotli.source_version) == (
        "1.0.9-2+b6", "brotli", "1.0.9-2")
    assert not entries["oldlib"].installed and entries["oldlib"].state == "config-files"
    assert (entries["zlib1g"].source, entries["zlib1g"].version) == ("zlib1g", "1:1.2.13.dfsg-1")
    assert entries["zlib1g"].maintainer == ""


def test_status_survives_garbage_crlf_and_paragraphs_without_package_or_status() -> None:
    assert parse_status("") == ()
    assert parse_status("\x00\xff garbage\n: no key\nPackage:\nStatus:\n") == ()
    assert parse_status("Package: a\nVersion: 1\n") == ()  # no Status: dpkg shows nothing
    crlf = parse_status("Package: a\r\nStatus: install ok installed\r\nVersion: 1\r\n")
    assert [(e.name, e.version, e.architecture) for e in crlf] == [("a", "1", "")]


@pytest.mark.parametrize(("value", "expected"), [
    (None, ("bin", "1.0-1")),
    ("glibc", ("glibc", "1.0-1")),
    ("glibc (2.36-9+deb12u14)", ("glibc", "2.36-9+deb12u14")),
    ("  brotli  ( 1.0.9-2 ) ", ("brotli", "1.0.9-2")),
    ("two words", ("bin", "1.0-1")),
    ("glibc (unclosed", ("bin", "1.0-1")),
    ("", ("bin", "1.0-1")),
])
def test_source_field(value: str | None, expected: tuple[str, str]) -> None:
    assert parse_source_field(value, "bin", "1.0-1") == expected


def entry(name: str, arch: str) -> StatusEntry:
    return StatusEntry(name, arch, "1", name, "1", "installed")


def test_list_names_map_to_packages_as_dpkg_names_them() -> None:
    listed = [entry("libc6", "amd64"), entry("libc6", "i386"), entry("zlib1g", "amd64"),
              entry("tzdata", "all")]
    installed = by_name(listed)
    assert list_owner("libc6:amd64.list", installed) == listed[0]
    assert list_owner("libc6:i386.list", installed) == listed[1]
    assert list_owner("zlib1g.list", installed) == listed[2]
    assert list_owner("tzdata.list", installed) == listed[3]
    assert list_owner("libc6.list", installed) is None  # two arches, no qualifier: ambiguous
    assert list_owner("libc6:arm64.list", installed) is None
    assert list_owner("gone.list", installed) is None


def test_list_keeps_absolute_paths_only() -> None:
    text = "/.\n/\n/lib\n/lib/x86_64-linux-gnu/libc.so.6\n\nrelative/junk\n/usr/share/doc/libc6/\n"
    assert parse_list(text) == ("/lib", "/lib/x86_64-linux-gnu/libc.so.6",
                                "/usr/share/doc/libc6")


@pytest.mark.parametrize(("text", "expected"), [
    ('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n', "debian-12"),
    ("ID=ubuntu\nVERSION_ID='22.04'\n", "ubuntu-22.04"),
    ("ID=debian\n", None),  # testing/sid: no VERSION_ID
    ('ID="unterminated\nVERSION_ID=1\n', None),
    ("ID=$(rm -rf /)\nVERSION_ID=1\n", None),
    ("# comment\n\nID=alpine # trailing\nVERSION_ID=3.19.1\n", "alpine-3.19.1"),
    ("\x00\xff", None),
])
def test_os_release_gives_id_and_version(text: str, expected: str | None) -> None:
    assert parse_os_release(text) == expected


@pytest.mark.parametrize(("name", "expected"), [
    ("GPL-2+", "GPL-2.0-or-later"),
    ("GPL-2", "GPL-2.0-only"),
    ("GPL-2.0+", "GPL-2.0-or-later"),
    ("LGPL-2.1+", "LGPL-2.1-or-later"),
    ("LGPL-3", "LGPL-3.0-only"),
    ("AGPL-3+", "AGPL-3.0-or-later"),
    ("BSD-3-clause", "BSD-3-Clause"),
    ("BSD-2-Clause", "BSD-2-Clause"),
    ("Expat", "MIT"),
    ("MIT", "MIT"),
    ("Zlib", "Zlib"),
    ("ISC", "ISC"),
    ("Apache-2.0", "Apache-2.0"),
    ("Apache-2", "Apache-2.0"),
    ("MPL-2.0", "MPL-2.0"),
    ("curl", "curl"),
    ("public-domain", "LicenseRef-public-domain"),
    ("MPL-1.1+", "LicenseRef-MPL-1.1-or-later"),
    ("Chromium", "LicenseRef-Chromium"),
    ("BSD-3-clause~variant!", "LicenseRef-BSD-3-clause-variant"),
    ("GPL-9+", "LicenseRef-GPL-9"),
])
def test_debian_short_names_become_spdx_ids(name: str, expected: str) -> None:
    assert spdx_id(name) == expected


@pytest.mark.parametrize(("synopsis", "expected"), [
    ("GPL-3+ with GCC-exception", "GPL-3.0-or-later WITH GCC-exception-3.1"),
    ("GPL-2+ with Autoconf exception", "GPL-2.0-or-later WITH Autoconf-exception-2.0"),
    ("GPL-2+ with OpenSSL exception", "LicenseRef-GPL-2-with-OpenSSL-exception"),
    ("LGPL-2.1+ or GPL-2+", "LGPL-2.1-or-later OR GPL-2.0-or-later"),
    ("BSD-3-clause and Expat", "BSD-3-Clause AND MIT"),
    ("GPL-2+ or Artistic-2.0, and BSD-3-clause",
     "(GPL-2.0-or-later OR Artistic-2.0) AND BSD-3-Clause"),
    ("GPL-2+ or", "LicenseRef-GPL-2-or"),  # a dangling operator: one ref, still valid SPDX
])
def test_synopses_become_spdx_expressions(synopsis: str, expected: str) -> None:
    assert synopsis_expression(synopsis) == expected


DEP5 = """\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: demo

Files: *
Copyright: 2000 Someone
License: LGPL-2.1+
 The text.

Files: src/a.c
Copyright: 2001 Someone
License: GPL-2+
 The text.

Files: src/b.c src/c.c
Copyright: 2002 Someone
License: BSD-3-clause and Expat

Files: src/again.c
Copyright: 2003 Someone
License: GPL-2+

Files: libgcc/*
Copyright: FSF
License: GPL-3+ with GCC-exception

Files: tables/*
Copyright: none
License: public-domain

Files: dual/*
Copyright: 2004 Someone
License: MPL-2.0 or Apache-2.0

License: GPL-2+
 A stand-alone licence paragraph: not a Files paragraph, not counted.
"""


def test_dep5_gives_all_files_licences_deduplicated_sorted_and_anded() -> None:
    assert licence_of_copyright(DEP5) == (
        "BSD-3-Clause AND GPL-2.0-or-later AND GPL-3.0-or-later WITH GCC-exception-3.1 AND "
        "LGPL-2.1-or-later AND LicenseRef-public-domain AND MIT AND (MPL-2.0 OR Apache-2.0)")


def test_copyright_that_is_not_machine_readable_is_noassertion() -> None:
    free_text = "This is the Debian prepackaged version of the GNU C Library.\n\nLGPL-2.1+\n"
    assert licence_of_copyright(free_text) == NOASSERTION
    assert licence_of_copyright("") == NOASSERTION
    assert licence_of_copyright("Format: x\n\nFiles: *\nCopyright: c\n") == NOASSERTION
    assert licence_of_copyright("Format: x\n\x00\xff\n\n\nFiles\n: :\n License: ::") \
        == NOASSERTION


@pytest.mark.parametrize(("expression", "kind"), [
    ("Zlib", "permissive"),
    ("BSD-3-Clause AND MIT AND curl AND X11 AND ISC", "permissive"),
    ("LicenseRef-public-domain AND BSD-2-Clause", "permissive"),
    ("Apache-2.0", "permissive"),
    ("GPL-2.0-or-later AND LicenseRef-public-domain", "copyleft"),
    ("(BSD-3-Clause OR GPL-2.0-only) AND MIT", "copyleft"),
    ("GPL-3.0-or-later WITH GCC-exception-3.1", "copyleft"),
    ("LGPL-2.1-or-later", "copyleft"),
    ("MPL-2.0", "copyleft"),
    ("LicenseRef-GPL-2-with-OpenSSL-exception", "copyleft"),
    ("LicenseRef-Chromium AND MIT", "unknown"),
    (NOASSERTION, "unknown"),
    ("((( not an expression", "unknown"),
])
def test_licence_kinds(expression: str, kind: str) -> None:
    assert licence_kind(expression) == kind


MODINFO = (
    "path\texample.com/myagent\n"
    "mod\texample.com/myagent\t(devel)\t\n"
    "dep\tgolang.org/x/sys\tv0.1.0\th1:sys=\n"
    "dep\tgithub.com/mattn/go-sqlite3\tv1.14.16\n"
    "=>\t/usr/share/gocode/src/github.com/mattn/go-sqlite3\t(devel)\t\n"
    "dep\tgithub.com/a/b\tv1.0.0\n"
    "=>\tgithub.com/fork/b\tv1.0.1\th1:fork=\n"
    "build\tCGO_ENABLED=1\n"
)


def test_go_modules_main_first_then_dependencies_by_path_with_replacements() -> None:
    assert go_modules(parse_modinfo("go1.19.8", MODINFO)) == (
        GoModule("example.com/myagent", "(devel)", "", None, True),
        GoModule("github.com/a/b", "v1.0.0", "h1:fork=", ("github.com/fork/b", "v1.0.1")),
        GoModule("github.com/mattn/go-sqlite3", "v1.14.16", "",
                 ("/usr/share/gocode/src/github.com/mattn/go-sqlite3", "(devel)")),
        GoModule("golang.org/x/sys", "v0.1.0", "h1:sys="),
    )
    assert go_modules(parse_modinfo("go1.19.8", "path\tcommand-line-arguments\n")) == ()


# --- the database in a tiny tree ---------------------------------------------------------

def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def tiny_root(where: Path) -> Path:
    """Merged /usr with an ABSOLUTE /lib symlink (it must resolve in the root, not on the
    host), libfoo1 listing its library under /lib, a doc dir that links to another package's
    and one that links out of the root, and a package whose list remains after removal."""
    root = where / "root"
    write(root / "usr/lib/x86_64-linux-gnu/libfoo.so.1.2", b"\x7fELF foo")
    os.symlink("libfoo.so.1.2", root / "usr/lib/x86_64-linux-gnu/libfoo.so.1")
    write(root / "usr/lib/x86_64-linux-gnu/libgone.so.1", b"\x7fELF gone")
    write(root / "usr/lib/x86_64-linux-gnu/libmine.so", b"\x7fELF mine")
    os.symlink("/usr/lib", root / "lib")
    write(root / "etc/os-release", 'ID=debian\nVERSION_ID="12"\n')
    write(root / "usr/share/doc/foo-base/copyright",
          "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
          "Files: *\nCopyright: me\nLicense: Expat\n")
    os.symlink("foo-base", root / "usr/share/doc/libfoo1")
    os.symlink("/../../../../../../../../etc", root / "usr/share/doc/libbar1")
    write(root / "etc/copyright", "Format: x\n\nFiles: *\nCopyright: c\nLicense: GPL-2+\n")
    write(root / "var/lib/dpkg/status",
          "Package: libfoo1\nStatus: install ok installed\nArchitecture: amd64\n"
          "Multi-Arch: same\nSource: foo (1.2-1)\nVersion: 1.2-1+b1\n\n"
          "Package: libbar1\nStatus: install ok installed\nArchitecture: amd64\n"
          "Version: 3\n\n"
          "Package: libgone1\nStatus: deinstall ok half-installed\nArchitecture: amd64\n"
          "Version: 0.1\n")
    write(root / "var/lib/dpkg/info/libfoo1:amd64.list",
          "/.\n/lib\n/lib/x86_64-linux-gnu\n/lib/x86_64-linux-gnu/libfoo.so.1.2\n"
          "/lib/x86_64-linux-gnu/libfoo.so.1\n/usr/share/doc/libfoo1\n")
    write(root / "var/lib/dpkg/info/libbar1.list", "/usr/lib/x86_64-linux-gnu/libbar.so.3\n")
    write(root / "var/lib/dpkg/info/libgone1.list", "/lib/x86_64-linux-gnu/libgone.so.1\n")
    write(root / "var/lib/dpkg/info/nobody.list", b"\xff\xfe\x00garbage\n/lib/x\n")
    return root


def test_files_match_what_dpkg_lists_through_the_roots_own_symlinks(tmp_path: Path) -> None:
    root = tiny_root(tmp_path)
    lib = f"{root}/usr/lib/x86_64-linux-gnu"
    found = find_provenance(Sysroot(str(root)), [
        ("lib/libfoo.so.1", f"{lib}/libfoo.so.1.2"),
        ("lib/alias.so.1", f"{root}/lib/x86_64-linux-gnu/libfoo.so.1"),  # via /lib -> /usr/lib
        ("lib/libgone.so.1", f"{lib}/libgone.so.1"),
        ("lib/libmine.so", f"{lib}/libmine.so"),
        ("bin/prog", str(tmp_path / "prog")),
        ("bin/launcher", None),
    ])
    by_dest = {f.dest: f for f in found.files}
    assert [f.dest for f in found.files] == sorted(by_dest)
    assert by_dest["lib/libfoo.so.1"].package == "libfoo1:amd64"
    assert by_dest["lib/alias.so.1"].package == "libfoo1:amd64"
    admindir = "/var/lib/dpkg in the build root"  # as the root has it, wherever it lies
    assert by_dest["lib/libgone.so.1"].package is None
    assert by_dest["lib/libgone.so.1"].unknown_because == (
        f"not installed by any package of {admindir} "
        "(listed by libgone1:amd64 (half-installed), not installed)")
    assert by_dest["lib/libmine.so"].unknown_because == (
        f"not installed by any package of {admindir}")
    assert by_dest["bin/prog"].unknown_because == (
        "outside the build root, whose dpkg database is the one read")
    assert by_dest["bin/launcher"].unknown_because == "made by the build, not by a package"
    [package] = found.packages
    assert (package.key, package.version, package.source, package.source_version,
            package.distro, package.database) == (
        "libfoo1:amd64", "1.2-1+b1", "foo", "1.2-1", "debian-12", admindir)
    assert package.copyright == "/usr/share/doc/foo-base/copyright"  # in the root
    assert found.tree == str(root)
    assert package.maintainer is None  # the status does not say
    assert (package.licence, package.licence_kind) == ("MIT", "permissive")
    assert found.note == f"dpkg database {admindir}"


def test_a_doc_dir_linking_out_of_the_root_is_read_inside_it(tmp_path: Path) -> None:
    root = tiny_root(tmp_path)
    write(root / "usr/lib/x86_64-linux-gnu/libbar.so.3", b"\x7fELF bar")
    found = find_provenance(Sysroot(str(root)),
                            [("lib/libbar.so.3", f"{root}/usr/lib/x86_64-linux-gnu/libbar.so.3")])
    [package] = found.packages
    # /usr/share/doc/libbar1 -> /../../etc stays in the root: ROOT/etc/copyright, never /etc.
    assert package.copyright == "/etc/copyright"
    assert found.tree == str(root)
    assert package.licence == "GPL-2.0-or-later"


def test_a_changed_database_is_reread_and_an_unchanged_one_is_not(tmp_path: Path) -> None:
    root = tiny_root(tmp_path)
    files = [("lib/libmine.so", f"{root}/usr/lib/x86_64-linux-gnu/libmine.so")]
    assert find_provenance(Sysroot(str(root)), files).files[0].package is None
    first = provenance.load_database(Sysroot(str(root)))
    assert provenance.load_database(Sysroot(str(root))) is first
    info = root / "var/lib/dpkg/info"
    write(root / "var/lib/dpkg/status.new", (root / "var/lib/dpkg/status").read_text()
          + "\nPackage: mine\nStatus: install ok installed\nArchitecture: amd64\nVersion: 9\n")
    os.replace(root / "var/lib/dpkg/status.new", root / "var/lib/dpkg/status")  # as dpkg does
    write(info / "mine.list.new", "/usr/lib/x86_64-linux-gnu/libmine.so\n")
    os.replace(info / "mine.list.new", info / "mine.list")
    assert find_provenance(Sysroot(str(root)), files).files[0].package == "mine:amd64"


def test_caps_and_garbage_never_raise_and_are_said(tmp_path: Path, monkeypatch) -> None:
    root = tiny_root(tmp_path)
    write(root / "var/lib/dpkg/info/libfoo1:amd64.list", "/lib/x86_64-linux-gnu/libfoo.so.1.2\n"
          + "/usr/share/filler\n" * 1000)
    write(root / "usr/share/doc/foo-base/copyright", "Format: x\n\nFiles: *\nLicense: MIT\n"
          + " text\n" * 100_000)
    monkeypatch.setattr(provenance, "MAX_LIST_BYTES", 4096)
    monkeypatch.setattr(provenance, "MAX_COPYRIGHT_BYTES", 4096)
    found = find_provenance(Sysroot(str(root)), [
        ("lib/libfoo.so.1", f"{root}/usr/lib/x86_64-linux-gnu/libfoo.so.1.2")])
    assert found.files[0].package == "libfoo1:amd64"  # the first line survived the cut
    assert found.note.endswith("; libfoo1:amd64.list cut at 4096 bytes")
    assert found.packages[0].licence == NOASSERTION  # a cut copyright file is not guessed at


def test_lists_that_point_out_of_the_root_or_would_block_are_refused(tmp_path: Path) -> None:
    root = tiny_root(tmp_path)
    info = root / "var/lib/dpkg/info"
    outside = write(tmp_path / "host.list", "/usr/lib/x86_64-linux-gnu/libmine.so\n")
    (info / "libbar1.list").unlink()
    os.symlink(outside, info / "libbar1.list")  # a host file must not decide the answer
    (info / "libgone1.list").unlink()
    os.mkfifo(info / "libgone1.list")  # reading it would block forever
    (root / "usr/share/doc/foo-base/copyright").unlink()
    os.mkfifo(root / "usr/share/doc/foo-base/copyright")
    lib = f"{root}/usr/lib/x86_64-linux-gnu"
    found = find_provenance(Sysroot(str(root)), [("lib/libmine.so", f"{lib}/libmine.so"),
                                                 ("lib/libfoo.so.1", f"{lib}/libfoo.so.1.2")])
    assert [f.package for f in found.files] == ["libfoo1:amd64", None]
    assert found.note.endswith("; libbar1.list unreadable; libgone1.list unreadable")
    assert (found.packages[0].licence, found.packages[0].copyright) == (NOASSERTION, None)


def test_a_root_without_any_database_says_so_for_every_file(tmp_path: Path) -> None:
    root = tmp_path / "bare"
    write(root / "lib/libc.so.6", b"\x7fELF")
    found = find_provenance(Sysroot(str(root)), [("lib/libc.so.6", f"{root}/lib/libc.so.6"),
                                                 ("bin/launcher", None)])
    assert found.packages == ()
    assert found.note == "no dpkg database in the build root: no file's package is known"
    assert [(f.package, f.unknown_because) for f in found.files] == [
        (None, "made by the build, not by a package"),
        (None, "no dpkg database in the build root"),
    ]

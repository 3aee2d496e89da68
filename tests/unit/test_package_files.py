"""`--from-package`: package_files.package_carries on the build host's own dpkg database (git,
perl), on the Debian 11 root (merged /usr: dpkg lists /bin/ls, the file is /usr/bin/ls), and
on tiny databases written here for the edges (absent files, diversions, changed conffiles,
whole trees with a foreign file, a split /usr, Depends, roots without a database)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from support.needs import need
from support.roots import debian11_tree

from bundler import package_files
from bundler.carry import Carry
from bundler.errors import InputError
from bundler.package_files import (
    PackageFiles,
    dependency_names,
    is_shared_dir,
    left_out_kind,
    package_carries,
    place_of,
)
from bundler.provenance import Diversion, parse_diversions, parse_status
from bundler.sysroot import Sysroot


def covering(found: PackageFiles, path: str) -> Carry | None:
    """The carry that brings `path` (itself, or a tree holding it and not excluding it)."""
    for carry in found.carries:
        if carry.source == path:
            return carry
        if path.startswith(carry.source + "/"):
            relative = path[len(carry.source) + 1:]
            return None if relative in carry.exclude else carry
    return None


def write(path: Path, content: str | bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        path.write_text(content)
    else:
        path.write_bytes(content)
    return path


def md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


# --- the build host's database -----------------------------------------------------------

def host_package(program: str) -> None:
    need(os.path.exists("/var/lib/dpkg/status") and os.path.exists(program),
         f"{program} of a Debian host is needed (scripts/test installs it)")


def test_git_brings_its_helpers_and_templates_not_its_docs_or_itself() -> None:
    host_package("/usr/bin/git")
    found = package_carries(Sysroot("/"), "/usr/bin/git")
    assert found.package == "git:amd64" and found.version
    by_source = {c.source: c for c in found.carries}
    assert by_source["/usr/lib/git-core"] == Carry("/usr/lib/git-core", "usr/lib/git-core",
                                                   "package git")  # one tree, not 190 files
    assert covering(found, "/usr/share/git-core/templates/description") is not None
    assert covering(found, "/usr/share/doc/git/copyright") is None
    assert not any(c.source.startswith(("/usr/share/doc", "/usr/share/man"))
                   for c in found.carries)
    assert covering(found, "/usr/bin/git") is None  # the build bundles the program itself
    assert covering(found, "/usr/share/bash-completion/completions/git") is None
    # Every carry is a file or tree of git's, at its own path under the top.
    assert all(c.dest == c.source.lstrip("/") and c.why == "package git"
               for c in found.carries)
    assert any(n.startswith("left out ") and "documentation files" in n
               and "/usr/share/doc/git/" in n for n in found.left_out)
    # git runs perl for some commands: its Depends are named, never followed.
    assert any(n.startswith("depends on perl:") for n in found.left_out)
    assert not any(c.source.startswith("/usr/share/perl/") for c in found.carries)
    assert all("\n" not in n for n in found.left_out)


def test_perl_is_perl_base_and_its_modules_tree_and_cpan_names_perl_modules() -> None:
    host_package("/usr/bin/perl")
    found = package_carries(Sysroot("/"), "/usr/bin/perl")
    assert found.package == "perl-base:amd64"
    assert covering(found, "/usr/bin/perl") is None
    trees = [c.source for c in found.carries if os.path.isdir(c.source)]
    assert "/usr/lib/x86_64-linux-gnu/perl-base" in trees
    assert covering(found, "/usr/lib/x86_64-linux-gnu/perl-base/strict.pm") is not None
    host_package("/usr/bin/cpan")
    cpan = package_carries(Sysroot("/"), "/usr/bin/cpan")
    assert cpan.package == "perl:amd64"
    [modules] = [n for n in cpan.left_out if n.startswith("depends on perl-modules-")]
    assert "/usr/share/perl" in modules  # where its files are, for --data


def test_a_program_of_no_package_is_one_line_naming_the_database(tmp_path: Path) -> None:
    host_package("/usr/bin/git")
    program = write(tmp_path / "mine", b"\x7fELF")
    with pytest.raises(InputError) as raised:
        package_carries(Sysroot("/"), str(program))
    assert raised.value.message == (
        f"--from-package: {program} is not installed by a package in the build root "
        "(dpkg database at /var/lib/dpkg)")
    with pytest.raises(InputError, match="does not exist in the build root"):
        package_carries(Sysroot("/"), str(tmp_path / "absent"))
    with pytest.raises(InputError, match="absolute path"):
        package_carries(Sysroot("/"), "usr/bin/git")


# --- the Debian 11 root (merged /usr) ----------------------------------------------------

def test_debian11_ls_is_found_under_both_of_its_names() -> None:
    root = Sysroot(str(debian11_tree()))
    listed = package_carries(root, "/bin/ls")  # as dpkg lists it
    merged = package_carries(root, "/usr/bin/ls")  # where the file is
    assert listed == merged
    assert listed.package == "coreutils:amd64" and listed.version.startswith("8.32")
    assert covering(listed, "/usr/bin/ls") is None  # the program itself, by either name
    assert covering(listed, "/bin/ls") is None
    cat = covering(listed, "/usr/bin/cat")  # canonical names: never /bin/cat
    assert cat == Carry("/usr/bin/cat", "usr/bin/cat", "package coreutils")
    assert not any(c.source.startswith("/bin/") for c in listed.carries)
    perl = package_carries(root, "/usr/bin/perl")
    assert (perl.package, perl.version.startswith("5.32")) == ("perl-base:amd64", True)
    assert "/usr/lib/x86_64-linux-gnu/perl-base" in [c.source for c in perl.carries]
    assert covering(perl, "/usr/bin/perl") is None


# --- tiny databases ------------------------------------------------------------------------

def paragraph(name: str, **fields: str) -> str:
    lines = [f"Package: {name}", "Status: install ok installed", "Architecture: amd64",
             "Version: 1.0-1"]
    lines += [f"{key.replace('_', '-')}: {value}" for key, value in fields.items()]
    return "\n".join(lines) + "\n"


def database(root: Path, packages: dict[str, tuple[str, list[str]]]) -> None:
    """A status file and one .list per package: name -> (extra status text, listed paths)."""
    write(root / "var/lib/dpkg/status",
          "\n".join(paragraph(name) + extra for name, (extra, _) in packages.items()))
    for name, (_, paths) in packages.items():
        write(root / f"var/lib/dpkg/info/{name}.list", "/.\n" + "".join(f"{p}\n" for p in paths))


def with_dirs(*files: str) -> list[str]:
    """The paths as dpkg lists them: every parent directory first."""
    listed: list[str] = []
    for path in files:
        parts = path.strip("/").split("/")
        for depth in range(1, len(parts) + 1):
            item = "/" + "/".join(parts[:depth])
            if item not in listed:
                listed.append(item)
    return listed


def tool_root(where: Path) -> Path:
    """Merged /usr; `tool` ships its program, a helper tree (with the program's twin and an
    empty directory), a data tree one foreign file spoils, a config, docs and an absent file."""
    root = where / "root"
    (root / "usr/bin").mkdir(parents=True)
    os.symlink("usr/bin", root / "bin")
    for path in ("usr/bin/tool", "usr/lib/tool/tool", "usr/lib/tool/helper",
                 "usr/lib/tool/sub/plugin.so", "usr/share/tool/a.dat",
                 "usr/share/doc/tool/copyright", "usr/share/man/man1/tool.1.gz"):
        write(root / path)
    (root / "usr/lib/tool/empty").mkdir()
    os.symlink("helper", root / "usr/lib/tool/helper2")
    write(root / "usr/share/tool/local.cache")  # made on the host: no package's
    write(root / "etc/tool.conf", "shipped\n")
    write(root / "etc/tool-edited.conf", "edited by the admin\n")
    files = ["/bin/tool", "/usr/lib/tool/tool", "/usr/lib/tool/helper", "/usr/lib/tool/helper2",
             "/usr/lib/tool/sub/plugin.so", "/usr/share/tool/a.dat",
             "/usr/share/doc/tool/copyright", "/usr/share/man/man1/tool.1.gz",
             "/etc/tool.conf", "/etc/tool-edited.conf", "/usr/share/tool/gone.dat"]
    shipped, edited = md5("shipped\n"), md5("as shipped\n")
    conffiles = (f"Conffiles:\n /etc/tool.conf {shipped}\n"
                 f" /etc/tool-edited.conf {edited}\n")
    listed = [*with_dirs(*files), "/usr/lib/tool/empty"]
    database(root, {"tool": ("Depends: tool-data (= 1.0-1), libtool1 | libother, "
                             "tool-doc, libc6 (>= 2.36)\n" + conffiles, listed)})
    return root


def test_a_tiny_package_is_trees_files_and_one_line_notes(tmp_path: Path) -> None:
    root = tool_root(tmp_path)
    found = package_carries(Sysroot(str(root)), "/usr/bin/tool")  # dpkg lists /bin/tool
    assert (found.package, found.version) == ("tool:amd64", "1.0-1")
    why = "package tool"
    assert found.carries == (
        Carry("/etc/tool.conf", "etc/tool.conf", why),  # unchanged: how it runs at home
        # Every entry is tool's (an empty dir it lists too): one tree.
        Carry("/usr/lib/tool", "usr/lib/tool", why),
        # local.cache is no package's: the tree is not tool's alone, so file by file.
        Carry("/usr/share/tool/a.dat", "usr/share/tool/a.dat", why),
    )
    assert found.left_out == (
        "left out 2 documentation files: /usr/share/doc/tool/copyright, "
        "/usr/share/man/man1/tool.1.gz",
        "left out 1 conffile changed since dpkg installed the package (the build host's "
        "configuration: --data one to carry it): /etc/tool-edited.conf",
        "left out 1 file tool:amd64 lists that the build root lacks: /usr/share/tool/gone.dat",
    )


def test_a_conffile_too_big_to_check_is_carried_and_said(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    root = tool_root(tmp_path)
    monkeypatch.setattr(package_files, "MAX_CONFFILE_BYTES", 4)
    found = package_carries(Sysroot(str(root)), "/usr/bin/tool")
    assert covering(found, "/etc/tool-edited.conf") is not None
    assert ("carried 2 conffiles not known to be as dpkg installed them (unreadable, or over "
            "4 bytes): /etc/tool-edited.conf, /etc/tool.conf") in found.left_out


def test_the_program_inside_a_whole_tree_stays_in_it(tmp_path: Path) -> None:
    root = tool_root(tmp_path)
    found = package_carries(Sysroot(str(root)), "/usr/lib/tool/helper2")  # a symlink to helper
    tree = covering(found, "/usr/lib/tool/sub/plugin.so")
    # helper2 -> helper in the carried tree must not dangle: the program stays (the build
    # stores identical files once), only a tree's left-out files are excluded.
    assert tree == Carry("/usr/lib/tool", "usr/lib/tool", "package tool")
    assert covering(found, "/usr/bin/tool") == Carry("/usr/bin/tool", "usr/bin/tool",
                                                     "package tool")


def test_depends_on_data_are_named_libraries_docs_and_glibc_are_not(tmp_path: Path) -> None:
    root = tool_root(tmp_path)
    for path in ("usr/share/tool-data/big/x.dat", "usr/share/tool-data/big/y.dat",
                 "usr/lib/x86_64-linux-gnu/libtool.so.1", "usr/share/doc/tool-doc/manual",
                 "usr/lib/x86_64-linux-gnu/gconv/X.so"):
        write(root / path)
    status = (root / "var/lib/dpkg/status").read_text()
    write(root / "var/lib/dpkg/status", status + "\n" + paragraph("tool-data") + "\n"
          + paragraph("libtool1") + "\n" + paragraph("tool-doc") + "\n"
          + paragraph("libc6", Source="glibc"))
    info = root / "var/lib/dpkg/info"
    write(info / "tool-data.list", "\n".join(with_dirs("/usr/share/tool-data/big/x.dat",
                                                       "/usr/share/tool-data/big/y.dat")))
    write(info / "libtool1.list", "\n".join(with_dirs("/usr/lib/x86_64-linux-gnu/libtool.so.1",
                                                      "/usr/share/doc/libtool1/copyright")))
    write(info / "tool-doc.list", "/usr/share/doc/tool-doc/manual\n")
    write(info / "libc6.list", "/usr/lib/x86_64-linux-gnu/gconv/X.so\n")
    found = package_carries(Sysroot(str(root)), "/usr/bin/tool")
    depends = [n for n in found.left_out if n.startswith("depends on")]
    assert depends == [
        "depends on tool-data:amd64 1.0-1, not carried: 1 place: /usr/share/tool-data "
        "(--data what the program needs of them, or --from-package for a program of it)"]


def test_a_diverted_file_is_found_where_the_diversion_put_it(tmp_path: Path) -> None:
    root = tool_root(tmp_path)
    # wrapper diverts tool's /usr/bin/tool to /usr/bin/tool.real and ships its own there.
    os.rename(root / "usr/bin/tool", root / "usr/bin/tool.real")
    write(root / "usr/bin/tool", "#!/bin/sh\nexec tool.real \"$@\"\n")
    status = (root / "var/lib/dpkg/status").read_text()
    write(root / "var/lib/dpkg/status", status + "\n" + paragraph("wrapper"))
    write(root / "var/lib/dpkg/info/wrapper.list", "/usr\n/usr/bin\n/usr/bin/tool\n")
    write(root / "var/lib/dpkg/diversions", "/bin/tool\n/usr/bin/tool.real\nwrapper\n")
    real = package_carries(Sysroot(str(root)), "/usr/bin/tool.real")
    assert real.package == "tool:amd64"
    assert covering(real, "/usr/bin/tool.real") is None  # the program itself
    assert covering(real, "/usr/bin/tool") is None  # wrapper's, not tool's
    wrapper = package_carries(Sysroot(str(root)), "/usr/bin/tool")
    assert wrapper.package == "wrapper:amd64" and wrapper.carries == ()
    # Tool's own file, when the program is another of its files, is carried from its place.
    helper = package_carries(Sysroot(str(root)), "/usr/lib/tool/helper")
    assert covering(helper, "/usr/bin/tool.real") == Carry(
        "/usr/bin/tool.real", "usr/bin/tool.real", "package tool")


def test_a_split_usr_roots_bin_files_would_land_in_the_artifacts_bin(tmp_path: Path) -> None:
    root = tmp_path / "split"
    write(root / "bin/prog")
    write(root / "bin/other")
    write(root / "usr/share/prog/data")
    database(root, {"prog": ("", with_dirs("/bin/prog", "/bin/other", "/usr/share/prog/data"))})
    found = package_carries(Sysroot(str(root)), "/bin/prog")
    assert found.carries == (Carry("/usr/share/prog", "usr/share/prog", "package prog"),)
    assert found.left_out == ("left out 1 file whose own place would be the artifact's bin/ "
                              "(--data SRC:DEST to carry one): /bin/other",)


def test_roots_without_a_dpkg_database_or_with_only_an_uninstalled_owner(tmp_path: Path
                                                                         ) -> None:
    bare = tmp_path / "bare"
    write(bare / "usr/bin/prog")
    with pytest.raises(InputError) as raised:
        package_carries(Sysroot(str(bare)), "/usr/bin/prog")
    assert raised.value.message == ("--from-package: the build root has no dpkg database "
                                    "(/var/lib/dpkg/status), so the package of /usr/bin/prog "
                                    "cannot be known")
    (bare / "var/lib/rpm").mkdir(parents=True)
    with pytest.raises(InputError, match="RPM build roots are not supported yet"):
        package_carries(Sysroot(str(bare)), "/usr/bin/prog")
    gone = tmp_path / "gone"
    write(gone / "usr/bin/prog")
    write(gone / "var/lib/dpkg/status", "Package: prog\nStatus: deinstall ok config-files\n"
          "Architecture: amd64\nVersion: 1\n")
    write(gone / "var/lib/dpkg/info/prog.list", "/usr/bin/prog\n")
    with pytest.raises(InputError) as raised:
        package_carries(Sysroot(str(gone)), "/usr/bin/prog")
    assert raised.value.message == (
        "--from-package: /usr/bin/prog is not installed by a package in the build root "
        "(dpkg database at /var/lib/dpkg in the build root) (listed by prog:amd64 "
        "(config-files), not installed)")


# --- pure parts ----------------------------------------------------------------------------

def test_status_keeps_depends_and_live_conffiles() -> None:
    [entry] = parse_status(
        "Package: tool\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1\n"
        "Pre-Depends: dpkg\nDepends: a (>= 1), b | c\nConffiles:\n /etc/a 0123abcd\n"
        " /etc/old 4567 obsolete\n /etc/b 89ef\nDescription: x\n y\n")
    assert entry.depends == "a (>= 1), b | c"
    assert entry.conffiles == (("/etc/a", "0123abcd"), ("/etc/b", "89ef"))


def test_diversions_parse_in_threes_and_local_ones_have_no_package() -> None:
    assert parse_diversions("/a\n/a.real\npkg\n/b\n/b.local\n:\nnot a path\n/x\np\n/c") == (
        Diversion("/a", "/a.real", "pkg"), Diversion("/b", "/b.local", ""))


@pytest.mark.parametrize(("depends", "expected"), [
    ("aa (>= 1), bb:any | cc", [[("aa", "")], [("bb", "any"), ("cc", "")]]),
    ("", []),
    ("aa [amd64], , B-bad, x", [[("aa", "")]]),  # names are 2+ of [a-z0-9+.-]
])
def test_dependency_names(depends: str, expected: list[list[tuple[str, str]]]) -> None:
    assert dependency_names(depends) == expected


@pytest.mark.parametrize(("directory", "shared"), [
    ("/usr", True), ("/etc", True), ("/usr/lib", True), ("/usr/share", True),
    ("/usr/lib/x86_64-linux-gnu", True), ("/lib/aarch64-linux-gnu", True),
    ("/usr/share/locale/de", True), ("/usr/share/locale/de/LC_MESSAGES", True),
    ("/usr/lib/git-core", False), ("/usr/share/git-core/templates", False),
    ("/usr/lib/x86_64-linux-gnu/perl-base", False), ("/etc/ssl", False),
])
def test_shared_directories_are_never_one_packages_tree(directory: str, shared: bool) -> None:
    assert is_shared_dir(directory) is shared


def test_left_out_kinds_and_places() -> None:
    assert left_out_kind("/usr/share/doc/git/copyright") == "documentation"
    assert left_out_kind("/x", "/lib/systemd/system/a.service") == "service integration"
    assert left_out_kind("/usr/share/docs/x") is None  # a directory, not a prefix of a name
    assert place_of("/usr/lib/python3.11/os.py") == "/usr/lib/python3.11"
    assert place_of("/usr/bin/cpan") == "/usr/bin/cpan"
    assert place_of("/usr/share/locale/de/LC_MESSAGES/x.mo") == (
        "/usr/share/locale/de/LC_MESSAGES/x.mo")


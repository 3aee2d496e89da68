"""find_provenance held to dpkg's own answers (`dpkg -S`, `dpkg-query -W`, run here) for real
closures: curl and sqlite3 on this host, a Debian 11 root's programs (`--admindir`), an
aarch64 program against the cross sysroot (the host's database), a hand-made root (no
database anywhere); and go_modules held to `go version -m`."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from support.dpkg import dpkg_owners, dpkg_query_w
from support.gobuild import go_build
from support.needs import need, need_tool
from support.roots import debian11_tree
from support.toolchain import gcc

from bundler.golang import read_build_info
from bundler.inventory import NOASSERTION, GoModule, Provenance
from bundler.provenance import find_provenance, go_modules
from bundler.resolve import ResolveOptions, resolve_closure
from bundler.sysroot import Sysroot

CROSS_SYSROOT = "/usr/aarch64-linux-gnu"
HELLO = "#include <stdio.h>\nint main(void) { puts(\"hello\"); return 0; }\n"


def bundled_files(program: str, sysroot: Sysroot,
                  runtime: tuple[str, ...] = ()) -> list[tuple[str, str | None]]:
    """(dest, host path) for what a build of `program` bundles, plus a launcher it makes."""
    closure = resolve_closure(program, sysroot, ResolveOptions(runtime_loaded=runtime))
    files: list[tuple[str, str | None]] = [(f"bin/{os.path.basename(program)}", program),
                                           ("bin/launcher", None)]
    files += [(f"lib/{library.name}", library.host_path) for library in closure.libraries]
    if closure.loader is not None:
        files.append((f"lib/{os.path.basename(closure.loader.path)}", closure.loader.host_path))
    return files


def assert_agrees_with_dpkg(found: Provenance, root: str = "/") -> int:
    """Every file's package is the one dpkg names, with dpkg-query's version; returns how
    many files have a package."""
    packages = {p.key: p for p in found.packages}
    assert sorted(packages) == [p.key for p in found.packages]
    assert {f.package for f in found.files if f.package} == set(packages)
    for origin in found.files:
        if origin.source is None:
            assert origin.package is None and origin.unknown_because
            continue
        owners = dpkg_owners(origin.source, root)
        if not owners:
            assert origin.package is None, origin
            assert origin.unknown_because, origin
            continue
        [owner] = owners
        package = packages[origin.package or "?"]
        assert (package.key if ":" in owner else package.name) == owner, origin
        assert dpkg_query_w(owner, root) == (f"{package.version} {package.architecture} "
                                             f"{package.source} {package.source_version} "
                                             f"{package.maintainer or ''}")
    return sum(1 for f in found.files if f.package)


def assert_copyright_facts(found: Provenance, root: str = "/") -> None:
    """The copyright file is the root's /usr/share/doc/NAME/copyright, named as the root
    has it (never by where the host keeps the root), and only a DEP-5 file gives a
    licence."""
    assert found.tree == os.path.realpath(root)
    for package in found.packages:
        path = f"{root.rstrip('/')}/usr/share/doc/{package.name}/copyright"
        if package.copyright is None:
            assert not os.path.exists(path), package
            assert package.licence == NOASSERTION
            continue
        assert package.copyright.startswith("/usr/share/doc/")
        host = f"{root.rstrip('/')}{package.copyright}"
        assert os.path.samefile(host, path)
        with open(host, encoding="utf-8", errors="replace") as handle:
            machine_readable = handle.read(7) == "Format:"
        assert (package.licence != NOASSERTION) == machine_readable, package


@pytest.mark.parametrize("program", ["/usr/bin/curl", "/usr/bin/sqlite3"])
def test_host_closures_agree_with_dpkg(program: str) -> None:
    need(os.path.exists(program), f"{program} is not installed")
    files = bundled_files(program, Sysroot("/"), runtime=("libgcc_s.so.1",))
    found = find_provenance(Sysroot("/"), files)
    assert assert_agrees_with_dpkg(found) == len(files) - 1  # all but the launcher
    assert found.note == "dpkg database /var/lib/dpkg"
    assert_copyright_facts(found)
    packages = {p.name: p for p in found.packages}
    libc = packages["libc6"]
    assert (libc.source, libc.distro, libc.database) == ("glibc", "debian-12", "/var/lib/dpkg")
    assert (libc.licence, libc.licence_kind) == (NOASSERTION, "unknown")  # not DEP-5
    gcc_s = packages["libgcc-s1"]  # its doc dir is a symlink to gcc-12-base's
    assert gcc_s.copyright == "/usr/share/doc/gcc-12-base/copyright"
    assert (gcc_s.licence, gcc_s.licence_kind) == (NOASSERTION, "unknown")
    if program.endswith("curl"):
        assert (packages["zlib1g"].licence, packages["zlib1g"].licence_kind) == (
            "Zlib", "permissive")
        assert packages["libzstd1"].licence == "(BSD-3-Clause OR GPL-2.0-only) AND MIT AND Zlib"
        assert packages["libcurl4"].licence_kind == "copyleft"  # GPL-2+ with Libtool-exception
    else:
        assert packages["libsqlite3-0"].licence == (
            "GPL-2.0-or-later AND LicenseRef-public-domain")
    assert find_provenance(Sysroot("/"), files) == found  # cached, same answer


@pytest.mark.parametrize("program", ["/bin/ls", "/usr/bin/apt-get"])
def test_debian11_root_agrees_with_its_dpkg_database(program: str) -> None:
    root = str(debian11_tree())
    sysroot = Sysroot(root)
    files = bundled_files(root + program, sysroot)
    found = find_provenance(sysroot, files)
    assert assert_agrees_with_dpkg(found, root) == len(files) - 1
    assert_copyright_facts(found, root)
    libc = next(p for p in found.packages if p.name == "libc6")
    assert libc.version.startswith("2.31-")
    assert (libc.distro, libc.database) == ("debian-11", "/var/lib/dpkg in the build root")
    assert found.note == "dpkg database /var/lib/dpkg in the build root"
    assert root not in repr((found.packages, found.note))


def test_cross_sysroot_uses_the_hosts_database_and_says_so(tmp_path: Path) -> None:
    compiler = need_tool("aarch64-linux-gnu-gcc")
    need(os.path.exists(f"{CROSS_SYSROOT}/lib/libc.so.6"), "libc6-arm64-cross is missing")
    program = tmp_path / "hello"
    (tmp_path / "hello.c").write_text(HELLO)
    subprocess.run([compiler, "-O2", "-o", str(program), str(tmp_path / "hello.c"), "-lm"],
                   check=True)
    sysroot = Sysroot(CROSS_SYSROOT)
    files = bundled_files(str(program), sysroot)
    found = find_provenance(sysroot, files)
    assert assert_agrees_with_dpkg(found) == len(files) - 2  # not the launcher nor the program
    by_dest = {f.dest: f for f in found.files}
    assert by_dest["lib/libc.so.6"].package == "libc6-arm64-cross:all"
    assert by_dest["lib/ld-linux-aarch64.so.1"].package == "libc6-arm64-cross:all"
    database = "/var/lib/dpkg (the build host's: the build root has no dpkg database)"
    assert by_dest["bin/hello"].unknown_because == (
        f"not installed by any package of {database}")
    libc = next(p for p in found.packages if p.name == "libc6-arm64-cross")
    assert libc.database == database
    assert libc.distro == "debian-12"
    assert found.note.startswith("no dpkg database in the build root; its files were looked "
                                 "up in the build host's dpkg database /var/lib/dpkg")
    assert_copyright_facts(found)


def test_hand_made_root_has_no_packages_and_says_why(tmp_path: Path) -> None:
    root = tmp_path / "handmade"
    for directory in ("usr/bin", "lib/x86_64-linux-gnu", "lib64"):
        (root / directory).mkdir(parents=True)
    shutil.copy(os.path.realpath("/lib/x86_64-linux-gnu/libc.so.6"),
                root / "lib/x86_64-linux-gnu/libc.so.6")
    shutil.copy(os.path.realpath("/lib64/ld-linux-x86-64.so.2"),
                root / "lib64/ld-linux-x86-64.so.2")
    program = gcc(root / "usr/bin/hello", HELLO)
    sysroot = Sysroot(str(root))
    files = bundled_files(str(program), sysroot)
    assert len(files) == 4
    found = find_provenance(sysroot, files)
    assert found.packages == ()
    assert found.note == "no dpkg database in the build root: no file's package is known"
    for origin in found.files:
        assert origin.package is None
        assert origin.unknown_because == ("no dpkg database in the build root" if origin.source
                                          else "made by the build, not by a package")


def go_version_m_modules(path: str) -> tuple[GoModule, ...]:
    """The mod/dep/=> lines of `go version -m`, as GoModules."""
    done = subprocess.run([need_tool("go"), "version", "-m", path], capture_output=True,
                          text=True, check=True)
    modules: list[GoModule] = []
    for line in done.stdout.splitlines()[1:]:
        word, *fields = line.strip("\t").split("\t")
        fields += [""] * (3 - len(fields))
        if word in ("mod", "dep"):
            modules.append(GoModule(fields[0], fields[1], fields[2], None, word == "mod"))
        elif word == "=>":
            last = modules[-1]
            modules[-1] = GoModule(last.path, last.version, fields[2], (fields[0], fields[1]),
                                   last.main)
    return tuple(modules)


@pytest.mark.parametrize("variant", ["dynamic", "static-tags"])
def test_go_modules_equal_go_version_m(variant: str) -> None:
    path = str(go_build(variant).path)
    info = read_build_info(path)
    assert info is not None
    modules = go_modules(info)
    assert modules == go_version_m_modules(path)
    assert modules[0].main and modules[0].path == "example.com/myagent"
    sqlite = next(m for m in modules if m.path == "github.com/mattn/go-sqlite3")
    assert sqlite.replaced_by == ("/usr/share/gocode/src/github.com/mattn/go-sqlite3", "(devel)")

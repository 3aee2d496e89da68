"""The .deb of the demo agent's artifact (bundler/deb.py): written by dpkg-deb, read back
with dpkg-deb, installed with dpkg in a private copy of the Debian 11 root, run from its
prefix there, listed with dpkg -L, purged; judged by lintian; built twice to the same bytes;
its systemd unit checked by systemd-analyze and against `bundle service`.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from support.cli import assert_one_line_error, run_cli
from support.gobuild import assert_agent_output, build_agent
from support.needs import need_tool
from support.roots import chroot_run, debian11_root, need_root

from bundler.deb import write_deb
from bundler.errors import EnvironmentUnfitError
from bundler.manifest import load
from bundler.package_meta import PackageMeta
from bundler.service import unit_text

EPOCH = 1_700_000_000
META = PackageMeta(name="myagent", version="1.4.2", maintainer="Jane Doe <jane@example.com>",
                   description="Metrics agent", licence="MIT",
                   homepage="https://example.com/myagent", service=True, enable=True)
UNIT = "lib/systemd/system/myagent.service"
HOSTS = "127.0.0.1 localhost\n::1 localhost\n"  # debootstrap leaves none
# lintian's errors on this package, each accepted on purpose:
ACCEPTED_ERRORS = {
    # Policy for Debian's own archive; a vendor's package installs at its prefix, the place
    # FHS 3.13 gives add-on software (/opt/PACKAGE), and the artifact only runs from there.
    "dir-or-file-in-opt",
    # The prefix's DT_RPATH (lib/.bundle-ID) is how the program finds the bundled libraries.
    "custom-library-search-path",
    # Bundling glibc (libm) and the program's libraries is the point of the artifact.
    "embedded-library",
    # bin/NAME is the native launcher: static, without libc, by design (README "Start modes").
    "statically-linked-binary",
    # The user's program is packaged as built (faithful: its sha256 is the manifest's).
    "unstripped-binary-or-object",
    # The loader keeps the mode the artifact gives it (0755: it can be run, as glibc's is).
    "shared-library-is-executable",
    # /usr/share/doc/NAME/{copyright,changelog.gz} would be files outside the artifact
    # (dpkg -L must list exactly its files): the licences travel in PREFIX/.bundle/licenses
    # and SOURCES, the program's own licence in the Description.
    "no-copyright-file",
    "no-changelog",
}


@pytest.fixture(scope="module")
def artifact(tmp_path_factory) -> Path:
    """The demo agent's artifact as a directory: its top, dist/myagent."""
    need_tool("dpkg-deb")
    work = tmp_path_factory.mktemp("deb")
    agent = work / "build" / "myagent"
    agent.parent.mkdir()
    shutil.copyfile(build_agent("dynamic"), agent)
    agent.chmod(0o755)
    result = run_cli(str(agent), "-o", f"{work / 'dist'}/")
    assert result.returncode == 0, result.stderr
    return work / "dist" / "myagent"


@pytest.fixture(scope="module")
def deb(artifact: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("out") / "myagent_1.4.2_amd64.deb"
    write_deb(str(artifact), load(str(artifact), str(artifact)), META, str(out), EPOCH)
    return out


def _artifact_paths(top: Path) -> set[str]:
    """Every entry of the artifact tree (files, symlinks, directories) as installed."""
    paths = set()
    for directory, subdirectories, files in os.walk(top):
        for name in subdirectories + files:
            paths.add("/opt/myagent/" + os.path.relpath(os.path.join(directory, name), top))
    return paths


def _installed_paths(artifact: Path) -> set[str]:
    """What dpkg -L lists: the artifact's entries, the prefix's parents, the unit's dirs."""
    return (_artifact_paths(artifact) | {"/.", "/opt", "/opt/myagent", "/lib", "/lib/systemd",
                                         "/lib/systemd/system", f"/{UNIT}"})


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_control_fields_and_file_list(deb: Path, artifact: Path) -> None:
    fields = subprocess.run(["dpkg-deb", "-f", str(deb)], capture_output=True, text=True,
                            check=True).stdout
    assert re.search(r"^Package: myagent$", fields, re.M)
    assert re.search(r"^Version: 1\.4\.2$", fields, re.M)
    assert re.search(r"^Architecture: amd64$", fields, re.M)
    assert re.search(r"^Maintainer: Jane Doe <jane@example\.com>$", fields, re.M)
    assert re.search(r"^Homepage: https://example\.com/myagent$", fields, re.M)
    assert re.search(r"^Description: Metrics agent\n .*/opt/myagent", fields, re.M)
    assert "Licence: MIT." in fields
    assert "Depends" not in fields  # it runs on any glibc: that is the point
    size = int(re.search(r"^Installed-Size: (\d+)$", fields, re.M).group(1))
    raw = sum(p.stat().st_size for p in artifact.rglob("*") if p.is_file()
              and not p.is_symlink())
    assert raw // 1024 <= size <= raw // 1024 + 200

    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True,
                             check=True).stdout.splitlines()
    entries = {line.split()[5].removeprefix(".").rstrip("/") or "/.": line.split()
               for line in listing}
    assert set(entries) == _installed_paths(artifact)
    assert all(fields[1] == "root/root" for fields in entries.values())
    assert entries["/opt/myagent/libexec/myagent"][0] == "-rwxr-xr-x"
    assert entries["/opt/myagent/lib/libm.so.6"][0] == "-rw-r--r--"
    link = next(path for path in entries if path.startswith("/opt/myagent/lib/.bundle-"))
    assert entries[link][0].startswith("l") and entries[link][-1] == "."
    assert all(f"{fields[3]} {fields[4]}" == "2023-11-14 22:13" for fields in entries.values())

    control = subprocess.run(["dpkg-deb", "-I", str(deb)], capture_output=True, text=True,
                             check=True).stdout
    for script in ("postinst", "prerm", "postrm", "md5sums"):
        assert script in control


def test_two_builds_give_the_same_bytes(deb: Path, artifact: Path, tmp_path: Path) -> None:
    for path in artifact.rglob("*"):  # newer mtimes in the tree change nothing
        os.utime(path, follow_symlinks=False)
    again = tmp_path / "again.deb"
    write_deb(str(artifact), load(str(artifact), str(artifact)), META, str(again), EPOCH)
    assert _sha256(again) == _sha256(deb)
    later = tmp_path / "later.deb"
    write_deb(str(artifact), load(str(artifact), str(artifact)), META, str(later), EPOCH + 1)
    assert _sha256(later) != _sha256(deb)  # the epoch is what dates it


def test_installs_runs_and_purges_in_debian11(deb: Path, artifact: Path,
                                              tmp_path: Path) -> None:
    need_root()
    with debian11_root(tmp_path) as root:
        (root / "etc" / "hosts").write_text(HOSTS)
        shutil.copyfile(deb, root / "tmp" / "myagent.deb")
        installed = chroot_run(root, ["dpkg", "-i", "/tmp/myagent.deb"])
        assert installed.returncode == 0, installed.stdout + installed.stderr

        ran = chroot_run(root, ["/opt/myagent/bin/myagent"])
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert_agent_output(ran.stdout, "/opt/myagent/libexec/myagent")

        listed = chroot_run(root, ["dpkg", "-L", "myagent"])
        assert listed.returncode == 0, listed.stderr
        assert set(listed.stdout.splitlines()) == _installed_paths(artifact)
        verified = chroot_run(root, ["dpkg", "--verify", "myagent"])  # md5sums
        assert (verified.returncode, verified.stdout) == (0, ""), verified.stderr

        # META.enable: postinst enabled it through deb-systemd-helper (Debian 11 has it);
        # no systemd runs in the chroot, so nothing was started.
        wants = root / "etc/systemd/system/multi-user.target.wants/myagent.service"
        assert os.readlink(wants) == "/lib/systemd/system/myagent.service"
        _verify_unit(root)

        purged = chroot_run(root, ["dpkg", "--purge", "myagent"])
        assert purged.returncode == 0, purged.stdout + purged.stderr
        assert not (root / "opt" / "myagent").exists()
        assert not (root / UNIT).exists()
        assert not os.path.lexists(wants)
        status = chroot_run(root, ["dpkg", "-s", "myagent"])
        assert status.returncode != 0


def _verify_unit(root: Path) -> None:
    """systemd-analyze verify on the installed unit, the root's own paths (ExecStart must
    exist there). The minbase root has no systemd: the host's units (the targets) are added
    to it, never over its own."""
    analyze = need_tool("systemd-analyze")
    units = root / "usr/lib/systemd/system"
    units.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-an", "/usr/lib/systemd/system/.", str(units)], check=True)
    result = subprocess.run([analyze, "verify", f"--root={root}", f"/{UNIT}"],
                            capture_output=True, text=True)
    # Unknown or malformed settings are only warnings (exit 0): none may be printed.
    assert (result.returncode, result.stderr, result.stdout) == (0, "", ""), result.stderr


def test_lintian_errors_are_accepted_ones(deb: Path) -> None:
    lintian = need_tool("lintian")
    result = subprocess.run([lintian, "--no-cfg", "--allow-root", str(deb)],
                            capture_output=True, text=True)
    tags = re.findall(r"^([EW]): myagent: (\S+)", result.stdout, re.M)
    errors = {tag for level, tag in tags if level == "E"}
    assert errors, result.stdout  # lintian ran and judged the package
    assert errors <= ACCEPTED_ERRORS, result.stdout


def test_bundle_service_prints_the_packaged_unit(deb: Path, artifact: Path,
                                                tmp_path: Path) -> None:
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp_path)], check=True)
    printed = run_cli("service", "--description", "Metrics agent", str(artifact.parent))
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == (tmp_path / UNIT).read_text()
    assert "ExecStart=/opt/myagent/libexec/myagent\n" in printed.stdout


def test_bundle_service_refuses_what_is_not_an_artifact(tmp_path: Path) -> None:
    result = run_cli("service", str(tmp_path))
    assert_one_line_error(result, 2, str(tmp_path))


def test_missing_dpkg_deb_is_exit_3_naming_dpkg(artifact: Path, tmp_path: Path,
                                               monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a host without dpkg-deb on its PATH
    out = tmp_path / "x.deb"
    with pytest.raises(EnvironmentUnfitError, match="apt-get install dpkg") as raised:
        write_deb(str(artifact), load(str(artifact), str(artifact)), META, str(out), EPOCH)
    assert raised.value.exit_code == 3
    assert os.listdir(tmp_path) == []  # no partial output, no staging left


def test_no_setuid_bit_the_manifest_does_not_record(artifact: Path, tmp_path: Path) -> None:
    tree = tmp_path / "myagent"
    shutil.copytree(artifact, tree, symlinks=True)
    (tree / "lib" / "libm.so.6").chmod(0o4755)  # the manifest records 0644
    (tree / "libexec" / "myagent").chmod(0o2755)  # and 0755
    (tree / ".bundle" / "report.md").chmod(0o4644)  # not recorded: the tree's, no setuid
    out = tmp_path / "x.deb"
    write_deb(str(tree), load(str(tree), str(tree)), META, str(out), EPOCH)
    listing = subprocess.run(["dpkg-deb", "-c", str(out)], capture_output=True, text=True,
                             check=True).stdout
    assert "-rw-r--r-- root/root" in _line(listing, "./opt/myagent/lib/libm.so.6")
    assert "-rwxr-xr-x root/root" in _line(listing, "./opt/myagent/libexec/myagent")
    assert "-rw-r--r-- root/root" in _line(listing, "./opt/myagent/.bundle/report.md")
    assert (tree / "lib" / "libm.so.6").stat().st_mode & 0o7777 == 0o4755  # tree untouched

    # A setuid program the build allowed (--allow-setuid) keeps its bit: it is recorded.
    manifest = load(str(artifact), str(artifact))
    files = tuple(replace(f, mode=0o4755) if f.path == "libexec/myagent" else f
                  for f in manifest.files)
    kept = tmp_path / "kept.deb"
    write_deb(str(artifact), replace(manifest, files=files), META, str(kept), EPOCH)
    listing = subprocess.run(["dpkg-deb", "-c", str(kept)], capture_output=True, text=True,
                             check=True).stdout
    assert "-rwsr-xr-x root/root" in _line(listing, "./opt/myagent/libexec/myagent")


def _line(listing: str, path: str) -> str:
    return next(line for line in listing.splitlines() if line.endswith(f" {path}"))


def test_maintainer_scripts_pass_shellcheck(deb: Path, tmp_path: Path) -> None:
    shellcheck = need_tool("shellcheck")
    subprocess.run(["dpkg-deb", "-e", str(deb), str(tmp_path / "DEBIAN")], check=True)
    scripts = [str(tmp_path / "DEBIAN" / name) for name in ("postinst", "prerm", "postrm")]
    result = subprocess.run([shellcheck, "-s", "sh", *scripts], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_unit_of_a_prefix_with_spaces_and_percent_passes_systemd_analyze(
        artifact: Path, tmp_path: Path) -> None:
    """The quoting: systemd reads ExecStart back to the real path (verify checks it exists)."""
    analyze = need_tool("systemd-analyze")
    prefix = "/opt/my agent 100%"
    manifest = replace(load(str(artifact), str(artifact)), prefix=prefix)
    root = tmp_path / "root"
    shutil.copytree(artifact, root / prefix.lstrip("/"), symlinks=True)
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    unit = root / "etc/systemd/system/agent.service"
    unit.parent.mkdir(parents=True)
    unit.write_text(unit_text(manifest, META))
    assert 'ExecStart="/opt/my agent 100%%/libexec/myagent"\n' in unit.read_text()
    result = subprocess.run([analyze, "verify", f"--root={root}", "/etc/systemd/system/"
                             "agent.service"], capture_output=True, text=True)
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    (root / prefix.lstrip("/") / "libexec" / "myagent").unlink()  # and it can fail
    missing = subprocess.run([analyze, "verify", f"--root={root}", "/etc/systemd/system/"
                              "agent.service"], capture_output=True, text=True)
    assert "/opt/my agent 100%/libexec/myagent is not executable" in missing.stderr


def test_without_service_only_the_artifact(artifact: Path, tmp_path: Path) -> None:
    out = tmp_path / "plain.deb"
    write_deb(str(artifact), load(str(artifact), str(artifact)),
              replace(META, service=False), str(out), EPOCH)
    listing = subprocess.run(["dpkg-deb", "-c", str(out)], capture_output=True, text=True,
                             check=True).stdout.splitlines()
    paths = {line.split()[5].removeprefix(".").rstrip("/") or "/." for line in listing}
    assert paths == _artifact_paths(artifact) | {"/.", "/opt", "/opt/myagent"}
    info = subprocess.run(["dpkg-deb", "-I", str(out)], capture_output=True, text=True,
                          check=True).stdout
    assert "postinst" not in info and "prerm" not in info and "md5sums" in info

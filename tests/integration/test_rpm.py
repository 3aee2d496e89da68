"""`write_rpm` (bundler/rpm.py) on the demo agent: the .rpm checked with rpm itself.

The agent is a real Go CGO build (tests/support/gobuild.py) bundled as a directory by the
real command line; `write_rpm` runs the real rpmbuild (Debian's rpm package). What comes
out is read with `rpm -qp...`, checked with `rpm -K`, installed with `rpm -i --nodeps` into
an empty root (busybox as /bin/sh, for the scriptlets), where every installed file is
compared with the manifest's sha256 and mode and the agent runs from its prefix (chroot:
the root holds no glibc, so only the package's own can run it); then `rpm -e` removes it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from support.cli import run_cli
from support.gobuild import build_agent
from support.needs import need, need_tool
from support.roots import empty_root, need_root

from bundler.errors import EnvironmentUnfitError
from bundler.manifest import NOT_LISTED, Manifest
from bundler.manifest import load as load_manifest
from bundler.package_meta import PackageMeta
from bundler.rpm import write_rpm
from bundler.service import unit_text

EPOCH = 1700000000
PREFIX = "/opt/myagent"
META = PackageMeta("myagent", version="1.4.2-rc1", maintainer="Ops <ops@example.com>",
                   description="The demo agent", licence="Apache-2.0",
                   homepage="https://example.com/myagent")
DBPATH = "/var/lib/rpm"  # inside the root given to --root


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def rpm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([need_tool("rpm"), *args], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "LC_ALL": "C"})
    if check:
        assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result


def query(package: Path, fmt: str) -> str:
    return rpm("-qp", "--qf", fmt, str(package)).stdout


def bundled(variant: str, where: Path, *extra: str) -> tuple[Path, Manifest]:
    """The agent bundled as a directory: (its top, its manifest)."""
    result = run_cli(str(build_agent(variant)), "-o", f"{where}/", *extra,
                     env={"SOURCE_DATE_EPOCH": str(EPOCH)})
    assert result.returncode == 0, result.stderr
    top = where / "myagent"
    return top, load_manifest(str(top), str(top))


def tree_paths(top: Path) -> set[str]:
    """Every path of the artifact's tree (directories too) as installed at the prefix."""
    return {PREFIX} | {f"{PREFIX}/{p.relative_to(top).as_posix()}" for p in top.rglob("*")}


@pytest.fixture(scope="module")
def agent(tmp_path_factory) -> tuple[Path, Manifest]:
    need_tool("rpmbuild")
    return bundled("dynamic", tmp_path_factory.mktemp("rpm-agent"))


@pytest.fixture(scope="module")
def package(agent, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rpm") / "myagent.rpm"
    write_rpm(str(agent[0]), agent[1], META, str(out), EPOCH)
    return out


def test_lists_exactly_the_artifacts_files_at_its_prefix(agent, package) -> None:
    top, manifest = agent
    listed = rpm("-qpl", str(package)).stdout.splitlines()
    assert len(listed) == len(set(listed))
    assert set(listed) == tree_paths(top)
    assert {f"{PREFIX}/{f.path}" for f in manifest.files} | {
        f"{PREFIX}/{p}" for p in NOT_LISTED} <= set(listed)


def test_header_fields(package) -> None:
    info = rpm("-qpi", str(package)).stdout
    head = info.split("Description :", 1)[0]
    fields = {key.strip(): value.strip() for key, value in
              (line.split(":", 1) for line in head.splitlines() if ":" in line)}
    assert fields["Name"] == "myagent"
    assert fields["Version"] == "1.4.2~rc1"  # '-' is not allowed in an rpm Version
    assert fields["Release"] == "1"
    assert fields["Architecture"] == "x86_64"
    assert fields["License"] == "Apache-2.0"
    assert fields["Summary"] == "The demo agent"
    assert fields["URL"] == "https://example.com/myagent"
    assert fields["Packager"] == "Ops <ops@example.com>"
    assert fields["Build Host"] == "localhost"
    assert query(package, "%{BUILDTIME}") == str(EPOCH)
    assert "The demo agent" in info.split("Description :", 1)[1]


def test_digests_pass_and_nothing_is_required_but_rpm_features(package) -> None:
    assert rpm("-K", str(package)).stdout.strip().endswith("digests OK")
    requires = rpm("-qpR", str(package)).stdout.splitlines()
    assert requires and all(r.startswith("rpmlib(") for r in requires), requires
    provides = rpm("-qp", "--provides", str(package)).stdout
    assert ".so" not in provides and "GLIBC" not in provides, provides


def test_header_digests_are_the_manifests(agent, package) -> None:
    """rpm's own record of each file (--dump: path size mtime sha256 mode ...) is the
    manifest's: nothing was stripped, split or re-permissioned on the way in."""
    manifest = agent[1]
    dumped = {}
    for line in rpm("-qp", "--dump", str(package)).stdout.splitlines():
        path, size, mtime, digest, mode = line.split()[:5]
        dumped[path] = (int(size), int(mtime), digest, int(mode, 8))
    for record in manifest.files:
        size, mtime, digest, mode = dumped[f"{PREFIX}/{record.path}"]
        assert mtime == EPOCH, record.path
        if record.type == "file":
            assert (digest, size, stat.S_IMODE(mode)) == (record.sha256, record.size,
                                                          record.mode), record.path
            assert stat.S_ISREG(mode)
        else:
            assert stat.S_ISLNK(mode)
    assert not any(mode & (stat.S_ISUID | stat.S_ISGID) for *_, mode in dumped.values())


def test_installs_into_an_empty_root_byte_for_byte_and_runs(agent, package, tmp_path) -> None:
    need_root()
    top, manifest = agent
    with empty_root(tmp_path) as root:
        rpm("-i", "--nodeps", "--root", str(root), "--dbpath", DBPATH, str(package))
        installed = root / PREFIX.lstrip("/")
        for record in manifest.files:
            path = installed / record.path
            if record.type == "symlink":
                assert os.readlink(path) == record.target, record.path
                continue
            assert sha256(path) == record.sha256, record.path
            assert stat.S_IMODE(path.lstat().st_mode) == record.mode, record.path
        for rel in NOT_LISTED:
            assert (installed / rel).read_bytes() == (top / rel).read_bytes()
        assert rpm("-V", "--root", str(root), "--dbpath", DBPATH, "myagent").stdout == ""
        # The root holds no glibc: the package's own loader and libc run the agent.
        for start in (f"{PREFIX}/bin/myagent", f"{PREFIX}/libexec/myagent"):
            run = subprocess.run([need_tool("chroot"), str(root), start], capture_output=True,
                                 text=True, timeout=60, env={"PATH": "/bin"})
            assert run.returncode == 0, (start, run.stderr)
            assert "sqlite: hello" in run.stdout
            assert f"exe: {PREFIX}/libexec/myagent" in run.stdout
        rpm("-e", "--root", str(root), "--dbpath", DBPATH, "myagent")
        assert not installed.exists()


def test_two_builds_are_the_same_bytes(agent, package, tmp_path) -> None:
    again = tmp_path / "again.rpm"
    write_rpm(str(agent[0]), agent[1], META, str(again), EPOCH)
    assert sha256(again) == sha256(package)
    later = tmp_path / "later.rpm"
    write_rpm(str(agent[0]), agent[1], META, str(later), EPOCH + 86400)
    assert sha256(later) != sha256(package)
    assert query(later, "%{BUILDTIME}") == str(EPOCH + 86400)


@pytest.mark.parametrize("enable", [False, True])
def test_service_ships_the_unit_and_its_scriptlets_do_nothing_without_systemd(
        agent, tmp_path, enable: bool) -> None:
    top, manifest = agent
    meta = PackageMeta("myagent", service=True, enable=enable)
    out = tmp_path / "svc.rpm"
    write_rpm(str(top), manifest, meta, str(out), EPOCH)
    unit = "/usr/lib/systemd/system/myagent.service"
    assert set(rpm("-qpl", str(out)).stdout.splitlines()) == tree_paths(top) | {unit}
    scripts = rpm("-qp", "--scripts", str(out)).stdout
    assert ("systemctl --no-reload enable myagent.service" in scripts) == enable
    assert ("systemctl --no-reload preset myagent.service" in scripts) == (not enable)
    # The scriptlets need a shell, nothing else.
    assert {r for r in rpm("-qpR", str(out)).stdout.splitlines()
            if not r.startswith("rpmlib(")} == {"/bin/sh"}
    need_root()
    with empty_root(tmp_path) as root:  # busybox sh, no systemctl, no /run/systemd
        installed = rpm("-i", "--nodeps", "--root", str(root), "--dbpath", DBPATH, str(out))
        assert "scriptlet failed" not in installed.stderr
        assert (root / unit.lstrip("/")).read_text() == unit_text(manifest, meta)
        removed = rpm("-e", "--root", str(root), "--dbpath", DBPATH, "myagent")
        assert "scriptlet failed" not in removed.stderr
        assert not (root / unit.lstrip("/")).exists()


def test_arm64_artifact_gives_an_aarch64_rpm(tmp_path) -> None:
    need_tool("rpmbuild")
    need_tool("aarch64-linux-gnu-gcc")
    need(os.path.exists("/usr/lib/aarch64-linux-gnu/libsqlite3.so"),
         "libsqlite3-dev:arm64 is not installed")
    top, manifest = bundled("arm64-dynamic", tmp_path / "arm64", "--sysroot", "/")
    assert manifest.arch == "aarch64"
    out = tmp_path / "arm64.rpm"
    write_rpm(str(top), manifest, PackageMeta("myagent"), str(out), EPOCH)
    assert query(out, "%{ARCH}") == "aarch64"
    assert rpm("-K", str(out)).stdout.strip().endswith("digests OK")
    dumped = {line.split()[0]: line.split()[3]
              for line in rpm("-qp", "--dump", str(out)).stdout.splitlines()}
    assert dumped[f"{PREFIX}/libexec/myagent"] == next(
        f.sha256 for f in manifest.files if f.path == "libexec/myagent")


def test_missing_rpmbuild_is_exit_3_naming_the_package(agent, tmp_path, monkeypatch) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    out = tmp_path / "x.rpm"
    with pytest.raises(EnvironmentUnfitError) as raised:
        write_rpm(str(agent[0]), agent[1], META, str(out), EPOCH)
    assert raised.value.exit_code == 3
    assert "rpmbuild" in raised.value.message and "rpm package" in raised.value.message
    assert "\n" not in raised.value.message and not out.exists()


def test_a_tree_that_is_not_its_manifest_is_refused(agent, tmp_path) -> None:
    """A file the manifest does not list would be packaged unchecked: rpmbuild's
    unpackaged-files check stops the build, and the error is one line."""
    top = tmp_path / "myagent"
    shutil.copytree(agent[0], top, symlinks=True)
    (top / "lib" / "stray.so").write_bytes(b"not listed")
    out = tmp_path / "x.rpm"
    with pytest.raises(EnvironmentUnfitError, match="rpmbuild failed") as raised:
        write_rpm(str(top), agent[1], META, str(out), EPOCH)
    assert "\n" not in raised.value.message
    assert not out.exists()

"""The OCI image of an artifact (bundler/oci.py), read by the tools that read images.

The demo agent is bundled as a directory (with a gconv module, so the direct start needs a
variable), written as an image, then: skopeo inspects and copies it, umoci unpacks it into
a rootfs whose files are the manifest's, and the image's entrypoint runs from that rootfs
as the root of the sandbox `bundle verify` uses (bubblewrap). podman loads it; whether
podman can run it depends on the machine (see test_podman_loads_and_runs_the_image).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest
from support.cli import run_cli
from support.gobuild import assert_agent_output, build_agent
from support.needs import need, need_tool
from support.roots import need_root

from bundler.errors import UnsafeArtifactError
from bundler.isolation import BARE_ETC, Layout, probe_sandbox, run_sandboxed
from bundler.manifest import SBOM_PATHS, Manifest, load
from bundler.oci import write_oci
from bundler.package_meta import PackageMeta

VERSION = "1.4.2"
EPOCH = 1_700_000_000
META = PackageMeta("myagent", version=VERSION, licence="MIT",
                   description="a monitoring agent", homepage="https://example.org/myagent")


def _bundled(top: Path, variant: str, *options: str) -> Path:
    """The agent bundled as a directory; returns the artifact's top (holding .bundle/)."""
    result = run_cli(str(build_agent(variant)), *options, "-o", f"{top}/")
    assert result.returncode == 0, result.stderr
    return top / "myagent"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run(*argv: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, (argv, result.stdout, result.stderr)
    return result


@pytest.fixture(scope="module")
def artifact(tmp_path_factory) -> tuple[Path, Manifest]:
    tree = _bundled(tmp_path_factory.mktemp("artifact"), "dynamic", "--gconv", "KOI8-R")
    return tree, load(str(tree), str(tree))


@pytest.fixture(scope="module")
def image(artifact, tmp_path_factory) -> tuple[Path, str]:
    tree, manifest = artifact
    out = tmp_path_factory.mktemp("image") / "myagent.oci.tar"
    digest = write_oci(str(tree), manifest, META, str(out), EPOCH)
    return out, digest


def test_the_same_artifact_gives_the_same_bytes(artifact, image, tmp_path: Path) -> None:
    tree, manifest = artifact
    first, digest = image
    again = tmp_path / "again.oci.tar"
    assert write_oci(str(tree), manifest, META, str(again), EPOCH) == digest
    assert _sha256(again) == _sha256(first)
    other = tmp_path / "other.oci.tar"  # the epoch is in the bytes: it is not ignored
    assert write_oci(str(tree), manifest, META, str(other), EPOCH + 1) != digest
    assert sorted(os.listdir(tmp_path)) == ["again.oci.tar", "other.oci.tar"]  # no leftovers


def test_layer_members_are_normalised(image) -> None:
    """Sorted, owned by 0 with no names, one mtime, no setuid bit the artifact lacks."""
    out, _ = image
    with tarfile.open(out) as archive:
        index = json.load(archive.extractfile("index.json"))  # type: ignore[arg-type]
        manifest_digest = index["manifests"][0]["digest"].removeprefix("sha256:")
        image_manifest = json.load(archive.extractfile(f"blobs/sha256/{manifest_digest}"))  # type: ignore[arg-type]
        layer_digest = image_manifest["layers"][0]["digest"].removeprefix("sha256:")
        layer_bytes = archive.extractfile(f"blobs/sha256/{layer_digest}").read()  # type: ignore[union-attr]
    assert layer_bytes[:2] == b"\x1f\x8b" and layer_bytes[4:8] == b"\0\0\0\0"  # gzip, mtime 0
    assert layer_bytes[3] & 0x08 == 0  # no file name in the gzip header
    with tarfile.open(fileobj=io.BytesIO(layer_bytes)) as layer:
        members = layer.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names, key=lambda n: n.split("/"))
    assert {(m.uid, m.gid, m.uname, m.gname, m.mtime) for m in members} == {(0, 0, "", "", EPOCH)}
    assert not any(m.pax_headers for m in members)
    assert not any(m.mode & (stat.S_ISUID | stat.S_ISGID) for m in members)
    assert {n.split("/")[0] for n in names} == {"etc", "opt", "tmp"}


def test_skopeo_inspects_and_copies_the_archive(artifact, image, tmp_path: Path) -> None:
    skopeo = need_tool("skopeo")
    tree, manifest = artifact
    out, digest = image
    inspected = json.loads(_run(skopeo, "inspect", f"oci-archive:{out}").stdout)
    assert inspected["Digest"] == digest
    assert (inspected["Architecture"], inspected["Os"]) == ("amd64", "linux")
    assert len(inspected["Layers"]) == 1
    labels = inspected["Labels"]
    assert labels["org.opencontainers.image.version"] == VERSION
    assert labels["org.opencontainers.image.title"] == "myagent"
    assert labels["org.opencontainers.image.licenses"] == "MIT"
    assert labels["org.opencontainers.image.created"] == "2023-11-14T22:13:20Z"
    for kind, path in SBOM_PATHS.items():
        assert labels[f"io.bundle.sbom.{kind}.sha256"] == _sha256(tree / path)
    config = json.loads(_run(skopeo, "inspect", "--config",
                             f"oci-archive:{out}:{VERSION}").stdout)
    assert config["config"]["Entrypoint"] == ["/opt/myagent/libexec/myagent"]
    (gconv,) = manifest.environment
    assert config["config"]["Env"] == [f"{gconv.variable}=/opt/myagent/lib/gconv"]
    _run(skopeo, "copy", f"oci-archive:{out}:{VERSION}", f"oci:{tmp_path / 'layout'}:{VERSION}")
    # Docker's manifest.json in the same tar (docker load before 25 reads only that)
    as_docker = json.loads(_run(skopeo, "inspect", "--config", f"docker-archive:{out}").stdout)
    assert as_docker["rootfs"] == config["rootfs"]
    assert as_docker["config"]["Entrypoint"] == config["config"]["Entrypoint"]
    assert json.loads((tmp_path / "layout" / "oci-layout").read_text()) == {
        "imageLayoutVersion": "1.0.0"}


def test_umoci_unpacks_the_artifact_and_its_entrypoint_runs_in_the_sandbox(
        artifact, image, tmp_path: Path) -> None:
    need_root()
    skopeo, umoci = need_tool("skopeo"), need_tool("umoci")
    need_tool("bwrap")
    _, manifest = artifact
    out, _ = image
    layout, bundle = tmp_path / "layout", tmp_path / "bundle"
    _run(skopeo, "copy", f"oci-archive:{out}:{VERSION}", f"oci:{layout}:{VERSION}")
    _run(umoci, "unpack", "--image", f"{layout}:{VERSION}", str(bundle))
    rootfs = bundle / "rootfs"
    installed = rootfs / manifest.prefix.lstrip("/")
    for record in manifest.files:
        path = installed / record.path
        if record.type == "symlink":
            assert os.readlink(path) == record.target, record.path
        else:
            assert _sha256(path) == record.sha256, record.path
            assert stat.S_IMODE(path.lstat().st_mode) == record.mode, record.path
    listed = {f.path for f in manifest.files} | {".bundle/manifest.json", ".bundle/report.md"}
    unpacked = {str(p.relative_to(installed)) for p in installed.rglob("*")
                if p.is_symlink() or not p.is_dir()}
    assert unpacked == listed
    assert sorted(os.listdir(rootfs)) == ["etc", "opt", "tmp"]
    assert sorted(os.listdir(rootfs / "etc")) == sorted(BARE_ETC)

    process = json.loads((bundle / "config.json").read_text())["process"]
    env = dict(item.split("=", 1) for item in process["env"])
    outcome = run_sandboxed(probe_sandbox(), Layout(str(rootfs)), process["args"], env,
                            timeout=60)
    assert outcome.exit_code == 0, (outcome.stdout, outcome.stderr)
    assert_agent_output(outcome.stdout, "/opt/myagent/libexec/myagent")


def test_podman_loads_and_runs_the_image(image, tmp_path: Path) -> None:
    """podman with its own vfs storage under tmp_path. Loading needs no privilege; running
    needs a runtime that may set the container's rlimits (crun asks for CAP_SYS_RESOURCE:
    where the machine withholds it, the run is skipped with crun's own words)."""
    need_root()
    podman = need_tool("podman")
    out, digest = image
    # podman refuses a runroot path longer than 50 characters: pytest's are longer
    with tempfile.TemporaryDirectory(prefix="oci-run-", dir="/tmp") as runroot:
        base = [podman, "--root", str(tmp_path / "storage"), "--runroot", runroot,
                "--storage-driver", "vfs"]
        try:
            _load_and_run(base, out, digest)
        finally:
            subprocess.run([*base, "system", "reset", "--force"], capture_output=True,
                           timeout=300)
            shutil.rmtree(tmp_path / "storage", ignore_errors=True)


def _load_and_run(base: list[str], out: Path, digest: str) -> None:
    loaded = _run(*base, "load", "-i", str(out))
    assert "Loaded image" in loaded.stdout, loaded.stdout
    image_id = json.loads(_run(*base, "images", "--format", "json").stdout)[0]["Id"]
    (inspected,) = json.loads(_run(*base, "image", "inspect", image_id).stdout)
    assert inspected["Architecture"] == "amd64"
    assert inspected["Config"]["Entrypoint"] == ["/opt/myagent/libexec/myagent"]
    assert inspected["Digest"] == digest
    run = subprocess.run([*base, "run", "--rm", "--network", "none", image_id],
                         capture_output=True, text=True, timeout=300)
    if "setrlimit" in run.stderr:
        # The machine, not the image: crun needs CAP_SYS_RESOURCE, which this one withholds
        # from root too (also in CI). The image's entrypoint runs in the sandbox instead
        # (test_umoci_unpacks_the_artifact_and_its_entrypoint_runs_in_the_sandbox).
        pytest.skip("podman loads the image but cannot run containers here: "
                    f"{run.stderr.strip()[:200]}")
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[0] == "sqlite: hello"


def test_an_arm64_artifact_is_an_arm64_v8_image(tmp_path: Path) -> None:
    skopeo = need_tool("skopeo")
    need_tool("aarch64-linux-gnu-gcc")
    need(os.path.exists("/usr/lib/aarch64-linux-gnu/libsqlite3.so"),
         "libsqlite3-dev:arm64 is not installed")
    tree = _bundled(tmp_path / "arm64", "arm64-dynamic", "--sysroot", "/")
    out = tmp_path / "arm64.oci.tar"
    write_oci(str(tree), load(str(tree), str(tree)), META, str(out), EPOCH)
    inspected = json.loads(_run(skopeo, "--override-arch", "arm64", "--override-variant", "v8",
                                "inspect", "--config", f"oci-archive:{out}").stdout)
    assert (inspected["architecture"], inspected["variant"], inspected["os"]) == (
        "arm64", "v8", "linux")
    with tarfile.open(out) as archive:
        index = json.load(archive.extractfile("index.json"))  # type: ignore[arg-type]
    assert index["manifests"][0]["platform"] == {"architecture": "arm64", "os": "linux",
                                                 "variant": "v8"}


def test_a_tree_that_is_not_its_manifest_writes_no_image(artifact, tmp_path: Path) -> None:
    tree, manifest = artifact
    copy = tmp_path / "myagent"
    shutil.copytree(tree, copy, symlinks=True)
    (copy / "lib" / "libm.so.6").write_bytes(b"not libm")
    out = tmp_path / "bad.oci.tar"
    with pytest.raises(UnsafeArtifactError, match=r"libm\.so\.6"):
        write_oci(str(copy), manifest, META, str(out), EPOCH)
    assert sorted(os.listdir(tmp_path)) == ["myagent"]  # no image, no temporary layer
    (copy / "lib" / "libm.so.6").unlink()
    shutil.copyfile(tree / "lib" / "libm.so.6", copy / "lib" / "libm.so.6")
    (copy / "lib" / "extra.so").write_bytes(b"hidden")
    with pytest.raises(UnsafeArtifactError, match=r"extra\.so is not in its manifest"):
        write_oci(str(copy), manifest, META, str(out), EPOCH)
    assert sorted(os.listdir(tmp_path)) == ["myagent"]  # no image, no temporary layer

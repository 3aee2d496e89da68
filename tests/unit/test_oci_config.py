"""The OCI image's JSON and layer plan (bundler/oci.py's pure functions)."""

from __future__ import annotations

import hashlib
import json

import pytest

from bundler.errors import InputError
from bundler.isolation import BARE_ETC
from bundler.manifest import EnvRecord, FileRecord, Manifest
from bundler.oci import (
    CONFIG_TYPE,
    CONTAINERD_NAME,
    LAYER_TYPE,
    MANIFEST_TYPE,
    REF_NAME,
    Descriptor,
    canonical_json,
    direct_start,
    docker_tags,
    image_blobs,
    image_config,
    layer_entries,
    platform,
)
from bundler.package_meta import PackageMeta

SHA = "a" * 64
CDX = "c" * 64
META = PackageMeta("agent", version="2.0.1", licence="Apache-2.0")
LAYER = Descriptor(LAYER_TYPE, "sha256:" + "1" * 64, 4242)
DIFF_ID = "sha256:" + "2" * 64


def manifest(arch: str = "x86-64", *files: FileRecord,
             environment: tuple[EnvRecord, ...] = ()) -> Manifest:
    files = files or (
        FileRecord(".bundle/sbom.cdx.json", "file", "sbom", sha256=CDX, size=10, mode=0o644),
        FileRecord("bin/agent", "file", "launcher", sha256=SHA, size=10, mode=0o755),
        FileRecord("lib/.bundle-0123456789abcdef", "symlink", "alias", target="."),
        FileRecord("libexec/agent", "file", "program", sha256=SHA, size=10, mode=0o4755),
    )
    return Manifest(name="agent", arch=arch, prefix="/srv/vendor/agent", launcher="loader",
                    loader="lib/ld-linux-x86-64.so.2", glibc="2.36", min_kernel="3.2.0",
                    programs=("agent",), missing=(), excluded=(), environment=environment,
                    runtime_missing=(), files=tuple(sorted(files, key=lambda f: f.path)))


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_digests_and_sizes_in_the_index_and_manifest_are_the_blobs() -> None:
    blobs = image_blobs(manifest(), META, 0, LAYER, DIFF_ID)
    index = json.loads(blobs.index)
    (entry,) = index["manifests"]
    assert (entry["mediaType"], entry["digest"], entry["size"]) == (
        MANIFEST_TYPE, sha256(blobs.manifest), len(blobs.manifest))
    assert entry["annotations"] == {REF_NAME: "2.0.1",
                                    CONTAINERD_NAME: "docker.io/library/agent:2.0.1"}
    assert entry["platform"] == {"architecture": "amd64", "os": "linux"}
    image = json.loads(blobs.manifest)
    assert image["schemaVersion"] == 2 and image["mediaType"] == MANIFEST_TYPE
    assert image["config"] == {"mediaType": CONFIG_TYPE, "digest": sha256(blobs.config),
                               "size": len(blobs.config)}
    assert image["layers"] == [LAYER.json()]
    assert json.loads(blobs.config)["rootfs"] == {"type": "layers", "diff_ids": [DIFF_ID]}
    (docker,) = json.loads(blobs.docker)  # Docker's manifest.json: the same blobs, by name
    assert docker == {"Config": "blobs/sha256/" + sha256(blobs.config)[7:],
                      "RepoTags": ["agent:2.0.1"],
                      "Layers": ["blobs/sha256/" + LAYER.digest[7:]]}


@pytest.mark.parametrize(("name", "version", "tags"), [
    ("agent", "2.0.1", ["agent:2.0.1"]),
    ("my-agent_2", "1.0.0-rc1+b2", []),  # "+" is no tag character: loaded untagged
    ("MyAgent", "1.0", []),  # upper case is no repository name
])
def test_docker_tags_only_where_docker_takes_them(name: str, version: str,
                                                  tags: list[str]) -> None:
    assert docker_tags(PackageMeta(name, version=version)) == tags
    blobs = image_blobs(manifest(), PackageMeta(name, version=version), 0, LAYER, DIFF_ID)
    annotations = json.loads(blobs.index)["manifests"][0]["annotations"]
    assert annotations[REF_NAME] == version
    assert (CONTAINERD_NAME in annotations) == bool(tags)


def test_the_json_is_canonical_and_depends_only_on_its_inputs() -> None:
    one = image_blobs(manifest(), META, 7, LAYER, DIFF_ID)
    assert one == image_blobs(manifest(), META, 7, LAYER, DIFF_ID)
    assert one.config == canonical_json(json.loads(one.config))
    assert b" " not in one.manifest
    assert image_blobs(manifest(), META, 8, LAYER, DIFF_ID).config != one.config


def test_the_config_starts_the_program_directly_with_its_environment() -> None:
    env = (EnvRecord("BGC6B4A453", "GCONV_PATH", "lib/gconv", True),
           EnvRecord("LOCPATH", "LOCPATH", "lib/locale", False))
    config = image_config(manifest(environment=env), META, 86400, DIFF_ID)
    run = config["config"]
    assert isinstance(run, dict)
    assert run["Entrypoint"] == ["/srv/vendor/agent/libexec/agent"]
    assert run["Env"] == ["BGC6B4A453=/srv/vendor/agent/lib/gconv",
                          "LOCPATH=/srv/vendor/agent/lib/locale"]
    assert run["WorkingDir"] == "/"
    assert config["created"] == "1970-01-02T00:00:00Z"
    assert "Env" not in image_config(manifest(), META, 0, DIFF_ID)["config"]  # type: ignore[operator]
    assert direct_start(manifest())[1] == []


def test_labels_name_version_licence_time_and_the_sbom_digests() -> None:
    meta = PackageMeta("agent", version="2.0.1", licence="Apache-2.0", description="an agent",
                       homepage="https://example.org")
    run = image_config(manifest(), meta, 0, DIFF_ID)["config"]
    assert isinstance(run, dict)
    assert run["Labels"] == {
        "org.opencontainers.image.title": "agent",
        "org.opencontainers.image.version": "2.0.1",
        "org.opencontainers.image.licenses": "Apache-2.0",
        "org.opencontainers.image.created": "1970-01-01T00:00:00Z",
        "org.opencontainers.image.description": "an agent",
        "org.opencontainers.image.url": "https://example.org",
        "io.bundle.sbom.cyclonedx.sha256": CDX,  # no SPDX file in this artifact: no label
    }


@pytest.mark.parametrize(("arch", "expected"), [
    ("x86-64", {"architecture": "amd64", "os": "linux"}),
    ("aarch64", {"architecture": "arm64", "os": "linux", "variant": "v8"}),
    ("arm", {"architecture": "arm", "os": "linux", "variant": "v7"}),
    ("i386", {"architecture": "386", "os": "linux"}),
])
def test_platform_uses_the_oci_spelling(arch: str, expected: dict[str, str]) -> None:
    assert platform(arch) == expected
    assert json.loads(image_blobs(manifest(arch), META, 0, LAYER, DIFF_ID).config)[
        "architecture"] == expected["architecture"]


def test_an_unknown_architecture_is_an_input_error() -> None:
    with pytest.raises(InputError, match="sparc"):
        platform("sparc")


def test_the_layer_holds_the_prefix_its_parents_etc_and_tmp_in_order() -> None:
    entries = layer_entries(manifest(), (".bundle/manifest.json",))
    by_path = {e.path: e for e in entries}
    paths = [e.path for e in entries]
    assert paths == sorted(paths, key=lambda p: p.split("/"))
    assert paths[:3] == ["etc", *[f"etc/{n}" for n in sorted(BARE_ETC)][:2]]
    for parent in ("srv", "srv/vendor", "srv/vendor/agent", "srv/vendor/agent/lib"):
        assert (by_path[parent].kind, by_path[parent].mode) == ("dir", 0o755)
    assert (by_path["tmp"].kind, by_path["tmp"].mode) == ("dir", 0o1777)
    assert by_path["srv/vendor/agent/libexec/agent"].mode == 0o4755  # the artifact's setuid
    assert by_path["srv/vendor/agent/bin/agent"].mode == 0o755
    link = by_path["srv/vendor/agent/lib/.bundle-0123456789abcdef"]
    assert link.kind == "symlink" and link.source is not None and link.source.target == "."
    assert by_path["srv/vendor/agent/.bundle/manifest.json"].mode == 0o644
    assert "srv/vendor/agent/.bundle/report.md" not in by_path  # not in the tree: not listed
    assert {p.split("/")[0] for p in paths} == {"etc", "srv", "tmp"}
    assert len(paths) == len(set(paths))

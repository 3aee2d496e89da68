"""An OCI image of an artifact: the seed's third route, as an image layout archive.

`write_oci` writes a tar holding `oci-layout`, `index.json` and `blobs/sha256/...` (OCI
image-spec v1.1) that `skopeo`, `podman load`, `umoci` and `docker load` (>= 25) read, plus
Docker's `manifest.json` pointing at the same blobs, so that older `docker load` (and
skopeo's `docker-archive:`) read it too, tagged NAME:VERSION (as BuildKit's OCI exporter
does). The index tags the image VERSION (`oci-archive:OUT:VERSION`). The image is
`FROM scratch`, one gzip layer:

- the artifact at its prefix (and the prefix's parent directories), every file, mode and
  symlink as the manifest records them (setuid only where the artifact has it), read back
  and checked against the manifest's sha256 while the layer is written: the image holds
  exactly what was built, or nothing is written;
- /etc/passwd, /etc/group, /etc/hosts and /etc/nsswitch.conf, the bare root's files
  (isolation.BARE_ETC). The bundled glibc is sealed from every host path but its
  configuration files (start_modes.py): in a scratch image the image is the host.
  Measured with the demo agent in verify's sandbox: without /etc/passwd `user.Current()`
  fails ("lookup userid 0: no such file or directory"); without /etc/hosts `localhost`
  goes to DNS and fails ("connection refused" on [::1]:53). nsswitch.conf was not needed
  by it, but without one glibc falls back to a built-in list that differs between
  releases (older ones try NIS first): this one names only `files` and `dns` (the
  manifest's `nss.served` says what the bundled glibc serves). /etc/group answers
  getgrgid (`os/user.LookupGroupId`, `id`). They are the files `bundle verify` gives a
  program in its bare root, so a PASS there holds for the image.
  Runtimes bind their own /etc/hosts, /etc/hostname and /etc/resolv.conf over these.
- an empty /tmp (1777): SQLite's and Go's temporary files; a runtime that mounts a tmpfs
  there hides it.

The config starts the program directly at the prefix (`PREFIX/libexec/NAME`, as a systemd
unit does, README "Start modes") with the variables that start needs (the manifest's
`environment`), so /proc/self/exe is the program and no launcher runs. Labels carry the
version, title, licence, creation time and the digests of the SBOMs the artifact holds.

Reproducible: layer members sorted, uid/gid 0 with no names, mtime the epoch, GNU headers
(no pax timestamps), gzip without a name and with mtime 0; JSON with sorted keys. Same
artifact, same epoch: same bytes (with the same zlib: gzip's bytes may differ across zlib
builds, the uncompressed layer's diff_id does not).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import re
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import BinaryIO

from bundler.errors import UnsafeArtifactError
from bundler.isolation import BARE_ETC
from bundler.manifest import NOT_LISTED, SBOM_PATHS, FileRecord, Manifest
from bundler.package_meta import PackageMeta, arch_names
from bundler.signals import checkpoint
from bundler.tree import PLAIN_FILE_FLAGS, walk

LAYOUT_VERSION = "1.0.0"
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"
SBOM_LABEL = "io.bundle.sbom.{kind}.sha256"
# The CPU variant the image config names (image-spec config.md: arm64 is v8, armhf v7).
VARIANTS = {"arm64": "v8", "arm": "v7"}
# Docker's reference grammar (distribution/reference): a repository path component, a tag.
DOCKER_NAME = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
DOCKER_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
WORKING_DIR = "/"
TMP_MODE = 0o1777
DIR_MODE = 0o755
ETC_MODE = 0o644
# Measured on the demo agent (9.6 MB layer, 2 cores): level 6 4,782,080 bytes in 0.9 s,
# level 9 4,761,600 bytes in 2.6 s. Three times the time for 0.4%: gzip's default.
GZIP_LEVEL = 6
CHUNK = 1 << 20


@dataclass(frozen=True)
class Descriptor:
    """A blob as the image's JSON points at it."""

    media_type: str
    digest: str  # sha256:HEX
    size: int

    def json(self) -> dict[str, object]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


@dataclass(frozen=True)
class LayerEntry:
    """One member of the layer: `path` relative to the image's /."""

    path: str
    kind: str  # file, symlink, dir, text (a small generated file: /etc)
    mode: int
    source: FileRecord | None = None  # a file or symlink of the artifact
    text: str = ""


@dataclass(frozen=True)
class ImageBlobs:
    """The image's JSON blobs, as written (index.json and Docker's manifest.json are not
    blobs but go with them)."""

    config: bytes
    manifest: bytes
    index: bytes
    docker: bytes


def canonical_json(value: object) -> bytes:
    """Sorted keys, no spaces: the same value is always the same bytes (and digest)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def descriptor(media_type: str, data: bytes) -> Descriptor:
    return Descriptor(media_type, "sha256:" + hashlib.sha256(data).hexdigest(), len(data))


def platform(manifest_arch: str) -> dict[str, str]:
    """The image's os/architecture/variant for the artifact's architecture."""
    architecture = arch_names(manifest_arch)[2]
    found = {"architecture": architecture, "os": "linux"}
    if architecture in VARIANTS:
        found["variant"] = VARIANTS[architecture]
    return found


def direct_start(manifest: Manifest) -> tuple[list[str], list[str]]:
    """(Entrypoint, Env) of a direct start at the prefix (Manifest.direct_start)."""
    program, environment = manifest.direct_start()
    return [program, *manifest.direct_arguments()], list(environment)


def created(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def sbom_digests(manifest: Manifest) -> dict[str, str]:
    """The sha256 of each SBOM the artifact holds, by kind (cyclonedx, spdx)."""
    recorded = {f.path: f.sha256 for f in manifest.files if f.type == "file" and f.sha256}
    return {kind: recorded[path] for kind, path in SBOM_PATHS.items() if path in recorded}


def labels(manifest: Manifest, meta: PackageMeta, epoch: int) -> dict[str, str]:
    found = {
        "org.opencontainers.image.title": meta.name,
        "org.opencontainers.image.version": meta.version,
        "org.opencontainers.image.licenses": meta.licence,
        "org.opencontainers.image.created": created(epoch),
    }
    if meta.description:
        found["org.opencontainers.image.description"] = meta.description
    if meta.homepage:
        found["org.opencontainers.image.url"] = meta.homepage
    for kind, digest in sbom_digests(manifest).items():
        found[SBOM_LABEL.format(kind=kind)] = digest
    return found


def image_config(manifest: Manifest, meta: PackageMeta, epoch: int, diff_id: str,
                 ) -> dict[str, object]:
    """The image config (config.md): platform, how to start, labels, the layer's diff_id."""
    entrypoint, env = direct_start(manifest)
    run: dict[str, object] = {"Entrypoint": entrypoint, "WorkingDir": WORKING_DIR,
                              "Labels": labels(manifest, meta, epoch)}
    if env:
        run["Env"] = env
    tool = " ".join(filter(None, (manifest.tool or "bundle", manifest.tool_version)))
    return {
        **platform(manifest.arch),
        "created": created(epoch),
        "config": run,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": created(epoch),
                     "created_by": f"{tool}: {manifest.name} at {manifest.prefix}"}],
    }


def image_blobs(manifest: Manifest, meta: PackageMeta, epoch: int, layer: Descriptor,
                diff_id: str) -> ImageBlobs:
    """The config, the image manifest pointing at it and the layer, and the index
    pointing at the image manifest under the tag meta.version (`oci-archive:OUT:VERSION`)."""
    config = canonical_json(image_config(manifest, meta, epoch, diff_id))
    image_manifest = canonical_json({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": descriptor(CONFIG_TYPE, config).json(),
        "layers": [layer.json()],
    })
    annotations = {REF_NAME: meta.version}
    for tag in docker_tags(meta):  # containerd's `ctr import` and docker >= 25 name it so
        annotations[CONTAINERD_NAME] = f"docker.io/library/{tag}"
    index = canonical_json({
        "schemaVersion": 2,
        "mediaType": INDEX_TYPE,
        "manifests": [{**descriptor(MANIFEST_TYPE, image_manifest).json(),
                       "platform": platform(manifest.arch),
                       "annotations": annotations}],
    })
    docker = canonical_json([{
        "Config": _blob_name(descriptor(CONFIG_TYPE, config).digest),
        "RepoTags": docker_tags(meta),
        "Layers": [_blob_name(layer.digest)],
    }])
    return ImageBlobs(config, image_manifest, index, docker)


def docker_tags(meta: PackageMeta) -> list[str]:
    """NAME:VERSION for `docker load`, where both are valid there (a repository name is
    lower case); none otherwise: docker then loads the image untagged."""
    if DOCKER_NAME.fullmatch(meta.name) and DOCKER_TAG.fullmatch(meta.version):
        return [f"{meta.name}:{meta.version}"]
    return []


def _blob_name(digest: str) -> str:
    return "blobs/sha256/" + digest.removeprefix("sha256:")


def layer_entries(manifest: Manifest, unlisted: tuple[str, ...] = tuple(sorted(NOT_LISTED)),
                  ) -> list[LayerEntry]:
    """What the layer holds, parents before children: the prefix's parents, the artifact's
    files and symlinks (and of the manifest and report, which it does not list, those
    `unlisted` the tree has), /etc, /tmp."""
    top = manifest.prefix.strip("/")
    entries = [LayerEntry(f"etc/{name}", "text", ETC_MODE, text=text)
               for name, text in BARE_ETC.items()]
    entries.append(LayerEntry("tmp", "dir", TMP_MODE))
    for record in manifest.files:
        path = f"{top}/{record.path}"
        if record.type == "symlink":
            entries.append(LayerEntry(path, "symlink", 0o777, source=record))
        else:
            mode = ETC_MODE if record.mode is None else record.mode & 0o7777
            entries.append(LayerEntry(path, "file", mode, source=record))
    for path in unlisted:
        entries.append(LayerEntry(f"{top}/{path}", "file", ETC_MODE,
                                  source=FileRecord(path, "file", "bundle")))
    named = {e.path for e in entries}
    parents = {parent for e in entries for parent in _parents(e.path)} - named
    entries += [LayerEntry(parent, "dir", DIR_MODE) for parent in parents]
    return sorted(entries, key=lambda e: e.path.split("/"))


def _parents(path: str) -> list[str]:
    parts = path.split("/")[:-1]
    return ["/".join(parts[:depth]) for depth in range(1, len(parts) + 1)]


class _Hashing:
    """A write-only stream that hashes and counts what passes to `sink`."""

    def __init__(self, sink: BinaryIO | gzip.GzipFile) -> None:
        self.sink = sink
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        self.sink.write(data)
        return len(data)

    def tell(self) -> int:  # tarfile asks where it starts
        return self.size

    def flush(self) -> None:
        self.sink.flush()

    def hex(self) -> str:
        return "sha256:" + self.digest.hexdigest()


def write_oci(tree: str, manifest: Manifest, meta: PackageMeta, out: str, epoch: int) -> str:
    """Write the image of the artifact at `tree` (its top directory) to `out` (the
    caller's temporary path, not renamed here); return the image manifest's digest.
    UnsafeArtifactError when the tree is not what its manifest says (then `out` is not
    written: the layer is made first, in an unnamed temporary file beside it)."""
    entries = layer_entries(manifest, _check_unlisted(tree, manifest))
    with tempfile.TemporaryFile(dir=os.path.dirname(os.path.abspath(out))) as layer_file:
        layer, diff_id = _write_layer(tree, entries, epoch, layer_file)
        blobs = image_blobs(manifest, meta, epoch, layer, diff_id)
        layer_file.seek(0)
        contents: list[tuple[str, BinaryIO, int]] = [
            (_blob_name(descriptor(CONFIG_TYPE, blobs.config).digest),
             io.BytesIO(blobs.config), len(blobs.config)),
            (_blob_name(descriptor(MANIFEST_TYPE, blobs.manifest).digest),
             io.BytesIO(blobs.manifest), len(blobs.manifest)),
            (_blob_name(layer.digest), layer_file, layer.size),
            ("index.json", io.BytesIO(blobs.index), len(blobs.index)),
            ("manifest.json", io.BytesIO(blobs.docker), len(blobs.docker)),
        ]
        layout = canonical_json({"imageLayoutVersion": LAYOUT_VERSION})
        contents.append(("oci-layout", io.BytesIO(layout), len(layout)))
        with open(out, "wb") as raw, tarfile.open(fileobj=raw, mode="w",
                                                  format=tarfile.GNU_FORMAT) as archive:
            for directory in ("blobs", "blobs/sha256"):
                archive.addfile(_info(directory, tarfile.DIRTYPE, DIR_MODE, epoch))
            for name, data, size in sorted(contents, key=lambda item: item[0]):
                _add_bytes(archive, name, data, size, epoch)
    return descriptor(MANIFEST_TYPE, blobs.manifest).digest


def _write_layer(tree: str, entries: list[LayerEntry], epoch: int, dest: BinaryIO,
                 ) -> tuple[Descriptor, str]:
    """The layer, gzipped into `dest`: its descriptor and its diff_id (the sha256 of the
    uncompressed tar, which the config names)."""
    compressed = _Hashing(dest)
    with gzip.GzipFile(filename="", mode="wb", fileobj=compressed,
                       mtime=0, compresslevel=GZIP_LEVEL) as gz:
        uncompressed = _Hashing(gz)
        with tarfile.open(fileobj=uncompressed, mode="w",  # type: ignore[call-overload]
                          format=tarfile.GNU_FORMAT) as layer:
            for entry in entries:
                _add(layer, tree, entry, epoch)
                checkpoint()
    return Descriptor(LAYER_TYPE, compressed.hex(), compressed.size), uncompressed.hex()


def _info(name: str, kind: bytes, mode: int, epoch: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = kind, mode, epoch
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _add_bytes(archive: tarfile.TarFile, name: str, data: BinaryIO, size: int,
               epoch: int) -> None:
    info = _info(name, tarfile.REGTYPE, ETC_MODE, epoch)
    info.size = size
    archive.addfile(info, data)


def _add(layer: tarfile.TarFile, tree: str, entry: LayerEntry, epoch: int) -> None:
    if entry.kind == "dir":
        layer.addfile(_info(entry.path, tarfile.DIRTYPE, entry.mode, epoch))
    elif entry.kind == "text":
        data = entry.text.encode()
        _add_bytes(layer, entry.path, io.BytesIO(data), len(data), epoch)
    elif entry.kind == "symlink":
        assert entry.source is not None
        _check_symlink(tree, entry.source)
        info = _info(entry.path, tarfile.SYMTYPE, entry.mode, epoch)
        info.linkname = entry.source.target or ""
        layer.addfile(info)
    else:
        assert entry.source is not None
        with _artifact_file(tree, entry.source) as (handle, size):
            info = _info(entry.path, tarfile.REGTYPE, entry.mode, epoch)
            info.size = size
            checked = _CheckedReader(handle)
            layer.addfile(info, checked)
        record = entry.source
        if record.sha256 is not None and checked.digest.hexdigest() != record.sha256:
            raise UnsafeArtifactError(f"{tree}: {record.path} is not the file its manifest "
                                      "records (sha256 differs)")


@contextlib.contextmanager
def _artifact_file(tree: str, record: FileRecord) -> Iterator[tuple[BinaryIO, int]]:
    """The artifact's regular file (never through a symlink) and its size, which must be
    the manifest's."""
    path = os.path.join(tree, *record.path.split("/"))
    try:
        handle = os.fdopen(os.open(path, PLAIN_FILE_FLAGS), "rb")
    except OSError as exc:
        raise UnsafeArtifactError(f"{tree}: {record.path} cannot be read as a plain file "
                                  f"({exc.strerror or exc})") from None
    with handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeArtifactError(f"{tree}: {record.path} is not a regular file")
        if record.size is not None and info.st_size != record.size:
            raise UnsafeArtifactError(f"{tree}: {record.path} has {info.st_size} bytes, its "
                                      f"manifest records {record.size}")
        yield handle, info.st_size


class _CheckedReader:
    """The file as tarfile reads it, hashed on the way."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size if size >= 0 else CHUNK)
        self.digest.update(data)
        return data


def _check_symlink(tree: str, record: FileRecord) -> None:
    path = os.path.join(tree, *record.path.split("/"))
    try:
        target = os.readlink(path)
    except OSError as exc:
        raise UnsafeArtifactError(f"{tree}: {record.path} is not a symlink "
                                  f"({exc.strerror or exc})") from None
    if target != record.target:
        raise UnsafeArtifactError(f"{tree}: {record.path} points at {target}, its manifest "
                                  f"records {record.target}")


def _check_unlisted(tree: str, manifest: Manifest) -> tuple[str, ...]:
    """Nothing in the tree that the manifest does not list: the image would not hold it,
    and an artifact with files its manifest hides is not one to ship. Returns those of
    NOT_LISTED (manifest, report) the tree has."""
    listed = {f.path for f in manifest.files} | NOT_LISTED
    parents = {p for path in listed for p in _parents(path)}
    for relative, info in walk(tree):
        if stat.S_ISDIR(info.st_mode) and relative in parents:
            continue
        if relative not in listed:
            raise UnsafeArtifactError(f"{tree}: {relative} is not in its manifest")
    return tuple(sorted(path for path in NOT_LISTED
                        if os.path.isfile(os.path.join(tree, *path.split("/")))))

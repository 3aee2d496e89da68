"""What is inside an artifact and whose it is: the facts an SBOM, the licence notices and
the report's licence section are written from.

Provenance (provenance.py) finds, for each bundled file, the package of the build root
that installed it; a Go program's modules come from its build info. The build adds each
file's digest as archived (the SBOM's hashes are the manifest's) and the dependency graph
as resolved. sbom.py writes CycloneDX and SPDX from one `Inventory`; nothing here reads a
file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

NOASSERTION = "NOASSERTION"  # SPDX's word for a licence nobody could read
LicenceKind = Literal["copyleft", "permissive", "unknown"]
LICENCE_KINDS: tuple[LicenceKind, ...] = ("copyleft", "permissive", "unknown")


@dataclass(frozen=True)
class Package:
    """A package of a dpkg database that installed at least one bundled file."""

    name: str  # the binary package, e.g. libc6
    version: str  # as `dpkg-query -W` shows it, e.g. 2.36-9+deb12u14
    architecture: str  # dpkg's: amd64, arm64, all
    source: str  # the source package, e.g. glibc
    source_version: str  # its version (the binary's unless the status says otherwise)
    distro: str | None  # the root's os-release ID-VERSION_ID, e.g. debian-12 (purl qualifier)
    licence: str  # SPDX expression read from a DEP-5 copyright file, or NOASSERTION
    licence_kind: LicenceKind
    # Its copyright file as the database's tree sees it (/usr/share/doc/libc6/copyright),
    # never where the build host keeps that tree; None: the root has none
    copyright: str | None
    database: str  # whose dpkg database: the build root's, or the host's for a cross sysroot
    maintainer: str | None = None  # dpkg's Maintainer field ("Name <email>"): the SBOMs'
    # supplier; None when the database does not say

    @property
    def key(self) -> str:
        """How files and the manifest name it: NAME:ARCH, as dpkg does for multiarch."""
        return f"{self.name}:{self.architecture}"


@dataclass(frozen=True)
class GoModule:
    """A module in a Go program's build info (`go version -m`)."""

    path: str
    version: str  # "(devel)" for a main module built from a checkout
    sum: str  # the go.sum hash ("h1:..."), "" when the build info has none
    replaced_by: tuple[str, str] | None = None  # (path, version) of a `replace` target
    main: bool = False


@dataclass(frozen=True)
class FileOrigin:
    """Where one file of the artifact came from."""

    dest: str  # its path in the artifact, e.g. lib/libc.so.6
    source: str | None  # the host file it was copied from (None: made by the build)
    package: str | None  # Package.key; None when no database names it
    unknown_because: str | None = None  # why `package` is None, in words


@dataclass(frozen=True)
class Provenance:
    """The packages the bundled files came from, found once per build."""

    packages: tuple[Package, ...]  # sorted by key
    files: tuple[FileOrigin, ...]  # sorted by dest
    note: str  # which database was read, or why there was none
    go_modules: tuple[tuple[str, tuple[GoModule, ...]], ...] = ()  # program -> its modules
    # The host directory the recorded paths are in (the build root; `/` for the build host
    # or a cross root its database spoke for): for reading them here, never written out
    tree: str = "/"


@dataclass(frozen=True)
class InventoryFile:
    """A file of the artifact as the SBOM lists it: the manifest's digest, and its package."""

    dest: str
    sha256: str
    size: int
    kind: str  # the manifest's kind: program, library, loader, launcher, data
    package: str | None  # Package.key
    sha1: str = ""  # SPDX 2.3 requires a SHA-1 of every file; "": not recorded (spdx_json
    # refuses it)
    made: bool = False  # made by bundle (a launcher, SOURCES): no package to name
    patched_by: str | None = None  # a copy LIEF patched: what wrote it (ElfEdit.rewriter)


@dataclass(frozen=True)
class Inventory:
    """Everything the SBOMs say about one artifact."""

    name: str  # the artifact's name (its top directory)
    arch: str  # e.g. x86-64
    tool_version: str  # bundle's
    created: int  # SOURCE_DATE_EPOCH (or 0): the same inputs give the same bytes
    files: tuple[InventoryFile, ...]  # sorted by dest
    packages: tuple[Package, ...]  # sorted by key
    go_modules: tuple[tuple[str, tuple[GoModule, ...]], ...]  # program's dest -> its modules
    dependencies: tuple[tuple[str, tuple[str, ...]], ...]  # dest -> dests it loads, resolved

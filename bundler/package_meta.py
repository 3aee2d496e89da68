"""What a system package or an image of an artifact says about itself, whatever its format.

The .deb, the .rpm and the OCI image are made from the same artifact tree (the directory
`bundle BINARY... -o DIR/` writes: NAME/{bin,lib,libexec,.bundle}, installed at its
prefix) and its manifest. The facts they share are here, once: the package's name,
version, architecture in each ecosystem's spelling, who maintains it, what it is, its
licence, and whether a systemd unit comes with it.
"""

from __future__ import annotations

from dataclasses import dataclass

from bundler.errors import InputError

# The manifest's architecture (the ELF machine name, elf.MACHINE_NAMES) in each
# ecosystem's spelling: dpkg, rpm, and the OCI image config (GOARCH).
ARCHITECTURES: dict[str, tuple[str, str, str]] = {
    "x86-64": ("amd64", "x86_64", "amd64"),
    "aarch64": ("arm64", "aarch64", "arm64"),
    "i386": ("i386", "i686", "386"),
    "arm": ("armhf", "armv7hl", "arm"),
    "riscv": ("riscv64", "riscv64", "riscv64"),
    "ppc64": ("ppc64el", "ppc64le", "ppc64le"),
    "s390": ("s390x", "s390x", "s390x"),
}
# What each package format needs on the host it goes to (the report's comparison).
HOST_NEEDS = {"deb": "dpkg", "rpm": "rpm", "oci": "a container runtime (podman, docker)"}
DEFAULT_VERSION = "0.0.0"
DEFAULT_MAINTAINER = "unknown <unknown@localhost>"


@dataclass(frozen=True)
class PackageMeta:
    """The package's own facts; the files, prefix, programs and environment come from the
    artifact's manifest."""

    name: str  # the package name (default: the artifact's name)
    version: str = DEFAULT_VERSION  # upstream version, e.g. 1.4.2 (from --version / bundle.toml)
    maintainer: str = DEFAULT_MAINTAINER  # "Name <email>"
    description: str = ""  # one line; default made from the name and the programs
    licence: str = "NOASSERTION"  # the program's own licence, as SPDX
    homepage: str | None = None
    service: bool = False  # ship a systemd unit for the first program (--service)
    enable: bool = False  # have the package's scripts enable and start it


def arch_names(manifest_arch: str) -> tuple[str, str, str]:
    """(dpkg, rpm, oci) architecture names for the manifest's; InputError if unknown."""
    names = ARCHITECTURES.get(manifest_arch)
    if names is None:
        raise InputError(f"architecture {manifest_arch}: no package architecture for it "
                         f"(known: {', '.join(ARCHITECTURES)})")
    return names


def checked_meta(meta: PackageMeta, option: str = "--") -> PackageMeta:
    """The facts as given, refused in one line where no package format could carry them
    (each writer maps the rest to its ecosystem's rules, e.g. rpm's Version has no '-')."""
    def bad(key: str, value: str, why: str) -> InputError:
        return InputError(f"{option}{key} {value!r}: {why}")

    if not meta.version or not meta.version[0].isalnum() or any(
            c.isspace() or c in "/\\" or not c.isprintable() for c in meta.version):
        raise bad("version", meta.version, "must start with a letter or digit and have no "
                  "spaces, slashes or control characters")
    for key, value in (("maintainer", meta.maintainer), ("description", meta.description),
                       ("licence", meta.licence), ("homepage", meta.homepage or "")):
        if not value.isprintable():
            raise bad(key, value, "must be one printable line")
    if "<" not in meta.maintainer or not meta.maintainer.rstrip().endswith(">"):
        raise bad("maintainer", meta.maintainer, "must be 'Name <email>'")
    if meta.enable and not meta.service:
        raise InputError(f"{option}enable-service: needs {option}service (the unit to enable)")
    return meta

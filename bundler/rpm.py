"""`-o NAME.rpm`: the artifact as an RPM package that installs it, byte for byte, at its prefix.

Built by `rpmbuild` (Debian's `rpm` package) from a spec generated here (`spec_text`, a pure
function), in a private `_topdir`, binary only (`-bb`), for the artifact's architecture by
`--target ARCH-linux` and not a BuildArch tag (rpm 4.18 refuses a BuildArch foreign to this
machine, also with --target: "No compatible architectures found for build", measured, and
an arm64 artifact is packaged on amd64): %install copies the artifact's tree into the buildroot,
%files lists exactly the artifact's files (the manifest's records, and the manifest and
report it cannot list) with the manifest's modes, and the directories of the prefix, which
the package owns (so `rpm -e` leaves nothing behind).

What the spec switches off, and why: the artifact's ELF files are patched and their sha256
recorded in its manifest (`bundle verify` checks them), so rpmbuild must not touch a byte:
no strip, no debuginfo split, no build-id links, none of the brp-* scripts (Debian's rpm runs
brp-strip and brp-elfperms by default), no python bytecompile. And no dependencies
(`AutoReqProv: no`): the artifact brings its glibc and loader, which is the point; rpm still
records its own `rpmlib(...)` features, and `/bin/sh` for the scriptlets of a service.

Reproducible: SOURCE_DATE_EPOCH is the build time (use_source_date_epoch_as_buildtime), every
file's mtime in the buildroot is set to it, the build host is fixed, the payload compressor
and its level are fixed; the spec names no path of this machine (the tree is reached through
a link in the private SOURCES directory).

The version: rpm forbids '-' in Version (it separates Version from Release), so a version
1.4.2-rc1 becomes 1.4.2~rc1: for SemVer a '-' starts a pre-release, and rpm's '~' is what
sorts before the release (1.4.2~rc1 < 1.4.2), as SemVer says it must.

The systemd unit (`--service`): the unit of service.unit_text at
/usr/lib/systemd/system/NAME.service, with scriptlets after the systemd rpm macros'
conventions (%systemd_post/%systemd_preun/%systemd_postun_with_restart), each guarded so
that a host without systemd (a container, an image being assembled) does nothing and the
transaction never fails because of them: on first install `systemctl preset` (the
distribution's or the admin's preset policy decides; systemd's default policy is
"disable *"), or, when the package is to enable it, `systemctl enable` and, on a booted
systemd, `start`; on removal `disable --now`; after an upgrade `try-restart`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass

from bundler.errors import EnvironmentUnfitError, InputError
from bundler.manifest import NOT_LISTED, Manifest
from bundler.package_meta import PackageMeta, arch_names

UNIT_DIR = "/usr/lib/systemd/system"
# Fixed, so that two builds agree (the default is the machine's name).
BUILD_HOST = "localhost"
# Fixed, so that two builds agree (the default varies between distributions' rpm macros).
# xz, one thread (deterministic): rpm 4.7 and newer read it (CentOS 7's 4.11 cannot read a
# zstd payload); measured on the demo agent (9.6 MB): xz 3.9 MB, zstd -19 4.2 MB, gzip 4.8 MB.
PAYLOAD = "w6.xzdio"
# What a path in %files and %install may hold: rpm expands '%' macros and globs (*?[]{}),
# the shell expands '$' and '`' inside double quotes; a name of the artifact never needs them.
SAFE_PATH = re.compile(r"[A-Za-z0-9._+,@=~/ -]+")
NAME_CHARS = re.compile(r"[^A-Za-z0-9._+-]")
VERSION_OK = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+~^]*")
DIR_MODE = 0o755


@dataclass(frozen=True)
class PackagedPath:
    """One line of %files: a path under the prefix ("" is the prefix itself)."""

    path: str
    kind: str  # "dir", "file", "symlink"
    mode: int | None  # permission bits for files and directories; None for a symlink


def rpm_name(meta: PackageMeta, manifest: Manifest) -> str:
    """The package's Name: meta.name (the artifact's name when empty) with every character
    rpm does not allow in a name replaced by '-'."""
    name = NAME_CHARS.sub("-", meta.name or manifest.name).lstrip("-._+")
    if not name:
        raise InputError(f"package name {meta.name!r}: nothing of it is usable as an rpm name")
    return name


def rpm_version(version: str) -> str:
    """The Version tag: '-' (forbidden by rpm) becomes '~', a SemVer pre-release's spelling
    in rpm (it sorts before the release)."""
    mapped = version.replace("-", "~")
    if not VERSION_OK.fullmatch(mapped):
        raise InputError(f"version {version!r}: an rpm Version starts with a letter or digit "
                         "and holds only letters, digits and . _ + ~ ^ ('-' is mapped to '~')")
    return mapped


def packaged_paths(manifest: Manifest, unlisted: Iterable[tuple[str, int]]) -> tuple[
        PackagedPath, ...]:
    """Every path the package installs under the prefix: the manifest's records (their
    modes), `unlisted` (the manifest and report: path and mode from the tree), and every
    directory above them; sorted."""
    entries: dict[str, PackagedPath] = {"": PackagedPath("", "dir", DIR_MODE)}
    for record in manifest.files:
        mode = record.mode if record.type == "file" else None
        entries[record.path] = PackagedPath(record.path, record.type, mode)
    for path, mode in unlisted:
        entries[path] = PackagedPath(path, "file", mode)
    for path in list(entries):
        parent = os.path.dirname(path)
        while parent and parent not in entries:
            entries[parent] = PackagedPath(parent, "dir", DIR_MODE)
            parent = os.path.dirname(parent)
    return tuple(entries[p] for p in sorted(entries))


def spec_text(manifest: Manifest, meta: PackageMeta, paths: Iterable[PackagedPath],
              epoch: int, unit: str | None) -> str:
    """The spec rpmbuild runs: header, %install (copy the tree in, mtimes to `epoch`),
    %files, and with a unit (its file name under SOURCES) the systemd scriptlets."""
    name = rpm_name(meta, manifest)
    prefix = _safe(manifest.prefix, "prefix")
    summary = _one_line(_summary(manifest, meta), "description")
    header = [
        f"Name: {name}",
        f"Version: {rpm_version(meta.version)}",
        "Release: 1",
        f"Summary: {_macro_safe(summary)}",
        f"License: {_macro_safe(_one_line(meta.licence, 'licence'))}",
        f"Packager: {_macro_safe(_one_line(meta.maintainer, 'maintainer'))}",
        *([f"URL: {_macro_safe(_one_line(meta.homepage, 'homepage'))}"]
          if meta.homepage else []),
        "AutoReqProv: no",
    ]
    install = [
        f'mkdir -p "%{{buildroot}}{os.path.dirname(prefix)}"',
        f'cp -a "%{{_sourcedir}}/tree/." "%{{buildroot}}{prefix}"',
    ]
    files = ["%defattr(-,root,root,-)"]
    for entry in paths:
        where = _safe(f"{prefix}/{entry.path}" if entry.path else prefix, "path")
        if entry.kind == "dir":
            files.append(f'%dir %attr({entry.mode:04o},root,root) "{where}"')
        elif entry.kind == "file":
            files.append(f'%attr({entry.mode:04o},root,root) "{where}"')
        else:
            files.append(f'"{where}"')
    scripts: list[str] = []
    if unit is not None:
        unit_path = f"{UNIT_DIR}/{name}.service"
        install += [f'mkdir -p "%{{buildroot}}{UNIT_DIR}"',
                    f'install -m 0644 "%{{_sourcedir}}/{unit}" "%{{buildroot}}{unit_path}"']
        files.append(f'%attr(0644,root,root) "{unit_path}"')
        scripts = systemd_scriptlets(f"{name}.service", meta.enable)
    install.append(f'find "%{{buildroot}}" -exec touch -h -d @{int(epoch)} {{}} +')
    return "\n".join([
        f"# Generated by bundle: the artifact {manifest.name} installed at its prefix, as it is.",
        *(f"%define {macro} {value}" for macro, value in _MACROS),
        "",
        *header,
        "",
        "%description",
        _macro_safe(_description(manifest, meta, summary)),
        "",
        "%prep",
        "%build",
        "%install",
        *install,
        "",
        "%files",
        *files,
        *scripts,
        "",
    ])


def systemd_scriptlets(unit: str, enable: bool) -> list[str]:
    """%post/%preun/%postun for `unit`, after the systemd rpm macros (%systemd_post etc.),
    guarded: without systemctl nothing runs, without a booted systemd nothing is started,
    reloaded or restarted; `|| :` keeps a failing systemctl from failing the transaction."""
    has = "command -v systemctl >/dev/null 2>&1"
    booted = "[ -d /run/systemd/system ]"
    quiet = ">/dev/null 2>&1 || :"
    if enable:
        first = [f"    systemctl --no-reload enable {unit} {quiet}",
                 f"    if {booted}; then systemctl daemon-reload {quiet}; "
                 f"systemctl start {unit} {quiet}; fi"]
    else:
        first = [f"    systemctl --no-reload preset {unit} {quiet}"]
    return [
        "",
        "%post",
        f"if [ $1 -eq 1 ] && {has}; then",
        *first,
        "fi",
        "",
        "%preun",
        f"if [ $1 -eq 0 ] && {has}; then",
        f"    systemctl --no-reload disable --now {unit} {quiet}",
        "fi",
        "",
        "%postun",
        f"if {has} && {booted}; then",
        f"    systemctl daemon-reload {quiet}",
        f"    if [ $1 -ge 1 ]; then systemctl try-restart {unit} {quiet}; fi",
        "fi",
    ]


def write_rpm(tree: str, manifest: Manifest, meta: PackageMeta, out: str, epoch: int) -> None:
    """The .rpm of the artifact at `tree` (its top directory), written at `out`."""
    rpmbuild = shutil.which("rpmbuild")
    if rpmbuild is None:
        raise EnvironmentUnfitError("-o NAME.rpm needs rpmbuild: install the rpm package "
                                    "(apt-get install rpm)")
    arch = arch_names(manifest.arch)[1]
    unlisted = [(path, os.lstat(os.path.join(tree, path)).st_mode & 0o7777)
                for path in sorted(NOT_LISTED) if os.path.isfile(os.path.join(tree, path))]
    unit = None
    if meta.service:
        from bundler.service import unit_text
        unit_body = unit_text(manifest, meta)
        unit = "unit.service"
    spec = spec_text(manifest, meta, packaged_paths(manifest, unlisted), epoch, unit)
    with tempfile.TemporaryDirectory(prefix="bundle-rpm-") as top:
        sources = os.path.join(top, "SOURCES")
        os.makedirs(sources)
        os.symlink(os.path.abspath(tree), os.path.join(sources, "tree"))
        if unit is not None:
            with open(os.path.join(sources, unit), "w", encoding="utf-8") as handle:
                handle.write(unit_body)
        spec_path = os.path.join(top, "package.spec")
        with open(spec_path, "w", encoding="utf-8") as handle:
            handle.write(spec)
        rpms = os.path.join(top, "RPMS")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": top, "LC_ALL": "C",
               "TZ": "UTC", "SOURCE_DATE_EPOCH": str(int(epoch))}
        command = [rpmbuild, "-bb", "--quiet", "--target", f"{arch}-linux",
                   "--define", f"_topdir {top}", "--define", f"_rpmdir {rpms}",
                   "--define", "_build_name_fmt package.rpm", spec_path]
        result = subprocess.run(command, capture_output=True, text=True, env=env,
                                stdin=subprocess.DEVNULL, check=False)
        built = os.path.join(rpms, "package.rpm")
        if result.returncode != 0 or not os.path.isfile(built):
            raise EnvironmentUnfitError(f"rpmbuild failed (exit {result.returncode}): "
                                        f"{_last_line(result.stderr)}")
        shutil.copyfile(built, out)


# Everything rpmbuild would do to a package's files beyond packing them, switched off, and
# what makes two builds the same bytes.
_MACROS = (
    ("_buildhost", BUILD_HOST),
    ("use_source_date_epoch_as_buildtime", "1"),
    ("clamp_mtime_to_source_date_epoch", "1"),
    ("_binary_payload", PAYLOAD),
    ("debug_package", "%{nil}"),
    ("_build_id_links", "none"),
    ("_missing_build_ids_terminate_build", "0"),
    ("__strip", "/bin/true"),
    ("__objdump", "/bin/true"),
    ("__os_install_post", "%{nil}"),
    ("__arch_install_post", "%{nil}"),
    ("__spec_install_post", "%{nil}"),
    ("__brp_python_bytecompile", "%{nil}"),
    ("__brp_mangle_shebangs", "%{nil}"),
    ("_python_bytecompile_errors_terminate_build", "0"),
    ("_unpackaged_files_terminate_build", "1"),
)


def _summary(manifest: Manifest, meta: PackageMeta) -> str:
    from bundler.service import description
    return description(manifest, meta)


def _description(manifest: Manifest, meta: PackageMeta, summary: str) -> str:
    programs = ", ".join(manifest.programs)
    return (f"{summary}\n\nThe artifact {manifest.name} ({programs}) installed at "
            f"{manifest.prefix}, with its own glibc {manifest.glibc or ''} and loader: it "
            "runs whatever glibc the host has, so the package depends on nothing.")


def _one_line(value: str, what: str) -> str:
    if not value.strip() or not value.isprintable():
        raise InputError(f"rpm: the {what} {value!r} must be one line of printable text, "
                         "not empty")
    return value.strip()


def _macro_safe(value: str) -> str:
    """Text rpm reads literally: '%' starts a macro, '%%' is a '%'."""
    return value.replace("%", "%%")


def _safe(path: str, what: str) -> str:
    if not SAFE_PATH.fullmatch(path):
        raise InputError(f"rpm: {what} {path!r} holds a character an rpm file list cannot "
                         "carry (only letters, digits, space and . _ + , @ = ~ / -)")
    return path


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or ["no message"])[-1]

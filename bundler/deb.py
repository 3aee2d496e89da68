"""The .deb of an artifact: its tree installed at its prefix, with no dependencies.

Built by dpkg-deb itself (the ecosystem's tool: its control file checks, its member order
and its ar/tar writer are what every dpkg reads) from a staging tree beside OUT:

    PREFIX/...                         the artifact tree: every file, symlink and directory
    lib/systemd/system/NAME.service    with meta.service (service.unit_text)
    DEBIAN/control, DEBIAN/md5sums     and with meta.service postinst, prerm, postrm

- No Depends: the artifact carries its glibc and loader; that is why it exists. Not even
  init-system-helpers: the maintainer scripts use deb-systemd-helper/-invoke when present
  (debhelper's dh_installsystemd snippets, the same shape) and do without otherwise.
- xz members (-Zxz): Debian 11's dpkg (1.20) cannot read zstd members ("unknown
  compression"), and Debian 9's reads xz; gzip would be bigger for no gain.
- Reproducible: every staged entry's mtime is SOURCE_DATE_EPOCH (the caller's `epoch`),
  dpkg-deb is given it too (ar member dates, tar --clamp-mtime), owners are root:root
  (--root-owner-group), and tar sorts by name, so the same tree gives the same bytes.
- Modes as the manifest records them (a setuid/setgid bit only there: the build allowed it
  with --allow-setuid); a file it cannot record (manifest.json, report.md) keeps the tree's
  mode without setuid/setgid/sticky: a bit is never added.
- The copy is cheap: a file whose mode and mtime are already right is hard-linked from the
  tree; otherwise (another filesystem, another mode, an older mtime) it is copied, so the
  artifact tree is never modified.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import subprocess
import textwrap

from bundler.errors import EnvironmentUnfitError, InputError, UnsafeArtifactError
from bundler.manifest import Manifest
from bundler.package_meta import PackageMeta, arch_names
from bundler.scratch import make_dir
from bundler.service import description, unit_text
from bundler.tree import remove_tree, walk

COMPRESSION = "xz"  # Debian 11's dpkg reads xz, not zstd (module doc)
SECTION = "misc"
UNIT_DIR = "lib/systemd/system"
SPECIAL_BITS = stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX
# Debian policy 5.6.7 and 5.6.12: a package name, and an upstream version (with an
# optional epoch and Debian revision) as dpkg accepts them.
PACKAGE_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]+")
VERSION = re.compile(r"([0-9]+:)?[0-9][A-Za-z0-9.+~-]*")
DPKG_DEB_TIMEOUT = 600


def package_name(name: str) -> str:
    """`name` in Debian's spelling: lower case, and every character policy does not allow
    (an underscore, a space) a '-'; InputError when nothing usable is left."""
    spelled = re.sub(r"[^a-z0-9+.-]", "-", name.lower()).lstrip("+.-")
    if not PACKAGE_NAME.fullmatch(spelled):
        raise InputError(f"package name {name!r}: a Debian package name needs two or more "
                         "of a-z, 0-9, '+', '-', '.', starting with a letter or digit")
    return spelled


def deb_version(version: str) -> str:
    """`version` as dpkg accepts it: a git tag's "v1.4.2" is 1.4.2 (a Debian version starts
    with a digit); anything else dpkg would refuse is refused here, in one line."""
    if re.fullmatch(r"[vV][0-9].*", version):
        version = version[1:]
    if not VERSION.fullmatch(version) or version.endswith("-"):
        raise InputError(f"version {version!r}: a Debian version starts with a digit and "
                         "holds only A-Z, a-z, 0-9, '.', '+', '~', '-' (and an epoch 'N:')")
    return version


def control_text(manifest: Manifest, meta: PackageMeta, installed_kib: int) -> str:
    """DEBIAN/control: what dpkg and apt show. A synopsis line, then an extended line saying
    what the package is and where it goes; the licence is there too (a .deb has no field
    for it)."""
    synopsis = description(manifest, meta)
    if not synopsis.isprintable():
        raise InputError("the description holds a control character (a newline?): a "
                         "package's synopsis is one line")
    for field, value in (("maintainer", meta.maintainer), ("homepage", meta.homepage or "")):
        if not value.isprintable():
            raise InputError(f"the {field} holds a control character")
    programs = ", ".join(manifest.programs)
    glibc = f"glibc {manifest.glibc}" if manifest.glibc else "its glibc"
    extended = (f"{programs} installed at {manifest.prefix}, with {glibc} and its loader "
                f"bundled: it needs no library of the host and runs on any Linux of this "
                f"architecture. Licence: {meta.licence}.")
    fields = [
        ("Package", package_name(meta.name)),
        ("Version", deb_version(meta.version)),
        ("Architecture", arch_names(manifest.arch)[0]),
        ("Maintainer", meta.maintainer),
        ("Installed-Size", str(installed_kib)),
        ("Section", SECTION),
        ("Priority", "optional"),
    ]
    if meta.homepage:
        fields.append(("Homepage", meta.homepage))
    lines = [f"{key}: {value}" for key, value in fields]
    lines += [f"Description: {synopsis}",
              *(f" {line}" for line in textwrap.wrap(extended, 79, break_on_hyphens=False))]
    return "\n".join(lines) + "\n"


def maintainer_scripts(unit: str, enable: bool) -> dict[str, str]:
    """postinst, prerm and postrm for `unit` (NAME.service), after debhelper's
    dh_installsystemd snippets: enabled (and started, or restarted on upgrade) on
    installation only with `enable`; stopped on removal; its enablement state forgotten on
    purge. Everything systemd-related is guarded: in a chroot or a container without
    systemd running (/run/systemd/system absent) nothing is started or reloaded, and
    without init-system-helpers (no deb-systemd-helper/-invoke: not a systemd Debian)
    nothing is enabled or started. systemctl itself is called only for daemon-reload, as
    debhelper does (lintian's maintainer-script-calls-systemctl)."""
    helper = "command -v deb-systemd-helper >/dev/null 2>&1"
    configure = ('if [ "$1" = "configure" ] || [ "$1" = "abort-upgrade" ] || '
                 '[ "$1" = "abort-deconfigure" ] || [ "$1" = "abort-remove" ]; then')
    if enable:
        state = [
            f"\tif {helper}; then",
            f"\t\tdeb-systemd-helper unmask '{unit}' >/dev/null || true",
            "\t\t# was-enabled is true on a first installation: enable it then; on an upgrade",
            "\t\t# keep the administrator's choice",
            f"\t\tif deb-systemd-helper --quiet was-enabled '{unit}'; then",
            f"\t\t\tdeb-systemd-helper enable '{unit}' >/dev/null || true",
            "\t\telse",
            f"\t\t\tdeb-systemd-helper update-state '{unit}' >/dev/null || true",
            "\t\tfi",
            "\tfi",
        ]
        # started on a first installation, restarted on an upgrade
        action = 'if [ -n "$2" ]; then _action=restart; else _action=start; fi'
    else:
        state = [
            f"\tif {helper}; then",
            f"\t\tdeb-systemd-helper unmask '{unit}' >/dev/null || true",
            "\t\t# not enabled by the package: only an administrator's earlier enabling is kept",
            f"\t\tif deb-systemd-helper debian-installed '{unit}' && "
            f"deb-systemd-helper --quiet was-enabled '{unit}'; then",
            f"\t\t\tdeb-systemd-helper enable '{unit}' >/dev/null || true",
            "\t\tfi",
            f"\t\tdeb-systemd-helper update-state '{unit}' >/dev/null || true",
            "\tfi",
        ]
        # a first installation starts nothing; an upgrade restarts it only if it runs
        action = 'if [ -n "$2" ]; then _action=try-restart; else _action=; fi'
    postinst = [
        "#!/bin/sh", "set -e", "", configure, *state,
        "\tif [ -d /run/systemd/system ]; then",
        "\t\tsystemctl --system daemon-reload >/dev/null || true",
        f"\t\t{action}",
        '\t\tif [ -z "$_action" ]; then',
        "\t\t\t:",
        "\t\telif command -v deb-systemd-invoke >/dev/null 2>&1; then",
        f"\t\t\tdeb-systemd-invoke \"$_action\" '{unit}' >/dev/null || true",
        "\t\tfi",
        "\tfi",
        "fi",
    ]
    prerm = [
        "#!/bin/sh", "set -e", "",
        'if [ -z "${DPKG_ROOT:-}" ] && [ "$1" = remove ] && [ -d /run/systemd/system ]; then',
        "\tif command -v deb-systemd-invoke >/dev/null 2>&1; then",
        f"\t\tdeb-systemd-invoke stop '{unit}' >/dev/null || true",
        "\tfi",
        "fi",
    ]
    postrm = [
        "#!/bin/sh", "set -e", "",
        'if [ "$1" = remove ] && [ -d /run/systemd/system ]; then',
        "\tsystemctl --system daemon-reload >/dev/null || true",
        "fi",
        f'if [ "$1" = remove ] && {helper}; then',
        f"\tdeb-systemd-helper mask '{unit}' >/dev/null || true",
        "fi",
        f'if [ "$1" = purge ] && {helper}; then',
        f"\tdeb-systemd-helper purge '{unit}' >/dev/null || true",
        f"\tdeb-systemd-helper unmask '{unit}' >/dev/null || true",
        "fi",
    ]
    return {name: "\n".join(lines) + "\n"
            for name, lines in (("postinst", postinst), ("prerm", prerm), ("postrm", postrm))}


def installed_size(entries: list[tuple[str, os.stat_result]]) -> int:
    """Installed-Size in KiB as dpkg-gencontrol counts it: each file rounded up to a KiB,
    each directory and symlink one."""
    return sum(-(-info.st_size // 1024) if stat.S_ISREG(info.st_mode) else 1
               for _, info in entries)


# -- I/O ------------------------------------------------------------------------------------
def write_deb(tree: str, manifest: Manifest, meta: PackageMeta, out: str, epoch: int) -> None:
    """Write the .deb of the artifact tree `tree` (installed at manifest.prefix) at exactly
    `out`; the caller chose that temporary path and renames it."""
    dpkg_deb = shutil.which("dpkg-deb")
    if dpkg_deb is None:
        raise EnvironmentUnfitError("dpkg-deb is not installed (Debian/Ubuntu: apt-get install "
                                    "dpkg; it is needed to write a .deb)")
    name = package_name(meta.name)
    control = control_text(manifest, meta, 0)  # checks every field before any work
    staging = make_dir(os.path.dirname(os.path.abspath(out)), "deb")
    try:
        root = os.path.join(staging.path, "root")
        os.mkdir(root)
        staged = _stage_tree(tree, manifest, root, epoch)
        if meta.service:
            unit = os.path.join(UNIT_DIR, f"{name}.service")
            _write(root, unit, unit_text(manifest, meta).encode(), 0o644, epoch)
            staged = _walked(root)
        payload = [(path, info) for path, info in staged if path != "DEBIAN"]
        control = control_text(manifest, meta, installed_size(payload))
        _write(root, "DEBIAN/control", control.encode(), 0o644, epoch)
        _write(root, "DEBIAN/md5sums", _md5sums(root, payload).encode(), 0o644, epoch)
        if meta.service:
            scripts = maintainer_scripts(f"{name}.service", meta.enable)
            for script, text in sorted(scripts.items()):
                _write(root, f"DEBIAN/{script}", text.encode(), 0o755, epoch)
        _clamp_directories(root, epoch)
        _build(dpkg_deb, root, out, epoch)
    finally:
        remove_tree(staging.path)
        staging.release()


def _stage_tree(tree: str, manifest: Manifest, root: str, epoch: int,
                ) -> list[tuple[str, os.stat_result]]:
    """The tree at root/PREFIX: directories made, symlinks re-made, files linked or copied,
    each with the manifest's mode (_file_mode)."""
    recorded = {record.path: record.mode for record in manifest.files if record.type == "file"}
    top = _make_dirs(root, manifest.prefix.lstrip("/"))
    for relative, info in walk(tree):
        source, target = os.path.join(tree, relative), os.path.join(top, relative)
        if stat.S_ISDIR(info.st_mode):
            os.mkdir(target)
            os.chmod(target, stat.S_IMODE(info.st_mode) & ~SPECIAL_BITS)
        elif stat.S_ISLNK(info.st_mode):
            os.symlink(os.readlink(source), target)
            os.utime(target, (epoch, epoch), follow_symlinks=False)
        elif stat.S_ISREG(info.st_mode):
            mode = _file_mode(relative, stat.S_IMODE(info.st_mode), recorded)
            _place_file(source, target, info, mode, epoch)
        else:
            raise UnsafeArtifactError(f"{tree}: {relative} is neither a file, a directory nor "
                                      "a symlink: not packaged")
    return _walked(root)


def _file_mode(relative: str, mode: int, recorded: dict[str, int | None]) -> int:
    """The manifest's mode for a file it records (setuid/setgid only there, as the build
    allowed them); the tree's, without setuid/setgid/sticky, for the few it cannot record
    (its own manifest.json, the report)."""
    wanted = recorded.get(relative)
    return wanted if wanted is not None else mode & ~SPECIAL_BITS


def _place_file(source: str, target: str, info: os.stat_result, mode: int,
                epoch: int) -> None:
    if stat.S_IMODE(info.st_mode) == mode and int(info.st_mtime) >= epoch:
        try:  # dpkg-deb clamps its mtime to `epoch`: the tree's own inode is left as it is
            os.link(source, target, follow_symlinks=False)
            return
        except OSError:
            pass  # another filesystem, or links not allowed: copy
    shutil.copyfile(source, target, follow_symlinks=False)
    os.chmod(target, mode)
    os.utime(target, (epoch, epoch))


def _write(root: str, relative: str, data: bytes, mode: int, epoch: int) -> None:
    path = os.path.join(_make_dirs(root, os.path.dirname(relative)), os.path.basename(relative))
    with open(path, "xb") as handle:
        handle.write(data)
    os.chmod(path, mode)
    os.utime(path, (epoch, epoch))


def _make_dirs(root: str, relative: str) -> str:
    """root/relative, each directory made here 0755 whatever the umask; returns its path."""
    path = root
    for part in relative.split("/"):
        path = os.path.join(path, part)
        if not os.path.isdir(path):
            os.mkdir(path)
            os.chmod(path, 0o755)
    return path


def _walked(root: str) -> list[tuple[str, os.stat_result]]:
    return list(walk(root))


def _md5sums(root: str, payload: list[tuple[str, os.stat_result]]) -> str:
    lines = []
    for relative, info in sorted(payload):
        if stat.S_ISREG(info.st_mode):
            digest = hashlib.md5(usedforsecurity=False)
            with open(os.path.join(root, relative), "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
            lines.append(f"{digest.hexdigest()}  {relative}\n")
    return "".join(lines)


def _clamp_directories(root: str, epoch: int) -> None:
    """Every directory dated `epoch`, deepest first (writing into a directory changes its
    mtime); the staging root (mkdtemp's 0700) becomes 0755, as dpkg-deb wants "./"."""
    os.chmod(root, 0o755)
    directories = [path for path, info in walk(root) if stat.S_ISDIR(info.st_mode)]
    for relative in sorted(directories, key=lambda path: -path.count("/")):
        os.utime(os.path.join(root, relative), (epoch, epoch))
    os.utime(root, (epoch, epoch))


def _build(dpkg_deb: str, root: str, out: str, epoch: int) -> None:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C",
           "SOURCE_DATE_EPOCH": str(epoch)}
    command = [dpkg_deb, "--root-owner-group", f"-Z{COMPRESSION}", "-z6", "--build", root, out]
    try:
        result = subprocess.run(command, capture_output=True, text=True, env=env,
                                timeout=DPKG_DEB_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise EnvironmentUnfitError(f"dpkg-deb took longer than {DPKG_DEB_TIMEOUT} s") from None
    if result.returncode != 0:
        why = (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]
        raise EnvironmentUnfitError(f"dpkg-deb could not build {out}: {why}")

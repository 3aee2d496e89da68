"""`bundle.toml`: one file that says how a release is built, so every CI run builds it alike.

Found like other tools find theirs: `--config FILE`, else the first `bundle.toml` in the
working directory or one of its parents. Paths in it are relative to the file's directory
(never to wherever CI happens to run). Every key is checked before anything is built: an
unknown key, a wrong type or a bad value is one line naming the key (`target[2].arch`),
exit 2. The keys are the build's options spelled as on the command line (`launcher-type`,
`library-path`), so what a user knows from `bundle --help` carries over.

    name = "myagent"
    version = "1.4.2"
    output-dir = "dist"
    formats = ["tar.zst"]
    prefix = "/opt/myagent"
    fail-on = ["hazard:high", "missing-nss"]

    [[target]]
    arch = "amd64"
    programs = ["build/amd64/myagent"]
    static = "build/amd64/myagent-static"

    [[target]]
    arch = "arm64"
    programs = ["build/arm64/myagent"]

    [verify]
    roots = ["bare"]
    args = ["--version"]
    expect-output = "myagent [0-9]"

    [sign]
    tool = "minisign"
    key = "release.key"
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bundler.choices import LAUNCHER_MODES, LAUNCHER_TYPES, SBOM_FORMATS, parse_gates
from bundler.errors import InputError
from bundler.package_meta import PackageMeta, checked_meta
from bundler.signing import SigningKey

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

CONFIG_NAME = "bundle.toml"
MAX_CONFIG_BYTES = 1 << 20
# A release's archive formats (a directory has no sha256 to list in SHA256SUMS).
RELEASE_FORMATS = ("tar.zst", "tar.gz", "tar.xz", "tar", "deb", "rpm", "oci.tar")
# Target architectures by Go's GOARCH names (what a Go release engineer writes), with the
# ELF machine name (elf.MACHINE_NAMES) a program for it has, and the spellings of Debian,
# uname and the kernel accepted for each.
ARCHES: dict[str, str] = {"amd64": "x86-64", "arm64": "aarch64", "386": "i386", "arm": "arm",
                          "riscv64": "riscv", "ppc64le": "ppc64", "s390x": "s390"}
ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "i386": "386",
                "i686": "386", "armhf": "arm", "ppc64el": "ppc64le"}


@dataclass(frozen=True)
class BuildSettings:
    """What `bundle BINARY...` is told, for one target: the top level's values, then the
    target's own. Paths are absolute (made so from the config file's directory)."""

    programs: tuple[str, ...] = ()
    sysroot: str = "/"
    library_path: str | None = None
    allow_missing: bool = False
    add: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    nss: str = "auto"
    gconv: str | None = None
    locale: tuple[str, ...] = ()
    allow_setuid: bool = False
    prefix: str | None = None
    launcher: str = "loader"
    launcher_type: str = "auto"
    static: str | None = None  # compare with this static build
    run: str | None = None  # compare mode: run both with these words (shell-style)


@dataclass(frozen=True)
class Target:
    arch: str  # GOARCH name: amd64, arm64, ...
    build: BuildSettings
    emulator: str | None = None  # runs it in `verify` when this machine cannot

    @property
    def machine(self) -> str:
        """The ELF machine name a program for this target has (elf.MACHINE_NAMES)."""
        return ARCHES[self.arch]


@dataclass(frozen=True)
class VerifySettings:
    roots: tuple[str, ...] = ("bare",)  # "bare" or a directory (an old distribution's tree)
    args: tuple[str, ...] = ()
    expect_exit: int = 0
    expect_output: str | None = None
    env: tuple[str, ...] = ()
    timeout: float = 60.0
    program: str | None = None


@dataclass(frozen=True)
class ReleaseConfig:
    path: str  # the file read
    name: str | None
    version: str | None
    output_dir: str
    formats: tuple[str, ...]
    sbom: tuple[str, ...]
    fail_on: tuple[str, ...]
    targets: tuple[Target, ...]
    verify: VerifySettings | None  # None: no [verify] table, the artifacts are not run
    sign: SigningKey | None = None  # None: SHA256SUMS is not signed
    # [package]: the .deb/.rpm/OCI image's own facts (name "" = the release's name)
    package: PackageMeta = field(default_factory=lambda: PackageMeta(""))


def find_config(start: str) -> str | None:
    """The first bundle.toml in `start` or a parent directory."""
    directory = os.path.abspath(start)
    while True:
        candidate = os.path.join(directory, CONFIG_NAME)
        if os.path.isfile(candidate):
            return candidate
        parent = os.path.dirname(directory)
        if parent == directory:
            return None
        directory = parent


def read_config(path: str) -> ReleaseConfig:
    """Parse and check the file at `path`; InputError (one line, the key named) if wrong."""
    from bundler.tree import NotRegularFile, read_plain_file

    try:
        data, _ = read_plain_file(path, MAX_CONFIG_BYTES)
    except NotRegularFile:
        raise InputError(f"{path}: not a regular file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise InputError(f"{path}: larger than {MAX_CONFIG_BYTES} bytes")
    try:
        document = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(document, path)


# --- checking values: each takes (value, key) and returns the value or raises ---

def _fail(key: str, problem: str) -> InputError:
    return InputError(f"{CONFIG_NAME}: {key}: {problem}")


def _string(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value or "\0" in value:
        raise _fail(key, "must be a non-empty string")
    return value


def _strings(value: Any, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise _fail(key, "must be a list of strings")
    return tuple(_string(item, f"{key}[{number}]") for number, item in enumerate(value, 1))


def _boolean(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(key, "must be true or false")
    return value


def _integer(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
        raise _fail(key, "must be an exit code, 0 to 255")
    return value


def _seconds(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0.1:
        raise _fail(key, "must be a number of seconds, at least 0.1")
    return float(value)


def _one_of(choices: tuple[str, ...]) -> Callable[[Any, str], str]:
    def check(value: Any, key: str) -> str:
        if value not in choices:
            raise _fail(key, f"{value!r}: choose {', '.join(choices)}")
        return str(value)
    return check


def _arch(value: Any, key: str) -> str:
    name = ARCH_ALIASES.get(value, value) if isinstance(value, str) else value
    if name not in ARCHES:
        raise _fail(key, f"{value!r}: not an architecture; choose {', '.join(ARCHES)}")
    return str(name)


def _release_formats(value: Any, key: str) -> tuple[str, ...]:
    names = _strings(value, key)
    for name in names:
        if name not in RELEASE_FORMATS:
            why = " (a directory has no sha256 for SHA256SUMS)" if name == "dir" else ""
            raise _fail(key, f"{name!r}: choose {', '.join(RELEASE_FORMATS)}{why}")
    if not names:
        raise _fail(key, "must name at least one format")
    return tuple(dict.fromkeys(names))


def _sbom(value: Any, key: str) -> tuple[str, ...]:
    names = _strings(value, key)
    if names == ("none",):
        return ()
    for name in names:
        if name not in SBOM_FORMATS:
            raise _fail(key, f"{name!r}: choose {', '.join(SBOM_FORMATS)}, or none")
    return tuple(dict.fromkeys(names))


def _gates(value: Any, key: str) -> tuple[str, ...]:
    names = _strings(value, key)
    return parse_gates(names, f"{CONFIG_NAME}: {key}")


def _nss(value: Any, key: str) -> str:
    if isinstance(value, list):
        return ",".join(_strings(value, key))
    return _string(value, key)


def _gconv(value: Any, key: str) -> str:
    if isinstance(value, list):
        return ",".join(_strings(value, key))
    return _string(value, key)


def _library_path(value: Any, key: str) -> str:
    dirs = _strings(value, key)
    for directory in dirs:
        if not directory.startswith(("/", "$ORIGIN")):
            raise _fail(key, f"{directory}: must be an absolute directory")
    return ":".join(dirs)


def _run(value: Any, key: str) -> str:
    import shlex

    if isinstance(value, list):
        return shlex.join(_strings(value, key))
    return _string(value, key)


# The build's keys: name in the file -> (BuildSettings field, checker, is a path to anchor).
BUILD_KEYS: dict[str, tuple[str, Callable[[Any, str], Any], bool]] = {
    "programs": ("programs", _strings, True),
    "sysroot": ("sysroot", _string, True),
    "library-path": ("library_path", _library_path, False),
    "allow-missing": ("allow_missing", _boolean, False),
    "add": ("add", _strings, True),
    "exclude": ("exclude", _strings, False),
    "nss": ("nss", _nss, False),
    "gconv": ("gconv", _gconv, False),
    "locale": ("locale", _strings, False),
    "allow-setuid": ("allow_setuid", _boolean, False),
    "prefix": ("prefix", _string, False),
    "launcher": ("launcher", _one_of(LAUNCHER_MODES), False),
    "launcher-type": ("launcher_type", _one_of(LAUNCHER_TYPES), False),
    "static": ("static", _string, True),
    "run": ("run", _run, False),
}
RELEASE_KEYS = ("name", "version", "output-dir", "formats", "sbom", "fail-on", "target",
                "verify", "sign", "package")
PACKAGE_KEYS: dict[str, tuple[str, Callable[[Any, str], Any]]] = {
    "maintainer": ("maintainer", _string), "description": ("description", _string),
    "licence": ("licence", _string), "homepage": ("homepage", _string),
    "service": ("service", _boolean), "enable-service": ("enable", _boolean)}
TARGET_KEYS = ("arch", "emulator")
VERIFY_KEYS: dict[str, tuple[str, Callable[[Any, str], Any]]] = {
    "roots": ("roots", _strings), "args": ("args", _strings),
    "expect-exit": ("expect_exit", _integer), "expect-output": ("expect_output", _string),
    "env": ("env", _strings), "timeout": ("timeout", _seconds), "program": ("program", _string)}
SIGN_KEYS = ("tool", "key", "passphrase-file")
SIGN_TOOLS = ("gpg", "minisign")


def _anchored(value: Any, base: str) -> Any:
    """A relative path (or each of a tuple) made absolute from the config's directory;
    a program path such as /usr/bin/curl stays as written (`--sysroot` reads it there)."""
    if isinstance(value, tuple):
        return tuple(_anchored(item, base) for item in value)
    return value if os.path.isabs(value) else os.path.normpath(os.path.join(base, value))


def _check_keys(table: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
    for key in table:
        if key not in known:
            raise _fail(f"{where}{key}", f"unknown key; known here: {', '.join(known)}")


def _table(value: Any, key: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise _fail(key, "must be a table")
    return value


def _build_settings(table: Mapping[str, Any], where: str, base: str,
                    defaults: BuildSettings) -> BuildSettings:
    changes = {}
    for key, (attribute, check, is_path) in BUILD_KEYS.items():
        if key in table:
            value = check(table[key], f"{where}{key}")
            changes[attribute] = _anchored(value, base) if is_path else value
    return dataclasses.replace(defaults, **changes)


def parse_config(document: Mapping[str, Any], path: str) -> ReleaseConfig:
    """The checked configuration from a parsed TOML document (pure but for the paths'
    anchor, the directory of `path`)."""
    base = os.path.dirname(os.path.abspath(path))
    _check_keys(document, (*RELEASE_KEYS, *BUILD_KEYS), "")
    defaults = _build_settings(document, "", base, BuildSettings())
    raw_targets = document.get("target", [{"arch": _host_arch()}])
    if not isinstance(raw_targets, list) or not raw_targets:
        raise _fail("target", "must be one or more [[target]] tables")
    targets: list[Target] = []
    for number, raw in enumerate(raw_targets, 1):
        where = f"target[{number}]."
        table = _table(raw, f"target[{number}]")
        _check_keys(table, (*TARGET_KEYS, *BUILD_KEYS), where)
        if "arch" not in table:
            raise _fail(f"{where}arch", "missing: every target names its architecture")
        arch = _arch(table["arch"], f"{where}arch")
        if arch in (t.arch for t in targets):
            raise _fail(f"{where}arch", f"{arch} is already a target")
        settings = _build_settings(table, where, base, defaults)
        if not settings.programs:
            raise _fail(f"{where}programs", "missing: give programs here or at the top")
        emulator = _string(table["emulator"], f"{where}emulator") if "emulator" in table \
            else None
        targets.append(Target(arch, settings, emulator))
    return ReleaseConfig(
        path=path,
        name=_string(document["name"], "name") if "name" in document else None,
        version=_version(document["version"]) if "version" in document else None,
        output_dir=_anchored(_string(document.get("output-dir", "dist"), "output-dir"), base),
        formats=_release_formats(document.get("formats", ["tar.zst"]), "formats"),
        sbom=_sbom(document.get("sbom", list(SBOM_FORMATS)), "sbom"),
        fail_on=_gates(document.get("fail-on", []), "fail-on"),
        targets=tuple(targets),
        verify=_verify(document["verify"], base) if "verify" in document else None,
        sign=_sign(document["sign"], base) if "sign" in document else None,
        package=_package(document.get("package", {}), document.get("version")),
    )


def _version(value: Any) -> str:
    text = _string(value, "version")
    if "/" in text or text.startswith(".") or not text.isprintable() or " " in text:
        raise _fail("version", f"{text!r}: it names files; no '/', spaces or leading dot")
    return text


def _verify(value: Any, base: str) -> VerifySettings:
    table = _table(value, "verify")
    _check_keys(table, tuple(VERIFY_KEYS), "verify.")
    changes: dict[str, Any] = {attribute: check(table[key], f"verify.{key}")
               for key, (attribute, check) in VERIFY_KEYS.items() if key in table}
    settings = VerifySettings(**changes)
    roots = tuple(r if r == "bare" else _anchored(r, base) for r in settings.roots)
    if not roots:
        raise _fail("verify.roots", "must name at least one root (bare or a directory)")
    return dataclasses.replace(settings, roots=roots)


def _package(value: Any, version: Any) -> PackageMeta:
    table = _table(value, "package")
    _check_keys(table, tuple(PACKAGE_KEYS), "package.")
    changes: dict[str, Any] = {attribute: check(table[key], f"package.{key}")
                               for key, (attribute, check) in PACKAGE_KEYS.items()
                               if key in table}
    if isinstance(version, str):
        changes["version"] = version
    return checked_meta(PackageMeta("", **changes), f"{CONFIG_NAME}: package.")


def _sign(value: Any, base: str) -> SigningKey:
    table = _table(value, "sign")
    _check_keys(table, SIGN_KEYS, "sign.")
    for key in ("tool", "key"):
        if key not in table:
            raise _fail(f"sign.{key}", "missing")
    tool = _one_of(SIGN_TOOLS)(table["tool"], "sign.tool")
    key = _string(table["key"], "sign.key")
    if tool == "minisign":  # a file; gpg's is a key id in the user's keyring
        key = _anchored(key, base)
    passphrase = _anchored(_string(table["passphrase-file"], "sign.passphrase-file"), base) \
        if "passphrase-file" in table else None
    return SigningKey(tool, key, passphrase)  # type: ignore[arg-type]  # one of SIGN_TOOLS


def _host_arch() -> str:
    import platform

    machine = platform.machine()
    return ARCH_ALIASES.get(machine, machine)


@dataclass(frozen=True)
class ReleaseOverrides:
    """The command line's options for `bundle release`: each given one wins over the file."""

    targets: tuple[str, ...] = ()  # only these architectures
    output_dir: str | None = None
    name: str | None = None
    version: str | None = None
    prefix: str | None = None
    sbom: tuple[str, ...] | None = None
    fail_on: tuple[str, ...] = ()  # added to the file's
    verify: bool = True
    sign: bool = True


def overridden(config: ReleaseConfig, options: ReleaseOverrides) -> ReleaseConfig:
    """The configuration with the command line's options applied (pure)."""
    targets = config.targets
    if options.targets:
        wanted = [_arch(a, "--target") for a in options.targets]
        missing = [a for a in wanted if a not in (t.arch for t in targets)]
        if missing:
            raise InputError(f"--target {missing[0]}: not a target of {config.path} "
                             f"({', '.join(t.arch for t in targets)})")
        targets = tuple(t for t in targets if t.arch in wanted)
    if options.prefix is not None:
        targets = tuple(dataclasses.replace(
            t, build=dataclasses.replace(t.build, prefix=options.prefix)) for t in targets)
    return dataclasses.replace(
        config, targets=targets,
        output_dir=os.path.abspath(options.output_dir) if options.output_dir
        else config.output_dir,
        name=options.name if options.name is not None else config.name,
        version=_version(options.version) if options.version is not None else config.version,
        package=dataclasses.replace(config.package, version=options.version)
        if options.version is not None else config.package,
        sbom=options.sbom if options.sbom is not None else config.sbom,
        fail_on=tuple(dict.fromkeys((*config.fail_on, *options.fail_on))),
        verify=config.verify if options.verify else None,
        sign=config.sign if options.sign else None)

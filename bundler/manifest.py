"""The artifact's manifest (MANIFEST_PATH): its paths, its records, one loader, one writer.

The build makes a `Manifest` of frozen records and writes it with `dump`; `load` reads it
back into the same records, so what is written and what is read cannot drift apart (a
real artifact's manifest is `dump(load(it))`, byte for byte).

`bundle verify` and `bundle compare` read manifests from artifacts that may be hostile, so
the manifest is data to be checked, never a source of host paths: `load` checks every field
it uses for type and shape and returns frozen records; nothing downstream indexes a dict.
What `load` promises:

- `prefix` is where the bundle is installed on a target, and so (for verify) a path INSIDE
  the sandbox root, never on the host: absolute, normalised (no `//`, `.`, `..`, trailing
  `/`), not `/`, printable without `:`, `;` or `$` (as the build requires), at most 1,024
  characters, and not in the trees the kernel provides (`/proc`, `/sys`, `/dev`), where
  nothing is ever installed.
- the artifact's name and its programs are plain file names (each program has a file
  record `libexec/NAME`); file paths and symlink
  targets are relative, with no `..`, `.` or empty parts (a symlink target may use `..`,
  the unpacker resolves every link inside the artifact); no string holds a control
  character (they reach the terminal), but for the NULs between the strings of a
  recorded string edit (`renamed_strings`: a sealed run of search directories);
- sizes, modes and counts are integers in range; the JSON is at most MAX_BYTES and nested
  no deeper than the parser's recursion limit (JSON nested 100,000 deep is refused, not a
  RecursionError).

Every field the build writes is read (and so checked), also those only `dump` needs.
Unknown keys are tolerated (a newer `bundle` may add some) and optional ones get defaults.
Refusals are one line: `UnsafeArtifactError` (exit 4) for a manifest that is there but
malformed or hostile, `InputError` (exit 2) when there is no manifest at all (not an
artifact).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import posixpath
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, TypeVar

from bundler.errors import InputError, UnsafeArtifactError
from bundler.exhaustive import assert_never
from bundler.inventory import LICENCE_KINDS, GoModule, Package
from bundler.tree import NotRegularFile, read_plain_file

MANIFEST_PATH = ".bundle/manifest.json"
PROGRAM_DIR = "libexec/"  # where every program's file (or its link to one) is
REPORT_PATH = ".bundle/report.md"
LICENSES_DIR = ".bundle/licenses"  # LICENSES_DIR/PACKAGE/copyright: each package's terms
SOURCES_PATH = ".bundle/SOURCES"  # the source packages and versions: the written offer
# The SBOMs: inside the artifact, and beside OUT as OUT+suffix.
SBOM_PATHS = {"cyclonedx": ".bundle/sbom.cdx.json", "spdx": ".bundle/sbom.spdx.json"}
SBOM_SUFFIXES = {"cyclonedx": ".cdx.json", "spdx": ".spdx.json"}
# The kinds of the .bundle/ files the manifest lists: licences and SOURCES, and the SBOMs.
NOTICE_KIND, SBOM_KIND = "notice", "sbom"
BUNDLE_KINDS = frozenset({NOTICE_KIND, SBOM_KIND})
FORMAT_VERSION = 1  # the manifest's format, recorded in it
NOT_LISTED = frozenset({MANIFEST_PATH, REPORT_PATH})  # written after the records
MAX_BYTES = 32 << 20  # a manifest of ~100,000 records; a real one is a few KiB to a few MiB
MAX_RECORDS = 200_000  # as many as the unpacker accepts members
MAX_PATH = 1024
MAX_SIZE = 1 << 40
KERNEL_TREES = ("/proc", "/sys", "/dev")
SHA256 = re.compile(r"[0-9a-f]{64}")
FileType = Literal["file", "symlink"]
T = TypeVar("T")
D = TypeVar("D")
Reader = Callable[[object, str], T]  # checks one value ("where" names it), returns it typed


@dataclass(frozen=True)
class ElfEdit:
    """The new PT_INTERP and DT_RPATH patch.py wrote into a copy (patch_spec.Patch, as recorded)."""

    interpreter: str | None
    rpath: str
    # What wrote the copy (patch.rewriter: "lief 1.0.0-d05b3499b"); its bytes depend on
    # it. None: not recorded (manifests before it).
    rewriter: str | None = None


@dataclass(frozen=True)
class Patched:
    """What was changed in a copy, with the original's identity (for compare's input)."""

    source_sha256: str | None
    source_size: int | None
    elf: ElfEdit | None = None  # None: not patched by patch.py (strings renamed only)
    renamed_strings: tuple[tuple[str, str], ...] = ()  # (original, replacement), sorted


@dataclass(frozen=True)
class Extracted:
    """Where a file's bytes were cut from its source (a locale category in locale-archive)."""

    offset: int
    length: int | None


@dataclass(frozen=True)
class FileRecord:
    path: str  # relative to the artifact's top: lib/libc.so.6
    type: FileType
    kind: str  # program, launcher, library, loader, alias, ... (a newer build may add kinds)
    sha256: str | None = None  # files only
    size: int | None = None  # files only
    mode: int | None = None  # files only: permission bits, 0o755
    target: str | None = None  # symlinks only
    # The build root's path it was copied from (informative); a program or --add object
    # of the user's workspace by file name only (build.recorded_source says why)
    source: str | None = None
    loaded_at_run_time: bool = False
    patched: Patched | None = None
    extracted: Extracted | None = None  # files only: cut out of `source`
    package: str | None = None  # files only: the Package.key it came from (provenance.py)

    @property
    def rewriter(self) -> str | None:
        """What wrote this copy's patched bytes (ElfEdit.rewriter); None: not a copy LIEF
        patched, or not recorded."""
        return self.patched.elf.rewriter if self.patched and self.patched.elf else None

    def written_by(self, rewriter: str) -> FileRecord:
        """This record of a copy LIEF patched, with what wrote it."""
        assert self.patched is not None and self.patched.elf is not None
        return dataclasses.replace(self, patched=dataclasses.replace(
            self.patched, elf=dataclasses.replace(self.patched.elf, rewriter=rewriter)))


def archived_size(files: Iterable[FileRecord]) -> int:
    """The bytes the files hold in the artifact (a symlink holds none)."""
    return sum(f.size or 0 for f in files if f.type == "file")


@dataclass(frozen=True)
class EnvRecord:
    """A variable the launcher exports (see plan.EnvSetting): for the bundled glibc (a
    `path` under the top), or a recipe's or --env's (`value`, `{top}` for the top)."""

    variable: str
    means: str
    path: str
    scoped: bool
    value: str | None = None
    why: str = ""
    scoped_in: tuple[str, ...] = ()  # the files that read the scoped name

    @property
    def template(self) -> str:
        return self.value if self.value is not None else f"{{top}}/{self.path}"


@dataclass(frozen=True)
class NssRecord:
    """The manifest's "nss": what a target may name, and what then must run there (the
    build's nss.NssCoverage, as recorded)."""

    used: bool | None  # whether the programs do NSS lookups (None: not recorded)
    modules: tuple[str, ...] = ()  # libnss_*.so.2 in lib/
    served: tuple[str, ...] = ()
    daemon: tuple[tuple[str, str | None], ...] = ()  # (source, the daemon it needs), sorted
    not_served: tuple[str, ...] = ()


@dataclass(frozen=True)
class Manifest:
    name: str
    arch: str
    prefix: str
    launcher: str
    loader: str  # relative: lib/ld-linux-x86-64.so.2
    glibc: str | None
    min_kernel: str | None
    programs: tuple[str, ...]  # never empty
    missing: tuple[str, ...]
    excluded: tuple[str, ...]
    environment: tuple[EnvRecord, ...]
    runtime_missing: tuple[str, ...]
    files: tuple[FileRecord, ...]  # sorted by path
    format_version: int = FORMAT_VERSION
    launcher_type: str = "sh"  # what bin/NAME is: native or sh (manifests before it: sh)
    nss: NssRecord | None = None
    library_home: str = "lib"  # lib/.bundle-ID: where PT_INTERP and DT_RPATH point
    sealed: tuple[str, ...] = ()  # host paths its glibc never opens (sealing.py)
    unsealed: tuple[str, ...] = ()  # those left open, and why
    tool: str | None = None  # what wrote it: "bundle"
    tool_version: str | None = None
    packages: tuple[Package, ...] = ()  # the packages the files came from, by key
    provenance: str | None = None  # which package database was read, or why none was
    go_modules: tuple[tuple[str, tuple[GoModule, ...]], ...] = ()  # program -> its modules
    # Of runtime_missing, the NSS modules the programs' own lookups would load (the
    # `missing-nss` gate; runtime_loads.py)
    runtime_missing_needed: tuple[str, ...] = ()
    # program -> the arguments its bin/ launcher puts before the caller's ({top}: a recipe's)
    arguments: tuple[tuple[str, tuple[str, ...]], ...] = ()
    recipes: tuple[str, ...] = ()  # the built-in recipes applied (recipes.py)
    carried: tuple[tuple[str, str, str], ...] = ()  # (source, dest, why) of carried trees

    def direct_arguments(self) -> tuple[str, ...]:
        """The arguments a direct start of the first program at the prefix must give
        before the caller's: what its launcher would have given (gpg's --agent-program)."""
        given = dict(self.arguments).get(self.programs[0], ())
        return tuple(a.replace("{top}", self.prefix) for a in given)

    def direct_start(self) -> tuple[str, tuple[str, ...]]:
        """The first program started directly at the prefix (a systemd unit's ExecStart,
        an image's Entrypoint) and the VARIABLE=VALUE settings the launcher would have
        made for the bundled glibc (GCONV_PATH, LOCPATH or their scoped names): the one
        home of what a direct start needs, for service.py and oci.py."""
        program = f"{self.prefix}/libexec/{self.programs[0]}"
        return program, tuple(
            f"{e.variable}={e.value.replace('{top}', self.prefix)}" if e.value is not None
            else f"{e.variable}={self.prefix}/{e.path}" if e.path
            else f"{e.variable}={self.prefix}" for e in self.environment)

    @functools.cached_property
    def _files_by_path(self) -> dict[str, FileRecord]:
        """The records by path, made once: program_record is asked for each program."""
        return {f.path: f for f in self.files}

    def program_record(self, name: str) -> FileRecord:
        """The file record holding program `name`'s bytes: libexec/NAME, or the file its
        link in libexec/ names (a program given under a second name of the same bytes).
        `load` holds every program to one."""
        record = program_file(self._files_by_path, name)
        assert record is not None, name  # parse refuses a manifest without it
        return record

    @property
    def rewriters(self) -> tuple[str, ...]:
        """What wrote the copies patch.py edited (ElfEdit.rewriter), each once, sorted: one
        LIEF for a whole build; none where it was not recorded."""
        return tuple(sorted({f.rewriter for f in self.files if f.rewriter}))

    @property
    def nss_used(self) -> bool | None:
        """Whether the programs do NSS lookups (None: not recorded)."""
        return None if self.nss is None else self.nss.used


def program_file(by_path: dict[str, FileRecord], name: str) -> FileRecord | None:
    """The file record of libexec/NAME, or of the file in libexec/ its link names (one
    step, a plain name: nothing outside libexec/, no chain); None: neither."""
    record = by_path.get(f"{PROGRAM_DIR}{name}")
    if record is not None and record.type == "symlink" and record.target is not None and (
            "/" not in record.target and record.target not in (".", "..")):
        record = by_path.get(f"{PROGRAM_DIR}{record.target}")
    return record if record is not None and record.type == "file" else None


def manifest_file(top: str) -> str:
    return os.path.join(top, *MANIFEST_PATH.split("/"))


def load(top: str, artifact: str) -> Manifest:
    """The manifest of the artifact unpacked at `top` (`artifact` names it in messages)."""
    try:
        data = json.loads(_read(top, artifact))
    except RecursionError:
        raise UnsafeArtifactError(f"{artifact}: its manifest is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise UnsafeArtifactError(f"{artifact}: its manifest is not JSON ({exc})") from None
    try:
        return parse(data, os.path.basename(top))
    except _Malformed as exc:
        raise UnsafeArtifactError(f"{artifact}: manifest {exc}") from None


def dump(manifest: Manifest) -> str:
    """The manifest's JSON text as the artifact holds it: keys sorted, indented by two, a
    final newline. `load` reads every field back: `dump(load(x)) == x` for what the build
    writes."""
    return json.dumps(_written(manifest), indent=2, sort_keys=True) + "\n"


def _written(m: Manifest) -> dict[str, object]:
    return {
        "format_version": m.format_version,
        "tool": m.tool,
        "tool_version": m.tool_version,
        "name": m.name,
        "arch": m.arch,
        "prefix": m.prefix,
        "launcher": m.launcher,
        "launcher_type": m.launcher_type,
        "loader": m.loader,
        "glibc": m.glibc,
        "min_kernel": m.min_kernel,
        "programs": list(m.programs),
        "missing": list(m.missing),
        "excluded": list(m.excluded),
        "environment": [_written_setting(e) for e in m.environment],
        "runtime_missing": list(m.runtime_missing),
        "runtime_missing_needed": list(m.runtime_missing_needed),
        "library_home": m.library_home,
        "sealed": {"sealed": list(m.sealed), "unsealed": list(m.unsealed)},
        "nss": None if m.nss is None else {
            "used": m.nss.used,
            "modules": list(m.nss.modules),
            "served": list(m.nss.served),
            "daemon": dict(m.nss.daemon),
            "not_served": list(m.nss.not_served),
        },
        "files": [_written_file(f) for f in m.files],
        "packages": [dataclasses.asdict(p) for p in m.packages],
        "provenance": m.provenance,
        "go_modules": {program: [_written_module(module) for module in modules]
                       for program, modules in m.go_modules},
        "arguments": {program: list(args) for program, args in m.arguments},
        "recipes": list(m.recipes),
        "carried": [{"source": s, "dest": d, "why": w} for s, d, w in m.carried],
    }


def _written_setting(setting: EnvRecord) -> dict[str, object]:
    """A variable as the build always wrote it; a recipe's or --env's with its value, who
    asked, and where the scoped name is read."""
    written: dict[str, object] = {"variable": setting.variable, "means": setting.means,
                                  "path": setting.path, "scoped": setting.scoped}
    if setting.value is not None:
        written.update(value=setting.value, why=setting.why,
                       scoped_in=list(setting.scoped_in))
    return written


def _written_module(module: GoModule) -> dict[str, object]:
    written = dataclasses.asdict(module)
    written["replaced_by"] = None if module.replaced_by is None else {
        "path": module.replaced_by[0], "version": module.replaced_by[1]}
    return written


def _written_file(record: FileRecord) -> dict[str, object]:
    if record.type == "symlink":
        return {"path": record.path, "type": "symlink", "target": record.target,
                "kind": record.kind}
    if record.type != "file":
        assert_never(record.type)
    return {
        "path": record.path,
        "type": "file",
        "kind": record.kind,
        "sha256": record.sha256,
        "size": record.size,
        "mode": None if record.mode is None else f"{record.mode:04o}",
        "source": record.source,
        "loaded_at_run_time": record.loaded_at_run_time,
        "patched": None if record.patched is None else _written_patch(record.patched),
        "extracted": None if record.extracted is None else dataclasses.asdict(record.extracted),
        "package": record.package,
    }


def _written_patch(patched: Patched) -> dict[str, object]:
    written: dict[str, object] = {"source_sha256": patched.source_sha256,
                                  "source_size": patched.source_size}
    if patched.elf is not None:
        written.update(interpreter=patched.elf.interpreter, rpath=patched.elf.rpath)
        if patched.elf.rewriter is not None:
            written["rewriter"] = patched.elf.rewriter
    if patched.renamed_strings:
        written["renamed_strings"] = dict(patched.renamed_strings)
    return written


def _read(top: str, artifact: str) -> bytes:
    """The manifest's bytes: a regular file (never through a symlink), at most MAX_BYTES."""
    try:
        data, size = read_plain_file(manifest_file(top), MAX_BYTES)
    except FileNotFoundError:
        raise InputError(f"{artifact}: not an artifact (no {MANIFEST_PATH})") from None
    except NotRegularFile:
        raise UnsafeArtifactError(f"{artifact}: {MANIFEST_PATH} is not a regular file") from None
    except OSError as exc:
        raise UnsafeArtifactError(f"{artifact}: {MANIFEST_PATH} cannot be read as a plain "
                                  f"file ({exc.strerror or exc})") from None
    if size > MAX_BYTES or len(data) > MAX_BYTES:
        raise UnsafeArtifactError(f"{artifact}: {MANIFEST_PATH} has {max(size, len(data))} "
                                  f"bytes, over the limit of {MAX_BYTES}")
    return data


class _Malformed(ValueError):
    """A field of the wrong type or shape; the message names the field."""


def parse(data: object, top_name: str) -> Manifest:
    """The typed manifest from parsed JSON; raises _Malformed naming the first bad field."""
    root = _object(data, "")
    name = _optional(root, "name", _plain_name, top_name)
    programs = _list(root, "programs", _plain_name)
    if not programs:
        raise _Malformed("programs: empty")
    files = _list(root, "files", _record, limit=MAX_RECORDS)
    by_path = {f.path: f for f in files}
    for program in programs:
        if program_file(by_path, program) is None:
            raise _Malformed(f"programs: {program!r} has no file record libexec/{program} "
                             "(nor a link there to one in libexec/)")
    packages = _list(root, "packages", _package, required=False, limit=MAX_RECORDS)
    keys = {p.key for p in packages}
    for record in files:
        if record.package is not None and record.package not in keys:
            raise _Malformed(f"files: {record.path}: package {record.package!r} is not in "
                             "packages")
    return Manifest(
        name=name,
        arch=_optional(root, "arch", _text, "unknown"),
        prefix=_field(root, "prefix", _prefix),
        launcher=_field(root, "launcher", _text),
        loader=_field(root, "loader", _relative_path),
        glibc=_optional(root, "glibc", _text, None),
        min_kernel=_optional(root, "min_kernel", _text, None),
        programs=programs,
        missing=_list(root, "missing", _text, required=False),
        excluded=_list(root, "excluded", _text, required=False),
        environment=_list(root, "environment", _environment, required=False),
        runtime_missing=_list(root, "runtime_missing", _text, required=False),
        files=files,
        format_version=_optional(root, "format_version", _count, 1),
        launcher_type=_optional(root, "launcher_type", _text, "sh"),
        nss=_optional(root, "nss", _nss, None),
        library_home=_optional(root, "library_home", _relative_path, "lib"),
        sealed=_list(_sealing(root), "sealed", _text, required=False, where="sealed."),
        unsealed=_list(_sealing(root), "unsealed", _text, required=False, where="sealed."),
        tool=_optional(root, "tool", _text, None),
        tool_version=_optional(root, "tool_version", _text, None),
        packages=packages,
        provenance=_optional(root, "provenance", _text, None),
        go_modules=_pairs(root, "go_modules", _plain_name, _modules, ""),
        runtime_missing_needed=_list(root, "runtime_missing_needed", _text, required=False),
        arguments=_pairs(root, "arguments", _plain_name, _texts, ""),
        recipes=_list(root, "recipes", _text, required=False),
        carried=_list(root, "carried", _carried, required=False),
    )


def _sealing(root: dict) -> dict:
    """The `sealed` object ({"sealed": [...], "unsealed": [...]}); {} when absent."""
    value = root.get("sealed")
    return {} if value is None else _object(value, "sealed")


def prefix_problem(prefix: str) -> str | None:
    """Why `prefix` cannot be an install prefix, or None (the rule in the module doc)."""
    if not prefix.startswith("/"):
        return "not absolute"
    if len(prefix) > MAX_PATH or not prefix.isprintable():
        return "too long or holds a control character"
    if any(c in prefix for c in ":;$"):
        return "holds ':', ';' or '$' (separators or substitutions in DT_RPATH, PT_INTERP)"
    if prefix == "/" or prefix != posixpath.normpath(prefix) or prefix.startswith("//"):
        return "not a normalised directory below / (no '.', '..', '//' or trailing '/')"
    if ".." in prefix.split("/"):
        return "holds '..'"
    for tree in KERNEL_TREES:
        if prefix == tree or prefix.startswith(tree + "/"):
            return f"inside {tree}, which the kernel provides"
    return None


# --- field readers: each checks one value and returns it typed --------------------------


def _field(parent: dict, key: str, read: Reader[T], where: str = "") -> T:
    if key not in parent:
        raise _Malformed(f"{where}{key}: missing")
    return read(parent[key], f"{where}{key}")


def _optional(parent: dict, key: str, read: Reader[T], default: D, where: str = "",
              ) -> T | D:
    value = parent.get(key)
    return default if value is None else read(value, f"{where}{key}")


def _list(parent: dict, key: str, read: Reader[T], required: bool = True,
          limit: int = 10_000, where: str = "") -> tuple[T, ...]:
    if key not in parent or parent[key] is None:
        if required:
            raise _Malformed(f"{where}{key}: missing")
        return ()
    return _items(parent[key], f"{where}{key}", read, limit)


def _items(value: object, where: str, read: Reader[T], limit: int) -> tuple[T, ...]:
    """A JSON list of at most `limit` values, each read by `read`."""
    if not isinstance(value, list):
        raise _Malformed(f"{where}: expected a list, found {_kind(value)}")
    if len(value) > limit:
        raise _Malformed(f"{where}: {len(value)} entries, over the limit of {limit}")
    return tuple(read(item, f"{where}[{index}]") for index, item in enumerate(value))


def _object(value: object, where: str) -> dict:
    if not isinstance(value, dict):
        raise _Malformed(f"{where or 'top level'}: expected an object, found {_kind(value)}")
    return value


def _text(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise _Malformed(f"{where}: expected a string, found {_kind(value)}")
    if len(value) > MAX_PATH * 4 or not value.isprintable():
        raise _Malformed(f"{where}: too long or holds a control character")
    return value


def _plain_name(value: object, where: str) -> str:
    name = _text(value, where)
    if name_problem(name):
        raise _Malformed(f"{where}: {name!r} is not a plain file name")
    return name


def name_problem(name: str) -> str | None:
    """Why `name` cannot be a file name in an artifact's bin/ and libexec/, or None: the
    rule the build holds --name and program names to as well (plan.validate_name)."""
    if not name or "/" in name or name in (".", ".."):
        return "not a plain file name"
    if len(name) > 255 or not name.isprintable():
        return "holds a control character or is too long"
    return None


def _relative_path(value: object, where: str) -> str:
    path = _text(value, where)
    parts = path.split("/")
    if len(path) > MAX_PATH or any(p in ("", ".", "..") or len(p) > 255 for p in parts):
        raise _Malformed(f"{where}: {path!r} is not a relative path inside the artifact")
    return path


def _link_target(value: object, where: str) -> str:
    target = _text(value, where)
    if not target or target.startswith("/") or len(target) > MAX_PATH:
        raise _Malformed(f"{where}: {target!r} is not a relative symlink target")
    return target


def _prefix(value: object, where: str) -> str:
    prefix = _text(value, where)
    problem = prefix_problem(prefix)
    if problem:
        raise _Malformed(f"{where} {prefix!r}: {problem}")
    return prefix


def _count(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SIZE:
        raise _Malformed(f"{where}: expected an integer from 0 to {MAX_SIZE}, found "
                         f"{value!r:.40}")
    return value


def _flag(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise _Malformed(f"{where}: expected true or false, found {_kind(value)}")
    return value


def _mode(value: object, where: str) -> int:
    text = _text(value, where)
    if not re.fullmatch(r"[0-7]{3,4}", text):
        raise _Malformed(f"{where}: {text!r} is not an octal mode like 0755")
    return int(text, 8)


def _sha256(value: object, where: str) -> str:
    text = _text(value, where)
    if not SHA256.fullmatch(text):
        raise _Malformed(f"{where}: not a sha256 in hex")
    return text


def _record(value: object, where: str) -> FileRecord:
    record = _object(value, where)
    where += "."
    path: str = _field(record, "path", _relative_path, where)
    kind: str = _optional(record, "kind", _text, "", where)
    source: str | None = _optional(record, "source", _text, None, where)
    run_time: bool = _optional(record, "loaded_at_run_time", _flag, False, where)
    file_type = _field(record, "type", _text, where)
    if file_type == "symlink":
        return FileRecord(path, "symlink", kind, target=_field(record, "target", _link_target,
                                                               where),
                          source=source, loaded_at_run_time=run_time)
    if file_type != "file":
        raise _Malformed(f"{where}type: {file_type!r}, expected file or symlink")
    return FileRecord(path, "file", kind, sha256=_field(record, "sha256", _sha256, where),
                      size=_field(record, "size", _count, where),
                      mode=_field(record, "mode", _mode, where), source=source,
                      loaded_at_run_time=run_time,
                      patched=_optional(record, "patched", _patched, None, where),
                      extracted=_optional(record, "extracted", _extracted, None, where),
                      package=_optional(record, "package", _text, None, where))


def _package(value: object, where: str) -> Package:
    package = _object(value, where)
    where += "."
    kind = _field(package, "licence_kind", _text, where)
    if kind not in LICENCE_KINDS:
        raise _Malformed(f"{where}licence_kind: {kind!r}, expected one of "
                         f"{', '.join(LICENCE_KINDS)}")
    return Package(
        name=_field(package, "name", _text, where),
        version=_field(package, "version", _text, where),
        architecture=_field(package, "architecture", _text, where),
        source=_field(package, "source", _text, where),
        source_version=_field(package, "source_version", _text, where),
        distro=_optional(package, "distro", _text, None, where),
        licence=_field(package, "licence", _text, where),
        licence_kind=kind,  # checked against LICENCE_KINDS above
        copyright=_optional(package, "copyright", _text, None, where),
        database=_field(package, "database", _text, where),
        maintainer=_optional(package, "maintainer", _text, None, where))


def _modules(value: object, where: str) -> tuple[GoModule, ...]:
    return _items(value, where, _module, MAX_RECORDS)


def _module(value: object, where: str) -> GoModule:
    module = _object(value, where)
    where += "."
    replaced = module.get("replaced_by")
    target = None
    if replaced is not None:
        pair = _object(replaced, f"{where}replaced_by")
        target = (_field(pair, "path", _text, f"{where}replaced_by."),
                  _field(pair, "version", _text, f"{where}replaced_by."))
    return GoModule(path=_field(module, "path", _text, where),
                    version=_field(module, "version", _text, where),
                    sum=_optional(module, "sum", _text, "", where), replaced_by=target,
                    main=_optional(module, "main", _flag, False, where))


def _patched(value: object, where: str) -> Patched:
    patched = _object(value, where)
    where += "."
    elf = None
    if "interpreter" in patched or "rpath" in patched:  # both written, or neither
        elf = ElfEdit(_optional(patched, "interpreter", _text, None, where),
                      _field(patched, "rpath", _text, where),
                      _optional(patched, "rewriter", _text, None, where))
    elif "rewriter" in patched:
        raise _Malformed(f"{where}rewriter: without the rpath it wrote")
    return Patched(_optional(patched, "source_sha256", _sha256, None, where),
                   _optional(patched, "source_size", _count, None, where), elf,
                   _pairs(patched, "renamed_strings", _edited_string, _edited_string, where))


def _extracted(value: object, where: str) -> Extracted:
    extracted = _object(value, where)
    where += "."
    return Extracted(_field(extracted, "offset", _count, where),
                     _optional(extracted, "length", _count, None, where))


def _edited_string(value: object, where: str) -> str:
    """A string edit's side (sealing.py, scoping.py): printable but for the NULs that end
    the strings of a run."""
    if not isinstance(value, str):
        raise _Malformed(f"{where}: expected a string, found {_kind(value)}")
    if len(value) > MAX_PATH * 4 or not value.replace("\0", "").isprintable():
        raise _Malformed(f"{where}: too long or holds a control character")
    return value


def _pairs(parent: dict, key: str, read_name: Reader[str], read: Reader[T], where: str,
           limit: int = 10_000) -> tuple[tuple[str, T], ...]:
    """An optional object of names to values, as (name, value) pairs in the file's order."""
    value = parent.get(key)
    if value is None:
        return ()
    mapping = _object(value, f"{where}{key}")
    if len(mapping) > limit:
        raise _Malformed(f"{where}{key}: {len(mapping)} entries, over the limit of {limit}")
    return tuple((read_name(name, f"{where}{key}"), read(item, f"{where}{key}[{name!r:.40}]"))
                 for name, item in mapping.items())


def _environment(value: object, where: str) -> EnvRecord:
    setting = _object(value, where)
    where += "."
    return EnvRecord(variable=_field(setting, "variable", _text, where),
                     means=_field(setting, "means", _text, where),
                     path=_optional(setting, "path", _text, "", where),
                     scoped=_optional(setting, "scoped", _flag, False, where),
                     value=_optional(setting, "value", _text, None, where),
                     why=_optional(setting, "why", _text, "", where),
                     scoped_in=_list(setting, "scoped_in", _text, required=False,
                                     where=where))


def _texts(value: object, where: str) -> tuple[str, ...]:
    return _items(value, where, _text, 1000)


def _carried(value: object, where: str) -> tuple[str, str, str]:
    item = _object(value, where)
    where += "."
    return (_field(item, "source", _text, where), _field(item, "dest", _text, where),
            _field(item, "why", _text, where))


def _nss(value: object, where: str) -> NssRecord:
    nss = _object(value, where)
    where += "."
    return NssRecord(used=_optional(nss, "used", _flag, None, where),
                     modules=_list(nss, "modules", _text, required=False, where=where),
                     served=_list(nss, "served", _text, required=False, where=where),
                     daemon=_pairs(nss, "daemon", _text, _optional_text, where),
                     not_served=_list(nss, "not_served", _text, required=False, where=where))


def _optional_text(value: object, where: str) -> str | None:
    return None if value is None else _text(value, where)


def _kind(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false",
            int: "an integer", float: "a number", type(None): "null"}.get(type(value),
                                                                         type(value).__name__)

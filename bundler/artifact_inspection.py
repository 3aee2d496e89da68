"""`bundle inspect ARTIFACT`: what an artifact holds, whose it is, and its report's verdict.

An artifact is untrusted input (it may come from a mirror or a colleague): it is read only
through `integrity.unpacked` (a safe unpack, its manifest checked against the tree, exit 4
on any difference), and everything shown comes from the typed manifest (manifest.py) and
from the verdict section of `.bundle/report.md`, which the manifest does not cover and so
is parsed defensively: size-capped, every line printed inert (text.one_line), and a missing
or odd report is "no report", never an error.

`is_artifact` decides by content which command reads a path (the CLI picks); it imports
nothing heavy, so `bundle inspect PROGRAM` starts as fast as before. `read_artifact` is the
one I/O function; `artifact_text` and `artifact_json` are pure renderers of its
`ArtifactFacts`.

The JSON (`--json`) is one object, stable within ARTIFACT_JSON_FORMAT_VERSION:

- `format_version` (this shape's), `tool_version` (the inspecting bundle's), `artifact` (the
  path given), `sha256` (of the archive file; null for a directory), `name`, `arch`,
  `written_by` {`tool`, `tool_version`, `manifest_format_version`, `rewriters` (what wrote
  the copies LIEF patched, "lief 1.0.0-d05b3499b"; [] where not recorded)};
- `programs` [{`name`, `path`, `package`}], `launcher` {`mode`, `type`}, `prefix`,
  `loader`, `glibc`, `min_kernel`, `files` (records), `raw_size` (bytes of the files);
- `libraries` [{`path`, `kind` (library or loader), `package`}]: `package` is a key
  "NAME:ARCH" of `packages`, or null (no package database named it);
- `packages`: null when the artifact does not record them (written before bundle did),
  else [{`name`, `version`, `architecture`, `source`, `source_version`, `distro`,
  `licence`, `licence_kind`, `files`}]; `package_database`: which database was read, or why
  none; `licences`: null, or {`copyleft`, `permissive`, `unknown`}: packages by kind;
- `go_modules` [{`program`, `modules` [{`path`, `version`, `sum`, `replaced_by`
  ({`path`, `version`} or null), `main`}]}];
- `sboms`, `notices`: the paths of the SBOMs and of the licence files and SOURCES carried;
- `missing` (left out with --allow-missing), `runtime_missing` (loaded at run time, not
  bundled);
- `report` {`path`, `found`, `note`}, `verdict`: null ("no report"), or {`headline`,
  `reasons`, `fixes`} as the artifact's report states them (not re-judged here).
"""

from __future__ import annotations

import os
import re
import stat
from collections import Counter
from dataclasses import dataclass

from bundler import __version__
from bundler.inventory import LICENCE_KINDS, GoModule, Package
from bundler.manifest import (
    MANIFEST_PATH,
    NOTICE_KIND,
    PROGRAM_DIR,
    REPORT_PATH,
    SBOM_KIND,
    FileRecord,
    Manifest,
    archived_size,
)
from bundler.text import one_line
from bundler.tree import NotRegularFile, read_plain_file
from bundler.units import human_size

ARTIFACT_JSON_FORMAT_VERSION = 2  # 2: `written_by.rewriters`
ELF_MAGIC = b"\x7fELF"
HEAD_BYTES = 512  # enough for a tar header's "ustar" at 257
REPORT_MAX_BYTES = 1 << 20  # a real report.md is a few KiB; a larger one is not read
LIBRARY_KINDS = ("loader", "library")
VERDICT_HEADING = re.compile(r"## \d+\. Verdict\s*")
HEADLINE = re.compile(r"\*\*(.+)\*\*\s*")
HEADER_WIDTH = len("not bundled")  # the header's values start in one column, whatever it holds
NOT_RECORDED = "not recorded (the artifact was written before bundle recorded packages)"


@dataclass(frozen=True)
class ReportVerdict:
    """The verdict as the artifact's report states it (report_render.report_markdown)."""

    headline: str
    reasons: tuple[str, ...]
    fixes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ArtifactFacts:
    """What `bundle inspect ARTIFACT` shows: the checked manifest and the report's verdict."""

    artifact: str  # the path as given
    sha256: str | None  # of the archive file; None for a directory artifact
    manifest: Manifest
    verdict: ReportVerdict | None  # None: no (readable) report
    report_note: str  # where the verdict came from, or why there is none
    size: int | None = None  # bytes of the archive file (as hashed); None for a directory


# -- which inputs are artifacts (light: no archive or integrity imports) ------------------
def is_artifact(path: str) -> bool:
    """Whether `path` is to be read as an artifact: a directory holding */MANIFEST_PATH (or
    an artifact's top itself), or a regular file that is a tar archive, compressed or not,
    by its bytes. An ELF file, a script, a missing path, a FIFO, ... are not: they go to
    the program's inspection, whose errors name them as before."""
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return False
    if stat.S_ISDIR(info.st_mode):
        return _holds_manifest(path)
    if not stat.S_ISREG(info.st_mode):
        return False  # never opened: a FIFO would block
    head = _head(path)
    if head is None or head.startswith(ELF_MAGIC):
        return False
    from bundler.safe_unpack import archive_kind  # only for what is not ELF

    return archive_kind(head) is not None


def _holds_manifest(directory: str) -> bool:
    if os.path.isfile(os.path.join(directory, MANIFEST_PATH)):
        return True
    try:
        names = os.listdir(directory)
    except OSError:
        return False
    return any(os.path.isfile(os.path.join(directory, name, MANIFEST_PATH)) for name in names)


def _head(path: str) -> bytes | None:
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(descriptor, "rb") as handle:
        try:
            return handle.read(HEAD_BYTES)
        except OSError:
            return None


# -- the one I/O function -----------------------------------------------------------------
def read_artifact(artifact: str) -> ArtifactFacts:
    """The artifact unpacked safely and checked against its manifest (exit 4 on any
    difference, nothing shown), with its report's verdict."""
    from bundler.integrity import unpacked  # keeps `inspect PROGRAM` start-up light

    with unpacked(artifact) as checked:
        verdict, note = _read_verdict(checked.top)
        return ArtifactFacts(artifact, checked.unpacked.sha256, checked.manifest, verdict,
                             note, checked.unpacked.size)


def _read_verdict(top: str) -> tuple[ReportVerdict | None, str]:
    """The verdict of top/REPORT_PATH: a regular file (never through a symlink) of at most
    REPORT_MAX_BYTES, else no report, with the reason."""
    path = os.path.join(top, *REPORT_PATH.split("/"))
    try:
        data, _ = read_plain_file(path, REPORT_MAX_BYTES)
    except FileNotFoundError:
        return None, f"no report ({REPORT_PATH} is absent)"
    except NotRegularFile:
        return None, f"no report ({REPORT_PATH} is not a regular file)"
    except OSError as exc:
        return None, f"no report ({REPORT_PATH} cannot be read: {exc.strerror or exc})"
    if len(data) > REPORT_MAX_BYTES:
        return None, f"no report ({REPORT_PATH} is over {REPORT_MAX_BYTES} bytes, not read)"
    verdict = parse_verdict(data.decode("utf-8", errors="replace"))
    if verdict is None:
        return None, f"no report ({REPORT_PATH} holds no verdict section)"
    return verdict, f"from {REPORT_PATH}, written when the artifact was built"


# -- pure ---------------------------------------------------------------------------------
def parse_verdict(markdown: str) -> ReportVerdict | None:
    """The last "## N. Verdict" section: its `**headline**`, then `- reason` lines, and
    after "Fixes:" the fixes. None when there is no such section or no headline. Lines
    end at "\n" only (report_markdown's): a "\r" or "\u2028" inside one is kept, to be
    shown escaped, not taken as the end of a reason."""
    lines = markdown.split("\n")
    starts = [n for n, line in enumerate(lines) if VERDICT_HEADING.fullmatch(line)]
    if not starts:
        return None
    body = []
    for line in lines[starts[-1] + 1:]:
        if line.startswith("## "):
            break
        if line.strip():
            body.append(line)
    if not body:
        return None
    headline = HEADLINE.fullmatch(body[0])
    if headline is None:
        return None
    reasons: list[str] = []
    fixes: list[str] = []
    into = reasons
    for line in body[1:]:
        if line.strip() == "Fixes:":
            into = fixes
        elif line.startswith("- "):
            into.append(line[2:])
    return ReportVerdict(headline.group(1), tuple(reasons), tuple(fixes))


def licence_counts(packages: tuple[Package, ...]) -> dict[str, int]:
    """Packages by licence kind, every kind present (0 when none)."""
    counts = Counter(p.licence_kind for p in packages)
    return {kind: counts[kind] for kind in LICENCE_KINDS}


def packages_recorded(manifest: Manifest) -> bool:
    """Whether the build recorded provenance (older artifacts have neither field)."""
    return manifest.provenance is not None or bool(manifest.packages)


def _libraries(manifest: Manifest) -> list[FileRecord]:
    return [f for f in manifest.files if f.type == "file" and f.kind in LIBRARY_KINDS]


def _of_kind(manifest: Manifest, kind: str) -> list[str]:
    return [f.path for f in manifest.files if f.type == "file" and f.kind == kind]


def _files_per_package(manifest: Manifest) -> Counter[str]:
    return Counter(f.package for f in manifest.files if f.package is not None)


def _shown_program_path(m: Manifest, name: str) -> str:
    """libexec/NAME, and where it links when a second name of another program's bytes."""
    held_by = m.program_record(name).path
    own = _program_path(name)
    return own if held_by == own else f"{own} -> {held_by.removeprefix(PROGRAM_DIR)}"


def _program_path(name: str) -> str:
    return f"{PROGRAM_DIR}{name}"  # its file, or its link to one (Manifest.program_record)


def artifact_json(facts: ArtifactFacts) -> dict:
    """The documented JSON shape (see the module's docstring)."""
    m = facts.manifest
    recorded = packages_recorded(m)
    packages = {p.key: p for p in m.packages}
    per_package = _files_per_package(m)
    return {
        "format_version": ARTIFACT_JSON_FORMAT_VERSION,
        "tool_version": __version__,
        "artifact": facts.artifact,
        "sha256": facts.sha256,
        "name": m.name,
        "arch": m.arch,
        "written_by": {"tool": m.tool, "tool_version": m.tool_version,
                       "manifest_format_version": m.format_version,
                       "rewriters": list(m.rewriters)},
        "programs": [{"name": name, "path": _program_path(name),
                      "package": m.program_record(name).package}
                     for name in m.programs],
        "launcher": {"mode": m.launcher, "type": m.launcher_type},
        "prefix": m.prefix,
        "loader": m.loader,
        "glibc": m.glibc,
        "min_kernel": m.min_kernel,
        "files": len(m.files),
        "raw_size": archived_size(m.files),
        "libraries": [{"path": f.path, "kind": f.kind, "package": f.package}
                      for f in _libraries(m)],
        "packages": [_package_json(p, per_package[p.key]) for p in packages.values()]
        if recorded else None,
        "package_database": m.provenance,
        "licences": licence_counts(m.packages) if recorded else None,
        "go_modules": [{"program": program, "modules": [_module_json(x) for x in modules]}
                       for program, modules in m.go_modules],
        "sboms": _of_kind(m, SBOM_KIND),
        "notices": _of_kind(m, NOTICE_KIND),
        "missing": list(m.missing),
        "runtime_missing": list(m.runtime_missing),
        "report": {"path": REPORT_PATH, "found": facts.verdict is not None,
                   "note": facts.report_note},
        "verdict": None if facts.verdict is None else {
            "headline": facts.verdict.headline, "reasons": list(facts.verdict.reasons),
            "fixes": list(facts.verdict.fixes)},
    }


def _package_json(package: Package, files: int) -> dict:
    return {"name": package.name, "version": package.version,
            "architecture": package.architecture, "source": package.source,
            "source_version": package.source_version, "distro": package.distro,
            "licence": package.licence, "licence_kind": package.licence_kind,
            "files": files}


def _module_json(module: GoModule) -> dict:
    return {"path": module.path, "version": module.version, "sum": module.sum,
            "replaced_by": None if module.replaced_by is None else {
                "path": module.replaced_by[0], "version": module.replaced_by[1]},
            "main": module.main}


def artifact_text(facts: ArtifactFacts) -> str:
    """What a person reads: the artifact's facts, its files' packages, licences by kind,
    what it carries and the report's verdict; every line inert (text.one_line)."""
    m = facts.manifest
    packages = {p.key: p for p in m.packages}
    recorded = packages_recorded(m)

    def owner(record: FileRecord) -> str:
        if not recorded:
            return "package not recorded"
        package = packages.get(record.package or "")
        if package is None:
            return "unknown package"
        return f"{package.name} {package.version} {package.architecture}"

    writer = " ".join(part for part in (m.tool, m.tool_version) if part) or "an unknown tool"
    lines = [f"{facts.artifact}: artifact {m.name} for {m.arch}, written by {writer} "
             f"(manifest format {m.format_version})"]
    rows = [("sha256", facts.sha256 or "(a directory)"),
            ("programs", ", ".join(m.programs)),
            ("launcher", f"{m.launcher}; bin/ launcher: {m.launcher_type}"),
            ("prefix", m.prefix), ("loader", m.loader),
            ("patched by", ", ".join(m.rewriters) or "not recorded"),
            ("glibc", m.glibc or "unknown"),
            ("min kernel", m.min_kernel or "not recorded"),
            ("files", f"{len(m.files)} ({human_size(archived_size(m.files))} "
                      "raw)")]
    if m.missing:
        rows.append(("left out", ", ".join(m.missing) + " (--allow-missing)"))
    if m.runtime_missing:
        rows.append(("not bundled", ", ".join(m.runtime_missing) + " (loaded at run time)"))
    lines += [f"  {row}" for row in _aligned(rows, HEADER_WIDTH)]

    lines += ["", f"Programs ({len(m.programs)})"]
    lines += [f"  {row}" for row in _aligned(
        [(name, f"{_shown_program_path(m, name)}  {owner(m.program_record(name))}")
         for name in m.programs])]

    libraries = _libraries(m)
    lines += ["", f"Libraries ({len(libraries)}; with the package that installed each)"]
    lines += [f"  {row}" for row in _aligned(
        [(f.path, owner(f) + ("  (loader)" if f.kind == "loader" else ""))
         for f in libraries])]

    lines += ["", *_package_lines(m, recorded)]
    lines += _go_lines(m)
    lines += ["", "Licence files and SBOMs carried"]
    carried = [f"  SBOM    {path}" for path in _of_kind(m, SBOM_KIND)]
    carried += [f"  notice  {path}" for path in _of_kind(m, NOTICE_KIND)]
    lines += carried or ["  none (the artifact was written before bundle carried them)"]
    lines += ["", f"Verdict ({facts.report_note})", *_verdict_lines(facts.verdict)]
    return "\n".join(one_line(line) for line in lines) + "\n"


def _package_lines(m: Manifest, recorded: bool) -> list[str]:
    if not recorded:
        return [f"Packages: {NOT_RECORDED}", f"Licences: {NOT_RECORDED}"]
    counts = licence_counts(m.packages)
    per_package = _files_per_package(m)
    lines = [f"Packages ({len(m.packages)}); licences: "
             + ", ".join(f"{kind} {counts[kind]}" for kind in LICENCE_KINDS)]
    for p in m.packages:
        source = ("" if (p.source, p.source_version) == (p.name, p.version)
                  else f", source {p.source} {p.source_version}")
        files = per_package[p.key]
        lines.append(f"  {p.name} {p.version} {p.architecture}{source}: {p.licence} "
                     f"[{p.licence_kind}; {files} file{'s' if files != 1 else ''}]")
    unpackaged = [f.path for f in m.files
                  if f.type == "file" and f.package is None
                  and f.kind in ("program", *LIBRARY_KINDS)]
    if unpackaged:
        lines.append(f"  not from a package: {', '.join(unpackaged)}")
    lines.append(f"  package database: {m.provenance or 'not recorded'}")
    return lines


def _go_lines(m: Manifest) -> list[str]:
    lines = []
    for program, modules in m.go_modules:
        lines += ["", f"Go modules of {program} ({len(modules)})"]
        for module in modules:
            replaced = ("" if module.replaced_by is None
                        else f" => {module.replaced_by[0]} {module.replaced_by[1]}".rstrip())
            lines.append(f"  {module.path} {module.version}{replaced}"
                         + (" (main)" if module.main else ""))
    return lines


def _verdict_lines(verdict: ReportVerdict | None) -> list[str]:
    if verdict is None:
        return ["  no report"]
    lines = [f"  {verdict.headline}"] + [f"  - {reason}" for reason in verdict.reasons]
    if verdict.fixes:
        lines += ["  fixes:"] + [f"  - {fix}" for fix in verdict.fixes]
    return lines


def _aligned(rows: list[tuple[str, str]], at_least: int = 0) -> list[str]:
    width = max([at_least, *(len(key) for key, _ in rows)])
    return [f"{key:<{width}}  {value}".rstrip() for key, value in rows]

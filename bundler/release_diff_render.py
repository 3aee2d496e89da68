"""`bundle diff`'s two renderings of an `ArtifactDiff` (release_diff.py): pure functions.

The text puts what decides a release first: the verdict, glibc, the packages' versions
(and the Go modules'), then the programs and settings, the sizes, and last the files, one
line per fact, with `.bundle/` (SBOMs, licence files, SOURCES, which follow the files
above) summarised in one line. Every string comes from an untrusted artifact: each line
is made inert (text.one_line) here and the whole is terminal_safe'd by the CLI.

The JSON (`--json`, bundler/schemas/diff.schema.json) is one object, stable within
DIFF_JSON_FORMAT_VERSION: `format_version`, `tool_version`, `old` and `new` {`artifact`,
`name`, `sha256` (null: a directory), `compressed_size` (null: a directory), `files`,
`raw_size`}, `differ`, `verdict` and `glibc` {`changed`, `old`, `new`}, the categories
`packages`, `go_modules`, `programs`, `nss_modules`, `files`, `metadata` {`added`,
`removed`, `changed`}, and `settings` {`changed`: [{`setting`, `old`, `new`}]}.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bundler import __version__
from bundler.inventory import Package
from bundler.manifest import ElfEdit, FileRecord
from bundler.release_diff import (
    METADATA_DIR,
    ArtifactDiff,
    Changed,
    Changes,
    Glibc,
    LinkedModule,
    Side,
    same_original,
)
from bundler.text import one_line
from bundler.units import human_size

if TYPE_CHECKING:
    from bundler.artifact_inspection import ReportVerdict

DIFF_JSON_FORMAT_VERSION = 1
METADATA_NAMES_SHOWN = 4  # .bundle/ files named on its one line; the rest are counted
NOT_RECORDED = "not recorded"


# -- text ---------------------------------------------------------------------------------
def diff_text(d: ArtifactDiff) -> str:
    """Terse and aligned: OLD and NEW, then one line per difference, the most important
    first; "no differences" when the releases hold the same."""
    header = [("old", _side_text(d.old)), ("new", _side_text(d.new))]
    rows = [*_verdict_rows(d), *_glibc_rows(d), *_package_rows(d.packages),
            *_go_module_rows(d.go_modules),
            *_name_rows("program", d.programs), *_name_rows("nss module", d.nss_modules),
            *[(s.label, f"{_or_none(s.old)} -> {_or_none(s.new)}") for s in d.settings],
            *_size_rows(d), *_file_rows(d.files), *_metadata_rows(d.metadata)]
    if not d.differ:
        rows.append(("no differences", "the same files, packages, glibc, settings and "
                                       "verdict"))
    lines = [*_aligned(header), "", *_aligned(rows)]
    return "\n".join(one_line(line) for line in lines) + "\n"


def _side_text(side: Side) -> str:
    where = (f"sha256 {side.sha256}, {human_size(side.compressed_size)}"
             if side.sha256 is not None and side.compressed_size is not None
             else "a directory")
    return f"{side.artifact}  ({side.name}; {where})"


def _verdict_rows(d: ArtifactDiff) -> list[tuple[str, str]]:
    old, new = d.old.verdict, d.new.verdict
    if old == new:
        return []
    rows = []
    if _headline(old) != _headline(new):
        rows.append(("verdict", f"{_headline(old)} -> {_headline(new)}"))
    rows += _added_removed("verdict reason", _items(old, "reasons"), _items(new, "reasons"))
    rows += _added_removed("verdict fix", _items(old, "fixes"), _items(new, "fixes"))
    return rows


def _headline(verdict: ReportVerdict | None) -> str:
    return "no report" if verdict is None else verdict.headline


def _items(verdict: ReportVerdict | None, which: str) -> tuple[str, ...]:
    if verdict is None:
        return ()
    return verdict.reasons if which == "reasons" else verdict.fixes


def _added_removed(label: str, old: tuple[str, ...], new: tuple[str, ...]
                   ) -> list[tuple[str, str]]:
    """Lines no longer there (-), then lines new (+), each in its own order."""
    return ([(label, f"- {line}") for line in old if line not in new]
            + [(label, f"+ {line}") for line in new if line not in old])


def _glibc_rows(d: ArtifactDiff) -> list[tuple[str, str]]:
    if not d.glibc_changed:
        return []
    return [("glibc", f"{_glibc_text(d.old.glibc)} -> {_glibc_text(d.new.glibc)}")]


def _glibc_text(glibc: Glibc) -> str:
    package = ("" if glibc.package is None
               else f" ({glibc.package.name} {glibc.package.version})")
    return f"{glibc.version or 'unknown'}{package}"


def _package_rows(packages: Changes[Package]) -> list[tuple[str, str]]:
    width = max([0, *(len(p.key) for p in (*packages.added, *packages.removed)),
                 *(len(c.key) for c in packages.changed)])
    rows = [("package", f"{c.key:<{width}}  {_package_change(c.old, c.new)}")
            for c in packages.changed]
    rows += [("package added", f"{p.key:<{width}}  {p.version}") for p in packages.added]
    rows += [("package removed", f"{p.key:<{width}}  {p.version}")
             for p in packages.removed]
    return rows


def _package_change(old: Package, new: Package) -> str:
    """The version first; the source package only when it is another one (its version
    follows the binary's), the distro only when nothing else changed (it changes for
    every package at once, which the glibc and version lines already show)."""
    parts = []
    if old.version != new.version:
        parts.append(f"{old.version} -> {new.version}")
    if old.source != new.source or (old.version == new.version
                                    and old.source_version != new.source_version):
        parts.append(f"source {old.source} {old.source_version} -> "
                     f"{new.source} {new.source_version}")
    if old.licence != new.licence:
        parts.append(f"licence {old.licence} -> {new.licence}")
    if not parts:
        parts.append(f"distro {_or_none(old.distro)} -> {_or_none(new.distro)}")
    return "; ".join(parts)


def _go_module_rows(modules: Changes[LinkedModule]) -> list[tuple[str, str]]:
    items = [*modules.added, *modules.removed, *(c.new for c in modules.changed)]
    program_width = max([0, *(len(m.program) for m in items)])
    path_width = max([0, *(len(m.module.path) for m in items)])

    def named(linked: LinkedModule) -> str:
        return f"{linked.program:<{program_width}}  {linked.module.path:<{path_width}}"

    rows = [("go module", f"{named(c.new)}  {_module_change(c)}") for c in modules.changed]
    rows += [("go module added", f"{named(m)}  {_module_version(m)}") for m in modules.added]
    rows += [("go module removed", f"{named(m)}  {_module_version(m)}")
             for m in modules.removed]
    return rows


def _module_version(linked: LinkedModule) -> str:
    module = linked.module
    replaced = ("" if module.replaced_by is None
                else f" => {module.replaced_by[0]} {module.replaced_by[1]}".rstrip())
    return f"{module.version}{replaced}"


def _module_change(change: Changed[LinkedModule]) -> str:
    old, new = change.old.module, change.new.module
    if (old.version, old.replaced_by) != (new.version, new.replaced_by):
        return f"{_module_version(change.old)} -> {_module_version(change.new)}"
    if old.sum != new.sum:  # the same version with other content: worth a look
        return f"{new.version}, another go.sum hash: {old.sum or 'none'} -> {new.sum or 'none'}"
    return f"{new.version}, main module {old.main} -> {new.main}"


def _name_rows(label: str, names: Changes[str]) -> list[tuple[str, str]]:
    """Names added and removed (a changed one is its file's line, not a second one)."""
    return ([(f"{label} added", name) for name in names.added]
            + [(f"{label} removed", name) for name in names.removed])


def _size_rows(d: ArtifactDiff) -> list[tuple[str, str]]:
    old, new = d.old, d.new
    rows = []
    if (old.files, old.raw_size) != (new.files, new.raw_size):
        rows.append(("size", f"{human_size(old.raw_size)} -> {human_size(new.raw_size)} raw "
                             f"({_delta(old.raw_size, new.raw_size)} bytes); files "
                             f"{old.files} -> {new.files}"))
    if old.compressed_size != new.compressed_size:
        rows.append(("compressed", f"{_compressed(old)} -> {_compressed(new)}"))
    return rows


def _compressed(side: Side) -> str:
    if side.compressed_size is None:
        return "a directory"
    return f"{human_size(side.compressed_size)} ({side.compressed_size:,} bytes)"


def _file_rows(files: Changes[FileRecord]) -> list[tuple[str, str]]:
    """Changed, added, removed; last the copies re-edited from the same original, which
    changed only because something else did."""
    width = max([0, *(len(f.path) for f in (*files.added, *files.removed)),
                 *(len(c.key) for c in files.changed)])
    changed = [c for c in files.changed if not same_original(c.old, c.new)]
    re_edited = [c for c in files.changed if same_original(c.old, c.new)]
    rows = [("file changed", f"{c.key:<{width}}  {_file_change(c.old, c.new)}")
            for c in changed]
    rows += [("file added", f"{f.path:<{width}}  {_file_itself(f)}") for f in files.added]
    rows += [("file removed", f"{f.path:<{width}}  {_file_itself(f)}") for f in files.removed]
    rows += [("file re-edited", f"{c.key:<{width}}  {_file_change(c.old, c.new)}; the same "
                                f"original, {_edits(c.old, c.new)}") for c in re_edited]
    return [(label, value.rstrip()) for label, value in rows]


def _edits(old: FileRecord, new: FileRecord) -> str:
    """What the build edited otherwise (same_original holds: both are patched)."""
    a, b = old.patched, new.patched
    assert a is not None and b is not None
    edits = []
    if _pointed_at(a.elf) != _pointed_at(b.elf):
        edits.append("another PT_INTERP/DT_RPATH")
    if a.elf and b.elf and a.elf.rewriter != b.elf.rewriter:  # the same edit, other bytes
        edits.append(f"rewritten by {b.elf.rewriter or 'an unrecorded LIEF'} where it was "
                     f"{a.elf.rewriter or 'an unrecorded LIEF'}")
    if a.renamed_strings != b.renamed_strings:
        edits.append("other renamed strings")
    return " and ".join(edits) if edits else "edited otherwise"


def _pointed_at(edit: ElfEdit | None) -> tuple[str | None, str] | None:
    """Where an edit points the copy (its PT_INTERP and DT_RPATH), whatever wrote it."""
    return None if edit is None else (edit.interpreter, edit.rpath)


def _file_itself(f: FileRecord) -> str:
    if f.type == "symlink":
        return f"symlink -> {f.target}"
    return f"{f.size or 0:,} bytes"


def _file_change(old: FileRecord, new: FileRecord) -> str:
    if old.type != new.type or old.type == "symlink":
        return f"{_file_itself(old)}  ->  {_file_itself(new)}"
    old_size, new_size = old.size or 0, new.size or 0
    if old_size != new_size:
        parts = [f"{old_size:,} -> {new_size:,} bytes ({_delta(old_size, new_size)})"]
    elif old.sha256 != new.sha256:
        parts = [f"{old_size:,} -> {new_size:,} bytes (same size, other sha256)"]
    else:
        parts = [f"{new_size:,} bytes, the same"]
    if old.mode != new.mode:
        parts.append(f"mode {_mode(old.mode)} -> {_mode(new.mode)}")
    return "; ".join(parts)


def _metadata_rows(metadata: Changes[FileRecord]) -> list[tuple[str, str]]:
    """One line: how many .bundle/ files changed, and the first few names."""
    if not metadata:
        return []
    counts = [f"{len(group)} {word}" for group, word in (
        (metadata.changed, "changed"), (metadata.added, "added"),
        (metadata.removed, "removed")) if group]
    names = [c.key for c in metadata.changed] + [f.path for f in metadata.added] + [
        f.path for f in metadata.removed]
    shown = [name.removeprefix(METADATA_DIR) for name in names[:METADATA_NAMES_SHOWN]]
    more = len(names) - len(shown)
    return [(METADATA_DIR, f"{', '.join(counts)} (SBOMs, licences, SOURCES): "
                           f"{', '.join(shown)}{f' and {more} more' if more else ''}")]


def _delta(old: int, new: int) -> str:
    return f"{new - old:+,}" if new != old else "same"


def _mode(mode: int | None) -> str:
    return NOT_RECORDED if mode is None else f"{mode:04o}"


def _or_none(value: str | None) -> str:
    return NOT_RECORDED if value is None else value


def _aligned(rows: list[tuple[str, str]]) -> list[str]:
    width = max([0, *(len(label) for label, _ in rows)])
    return [f"{label:<{width}}  {value}".rstrip() for label, value in rows]


# -- JSON ---------------------------------------------------------------------------------
def diff_json(d: ArtifactDiff) -> dict:
    """The documented shape (the module's docstring; diff.schema.json)."""
    return {
        "format_version": DIFF_JSON_FORMAT_VERSION,
        "tool_version": __version__,
        "old": _side_json(d.old),
        "new": _side_json(d.new),
        "differ": d.differ,
        "verdict": {"changed": d.verdict_changed, "old": _verdict_json(d.old.verdict),
                    "new": _verdict_json(d.new.verdict)},
        "glibc": {"changed": d.glibc_changed, "old": _glibc_json(d.old.glibc),
                  "new": _glibc_json(d.new.glibc)},
        "packages": {
            "added": [_package_json(p) for p in d.packages.added],
            "removed": [_package_json(p) for p in d.packages.removed],
            "changed": [{"package": c.key, "old": _package_json(c.old),
                         "new": _package_json(c.new)} for c in d.packages.changed]},
        "go_modules": {
            "added": [_module_json(m) for m in d.go_modules.added],
            "removed": [_module_json(m) for m in d.go_modules.removed],
            "changed": [{"program": c.new.program, "path": c.new.module.path,
                         "old": _module_json(c.old), "new": _module_json(c.new)}
                        for c in d.go_modules.changed]},
        "programs": _names_json(d.programs),
        "nss_modules": _names_json(d.nss_modules),
        "files": _files_json(d.files),
        "metadata": _files_json(d.metadata),
        "settings": {"changed": [{"setting": s.field, "old": s.old, "new": s.new}
                                 for s in d.settings]},
    }


def _side_json(side: Side) -> dict:
    return {"artifact": side.artifact, "name": side.name, "sha256": side.sha256,
            "compressed_size": side.compressed_size, "files": side.files,
            "raw_size": side.raw_size}


def _verdict_json(verdict: ReportVerdict | None) -> dict | None:
    if verdict is None:
        return None
    return {"headline": verdict.headline, "reasons": list(verdict.reasons),
            "fixes": list(verdict.fixes)}


def _glibc_json(glibc: Glibc) -> dict:
    return {"version": glibc.version,
            "package": None if glibc.package is None else _package_json(glibc.package)}


def _package_json(p: Package) -> dict:
    return {"name": p.name, "architecture": p.architecture, "version": p.version,
            "source": p.source, "source_version": p.source_version, "distro": p.distro,
            "licence": p.licence}


def _module_json(linked: LinkedModule) -> dict:
    module = linked.module
    return {"program": linked.program, "path": module.path, "version": module.version,
            "sum": module.sum, "replaced_by": None if module.replaced_by is None else {
                "path": module.replaced_by[0], "version": module.replaced_by[1]},
            "main": module.main}


def _names_json(names: Changes[str]) -> dict:
    return {"added": list(names.added), "removed": list(names.removed),
            "changed": [c.key for c in names.changed]}


def _files_json(files: Changes[FileRecord]) -> dict:
    return {"added": [_file_json(f) for f in files.added],
            "removed": [_file_json(f) for f in files.removed],
            "changed": [{"path": c.key, "same_original": same_original(c.old, c.new),
                         "old": _file_json(c.old), "new": _file_json(c.new)}
                        for c in files.changed]}


def _file_json(f: FileRecord) -> dict:
    return {"path": f.path, "type": f.type, "kind": f.kind, "size": f.size,
            "sha256": f.sha256, "mode": None if f.mode is None else f"{f.mode:04o}",
            "target": f.target}

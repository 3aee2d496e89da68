"""artifact_inspection's pure parts on small records: the verdict parser, the text and JSON
renderers (also for an artifact written before packages were recorded, which a real build
can no longer make), and which paths count as artifacts.

tests/integration/test_inspect_artifact.py checks the same against real artifacts."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from bundler.artifact_inspection import (
    ARTIFACT_JSON_FORMAT_VERSION,
    ArtifactFacts,
    ReportVerdict,
    artifact_json,
    artifact_text,
    is_artifact,
    licence_counts,
    parse_verdict,
)
from bundler.inventory import GoModule, Package
from bundler.manifest import MANIFEST_PATH, ElfEdit, FileRecord, Manifest, Patched

SHA = "ab" * 32
JSON_KEYS = {"format_version", "tool_version", "artifact", "sha256", "name", "arch",
             "written_by", "programs", "launcher", "prefix", "loader", "glibc", "min_kernel",
             "files", "raw_size", "libraries", "packages", "package_database", "licences",
             "go_modules", "sboms", "notices", "missing", "runtime_missing", "report",
             "verdict"}
REPORT = """# bundle report: prog

## 6. Licences and sources

```text
**not a headline** - not a reason
```

## 7. Verdict

**ship the artifact**

- the artifact brings glibc 2.36
- no static build was given

Fixes:

- build it with CGO_ENABLED=0
"""


def file(path: str, kind: str, package: str | None = None, size: int = 100) -> FileRecord:
    return FileRecord(path, "file", kind, sha256=SHA, size=size, mode=0o755, package=package)


def package(name: str, kind: str, licence: str = "MIT", source: str | None = None) -> Package:
    return Package(name=name, version="1.0-1", architecture="amd64", source=source or name,
                   source_version="1.0-1", distro="debian-12", licence=licence,
                   licence_kind=kind,  # type: ignore[arg-type]
                   copyright=f"/usr/share/doc/{name}/copyright", database="/var/lib/dpkg")


def manifest(*files: FileRecord, **changes: object) -> Manifest:
    fields: dict = {
        "name": "prog", "arch": "x86-64", "prefix": "/opt/prog", "launcher": "loader",
        "loader": "lib/ld-linux-x86-64.so.2", "glibc": "2.36", "min_kernel": "Linux 3.2.0",
        "programs": ("prog",), "missing": (), "excluded": (), "environment": (),
        "runtime_missing": (), "tool": "bundle", "tool_version": "0.1.0",
        "launcher_type": "native",
        "files": files or (file("bin/prog", "launcher"), file("libexec/prog", "program"),
                           file("lib/ld-linux-x86-64.so.2", "loader"),
                           file("lib/libc.so.6", "library")),
    }
    fields.update(changes)
    return Manifest(**fields)


def with_packages() -> Manifest:
    """libc6 (copyleft, 2 files), libz (permissive), libodd (unknown), a program from no
    package, SBOMs and notices."""
    return manifest(
        file(".bundle/SOURCES", "notice"),
        file(".bundle/licenses/libc6/copyright", "notice"),
        file(".bundle/sbom.cdx.json", "sbom"),
        file("bin/prog", "launcher"),
        file("lib/ld-linux-x86-64.so.2", "loader", "libc6:amd64"),
        file("lib/libc.so.6", "library", "libc6:amd64"),
        file("lib/libodd.so.1", "library", "libodd:amd64"),
        file("lib/libz.so.1", "library", "zlib1g:amd64"),
        file("libexec/prog", "program"),
        packages=(package("libc6", "copyleft", "LGPL-2.1-or-later", source="glibc"),
                  package("libodd", "unknown", "NOASSERTION"),
                  package("zlib1g", "permissive", "Zlib")),
        provenance="dpkg database /var/lib/dpkg")


def facts(m: Manifest, verdict: ReportVerdict | None = None,
          note: str = "from .bundle/report.md") -> ArtifactFacts:
    return ArtifactFacts("out/prog.tar.zst", "cd" * 32, m, verdict, note)


# -- the verdict parser -------------------------------------------------------------------
def test_verdict_is_the_last_verdict_section() -> None:
    verdict = parse_verdict(REPORT)
    assert verdict == ReportVerdict("ship the artifact",
                                    ("the artifact brings glibc 2.36", "no static build was given"),
                                    ("build it with CGO_ENABLED=0",))
    earlier = "## 7. Verdict\n\n**old**\n\n- gone\n\n"
    assert parse_verdict(earlier + REPORT) == verdict


def test_only_newlines_end_a_line() -> None:
    verdict = parse_verdict("## 7. Verdict\n\n**ship\rit**\n\n- one\rtwo\u2028three\n")
    assert verdict == ReportVerdict("ship\rit", ("one\rtwo\u2028three",))


@pytest.mark.parametrize("text", [
    "", "# bundle report\n\n## 1. The input\n", "## 7. Verdict\n\n", "## 7. Verdict\n\nship\n",
    "## 7. Verdict\n\n- a reason without a headline\n", "\0\xff" * 100,
    "## 7. Verdict\n\n## 8. Something else\n\n**not this section's**\n",
], ids=["empty", "no-verdict", "empty-section", "plain-headline", "reasons-only", "binary",
        "next-section"])
def test_odd_reports_have_no_verdict(text: str) -> None:
    assert parse_verdict(text) is None


# -- the renderers ------------------------------------------------------------------------
def test_packages_not_recorded_are_said_so() -> None:
    old = facts(manifest())
    text = artifact_text(old)
    assert "Packages: not recorded" in text and "Licences: not recorded" in text
    assert "  lib/libc.so.6             package not recorded" in text.splitlines()
    assert "unknown package" not in text  # not recorded is not the same as unknown
    assert "Licence files and SBOMs carried\n  none" in text
    data = artifact_json(old)
    assert data["packages"] is None and data["licences"] is None
    assert data["package_database"] is None
    assert [lib["package"] for lib in data["libraries"]] == [None, None]


def test_licences_are_counted_by_kind() -> None:
    m = with_packages()
    assert licence_counts(m.packages) == {"copyleft": 1, "permissive": 1, "unknown": 1}
    assert licence_counts(()) == {"copyleft": 0, "permissive": 0, "unknown": 0}
    text = artifact_text(facts(m))
    assert "Packages (3); licences: copyleft 1, permissive 1, unknown 1" in text
    assert ("libc6 1.0-1 amd64, source glibc 1.0-1: LGPL-2.1-or-later [copyleft; 2 files]"
            in text)
    assert "zlib1g 1.0-1 amd64: Zlib [permissive; 1 file]" in text
    assert "not from a package: libexec/prog" in text
    assert "package database: dpkg database /var/lib/dpkg" in text
    data = artifact_json(facts(m))
    assert data["licences"] == {"copyleft": 1, "permissive": 1, "unknown": 1}
    assert {p["name"]: p["files"] for p in data["packages"]} == {
        "libc6": 2, "libodd": 1, "zlib1g": 1}


def test_text_shows_each_library_with_its_package() -> None:
    text = artifact_text(facts(with_packages()))
    lines = text.splitlines()
    assert "  lib/ld-linux-x86-64.so.2  libc6 1.0-1 amd64  (loader)" in lines
    assert "  lib/libz.so.1             zlib1g 1.0-1 amd64" in lines
    assert "  prog  libexec/prog  unknown package" in lines  # recorded, but no package
    assert "Libraries (4; with the package that installed each)" in lines
    assert "  launcher     loader; bin/ launcher: native" in lines
    assert "  SBOM    .bundle/sbom.cdx.json" in lines
    assert "  notice  .bundle/licenses/libc6/copyright" in lines


def test_json_has_the_documented_shape() -> None:
    verdict = ReportVerdict("ship the artifact", ("a reason",))
    data = artifact_json(facts(with_packages(), verdict))
    assert set(data) == JSON_KEYS
    assert data["format_version"] == ARTIFACT_JSON_FORMAT_VERSION
    assert data["launcher"] == {"mode": "loader", "type": "native"}
    assert data["programs"] == [{"name": "prog", "path": "libexec/prog", "package": None}]
    assert data["libraries"][0] == {"path": "lib/ld-linux-x86-64.so.2", "kind": "loader",
                                    "package": "libc6:amd64"}
    assert data["sboms"] == [".bundle/sbom.cdx.json"]
    assert data["notices"] == [".bundle/SOURCES", ".bundle/licenses/libc6/copyright"]
    assert data["raw_size"] == 900 and data["files"] == 9
    assert data["verdict"] == {"headline": "ship the artifact", "reasons": ["a reason"],
                               "fixes": []}
    assert data["report"]["found"] is True
    assert json.loads(json.dumps(data)) == data


def test_what_wrote_the_patched_copies_is_shown() -> None:
    """The copies LIEF patched name the LIEF that wrote them (their bytes depend on it);
    the artifact says it once, and plainly where an older bundle did not record it."""
    def patched(path: str, kind: str, rewriter: str | None) -> FileRecord:
        return dataclasses.replace(file(path, kind), patched=Patched(
            SHA, 90, ElfEdit("/opt/prog/lib/ld-linux-x86-64.so.2", "$ORIGIN/../lib",
                             rewriter)))

    lief = "lief 1.0.0-d05b3499b"
    files = (file("bin/prog", "launcher"), patched("libexec/prog", "program", lief),
             patched("lib/libz.so.1", "library", lief),
             file("lib/ld-linux-x86-64.so.2", "loader"))
    m = manifest(*files)
    assert m.rewriters == (lief,)
    assert f"  patched by   {lief}" in artifact_text(facts(m)).splitlines()
    assert artifact_json(facts(m))["written_by"]["rewriters"] == [lief]
    older = manifest(*(dataclasses.replace(f, patched=Patched(SHA, 90, ElfEdit(
        "/opt/prog/lib/ld-linux-x86-64.so.2", "$ORIGIN/../lib"))) if f.patched else f
                       for f in files))
    assert "  patched by   not recorded" in artifact_text(facts(older)).splitlines()
    assert artifact_json(facts(older))["written_by"]["rewriters"] == []


def test_no_report_is_said_plainly() -> None:
    note = "no report (.bundle/report.md is absent)"
    text = artifact_text(facts(manifest(), None, note))
    assert text.endswith(f"Verdict ({note})\n  no report\n")
    data = artifact_json(facts(manifest(), None, note))
    assert data["verdict"] is None and data["report"] == {
        "path": ".bundle/report.md", "found": False, "note": note}


def test_hostile_report_lines_are_inert() -> None:
    verdict = ReportVerdict("\x1b]0;owned\x07ship", ("\x1b[2Jclear\rme",), ("\u202efix",))
    text = artifact_text(facts(manifest(), verdict))
    assert not any(c in text for c in "\x1b\x07\r\u202e")
    assert "\\x1b]0;owned\\x07ship" in text and "\\x1b[2Jclear\\rme" in text
    assert "\\u202efix" in text


def test_go_modules_are_listed() -> None:
    modules = (GoModule("example.com/agent", "(devel)", "", main=True),
               GoModule("github.com/mattn/go-sqlite3", "v1.14.16", "h1:x",
                        replaced_by=("/usr/share/gocode/src/github.com/mattn/go-sqlite3", "")))
    m = manifest(go_modules=(("prog", modules),))
    text = artifact_text(facts(m))
    assert "Go modules of prog (2)" in text
    assert "  example.com/agent (devel) (main)" in text
    assert ("  github.com/mattn/go-sqlite3 v1.14.16 => "
            "/usr/share/gocode/src/github.com/mattn/go-sqlite3\n") in text
    (entry,) = artifact_json(facts(m))["go_modules"]
    assert entry["program"] == "prog"
    assert entry["modules"][1]["replaced_by"] == {
        "path": "/usr/share/gocode/src/github.com/mattn/go-sqlite3", "version": ""}


# -- which paths are artifacts --------------------------------------------------------------
def _tar(path: Path, mode: str) -> Path:
    with tarfile.open(path, mode) as tar:
        info = tarfile.TarInfo("prog/.bundle/manifest.json")
        data = b"{}"
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


def test_artifacts_are_told_by_content(tmp_path: Path) -> None:
    assert is_artifact(str(_tar(tmp_path / "a.tar", "w")))
    assert is_artifact(str(_tar(tmp_path / "named-like-a-program", "w:gz")))
    assert is_artifact(str(_tar(tmp_path / "a.tar.xz", "w:xz")))
    top = tmp_path / "tree" / "prog"
    (top / ".bundle").mkdir(parents=True)
    (top / MANIFEST_PATH).write_text("{}")
    assert is_artifact(str(tmp_path / "tree")) and is_artifact(str(top))


def test_programs_and_other_things_are_not_artifacts(tmp_path: Path) -> None:
    (tmp_path / "text").write_text("just text\n")
    (tmp_path / "looks.tar.gz").write_text("not gzip\n")
    (tmp_path / "empty").mkdir()
    os.mkfifo(tmp_path / "fifo")  # must not block: it is never opened
    for path in ("/bin/sh", tmp_path / "text", tmp_path / "looks.tar.gz", tmp_path / "empty",
                 tmp_path / "fifo", tmp_path / "missing", "bad\0path"):
        assert not is_artifact(str(path)), path

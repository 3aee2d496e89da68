"""release_diff's pure function and its renderings on hand-made facts: what counts as a
change, where each goes, the order of the text, and the JSON against its schema.

tests/integration/test_release_diff.py checks the same on artifacts built here (this file has
another name: pytest collects tests/ as one namespace)."""

from __future__ import annotations

import dataclasses
import json

import pytest
from support.schemas import validate

from bundler.artifact_inspection import ArtifactFacts, ReportVerdict
from bundler.inventory import GoModule, Package
from bundler.manifest import ElfEdit, FileRecord, Manifest, NssRecord, Patched
from bundler.release_diff import LIBRARY_HOME_KEY, SETTINGS, ArtifactDiff, diff_artifacts
from bundler.release_diff_render import DIFF_JSON_FORMAT_VERSION, diff_json, diff_text
from bundler.schemas import load_schema

HOME = "lib/.bundle-0123456789abcdef"
SHIP = ReportVerdict("ship the artifact", ("the artifact brings glibc 2.36",))


def sha(byte: str) -> str:
    return byte * 64


def file(path: str, kind: str = "library", *, content: str = "a", size: int = 100,
         package: str | None = None, mode: int = 0o644) -> FileRecord:
    return FileRecord(path, "file", kind, sha256=sha(content), size=size, mode=mode,
                      package=package)


def package(name: str, version: str = "1.0-1", *, source: str | None = None,
            licence: str = "MIT") -> Package:
    return Package(name=name, version=version, architecture="amd64", source=source or name,
                   source_version=version, distro="debian-12", licence=licence,
                   licence_kind="permissive", copyright=f"/usr/share/doc/{name}/copyright",
                   database="/var/lib/dpkg")


LIBC6 = package("libc6", "2.36-9+deb12u14", source="glibc", licence="LGPL-2.1-or-later")
FILES = (
    file(".bundle/SOURCES", "notice"),
    file(".bundle/sbom.cdx.json", "sbom"),
    file("bin/prog", "launcher", mode=0o755),
    FileRecord(HOME, "symlink", "alias", target="."),
    file("lib/ld-linux-x86-64.so.2", "loader", package="libc6:amd64"),
    file("lib/libc.so.6", package="libc6:amd64", size=2_000_000),
    file("lib/libnss_files.so.2", package="libc6:amd64"),
    file("libexec/prog", "program", size=20_320, mode=0o755),
)


def manifest(files: tuple[FileRecord, ...] = FILES, **changes: object) -> Manifest:
    fields: dict = {
        "name": "prog", "arch": "x86-64", "prefix": "/opt/prog", "launcher": "loader",
        "loader": "lib/ld-linux-x86-64.so.2", "glibc": "2.36", "min_kernel": "Linux 3.2.0",
        "programs": ("prog",), "missing": (), "excluded": (), "environment": (),
        "runtime_missing": (), "tool": "bundle", "tool_version": "0.1.0",
        "launcher_type": "native", "library_home": HOME, "files": files,
        "packages": (LIBC6,), "nss": NssRecord(True, ("libnss_files.so.2",)),
    }
    fields.update(changes)
    return Manifest(**fields)


def facts(m: Manifest, verdict: ReportVerdict | None = SHIP, *,
          artifact: str = "v1/prog.tar.zst", archive: bool = True) -> ArtifactFacts:
    return ArtifactFacts(artifact, sha("c") if archive else None, m, verdict,
                         "from .bundle/report.md", 900_000 if archive else None)


def replaced(path: str, record: FileRecord | None) -> tuple[FileRecord, ...]:
    """FILES with the record at `path` replaced by `record` (or dropped), sorted."""
    kept = [f for f in FILES if f.path != path] + ([record] if record else [])
    return tuple(sorted(kept, key=lambda f: f.path))


def text_lines(d: ArtifactDiff) -> list[str]:
    return diff_text(d).splitlines()


def labelled(d: ArtifactDiff, label: str) -> list[str]:
    """The values of the text's lines whose label is `label` (the columns are aligned)."""
    lines = text_lines(d)
    body = lines[lines.index("") + 1:]
    return [line[len(label):].strip() for line in body
            if line.startswith(label + "  ")]


def check_schema(data: dict) -> None:
    validate("diff", data)


# -- what counts as a difference ----------------------------------------------------------
def test_the_same_release_has_no_differences() -> None:
    d = diff_artifacts(facts(manifest()), facts(manifest(), artifact="v2/prog.tar.zst"))
    assert not d.differ
    assert not (d.files or d.metadata or d.packages or d.programs or d.nss_modules)
    assert d.settings == () and not d.verdict_changed and not d.glibc_changed
    lines = text_lines(d)
    assert lines[0].startswith("old  v1/prog.tar.zst  (prog; sha256 ")
    assert lines[1].startswith("new  v2/prog.tar.zst  (prog; sha256 ")
    assert lines[2:] == ["", "no differences  the same files, packages, glibc, settings and "
                             "verdict"]
    data = diff_json(d)
    assert data["differ"] is False and data["format_version"] == DIFF_JSON_FORMAT_VERSION
    check_schema(data)


def test_an_archive_and_its_directory_hold_the_same_release() -> None:
    """The container's sha256 and compressed size are shown, never a difference."""
    d = diff_artifacts(facts(manifest()), facts(manifest(), artifact="v1/tree/",
                                                archive=False))
    assert not d.differ
    assert labelled(d, "compressed") == ["878.9 KiB (900,000 bytes) -> a directory"]
    assert text_lines(d)[1] == "new  v1/tree/  (prog; a directory)"
    assert "no differences" in diff_text(d)
    data = diff_json(d)
    assert data["new"]["sha256"] is None and data["new"]["compressed_size"] is None
    check_schema(data)


def test_a_changed_program_is_listed_with_both_sizes() -> None:
    new = manifest(replaced("libexec/prog", file("libexec/prog", "program", content="b",
                                                  size=20_336, mode=0o755)))
    d = diff_artifacts(facts(manifest()), facts(new))
    assert d.differ
    assert [c.key for c in d.files.changed] == ["libexec/prog"]
    assert (d.files.changed[0].old.size, d.files.changed[0].new.size) == (20_320, 20_336)
    assert [c.key for c in d.programs.changed] == ["prog"]
    assert labelled(d, "file changed") == ["libexec/prog  20,320 -> 20,336 bytes (+16)"]
    assert labelled(d, "size") == ["1.9 MiB -> 1.9 MiB raw (+16 bytes); files 8 -> 8"]
    data = diff_json(d)
    assert data["files"]["changed"] == [{
        "path": "libexec/prog", "same_original": False,
        "old": {"path": "libexec/prog", "type": "file", "kind": "program", "size": 20_320,
                "sha256": sha("a"), "mode": "0755", "target": None},
        "new": {"path": "libexec/prog", "type": "file", "kind": "program", "size": 20_336,
                "sha256": sha("b"), "mode": "0755", "target": None}}]
    assert data["programs"] == {"added": [], "removed": [], "changed": ["prog"]}
    check_schema(data)


def test_same_size_other_bytes_and_a_mode_are_changes() -> None:
    def libc(content: str, mode: int) -> Manifest:
        return manifest(replaced("lib/libc.so.6", file("lib/libc.so.6", content=content,
                                                        size=2_000_000, mode=mode,
                                                        package="libc6:amd64")))

    d = diff_artifacts(facts(manifest()), facts(libc("b", 0o644)))
    assert labelled(d, "file changed") == [
        "lib/libc.so.6  2,000,000 -> 2,000,000 bytes (same size, other sha256)"]
    assert "size" not in {line.split()[0] for line in text_lines(d) if line}
    d = diff_artifacts(facts(manifest()), facts(libc("a", 0o755)))
    assert labelled(d, "file changed") == [
        "lib/libc.so.6  2,000,000 bytes, the same; mode 0644 -> 0755"]


def test_added_and_removed_files_and_nss_modules() -> None:
    plugin = file("lib/libplug.so", size=15_016)
    files = tuple(sorted((*replaced("lib/libnss_files.so.2", None), plugin),
                         key=lambda f: f.path))
    new = manifest(files, nss=NssRecord(True, ()))
    d = diff_artifacts(facts(manifest()), facts(new))
    assert d.files.added == (plugin,)
    assert [f.path for f in d.files.removed] == ["lib/libnss_files.so.2"]
    assert d.nss_modules.removed == ("libnss_files.so.2",)
    assert labelled(d, "file added") == ["lib/libplug.so         15,016 bytes"]
    assert labelled(d, "file removed") == ["lib/libnss_files.so.2  100 bytes"]
    assert labelled(d, "nss module removed") == ["libnss_files.so.2"]
    check_schema(diff_json(d))


def test_a_program_edited_from_the_same_original_is_re_edited_and_last() -> None:
    """A library changed: lib/.bundle-ID is renamed, and the program, patched from the
    same original, points at the new one. That line is not the news; the library is."""
    def program(home: str, content: str, original: str = "e") -> FileRecord:
        edit = ElfEdit(f"/opt/prog/{home}/ld-linux-x86-64.so.2", f"$ORIGIN/../{home}")
        return dataclasses.replace(
            file("libexec/prog", "program", content=content, size=20_320, mode=0o755),
            patched=Patched(sha(original), 15_960, edit))

    other = "lib/.bundle-fedcba9876543210"
    old = manifest(replaced("libexec/prog", program(HOME, "a")))
    new_files = [f for f in replaced("libexec/prog", program(other, "b")) if f.path != HOME]
    new_files += [FileRecord(other, "symlink", "alias", target="."),
                  file("lib/libz.so.1", size=120_000)]
    new = manifest(tuple(sorted(new_files, key=lambda f: f.path)), library_home=other)
    d = diff_artifacts(facts(old), facts(new))
    assert labelled(d, "file changed") == []
    assert labelled(d, "file re-edited") == [
        "libexec/prog   20,320 -> 20,320 bytes (same size, other sha256); the same original, "
        "another PT_INTERP/DT_RPATH"]
    labels = [line.split("  ")[0] for line in text_lines(d)[3:]]
    assert labels == ["library home", "size", "file added", "file re-edited"]
    data = diff_json(d)
    assert [(c["path"], c["same_original"]) for c in data["files"]["changed"]] == [
        ("libexec/prog", True)]
    check_schema(data)
    # Another original is a change, whatever the edits.
    d = diff_artifacts(facts(old), facts(manifest(replaced("libexec/prog",
                                                           program(HOME, "b", "f")))))
    assert labelled(d, "file changed") == [
        "libexec/prog  20,320 -> 20,320 bytes (same size, other sha256)"]
    assert diff_json(d)["files"]["changed"][0]["same_original"] is False


def test_the_same_edit_by_another_lief_says_which_wrote_each() -> None:
    """Same original, same PT_INTERP and DT_RPATH, other bytes: another LIEF release wrote
    the copy (each lays its segment out its own way); the diff names both, not "edited
    otherwise"."""
    def program(content: str, rewriter: str | None) -> FileRecord:
        edit = ElfEdit(f"/opt/prog/{HOME}/ld-linux-x86-64.so.2", f"$ORIGIN/../{HOME}",
                       rewriter)
        return dataclasses.replace(
            file("libexec/prog", "program", content=content, size=20_320, mode=0o755),
            patched=Patched(sha("e"), 15_960, edit))

    def re_edited(old: str | None, new: str | None) -> list[str]:
        return labelled(diff_artifacts(
            facts(manifest(replaced("libexec/prog", program("a", old)))),
            facts(manifest(replaced("libexec/prog", program("b", new))))), "file re-edited")

    assert re_edited("lief 0.17.6-4b2ecf4", "lief 1.0.0-d05b3499b") == [
        "libexec/prog  20,320 -> 20,320 bytes (same size, other sha256); the same original, "
        "rewritten by lief 1.0.0-d05b3499b where it was lief 0.17.6-4b2ecf4"]
    assert re_edited(None, "lief 1.0.0-d05b3499b") == [
        "libexec/prog  20,320 -> 20,320 bytes (same size, other sha256); the same original, "
        "rewritten by lief 1.0.0-d05b3499b where it was an unrecorded LIEF"]
    assert re_edited("lief 1.0.0-d05b3499b", "lief 1.0.0-d05b3499b") == [
        "libexec/prog  20,320 -> 20,320 bytes (same size, other sha256); the same original, "
        "edited otherwise"]


def test_the_library_home_is_one_setting_not_two_files() -> None:
    """lib/.bundle-ID is named after lib/'s content: it is renamed with any library."""
    other = "lib/.bundle-fedcba9876543210"
    new = manifest(replaced(HOME, FileRecord(other, "symlink", "alias", target=".")),
                   library_home=other)
    d = diff_artifacts(facts(manifest()), facts(new))
    assert not d.files and [s.field for s in d.settings] == ["library_home"]
    assert labelled(d, "library home") == [f"{HOME} -> {other}"]
    assert LIBRARY_HOME_KEY not in diff_text(d)


def test_bundle_metadata_is_its_own_category_summarised_in_one_line() -> None:
    licences = [file(f".bundle/licenses/lib{n}/copyright", "notice") for n in range(5)]
    changed = [file(".bundle/SOURCES", "notice", content="b"),
               file(".bundle/sbom.cdx.json", "sbom", content="b")]
    files = tuple(sorted((*[f for f in FILES if not f.path.startswith(".bundle/")],
                          *changed, *licences), key=lambda f: f.path))
    d = diff_artifacts(facts(manifest()), facts(manifest(files)))
    assert not d.files and len(d.metadata.changed) == 2 and len(d.metadata.added) == 5
    assert labelled(d, ".bundle/") == [
        "2 changed, 5 added (SBOMs, licences, SOURCES): SOURCES, sbom.cdx.json, "
        "licenses/lib0/copyright, licenses/lib1/copyright and 3 more"]
    assert sum(line.startswith(".bundle/") for line in text_lines(d)) == 1
    assert len(diff_json(d)["metadata"]["added"]) == 5


# -- packages, glibc, verdict, settings: and the order the text gives them ----------------
def test_packages_glibc_and_verdict_come_first_in_that_order() -> None:
    libc6 = package("libc6", "2.31-13+deb11u11", source="glibc", licence="LGPL-2.1-or-later")
    zlib = package("zlib1g", "1:1.2.13")
    old_m = manifest(packages=(LIBC6, package("libcap2", "1:2.66")))
    new_m = manifest(replaced("libexec/prog", file("libexec/prog", "program", content="b",
                                                    size=20_320, mode=0o755)),
                     packages=(libc6, zlib), glibc="2.31", launcher="env")
    after = ReportVerdict("ship the static build", ("the static build is clean",),
                          ("rebuild with -tags netgo",))
    d = diff_artifacts(facts(old_m), facts(new_m, after))
    assert d.verdict_changed and d.glibc_changed
    assert [c.key for c in d.packages.changed] == ["libc6:amd64"]
    assert [p.key for p in d.packages.added] == ["zlib1g:amd64"]
    assert [p.key for p in d.packages.removed] == ["libcap2:amd64"]
    body = text_lines(d)[3:]
    labels = [line.split("  ")[0].strip() for line in body]
    assert labels == ["verdict", "verdict reason", "verdict reason", "verdict fix", "glibc",
                      "package", "package added", "package removed", "launcher",
                      "file changed"]
    assert body[0].endswith("ship the artifact -> ship the static build")
    assert body[1].endswith("- the artifact brings glibc 2.36")
    assert body[2].endswith("+ the static build is clean")
    assert body[3].endswith("+ rebuild with -tags netgo")
    assert body[4].endswith("2.36 (libc6 2.36-9+deb12u14) -> 2.31 (libc6 2.31-13+deb11u11)")
    assert body[5].endswith("libc6:amd64    2.36-9+deb12u14 -> 2.31-13+deb11u11")
    assert body[6].endswith("zlib1g:amd64   1:1.2.13")
    assert body[7].endswith("libcap2:amd64  1:2.66")
    assert body[8].endswith("loader -> env")
    data = diff_json(d)
    assert data["glibc"]["old"]["package"]["version"] == "2.36-9+deb12u14"
    assert data["glibc"]["new"] == {"version": "2.31", "package": {
        "name": "libc6", "architecture": "amd64", "version": "2.31-13+deb11u11",
        "source": "glibc", "source_version": "2.31-13+deb11u11", "distro": "debian-12",
        "licence": "LGPL-2.1-or-later"}}
    assert data["verdict"]["new"]["fixes"] == ["rebuild with -tags netgo"]
    assert data["settings"] == {"changed": [{"setting": "launcher", "old": "loader",
                                             "new": "env"}]}
    check_schema(data)


def test_a_package_of_another_licence_or_distro_is_changed() -> None:
    relicensed = dataclasses.replace(LIBC6, licence="GPL-2.0-only")
    d = diff_artifacts(facts(manifest()), facts(manifest(packages=(relicensed,))))
    assert labelled(d, "package") == ["libc6:amd64  licence LGPL-2.1-or-later -> GPL-2.0-only"]
    moved = dataclasses.replace(LIBC6, distro="debian-13", database="/srv/root/var/lib/dpkg",
                                copyright="/srv/root/usr/share/doc/libc6/copyright")
    d = diff_artifacts(facts(manifest()), facts(manifest(packages=(moved,))))
    assert labelled(d, "package") == ["libc6:amd64  distro debian-12 -> debian-13"]
    # where the database lay is not the package
    elsewhere = dataclasses.replace(LIBC6, database="/srv/root/var/lib/dpkg")
    assert not diff_artifacts(facts(manifest()), facts(manifest(packages=(elsewhere,)))).differ


def test_go_modules_by_program_and_path() -> None:
    sqlite = GoModule("github.com/mattn/go-sqlite3", "v1.14.22", "h1:aaa")
    main = GoModule("example.com/agent", "(devel)", "", main=True)
    old_m = manifest(go_modules=(("prog", (main, sqlite, GoModule("golang.org/x/sys",
                                                                   "v0.20.0", "h1:s"))),))
    new_m = manifest(go_modules=(("prog", (
        main, dataclasses.replace(sqlite, version="v1.14.24", sum="h1:bbb"),
        GoModule("github.com/containerd/containerd", "v1.7.24", "h1:c",
                 replaced_by=("../containerd", "")))),))
    d = diff_artifacts(facts(old_m), facts(new_m))
    assert d.differ and [c.key for c in d.go_modules.changed] == [
        "prog github.com/mattn/go-sqlite3"]
    assert labelled(d, "go module") == [
        "prog  github.com/mattn/go-sqlite3       v1.14.22 -> v1.14.24"]
    assert labelled(d, "go module added") == [
        "prog  github.com/containerd/containerd  v1.7.24 => ../containerd"]
    assert labelled(d, "go module removed") == ["prog  golang.org/x/sys                  v0.20.0"]
    labels = [line.split("  ")[0] for line in text_lines(d)[3:]]
    assert labels == ["go module", "go module added", "go module removed"]
    data = diff_json(d)
    assert data["go_modules"]["changed"][0]["new"] == {
        "program": "prog", "path": "github.com/mattn/go-sqlite3", "version": "v1.14.24",
        "sum": "h1:bbb", "replaced_by": None, "main": False}
    assert data["go_modules"]["added"][0]["replaced_by"] == {"path": "../containerd",
                                                             "version": ""}
    check_schema(data)
    # The same version with another go.sum hash is named: other code under one version.
    resummed = manifest(go_modules=(("prog", (main, dataclasses.replace(sqlite, sum="h1:x"))),))
    d = diff_artifacts(facts(manifest(go_modules=(("prog", (main, sqlite)),))),
                       facts(resummed))
    assert labelled(d, "go module") == [
        "prog  github.com/mattn/go-sqlite3  v1.14.22, another go.sum hash: h1:aaa -> h1:x"]


def test_a_report_gone_is_a_verdict_change() -> None:
    d = diff_artifacts(facts(manifest()), facts(manifest(), None))
    assert d.differ and d.verdict_changed
    assert labelled(d, "verdict") == ["ship the artifact -> no report"]
    assert diff_json(d)["verdict"]["new"] is None
    check_schema(diff_json(d))


@pytest.mark.parametrize(("field", "label", "value"), [
    ("arch", "architecture", "aarch64"), ("prefix", "prefix", "/opt/other"),
    ("launcher_type", "launcher type", "sh"), ("min_kernel", "min kernel", None),
    ("name", "name", "other"),
])
def test_each_setting_is_named(field: str, label: str, value: object) -> None:
    d = diff_artifacts(facts(manifest()), facts(manifest(**{field: value})))
    old = str(getattr(manifest(), field))
    assert labelled(d, label) == [f"{old} -> {value if value is not None else 'not recorded'}"]
    assert diff_json(d)["settings"]["changed"] == [{"setting": field, "old": old,
                                                    "new": value}]


def test_programs_added_and_removed() -> None:
    helper = file("libexec/helper", "program")
    files = tuple(sorted((*FILES, helper), key=lambda f: f.path))
    d = diff_artifacts(facts(manifest()),
                       facts(manifest(files, programs=("prog", "helper"))))
    assert d.programs.added == ("helper",) and labelled(d, "program added") == ["helper"]
    back = diff_artifacts(facts(manifest(files, programs=("prog", "helper"))),
                          facts(manifest()))
    assert back.programs.removed == ("helper",)
    assert [f.path for f in back.files.removed] == ["libexec/helper"]


def test_text_from_a_hostile_report_is_inert() -> None:
    """The verdict comes from report.md, which the manifest does not cover."""
    hostile = ReportVerdict("ship\x1b]0;owned\x07 it\nverdict  ship the artifact",
                            ("\x1b[2J wiped",))
    d = diff_artifacts(facts(manifest()), facts(manifest(), hostile))
    text = diff_text(d)
    assert "\x1b" not in text and "\x07" not in text
    assert len(text.splitlines()) == 2 + 1 + 3  # header, blank, verdict and two reasons
    assert "\\x1b]0;owned\\x07 it\\nverdict" in text
    assert json.loads(json.dumps(diff_json(d)))["verdict"]["new"]["headline"] == \
        hostile.headline


def test_the_schema_is_the_codes() -> None:
    """Its version and its closed set (the settings compared) are the code's."""
    schema = load_schema("diff")
    assert schema["properties"]["format_version"]["const"] == DIFF_JSON_FORMAT_VERSION
    assert schema["$id"] == f"urn:bundle:schema:diff:{DIFF_JSON_FORMAT_VERSION}"
    setting = schema["properties"]["settings"]["properties"]["changed"]["items"]
    assert set(setting["properties"]["setting"]["enum"]) == {field for field, _ in SETTINGS}

"""`bundle inspect ARTIFACT` on real artifacts built here by the command line.

sqlite3 (a Debian program: every library from a package) as .tar.zst and as a directory,
and a gcc program (from no package) as .tar.gz. What inspect shows is checked against
the artifact's own manifest and report as the system's tar unpacks them, against the
build's --json report, and against `dpkg-query -W`; tampered and hostile artifacts are
refused or shown inert.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from support.cli import assert_one_line_error, run_cli
from support.needs import need, need_tool
from support.toolchain import gcc

SQLITE3 = "/usr/bin/sqlite3"
HELLO = '#include <stdio.h>\nint main(void){puts("hello");return 0;}\n'
ESC = "\x1b"


def bundle(*args: str) -> subprocess.CompletedProcess[str]:
    result = run_cli(*args)
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return result


def inspect_json(artifact: Path) -> dict:
    result = bundle("inspect", "--json", str(artifact))
    assert result.stdout.startswith("{"), result.stdout[:200]
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, tuple[Path, Path, dict]]:
    """label -> (the artifact, its top as the system's tar unpacks it, the build's report)."""
    need(Path(SQLITE3).exists(), "sqlite3 is not installed")
    where = tmp_path_factory.mktemp("inspect-artifact")
    hello = gcc(where / "hello", HELLO)
    artifacts = {}
    for label, program, out in (("zst", SQLITE3, "sqlite3.tar.zst"),
                                ("gz", str(hello), "hello.tar.gz"),
                                ("dir", SQLITE3, "tree/")):
        report = json.loads(bundle(program, "-o", f"{where}/{out}", "--json").stdout)
        name = Path(program).name
        if label == "dir":
            top = where / "tree" / name
        else:
            into = where / f"unpacked-{label}"
            into.mkdir()
            subprocess.run([need_tool("tar"), "-xf", str(where / out), "-C", str(into)],
                           check=True)
            top = into / name
        artifacts[label] = (where / out, top, report)
    return artifacts


def manifest_of(top: Path) -> dict:
    return json.loads((top / ".bundle" / "manifest.json").read_text())


def dpkg_version(package: str) -> str:
    return subprocess.run([need_tool("dpkg-query"), "-W", "-f=${Version}", package],
                          capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("label", ["zst", "gz", "dir"])
def test_json_equals_the_manifest(built, label: str) -> None:
    artifact, top, report = built[label]
    data = inspect_json(artifact)
    manifest = manifest_of(top)
    assert data["format_version"] == 2 and data["artifact"] == str(artifact)
    assert data["name"] == manifest["name"] == top.name
    assert data["written_by"]["rewriters"] == sorted(
        {f["patched"]["rewriter"] for f in manifest["files"]
         if (f.get("patched") or {}).get("rewriter")}) != []
    assert [p["name"] for p in data["programs"]] == manifest["programs"]
    files = {f["path"]: f for f in manifest["files"]}
    for program in data["programs"]:
        assert program["package"] == files[program["path"]].get("package")
    assert {lib["path"]: lib["package"] for lib in data["libraries"]} == {
        f["path"]: f.get("package") for f in manifest["files"]
        if f["type"] == "file" and f["kind"] in ("library", "loader")}
    assert "lib/libc.so.6" in {lib["path"] for lib in data["libraries"]}
    assert [(p["name"], p["version"], p["architecture"], p["licence"], p["licence_kind"])
            for p in data["packages"]] == [
        (p["name"], p["version"], p["architecture"], p["licence"], p["licence_kind"])
        for p in manifest["packages"]]
    kinds = Counter(p["licence_kind"] for p in manifest["packages"])
    assert data["licences"] == {kind: kinds[kind] for kind in
                                ("copyleft", "permissive", "unknown")}
    assert sum(data["licences"].values()) == len(manifest["packages"]) > 0
    assert data["package_database"] == manifest["provenance"]
    assert data["launcher"] == {"mode": manifest["launcher"], "type": manifest["launcher_type"]}
    for key in ("prefix", "glibc", "min_kernel", "loader", "arch"):
        assert data[key] == manifest[key], key
    assert data["sboms"] == sorted(f["path"] for f in manifest["files"] if f["kind"] == "sbom")
    assert data["notices"] == sorted(
        f["path"] for f in manifest["files"] if f["kind"] == "notice")
    for path in data["sboms"] + data["notices"]:
        assert (top / path).is_file(), path
    # The verdict: the report's, as the build stated it.
    assert data["verdict"]["headline"] == report["verdict"]["headline"]
    markdown = (top / ".bundle" / "report.md").read_text()
    assert f"**{data['verdict']['headline']}**" in markdown
    assert data["verdict"]["reasons"], markdown
    for reason in data["verdict"]["reasons"]:
        assert f"\n- {reason}\n" in markdown
    # The report's own licence section counts the same packages by kind.
    licences = report["licences"]
    assert (licences["copyleft"], licences["permissive"], licences["unknown"]) == (
        data["licences"]["copyleft"], data["licences"]["permissive"],
        data["licences"]["unknown"])


def test_host_packages_and_versions_are_dpkgs(built) -> None:
    need_tool("dpkg-query")
    data = inspect_json(built["zst"][0])
    versions = {p["name"]: p["version"] for p in data["packages"]}
    for name in ("libc6", "libsqlite3-0", "sqlite3"):
        assert versions[name] == dpkg_version(f"{name}:amd64"), name
    libraries = {lib["path"]: lib["package"] for lib in data["libraries"]}
    assert libraries["lib/libc.so.6"] == "libc6:amd64"
    assert libraries["lib/libsqlite3.so.0"] == "libsqlite3-0:amd64"
    assert data["programs"] == [{"name": "sqlite3", "path": "libexec/sqlite3",
                                 "package": "sqlite3:amd64"}]


@pytest.mark.parametrize("label", ["zst", "gz", "dir"])
def test_text_shows_the_same(built, label: str) -> None:
    artifact, top, _ = built[label]
    data = inspect_json(artifact)
    text = bundle("inspect", str(artifact)).stdout
    lines = text.splitlines()
    assert lines[0].startswith(f"{artifact}: artifact {top.name} for x86-64, written by bundle")
    packages = {f"{p['name']}:{p['architecture']}": p for p in data["packages"]}
    for lib in data["libraries"]:
        package = packages.get(lib["package"])
        owner = (f"{package['name']} {package['version']} {package['architecture']}"
                 if package else "unknown package")
        assert any(line.startswith(f"  {lib['path']} ") and line.split(None, 1)[1]
                   .startswith(owner) for line in lines), (lib, text)
    counts = data["licences"]
    assert (f"Packages ({len(data['packages'])}); licences: copyleft {counts['copyleft']}, "
            f"permissive {counts['permissive']}, unknown {counts['unknown']}") in lines
    assert f"  launcher     {data['launcher']['mode']}; bin/ launcher: " \
           f"{data['launcher']['type']}" in lines
    assert f"  prefix       {data['prefix']}" in lines
    assert f"  glibc        {data['glibc']}" in lines
    for path in data["sboms"]:
        assert f"  SBOM    {path}" in lines
    for path in data["notices"]:
        assert f"  notice  {path}" in lines
    verdict = lines.index("Verdict (from .bundle/report.md, written when the artifact was "
                          "built)")
    assert lines[verdict + 1] == f"  {data['verdict']['headline']}"
    assert lines[verdict + 2:verdict + 2 + len(data["verdict"]["reasons"])] == [
        f"  - {reason}" for reason in data["verdict"]["reasons"]]


def test_program_from_no_package_is_unknown(built) -> None:
    text = bundle("inspect", str(built["gz"][0])).stdout
    assert "  hello  libexec/hello  unknown package" in text.splitlines()
    assert "not from a package: libexec/hello" in text


def test_directory_artifact_by_its_top_too(built) -> None:
    _, top, _ = built["dir"]
    by_parent, by_top = inspect_json(top.parent), inspect_json(top)
    by_parent.pop("artifact")
    by_top.pop("artifact")
    assert by_parent == by_top
    assert by_top["sha256"] is None


@pytest.mark.parametrize("how", ["directory", "repacked"])
def test_tampered_artifact_is_refused(built, tmp_path: Path, how: str) -> None:
    _, top, _ = built["dir"]
    copy = tmp_path / "tree" / top.name
    shutil.copytree(top, copy, symlinks=True)
    library = copy / "lib" / "libz.so.1"
    data = bytearray(library.read_bytes())
    data[len(data) // 2] ^= 0xFF
    library.write_bytes(bytes(data))
    target = copy.parent
    if how == "repacked":
        target = tmp_path / "repacked.tar.gz"
        subprocess.run([need_tool("tar"), "-czf", str(target), "-C", str(copy.parent),
                        top.name], check=True)
    for args in (("inspect", str(target)), ("inspect", "--json", str(target))):
        result = run_cli(*args)
        assert_one_line_error(result, 4, "lib/libz.so.1", "sha256 differs")


def test_missing_or_odd_report_is_no_report(built, tmp_path: Path) -> None:
    _, top, _ = built["dir"]
    copy = tmp_path / "tree" / top.name
    shutil.copytree(top, copy, symlinks=True)
    report = copy / ".bundle" / "report.md"
    report.unlink()
    data = inspect_json(copy)
    assert data["verdict"] is None
    assert data["report"]["note"] == "no report (.bundle/report.md is absent)"
    text = bundle("inspect", str(copy)).stdout
    assert text.endswith("Verdict (no report (.bundle/report.md is absent))\n  no report\n")
    report.symlink_to("../lib/libc.so.6")  # inside the artifact, but never read through
    assert "cannot be read" in inspect_json(copy)["report"]["note"]
    report.unlink()
    report.write_bytes(b"\x00\xff" * 600_000)  # over the cap
    assert "not read" in inspect_json(copy)["report"]["note"]


def test_hostile_report_is_printed_inert(built, tmp_path: Path) -> None:
    _, top, _ = built["dir"]
    copy = tmp_path / "tree" / top.name
    shutil.copytree(top, copy, symlinks=True)
    headline = f"{ESC}]0;owned{chr(7)}ship {ESC}[2Jit"
    reason = f"fine{ESC}[1A{ESC}[2K\rreally"
    (copy / ".bundle" / "report.md").write_text(
        f"## 7. Verdict\n\n**{headline}**\n\n- {reason}\n")
    text = run_cli("inspect", str(copy))
    assert text.returncode == 0, text.stderr
    assert ESC not in text.stdout and "\r" not in text.stdout and chr(7) not in text.stdout
    assert "  \\x1b]0;owned\\x07ship \\x1b[2Jit" in text.stdout.splitlines()
    assert "  - fine\\x1b[1A\\x1b[2K\\rreally" in text.stdout.splitlines()
    as_json = run_cli("inspect", "--json", str(copy))
    assert ESC not in as_json.stdout
    assert json.loads(as_json.stdout)["verdict"] == {"headline": headline, "reasons": [reason],
                                                      "fixes": []}


def test_hostile_package_name_is_refused_inert(built, tmp_path: Path) -> None:
    """A control character in a package name (file records kept consistent with it): the
    manifest loader refuses it (exit 4) and the one error line shows it escaped."""
    _, top, _ = built["dir"]
    copy = tmp_path / "tree" / top.name
    shutil.copytree(top, copy, symlinks=True)
    path = copy / ".bundle" / "manifest.json"
    manifest = json.loads(path.read_text())
    hostile = f"zlib{ESC}[31m1g"
    for package in manifest["packages"]:
        if package["name"] == "zlib1g":
            package["name"] = hostile
    for record in manifest["files"]:
        if record.get("package") == "zlib1g:amd64":
            record["package"] = f"{hostile}:amd64"
    path.write_text(json.dumps(manifest))
    result = run_cli("inspect", str(copy.parent))
    assert_one_line_error(result, 4, "control character")
    assert ESC not in result.stderr


def test_program_options_do_not_apply_to_an_artifact(built) -> None:
    artifact = str(built["zst"][0])
    for option in (["--sysroot", "/"], ["--library-path", "/usr/lib"], ["--allow-missing"]):
        assert_one_line_error(run_cli("inspect", *option, artifact), 2, option[0],
                              "not to an artifact")


def test_a_tar_that_is_no_artifact_is_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "file").write_text("x\n")
    archive = tmp_path / "stuff.tar.gz"
    subprocess.run([need_tool("tar"), "-czf", str(archive), "-C", str(tmp_path), "stuff"],
                   check=True)
    assert_one_line_error(run_cli("inspect", str(archive)), 2, "not an artifact")

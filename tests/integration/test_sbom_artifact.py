"""What is inside an artifact, whose it is, and what shipping it obliges (issue 16): the
SBOMs inside and beside it, the licence files, SOURCES, and the report's licence section,
checked against dpkg itself, `go version -m` and the SBOM libraries' own validators."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from support.cli import assert_one_line_error, run_cli
from support.dpkg import dpkg_owners, dpkg_query_w
from support.gobuild import go_build
from support.needs import need, need_tool
from support.toolchain import gcc

from bundler.manifest import LICENSES_DIR, MANIFEST_PATH, SBOM_PATHS, SOURCES_PATH

CROSS_SYSROOT = "/usr/aarch64-linux-gnu"
COPIED_KINDS = ("program", "library", "loader", "data")


def unpack(artifact: Path, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-xaf", str(artifact), "-C", str(into)], check=True)
    (top,) = [p for p in into.iterdir() if p.is_dir()]
    return top


def build(program: str, out: Path, *args: str) -> tuple[Path, dict]:
    result = run_cli(program, "-o", str(out), *args)
    assert result.returncode == 0, result.stderr
    top = unpack(out, out.parent / (out.name + ".x"))
    return top, json.loads((top / MANIFEST_PATH).read_text())


def dpkg_owner(path: str) -> tuple[str, str, str] | None:
    """(package, version, architecture) as dpkg itself says, or None when no package."""
    owners = dpkg_owners(path)
    if not owners:
        return None
    [owner] = owners
    version, architecture = dpkg_query_w(owner).split()[:2]
    return owner.split(":")[0], version, architecture


def cyclonedx_valid(text: str) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    errors = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    assert errors is None, errors


def spdx_valid(path: Path) -> None:
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    messages = validate_full_spdx_document(parse_file(str(path)))
    assert messages == [], [m.validation_message for m in messages[:5]]


def cdx_hashes(document: dict) -> dict[str, str]:
    """file component name -> its SHA-256, from a CycloneDX document."""
    found = {}
    for component in document.get("components", []):
        for digest in component.get("hashes", []):
            if digest["alg"] == "SHA-256" and component["type"] == "file":
                found[component["name"]] = digest["content"]
    return found


def check_against_dpkg(top: Path, manifest: dict, out: Path) -> int:
    """Every copied file: the manifest's package is dpkg's, and the SBOMs hold its hash."""
    packages = {f"{p['name']}:{p['architecture']}": p for p in manifest["packages"]}
    cdx = json.loads(Path(f"{out}.cdx.json").read_text())
    hashes = cdx_hashes(cdx)
    spdx = json.loads(Path(f"{out}.spdx.json").read_text())
    spdx_files = {f["fileName"].removeprefix("./"): f for f in spdx["files"]}
    checked = 0
    for record in manifest["files"]:
        if record["type"] != "file" or record["kind"] == "sbom":  # (no SBOM lists itself)
            continue
        assert hashes.get(record["path"]) == record["sha256"], record["path"]
        sums = {c["algorithm"]: c["checksumValue"]
                for c in spdx_files[record["path"]]["checksums"]}
        assert sums["SHA256"] == record["sha256"]
        if record["kind"] not in COPIED_KINDS or not record["source"]:
            continue
        if not record["source"].startswith("/"):  # the user's own file, by name: no package
            assert record["package"] is None, record
            continue
        owner = dpkg_owner(record["source"])
        if owner is None:
            assert record["package"] is None, record
            continue
        assert record["package"] is not None, (record["path"], owner)
        package = packages[record["package"]]
        assert (package["name"], package["version"], package["architecture"]) == owner
        checked += 1
    return checked


def test_curl_every_file_has_dpkgs_package_and_the_sboms_validate(tmp_path: Path) -> None:
    out = tmp_path / "curl.tar.zst"
    top, manifest = build("/usr/bin/curl", out)
    assert check_against_dpkg(top, manifest, out) >= 30  # curl's closure, from packages
    cyclonedx_valid(Path(f"{out}.cdx.json").read_text())
    spdx_valid(Path(f"{out}.spdx.json"))
    for name, path in SBOM_PATHS.items():  # the same bytes inside and beside
        suffix = ".cdx.json" if name == "cyclonedx" else ".spdx.json"
        assert (top / path).read_bytes() == Path(f"{out}{suffix}").read_bytes()
    from packageurl import PackageURL

    cdx = json.loads(Path(f"{out}.cdx.json").read_text())
    purls = [c["purl"] for c in cdx["components"] if "purl" in c]
    assert purls and all(PackageURL.from_string(p).type == "deb" for p in purls)
    made = {c["name"]: {p["name"]: p["value"] for p in c.get("properties", [])}
            for c in cdx["components"] if c["type"] == "file"}
    assert made["bin/curl"]["bundle:package"] == "none: made by bundle"  # the launcher
    assert made[".bundle/licenses/libc6/copyright"]["bundle:package"].startswith("libc6:")
    # the copies LIEF patched (the program) name what wrote them, as the manifest does
    patched_by = {r["path"]: r["patched"]["rewriter"] for r in manifest["files"]
                  if (r.get("patched") or {}).get("rewriter")}
    assert "libexec/curl" in patched_by
    assert {name: props["bundle:patched-by"] for name, props in made.items()
            if "bundle:patched-by" in props} == patched_by
    spdx = json.loads(Path(f"{out}.spdx.json").read_text())
    (program,) = [f for f in spdx["files"] if f["fileName"] == "./libexec/curl"]
    assert program["comment"].endswith(f"; patched by {patched_by['libexec/curl']}")
    libc = [p for p in purls if "/libc6@" in p]
    version = dpkg_owner("/lib/x86_64-linux-gnu/libc.so.6")
    assert version is not None
    assert libc == [str(PackageURL("deb", "debian", "libc6", version[1],
                                   {"arch": version[2], "distro": "debian-12"}))]


def test_licences_and_sources_are_carried_and_counted_alike(tmp_path: Path) -> None:
    out = tmp_path / "sqlite3.tar.gz"
    result = run_cli("/usr/bin/sqlite3", "-o", str(out), "--json")
    assert result.returncode == 0, result.stderr
    top = unpack(out, tmp_path / "x")
    manifest = json.loads((top / MANIFEST_PATH).read_text())
    for package in manifest["packages"]:
        carried = top / LICENSES_DIR / package["name"] / "copyright"
        if package["copyright"]:
            assert carried.read_bytes() == Path(package["copyright"]).read_bytes()
    sources = (top / SOURCES_PATH).read_text()
    for package in manifest["packages"]:
        assert f"{package['source']} {package['source_version']}" in sources
    report = json.loads(result.stdout)
    kinds = [p["licence_kind"] for p in manifest["packages"]]
    licences = report["licences"]
    assert (licences["copyleft"], licences["permissive"], licences["unknown"]) == (
        kinds.count("copyleft"), kinds.count("permissive"), kinds.count("unknown"))
    cdx = json.loads(Path(f"{out}.cdx.json").read_text())
    assert len([c for c in cdx["components"] if c.get("purl", "").startswith("pkg:deb/")]) \
        == len(manifest["packages"]) == len(licences["packages"])
    markdown = (top / ".bundle" / "report.md").read_text()
    assert (f"packages: {len(kinds)} (copyleft {kinds.count('copyleft')}, permissive "
            f"{kinds.count('permissive')}, unknown {kinds.count('unknown')})") in markdown


def test_two_builds_give_the_same_sboms(tmp_path: Path) -> None:
    first, second = tmp_path / "a" / "s.tar.zst", tmp_path / "b" / "s.tar.zst"
    for out in (first, second):
        out.parent.mkdir()
        assert run_cli("/usr/bin/sqlite3", "-o", str(out)).returncode == 0
    for suffix in (".cdx.json", ".spdx.json", ""):
        assert Path(f"{first}{suffix}").read_bytes() == Path(f"{second}{suffix}").read_bytes()


def test_the_demo_agent_lists_its_go_modules_as_go_says(tmp_path: Path) -> None:
    agent = go_build("dynamic").path
    out = tmp_path / "myagent.tar.zst"
    top, manifest = build(str(agent), out)
    assert check_against_dpkg(top, manifest, out) >= 3  # libsqlite3, libc, the loader
    listed = subprocess.run([need_tool("go"), "version", "-m", str(agent)], capture_output=True,
                            text=True, check=True).stdout.splitlines()
    expected = {(f[1], f[2]) for f in (line.split("\t")[1:] for line in listed)
                if f and f[0] in ("mod", "dep")}
    (modules,) = manifest["go_modules"].values()
    assert {(m["path"], m["version"]) for m in modules} == expected
    cdx = json.loads(Path(f"{out}.cdx.json").read_text())
    golang = {c["purl"] for c in cdx["components"] if c.get("purl", "").startswith("pkg:golang/")}
    assert any("github.com/mattn/go-sqlite3@" in p for p in golang)
    cyclonedx_valid(Path(f"{out}.cdx.json").read_text())
    spdx_valid(Path(f"{out}.spdx.json"))


def test_a_cross_sysroot_is_named_by_the_build_hosts_database(tmp_path: Path) -> None:
    compiler = need_tool("aarch64-linux-gnu-gcc")
    need(os.path.exists(f"{CROSS_SYSROOT}/lib/libc.so.6"), "libc6-arm64-cross is missing")
    program = tmp_path / "hello"
    (tmp_path / "hello.c").write_text('#include <stdio.h>\nint main(void){puts("hi");}\n')
    subprocess.run([compiler, "-o", str(program), str(tmp_path / "hello.c")], check=True)
    out = tmp_path / "hello.tar.zst"
    top, manifest = build(str(program), out, "--sysroot", CROSS_SYSROOT)
    libc = next(f for f in manifest["files"] if f["path"] == "lib/libc.so.6")
    assert libc["package"] is not None and libc["package"].startswith("libc6-arm64-cross:")
    assert check_against_dpkg(top, manifest, out) == 2  # libc and the loader
    assert "build host" in manifest["provenance"] or "host" in manifest["provenance"]
    spdx_valid(Path(f"{out}.spdx.json"))


def test_a_root_without_a_package_database_lists_files_as_unknown(tmp_path: Path) -> None:
    """A hand-made sysroot: every file is still in the SBOM with its hash, its package
    plainly unknown, and the report says why."""
    root = tmp_path / "root"
    for directory in ("lib/x86_64-linux-gnu", "lib64", "usr/lib/x86_64-linux-gnu"):
        (root / directory).mkdir(parents=True)
    shutil.copy("/lib/x86_64-linux-gnu/libc.so.6", root / "lib/x86_64-linux-gnu")
    shutil.copy("/lib64/ld-linux-x86-64.so.2", root / "lib64")
    program = gcc(tmp_path / "plain", "int main(void){return 0;}\n")
    out = tmp_path / "plain.tar.zst"
    result = run_cli(str(program), "-o", str(out), "--sysroot", str(root), "--json")
    assert result.returncode == 0, result.stderr
    top = unpack(out, tmp_path / "x")
    manifest = json.loads((top / MANIFEST_PATH).read_text())
    assert manifest["packages"] == []
    copied = [f for f in manifest["files"] if f["type"] == "file" and f["kind"] in COPIED_KINDS]
    assert copied and all(f["package"] is None for f in copied)
    assert manifest["provenance"] == ("no dpkg database in the build root: no file's package "
                                      "is known")  # the root by what it is, not where it lies
    report = json.loads(result.stdout)
    assert set(report["licences"]["unpackaged"]) == {f["path"] for f in copied}
    hashes = cdx_hashes(json.loads(Path(f"{out}.cdx.json").read_text()))
    assert all(hashes[f["path"]] == f["sha256"] for f in copied)
    spdx_valid(Path(f"{out}.spdx.json"))


def test_sbom_choices_and_stale_files_beside(tmp_path: Path) -> None:
    out = tmp_path / "s.tar.zst"
    assert run_cli("/usr/bin/sqlite3", "-o", str(out)).returncode == 0
    assert Path(f"{out}.spdx.json").exists()
    result = run_cli("/usr/bin/sqlite3", "-o", str(out), "--sbom", "cyclonedx")
    assert result.returncode == 0, result.stderr
    assert Path(f"{out}.cdx.json").exists()
    assert not Path(f"{out}.spdx.json").exists()  # it described the artifact replaced
    top = unpack(out, tmp_path / "x")
    assert (top / SBOM_PATHS["cyclonedx"]).exists() and not (top / SBOM_PATHS["spdx"]).exists()
    assert run_cli("/usr/bin/sqlite3", "-o", str(out), "--sbom", "none").returncode == 0
    assert not Path(f"{out}.cdx.json").exists()
    top = unpack(out, tmp_path / "x2")
    assert (top / SOURCES_PATH).exists()  # licences and SOURCES are always carried
    assert_one_line_error(run_cli("/usr/bin/sqlite3", "-o", str(out), "--sbom", "swid"), 2,
                          "--sbom swid")


def test_an_sbom_beside_an_input_is_refused(tmp_path: Path) -> None:
    program = gcc(tmp_path / "p", "int main(void){return 0;}\n")
    decoy = tmp_path / "x.tar.zst.cdx.json"
    shutil.copy(program, decoy)
    assert_one_line_error(run_cli(str(decoy), "-o", str(tmp_path / "x.tar.zst")), 2,
                          "is the input")


@pytest.mark.parametrize("fmt", ["t.tar", "t/"])
def test_verify_checks_the_new_files_too(tmp_path: Path, fmt: str) -> None:
    """The licences, SOURCES and SBOMs are in the manifest: verify checks them, and a
    changed one is named."""
    out = Path(f"{tmp_path}/{fmt}")
    assert run_cli("/usr/bin/sqlite3", "-o", f"{tmp_path}/{fmt}").returncode == 0
    result = run_cli("verify", str(out), "--", "--version")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all match" in result.stdout
    if fmt.endswith("/"):
        (out / "sqlite3" / SOURCES_PATH).write_text("changed\n")
        result = run_cli("verify", str(out), "--", "--version")
        assert result.returncode != 0
        assert ".bundle/SOURCES" in result.stdout + result.stderr

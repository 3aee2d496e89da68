"""`bundle PROGRAM -o NAME.deb|.rpm|.oci.tar`: the build's own outputs, wired as archives are
(OUT.sha256 and the SBOMs beside, the report's sha256, the summary's install line, same
bytes twice, nothing left behind), and `bundle release` with package formats. What is
inside each package is tested with its ecosystem's tools in test_deb.py, test_rpm.py and
test_oci.py."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
from support.cli import assert_one_line_error, run_cli
from support.files import sha256
from support.needs import need_tool
from support.schemas import validate
from support.toolchain import gcc

HELLO = '#include <stdio.h>\nint main(void) { puts("hello, packaged"); return 0; }\n'
EPOCH = {"SOURCE_DATE_EPOCH": "1700000000"}


@pytest.fixture(scope="module")
def hello(tmp_path_factory) -> Path:
    return gcc(tmp_path_factory.mktemp("hello") / "hello", HELLO)


def _leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("ending", [".deb", ".rpm", ".oci.tar"])
def test_a_package_output_is_written_like_an_archive(hello: Path, tmp_path: Path,
                                                      ending: str) -> None:
    if ending == ".deb":
        need_tool("dpkg-deb")
    if ending == ".rpm":
        need_tool("rpmbuild")
    out = tmp_path / f"hello{ending}"
    result = run_cli(str(hello), "-o", str(out), "--json", "--version", "1.2.3",
                     "--maintainer", "Tester <t@example.org>", env=EPOCH)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    validate("build", report)
    fmt = {".deb": "deb", ".rpm": "rpm", ".oci.tar": "oci"}[ending]
    assert report["artifact"]["format"] == fmt
    assert report["artifact"]["sha256"] == sha256(out)
    assert report["artifact"]["compressed_size"] == out.stat().st_size
    assert (tmp_path / f"hello{ending}.sha256").read_text() == f"{sha256(out)}  {out.name}\n"
    assert (tmp_path / f"hello{ending}.cdx.json").is_file()
    assert (tmp_path / f"hello{ending}.spdx.json").is_file()
    assert _leftovers(tmp_path) == []  # the staged artifact and the temporaries are gone
    install = {"deb": "dpkg -i", "rpm": "rpm -i", "oci": "podman load -i"}[fmt]
    assert f"  install:  {install} {out}" in result.stderr
    (tmp_path / "again").mkdir()
    again = run_cli(str(hello), "-o", str(tmp_path / "again" / out.name), "-q", "--version",
                    "1.2.3", "--maintainer", "Tester <t@example.org>", env=EPOCH)
    assert again.returncode == 0, again.stderr
    assert sha256(tmp_path / "again" / out.name) == sha256(out)  # reproducible


def test_the_deb_holds_the_artifact_at_its_prefix_and_the_unit(hello: Path,
                                                                tmp_path: Path) -> None:
    need_tool("dpkg-deb")
    out = tmp_path / "hello.deb"
    result = run_cli(str(hello), "-o", str(out), "-q", "--prefix", "/opt/hello-pkg",
                     "--service", "--version", "2.0", env=EPOCH)
    assert result.returncode == 0, result.stderr
    listing = subprocess.run(["dpkg-deb", "-c", str(out)], capture_output=True, text=True,
                             check=True).stdout
    assert "./opt/hello-pkg/libexec/hello" in listing
    assert "./opt/hello-pkg/.bundle/manifest.json" in listing
    assert "hello.service" in listing
    fields = subprocess.run(["dpkg-deb", "-f", str(out), "Version", "Depends"],
                            capture_output=True, text=True, check=True).stdout
    assert fields.strip() == "Version: 2.0"  # and no Depends: it runs on any glibc


def test_the_image_config_starts_the_program_directly(hello: Path, tmp_path: Path) -> None:
    out = tmp_path / "hello.oci.tar"
    result = run_cli(str(hello), "-o", str(out), "-q", "--version", "3.1", env=EPOCH)
    assert result.returncode == 0, result.stderr
    with tarfile.open(out) as layout:
        index = json.load(layout.extractfile("index.json"))  # type: ignore[arg-type]
        manifest_digest = index["manifests"][0]["digest"].split(":")[1]
        manifest = json.load(layout.extractfile(f"blobs/sha256/{manifest_digest}"))  # type: ignore[arg-type]
        config_digest = manifest["config"]["digest"].split(":")[1]
        config = json.load(layout.extractfile(f"blobs/sha256/{config_digest}"))  # type: ignore[arg-type]
    assert config["config"]["Entrypoint"][0] == "/opt/hello/libexec/hello"
    assert config["architecture"] == "amd64" and config["os"] == "linux"


def test_package_options_for_an_archive_are_refused(hello: Path, tmp_path: Path) -> None:
    result = run_cli(str(hello), "-o", str(tmp_path / "h.tar.zst"), "--service")
    assert_one_line_error(result, 2, "--service: for a package", "h.tar.zst")
    bad = run_cli(str(hello), "-o", str(tmp_path / "h.deb"), "--version", "1 0")
    assert_one_line_error(bad, 2, "--version '1 0'")
    assert list(tmp_path.iterdir()) == []


def test_a_release_lists_its_packages_in_sha256sums(hello: Path, tmp_path: Path) -> None:
    need_tool("dpkg-deb")
    (tmp_path / "hello").write_bytes(hello.read_bytes())
    os.chmod(tmp_path / "hello", 0o755)
    (tmp_path / "bundle.toml").write_text(
        'name = "hello"\nversion = "1.0"\nprograms = ["hello"]\n'
        'formats = ["tar.zst", "deb", "oci.tar"]\nsbom = "none"\n'
        '[package]\nmaintainer = "Tester <t@example.org>"\nservice = true\n')
    result = run_cli("release", "--json", "-q", cwd=tmp_path, env=EPOCH)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    validate("release", data)
    names = sorted(Path(o["path"]).name for o in data["targets"][0]["outputs"])
    arch = data["targets"][0]["arch"]
    assert names == sorted(f"hello-1.0-linux-{arch}.{f}" for f in ("tar.zst", "deb", "oci.tar"))
    listed = (tmp_path / "dist" / "SHA256SUMS").read_text()
    assert all(name in listed for name in names)
    assert subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=tmp_path / "dist",
                          capture_output=True).returncode == 0

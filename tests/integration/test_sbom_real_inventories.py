"""Real builds' SBOMs are what cyclonedx-python-lib and spdx-tools write (issue 21).

sbom.py writes both documents with the standard library. Each test runs a real build
(`bundle PROGRAM -o OUT`, in a fresh interpreter as the console script runs it) that also
records the Inventory the build handed to sbom.py, then holds the SBOMs the build wrote
beside OUT, byte for byte, to what the libraries write for that inventory
(tests/support/sbom_reference.py: the code that wrote them before), validates them with
both libraries' validators, and checks the build imported neither library. The last
test takes the licences of every copyright file of this machine instead."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from spdx_tools.spdx.parser.jsonlikedict.json_like_dict_parser import JsonLikeDictParser
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document
from support.gobuild import cache_root, go_build
from support.paths import REPO
from support.roots import debian11_tree
from support.sbom_reference import cyclonedx_json_by_library, spdx_json_by_library

from bundler.inventory import NOASSERTION, Inventory, Package
from bundler.licences import licence_kind, licence_of_copyright
from bundler.sbom import cyclonedx_json, spdx_json

LIBRARIES = ("cyclonedx", "spdx_tools", "beartype", "py_serializable")

# Runs `bundle ARGS` through the console script's entry point; the SBOM writers are the
# real ones, wrapped only to record what they were given. Writes (the inventory, the
# library modules the build imported) to the pickle named first.
_RECORDING_BUILD = f"""\
import pickle, sys
import bundler.sbom as sbom
seen = []
def recording(write):
    def wrapper(inventory):
        seen.append(inventory)
        return write(inventory)
    return wrapper
sbom.cyclonedx_json = recording(sbom.cyclonedx_json)
sbom.spdx_json = recording(sbom.spdx_json)
from bundler.entry import main
try:
    main(sys.argv[2:])
except SystemExit as stop:
    if stop.code:
        raise
loaded = sorted(m for m in sys.modules if m.split(".")[0] in {LIBRARIES!r})
with open(sys.argv[1], "wb") as out:
    pickle.dump((seen, loaded), out)
"""


def build_recording(tmp_path: Path, program: str, *args: str) -> tuple[Path, Inventory]:
    """Build `program` into tmp_path; the artifact and the inventory its SBOMs describe."""
    out = tmp_path / (Path(program).name + ".tar.zst")
    record = tmp_path / "inventory.pickle"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("LD_LIBRARY_PATH", None)
    result = subprocess.run([sys.executable, "-c", _RECORDING_BUILD, str(record), program,
                             "-o", str(out), *args], capture_output=True, text=True, env=env,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    with open(record, "rb") as handle:
        seen, loaded = pickle.load(handle)
    assert loaded == [], f"the build imported {loaded}"
    assert len(seen) == 2 and seen[0] == seen[1]  # one inventory, both documents
    return out, seen[0]


def assert_as_the_libraries_write(out: Path, inventory: Inventory) -> tuple[dict, dict]:
    cdx = Path(f"{out}.cdx.json").read_text()
    spdx = Path(f"{out}.spdx.json").read_text()
    assert cdx == cyclonedx_json_by_library(inventory)
    assert spdx == spdx_json_by_library(inventory)
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(cdx) is None
    parsed = JsonLikeDictParser().parse(json.loads(spdx))
    assert [m.validation_message for m in validate_full_spdx_document(parsed)] == []
    return json.loads(cdx), json.loads(spdx)


def test_sqlite3(tmp_path: Path) -> None:
    out, inventory = build_recording(tmp_path, "/usr/bin/sqlite3")
    cdx, _ = assert_as_the_libraries_write(out, inventory)
    assert len(inventory.packages) >= 3 and any(p.name == "libc6" for p in inventory.packages)
    assert len(cdx["components"]) == len(inventory.files) + len(inventory.packages)


def test_curl(tmp_path: Path) -> None:
    out, inventory = build_recording(tmp_path, "/usr/bin/curl")
    _, spdx = assert_as_the_libraries_write(out, inventory)
    assert len(inventory.packages) >= 10
    assert spdx.get("hasExtractedLicensingInfos")  # real DEP-5 names SPDX does not know


def test_the_demo_go_agent_with_its_modules(tmp_path: Path) -> None:
    agent = go_build("dynamic").path
    out, inventory = build_recording(tmp_path, str(agent))
    assert_as_the_libraries_write(out, inventory)
    ((_, modules),) = inventory.go_modules
    assert any(m.main for m in modules) and any(not m.main for m in modules)


@pytest.mark.slow
def test_a_generated_closure_of_300_libraries(tmp_path: Path) -> None:
    made = subprocess.run([sys.executable, str(REPO / "benchmarks" / "closure.py"),
                           str(cache_root() / "closures"), "300", "512"],
                          capture_output=True, text=True, check=True, timeout=900)
    program = Path(made.stdout.strip().splitlines()[-1])
    out, inventory = build_recording(tmp_path, str(program),
                                     "--library-path", str(program.parent / "lib"))
    assert_as_the_libraries_write(out, inventory)
    assert len(inventory.files) > 300 and len(inventory.dependencies) > 300


def test_a_debian_11_roots_program(tmp_path: Path) -> None:
    tree = debian11_tree()
    out, inventory = build_recording(tmp_path, str(tree / "usr/bin/ls"), "--sysroot", str(tree))
    assert_as_the_libraries_write(out, inventory)
    assert {p.distro for p in inventory.packages} == {"debian-11"}


def test_every_copyright_file_of_this_machine_as_a_package() -> None:
    """The licences real packages have (each /usr/share/doc/*/copyright read as provenance
    reads it): expressions, LicenseRefs for DEP-5 names SPDX does not know, NOASSERTION.
    The library's SPDX writer runs spdx-tools' validators on every package (not the
    full-document validator: quadratic in the elements, as test_sbom.py says)."""
    packages = []
    for path in sorted(Path("/usr/share/doc").glob("*/copyright")):
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:  # (a dangling link)
            continue
        licence = licence_of_copyright(text)
        packages.append(Package(name=path.parent.name, version="1", architecture="amd64",
                                source=path.parent.name, source_version="1",
                                distro="debian-12", licence=licence,
                                licence_kind=licence_kind(licence), copyright=str(path),
                                database="/var/lib/dpkg"))
    assert sum(p.licence != NOASSERTION for p in packages) >= 50, "too few DEP-5 files here"
    inventory = Inventory(name="copyrights", arch="x86-64", tool_version="0", created=0,
                          files=(), packages=tuple(packages), go_modules=(), dependencies=())
    with warnings.catch_warnings():  # (no files: the library warns the graph is empty)
        warnings.simplefilter("ignore")
        assert cyclonedx_json(inventory) == cyclonedx_json_by_library(inventory)
    assert spdx_json(inventory) == spdx_json_by_library(inventory)

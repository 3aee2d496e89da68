"""sbom.py: the CycloneDX 1.6 and SPDX 2.3 documents written from one Inventory, checked
by the ecosystems' own validators and parsers (pure: small records, no files)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pickle
import re
import subprocess
import sys
from collections import Counter
from typing import Any

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL
from spdx_tools.common.spdx_licensing import spdx_licensing
from spdx_tools.spdx.parser.jsonlikedict.json_like_dict_parser import JsonLikeDictParser
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from bundler.inventory import NOASSERTION, GoModule, Inventory, InventoryFile, Package
from bundler.sbom import (
    cyclonedx_json,
    distro_namespace,
    spdx_json,
    spdx_problems,
    unique_ids,
)

LIBC = "libc6:amd64"
ODD = "odd-pkg:amd64"
BARE = "bare:amd64"
GO_PROGRAM = "libexec/goprog"


def _file(dest: str, package: str | None = None, kind: str = "library",
          content: bytes | None = None) -> InventoryFile:
    data = content if content is not None else f"content of {dest}".encode()
    return InventoryFile(dest, hashlib.sha256(data).hexdigest(), len(data), kind, package,
                         hashlib.sha1(data).hexdigest())


def _package(name: str, version: str, licence: str = "MIT", distro: str | None = "debian-12",
             maintainer: str | None = "GNU Libc Maintainers <debian-glibc@lists.debian.org>",
             copyright: str | None = "/root/usr/share/doc/x/copyright") -> Package:
    return Package(name=name, version=version, architecture="amd64", source=f"{name}-src",
                   source_version=version, distro=distro, licence=licence,
                   licence_kind="copyleft", copyright=copyright, database="the build root",
                   maintainer=maintainer)


def _inventory(**changes: Any) -> Inventory:
    """An artifact with a C program, glibc, a package with odd characters everywhere and
    NOASSERTION, a package of no known distro with a LicenseRef, a file of no package, and
    a Go program with a (devel) main module and a replaced dependency."""
    files = (
        _file("lib/ld-linux-x86-64.so.2", LIBC, "loader"),
        _file("lib/libc.so.6", LIBC),
        _file("lib/lib odd+1~2:3.so", ODD),
        _file("lib/lib-odd-1-2-3.so", ODD),  # clashes with the one above once sanitised
        _file("lib/libbare.so.1", BARE),
        _file("libexec/app", None, "program"),
        _file(GO_PROGRAM, None, "program"),
        _file("bin/app", None, "launcher"),
        _file("share/data file.txt", None, "data", content=b""),
    )
    packages = (
        _package("libc6", "2.36-9+deb12u14", "LGPL-2.1+ AND GPL-2.0-or-later"),
        _package("odd-pkg", "1:2.0~rc1+dfsg", NOASSERTION),
        _package("bare", "3.1", "LicenseRef-bare-terms OR GPL-3 with GCC-exception-3.1",
                 distro=None, maintainer=None, copyright=None),
    )
    modules = (
        GoModule("example.com/goprog", "(devel)", "", None, main=True),
        GoModule("golang.org/x/sys", "v0.1.0", "h1:abcdefgh=", ("github.com/fork/sys", "v0.2.0")),
        GoModule("example.com/local", "v1.0.0", "", ("../local", "")),
    )
    dependencies = (
        ("libexec/app", ("lib/ld-linux-x86-64.so.2", "lib/lib odd+1~2:3.so", "lib/libc.so.6")),
        ("lib/lib odd+1~2:3.so", ("lib/libc.so.6",)),
        ("lib/libc.so.6", ("lib/ld-linux-x86-64.so.2",)),
    )
    record = Inventory(name="my app", arch="x86-64", tool_version="0.9.0", created=0,
                       files=tuple(sorted(files, key=lambda f: f.dest)),
                       packages=tuple(sorted(packages, key=lambda p: p.key)),
                       go_modules=((GO_PROGRAM, modules),), dependencies=dependencies)
    return dataclasses.replace(record, **changes)


def _cdx(inventory: Inventory) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(cyclonedx_json(inventory))
    return document


def _spdx(inventory: Inventory) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(spdx_json(inventory))
    return document


def _all_components(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Every CycloneDX component, nested ones too, with "parent" set to its parent's ref."""
    found = []

    def walk(components: list[dict[str, Any]], parent: str | None) -> None:
        for component in components:
            found.append({**component, "parent": parent})
            walk(component.get("components", []), component["bom-ref"])

    walk(document.get("components", []), None)
    return found


def _properties(component: dict[str, Any]) -> dict[str, str]:
    return {p["name"]: p["value"] for p in component.get("properties", [])}


def _depends_on(document: dict[str, Any]) -> dict[str, set[str]]:
    return {d["ref"]: set(d.get("dependsOn", [])) for d in document["dependencies"]}


def _relationships(document: dict[str, Any], kind: str) -> set[tuple[str, str]]:
    return {(r["spdxElementId"], r["relatedSpdxElement"]) for r in document["relationships"]
            if r["relationshipType"] == kind}


def _spdx_validation(text: str) -> list[str]:
    document = JsonLikeDictParser().parse(json.loads(text))
    return [m.validation_message for m in validate_full_spdx_document(document)]


# ---- validity ----------------------------------------------------------------------------


def test_both_documents_pass_their_libraries_validators() -> None:
    inventory = _inventory()
    cdx = cyclonedx_json(inventory)
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(cdx) is None
    assert json.loads(cdx)["specVersion"] == "1.6"
    spdx = spdx_json(inventory)
    assert _spdx_validation(spdx) == []
    assert json.loads(spdx)["spdxVersion"] == "SPDX-2.3"


def test_an_empty_artifact_still_gives_valid_documents() -> None:
    empty = _inventory(files=(), packages=(), go_modules=(), dependencies=())
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(cyclonedx_json(empty)) is None
    assert _spdx_validation(spdx_json(empty)) == []


# ---- every file, package and module once, with the inventory's facts ----------------------


def test_cyclonedx_lists_each_file_package_and_module_once_with_the_inventorys_facts() -> None:
    inventory = _inventory()
    document = _cdx(inventory)
    components = _all_components(document)
    files = {c["name"]: c for c in components if c["type"] == "file"}
    assert Counter(c["name"] for c in components if c["type"] == "file") == Counter(
        f.dest for f in inventory.files)
    for file in inventory.files:
        component = files[file.dest]
        assert component["hashes"] == [{"alg": "SHA-256", "content": file.sha256}]
        assert _properties(component)["bundle:size"] == str(file.size)
        assert _properties(component)["bundle:kind"] == file.kind
        assert _properties(component)["bundle:package"] == (file.package or "unknown")
    debs = [c for c in components if c.get("purl", "").startswith("pkg:deb/")]
    assert sorted(c["name"] for c in debs) == sorted(p.name for p in inventory.packages)
    golang = [c for c in components if c.get("purl", "").startswith("pkg:golang/")]
    assert sorted(c["name"] for c in golang) == sorted(
        m.path for _, modules in inventory.go_modules for m in modules)
    refs = [c["bom-ref"] for c in components]
    assert len(refs) == len(set(refs))
    assert document["metadata"]["component"]["name"] == "my app"
    assert document["metadata"]["component"]["type"] == "application"
    assert "version" not in document["metadata"]["component"]
    assert _properties(document["metadata"]["component"])["bundle:version"] == "0.9.0"


def test_spdx_lists_each_file_package_and_module_once_with_the_inventorys_facts() -> None:
    inventory = _inventory()
    document = _spdx(inventory)
    files = {f["fileName"]: f for f in document["files"]}
    assert Counter(f["fileName"] for f in document["files"]) == Counter(
        f"./{f.dest}" for f in inventory.files)
    for file in inventory.files:
        listed = files[f"./{file.dest}"]
        assert {c["algorithm"]: c["checksumValue"] for c in listed["checksums"]} == {
            "SHA1": file.sha1, "SHA256": file.sha256}
        assert f"size: {file.size} bytes" in listed["comment"]
    names = Counter(p["name"] for p in document["packages"])
    expected = Counter([inventory.name, *(p.name for p in inventory.packages),
                        *(m.path for _, modules in inventory.go_modules for m in modules)])
    assert names == expected
    ids = [e["SPDXID"] for e in document["packages"] + document["files"]]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"SPDXRef-[A-Za-z0-9.-]+", spdx_id) for spdx_id in ids)
    (described,) = _relationships(document, "DESCRIBES")
    artifact = next(p for p in document["packages"] if p["SPDXID"] == described[1])
    assert artifact["name"] == "my app" and "versionInfo" not in artifact
    assert "bundle 0.9.0" in artifact["comment"]


def test_every_purl_parses_back_to_the_package_or_module() -> None:
    inventory = _inventory()
    cdx = {c["name"]: c["purl"] for c in _all_components(_cdx(inventory)) if "purl" in c}
    spdx = {p["name"]: [r["referenceLocator"] for r in p.get("externalRefs", [])]
            for p in _spdx(inventory)["packages"]}
    for package in inventory.packages:
        assert spdx[package.name][0] == cdx[package.name]
        purl = PackageURL.from_string(cdx[package.name])
        assert (purl.type, purl.name, purl.version) == ("deb", package.name, package.version)
        assert purl.namespace == "debian"
        expected = {"arch": "amd64"} | ({"distro": package.distro} if package.distro else {})
        assert purl.qualifiers == expected
    for _, modules in inventory.go_modules:
        for module in modules:
            assert spdx[module.path][0] == cdx[module.path]
            purl = PackageURL.from_string(cdx[module.path])
            assert purl.type == "golang"
            assert f"{purl.namespace}/{purl.name}" == module.path
            assert purl.version == (None if module.version == "(devel)" else module.version)


def test_the_issues_libc_purl_exactly() -> None:
    document = _cdx(_inventory())
    libc = next(c for c in _all_components(document) if c["name"] == "libc6")
    assert libc["purl"] == "pkg:deb/debian/libc6@2.36-9%2Bdeb12u14?arch=amd64&distro=debian-12"


def test_the_purl_namespace_is_the_os_release_id() -> None:
    assert distro_namespace("debian-12") == "debian"
    assert distro_namespace("ubuntu-22.04") == "ubuntu"
    assert distro_namespace("pop-os-22.04") == "pop-os"
    assert distro_namespace("debian") == "debian"  # testing/sid have no VERSION_ID
    assert distro_namespace(None) == "debian"


def test_a_package_of_no_known_distro_has_no_distro_qualifier() -> None:
    document = _cdx(_inventory())
    bare = next(c for c in _all_components(document) if c["name"] == "bare")
    assert bare["purl"] == "pkg:deb/debian/bare@3.1?arch=amd64"
    assert "supplier" not in bare  # no Maintainer in the database: nothing invented
    spdx = next(p for p in _spdx(_inventory())["packages"] if p["name"] == "bare")
    assert spdx["supplier"] == NOASSERTION


def test_the_maintainer_is_the_supplier() -> None:
    libc = next(c for c in _all_components(_cdx(_inventory())) if c["name"] == "libc6")
    assert libc["supplier"]["name"] == "GNU Libc Maintainers"
    assert libc["supplier"]["contact"][0]["email"] == "debian-glibc@lists.debian.org"
    spdx = next(p for p in _spdx(_inventory())["packages"] if p["name"] == "libc6")
    assert spdx["supplier"] == ("Organization: GNU Libc Maintainers "
                                "(debian-glibc@lists.debian.org)")


# ---- the graph -----------------------------------------------------------------------------


def test_packages_contain_their_files_in_both_documents() -> None:
    inventory = _inventory()
    components = _all_components(_cdx(inventory))
    assert all(c["parent"] is None for c in components)  # flat: every reader sees all
    found = {c["name"]: [o["location"] for o in c.get("evidence", {}).get("occurrences", [])]
             for c in components if c.get("purl", "").startswith("pkg:deb/")}
    for package in inventory.packages:
        assert found[package.name] == [f.dest for f in inventory.files
                                       if f.package == package.key]
    document = _spdx(inventory)
    file_id = {f["fileName"][2:]: f["SPDXID"] for f in document["files"]}
    package_id = {p["name"]: p["SPDXID"] for p in document["packages"]}
    by_key = {p.key: p.name for p in inventory.packages}
    assert _relationships(document, "CONTAINS") >= {
        (package_id[by_key[f.package]], file_id[f.dest]) for f in inventory.files if f.package}
    (described,) = _relationships(document, "DESCRIBES")
    artifact = described[1]
    assert {b for a, b in _relationships(document, "CONTAINS") if a == artifact} == set(
        file_id.values())


def test_the_dependency_graph_appears_in_both_documents() -> None:
    inventory = _inventory()
    document = _cdx(inventory)
    depends = _depends_on(document)
    for needer, needed in inventory.dependencies:
        assert depends[f"file:{needer}"] == {f"file:{d}" for d in needed}
    go = {c["name"]: c["bom-ref"] for c in _all_components(document)
          if c.get("purl", "").startswith("pkg:golang/")}
    assert depends[f"file:{GO_PROGRAM}"] == set(go.values())
    # the artifact depends on what nothing else loads, so every file is reached from it
    root = document["metadata"]["component"]["bom-ref"]
    assert depends[root] == {"file:libexec/app", f"file:{GO_PROGRAM}", "file:bin/app",
                             "file:share/data file.txt", "file:lib/lib-odd-1-2-3.so",
                             "file:lib/libbare.so.1"}
    spdx = _spdx(inventory)
    file_id = {f["fileName"][2:]: f["SPDXID"] for f in spdx["files"]}
    assert _relationships(spdx, "DEPENDS_ON") == {
        (file_id[needer], file_id[dest]) for needer, needed in inventory.dependencies
        for dest in needed}
    module_ids = {p["SPDXID"] for p in spdx["packages"] if p["name"] in go}
    assert {b for a, b in _relationships(spdx, "CONTAINS") if a == file_id[GO_PROGRAM]} == (
        module_ids)


def test_a_module_two_programs_share_is_listed_once_and_contained_by_both() -> None:
    shared = GoModule("golang.org/x/text", "v0.3.0", "h1:text=")
    inventory = _inventory(
        files=tuple(sorted((*_inventory().files, _file("libexec/other", None, "program")),
                           key=lambda f: f.dest)),
        go_modules=((GO_PROGRAM, (shared,)), ("libexec/other", (shared,))))
    document = _cdx(inventory)
    (module,) = [c for c in _all_components(document) if c["name"] == shared.path]
    depends = _depends_on(document)
    assert module["bom-ref"] in depends[f"file:{GO_PROGRAM}"]
    assert module["bom-ref"] in depends["file:libexec/other"]
    assert [o["location"] for o in module["evidence"]["occurrences"]] == [
        GO_PROGRAM, "libexec/other"]
    spdx = _spdx(inventory)
    (package,) = [p for p in spdx["packages"] if p["name"] == shared.path]
    assert len([a for a, b in _relationships(spdx, "CONTAINS") if b == package["SPDXID"]]) == 2


# ---- licences -------------------------------------------------------------------------------


def test_noassertion_means_no_licence_and_says_where_the_terms_are() -> None:
    inventory = _inventory()
    odd = next(c for c in _all_components(_cdx(inventory)) if c["name"] == "odd-pkg")
    assert "licenses" not in odd
    assert _properties(odd)["bundle:licence"] == (
        "NOASSERTION: not machine-readable (not DEP-5): the copyright file is carried in "
        ".bundle/licenses/odd-pkg/copyright")
    spdx = next(p for p in _spdx(inventory)["packages"] if p["name"] == "odd-pkg")
    assert spdx["licenseConcluded"] == NOASSERTION
    assert spdx["licenseDeclared"] == NOASSERTION
    assert ".bundle/licenses/odd-pkg/copyright" in spdx["licenseComments"]


def test_a_readable_licence_is_the_spdx_expression_in_both_documents() -> None:
    inventory = _inventory()
    libc = next(c for c in _all_components(_cdx(inventory)) if c["name"] == "libc6")
    assert libc["licenses"] == [{"expression": "LGPL-2.1-or-later AND GPL-2.0-or-later"}]
    spdx = next(p for p in _spdx(inventory)["packages"] if p["name"] == "libc6")
    assert spdx["licenseDeclared"] == "LGPL-2.1-or-later AND GPL-2.0-or-later"
    assert spdx["licenseConcluded"] == NOASSERTION


def test_licence_refs_and_unknown_names_get_extracted_licensing_infos() -> None:
    inventory = _inventory()
    expression = "LicenseRef-bare-terms OR LicenseRef-GPL-3 WITH GCC-exception-3.1"
    bare = next(c for c in _all_components(_cdx(inventory)) if c["name"] == "bare")
    assert bare["licenses"] == [{"expression": expression}]
    document = _spdx(inventory)
    spdx = next(p for p in document["packages"] if p["name"] == "bare")
    assert spdx["licenseDeclared"] == expression
    extracted = {e["licenseId"]: e for e in document["hasExtractedLicensingInfos"]}
    assert set(extracted) == {"LicenseRef-bare-terms", "LicenseRef-GPL-3"}
    assert extracted["LicenseRef-GPL-3"]["name"] == "GPL-3"
    assert "bare" in extracted["LicenseRef-GPL-3"]["extractedText"]


def test_an_unparsable_licence_becomes_one_licence_ref_and_stays_valid() -> None:
    broken = _package("broken", "1", "GPL-2+ | (BSD")
    inventory = _inventory(packages=(*_inventory().packages, broken))
    document = spdx_json(inventory)
    assert _spdx_validation(document) == []
    declared = next(p for p in json.loads(document)["packages"] if p["name"] == "broken")
    assert declared["licenseDeclared"].startswith("LicenseRef-")
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(
        cyclonedx_json(inventory)) is None


# ---- Go --------------------------------------------------------------------------------------


def test_go_replace_target_devel_main_module_and_go_sum() -> None:
    inventory = _inventory()
    components = {c["name"]: c for c in _all_components(_cdx(inventory))}
    main = components["example.com/goprog"]
    assert main["purl"] == "pkg:golang/example.com/goprog" and "version" not in main
    assert _properties(main)["bundle:go:version"] == "(devel)"
    assert _properties(main)["bundle:go:main"] == "true"
    sys_ = components["golang.org/x/sys"]
    assert sys_["purl"] == "pkg:golang/golang.org/x/sys@v0.1.0"
    assert _properties(sys_)["bundle:go:replaced-by"] == "github.com/fork/sys v0.2.0"
    assert _properties(sys_)["bundle:go:sum"] == "h1:abcdefgh="
    packages = {p["name"]: p for p in _spdx(inventory)["packages"]}
    spdx_sys = packages["golang.org/x/sys"]
    assert [r["referenceLocator"] for r in spdx_sys["externalRefs"]] == [
        "pkg:golang/golang.org/x/sys@v0.1.0", "pkg:golang/github.com/fork/sys@v0.2.0"]
    assert "go.sum: h1:abcdefgh=" in spdx_sys["comment"]
    assert "replaced by github.com/fork/sys v0.2.0" in spdx_sys["comment"]
    local = packages["example.com/local"]  # a directory replace has no purl of its own
    assert [r["referenceLocator"] for r in local["externalRefs"]] == [
        "pkg:golang/example.com/local@v1.0.0"]
    assert "versionInfo" not in packages["example.com/goprog"]


# ---- identifiers and determinism ---------------------------------------------------------


def test_spdx_ids_are_sanitised_and_unique_even_when_names_clash() -> None:
    ids = unique_ids("File", ["lib/a+b", "lib/a-b", "lib/a b", "lib/c~d:e"])
    assert len(set(ids.values())) == 4
    assert all(re.fullmatch(r"SPDXRef-[A-Za-z0-9.-]+", i) for i in ids.values())
    assert ids["lib/c~d:e"] == "SPDXRef-File-lib-c-d-e"
    # an ID depends on its own name and its clash, not on unrelated names
    assert unique_ids("File", ["lib/a+b", "lib/a-b", "zzz"])["lib/a+b"] == ids["lib/a+b"]


def test_the_same_inventory_gives_the_same_bytes() -> None:
    assert cyclonedx_json(_inventory()) == cyclonedx_json(_inventory())
    assert spdx_json(_inventory()) == spdx_json(_inventory())
    shuffled = _inventory(files=tuple(reversed(_inventory().files)),
                          packages=tuple(reversed(_inventory().packages)))
    assert cyclonedx_json(shuffled) == cyclonedx_json(_inventory())
    assert spdx_json(shuffled) == spdx_json(_inventory())


def test_a_changed_file_hash_changes_the_serial_and_the_namespace() -> None:
    before = _inventory()
    changed = list(before.files)
    changed[0] = dataclasses.replace(changed[0], sha256="0" * 64)
    after = _inventory(files=tuple(changed))
    assert _cdx(before)["serialNumber"] != _cdx(after)["serialNumber"]
    assert _spdx(before)["documentNamespace"] != _spdx(after)["documentNamespace"]
    assert re.fullmatch(r"urn:uuid:[0-9a-f-]{36}", _cdx(after)["serialNumber"])


def test_timestamps_come_from_source_date_epoch() -> None:
    assert _spdx(_inventory())["creationInfo"]["created"] == "1970-01-01T00:00:00Z"
    assert _cdx(_inventory())["metadata"]["timestamp"].startswith("1970-01-01T00:00:00")
    later = _inventory(created=1700000000)
    assert _spdx(later)["creationInfo"]["created"] == "2023-11-14T22:13:20Z"
    assert _cdx(later)["metadata"]["timestamp"].startswith("2023-11-14T22:13:20")


# ---- refusals ----------------------------------------------------------------------------


def test_spdx_refuses_files_without_a_sha1() -> None:
    files = tuple(dataclasses.replace(f, sha1="") for f in _inventory().files)
    with pytest.raises(ValueError, match="SHA-1"):
        spdx_json(_inventory(files=files))


def test_an_inventory_naming_what_it_does_not_list_is_refused() -> None:
    with pytest.raises(ValueError, match="libmissing"):
        cyclonedx_json(_inventory(dependencies=(("libexec/app", ("lib/libmissing.so",)),)))
    with pytest.raises(ValueError, match="nopkg"):
        spdx_json(_inventory(files=(_file("lib/x.so", "nopkg:amd64"),)))


def test_the_fast_spdx_check_finds_what_the_full_validator_finds() -> None:
    """spdx_json checks relationships with a set instead of spdx-tools' quadratic pass:
    a dangling relationship, a duplicate SPDXID and a bad licence are still caught."""
    from spdx_tools.spdx.model import Relationship, RelationshipType

    document = JsonLikeDictParser().parse(json.loads(spdx_json(_inventory())))
    assert spdx_problems(document) == []
    document.relationships.append(Relationship("SPDXRef-File-nowhere",
                                               RelationshipType.DEPENDS_ON, "SPDXRef-DOCUMENT"))
    document.files.append(document.files[0])
    document.packages[1].license_declared = spdx_licensing.parse("NotALicence")
    problems = spdx_problems(document)
    assert any("SPDXRef-File-nowhere" in p for p in problems)
    assert any("used twice" in p for p in problems)
    assert any("NotALicence" in p for p in problems)
    full = [m.validation_message for m in validate_full_spdx_document(document)]
    assert any("SPDXRef-File-nowhere" in m for m in full)


@pytest.mark.slow
def test_a_large_inventory_lists_every_file_once() -> None:
    """2,000 files in 100 packages, each loading the next three (measured in the report,
    not asserted: the strict schema and full SPDX validators are quadratic, so they run
    on the small record above, and this checks completeness at scale)."""
    packages = tuple(_package(f"pkg{n:03d}", "1.0-1") for n in range(100))
    files = tuple(_file(f"lib/f{n:05d}.so", packages[n % 100].key) for n in range(2000))
    dependencies = tuple((files[n].dest, tuple(f.dest for f in files[n + 1:n + 4]))
                         for n in range(1999))
    inventory = _inventory(files=files, packages=packages, go_modules=(),
                           dependencies=dependencies)
    cdx = _cdx(inventory)
    listed = Counter(c["name"] for c in _all_components(cdx) if c["type"] == "file")
    assert listed == Counter(f.dest for f in files)
    assert len(_depends_on(cdx)["file:lib/f00000.so"]) == 3
    spdx = _spdx(inventory)
    assert Counter(f["fileName"] for f in spdx["files"]) == Counter(f"./{f.dest}" for f in files)
    assert len(_relationships(spdx, "DEPENDS_ON")) == sum(len(d) for _, d in dependencies)


def test_the_bytes_do_not_depend_on_the_interpreters_hash_seed() -> None:
    """Set and dict order vary with PYTHONHASHSEED between processes (two builds), which
    one process writing twice cannot show."""
    script = ("import hashlib, pickle, sys\n"
              "from bundler.sbom import cyclonedx_json, spdx_json\n"
              "inventory = pickle.load(sys.stdin.buffer)\n"
              "print(hashlib.sha256((cyclonedx_json(inventory) + spdx_json(inventory))"
              ".encode()).hexdigest())\n")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    runs = [subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, cwd=root,
                             env={**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": root})
            for seed in ("1", "2")]  # side by side: each pays the libraries' import
    digests = [run.communicate(pickle.dumps(_inventory()), timeout=120)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0]
    assert len(digests[0]) == 65 and digests[0] == digests[1]


def test_a_root_without_a_package_database_lists_every_file_as_of_unknown_package() -> None:
    files = tuple(dataclasses.replace(f, package=None) for f in _inventory().files)
    inventory = _inventory(files=files, packages=())
    cdx = cyclonedx_json(inventory)
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(cdx) is None
    listed = [c for c in _all_components(json.loads(cdx)) if c["type"] == "file"]
    assert len(listed) == len(files)
    assert all(_properties(c)["bundle:package"] == "unknown" for c in listed)
    assert all(c["parent"] is None for c in listed)
    spdx = spdx_json(inventory)
    assert _spdx_validation(spdx) == []
    assert all(f["comment"].endswith("package: unknown") for f in json.loads(spdx)["files"])
    assert not _relationships(json.loads(spdx), "CONTAINS") - {
        (a, b) for a, b in _relationships(json.loads(spdx), "CONTAINS")
        if a.startswith("SPDXRef-Artifact-") or b.startswith("SPDXRef-Package-golang-")}


def test_a_package_without_a_copyright_file_says_so() -> None:
    unread = _package("unread", "1", NOASSERTION, copyright=None)
    inventory = _inventory(packages=(*_inventory().packages, unread))
    component = next(c for c in _all_components(_cdx(inventory)) if c["name"] == "unread")
    assert _properties(component)["bundle:licence"] == (
        "NOASSERTION: not stated: the build root has no copyright file for this package")
    extracted = {e["licenseId"]: e for e in _spdx(inventory)["hasExtractedLicensingInfos"]}
    assert "no copyright file in the build root for bare" in (
        extracted["LicenseRef-bare-terms"]["extractedText"])

"""The SBOMs as the ecosystems' own libraries write them: the oracle of bundler/sbom.py.

bundler/sbom.py writes CycloneDX 1.6 and SPDX 2.3 JSON with the standard library; until
issue 21 it built them with cyclonedx-python-lib and spdx-tools (0.3 s of imports on every
build). This module is that code, unchanged but for its imports and the note on a patched
copy (what wrote it) added since: the tests hold sbom.py's
bytes equal to these for real inventories, so the documents stay what the libraries make
(and what their readers expect), and a library upgrade that changes its output shows here.
The facts both share (ids, purls, licences, serial numbers) are sbom.py's own functions.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import TYPE_CHECKING

from bundler.inventory import NOASSERTION, Inventory, InventoryFile, Package
from bundler.notices import licence_path
from bundler.sbom import (
    PROPERTY,
    SPDX_VERSION,
    _extracted_text,
    _file_ref,
    _go_version,
    _licence_note,
    _module_ref,
    _package_ref,
    _package_word,
    _roots,
    _sorted,
    _supplier,
    check_consistent,
    created_at,
    deb_purl,
    go_purl,
    licence_of,
    serial_number,
    shipped_modules,
    spdx_namespace,
    spdx_problems,
    unique_ids,
)

if TYPE_CHECKING:
    from cyclonedx.model.component import Component
    from packageurl import PackageURL


# ---- CycloneDX --------------------------------------------------------------------------


def cyclonedx_json_by_library(inventory: Inventory) -> str:
    """The CycloneDX 1.6 JSON of the artifact, as cyclonedx-python-lib writes it."""
    from cyclonedx.model import HashAlgorithm, HashType, Property
    from cyclonedx.model.bom import Bom, BomMetaData
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.model.component_evidence import ComponentEvidence, Occurrence
    from cyclonedx.model.contact import OrganizationalContact, OrganizationalEntity
    from cyclonedx.model.dependency import Dependency
    from cyclonedx.model.license import LicenseExpression
    from cyclonedx.model.tool import ToolRepository
    from cyclonedx.output import make_outputter
    from cyclonedx.schema import OutputFormat, SchemaVersion

    check_consistent(inventory)
    inventory = _sorted(inventory)

    def prop(name: str, value: str) -> Property:
        return Property(name=PROPERTY + name, value=value)

    def file_component(file: InventoryFile) -> Component:
        return Component(
            type=ComponentType.FILE, name=file.dest, bom_ref=_file_ref(file.dest),
            hashes=[HashType(alg=HashAlgorithm.SHA_256, content=file.sha256)],
            properties=[prop("size", str(file.size)), prop("kind", file.kind),
                        prop("package", _package_word(file)),
                        *([prop("patched-by", file.patched_by)] if file.patched_by else [])])

    def found_in(ref: str, dests: Iterable[str], context: str) -> ComponentEvidence | None:
        # The library sorts occurrences by bom-ref first; without one each gets a random
        # ref and the order (the bytes) would change from run to run.
        occurrences = [Occurrence(bom_ref=f"{ref}#{dest}", location=dest,
                                  additional_context=context) for dest in dests]
        return ComponentEvidence(occurrences=occurrences) if occurrences else None

    components = {file.dest: file_component(file) for file in inventory.files}
    top = list(components.values())
    files_of: dict[str, list[str]] = {}
    for file in inventory.files:
        if file.package is not None:
            files_of.setdefault(file.package, []).append(file.dest)

    for package in inventory.packages:
        licence = licence_of(package)
        props = [prop("deb:source", package.source),
                 prop("deb:source-version", package.source_version),
                 prop("deb:database", package.database),
                 prop("licence-kind", package.licence_kind)]
        if licence.expression is None:
            props.append(prop("licence", f"{NOASSERTION}: {_licence_note(package)}"))
        supplier = _supplier(package.maintainer)
        top.append(Component(
            type=ComponentType.LIBRARY, name=package.name, version=package.version,
            bom_ref=_package_ref(package), purl=deb_purl(package),
            supplier=(None if supplier is None else OrganizationalEntity(
                name=supplier[0],
                contacts=[OrganizationalContact(name=supplier[0], email=supplier[1])]
                if supplier[1] else None)),
            licenses=([] if licence.expression is None
                      else [LicenseExpression(licence.expression)]),
            properties=props,
            evidence=found_in(_package_ref(package), files_of.get(package.key, ()),
                              "a file this package installed")))

    modules_of: dict[str, list[Component]] = {}
    for shipped in shipped_modules(inventory):
        module = shipped.module
        props = [prop("go:main", "true" if module.main else "false")]
        if module.sum:
            props.append(prop("go:sum", module.sum))
        if _go_version(module.version) is None:
            props.append(prop("go:version", module.version))
        if module.replaced_by is not None:
            props.append(prop("go:replaced-by", " ".join(module.replaced_by)))
        component = Component(
            type=ComponentType.APPLICATION if module.main else ComponentType.LIBRARY,
            name=module.path, version=_go_version(module.version),
            bom_ref=_module_ref(shipped), purl=go_purl(module.path, module.version),
            properties=props,
            evidence=found_in(_module_ref(shipped), shipped.programs,
                              "a program this module is compiled into"))
        top.append(component)
        for program in shipped.programs:
            modules_of.setdefault(program, []).append(component)

    root = Component(type=ComponentType.APPLICATION, name=inventory.name,
                     bom_ref=f"artifact:{inventory.name}",
                     properties=[prop("version", inventory.tool_version),
                                 prop("arch", inventory.arch)])
    bom = Bom(serial_number=serial_number(inventory),
              metadata=BomMetaData(component=root, timestamp=created_at(inventory),
                                   tools=ToolRepository(components=[Component(
                                       type=ComponentType.APPLICATION, name="bundle",
                                       version=inventory.tool_version)])),
              components=top)

    needs = {needer: list(needed) for needer, needed in inventory.dependencies}
    graph = [Dependency(ref=root.bom_ref,
                        dependencies=[Dependency(ref=components[d].bom_ref)
                                      for d in _roots(inventory)])]
    for file in inventory.files:
        on = [components[d].bom_ref for d in needs.get(file.dest, ())]
        on += [m.bom_ref for m in modules_of.get(file.dest, ())]
        graph.append(Dependency(ref=components[file.dest].bom_ref,
                                dependencies=[Dependency(ref=ref) for ref in on]))
    bom.dependencies = graph
    outputter = make_outputter(bom, OutputFormat.JSON, SchemaVersion.V1_6)
    return outputter.output_as_string(indent=2) + "\n"


# ---- SPDX --------------------------------------------------------------------------------


def spdx_json_by_library(inventory: Inventory) -> str:
    """The SPDX 2.3 JSON of the artifact, checked by spdx-tools' validators before it is
    written (ValueError if not valid: an invalid SBOM is never shipped)."""
    from spdx_tools.spdx.model import (
        Actor,
        ActorType,
        Checksum,
        ChecksumAlgorithm,
        CreationInfo,
        Document,
        ExternalPackageRef,
        ExternalPackageRefCategory,
        ExtractedLicensingInfo,
        File,
        FileType,
        PackagePurpose,
        Relationship,
        RelationshipType,
        SpdxNoAssertion,
    )
    from spdx_tools.spdx.model import Package as SpdxPackage
    from spdx_tools.spdx.writer.json.json_writer import write_document_to_stream

    check_consistent(inventory)
    lacking = [f.dest for f in inventory.files if not f.sha1]
    if lacking:
        raise ValueError(f"SPDX 2.3 needs every file's SHA-1; the inventory has none for "
                         f"{len(lacking)} files, e.g. {lacking[0]}")

    inventory = _sorted(inventory)
    file_ids = unique_ids("File", (f.dest for f in inventory.files))
    package_ids = unique_ids("Package-deb", (p.key for p in inventory.packages))
    modules = shipped_modules(inventory)
    module_ids = unique_ids("Package-golang", (m.identity for m in modules))
    artifact_id = unique_ids("Artifact", [inventory.name])[inventory.name]
    no_assertion = SpdxNoAssertion()

    def purl_ref(purl: PackageURL, comment: str | None = None) -> ExternalPackageRef:
        return ExternalPackageRef(ExternalPackageRefCategory.PACKAGE_MANAGER, "purl",
                                  purl.to_string(), comment)

    files = []
    for file in inventory.files:
        types = ([FileType.BINARY, FileType.APPLICATION] if file.kind == "program"
                 else [FileType.BINARY] if file.kind in ("library", "loader")
                 else [FileType.OTHER])
        files.append(File(
            name=f"./{file.dest}", spdx_id=file_ids[file.dest],
            checksums=[Checksum(ChecksumAlgorithm.SHA1, file.sha1),
                       Checksum(ChecksumAlgorithm.SHA256, file.sha256)],
            file_types=types,
            comment=(f"size: {file.size} bytes; kind: {file.kind}; package: "
                     f"{_package_word(file)}"
                     + (f"; patched by {file.patched_by}" if file.patched_by else ""))))

    refs: dict[str, tuple[str, set[Package]]] = {}  # LicenseRef -> (stands for, packages)
    packages = [SpdxPackage(
        spdx_id=artifact_id, name=inventory.name, download_location=no_assertion,
        files_analyzed=True, primary_package_purpose=PackagePurpose.APPLICATION,
        license_concluded=no_assertion, license_declared=no_assertion,
        copyright_text=no_assertion,
        comment=f"made by bundle {inventory.tool_version} for {inventory.arch}")]
    contained = {p.key: [f for f in inventory.files if f.package == p.key]
                 for p in inventory.packages}
    for package in inventory.packages:
        licence = licence_of(package)
        for ref, text in licence.refs:
            refs.setdefault(ref, (text, set()))[1].add(package)
        supplier = _supplier(package.maintainer)
        packages.append(SpdxPackage(
            spdx_id=package_ids[package.key], name=package.name, version=package.version,
            download_location=no_assertion,
            supplier=(no_assertion if supplier is None
                      else Actor(ActorType.ORGANIZATION, supplier[0], supplier[1])),
            files_analyzed=bool(contained[package.key]),
            source_info=(f"built from the source package {package.source} "
                         f"{package.source_version}"),
            license_concluded=no_assertion,
            license_declared=(no_assertion if licence.expression is None
                              else _spdx_expression(licence.expression)),
            license_comment=(f"{package.licence_kind}; " + (
                _licence_note(package) if licence.expression is None
                else f"read from {licence_path(package)}")),
            copyright_text=no_assertion,
            external_references=[purl_ref(deb_purl(package))],
            primary_package_purpose=PackagePurpose.LIBRARY,
            comment=(f"from the dpkg database of {package.database}; only the files "
                     "bundled are listed")))
    for shipped in modules:
        module = shipped.module
        notes = [f"go.sum: {module.sum}" if module.sum else "go.sum: none in the build info"]
        if _go_version(module.version) is None:
            notes.append(f"version: {module.version}")
        external = [purl_ref(go_purl(module.path, module.version))]
        if module.replaced_by is not None:
            target_path, target_version = module.replaced_by
            notes.append(f"replaced by {target_path} {target_version}: the code compiled "
                         "in is the replacement's")
            if not target_path.startswith((".", "/")):  # a local directory has no purl
                external.append(purl_ref(go_purl(target_path, target_version),
                                         "the replace target"))
        packages.append(SpdxPackage(
            spdx_id=module_ids[shipped.identity], name=module.path,
            version=_go_version(module.version), download_location=no_assertion,
            files_analyzed=False, license_concluded=no_assertion,
            license_declared=no_assertion, copyright_text=no_assertion,
            external_references=external,
            primary_package_purpose=(PackagePurpose.APPLICATION if module.main
                                     else PackagePurpose.LIBRARY),
            comment="; ".join(notes)))

    def edge(a: str, kind: RelationshipType, b: str) -> Relationship:
        return Relationship(a, kind, b)

    relationships = [edge("SPDXRef-DOCUMENT", RelationshipType.DESCRIBES, artifact_id)]
    relationships += [edge(artifact_id, RelationshipType.CONTAINS, file_ids[f.dest])
                      for f in inventory.files]
    relationships += [edge(package_ids[p.key], RelationshipType.CONTAINS, file_ids[f.dest])
                      for p in inventory.packages for f in contained[p.key]]
    relationships += [edge(file_ids[needer], RelationshipType.DEPENDS_ON, file_ids[dest])
                      for needer, needed in inventory.dependencies for dest in needed]
    relationships += [edge(file_ids[program], RelationshipType.CONTAINS,
                           module_ids[m.identity])
                      for m in modules for program in m.programs]

    extracted = [ExtractedLicensingInfo(
        license_id=ref, license_name=text,
        extracted_text=_extracted_text(text, using))
        for ref, (text, using) in sorted(refs.items())]
    document = Document(
        creation_info=CreationInfo(
            spdx_version=SPDX_VERSION, spdx_id="SPDXRef-DOCUMENT", name=inventory.name,
            document_namespace=spdx_namespace(inventory),
            creators=[Actor(ActorType.TOOL, f"bundle-{inventory.tool_version}")],
            created=created_at(inventory)),
        packages=packages, files=files, relationships=relationships,
        extracted_licensing_info=extracted)
    problems = spdx_problems(document)
    if problems:
        raise ValueError(f"the SPDX document would not be valid: {'; '.join(problems[:5])}")
    stream = io.StringIO()
    write_document_to_stream(document, stream, validate=False, drop_duplicates=False)
    return stream.getvalue() + "\n"


def _spdx_expression(expression: str) -> object:
    from spdx_tools.common.spdx_licensing import spdx_licensing

    return spdx_licensing.parse(expression)



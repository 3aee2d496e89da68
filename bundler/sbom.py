"""The artifact's SBOMs: CycloneDX 1.6 JSON and SPDX 2.3 JSON, both from one `Inventory`.

Both formats are written by their ecosystems' own libraries (cyclonedx-python-lib,
spdx-tools, packageurl-python) so that the documents are what those ecosystems' readers
and validators expect; the libraries are imported inside the two entry points because
they cost start-up time that `bundle inspect` and builds without an SBOM must not pay.

What the documents say, and why this way:
- The artifact is the described component (CycloneDX metadata.component, the SPDX
  package the document DESCRIBES); bundle's version is a property/comment, not the
  artifact's version: the artifact has none of its own.
- Every file is listed with the manifest's SHA-256 and size, every dpkg package with its
  purl (pkg:deb/...), every Go module with its purl (pkg:golang/...).
- Containment: SPDX says package CONTAINS file and artifact CONTAINS file. CycloneDX has
  no "contains" edge; nesting a file in its package's component would hide it from the
  many readers that take only the top-level list, so all components are top-level (all
  are the described artifact's by definition of the BOM), a package lists the files it
  installed as its evidence.occurrences (CycloneDX 1.6's "where this component was found")
  and each file names its package in the property bundle:package.
- Loads: file DEPENDS_ON file (CycloneDX `dependencies`), as the resolver recorded them.
- Go modules are compiled into the program file: SPDX says program CONTAINS module, not
  DEPENDS_ON, because DEPENDS_ON here means "another file must be present at run time"
  and a module is no separate element at run time; following CONTAINS from the artifact
  then reaches every module that ships. In CycloneDX the program dependsOn its modules,
  as CycloneDX's own Go tooling writes them, and the module's evidence.occurrences name
  the programs it is compiled into.
- Deterministic: timestamps are inventory.created, the serial number and document
  namespace are uuid5 over the inventory's content, components and relationships are
  sorted, and bom-refs / SPDXIDs are derived from dests, package keys and module paths.
"""

from __future__ import annotations

import hashlib
import io
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from bundler.inventory import NOASSERTION, GoModule, Inventory, InventoryFile, Package
from bundler.notices import licence_path

if TYPE_CHECKING:
    from cyclonedx.model.component import Component
    from packageurl import PackageURL
    from spdx_tools.spdx.model import Document as SpdxDocument

SPDX_VERSION = "SPDX-2.3"
PROPERTY = "bundle:"  # the namespace of bundle's CycloneDX properties
# A fixed namespace for the uuid5 serial numbers: the same inventory, the same serial.
_SERIAL_NAMESPACE = uuid.UUID("5b1d7c2e-8f0a-4c55-9a49-3c1f0e6b2d71")
_SPDX_ID_UNSAFE = re.compile(r"[^A-Za-z0-9.-]")
_UNKNOWN_PACKAGE = "unknown"
_MADE = "none: made by bundle"


# ---- facts both formats share (pure) -------------------------------------------------


def distro_namespace(distro: str | None) -> str:
    """The purl namespace of a dpkg package: the os-release ID from "ID-VERSION_ID"
    (debian-12 -> debian, ubuntu-22.04 -> ubuntu); a distro without a version ("debian"
    for testing) is its own ID; None (no os-release) -> debian, the dpkg default."""
    if not distro:
        return "debian"
    head, sep, tail = distro.rpartition("-")
    return head if sep and head and tail[:1].isdigit() else distro


def deb_purl(package: Package) -> PackageURL:
    """pkg:deb/<ID>/<name>@<version>?arch=<arch>&distro=<distro> (no distro qualifier when
    the root does not say which)."""
    from packageurl import PackageURL

    qualifiers = {"arch": package.architecture}
    if package.distro:
        qualifiers["distro"] = package.distro
    return PackageURL(type="deb", namespace=distro_namespace(package.distro),
                      name=package.name, version=package.version, qualifiers=qualifiers)


def go_purl(path: str, version: str | None) -> PackageURL:
    """pkg:golang/<module path>@<version>; no version for "(devel)" (a main module built
    from a checkout has none)."""
    from packageurl import PackageURL

    namespace, _, name = path.rpartition("/")
    return PackageURL(type="golang", namespace=namespace or None, name=name,
                      version=_go_version(version))


def _go_version(version: str | None) -> str | None:
    return None if version in (None, "", "(devel)") else version


@dataclass(frozen=True)
class ShippedModule:
    """A Go module once, however many programs compiled it in."""

    module: GoModule
    programs: tuple[str, ...]  # dests of the program files that contain it, sorted

    @property
    def identity(self) -> str:
        """path@version, and the replace target's when there is one: what makes two
        modules different components."""
        text = f"{self.module.path}@{self.module.version}"
        if self.module.replaced_by is not None:
            text += f"=>{self.module.replaced_by[0]}@{self.module.replaced_by[1]}"
        return text


def shipped_modules(inventory: Inventory) -> tuple[ShippedModule, ...]:
    """The Go modules of all programs, one per identity, sorted by it; a module main in
    one program and a dependency in another is one module (main if either says so)."""
    found: dict[tuple[str, str, tuple[str, str] | None], tuple[GoModule, set[str]]] = {}
    for program, modules in inventory.go_modules:
        for module in modules:
            key = (module.path, module.version, module.replaced_by)
            known, programs = found.setdefault(key, (module, set()))
            if (module.main and not known.main) or (module.sum and not known.sum):
                known = replace(known, main=known.main or module.main,
                                sum=known.sum or module.sum)
                found[key] = (known, programs)
            programs.add(program)
    shipped = [ShippedModule(module, tuple(sorted(programs)))
               for module, programs in found.values()]
    return tuple(sorted(shipped, key=lambda m: m.identity))


def check_consistent(inventory: Inventory) -> None:
    """Refuse an inventory that names a file or package it does not list: an SBOM with a
    dangling reference fails both validators, and it is a bug of whoever built the
    record, so it is said plainly here rather than as a schema error later."""
    dests = {f.dest for f in inventory.files}
    keys = {p.key for p in inventory.packages}
    if len(dests) != len(inventory.files):
        raise ValueError("inventory lists a file twice")
    if len(keys) != len(inventory.packages):
        raise ValueError("inventory lists a package twice")
    for file in inventory.files:
        if file.package is not None and file.package not in keys:
            raise ValueError(f"inventory: {file.dest} names package {file.package}, "
                             "which it does not list")
    for needer, needed in inventory.dependencies:
        for dest in (needer, *needed):
            if dest not in dests:
                raise ValueError(f"inventory: dependency on {dest}, which it does not list")
    for program, _ in inventory.go_modules:
        if program not in dests:
            raise ValueError(f"inventory: Go modules of {program}, which it does not list")


def _sorted(inventory: Inventory) -> Inventory:
    """The record in the order the documents list it, whatever order it came in."""
    return replace(inventory, files=tuple(sorted(inventory.files, key=lambda f: f.dest)),
                   packages=tuple(sorted(inventory.packages, key=lambda p: p.key)),
                   dependencies=tuple(sorted((needer, tuple(sorted(needed)))
                                             for needer, needed in inventory.dependencies)))


def serial_number(inventory: Inventory) -> uuid.UUID:
    """uuid5 over what the SBOM describes: the artifact's name, each file's dest, hash and
    package, each package's key and version, each module's identity. Not over host paths
    or the tool's version: two builds of the same thing elsewhere describe the same
    content; a changed byte of any file gives another serial."""
    lines = [f"artifact {inventory.name} {inventory.arch}"]
    lines += sorted(f"file {f.sha256} {f.dest} {f.package}" for f in inventory.files)
    lines += sorted(f"package {p.key} {p.version} {p.licence}" for p in inventory.packages)
    lines += [f"module {m.identity} {m.module.sum} {' '.join(m.programs)}"
              for m in shipped_modules(inventory)]
    return uuid.uuid5(_SERIAL_NAMESPACE, "\n".join(lines))


def created_at(inventory: Inventory) -> datetime:
    """SOURCE_DATE_EPOCH as the documents' timestamp (0: 1970-01-01T00:00:00Z)."""
    return datetime.fromtimestamp(inventory.created, timezone.utc)


def unique_ids(prefix: str, names: Iterable[str]) -> dict[str, str]:
    """An SPDXID for each name: SPDXRef-<prefix>-<name> with everything outside
    [A-Za-z0-9.-] made "-"; names that clash once sanitised (lib/a+b, lib/a-b) each get a
    suffix from a hash of the name, so an ID does not depend on which other names exist
    beyond its clash."""
    by_id: dict[str, list[str]] = {}
    for name in sorted(set(names)):
        by_id.setdefault(f"SPDXRef-{prefix}-{_SPDX_ID_UNSAFE.sub('-', name)}", []).append(name)
    ids: dict[str, str] = {}
    taken = {spdx_id for spdx_id, group in by_id.items() if len(group) == 1}
    for spdx_id, group in by_id.items():
        if len(group) == 1:
            ids[group[0]] = spdx_id
            continue
        for name in group:
            candidate = f"{spdx_id}-{hashlib.sha256(name.encode()).hexdigest()[:12]}"
            while candidate in taken:
                candidate += "-x"
            taken.add(candidate)
            ids[name] = candidate
    return ids


@dataclass(frozen=True)
class Licence:
    """A package's licence as both documents say it."""

    expression: str | None  # a valid SPDX expression; None: NOASSERTION
    refs: tuple[tuple[str, str], ...]  # (LicenseRef-id, what it stands for), sorted


def licence_of(package: Package) -> Licence:
    """The package's SPDX expression, normalised by the SPDX licence list ("LGPL-2.1+" ->
    "LGPL-2.1-or-later"); a symbol the list does not know becomes LicenseRef-<symbol>
    (a DEP-5 short name such as "GPL-3" or "public-domain" is not an SPDX id, and an
    unknown id would make the SPDX document invalid); an expression that does not parse
    at all becomes one LicenseRef. NOASSERTION stays NOASSERTION."""
    from license_expression import ExpressionError, LicenseSymbol, LicenseWithExceptionSymbol
    from spdx_tools.common.spdx_licensing import spdx_licensing

    text = package.licence.strip()
    if not text or text == NOASSERTION:
        return Licence(None, ())
    try:
        parsed = spdx_licensing.parse(text, validate=False)
    except ExpressionError:
        ref = _licence_ref(text)
        return Licence(ref, ((ref, text),))
    if parsed is None:
        return Licence(None, ())
    unknown = set(spdx_licensing.validate(parsed).invalid_symbols)
    refs: dict[str, str] = {}
    substitutions: dict[object, object] = {}

    def referenced(key: str) -> LicenseSymbol:
        ref = _licence_ref(key)
        refs[ref] = key
        return LicenseSymbol(ref)

    for symbol in parsed.symbols:
        if isinstance(symbol, LicenseWithExceptionSymbol):
            licence, exception = symbol.license_symbol.key, symbol.exception_symbol.key
            if exception in unknown:  # SPDX 2.3 has no custom exceptions: one ref for both
                substitutions[symbol] = referenced(f"{licence} WITH {exception}")
            elif licence in unknown or _is_ref(licence):
                substitutions[symbol] = LicenseWithExceptionSymbol(
                    referenced(licence), symbol.exception_symbol)
        elif symbol.key in unknown or _is_ref(symbol.key):
            substitutions[symbol] = referenced(symbol.key)
    if substitutions:
        parsed = parsed.subs(substitutions)
    return Licence(str(parsed), tuple(sorted(refs.items())))


def _is_ref(key: str) -> bool:
    return key.startswith("LicenseRef-")


def _licence_ref(text: str) -> str:
    bare = text.removeprefix("LicenseRef-")
    return "LicenseRef-" + (_SPDX_ID_UNSAFE.sub("-", bare).strip("-") or "unknown")


def _licence_note(package: Package) -> str:
    """Where the licence terms are when no SPDX expression could be read."""
    if package.copyright is None:
        return "not stated: the build root has no copyright file for this package"
    return ("not machine-readable (not DEP-5): the copyright file is carried in "
            f"{licence_path(package)}")


def _supplier(maintainer: str | None) -> tuple[str, str | None] | None:
    """("Name", "email") from dpkg's "Name <email>"."""
    if not maintainer or not maintainer.strip():
        return None
    match = re.fullmatch(r"\s*(.*?)\s*<([^<>]*)>\s*", maintainer)
    if match and match.group(1):
        return match.group(1), match.group(2) or None
    return maintainer.strip(), None


def _roots(inventory: Inventory) -> list[str]:
    """The files nothing in the artifact loads (programs, launchers, data): the artifact's
    direct dependencies, from which every file is reached."""
    loaded = {dest for _, needed in inventory.dependencies for dest in needed}
    return [f.dest for f in inventory.files if f.dest not in loaded]


# ---- CycloneDX --------------------------------------------------------------------------


def cyclonedx_json(inventory: Inventory) -> str:
    """The CycloneDX 1.6 JSON of the artifact (see the module docstring for what it says)."""
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
                        prop("package", _package_word(file))])

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


def _file_ref(dest: str) -> str:
    return f"file:{dest}"


def _package_ref(package: Package) -> str:
    return f"deb:{package.key}"


def _module_ref(module: ShippedModule) -> str:
    return f"golang:{module.identity}"


# ---- SPDX --------------------------------------------------------------------------------


def spdx_json(inventory: Inventory) -> str:
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
                     f"{_package_word(file)}")))

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


def spdx_problems(document: SpdxDocument) -> list[str]:
    """spdx-tools' validation of everything but the relationships, whose endpoints are
    checked against a set here: the library's relationship check lists every SPDXID of
    the document once per relationship end, 8 s for 2,000 files where this takes
    milliseconds (the tests run the library's full validator)."""
    from spdx_tools.spdx.validation.creation_info_validator import validate_creation_info
    from spdx_tools.spdx.validation.extracted_licensing_info_validator import (
        validate_extracted_licensing_infos,
    )
    from spdx_tools.spdx.validation.file_validator import validate_files
    from spdx_tools.spdx.validation.package_validator import validate_packages

    version = document.creation_info.spdx_version
    messages = [*validate_creation_info(document.creation_info, version),
                *validate_packages(document.packages, version, document),
                *validate_files(document.files, version, document),
                *validate_extracted_licensing_infos(document.extracted_licensing_info)]
    problems = [m.validation_message for m in messages]
    ids = [document.creation_info.spdx_id, *(p.spdx_id for p in document.packages),
           *(f.spdx_id for f in document.files)]
    if len(set(ids)) != len(ids):
        problems.append("an SPDXID is used twice")
    known = set(ids)
    problems += [f"a relationship names {end}, which the document does not list"
                 for r in document.relationships
                 for end in (r.spdx_element_id, r.related_spdx_element_id)
                 if isinstance(end, str) and end not in known]
    return problems


def _extracted_text(name: str, packages: Iterable[Package]) -> str:
    """What a LicenseRef stands for: bundle has the licence's name, not its text, and says
    where the text is (the package's copyright file, or that the root had none)."""
    places = sorted({licence_path(p) if p.copyright is not None
                     else f"no copyright file in the build root for {p.name}"
                     for p in packages})
    names = ", ".join(sorted({p.name for p in packages}))
    return (f"The licence called {name!r} in the Debian copyright file of {names}; its text "
            f"is in: {'; '.join(places)}.")


def spdx_namespace(inventory: Inventory) -> str:
    """A URI unique to this content (no "#": SPDX forbids it), from the serial number."""
    from urllib.parse import quote

    return (f"https://spdx.org/spdxdocs/bundle/{quote(inventory.name, safe='')}-"
            f"{serial_number(inventory)}")


def _spdx_expression(expression: str) -> object:
    from spdx_tools.common.spdx_licensing import spdx_licensing

    return spdx_licensing.parse(expression)


def _package_word(file: InventoryFile) -> str:
    """What the SBOMs say of a file's package: its key, unknown, or made by bundle."""
    return file.package or (_MADE if file.made else _UNKNOWN_PACKAGE)

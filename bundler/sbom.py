"""The artifact's SBOMs: CycloneDX 1.6 JSON and SPDX 2.3 JSON, both from one `Inventory`.

Both documents are written here with the json module, byte for byte what the ecosystems'
own libraries (cyclonedx-python-lib 11, spdx-tools 0.8) write for the same content: the
tests hold them equal to those libraries' output (tests/support/sbom_reference.py, the
code that wrote them before) on real inventories and run both validators. The libraries
are in the test extra only: importing them cost every build 0.3 s, and writing a
1,000-file CycloneDX document through its model took 1.1 s. Purls are packageurl-python's
(1 ms to import), licence expressions license-expression's, with the SPDX licence list
licences.py builds once per process.

What the documents say, and why this way:
- The artifact is the described component (CycloneDX metadata.component, the SPDX
  package the document DESCRIBES); bundle's version is a property/comment, not the
  artifact's version: the artifact has none of its own.
- Every file is listed with the manifest's SHA-256 and size, every dpkg package with its
  purl (pkg:deb/...), every Go module with its purl (pkg:golang/...). A copy LIEF patched
  names the LIEF that wrote it (bundle:patched-by; the SPDX file's comment): its bytes
  depend on that release.
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
import json
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from bundler import licences
from bundler.inventory import NOASSERTION, GoModule, Inventory, InventoryFile, Package
from bundler.notices import licence_path

if TYPE_CHECKING:
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


def _file_properties(file: InventoryFile) -> list[tuple[str, str]]:
    properties = [("size", str(file.size)), ("kind", file.kind),
                  ("package", _package_word(file))]
    if file.patched_by is not None:
        properties.append(("patched-by", file.patched_by))
    return properties


def _file_comment(file: InventoryFile) -> str:
    """An SPDX file's comment: its size, kind, package and, for a patched copy, what
    wrote it."""
    comment = f"size: {file.size} bytes; kind: {file.kind}; package: {_package_word(file)}"
    return comment if file.patched_by is None else f"{comment}; patched by {file.patched_by}"


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

    spdx_licensing = licences.spdx_licensing()  # what spdx-tools checked against: the same
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

_CDX_SCHEMA = "http://cyclonedx.org/schema/bom-1.6.schema.json"


def cyclonedx_json(inventory: Inventory) -> str:
    """The CycloneDX 1.6 JSON of the artifact (see the module docstring for what it says),
    byte for byte what cyclonedx-python-lib 11 writes for the same Bom: its key order (its
    serializer's: the model's property names, alphabetical), its sorting of components,
    properties, occurrences and dependencies, and a dependency entry for every component."""
    check_consistent(inventory)
    inventory = _sorted(inventory)
    files_of: dict[str, list[str]] = {}
    for file in inventory.files:
        if file.package is not None:
            files_of.setdefault(file.package, []).append(file.dest)

    components = [_cdx_component("file", file.dest, None, _file_ref(file.dest),
                                 hashes=[{"alg": "SHA-256", "content": file.sha256}],
                                 properties=_file_properties(file))
                  for file in inventory.files]
    for package in inventory.packages:
        licence = licence_of(package)
        props = [("deb:source", package.source),
                 ("deb:source-version", package.source_version),
                 ("deb:database", package.database),
                 ("licence-kind", package.licence_kind)]
        if licence.expression is None:
            props.append(("licence", f"{NOASSERTION}: {_licence_note(package)}"))
        components.append(_cdx_component(
            "library", package.name, package.version, _package_ref(package),
            purl=deb_purl(package).to_string(), supplier=_cdx_supplier(package.maintainer),
            licenses=(None if licence.expression is None
                      else [{"expression": licence.expression}]),
            properties=props,
            evidence=_cdx_found_in(_package_ref(package), files_of.get(package.key, ()),
                                   "a file this package installed")))

    modules_of: dict[str, list[str]] = {}
    for shipped in shipped_modules(inventory):
        module = shipped.module
        props = [("go:main", "true" if module.main else "false")]
        if module.sum:
            props.append(("go:sum", module.sum))
        if _go_version(module.version) is None:
            props.append(("go:version", module.version))
        if module.replaced_by is not None:
            props.append(("go:replaced-by", " ".join(module.replaced_by)))
        ref = _module_ref(shipped)
        components.append(_cdx_component(
            "application" if module.main else "library", module.path,
            _go_version(module.version), ref,
            purl=go_purl(module.path, module.version).to_string(), properties=props,
            evidence=_cdx_found_in(ref, shipped.programs,
                                   "a program this module is compiled into")))
        for program in shipped.programs:
            modules_of.setdefault(program, []).append(ref)

    root_ref = f"artifact:{inventory.name}"
    needs = dict(inventory.dependencies)
    graph = {root_ref: [_file_ref(dest) for dest in _roots(inventory)]}
    graph.update({str(component["bom-ref"]): [] for component in components})
    for file in inventory.files:
        graph[_file_ref(file.dest)] = [*(_file_ref(d) for d in needs.get(file.dest, ())),
                                       *modules_of.get(file.dest, ())]
    document: dict[str, object] = {}
    if components:
        document["components"] = sorted(components, key=_cdx_component_order)
    document["dependencies"] = [
        {"dependsOn": sorted(set(on)), "ref": ref} if on else {"ref": ref}
        for ref, on in sorted(graph.items())]
    document["metadata"] = {
        "component": _cdx_component("application", inventory.name, None, root_ref,
                                    properties=[("version", inventory.tool_version),
                                                ("arch", inventory.arch)]),
        "timestamp": created_at(inventory).isoformat(),
        "tools": {"components": [{"name": "bundle", "type": "application",
                                  "version": inventory.tool_version}]}}
    document["serialNumber"] = serial_number(inventory).urn
    document["version"] = 1
    document["$schema"] = _CDX_SCHEMA
    document["bomFormat"] = "CycloneDX"
    document["specVersion"] = "1.6"
    return json.dumps(document, indent=2) + "\n"


def _cdx_component(kind: str, name: str, version: str | None, ref: str, *,
                   hashes: list[dict[str, str]] | None = None, purl: str | None = None,
                   supplier: dict[str, object] | None = None,
                   licenses: list[dict[str, str]] | None = None,
                   properties: Iterable[tuple[str, str]] = (),
                   evidence: dict[str, object] | None = None) -> dict[str, object]:
    """One component, its keys in the library's order, what is absent left out."""
    fields: dict[str, object | None] = {
        "bom-ref": ref, "evidence": evidence, "hashes": hashes, "licenses": licenses,
        "name": name,
        "properties": [{"name": PROPERTY + key, "value": value}
                       for key, value in sorted(properties)] or None,
        "purl": purl, "supplier": supplier, "type": kind, "version": version}
    return {key: value for key, value in fields.items() if value is not None}


def _cdx_component_order(component: dict[str, object]) -> tuple[object, ...]:
    """The library's order of components: type, name, version (none last), bom-ref (every
    other field it compares comes after the bom-ref, which is unique)."""
    version = component.get("version")
    return (component["type"], component["name"], version is None, version or "",
            component["bom-ref"])


def _cdx_supplier(maintainer: str | None) -> dict[str, object] | None:
    supplier = _supplier(maintainer)
    if supplier is None:
        return None
    name, email = supplier
    if not email:
        return {"name": name}
    return {"contact": [{"email": email, "name": name}], "name": name}


def _cdx_found_in(ref: str, dests: Iterable[str], context: str) -> dict[str, object] | None:
    """evidence.occurrences: where a component was found, each with a bom-ref of its own
    (ref#dest), sorted by it as the library does."""
    occurrences = [{"additionalContext": context, "bom-ref": f"{ref}#{dest}", "location": dest}
                   for dest in sorted(dests, key=lambda dest: f"{ref}#{dest}")]
    return {"occurrences": occurrences} if occurrences else None


def _file_ref(dest: str) -> str:
    return f"file:{dest}"


def _package_ref(package: Package) -> str:
    return f"deb:{package.key}"


def _module_ref(module: ShippedModule) -> str:
    return f"golang:{module.identity}"


# ---- SPDX --------------------------------------------------------------------------------


def spdx_json(inventory: Inventory) -> str:
    """The SPDX 2.3 JSON of the artifact, byte for byte what spdx-tools 0.8 writes for the
    same document (its key order: its converters' property order; what is None or empty
    left out), checked before it is written (ValueError if not: an invalid SBOM is never
    shipped)."""
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

    files = []
    for file in inventory.files:
        types = (["BINARY", "APPLICATION"] if file.kind == "program"
                 else ["BINARY"] if file.kind in ("library", "loader") else ["OTHER"])
        files.append({
            "SPDXID": file_ids[file.dest],
            "checksums": [{"algorithm": "SHA1", "checksumValue": file.sha1},
                          {"algorithm": "SHA256", "checksumValue": file.sha256}],
            "comment": _file_comment(file),
            "fileName": f"./{file.dest}", "fileTypes": types})

    refs: dict[str, tuple[str, set[Package]]] = {}  # LicenseRef -> (stands for, packages)
    packages = [_spdx_package(
        artifact_id, inventory.name, None, files_analyzed=True, purpose="APPLICATION",
        comment=f"made by bundle {inventory.tool_version} for {inventory.arch}")]
    contained = {p.key: [f for f in inventory.files if f.package == p.key]
                 for p in inventory.packages}
    for package in inventory.packages:
        licence = licence_of(package)
        for ref, text in licence.refs:
            refs.setdefault(ref, (text, set()))[1].add(package)
        supplier = _supplier(package.maintainer)
        packages.append(_spdx_package(
            package_ids[package.key], package.name, package.version,
            files_analyzed=bool(contained[package.key]), purpose="LIBRARY",
            comment=(f"from the dpkg database of {package.database}; only the files "
                     "bundled are listed"),
            external=[_purl_ref(deb_purl(package).to_string())],
            licence_comment=(f"{package.licence_kind}; " + (
                _licence_note(package) if licence.expression is None
                else f"read from {licence_path(package)}")),
            # (the library wrote str(parse(expression)): licence_of's expression is already
            # that rendering, and parsing it again gives it back unchanged)
            licence_declared=licence.expression or NOASSERTION,
            source_info=(f"built from the source package {package.source} "
                         f"{package.source_version}"),
            supplier=(NOASSERTION if supplier is None
                      else f"Organization: {supplier[0]}"
                      + (f" ({supplier[1]})" if supplier[1] else ""))))
    for shipped in modules:
        module = shipped.module
        notes = [f"go.sum: {module.sum}" if module.sum else "go.sum: none in the build info"]
        if _go_version(module.version) is None:
            notes.append(f"version: {module.version}")
        external = [_purl_ref(go_purl(module.path, module.version).to_string())]
        if module.replaced_by is not None:
            target_path, target_version = module.replaced_by
            notes.append(f"replaced by {target_path} {target_version}: the code compiled "
                         "in is the replacement's")
            if not target_path.startswith((".", "/")):  # a local directory has no purl
                external.append(_purl_ref(go_purl(target_path, target_version).to_string(),
                                          "the replace target"))
        packages.append(_spdx_package(
            module_ids[shipped.identity], module.path, _go_version(module.version),
            files_analyzed=False, purpose="APPLICATION" if module.main else "LIBRARY",
            comment="; ".join(notes), external=external))

    def edge(a: str, kind: str, b: str) -> dict[str, str]:
        return {"spdxElementId": a, "relatedSpdxElement": b, "relationshipType": kind}

    relationships = [edge("SPDXRef-DOCUMENT", "DESCRIBES", artifact_id)]
    relationships += [edge(artifact_id, "CONTAINS", file_ids[f.dest]) for f in inventory.files]
    relationships += [edge(package_ids[p.key], "CONTAINS", file_ids[f.dest])
                      for p in inventory.packages for f in contained[p.key]]
    relationships += [edge(file_ids[needer], "DEPENDS_ON", file_ids[dest])
                      for needer, needed in inventory.dependencies for dest in needed]
    relationships += [edge(file_ids[program], "CONTAINS", module_ids[m.identity])
                      for m in modules for program in m.programs]

    document: dict[str, object] = {
        "SPDXID": "SPDXRef-DOCUMENT",
        "creationInfo": {
            "created": created_at(inventory).replace(tzinfo=None).isoformat() + "Z",
            "creators": [f"Tool: bundle-{inventory.tool_version}"]},
        "dataLicense": "CC0-1.0"}
    if refs:
        document["hasExtractedLicensingInfos"] = [
            {"extractedText": _extracted_text(text, using), "licenseId": ref, "name": text}
            for ref, (text, using) in sorted(refs.items())]
    document.update({"name": inventory.name, "spdxVersion": SPDX_VERSION,
                     "documentNamespace": spdx_namespace(inventory), "packages": packages})
    if files:
        document["files"] = files
    document["relationships"] = relationships
    problems = document_problems(document)
    if problems:
        raise ValueError(f"the SPDX document would not be valid: {'; '.join(problems[:5])}")
    return json.dumps(document, indent=4) + "\n"


def _spdx_package(spdx_id: str, name: str, version: str | None, *, files_analyzed: bool,
                  purpose: str, comment: str, external: list[dict[str, str]] | None = None,
                  licence_comment: str | None = None, licence_declared: str = NOASSERTION,
                  source_info: str | None = None,
                  supplier: str | None = None) -> dict[str, object]:
    """One package, its keys in spdx-tools' order, what is absent left out."""
    fields: dict[str, object | None] = {
        "SPDXID": spdx_id, "comment": comment, "copyrightText": NOASSERTION,
        "downloadLocation": NOASSERTION, "externalRefs": external,
        "filesAnalyzed": files_analyzed, "licenseComments": licence_comment,
        "licenseConcluded": NOASSERTION, "licenseDeclared": licence_declared, "name": name,
        "primaryPackagePurpose": purpose, "sourceInfo": source_info, "supplier": supplier,
        "versionInfo": version}
    return {key: value for key, value in fields.items() if value is not None}


def _purl_ref(purl: str, comment: str | None = None) -> dict[str, str]:
    head = {"comment": comment} if comment is not None else {}
    return {**head, "referenceCategory": "PACKAGE_MANAGER", "referenceLocator": purl,
            "referenceType": "purl"}


_SPDX_ID = re.compile(r"SPDXRef-[A-Za-z0-9.-]+")
_LICENCE_REF = re.compile(r"LicenseRef-[A-Za-z0-9.-]+")
_HEX = re.compile(r"[0-9a-f]+")
_CHECKSUM_LENGTH = {"SHA1": 40, "SHA256": 64}


def document_problems(document: dict[str, Any]) -> list[str]:
    """What in an SPDX document written here depends on the inventory's data and could make
    it invalid: malformed or repeated SPDXIDs, relationships to elements it does not list,
    checksums that are not lowercase hex of their length, LicenseRefs it does not define.
    The rest (the structure, the licence list's ids, which licence_of guarantees) is fixed
    by the code above; the tests run spdx-tools' full validator on real inventories."""
    problems = []
    elements = [*document["packages"], *document.get("files", [])]
    ids = [document["SPDXID"], *(element["SPDXID"] for element in elements)]
    problems += [f"malformed SPDXID {spdx_id!r}" for spdx_id in ids
                 if not _SPDX_ID.fullmatch(spdx_id)]
    if len(set(ids)) != len(ids):
        problems.append("an SPDXID is used twice")
    known = set(ids)
    problems += [f"a relationship names {end}, which the document does not list"
                 for relationship in document["relationships"]
                 for end in (relationship["spdxElementId"], relationship["relatedSpdxElement"])
                 if end not in known]
    problems += [f"{file['fileName']}: {checksum['algorithm']} {checksum['checksumValue']!r} "
                 "is not a digest" for file in document.get("files", [])
                 for checksum in file["checksums"]
                 if len(checksum["checksumValue"]) != _CHECKSUM_LENGTH[checksum["algorithm"]]
                 or not _HEX.fullmatch(checksum["checksumValue"])]
    defined = [info["licenseId"] for info in document.get("hasExtractedLicensingInfos", [])]
    problems += [f"malformed licence id {ref!r}" for ref in defined
                 if not _LICENCE_REF.fullmatch(ref)]
    problems += [f"{package['name']}: {ref} is not defined in the document"
                 for package in document["packages"]
                 for ref in re.findall(r"LicenseRef-[^\s()]*", package["licenseDeclared"])
                 if ref not in defined]
    return problems


def spdx_problems(document: SpdxDocument) -> list[str]:
    """spdx-tools' validation of everything but the relationships, whose endpoints are
    checked against a set here: the library's relationship check lists every SPDXID of
    the document once per relationship end, 8 s for 2,000 files where this takes
    milliseconds. For the tests and tools/: it needs spdx-tools, which is in the test extra
    only; spdx_json checks its documents with document_problems."""
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


def _package_word(file: InventoryFile) -> str:
    """What the SBOMs say of a file's package: its key, unknown, or made by bundle."""
    return file.package or (_MADE if file.made else _UNKNOWN_PACKAGE)

"""What shipping an artifact obliges, as files inside it: each package's copyright file,
the SOURCES notice, and the inventory its SBOMs are written from.

glibc is LGPL-2.1-or-later and libgcc_s GPL-3.0-or-later with the runtime exception:
redistributing them means carrying their terms and telling the recipient where the exact
source is. The copyright files come from the build root (provenance.py found them); the
notice names every source package at the version bundled. All pure: the build writes them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bundler.inventory import Inventory, InventoryFile, Package, Provenance
from bundler.manifest import LICENSES_DIR, FileRecord
from bundler.plan import BundlePlan
from bundler.resolve import RUN_TIME_SUFFIX, Closure


def licence_path(package: Package) -> str:
    """Where a package's copyright file goes in the artifact (one per package name: the
    same package for two architectures has one copyright file)."""
    return f"{LICENSES_DIR}/{package.name}/copyright"


def carried_licences(provenance: Provenance) -> tuple[tuple[str, str, str], ...]:
    """(artifact path, the copyright file's path as recorded, its host path) for each
    package that has one."""
    chosen: dict[str, str] = {}
    for package in provenance.packages:
        if package.copyright is not None:
            chosen.setdefault(licence_path(package), package.copyright)
    tree = provenance.tree.rstrip("/")
    return tuple((dest, recorded, tree + recorded) for dest, recorded in sorted(chosen.items()))


def sources_notice(provenance: Provenance, tool_version: str) -> str:
    """The SOURCES file: each source package and the exact version bundled, the binary
    packages and licences it gave, and what came from no package."""
    by_source: dict[tuple[str, str], list[Package]] = {}
    for package in provenance.packages:
        by_source.setdefault((package.source, package.source_version), []).append(package)
    lines = [
        f"Sources of what this artifact redistributes (written by bundle {tool_version})",
        "",
        "Every file of the artifact is listed in .bundle/manifest.json with the package it",
        "came from; the copyright file of each package is in .bundle/licenses/PACKAGE/.",
        "Below, each source package at the exact version bundled. The GNU LGPL and GPL",
        "entitle you to the complete source of what they cover: each version is kept in",
        "Debian's snapshot archive under its source package name and version, and",
        "`apt-get source NAME=VERSION` fetches it where a mirror still carries it.",
        "",
        f"Package database: {provenance.note}",
        "",
    ]
    if not by_source:
        lines.append("No file came from a known package.")
    for (source, version), packages in sorted(by_source.items()):
        lines.append(f"{source} {version}")
        for package in sorted(packages, key=lambda p: p.key):
            lines.append(f"    {package.name} {package.version} {package.architecture}: "
                         f"{package.licence}")
    unknown = sorted(f.dest for f in provenance.files if f.package is None and f.source)
    if unknown:
        lines += ["", "From no package known to the database (their source is their "
                      "builder's to offer):"]
        lines += [f"    {dest}" for dest in unknown]
    modules = sorted({(m.path, m.version) for _, group in provenance.go_modules
                      for m in group if not m.main})
    if modules:
        lines += ["", "Go modules compiled into the programs (source at the module proxy's "
                      "path and version):"]
        lines += [f"    {path} {version}" for path, version in modules]
    return "\n".join(lines) + "\n"


def inventory_of(plan: BundlePlan, files: Sequence[FileRecord], provenance: Provenance,
                 closures: Sequence[Closure], tool_version: str, created: int,
                 sha1: Mapping[str, str]) -> Inventory:
    """The SBOMs' facts: each archived file with the manifest's digest (and the SHA-1 SPDX
    wants, by path), its package and what patched it, the packages, the Go modules, and
    who loads whom."""
    package_of = {f.dest: f.package for f in provenance.files}
    listed = tuple(InventoryFile(r.path, r.sha256 or "", r.size or 0, r.kind,
                                 r.package or package_of.get(r.path), sha1.get(r.path, ""),
                                 made=r.source is None, patched_by=r.rewriter)
                   for r in sorted(files, key=lambda r: r.path) if r.type == "file")
    return Inventory(name=plan.name, arch=plan.arch, tool_version=tool_version,
                     created=created, files=listed, packages=provenance.packages,
                     go_modules=tuple((f"libexec/{program}", modules)
                                      for program, modules in provenance.go_modules),
                     dependencies=dependency_graph(plan, closures))


def dependency_graph(plan: BundlePlan, closures: Sequence[Closure],
                     ) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """dest -> the dests it loads: each program its loader and DT_NEEDED libraries, each
    library its own, libc.so.6 what glibc loads at run time; by the resolver's records.
    A program's dest is the file holding its bytes (`plan.program_files`), never a link."""
    dest_of_source = {f.source: f.dest for f in plan.files
                      if f.source is not None and f.kind in ("library", "loader", "program")}
    edges: dict[str, set[str]] = {}
    for closure, program in zip(closures, plan.program_files, strict=True):
        by_label = {closure.program_label: program}
        for library in closure.libraries:
            dest = dest_of_source.get(library.host_path)
            if dest is not None:
                by_label[library.name] = dest
        if closure.loader is not None:
            loader = dest_of_source.get(closure.loader.host_path)
            if loader is not None:
                edges.setdefault(program, set()).add(loader)
        for library in closure.libraries:
            dest = by_label.get(library.name)
            for requester in library.requested_by:
                needer = by_label.get(requester.removesuffix(RUN_TIME_SUFFIX))
                if dest is not None and needer is not None and needer != dest:
                    edges.setdefault(needer, set()).add(dest)
    return tuple(sorted((needer, tuple(sorted(needed))) for needer, needed in edges.items()))

"""`bundle compare ARTIFACT STATIC`: an existing artifact against a static build.

The I/O edge of the command: the artifact is unpacked and checked against its manifest
(integrity.unpacked), its program and libraries read, the static build judged
(static_build.py), both optionally run (side_by_side.py), and the report assembled from the
model (report_model.py) with the verdict (verdict.py).
"""

from __future__ import annotations

import os

from bundler.archive import output_format
from bundler.diagnose import diagnosis_for
from bundler.elf import read_elf
from bundler.errors import InputError
from bundler.glibc import is_glibc
from bundler.golang import read_build_info
from bundler.hazards import (
    artifact_hazards,
    dynamic_hazards,
)
from bundler.integrity import unpacked
from bundler.ldso import read_loader, search_facts
from bundler.machine import architecture_of
from bundler.manifest import BUNDLE_KINDS, Manifest
from bundler.native_launcher import launcher_note
from bundler.nss import coverage_from_manifest
from bundler.report_model import (
    ArtifactSummary,
    InputSummary,
    LibraryLine,
    Needs,
    Report,
    assemble,
    carried,
    glibc_package_of,
    licensing_of,
    runtime_parts,
)
from bundler.requirements import glibc_need, other_needs
from bundler.runtime_loads import objects_call_nss, uses_threads
from bundler.side_by_side import run_both
from bundler.start_modes import start_modes
from bundler.static_build import static_side
from bundler.sysroot import Sysroot
from bundler.verdict import verdict_for


def compare_report(artifact_path: str, static_path: str,
                   run_args: tuple[str, ...] | None, sysroot: str = "/") -> Report:
    """`bundle compare`: an existing artifact against a static build. A Go program gets
    the diagnosis too, with `sysroot` searched for the static archives a static link
    needs (with the system dirs of the artifact's own loader)."""
    with unpacked(artifact_path) as checked:
        top, manifest = checked.top, checked.manifest
        program = manifest.programs[0]
        program_record = manifest.program_record(program)  # its file, not a link to it
        facts = read_elf(os.path.join(top, *program_record.path.split("/")))
        # The artifact's own loader (the build host's glibc): its system dirs, --argv0.
        loader = search_facts(read_loader(top, manifest.loader), architecture_of(facts.ident))
        records = manifest.files
        run_time = {r.path[4:] for r in records if r.loaded_at_run_time}
        objects = [(program, facts)] + [
            (name, read_elf(os.path.join(top, "lib", name)))
            for name in _names(os.path.join(top, "lib"))
            if not is_glibc(name) and name not in run_time
            and _is_elf_file(os.path.join(top, "lib", name))
        ]
        libraries = tuple(
            LibraryLine(r.path[4:], r.path, r.source or "", "bundled", is_glibc(r.path[4:]),
                        r.size or 0)
            for r in records if r.kind in ("library", "loader")
        )
        need = glibc_need(objects)
        needs = Needs(glibc_need([(program, facts)]), need, other_needs(objects), libraries, ())
        compressed = os.path.getsize(artifact_path) if os.path.isfile(artifact_path) else None
        files = [r for r in records if r.type == "file"]
        nss_cover = coverage_from_manifest(manifest, objects_call_nss(objects))
        artifact = ArtifactSummary(
            out=artifact_path,
            format="dir" if os.path.isdir(artifact_path) else _format(artifact_path),
            files=len(files), raw_size=sum(r.size or 0 for r in files),
            compressed_size=compressed, sha256=checked.unpacked.sha256,
            launcher=manifest.launcher,
            interpreter=facts.interpreter or "", prefix=manifest.prefix,
            glibc=manifest.glibc, min_kernel=manifest.min_kernel,
            glibc_package=glibc_package_of(((r.path, r.package) for r in files),
                                           manifest.packages),
            runtime_parts=runtime_parts({r.path[4:] for r in records
                                         if r.path.startswith("lib/")},
                                        uses_threads(objects), _environment(manifest),
                                        manifest.runtime_missing, nss_cover,
                                        manifest.runtime_missing_needed),
            nss=nss_cover,
            launcher_type=manifest.launcher_type,
            launcher_note=launcher_note(manifest.launcher_type, "as the manifest records",
                                        loader.argv0),
            sealed=manifest.sealed, unsealed=manifest.unsealed,
            start_modes=start_modes(manifest.launcher_type,
                                    loader.argv0,
                                    os.path.basename(manifest.loader),
                                    any((r.mode or 0) & 0o6000 for r in records
                                        if r.path.startswith("libexec/"))),
        )
        hazards = dynamic_hazards(facts, objects, carried(artifact), nss_cover) + artifact_hazards(
            manifest.launcher, manifest.excluded)
        static = static_side(static_path, facts, program)
        go = read_build_info(facts.path)
        diagnosis = (diagnosis_for(facts, go, {name: lib.needed for name, lib in objects[1:]},
                                   loader.system_dirs, Sysroot(sysroot))
                     if go is not None else None)
        runs = None
        if run_args is not None:
            runs = run_both(static_path, os.path.join(top, "bin", program), run_args)
    original = program_record.patched
    summary = InputSummary(
        path=f"{program_record.source or program} (as libexec/{program} in "
             f"{artifact_path})",
        sha256=(original and original.source_sha256) or program_record.sha256 or "",
        arch=facts.ident.machine_name,
        size=(original and original.source_size) or program_record.size or 0,
        kind=facts.kind, linkage="dynamic", interpreter=facts.interpreter,
    )
    verdict = verdict_for(needs, artifact, static, runs, hazards, diagnosis)
    licences = None if manifest.provenance is None else licensing_of(
        manifest.packages, [(r.path, r.package) for r in records
                            if r.type == "file" and r.source is not None
                            and r.kind not in BUNDLE_KINDS], manifest.provenance)
    return assemble(summary, needs, artifact, hazards, static, runs, verdict, go, diagnosis,
                    licences)


def _environment(manifest: Manifest) -> tuple[tuple[str, str, bool], ...]:
    return tuple((e.means, e.variable, e.scoped) for e in manifest.environment)


def _names(directory: str) -> list[str]:
    """The names in the artifact's lib/ (none when it has no lib/ directory)."""
    if os.path.islink(directory) or not os.path.isdir(directory):
        return []
    return sorted(os.listdir(directory))


def _is_elf_file(path: str) -> bool:
    if os.path.islink(path) or not os.path.isfile(path):
        return False
    with open(path, "rb") as handle:
        return handle.read(4) == b"\x7fELF"


def _format(path: str) -> str | None:
    try:
        return output_format(path)
    except InputError:
        return None

"""Assemble the report for a build or for `bundle compare` from what they gathered."""

from __future__ import annotations

import os
from collections.abc import Sequence

from bundler.archive import output_format, sha256_of
from bundler.compare import decide, run_both, static_side, unpacked
from bundler.diagnose import Diagnosis
from bundler.elf import ElfFacts, read_elf
from bundler.errors import InputError
from bundler.glibc import is_glibc
from bundler.golang import BuildInfo, read_build_info
from bundler.hazards import (
    NSS_CALLERS,
    Hazard,
    artifact_hazards,
    closure_objects,
    dynamic_hazards,
)
from bundler.inspection import diagnosis_for, requirements_of
from bundler.ldso import search_facts
from bundler.machine import architecture_of
from bundler.manifest import Manifest, WrittenRecord, written_size
from bundler.manifest import load as load_manifest
from bundler.native_launcher import launcher_note
from bundler.nss import coverage_from_manifest
from bundler.plan import ARGV0_SINCE, BundlePlan, release_key
from bundler.report import (
    ArtifactSummary,
    InputSummary,
    LibraryLine,
    Needs,
    Report,
    RunComparison,
    StaticSide,
    assemble,
    input_summary,
    needs_of,
    runtime_parts,
)
from bundler.requirements import glibc_need, other_needs
from bundler.resolve import Closure, Library
from bundler.start_modes import start_modes
from bundler.sysroot import Sysroot

THREAD_SYMBOLS = frozenset({"pthread_create", "pthread_cancel", "pthread_exit"})


def artifact_summary(plan: BundlePlan, records: Sequence[WrittenRecord],
                     out: str | None, fmt: str | None, compressed_size: int | None,
                     threads: bool) -> ArtifactSummary:
    """The artifact section, from the plan and the manifest's file records."""
    files = [r for r in records if r["type"] == "file"]
    names = {r["path"].split("/", 1)[1] for r in records if r["path"].startswith("lib/")}
    return ArtifactSummary(
        out=out, format=fmt, files=len(files), raw_size=sum(written_size(r) for r in files),
        compressed_size=compressed_size, launcher=plan.launcher,
        interpreter=f"{plan.prefix}/{plan.library_home}/{plan.loader_name}",
        prefix=plan.prefix,
        glibc=plan.glibc_release, min_kernel=plan.min_kernel,
        runtime_parts=runtime_parts(names, threads,
                                    tuple((e.means, e.variable, e.scoped) for e in plan.env),
                                    plan.runtime_missing, plan.nss),
        nss=plan.nss,
        launcher_type=plan.launcher_type,
        launcher_note=launcher_note(plan.launcher_type, plan.launcher_why,
                                    plan.loader_supports_argv0),
        sealed=plan.sealed, unsealed=plan.unsealed,
        start_modes=start_modes(plan.launcher_type, plan.loader_supports_argv0,
                                plan.loader_name, any(f.privileged for f in plan.files)),
    )


def carried(artifact: ArtifactSummary) -> frozenset[str]:
    """The run-time parts of glibc the artifact carries, by name."""
    return frozenset(p.name for p in artifact.runtime_parts if p.included)


def uses_threads(objects: list[tuple[str, ElfFacts]]) -> bool:
    return any(THREAD_SYMBOLS.intersection(f.imported_symbols) for _, f in objects)


def build_report(closure: Closure, libc: Library | None, libc_release: str | None,
                 plan: BundlePlan, artifact: ArtifactSummary, static: StaticSide | None,
                 runs: RunComparison | None, go: BuildInfo | None = None,
                 diagnosis: Diagnosis | None = None) -> Report:
    """The report of one build: its first program against the optional static build."""
    requirements = requirements_of(closure, libc, libc_release)
    objects = closure_objects(closure)
    hazards: tuple[Hazard, ...] = (dynamic_hazards(closure.program, objects, carried(artifact),
                                                   artifact.nss)
                                   + artifact_hazards(plan.launcher, plan.excluded))
    needs: Needs = needs_of(closure, requirements)
    glibc = requirements.closure_glibc or requirements.program_glibc
    verdict = decide(artifact, static, runs, glibc.release if glibc else None, hazards,
                     diagnosis.command if diagnosis else None)
    return assemble(input_summary(closure.program, sha256_of(closure.program.path)), needs,
                    artifact, hazards, static, runs, verdict, go, diagnosis)


def compare_report(artifact_path: str, static_path: str,
                   run_args: tuple[str, ...] | None, sysroot: str = "/") -> Report:
    """`bundle compare`: an existing artifact against a static build. A Go program gets
    the diagnosis too, with `sysroot` searched for the static archives a static link
    needs (with the system dirs of the artifact's own loader)."""
    with unpacked(artifact_path) as top:
        manifest = load_manifest(top, artifact_path)
        program = manifest.programs[0]
        facts = read_elf(os.path.join(top, "libexec", program))
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
        nss_cover = coverage_from_manifest(manifest, any(
            NSS_CALLERS.intersection(f.imported_symbols) for _, f in objects))
        artifact = ArtifactSummary(
            out=artifact_path,
            format="dir" if os.path.isdir(artifact_path) else _format(artifact_path),
            files=len(files), raw_size=sum(r.size or 0 for r in files),
            compressed_size=compressed, launcher=manifest.launcher,
            interpreter=facts.interpreter or "", prefix=manifest.prefix,
            glibc=manifest.glibc, min_kernel=manifest.min_kernel,
            runtime_parts=runtime_parts({r.path[4:] for r in records
                                         if r.path.startswith("lib/")},
                                        uses_threads(objects), _environment(manifest),
                                        manifest.runtime_missing, nss_cover),
            nss=nss_cover,
            launcher_type=manifest.launcher_type,
            launcher_note=launcher_note(manifest.launcher_type, "as the manifest records",
                                        release_key(manifest.glibc) >= ARGV0_SINCE),
            sealed=manifest.sealed, unsealed=manifest.unsealed,
            start_modes=start_modes(manifest.launcher_type,
                                    release_key(manifest.glibc) >= ARGV0_SINCE,
                                    os.path.basename(manifest.loader),
                                    any((r.mode or 0) & 0o6000 for r in records
                                        if r.path.startswith("libexec/"))),
        )
        hazards = dynamic_hazards(facts, objects, carried(artifact), nss_cover) + artifact_hazards(
            manifest.launcher, manifest.excluded)
        static = static_side(static_path, facts, program)
        go = read_build_info(facts.path)
        diagnosis = (_artifact_diagnosis(top, manifest, facts, objects, go, Sysroot(sysroot))
                     if go is not None else None)
        runs = None
        if run_args is not None:
            runs = run_both(static_path, os.path.join(top, "bin", program), run_args)
    # manifest.load guarantees the program's file record
    program_record = next(r for r in records if r.path == f"libexec/{program}")
    original = program_record.patched
    summary = InputSummary(
        path=f"{program_record.source or program} (as libexec/{program} in "
             f"{artifact_path})",
        sha256=(original and original.source_sha256) or program_record.sha256 or "",
        arch=facts.ident.machine_name,
        size=(original and original.source_size) or program_record.size or 0,
        kind=facts.kind, linkage="dynamic", interpreter=facts.interpreter,
    )
    verdict = decide(artifact, static, runs, need.release if need else None, hazards,
                     diagnosis.command if diagnosis else None)
    return assemble(summary, needs, artifact, hazards, static, runs, verdict, go, diagnosis)


def _artifact_diagnosis(top: str, manifest: Manifest, facts: ElfFacts,
                        objects: list[tuple[str, ElfFacts]], go: BuildInfo,
                        sysroot: Sysroot) -> Diagnosis:
    """The Go diagnosis from the artifact itself: its program and libraries, and the system
    dirs of its own loader (the build host's glibc) searched in `sysroot`."""
    loader = os.path.join(top, manifest.loader)
    loader_bytes = None
    if _is_elf_file(loader):
        with open(loader, "rb") as handle:
            loader_bytes = handle.read()
    dirs = search_facts(loader_bytes, architecture_of(facts.ident)).system_dirs
    library_needs = {name: lib.needed for name, lib in objects[1:]}
    return diagnosis_for(facts, go, library_needs, dirs, sysroot)


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

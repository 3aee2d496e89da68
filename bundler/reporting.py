"""Assemble the report for a build or for `bundle compare` from what they gathered."""

from __future__ import annotations

import json
import os

from bundler.archive import output_format, sha256_of
from bundler.compare import decide, run_both, static_side, unpacked
from bundler.diagnose import Diagnosis
from bundler.elf import ElfFacts, read_elf
from bundler.errors import InputError
from bundler.glibc import is_glibc
from bundler.golang import BuildInfo, read_build_info
from bundler.hazards import Hazard, artifact_hazards, closure_objects, dynamic_hazards
from bundler.inspection import diagnosis_for, requirements_of
from bundler.ldso import search_facts
from bundler.machine import architecture_of
from bundler.plan import BundlePlan
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
from bundler.sysroot import Sysroot

THREAD_SYMBOLS = frozenset({"pthread_create", "pthread_cancel", "pthread_exit"})


def artifact_summary(plan: BundlePlan, records: list[dict] | tuple[dict, ...],
                     out: str | None, fmt: str | None, compressed_size: int | None,
                     threads: bool) -> ArtifactSummary:
    """The artifact section, from the plan and the manifest's file records."""
    files = [r for r in records if r["type"] == "file"]
    names = {r["path"].split("/", 1)[1] for r in records if r["path"].startswith("lib/")}
    return ArtifactSummary(
        out=out, format=fmt, files=len(files), raw_size=sum(r["size"] for r in files),
        compressed_size=compressed_size, launcher=plan.launcher,
        interpreter=f"{plan.prefix}/lib/{plan.loader_name}", prefix=plan.prefix,
        glibc=plan.glibc_release, min_kernel=plan.min_kernel,
        runtime_parts=runtime_parts(names, threads,
                                    tuple((e.means, e.variable, e.scoped) for e in plan.env),
                                    plan.runtime_missing),
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
    hazards: tuple[Hazard, ...] = (dynamic_hazards(closure.program, objects, carried(artifact))
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
        manifest = _manifest(top, artifact_path)
        program = manifest["programs"][0]
        facts = read_elf(os.path.join(top, "libexec", program))
        records = manifest["files"]
        run_time = {r["path"][4:] for r in records if r.get("loaded_at_run_time")}
        objects = [(program, facts)] + [
            (name, read_elf(os.path.join(top, "lib", name)))
            for name in sorted(os.listdir(os.path.join(top, "lib")))
            if not is_glibc(name) and name not in run_time
            and _is_elf_file(os.path.join(top, "lib", name))
        ]
        libraries = tuple(
            LibraryLine(r["path"][4:], r["path"], r.get("source") or "", "bundled",
                        is_glibc(r["path"][4:]), r["size"])
            for r in records if r.get("kind") in ("library", "loader")
        )
        need = glibc_need(objects)
        needs = Needs(glibc_need([(program, facts)]), need, other_needs(objects), libraries, ())
        compressed = os.path.getsize(artifact_path) if os.path.isfile(artifact_path) else None
        files = [r for r in records if r["type"] == "file"]
        artifact = ArtifactSummary(
            out=artifact_path,
            format="dir" if os.path.isdir(artifact_path) else _format(artifact_path),
            files=len(files), raw_size=sum(r["size"] for r in files),
            compressed_size=compressed, launcher=manifest["launcher"],
            interpreter=facts.interpreter or "", prefix=manifest["prefix"],
            glibc=manifest.get("glibc"), min_kernel=manifest.get("min_kernel"),
            runtime_parts=runtime_parts({r["path"][4:] for r in records
                                         if r["path"].startswith("lib/")},
                                        uses_threads(objects), _environment(manifest),
                                        tuple(manifest.get("runtime_missing", ()))),
        )
        hazards = dynamic_hazards(facts, objects, carried(artifact)) + artifact_hazards(
            manifest["launcher"], tuple(manifest.get("excluded", ())))
        static = static_side(static_path, facts, program)
        go = read_build_info(facts.path)
        diagnosis = (_artifact_diagnosis(top, manifest, facts, objects, go, Sysroot(sysroot))
                     if go is not None else None)
        runs = None
        if run_args is not None:
            runs = run_both(static_path, os.path.join(top, "bin", program), run_args)
    program_record = next(r for r in records if r["path"] == f"libexec/{program}")
    original = program_record.get("patched") or {}
    summary = InputSummary(
        path=f"{program_record.get('source') or program} (as libexec/{program} in "
             f"{artifact_path})",
        sha256=original.get("source_sha256") or program_record["sha256"],
        arch=facts.ident.machine_name, size=original.get("source_size") or program_record["size"],
        kind=facts.kind, linkage="dynamic", interpreter=facts.interpreter,
    )
    verdict = decide(artifact, static, runs, need.release if need else None, hazards,
                     diagnosis.command if diagnosis else None)
    return assemble(summary, needs, artifact, hazards, static, runs, verdict, go, diagnosis)


def _artifact_diagnosis(top: str, manifest: dict, facts: ElfFacts,
                        objects: list[tuple[str, ElfFacts]], go: BuildInfo,
                        sysroot: Sysroot) -> Diagnosis:
    """The Go diagnosis from the artifact itself: its program and libraries, and the system
    dirs of its own loader (the build host's glibc) searched in `sysroot`."""
    loader = os.path.join(top, str(manifest.get("loader") or ""))
    loader_bytes = None
    if os.path.isfile(loader):
        with open(loader, "rb") as handle:
            loader_bytes = handle.read()
    dirs = search_facts(loader_bytes, architecture_of(facts.ident)).system_dirs
    library_needs = {name: lib.needed for name, lib in objects[1:]}
    return diagnosis_for(facts, go, library_needs, dirs, sysroot)


def _manifest(top: str, artifact_path: str) -> dict:
    try:
        with open(os.path.join(top, ".bundle", "manifest.json")) as handle:
            manifest = json.load(handle)
        missing = [k for k in ("programs", "files", "launcher", "prefix") if k not in manifest]
        if missing or not manifest["programs"]:
            raise KeyError(", ".join(missing) or "programs is empty")
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise InputError(f"{artifact_path}: its manifest is unreadable ({exc})") from None
    return manifest


def _environment(manifest: dict) -> tuple[tuple[str, str, bool], ...]:
    try:
        return tuple((e["means"], e["variable"], bool(e["scoped"]))
                     for e in manifest.get("environment", ()))
    except (KeyError, TypeError) as exc:
        raise InputError(f"the manifest's environment is unreadable ({exc})") from None


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

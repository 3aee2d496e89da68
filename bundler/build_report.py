"""The report of a build, assembled once from the program's facts and the plan.

It is assembled before the archive is written (the artifact's own .bundle/report.md holds
it), then completed with where the artifact went, its compressed size and the runs
(verdict.completed). `bundle compare` assembles its report from the artifact instead
(compare.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from bundler.archive import sha256_of
from bundler.compiled_paths import CompiledPaths
from bundler.hazards import (
    Hazard,
    artifact_hazards,
    dynamic_hazards,
    uncarried_hazards,
)
from bundler.inventory import Package
from bundler.manifest import FileRecord, archived_size
from bundler.native_launcher import Launchers, launcher_note
from bundler.plan import BundlePlan
from bundler.program_facts import ProgramFacts
from bundler.report_model import (
    ArtifactSummary,
    CarriedLine,
    Carrying,
    EnvLine,
    Licensing,
    RecipeLine,
    Report,
    StaticSide,
    assemble,
    carried,
    glibc_package_of,
    input_summary,
    needs_of,
    runtime_parts,
)
from bundler.resolve import closure_objects
from bundler.start_modes import start_modes
from bundler.verdict import verdict_for


def artifact_summary(plan: BundlePlan, launchers: Launchers, records: Sequence[FileRecord],
                     threads: bool, packages: Sequence[Package] = ()) -> ArtifactSummary:
    """The artifact section, from the plan and the manifest's file records and packages
    (the package of its libc.so.6); where it is written and its compressed size are not
    known yet (verdict.completed adds them)."""
    files = [r for r in records if r.type == "file"]
    names = {r.path.split("/", 1)[1] for r in records if r.path.startswith("lib/")}
    return ArtifactSummary(
        out=None, format=None, files=len(files), raw_size=archived_size(files),
        compressed_size=None, launcher=plan.launcher,
        interpreter=f"{plan.prefix}/{plan.library_home}/{plan.loader_name}",
        prefix=plan.prefix,
        glibc=plan.glibc_release, min_kernel=plan.min_kernel,
        glibc_package=glibc_package_of(((r.path, r.package) for r in files), packages),
        runtime_parts=runtime_parts(names, threads,
                                    tuple((e.means, e.variable, e.scoped) for e in plan.env),
                                    plan.runtime_missing, plan.nss,
                                    plan.runtime_missing_needed),
        nss=plan.nss,
        launcher_type=launchers.kind,
        launcher_note=launcher_note(launchers.kind, launchers.why, plan.loader_supports_argv0),
        sealed=plan.sealed, unsealed=plan.unsealed,
        start_modes=start_modes(launchers.kind, plan.loader_supports_argv0,
                                plan.loader_name, any(f.privileged for f in plan.files)),
    )


def build_report(facts: ProgramFacts, plan: BundlePlan, artifact: ArtifactSummary,
                 static: StaticSide | None, licences: Licensing | None = None,
                 compiled_paths: CompiledPaths | None = None) -> Report:
    """The report of one build: its first program against the optional static build;
    `compiled_paths` is compiled_paths.scan_plan's (None: not scanned), whose load-bearing
    paths the artifact does not carry are a high hazard."""
    closure = facts.closure
    hazards: tuple[Hazard, ...] = (dynamic_hazards(closure.program, closure_objects(closure),
                                                   carried(artifact), artifact.nss)
                                   + uncarried_hazards(compiled_paths)
                                   + artifact_hazards(plan.launcher, plan.excluded))
    needs = needs_of(closure, facts.requirements)
    verdict = verdict_for(needs, artifact, static, None, hazards, facts.diagnosis)
    return assemble(input_summary(closure.program, sha256_of(closure.program.path)), needs,
                    artifact, hazards, static, None, verdict, facts.go, facts.diagnosis,
                    licences, compiled_paths, carrying_of(plan))


def carrying_of(plan: BundlePlan) -> Carrying:
    """What the plan carries besides libraries, for the report: recipes applied, files
    and trees carried, helpers, the variables set for them (glibc's own, which have no
    `why`, are in the artifact's run-time parts) and what carrying left out."""
    return Carrying(
        recipes=tuple(RecipeLine(r.name, r.recognised, r.notes) for r in plan.recipes),
        carried=tuple(CarriedLine(c.source, c.dest, c.why) for c in plan.carried),
        helpers=plan.helpers,
        env=tuple(EnvLine(e.variable, e.template, e.why, e.scoped, e.scoped_in)
                  for e in plan.env if e.why),
        notes=plan.carry_notes)




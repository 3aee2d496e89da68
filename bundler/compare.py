"""Compare mode: the static build against the artifact, and the verdict.

`static_side` and `run_both` do I/O (read the static file, run programs); `decide` is
a pure function of what they found, so the verdict's reasoning can be tested directly.
"""

from __future__ import annotations

import contextlib
import os
import statistics
from collections.abc import Iterator, Sequence

import zstandard

from bundler import nss
from bundler.archive import ZSTD_LEVEL, sha256_of
from bundler.elf import ElfFacts, defined_symbol_names, read_elf
from bundler.errors import InputError, UnsafeArtifactError
from bundler.golang import BuildInfo, read_build_info
from bundler.hazards import Hazard, static_hazards
from bundler.integrity import check_tree
from bundler.isolation import (
    ROOT_ENV,
    Layout,
    Sandbox,
    make_bare_root,
    probe_sandbox,
    run_sandboxed,
)
from bundler.manifest import MANIFEST_PATH
from bundler.manifest import load as load_manifest
from bundler.report import ArtifactSummary, RunComparison, RunResult, StaticSide, Verdict
from bundler.safe_unpack import unpack_artifact
from bundler.scratch import drop_scratch, make_scratch
from bundler.signals import deferred_signals
from bundler.static import static_contents
from bundler.units import human_size

RUN_TIMEOUT = 60
DEFAULT_RUNS = 5
SHOWN_OUTPUT = 2000
RUN_PLACE = "/run/bundle-compare"  # where both are shown inside the sandbox


def static_side(path: str, program: ElfFacts | None, program_name: str) -> StaticSide:
    """Read the static build and judge it: really static? the same program? hazards?"""
    facts = read_elf(path)
    not_static = []
    if facts.interpreter is not None:
        not_static.append(f"it has an interpreter ({facts.interpreter})")
    if facts.needed:
        not_static.append("it needs shared libraries: " + ", ".join(facts.needed))
    if not facts.is_static and not not_static:
        not_static.append(f"it is a {facts.kind}, not an executable")
    contents = static_contents(path) if facts.is_static else None
    hazards = static_hazards(contents, defined_symbol_names(path)) if contents else ()
    same, identity = _same_program(path, facts, program, program_name)
    return StaticSide(
        path=path, sha256=sha256_of(path), size=facts.size,
        compressed_size=_compressed_size(path), really_static=not not_static,
        not_static_because=tuple(not_static), same_program=same, identity=identity,
        min_kernel=facts.abi_tag.describe() if facts.abi_tag else None,
        contents=contents, hazards=hazards,
    )


def _same_program(path: str, facts: ElfFacts, program: ElfFacts | None,
                  program_name: str) -> tuple[bool, str]:
    if program is not None and facts.ident.machine != program.ident.machine:
        return False, (f"warning: the static build is {facts.ident.machine_name}, the program "
                       f"{program.ident.machine_name}")
    ours = read_build_info(path)
    theirs = read_build_info(program.path) if program is not None else None
    if ours is not None and theirs is not None:
        mine, other = _module_path(ours), _module_path(theirs)
        if mine == other:
            return True, f"same Go module ({mine})"
        return False, (f"warning: the static build is Go module {mine}, the program "
                       f"{other}; is it the same program?")
    static_name = os.path.basename(path)
    stem = static_name.removesuffix("-static").removesuffix(".static")
    if stem == program_name or static_name == program_name:
        return True, f"same file name ({static_name} for {program_name})"
    return False, (f"warning: {static_name} does not look like {program_name} (file names "
                   "differ); is it the same program?")


def _module_path(info: BuildInfo) -> str:
    return info.main.path if info.main is not None and info.main.path else info.path


def _compressed_size(path: str) -> int:
    with open(path, "rb") as handle:
        compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=-1)
        return len(compressor.compress(handle.read()))


@contextlib.contextmanager
def unpacked(artifact: str) -> Iterator[str]:
    """The artifact's top directory, unpacked safely into a temporary directory and checked
    against its manifest (exit 4 naming the first difference: nothing is analysed or run);
    a directory artifact is copied by the same rules (its symlinks judged, nothing read
    through one that leaves it)."""
    if not os.path.lexists(artifact):
        raise InputError(f"{artifact}: no such file")
    scratch = make_scratch("bundle-compare")  # swept by a later run if SIGKILL leaves it
    try:
        result = unpack_artifact(artifact, os.path.join(scratch.path, "unpacked"))
        if not os.path.isfile(os.path.join(result.top, MANIFEST_PATH)):
            raise InputError(f"{artifact}: not an artifact (no */{MANIFEST_PATH})")
        problems = check_tree(result.top, load_manifest(result.top, artifact),
                              result.modes).problems
        if problems:  # a launcher changed after bundling must not be run, nor analysed
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise UnsafeArtifactError(f"{artifact}: differs from its manifest: "
                                      f"{problems[0]}{more}; nothing was run")
        yield result.top
    finally:
        drop_scratch(scratch)


def run_both(static_path: str, launcher: str, args: Sequence[str],
             runs: int = DEFAULT_RUNS) -> RunComparison:
    """Run the static build and the artifact's launcher (TOP/bin/NAME) `runs` times each.

    Both are untrusted input, so both run as verify's runs do (isolation.py): in a
    bubblewrap sandbox over a bare root, never on the host, each run with a fresh /tmp and
    HOME, both shown read-only under RUN_PLACE (the artifact away from its prefix: the
    loader start). The times include the sandbox's start, the same for both.
    """
    with deferred_signals():
        sandbox = probe_sandbox()
        scratch = make_scratch("bundle-compare-run")
        work = scratch.path
        try:
            base = os.path.join(work, "bare")
            os.mkdir(base, 0o755)
            make_bare_root(base)
            top = os.path.dirname(os.path.dirname(os.path.abspath(launcher)))
            static_inside = f"{RUN_PLACE}/static/{os.path.basename(static_path)}"
            top_inside = f"{RUN_PLACE}/artifact/{os.path.basename(top)}"
            layout = Layout(base, ((os.path.abspath(static_path), static_inside),
                                   (top, top_inside)))
            static = _run_many(sandbox, layout, [static_inside, *args], runs)
            launcher_inside = f"{top_inside}/bin/{os.path.basename(launcher)}"
            artifact = _run_many(sandbox, layout, [launcher_inside, *args], runs)
        finally:
            drop_scratch(scratch)
    return RunComparison(
        args=tuple(args), runs=runs, static=static, artifact=artifact,
        outputs_match=static.output == artifact.output,
        exit_codes_match=static.exit_codes == artifact.exit_codes,
    )


def _run_many(sandbox: Sandbox, layout: Layout, argv: list[str], runs: int) -> RunResult:
    codes, seconds = [], []
    first_out = first_err = ""
    for number in range(runs):
        outcome = run_sandboxed(sandbox, layout, argv, dict(ROOT_ENV), RUN_TIMEOUT)
        if outcome.exit_code is None:
            code, out, err = -1, "", f"timed out after {RUN_TIMEOUT} s"
        else:
            code, out, err = outcome.exit_code, outcome.stdout, outcome.stderr
        seconds.append(outcome.seconds)
        codes.append(code)
        if number == 0:
            first_out, first_err = out[:SHOWN_OUTPUT], err[:SHOWN_OUTPUT]
    return RunResult(tuple(codes), first_out, first_err, statistics.median(seconds))


def decide(artifact: ArtifactSummary | None, static: StaticSide | None,
           runs: RunComparison | None, glibc_needed: str | None,
           hazards: tuple[Hazard, ...] = (), static_command: str | None = None) -> Verdict:
    """Which artifact to ship, and why; `hazards` are the program's and the artifact's,
    `static_command` the diagnosis's suggestion for a clean static build (Go)."""
    if static is None or not static.really_static:
        hint = ([f"a static build to compare: {static_command} (then --static)"]
                if static is None and static_command else [])
        verdict = _artifact_verdict(artifact, static, runs, glibc_needed, hazards, [])
        return Verdict(verdict.ship, verdict.headline, verdict.reasons + tuple(hint),
                       verdict.fixes)
    high = [h for h in static.hazards if h.severity == "high"]
    run_problem = _run_problem(runs)
    if high:
        reasons = [*run_problem,
                   *(f"in the static build, {h.effect} (evidence: {', '.join(h.evidence)})"
                     for h in high),
                   "until then the artifact: it carries its own glibc"
                   + (f"; {line}" if (line := _nss_line(artifact)) else ""),
                   *_static_nss(static, artifact),
                   *([] if static.same_program else [static.identity])]
        return Verdict("static-after-fixes",
                       "ship the static build only after these fixes; until then the artifact",
                       tuple(reasons), tuple(h.action for h in high))
    if run_problem:
        return _artifact_verdict(artifact, static, runs, glibc_needed, hazards, run_problem)
    reasons = ["the static build is really static and needs nothing from the host's glibc "
               "at run time (no NSS or dlopen callers found)"]
    if artifact is not None:
        # Before compression (the artifact's own report.md, a directory): raw with raw.
        how, ours, theirs = (("compressed", static.compressed_size, artifact.compressed_size)
                             if artifact.compressed_size is not None
                             else ("raw", static.size, artifact.raw_size))
        reasons.append(
            f"it is {'smaller' if ours <= theirs else 'larger'} {how} ({human_size(ours)} vs "
            f"{human_size(theirs)}) and needs no launcher, loader or prefix")
    if runs is not None:
        codes = set(runs.static.exit_codes)
        if codes == {0}:
            reasons.append("both runs agree: exit 0, same output")
        else:
            reasons.append(f"both runs agree, but both exit {sorted(codes)}: check that the "
                           "--run arguments exercise the program")
    if static.min_kernel and artifact and artifact.min_kernel:
        reasons.append(f"minimum kernel: static {static.min_kernel}, "
                       f"artifact {artifact.min_kernel}")
    reasons += _static_nss(static, artifact)
    headline = "ship the static build"
    if not static.same_program:
        reasons.append(static.identity)
        headline += ", if it is the same program (see the warning)"
    return Verdict("static", headline, tuple(reasons), ())


def _run_problem(runs: RunComparison | None) -> list[str]:
    if runs is None or (runs.exit_codes_match and runs.outputs_match):
        return []
    return [f"run with {' '.join(runs.args) or 'no arguments'}: exit codes static "
            f"{list(runs.static.exit_codes)} vs artifact {list(runs.artifact.exit_codes)}, "
            f"outputs {'match' if runs.outputs_match else 'differ'}"]


def _nss_line(artifact: ArtifactSummary | None) -> str | None:
    return nss.brief(artifact.nss) if artifact is not None and artifact.nss else None


def _static_nss(static: StaticSide, artifact: ArtifactSummary | None) -> list[str]:
    """What a Go static build without cgo lookups does where the artifact's glibc would
    look up: it serves fewer sources (a static glibc's NSS is a hazard of its own)."""
    if static.contents is None or not static.contents.go_runtime or not _nss_line(artifact):
        return []
    if any(h.code == "static-nss" for h in static.hazards):
        return []
    return ["NSS in the static build: " + nss.static_lookups(nss.GO_PURE)]


def _artifact_verdict(artifact: ArtifactSummary | None, static: StaticSide | None,
                      runs: RunComparison | None, glibc_needed: str | None,
                      hazards: tuple[Hazard, ...], reasons: list[str]) -> Verdict:
    reasons = list(reasons)
    if static is not None and not static.really_static:
        reasons.insert(0, f"{static.path} is not static: " + "; ".join(static.not_static_because))
    if glibc_needed:
        reasons.append(f"unbundled, the program needs glibc >= {glibc_needed}; older hosts fail "
                       f"with \"version `GLIBC_{glibc_needed}' not found\"")
    if artifact is not None and artifact.glibc:
        reasons.append(f"the artifact brings glibc {artifact.glibc} and its loader, so the "
                       "host's glibc does not matter")
    if nss_line := _nss_line(artifact):
        reasons.append(nss_line)
    if static is None:
        reasons.append("no static build was given to compare (--static); a clean static "
                       "build, where possible, is simpler to ship")
    high = [h for h in hazards if h.severity == "high"]
    if not high:
        return Verdict("artifact", "ship the artifact", tuple(reasons), ())
    reasons += [f"but: {h.effect} ({', '.join(h.evidence)})" for h in high]
    return Verdict("artifact", "ship the artifact, after dealing with its high hazards "
                   "(section 4)", tuple(reasons), tuple(h.action for h in high))

"""Compare mode: the static build against the artifact, and the verdict.

`static_side` and `run_both` do I/O (read the static file, run programs); `decide` is
a pure function of what they found, so the verdict's reasoning can be tested directly.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence

import zstandard

from bundler.archive import ZSTD_LEVEL, artifact_tops, sha256_of
from bundler.elf import ElfFacts, defined_symbol_names, read_elf
from bundler.errors import InputError
from bundler.golang import BuildInfo, read_build_info
from bundler.hazards import Hazard, static_hazards
from bundler.report import ArtifactSummary, RunComparison, RunResult, StaticSide, Verdict
from bundler.safe_unpack import unpack_artifact
from bundler.static import static_contents
from bundler.units import human_size

RUN_TIMEOUT = 60
DEFAULT_RUNS = 5
SHOWN_OUTPUT = 2000


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
    """The artifact's top directory, unpacked safely into a temporary directory (or a
    directory artifact as it is)."""
    if os.path.isdir(artifact):
        yield _top(artifact, artifact)
        return
    if not os.path.isfile(artifact):
        raise InputError(f"{artifact}: no such file")
    with tempfile.TemporaryDirectory(prefix="bundle-compare.") as work:
        result = unpack_artifact(artifact, os.path.join(work, "unpacked"))
        if not os.path.isfile(os.path.join(result.top, ".bundle", "manifest.json")):
            raise InputError(f"{artifact}: not an artifact (no */.bundle/manifest.json)")
        yield result.top


def _top(directory: str, artifact: str) -> str:
    tops = artifact_tops(directory)
    if not tops:
        raise InputError(f"{artifact}: not an artifact (no */.bundle/manifest.json)")
    return os.path.join(directory, tops[0])


def run_both(static_path: str, launcher: str, args: Sequence[str],
             runs: int = DEFAULT_RUNS) -> RunComparison:
    """Run the static build and the artifact's launcher `runs` times each."""
    static = _run_many([os.path.abspath(static_path), *args], runs)
    artifact = _run_many([launcher, *args], runs)
    return RunComparison(
        args=tuple(args), runs=runs, static=static, artifact=artifact,
        outputs_match=static.output == artifact.output,
        exit_codes_match=static.exit_codes == artifact.exit_codes,
    )


def _run_many(argv: list[str], runs: int) -> RunResult:
    codes, seconds = [], []
    first_out = first_err = ""
    for number in range(runs):
        start = time.perf_counter()
        try:
            done = subprocess.run(argv, capture_output=True, text=True, errors="replace",
                                  stdin=subprocess.DEVNULL, timeout=RUN_TIMEOUT)
            code, out, err = done.returncode, done.stdout, done.stderr
        except subprocess.TimeoutExpired:
            code, out, err = -1, "", f"timed out after {RUN_TIMEOUT} s"
        except OSError as exc:
            code, out, err = 127, "", f"cannot run: {exc.strerror or exc}"
        seconds.append(time.perf_counter() - start)
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
                   "until then the artifact is the safe choice: it carries its own glibc"]
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
    if static is None:
        reasons.append("no static build was given to compare (--static); a clean static "
                       "build, where possible, is simpler to ship")
    high = [h for h in hazards if h.severity == "high"]
    if not high:
        return Verdict("artifact", "ship the artifact", tuple(reasons), ())
    reasons += [f"but: {h.effect} ({', '.join(h.evidence)})" for h in high]
    return Verdict("artifact", "ship the artifact, after dealing with its high hazards "
                   "(section 4)", tuple(reasons), tuple(h.action for h in high))

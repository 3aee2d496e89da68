"""`bundle release`: every target of bundle.toml built, checksummed, signed and verified in
one command, with one exit code a pipeline can trust.

Order, and why:
1. Everything that can be checked without building is checked first (the signing tool and
   key, each foreign target's emulator, the verify roots): a missing tool is exit 3 before
   minutes of building.
2. Every target and format is built into one staging directory beside the outputs (the
   same build as `bundle BINARY...`, so the bytes are those a plain build gives). A build
   that fails leaves the output directory as it was: no half release.
3. The outputs are renamed into place together, then `SHA256SUMS` (the archives and their
   SBOMs, as `sha256sum` writes it) and its signature; a signature left from an earlier
   release is removed first, never left beside sums it did not sign.
4. Each archive is verified in each root (`bundle verify`'s own checks and runs).
5. The `fail-on` gates are read from each target's report.
Exit: 4 when a verification failed, else 5 when a gate holds, else 0; the outputs are whole
in every case, and the summary says what failed.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import shutil
from dataclasses import dataclass

from bundler.build import BuildRequest, build
from bundler.choices import library_path_option, run_option
from bundler.config import ReleaseConfig, Target
from bundler.errors import BundleError, EnvironmentUnfitError, InputError
from bundler.gates import GateFailure, failed_gates
from bundler.manifest import SBOM_SUFFIXES
from bundler.packaging import package_format
from bundler.patch_worker import PatchWorker
from bundler.plan import PlanOptions
from bundler.report_model import Report
from bundler.resolve import ResolveOptions
from bundler.scratch import directory_lock, drop_scratch, make_dir, replace_with, sweep
from bundler.signals import (
    checkpoint,
    deferred_signals,
    forget_written,
    note_written,
    stop_if_any_received,
)

SUMS_NAME = "SHA256SUMS"
SIGNATURE_SUFFIXES = (".asc", ".sig", ".minisig")
# qemu-user's name for each target (its binaries are qemu-NAME-static in Debian).
QEMU_NAMES = {"amd64": "x86_64", "arm64": "aarch64", "386": "i386", "arm": "arm",
              "riscv64": "riscv64", "ppc64le": "ppc64le", "s390x": "s390x"}
# `uname -m` -> the targets this machine runs without an emulator.
NATIVE_TARGETS = {"x86_64": ("amd64", "386"), "aarch64": ("arm64",), "i686": ("386",),
                  "ppc64le": ("ppc64le",), "s390x": ("s390x",), "riscv64": ("riscv64",)}


@dataclass(frozen=True)
class ReleaseOutput:
    """One archive the release wrote, and the files beside it."""

    arch: str
    format: str
    path: str  # in the output directory
    sha256: str
    size: int
    sboms: tuple[str, ...]  # paths beside it (OUT.cdx.json, OUT.spdx.json)


@dataclass(frozen=True)
class VerifyRun:
    """One archive verified in one root."""

    output: str  # the archive's path
    root: str  # "bare" or the directory
    emulator: str | None
    passed: bool
    runs: int
    runs_passed: int
    problems: tuple[str, ...]  # why it failed: integrity problems, each failed run's reasons
    text: str  # `bundle verify`'s own rendering, shown when it failed


@dataclass(frozen=True)
class TargetResult:
    target: Target
    outputs: tuple[ReleaseOutput, ...]
    report: Report  # the build's report (that of its first format)
    gates_failed: tuple[GateFailure, ...]
    verified: tuple[VerifyRun, ...]


@dataclass(frozen=True)
class ReleaseResult:
    config: ReleaseConfig
    name: str
    targets: tuple[TargetResult, ...]
    sums: str  # SHA256SUMS's path
    sums_entries: int
    signature: str | None  # its signature's path, when signed

    @property
    def verify_failed(self) -> tuple[VerifyRun, ...]:
        return tuple(v for t in self.targets for v in t.verified if not v.passed)

    @property
    def gates_failed(self) -> tuple[tuple[str, GateFailure], ...]:
        return tuple((t.target.arch, g) for t in self.targets for g in t.gates_failed)


def release_name(config: ReleaseConfig) -> str:
    return config.name or os.path.basename(config.targets[0].build.programs[0])


def output_name(name: str, version: str | None, arch: str, fmt: str) -> str:
    """`myagent-1.4.2-linux-arm64.tar.zst`: what release pages and goreleaser name them."""
    return f"{name}-{version}-linux-{arch}.{fmt}" if version else f"{name}-linux-{arch}.{fmt}"


def emulator_for(target: Target) -> str | None:
    """The emulator verify runs a target under: the configured one, none for this
    machine's own architectures, else Debian's qemu-user-static name."""
    if target.emulator is not None:
        return target.emulator
    if target.arch in NATIVE_TARGETS.get(platform.machine(), ()):
        return None
    return f"qemu-{QEMU_NAMES[target.arch]}-static"


def preflight(config: ReleaseConfig) -> None:
    """What would fail only after every build, checked before the first (exit 3 / 2)."""
    if config.sign is not None:
        from bundler.signing import check_signing_key

        try:
            check_signing_key(config.sign)
        except BundleError as exc:  # the same error, said to come from the file's [sign]
            raise type(exc)(f"{config.path}: sign: {exc.message}") from None
    if config.verify is None:
        return
    for root in config.verify.roots:
        if root != "bare" and not os.path.isdir(root):
            raise InputError(f"{config.path}: verify.roots: {root}: not a directory")
    for target in config.targets:
        emulator = emulator_for(target)
        if emulator is not None and shutil.which(emulator.split()[0]) is None:
            raise EnvironmentUnfitError(
                f"{config.path}: target {target.arch}: verifying it needs {emulator} "
                "(Debian: apt-get install qemu-user-static), or set the target's emulator")


def release(config: ReleaseConfig) -> ReleaseResult:
    """Build, write, sign and verify every target; the gates are read, not raised: the
    command line turns the result into its exit code."""
    preflight(config)
    name = release_name(config)
    os.makedirs(config.output_dir, exist_ok=True)
    sweep(config.output_dir)
    staging = make_dir(config.output_dir, "release")
    try:
        built = _build_all(config, name, os.path.join(staging.path, "out"))
        outputs = _put_in_place(built, os.path.join(staging.path, "out"), config.output_dir)
        note_written(config.output_dir + "/")  # whole: a signal now stops only what is left
    finally:
        drop_scratch(staging)
    sums, entries = _write_sums(config.output_dir, outputs)
    signature = _sign(config, sums) if config.sign is not None else None
    targets = []
    for target, report in ((t, r) for t, r, _ in built):
        mine = tuple(o for o in outputs if o.arch == target.arch)
        verified = _verify(config, target, mine)
        targets.append(TargetResult(target, mine, report,
                                    failed_gates(report, config.fail_on), verified))
    return ReleaseResult(config, name, tuple(targets), sums, entries, signature)


# (target, its report, (format, file name, sha256, size) of each output): the digests the
# builds took while writing, so nothing is read twice
Built = tuple[Target, Report, tuple[tuple[str, str, str, int], ...]]


def _build_all(config: ReleaseConfig, name: str, into: str) -> list[Built]:
    os.mkdir(into)  # not the locked staging dir itself: each build locks its own OUT's dir
    patcher = PatchWorker.take()  # one worker (LIEF imported once) for every build
    built: list[Built] = []
    try:
        for target in config.targets:
            report: Report | None = None
            files = []
            for fmt in config.formats:
                file_name = output_name(name, config.version, target.arch, fmt)
                result = build(_request(config, target, name, os.path.join(into, file_name)),
                               patcher)
                # Staged, not released: a signal still stops the release (and the staging
                # goes), as it would have stopped this build.
                forget_written()
                stop_if_any_received()
                if result.manifest.arch != target.machine:
                    raise InputError(
                        f"{config.path}: target {target.arch}: {target.build.programs[0]} is "
                        f"{result.manifest.arch}, not {target.machine}")
                report = report or result.report
                assert result.sha256 is not None  # an archive or a package, never a directory
                files.append((fmt, file_name, result.sha256, result.output_size))
            assert report is not None
            built.append((target, report, tuple(files)))
    except BaseException:
        patcher.kill()
        raise
    patcher.close()
    return built


def _request(config: ReleaseConfig, target: Target, name: str, out: str) -> BuildRequest:
    """The build bundle.toml describes for one target: the same request the command line
    makes from the same options."""
    settings = target.build
    return BuildRequest(
        binaries=settings.programs, out=out, sysroot=settings.sysroot,
        resolve=ResolveOptions(library_path=library_path_option(settings.library_path),
                               allow_missing=settings.allow_missing),
        plan=PlanOptions(name=name, prefix=settings.prefix, launcher=settings.launcher,
                         allow_setuid=settings.allow_setuid, exclude=settings.exclude,
                         launcher_type=settings.launcher_type),
        add=settings.add, nss=settings.nss, gconv=settings.gconv, locales=settings.locale,
        static=settings.static, run_args=run_option(settings.run), sbom=config.sbom,
        package=dataclasses.replace(config.package, name=name))


def _put_in_place(built: list[Built], staged: str, output_dir: str) -> list[ReleaseOutput]:
    """Every staged file renamed into the output directory, under its lock, after every
    build succeeded."""
    outputs = []
    with directory_lock(output_dir):
        for name in sorted(os.listdir(staged)):
            os.replace(os.path.join(staged, name), os.path.join(output_dir, name))
    for target, _, files in built:
        for fmt, file_name, digest, size in files:
            path = os.path.join(output_dir, file_name)
            sboms = tuple(path + suffix for suffix in SBOM_SUFFIXES.values()
                          if os.path.isfile(path + suffix))
            outputs.append(ReleaseOutput(target.arch, fmt, path, digest, size, sboms))
    return outputs


def _write_sums(output_dir: str, outputs: list[ReleaseOutput]) -> tuple[str, int]:
    from bundler.archive import sha256_of
    from bundler.signing import sums_text

    entries = [(os.path.basename(o.path), o.sha256) for o in outputs]
    entries += [(os.path.basename(s), sha256_of(s)) for o in outputs for s in o.sboms]
    sums = os.path.join(output_dir, SUMS_NAME)
    for suffix in SIGNATURE_SUFFIXES:  # an earlier release's: it did not sign these sums
        if os.path.lexists(sums + suffix):
            os.unlink(sums + suffix)
    replace_with(sums, sums_text(entries).encode())
    return sums, len(entries)


def _sign(config: ReleaseConfig, sums: str) -> str:
    from bundler.signing import sign

    assert config.sign is not None
    return sign(sums, config.sign)


def _verify(config: ReleaseConfig, target: Target,
            outputs: tuple[ReleaseOutput, ...]) -> tuple[VerifyRun, ...]:
    if config.verify is None:
        return ()
    from bundler.verify import VerifyRequest, render, verify

    settings = config.verify
    emulator = emulator_for(target)
    runs = []
    for output in outputs:
        if package_format(output.path) is not None:
            continue  # a .deb, .rpm or image: its files are the archive's, verified as such
        for root in settings.roots:
            with deferred_signals():  # a run's sandbox goes before a signal stops it
                result = verify(VerifyRequest(
                    artifact=output.path, root=root, args=settings.args,
                    expect_exit=settings.expect_exit, expect_output=settings.expect_output,
                    emulator=emulator, program=settings.program, timeout=settings.timeout,
                    env=settings.env))
                checkpoint()
            problems = (*result.integrity.problems,
                        *(f"{r.label}: {reason}" for r in result.runs if not r.passed
                          for reason in r.reasons))
            runs.append(VerifyRun(output.path, root, emulator, result.passed, len(result.runs),
                                  sum(r.passed for r in result.runs), problems,
                                  render(result)))
    return tuple(runs)


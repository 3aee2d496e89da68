"""`bundle verify ARTIFACT -- ARGS`: prove, before publishing, that the artifact runs where
the build host's glibc is absent.

Steps: unpack safely into a private temporary directory (safe_unpack.py), check every file
against the manifest (integrity.py), install it at its prefix in an isolated root
(isolation.py: bare, or the user's tree under an overlay) and run the program there, twice
natively: at the prefix (the launcher's direct start) and from another directory (its
loader start); once under `--emulator` for another architecture (the bundled loader run
by qemu-user, no binfmt needed).
"""

from __future__ import annotations

import os
import platform
import re
import shlex
import shutil
import tempfile
from dataclasses import dataclass

from bundler.elf import read_elf
from bundler.errors import EnvironmentUnfitError, InputError
from bundler.integrity import IntegrityResult, check_tree, load_manifest
from bundler.isolation import (
    ROOT_ENV,
    Isolation,
    Outcome,
    check_user_root,
    make_bare_root,
    overlay_layers,
    probe_isolation,
    remove_tree,
    run_isolated,
    setup_script,
)
from bundler.plan import ARGV0_SINCE, release_key
from bundler.safe_unpack import Unpacked, unpack_artifact

ELSEWHERE = "/tmp/bundle-verify"
EMULATOR_PATH = "/.bundle-verify"
STDERR_LINES = 5
# Architectures this machine runs without an emulator, by `uname -m`.
NATIVE = {"x86_64": ("x86-64", "i386", "x32"), "aarch64": ("aarch64",), "i686": ("i386",),
          "ppc64le": ("ppc64le",), "s390x": ("s390x",), "riscv64": ("riscv64",)}


@dataclass(frozen=True)
class VerifyRequest:
    artifact: str
    root: str = "bare"
    args: tuple[str, ...] = ()
    expect_exit: int = 0
    expect_output: str | None = None  # a regular expression searched in stdout
    emulator: str | None = None  # e.g. "qemu-aarch64-static"
    program: str | None = None  # which of the artifact's programs (default: the first)
    timeout: float = 60.0
    env: tuple[str, ...] = ()  # NAME=VALUE for the run


@dataclass(frozen=True)
class RunCheck:
    label: str
    outcome: Outcome
    passed: bool
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class VerifyResult:
    artifact: str
    name: str
    arch: str
    glibc: str | None
    checksum: str  # what the .sha256 file said
    integrity: IntegrityResult
    root: str  # how the root was made
    runs: tuple[RunCheck, ...]
    notes: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.integrity.problems and bool(self.runs) and all(
            r.passed for r in self.runs)


def judge(outcome: Outcome, expect_exit: int, pattern: re.Pattern[str] | None,
          ) -> tuple[bool, tuple[str, ...]]:
    """Whether a run met the expectations, and if not, why."""
    if outcome.exit_code is None:
        return False, ("timed out",)
    reasons = []
    if outcome.exit_code != expect_exit:
        reasons.append(f"exit {outcome.exit_code}, expected {expect_exit}")
    if pattern is not None and not pattern.search(outcome.stdout):
        reasons.append(f"stdout does not match {pattern.pattern!r}")
    return not reasons, tuple(reasons)


def verify(request: VerifyRequest) -> VerifyResult:
    pattern = _pattern(request.expect_output)
    env = _environment(request.env)
    emulator = _emulator(request.emulator) if request.emulator else None
    user_root = check_user_root(request.root) if request.root != "bare" else None
    if not os.path.exists(request.artifact):
        raise InputError(f"{request.artifact}: no such file or directory")
    isolation = probe_isolation()
    work = tempfile.mkdtemp(prefix="bundle-verify.")
    try:
        os.chmod(work, 0o700)  # unpacked files are only ours to read
        unpacked = unpack_artifact(request.artifact, os.path.join(work, "unpacked"))
        manifest = load_manifest(unpacked.top, request.artifact)
        checksum = _checksum(request.artifact, unpacked)
        integrity = check_tree(unpacked.top, manifest, unpacked.modes)
        if checksum.startswith("MISMATCH"):
            integrity = IntegrityResult(integrity.checked, (checksum, *integrity.problems))
        arch = str(manifest.get("arch", "unknown"))
        glibc = manifest.get("glibc")
        program = _program(manifest, request.program)
        base = VerifyResult(request.artifact, unpacked.name, arch, glibc, checksum, integrity,
                            "", (), ())
        if integrity.problems:
            return base
        if emulator is None and arch not in NATIVE.get(platform.machine(), ()):
            raise EnvironmentUnfitError(
                f"{request.artifact}: an {arch} artifact; this machine is "
                f"{platform.machine()}: give --emulator (e.g. qemu-{arch}-static)")
        prefix = str(manifest.get("prefix") or f"/opt/{unpacked.name}")
        loader = str(manifest.get("loader") or "")
        root, install, overlay, notes, root_label = _prepare_root(
            work, user_root, prefix, isolation)
        os.makedirs(os.path.dirname(install), exist_ok=True)
        os.rename(unpacked.top, install)
        emulator_inside = None
        if emulator is not None:
            emulator_inside = f"{EMULATOR_PATH}/{os.path.basename(emulator[0])}"
            host_copy = (overlay[1] if overlay else root) + emulator_inside
            os.makedirs(os.path.dirname(host_copy), exist_ok=True)
            shutil.copy2(emulator[0], host_copy)
        runs = []
        for label, command, copies in _plans(prefix, unpacked.name, program, loader, glibc,
                                             request.args, emulator, emulator_inside,
                                             has_shell=os.path.lexists(
                                                 f"{user_root or root}/bin/sh"),
                                             install=install):
            # A copy, not a bind mount: the launcher recognises its prefix by inode (test
            # -ef), so a bind of the same tree would start directly, not through the loader.
            # Written into the upper layer: inside a user namespace the overlay cannot copy
            # up the root's own /tmp (EOVERFLOW: its owner is not mapped).
            for source, target in copies:
                destination = (overlay[1] if overlay else root) + target
                if not os.path.exists(destination):
                    os.makedirs(os.path.dirname(destination), exist_ok=True)
                    shutil.copytree(source, destination, symlinks=True)
            script = setup_script(root, overlay)
            outcome = run_isolated(isolation, script, command, env, request.timeout)
            passed, reasons = judge(outcome, request.expect_exit, pattern)
            runs.append(RunCheck(label, outcome, passed, reasons))
        return VerifyResult(request.artifact, unpacked.name, arch, glibc, checksum, integrity,
                            root_label, tuple(runs), tuple(notes))
    finally:
        remove_tree(work)


def _prepare_root(work: str, user_root: str | None, prefix: str, isolation: Isolation,
                  ) -> tuple[str, str, tuple[str, str, str] | None, list[str], str]:
    """(root as mounted, host dir to install into, overlay layers, notes, label)."""
    how = ("through a user namespace (unshare), not root" if isolation.user_namespace
           else "as root, chroot in a private mount namespace")
    root = os.path.join(work, "root")
    os.mkdir(root)
    if user_root is None:
        notes = make_bare_root(root)
        return root, root + prefix, None, notes, f"bare (empty root with /proc, /dev, /etc), {how}"
    if os.path.lexists(user_root + prefix):
        raise InputError(f"--root {user_root}: already has {prefix}; the run would mix it "
                         "with the artifact")
    upper, layer_work = os.path.join(work, "upper"), os.path.join(work, "overlay-work")
    os.mkdir(upper)
    os.mkdir(layer_work)
    overlay_layers(upper, user_root)
    return (root, upper + prefix, (user_root, upper, layer_work), [],
            f"{user_root} (under an overlay: left unchanged), {how}")


def _plans(prefix: str, name: str, program: str, loader: str, glibc: str | None,
           args: tuple[str, ...], emulator: tuple[str, ...] | None,
           emulator_inside: str | None, has_shell: bool, install: str,
           ) -> list[tuple[str, list[str], tuple[tuple[str, str], ...]]]:
    """The runs: (label, command inside the root, (host tree, copy inside the root))."""
    argv0 = ["--argv0", f"{prefix}/bin/{program}"] if release_key(glibc) >= ARGV0_SINCE else []
    if emulator is not None:
        assert emulator_inside is not None
        command = [emulator_inside, *emulator[1:], f"{prefix}/{loader}", "--library-path",
                   f"{prefix}/lib", *argv0, f"{prefix}/libexec/{program}", *args]
        return [(f"under {os.path.basename(emulator[0])}, through the bundled loader at "
                 f"{prefix} (the launcher script needs binfmt; not used)", command, ())]
    elsewhere = f"{ELSEWHERE}/{name}"
    if not has_shell:
        return [
            (f"at its prefix {prefix}, libexec/ started directly (no /bin/sh for the launcher)",
             [f"{prefix}/libexec/{program}", *args], ()),
            (f"from {elsewhere}, through the bundled loader (no /bin/sh for the launcher)",
             [f"{elsewhere}/{loader}", "--library-path", f"{elsewhere}/lib",
              f"{elsewhere}/libexec/{program}", *args], ((install, elsewhere),)),
        ]
    return [
        (f"at its prefix {prefix} (launcher, direct start)",
         [f"{prefix}/bin/{program}", *args], ()),
        (f"from {elsewhere} (launcher, loader start)",
         [f"{elsewhere}/bin/{program}", *args], ((install, elsewhere),)),
    ]


def _pattern(text: str | None) -> re.Pattern[str] | None:
    if text is None:
        return None
    try:
        return re.compile(text)
    except re.error as exc:
        raise InputError(f"--expect-output {text!r}: not a regular expression ({exc})") from None


def _environment(pairs: tuple[str, ...]) -> dict[str, str]:
    env = dict(ROOT_ENV)
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name or not name.replace("_", "a").isalnum() or name[0].isdigit():
            raise InputError(f"--env {pair!r}: expected NAME=VALUE")
        env[name] = value
    return env


def _emulator(text: str) -> tuple[str, ...]:
    """The emulator command, its binary resolved on this host and checked to be static
    (it runs inside the root, where none of this host's libraries are)."""
    words = shlex.split(text)
    if not words:
        raise InputError("--emulator: empty")
    found = shutil.which(words[0])
    if found is None:
        raise EnvironmentUnfitError(f"--emulator {words[0]}: not found (Debian: apt-get "
                                    "install qemu-user-static)")
    if not read_elf(found).is_static:
        raise InputError(f"--emulator {found}: dynamically linked; inside the root it would "
                         "not find its libraries: use the -static build")
    return (os.path.realpath(found), *words[1:])


def _program(manifest: dict, wanted: str | None) -> str:
    programs = [p for p in manifest.get("programs", []) if isinstance(p, str)]
    if not programs:
        raise InputError("the manifest lists no programs")
    if wanted is None:
        return programs[0]
    if wanted not in programs:
        raise InputError(f"--program {wanted}: the artifact has {', '.join(programs)}")
    return wanted


def _checksum(artifact: str, unpacked: Unpacked) -> str:
    sidecar = artifact.rstrip("/") + ".sha256"
    if unpacked.sha256 is None:
        return "a directory artifact (no checksum file)"
    if not os.path.isfile(sidecar):
        return f"no {os.path.basename(sidecar)} beside it"
    try:
        with open(sidecar) as handle:
            expected = handle.read(4096).split()[0].lower()
    except (OSError, IndexError, UnicodeDecodeError):
        return f"MISMATCH: {os.path.basename(sidecar)} is unreadable"
    if expected != unpacked.sha256:
        return (f"MISMATCH: the archive's sha256 is {unpacked.sha256}, "
                f"{os.path.basename(sidecar)} says {expected}")
    return f"sha256 matches {os.path.basename(sidecar)}"


def render(result: VerifyResult) -> str:
    """The result for the terminal: context, one line per run, the verdict last."""
    lines = [f"bundle verify: {result.artifact} ({result.name}, {result.arch}, glibc "
             f"{result.glibc or 'unknown'})",
             f"  checksum   {result.checksum}",
             f"  manifest   {result.integrity.checked} entries checked (sha256, size, mode)"
             + (f": {len(result.integrity.problems)} problems" if result.integrity.problems
                else ", all match")]
    lines += [f"    {problem}" for problem in result.integrity.problems]
    if result.root:
        lines.append(f"  root       {result.root}")
    lines += [f"  note       {note}" for note in result.notes]
    for run in result.runs:
        outcome = run.outcome
        code = "timeout" if outcome.exit_code is None else f"exit {outcome.exit_code}"
        first = outcome.stdout.strip().splitlines()[:1]
        output = repr(first[0][:100]) if first else "(no output)"
        lines.append(f"{'PASS' if run.passed else 'FAIL'}  {run.label}: {code} in "
                     f"{outcome.seconds * 1000:.0f} ms; stdout {output}")
        if not run.passed:
            lines += [f"      {reason}" for reason in run.reasons]
            lines += [f"      stderr: {line}" for line in
                      outcome.stderr.strip().splitlines()[:STDERR_LINES]]
    verdict = "PASS" if result.passed else "FAIL"
    why = ("the artifact differs from its manifest" if result.integrity.problems
           else f"{sum(r.passed for r in result.runs)} of {len(result.runs)} runs passed")
    lines.append(f"verify: {verdict} ({why})")
    return "\n".join(lines) + "\n"

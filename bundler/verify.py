"""`bundle verify ARTIFACT -- ARGS`: prove, before publishing, that the artifact runs where
the build host's glibc is absent.

Steps: with --key, check first that the signed SHA256SUMS lists the artifact with the
sha256 it has (signing.py); unpack safely into a private temporary directory
(safe_unpack.py), check every file against the manifest (integrity.py), show it at its
prefix in a sandbox (isolation.py: bubblewrap, over a bare root or the user's tree,
read-only) and run the program there, twice natively: at the prefix (the launcher's
direct start) and from another directory (its loader start); once under `--emulator` for
another architecture (the bundled loader run by qemu-user, no binfmt needed). With
--trace, the first run once more under strace, listing the files met outside the artifact
(trace.py): information for the release engineer, never part of the verdict.
"""

from __future__ import annotations

import os
import platform
import re
import shlex
import shutil
from dataclasses import dataclass
from typing import Literal

from bundler.elf import read_elf
from bundler.errors import EnvironmentUnfitError, InputError, UnsafeArtifactError
from bundler.integrity import IntegrityResult, unpack_and_check
from bundler.isolation import (
    OUTPUT_LIMIT,
    ROOT_ENV,
    Layout,
    Outcome,
    Sandbox,
    check_user_root,
    make_bare_root,
    probe_sandbox,
    run_sandboxed,
)
from bundler.ldso import read_loader, supports_argv0
from bundler.manifest import Manifest
from bundler.nss import root_warnings as nss_root_warnings
from bundler.safe_unpack import Unpacked
from bundler.scratch import drop_scratch, make_scratch
from bundler.signals import checkpoint
from bundler.signing import SignatureCheck, check_release
from bundler.text import one_line
from bundler.trace import Trace, find_strace, refuse_emulator, render_trace, run_traced
from bundler.units import human_size

ELSEWHERE = "/tmp/bundle-verify"
EMULATOR_PATH = "/.bundle-verify"
# The sandbox root's own directories: a prefix there is refused (sandbox_prefix).
SANDBOX_OWN = ("/proc", "/sys", "/dev", "/etc", "/tmp", "/root", "/bin", "/run", EMULATOR_PATH)
# Of each run's stdout and stderr the text shows the first lines (PASS or FAIL alike), each
# at most LINE_CHARS; `verify --json` carries all that was kept and judged (OUTPUT_LIMIT).
SHOWN_LINES = 5
LINE_CHARS = 200
# What the OUT.sha256 beside an archive said: matched, did not (or could not be read),
# was not there, or there is none to have (a directory artifact).
ChecksumState = Literal["match", "mismatch", "absent", "directory"]
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
    key: str | None = None  # a public key: the signed SHA256SUMS is checked before all else
    sums: str | None = None  # that SHA256SUMS (default: the one beside the artifact)
    trace: bool = False  # one more run, under strace, listing the files met outside it


@dataclass(frozen=True)
class RunCheck:
    label: str  # how it was started, in words
    outcome: Outcome
    passed: bool
    reasons: tuple[str, ...]
    command: tuple[str, ...] = ()  # the command inside the sandbox
    expect_exit: int = 0  # what it was judged against
    expect_output: str | None = None


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
    checksum_state: ChecksumState = "absent"
    sha256: str | None = None  # the archive file's, as read (None for a directory)
    signature: SignatureCheck | None = None  # with --key: what the signed SHA256SUMS proved
    trace: Trace | None = None  # with --trace: information, never part of `passed`

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
    if request.trace:
        refuse_emulator(request.emulator)
    pattern = _pattern(request.expect_output)
    env = _environment(request.env)
    emulator = _emulator(request.emulator) if request.emulator else None
    user_root = check_user_root(request.root) if request.root != "bare" else None
    if not os.path.exists(request.artifact):
        raise InputError(f"{request.artifact}: no such file or directory")
    strace = find_strace() if request.trace else None
    signature = _signature(request)  # first: when it fails, nothing is unpacked or run
    sandbox = probe_sandbox()
    scratch = make_scratch("bundle-verify")  # 0700: unpacked files are only ours to read
    work = scratch.path
    try:
        checked = unpack_and_check(request.artifact, os.path.join(work, "unpacked"))
        unpacked, manifest, integrity = checked.unpacked, checked.manifest, checked.integrity
        if signature is not None and unpacked.sha256 != signature.artifact_sha256:
            raise UnsafeArtifactError(f"{request.artifact}: changed while verify read it: "
                                      "its bytes are no longer the signed ones")
        state, checksum = _checksum(request.artifact, unpacked)
        if state == "mismatch":
            integrity = IntegrityResult(integrity.checked, (checksum, *integrity.problems))
        arch, glibc = manifest.arch, manifest.glibc
        program = _program(manifest, request.program)
        base = VerifyResult(request.artifact, unpacked.name, arch, glibc, checksum, integrity,
                            "", (), (), state, unpacked.sha256, signature)
        if integrity.problems:
            return base
        if emulator is None and arch not in NATIVE.get(platform.machine(), ()):
            raise EnvironmentUnfitError(
                f"{request.artifact}: an {arch} artifact; this machine is "
                f"{platform.machine()}: give --emulator (e.g. qemu-{arch}-static)")
        prefix, loader = sandbox_prefix(manifest.prefix, request.artifact), manifest.loader
        checkpoint()  # a signal that came while unpacking: stop before anything runs
        base_root, notes, root_label = _prepare_root(work, user_root, prefix, sandbox)
        if user_root is not None:  # NSS sources its nsswitch.conf names that need a warning
            notes = [*notes, *nss_root_warnings(manifest, user_root)]
        install = unpacked.top
        # Shown read-only in every run: the artifact at its prefix, the emulator.
        binds = [(install, prefix)]
        emulator_inside = None
        if emulator is not None:
            emulator_inside = f"{EMULATOR_PATH}/{os.path.basename(emulator[0])}"
            binds.append((emulator[0], emulator_inside))
        runs = []
        installed = Installed(prefix, unpacked.name, program, loader,
                              supports_argv0(read_loader(unpacked.top, loader)), install)
        # a native bin/NAME needs no /bin/sh
        has_shell = (os.path.lexists(f"{user_root or base_root}/bin/sh")
                     or manifest.launcher_type == "native")
        plans = _plans(installed, request.args, emulator, emulator_inside, has_shell)
        for label, command, copies in plans:
            # A copy, not a second bind of the same tree: the launcher recognises its
            # prefix by inode (test -ef), so a bind would start directly, not through the
            # loader. Shown read-only like the rest; every run gets a fresh /tmp and HOME,
            # so no run sees what another wrote.
            run_binds = list(binds)
            for source, target in copies:
                copy = os.path.join(work, "copies", target.lstrip("/"))
                if not os.path.exists(copy):
                    os.makedirs(os.path.dirname(copy), exist_ok=True)
                    shutil.copytree(source, copy, symlinks=True)
                run_binds.append((copy, target))
            checkpoint()
            outcome = run_sandboxed(sandbox, Layout(base_root, tuple(run_binds)), command, env,
                                    request.timeout)
            passed, reasons = judge(outcome, request.expect_exit, pattern)
            runs.append(RunCheck(label, outcome, passed, reasons, tuple(command),
                                 request.expect_exit, request.expect_output))
        trace = None
        if strace is not None:  # the first run again (at the prefix: no copies), traced
            label, command, _ = plans[0]
            checkpoint()
            trace = run_traced(strace, sandbox, Layout(base_root, tuple(binds)), command, env,
                               request.timeout, os.path.join(work, "strace.txt"),
                               f"{label}, under strace",
                               (prefix, f"{ELSEWHERE}/{unpacked.name}"))
        return VerifyResult(request.artifact, unpacked.name, arch, glibc, checksum, integrity,
                            root_label, tuple(runs), tuple(notes), state, unpacked.sha256,
                            signature, trace)
    finally:
        drop_scratch(scratch)


def _prepare_root(work: str, user_root: str | None, prefix: str, sandbox: Sandbox,
                  ) -> tuple[str, list[str], str]:
    """(the host tree shown read-only as the run's root, notes, label). The artifact and
    the sandbox's own /proc, /dev, /tmp and HOME are put inside it by isolation.Layout."""
    how = sandbox.describe()
    if user_root is None:
        base = os.path.join(work, "bare")
        os.mkdir(base, 0o755)
        notes = make_bare_root(base)
        return base, notes, f"bare (an empty root with /proc, /dev, /etc), {how}"
    if os.path.lexists(user_root + prefix):
        raise InputError(f"--root {user_root}: already has {prefix}; the run would mix it "
                         "with the artifact")
    return (user_root, [], f"{user_root} (read-only; a fresh /tmp and HOME per run), {how}")


@dataclass(frozen=True)
class Installed:
    """The artifact as the runs see it: shown at `prefix` in the root, its unpacked tree
    `install` on the host, and whether its loader takes --argv0 (read from the file)."""

    prefix: str
    name: str
    program: str
    loader: str  # relative to the top, e.g. lib/ld-linux-x86-64.so.2
    argv0: bool
    install: str


def _plans(installed: Installed, args: tuple[str, ...], emulator: tuple[str, ...] | None,
           emulator_inside: str | None, has_shell: bool,
           ) -> list[tuple[str, list[str], tuple[tuple[str, str], ...]]]:
    """The runs: (label, command inside the root, (host tree, copy inside the root))."""
    prefix, name, program = installed.prefix, installed.name, installed.program
    loader, install = installed.loader, installed.install
    argv0 = ["--argv0", f"{prefix}/bin/{program}"] if installed.argv0 else []
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
    try:
        words = shlex.split(text)
    except ValueError as exc:  # e.g. "No closing quotation"
        raise InputError(f"--emulator {text!r}: {exc}") from None
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


def sandbox_prefix(prefix: str, artifact: str) -> str:
    """The manifest's prefix (absolute, normalised, no `..`: manifest.load) as a place in
    the sandbox root, refused where the root has directories of its own: installed there,
    the artifact would mix with them (or with the copy at ELSEWHERE)."""
    for own in SANDBOX_OWN:
        if prefix == own or prefix.startswith(own + "/"):
            raise UnsafeArtifactError(f"{artifact}: its prefix {prefix} is inside {own}, "
                                      "which verify's sandbox root provides itself")
    return prefix


def _signature(request: VerifyRequest) -> SignatureCheck | None:
    """With --key, the signed SHA256SUMS's word on the artifact (signing.py); a failure is
    an UnsafeArtifactError, raised before anything of the artifact is unpacked."""
    if request.key is None:
        if request.sums is not None:
            raise InputError(f"--sums {request.sums}: needs --key PUBKEY, the key whose "
                             "signature of it is checked")
        return None
    return check_release(request.artifact, request.key, request.sums)


def _program(manifest: Manifest, wanted: str | None) -> str:
    programs = manifest.programs  # never empty (manifest.load)
    if wanted is None:
        return programs[0]
    if wanted not in programs:
        raise InputError(f"--program {wanted}: the artifact has {', '.join(programs)}")
    return wanted


def _checksum(artifact: str, unpacked: Unpacked) -> tuple[ChecksumState, str]:
    """What OUT.sha256 beside the archive says of it, as a state and in words."""
    sidecar = artifact.rstrip("/") + ".sha256"
    if unpacked.sha256 is None:
        return "directory", "a directory artifact (no checksum file)"
    if not os.path.isfile(sidecar):
        return "absent", f"no {os.path.basename(sidecar)} beside it"
    try:
        with open(sidecar) as handle:
            expected = handle.read(4096).split()[0].lower()
    except (OSError, IndexError, UnicodeDecodeError):
        return "mismatch", f"MISMATCH: {os.path.basename(sidecar)} is unreadable"
    if expected != unpacked.sha256:
        return "mismatch", (f"MISMATCH: the archive's sha256 is {unpacked.sha256}, "
                            f"{os.path.basename(sidecar)} says {expected}")
    return "match", f"sha256 matches {os.path.basename(sidecar)}"


def render(result: VerifyResult) -> str:
    """The result for the terminal: context, one line per run, the verdict last."""
    lines = [f"bundle verify: {result.artifact} ({result.name}, {result.arch}, glibc "
             f"{result.glibc or 'unknown'})",
             f"  checksum   {result.checksum}",
             f"  manifest   {result.integrity.checked} entries checked (sha256, size, mode)"
             + (f": {len(result.integrity.problems)} problems" if result.integrity.problems
                else ", all match")]
    if result.signature is not None:
        lines.insert(1, f"  signature  {signature_line(result.signature)}")
    lines += [f"    {problem}" for problem in result.integrity.problems]
    if result.root:
        lines.append(f"  root       {result.root}")
    lines += [f"  note       {note}" for note in result.notes]
    for run in result.runs:
        outcome = run.outcome
        code = "timeout" if outcome.exit_code is None else f"exit {outcome.exit_code}"
        lines.append(f"{'PASS' if run.passed else 'FAIL'}  {run.label}: {code} in "
                     f"{outcome.seconds * 1000:.0f} ms")
        lines += [f"      {reason}" for reason in run.reasons]
        # What it printed, PASS or FAIL: a run that passes with a warning on stderr, or
        # with other output than expected, should be seen before publishing.
        lines += [f"      stdout: {line}" for line in shown_lines(outcome.stdout)]
        if outcome.stderr.strip():
            lines += [f"      stderr: {line}" for line in shown_lines(outcome.stderr)]
        if outcome.truncated:
            lines.append(f"      output: {outcome.stdout_bytes} bytes on stdout, "
                         f"{outcome.stderr_bytes} on stderr; only the first "
                         f"{human_size(OUTPUT_LIMIT)} of each kept and judged")
    if result.trace is not None:
        lines += render_trace(result.trace)
    verdict = "PASS" if result.passed else "FAIL"
    why = ("the artifact differs from its manifest" if result.integrity.problems
           else f"{sum(r.passed for r in result.runs)} of {len(result.runs)} runs passed")
    lines.append(f"verify: {verdict} ({why})")
    # Names, labels, prefixes and the program's output come from the artifact: each line is
    # made inert, so none can start a line of its own or drive the terminal (text.py).
    return "\n".join(one_line(line) for line in lines) + "\n"


def signature_line(check: SignatureCheck) -> str:
    return (f"good: {os.path.basename(check.signed_file)} signed by {check.key_id} "
            f"({check.tool}); lists {check.artifact} with its sha256")


def shown_lines(text: str) -> list[str]:
    """A stream as the text shows it: its first SHOWN_LINES lines, each cut at LINE_CHARS,
    then how many more there are; "(none)" for no output."""
    lines = text.rstrip("\n").splitlines()
    if not lines:
        return ["(none)"]
    shown = [line if len(line) <= LINE_CHARS else f"{line[:LINE_CHARS]}... "
             f"({len(line) - LINE_CHARS} more characters)" for line in lines[:SHOWN_LINES]]
    more = len(lines) - SHOWN_LINES
    return shown + ([f"({more} more line{'s' if more != 1 else ''})"] if more > 0 else [])

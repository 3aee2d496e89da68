"""The native launcher: `launcher_templates/launcher.c` compiled once, its values written in.

bin/NAME as a static executable without libc keeps argv[0] as the caller gave it at the
prefix too (a script cannot: sh has no `exec -a`), needs no /bin/sh (distroless images)
and spares a shell start. It is compiled by the build host's C compiler for the artifact's
architecture (a cgo build host has one; cross builds have the cross gcc); where there is
none the POSIX sh launcher (launcher.py) is used and the summary and report say so.

The compile holds no artifact's values: launcher.c reserves a space (VALUES_SPACE bytes
that begin with VALUES_MAGIC), and each launcher is the compiled file with its values
written over that space as NUL-terminated strings (`values_blob`). So one compile serves
every build with that compiler, and is kept between builds (launcher_cache.py). Values
are data, never C text: no name (quotes, newlines, `$`) can change the program. The
compile runs in a temporary directory under fixed file names with flags that leave no
build-id, no path and no compiler version in the output: two builds give the same bytes.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import platform
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources

from bundler import launcher_cache, scratch
from bundler.choices import LAUNCHER_TYPES, LauncherType
from bundler.elf import read_elf
from bundler.errors import BundleError, EnvironmentUnfitError, InputError
from bundler.machine import architecture_of
from bundler.plan import BundlePlan

SOURCE = "launcher.c"
OUTPUT = "launcher"
VALUES_MAGIC = b"BUNDLE-LAUNCHER-VALUES-1"  # what begins the values' space (launcher.c)
MIN_VALUES_SPACE = 4096  # one compile serves values up to this size (a page)
MAX_VALUES_SPACE = 1 << 20
CACHE_FORMAT = 1  # part of each cache key: a change to how entries are made bumps it
TOOLS = ("cc1", "as", "ld")  # what the driver runs: their identity is in the cache key
COMPILE_TIMEOUT = 120
# Architectures launcher.c has a `_start` and syscall numbers for.
SUPPORTED = ("x86-64", "aarch64", "i386")
# The host (`uname -m`) architectures whose plain `cc` builds for an artifact architecture.
NATIVE_HOSTS = {"x86-64": ("x86_64",), "aarch64": ("aarch64", "arm64"), "i386": ("i686",)}
COMMON_FLAGS = (
    "-std=gnu11", "-Os", "-static", "-nostdlib", "-ffreestanding", "-fno-builtin",
    "-fno-stack-protector", "-fno-stack-clash-protection", "-fno-pie", "-no-pie",
    "-fno-asynchronous-unwind-tables", "-fno-unwind-tables", "-fno-ident",
    "-Wl,--build-id=none", "-Wl,-z,noexecstack", "-Wl,-z,norelro", "-Wl,-z,noseparate-code",
    "-s",
)
ARCH_FLAGS = {
    "x86-64": ("-fcf-protection=none",),
    "i386": ("-fcf-protection=none",),
    "aarch64": ("-mbranch-protection=none", "-mgeneral-regs-only"),
}
MACHINES = {"x86-64": ("EM_X86_64", 64), "aarch64": ("EM_AARCH64", 64), "i386": ("EM_386", 32)}


@dataclass(frozen=True)
class Compiler:
    """A C compiler command that builds for one architecture."""

    command: tuple[str, ...]  # e.g. ("/usr/bin/gcc", "-m32")
    arch: str

    def describe(self) -> str:
        return " ".join([os.path.basename(self.command[0]), *self.command[1:]])


@dataclass(frozen=True)
class LauncherChoice:
    """Which launcher an artifact gets, and why (the summary and report quote `why`)."""

    kind: LauncherType
    why: str
    compiler: Compiler | None = None


def compiler_candidates(arch: str, multiarch: str, host: str) -> tuple[tuple[str, ...], ...]:
    """The commands that build for `arch` on a `host` (`uname -m`), best first: the host's
    cc/gcc for its own architecture (gcc -m32 for i386 on x86-64), then the Debian cross
    gcc `MULTIARCH-gcc`."""
    candidates: list[tuple[str, ...]] = []
    if host in NATIVE_HOSTS.get(arch, ()):
        candidates += [("cc",), ("gcc",)]
    if arch == "i386" and host == "x86_64":
        candidates += [("gcc", "-m32"), ("cc", "-m32")]
    candidates.append((f"{multiarch}-gcc",))
    if arch == "i386":
        candidates.append(("i686-linux-gnu-gcc",))
    return tuple(candidates)


def find_compiler(arch: str, multiarch: str, host_machine: str | None = None,
                  which=shutil.which) -> Compiler | None:
    """The first of `compiler_candidates` this host has (found through PATH: the build
    host's tools are the user's choice, unlike anything on a target)."""
    for command in compiler_candidates(arch, multiarch, host_machine or platform.machine()):
        found = which(command[0])
        if found:
            return Compiler((found, *command[1:]), arch)
    return None


def values_blob(plan: BundlePlan, program: str, up: int = 1,
                args: tuple[str, ...] = ()) -> bytes:
    """The values of `program`'s launcher `up` directories below the top (bin/NAME: 1),
    putting `args` before the caller's: what launcher.c reads from its values' space."""
    words = [program, plan.prefix, plan.loader_name, "1" if plan.launcher == "env" else "0",
             "1" if plan.loader_supports_argv0 else "0", str(up), str(len(plan.env)),
             *(word for s in plan.env for word in (s.variable, s.template)),
             str(len(args)), *args]
    encoded = []
    for word in words:
        data = os.fsencode(word)
        if b"\0" in data:
            raise InputError(f"{word!r}: a NUL byte cannot be part of a launcher value")
        encoded.append(data + b"\0")
    return VALUES_MAGIC + b"\0" + b"".join(encoded)


def values_space(size: int) -> int:
    """The space compiled in for values of `size` bytes: a page, else the next power of
    two (few sizes, so few compiles); over MAX_VALUES_SPACE is refused."""
    if size > MAX_VALUES_SPACE:
        raise InputError(f"the launcher's values take {size} bytes (the environment "
                         f"settings and arguments); at most {MAX_VALUES_SPACE} can be")
    return max(MIN_VALUES_SPACE, 1 << (size - 1).bit_length())


def with_values(generic: bytes, blob: bytes, space: int) -> bytes:
    """`generic` (compiled with `space`) with `blob` written over its values' space."""
    at = _space_at(generic, space)
    if at is None or len(blob) > space:
        raise EnvironmentUnfitError("the compiled launcher does not hold its values' space "
                                    "exactly once")
    return generic[:at] + blob.ljust(space, b"\0") + generic[at + space:]


def _space_at(data: bytes, space: int) -> int | None:
    """Where the values' space (the magic, then zeros) is, if `data` holds it exactly once."""
    at = data.find(VALUES_MAGIC + bytes(space - len(VALUES_MAGIC)))
    return at if at >= 0 and data.find(VALUES_MAGIC, at + 1) < 0 else None


def launcher_for(compiler: Compiler, plan: BundlePlan, program: str, up: int = 1,
                 args: tuple[str, ...] = ()) -> bytes:
    """The launcher of `program` (see values_blob), compiled by `compiler`."""
    blob = values_blob(plan, program, up, args)
    space = values_space(len(blob))
    return with_values(generic_launcher(compiler, space), blob, space)


def launcher_depth(dest: str) -> int:
    """The directories between the top and a launcher at `dest` (bin/NAME: 1)."""
    return dest.count("/")


def source_text() -> str:
    try:
        return resources.files("bundler").joinpath("launcher_templates", SOURCE).read_text()
    except OSError as exc:  # an installation without the package data
        raise EnvironmentUnfitError(f"launcher_templates/{SOURCE} is not installed with "
                                    f"bundle ({exc.strerror or exc})") from None


@functools.lru_cache(maxsize=16)
def generic_launcher(compiler: Compiler, space: int) -> bytes:
    """launcher.c compiled by `compiler` with `space` bytes for values: from the user's
    cache when an entry there is for this very source, flags and toolchain and passes the
    checks a fresh compile passes; else compiled (and kept there)."""
    source = source_text()
    key = _cache_key(compiler, space, source)
    if key is not None:
        kept = launcher_cache.load(key)
        if kept is not None and _acceptable(kept, compiler, space):
            return kept
    built = compile_launcher(compiler, space, source)
    if key is not None:
        launcher_cache.store(key, built)
    return built


def compile_launcher(compiler: Compiler, space: int, source: str | None = None) -> bytes:
    """launcher.c compiled now, in a private directory under fixed names (nothing of the
    build host's paths reaches the output), checked to be a static ELF for the arch that
    holds its values' space once."""
    source = source_text() if source is None else source
    with _workspace() as work:
        try:
            with open(os.path.join(work, SOURCE), "w") as handle:
                handle.write(source)
        except OSError as exc:
            raise EnvironmentUnfitError(f"cannot write the launcher's source in {work}: "
                                        f"{exc.strerror or exc}") from None
        command = [*compiler.command, *_flags(compiler, space), "-o", OUTPUT, SOURCE]
        try:
            done = subprocess.run(command, cwd=work, capture_output=True, text=True,
                                  env=_compiler_env(), timeout=COMPILE_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise EnvironmentUnfitError(
                f"{compiler.describe()} could not build the launcher: {exc}") from None
        if done.returncode != 0:
            first = (done.stderr.strip().splitlines() or ["no output"])[0]
            raise EnvironmentUnfitError(f"{compiler.describe()} could not build the launcher "
                                        f"(exit {done.returncode}): {first}")
        output = os.path.join(work, OUTPUT)
        _check_output(output, compiler)
        with open(output, "rb") as handle:
            built = handle.read()
    if _space_at(built, space) is None:
        raise EnvironmentUnfitError(f"{compiler.describe()} built a launcher without its "
                                    "values' space")
    return built


@contextlib.contextmanager
def _workspace() -> Iterator[str]:
    """A private directory for the compiler to run in (whatever it writes stays there)."""
    try:
        held = scratch.make_scratch("bundle-launcher")  # swept later if SIGKILL leaves it
    except OSError as exc:
        raise EnvironmentUnfitError(f"no temporary directory to build the launcher in: "
                                    f"{exc.strerror or exc}") from None
    try:
        yield held.path
    finally:
        scratch.drop_scratch(held)


def _flags(compiler: Compiler, space: int) -> tuple[str, ...]:
    return (*COMMON_FLAGS, *ARCH_FLAGS.get(compiler.arch, ()),
            f'-DVALUES_MAGIC="{VALUES_MAGIC.decode()}"', f"-DVALUES_SPACE={space}")


def _compiler_env() -> dict[str, str]:
    """Nothing of the caller's compiler environment (CPATH, GCC_EXEC_PREFIX, ...) but PATH
    and HOME (a ccache wrapper needs it)."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C",
            **({"HOME": os.environ["HOME"]} if "HOME" in os.environ else {})}


def _acceptable(data: bytes, compiler: Compiler, space: int) -> bool:
    """A cached launcher passes what a fresh compile must: static, for the architecture,
    holding its values' space once."""
    if _space_at(data, space) is None:
        return False
    try:
        with _workspace() as work:
            path = os.path.join(work, OUTPUT)
            with open(path, "wb") as handle:
                handle.write(data)
            _check_output(path, compiler)
        return True
    except (OSError, BundleError):
        return False


def _cache_key(compiler: Compiler, space: int, source: str) -> str | None:
    """What the compiled launcher depends on, as a file name; None when the toolchain
    cannot be identified (then nothing is cached)."""
    toolchain = _toolchain(compiler)
    if toolchain is None:
        return None
    text = repr((CACHE_FORMAT, source, compiler.command, compiler.arch,
                 _flags(compiler, space), toolchain))
    return f"{compiler.arch}-{space}-{hashlib.sha256(text.encode()).hexdigest()[:32]}"


def _toolchain(compiler: Compiler) -> tuple[object, ...] | None:
    """The driver and the programs it runs (TOOLS), each as its real path and identity."""
    found = []
    with _workspace() as work:  # not the caller's directory: a driver may write files
        for tool in TOOLS:
            try:
                done = subprocess.run([*compiler.command, f"-print-prog-name={tool}"],
                                      cwd=work, capture_output=True, text=True,
                                      env=_compiler_env(), timeout=COMPILE_TIMEOUT)
            except (OSError, subprocess.TimeoutExpired):
                return None
            name = done.stdout.strip()
            if done.returncode != 0 or not name:
                return None
            found.append(name if os.path.isabs(name) else shutil.which(name) or name)
    identities: list[tuple[str, tuple[int, ...] | None]] = []
    for path in (shutil.which(compiler.command[0]) or compiler.command[0], *found):
        if not os.path.isabs(path):  # clang runs no cc1: "cc1" is no file (not the cwd's)
            identities.append((path, None))
            continue
        real = os.path.realpath(path)
        try:
            # Not the ctime: a hard link made to the file changes it (seen here).
            info = os.stat(real)
            identities.append((real, (info.st_dev, info.st_ino, info.st_size,
                                      info.st_mtime_ns)))
        except OSError:
            identities.append((real, None))
    return tuple(identities)


def _check_output(path: str, compiler: Compiler) -> None:
    facts = read_elf(path)
    machine, elf_class = MACHINES[compiler.arch]
    if (facts.ident.machine, facts.ident.elf_class) != (machine, elf_class) \
            or not facts.is_static:
        raise EnvironmentUnfitError(
            f"{compiler.describe()} built a launcher that is {facts.ident.describe()}"
            f"{'' if facts.is_static else ', not static'}; {compiler.arch} was wanted")


def choose(wanted: str, arch: str, multiarch: str) -> LauncherChoice:
    """Which launcher to build for `--launcher-type wanted`: auto takes the native one
    when a compiler for `arch` exists. Asked for native where none can be: exit 3."""
    if wanted not in LAUNCHER_TYPES:
        raise InputError(f"--launcher-type {wanted}: choose one of {', '.join(LAUNCHER_TYPES)}")
    if wanted == "sh":
        return LauncherChoice("sh", "asked for with --launcher-type sh")
    if arch not in SUPPORTED:
        why = f"no native launcher for {arch} (it is written for {', '.join(SUPPORTED)})"
    else:
        compiler = find_compiler(arch, multiarch)
        if compiler is not None:
            return LauncherChoice("native", f"built by {compiler.describe()}", compiler)
        tried = ", ".join(" ".join(c) for c in
                          compiler_candidates(arch, multiarch, platform.machine()))
        why = f"no C compiler for {arch} on the build host (tried {tried})"
    if wanted == "native":
        raise EnvironmentUnfitError(f"--launcher-type native: {why}")
    return LauncherChoice("sh", why)


@dataclass(frozen=True)
class Launchers:
    """What each program's bin/NAME is: a native launcher built for it, or the sh script.

    Kept beside the plan, not in it: whether a compiler works is known only once it has
    compiled the launchers, which hold the final plan's paths (its lib/.bundle-ID).
    """

    kind: LauncherType
    why: str  # how they were built, or why the sh launcher is used
    native: Mapping[str, bytes] = field(default_factory=dict)  # launcher dest -> its bytes


def warm(wanted: str, program: str) -> None:
    """The compiled launcher made ready (or read from the cache) for `program`'s
    architecture while the build resolves, so that a first build on a machine waits less
    for the compiler. Any failure is left for build_launchers to meet and report."""
    with contextlib.suppress(BundleError, OSError):
        arch = architecture_of(read_elf(program).ident)
        choice = choose(wanted, arch.name, arch.multiarch)
        if choice.compiler is not None:
            generic_launcher(choice.compiler, MIN_VALUES_SPACE)


def build_launchers(plan: BundlePlan, wanted: str, multiarch: str) -> Launchers:
    """Each program's native launcher, or the sh launcher and why.

    In auto mode a compiler that fails falls back to the sh launcher with the reason; asked
    for native, the failure is the error (exit 3).
    """
    choice = choose(wanted, plan.arch, multiarch)
    built: dict[str, bytes] = {}
    if choice.compiler is not None:
        try:
            for item in plan.files:
                if item.kind == "launcher":
                    assert item.program is not None
                    built[item.dest] = launcher_for(choice.compiler, plan, item.program,
                                                    launcher_depth(item.dest), item.args)
        except BundleError as exc:
            if wanted == "native":
                raise
            choice, built = LauncherChoice("sh", exc.message), {}
    return Launchers(choice.kind, choice.why, built)


def launcher_note(kind: str, why: str, argv0_elsewhere: bool = True) -> str:
    """What the artifact's launcher is, and what it costs (the summary and report)."""
    if kind == "native":
        note = (f"native, static without libc ({why}): argv[0] as the caller gave it, at the "
                "prefix too; needs no /bin/sh")
    else:
        note = (f"sh script ({why}): needs /bin/sh on the target; at the prefix the program "
                "sees argv[0] as libexec/NAME (a script cannot exec with another argv[0]); "
                "one shell start per run")
    if not argv0_elsewhere:
        note += ("; the bundled loader (glibc < 2.33) has no --argv0, so away from the prefix "
                 "argv[0] is libexec/NAME")
    return note

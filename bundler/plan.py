"""The bundle plan: which file goes where in the artifact, and what is done to it.

Pure decisions over resolved closures (no I/O), so they can be tested and reported
before anything is written. The layout is DESIGN.md's: `bin/` launchers, `libexec/`
programs patched to the bundled loader, `lib/` the loader, glibc and the rest.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from bundler.elf import ElfFacts
from bundler.errors import InputError
from bundler.glibc import is_glibc
from bundler.manifest import name_problem, prefix_problem
from bundler.resolve import Closure, Library

if TYPE_CHECKING:  # nss.py imports release_key from here
    from bundler.nss import NssCoverage

# What an artifact entry is; build.py materialises each kind its own way.
FileKind = Literal["program", "library", "loader", "launcher", "alias", "data"]
LauncherMode = Literal["loader", "env"]  # how bin/NAME starts the program (launcher.py)
LAUNCHER_MODES: tuple[LauncherMode, ...] = ("loader", "env")
# What bin/NAME is: auto = native (a static C launcher) where a compiler exists, else sh.
LauncherType = Literal["native", "sh"]
LAUNCHER_TYPES = ("auto", "native", "sh")
LIBRARY_HOME = "lib"
IDENTITY_PREFIX = ".bundle-"
LIBRARY_RPATH = "$ORIGIN"
EXECUTABLE_MODE = 0o755
DATA_MODE = 0o644
ARGV0_SINCE = (2, 33)  # ld.so --argv0 appeared in glibc 2.33


@dataclass(frozen=True)
class Patch:
    """What patch.py does to a copy: a new PT_INTERP and/or DT_RPATH (RUNPATH removed)."""

    interpreter: str | None
    rpath: str


@dataclass(frozen=True)
class Rename:
    """Replace the NUL-terminated string `original` by `scoped` (same length) in a copy:
    how the bundled glibc gets variables of its own (scoping.py) and is kept from host
    paths (sealing.py). `whole=False`: `original` is a run of several strings, replaced
    wherever it occurs."""

    original: str
    scoped: str
    whole: bool = True


@dataclass(frozen=True)
class EnvSetting:
    """A variable the launcher exports for the bundled glibc."""

    variable: str  # the name exported
    means: str  # the glibc variable it stands for: GCONV_PATH, LOCPATH
    path: str  # under the artifact's top
    scoped: bool = False  # renamed in the bundled glibc: programs it starts ignore it


@dataclass(frozen=True)
class StagedFile:
    """One entry of the artifact, relative to its top directory."""

    dest: str
    kind: FileKind
    mode: int
    source: str | None = None  # host path of the original (None for generated files)
    patch: Patch | None = None
    link_target: str | None = None  # for "alias": a relative symlink
    program: str | None = None  # for "launcher": the program it starts
    runtime: bool = False  # loaded by glibc at run time (NSS module, libgcc_s), not DT_NEEDED
    renames: tuple[Rename, ...] = ()  # strings renamed in the copy (glibc's variables)
    offset: int | None = None  # the file is `length` bytes of `source` from here (a locale
    length: int | None = None  # category inside locale-archive)
    privileged: bool = False  # a "program" with setuid, setgid or file capabilities


@dataclass(frozen=True)
class BundlePlan:
    name: str
    prefix: str
    launcher: LauncherMode
    arch: str
    loader_name: str
    loader_supports_argv0: bool
    glibc_release: str | None
    min_kernel: str | None
    programs: tuple[str, ...]
    files: tuple[StagedFile, ...]
    missing: tuple[str, ...]  # unresolved libraries left out (--allow-missing)
    excluded: tuple[str, ...] = ()  # sonames left to the host (--exclude and what only they need)
    env: tuple[EnvSetting, ...] = ()  # variables the launcher sets
    runtime_missing: tuple[str, ...] = ()  # what glibc would dlopen, not in the build root
    nss: NssCoverage | None = None  # which nsswitch.conf sources the artifact serves (nss.py)
    library_home: str = LIBRARY_HOME  # lib/.bundle-ID once identify() has run
    sealed: tuple[str, ...] = ()  # host paths the bundled glibc can no longer open
    unsealed: tuple[str, ...] = ()  # those left open, and why (sealing.py)
    launcher_type: LauncherType = "sh"  # decided by the build (native_launcher.py)
    launcher_why: str = ""  # how it was built, or why the sh launcher was used


@dataclass(frozen=True)
class PlanOptions:
    name: str | None = None
    prefix: str | None = None
    launcher: str = "loader"
    allow_setuid: bool = False
    exclude: tuple[str, ...] = ()  # soname globs left to the host (e.g. GPU drivers)
    launcher_type: str = "auto"  # LAUNCHER_TYPES


def validate_name(name: str) -> str:
    """`name` as a file name in bin/ and libexec/, by the rule the manifest's reader holds
    every program name to (printable, at most 255 characters): an artifact named otherwise
    would be refused by its own `bundle verify`."""
    if name_problem(name):
        raise InputError(f"--name {name!r}: must be a plain file name")
    return name


def validate_prefix(prefix: str) -> str:
    """The prefix normalised (a trailing '/' or '//' dropped), or a one-line error by the
    rule every artifact's manifest is held to (manifest.prefix_problem)."""
    if not prefix.startswith("/") or "\0" in prefix:
        raise InputError(f"--prefix {prefix!r}: must be an absolute path")
    normal = "/" + posixpath.normpath(prefix).lstrip("/")  # normpath keeps a leading "//"
    if normal == "/":
        raise InputError("--prefix /: the bundle needs a directory of its own")
    problem = prefix_problem(normal)
    if problem:
        raise InputError(f"--prefix {prefix!r}: {problem}")
    return normal


def launcher_mode(text: str) -> LauncherMode:
    """`--launcher TEXT` as a LauncherMode, or a one-line error naming the choices."""
    for mode in LAUNCHER_MODES:
        if text == mode:
            return mode
    raise InputError(f"--launcher {text}: choose one of {', '.join(LAUNCHER_MODES)}")


def release_key(release: str | None) -> tuple[int, ...]:
    if not release:
        return ()
    return tuple(int(p) for p in release.split(".") if p.isdigit())


def make_plan(closures: list[Closure], glibc_release: str | None, min_kernel: str | None,
              options: PlanOptions, added: list[Closure] | None = None,
              data: tuple[StagedFile, ...] = (),
              env: tuple[EnvSetting, ...] = ()) -> BundlePlan:
    """Decide the artifact's content; refuses what could not run from the bundle.

    `added` are the closures of --add shared objects (plugins the programs dlopen): each
    goes into lib/ under its file name, with the libraries it needs.
    """
    launcher = launcher_mode(options.launcher)
    first = closures[0]
    name = validate_name(options.name or first.program_label)
    prefix = validate_prefix(options.prefix or f"/opt/{name}")
    for closure in closures:
        _check_bundleable(closure, first)
        _check_privilege(closure, options.allow_setuid)
    loader = first.loader
    assert loader is not None  # _check_bundleable refuses closures without one
    loader_name = loader.facts.soname or posixpath.basename(loader.path)
    files: dict[str, StagedFile] = {}
    sources: dict[str, str] = {}

    def add(entry: StagedFile, who: str) -> None:
        if entry.dest in files:
            if sources.get(entry.dest) == (entry.source or entry.link_target):
                return
            raise InputError(
                f"{entry.dest}: two different files want this name "
                f"({sources[entry.dest]} and {entry.source or entry.link_target}, "
                f"the second for {who}); bundle these programs separately"
            )
        files[entry.dest] = entry
        sources[entry.dest] = entry.source or entry.link_target or entry.dest

    add(StagedFile(f"lib/{loader_name}", "loader", EXECUTABLE_MODE, source=loader.host_path),
        first.program_label)
    programs = []
    for closure in closures:
        label = closure.program_label
        if name_problem(label):
            raise InputError(f"{closure.program.path}: its file name {label!r} holds a control "
                             "character or is too long; give it a plain name")
        if label in programs:
            raise InputError(f"{label}: given twice (two programs with the same file name)")
        programs.append(label)
        privileged = bool(privileges(closure.program))
        add(StagedFile(f"libexec/{label}", "program", _program_mode(closure.program),
                       source=closure.program.path,
                       patch=program_patch(prefix, loader_name, "lib", privileged),
                       privileged=privileged),
            label)
        add(StagedFile(f"bin/{label}", "launcher", EXECUTABLE_MODE, program=label), label)
    for plugin in added or ():
        add(_added_entry(plugin, first), plugin.program_label)
    for item in data:
        add(item, "data")
    # The plugins count as needers: what one of them needs is not "only an excluded one's".
    excluded = excluded_libraries([*closures, *(added or ())], options.exclude)
    for library, names, who in _libraries_by_file([*closures, *(added or ())]):
        if (library.soname or library.name) in excluded:
            continue
        for entry in _library_entries(library, names):
            add(entry, who)
    missing = sorted({u.describe() for c in closures for u in c.unresolved})
    return BundlePlan(
        name=name, prefix=prefix, launcher=launcher, arch=first.arch.name,
        loader_name=loader_name,
        loader_supports_argv0=release_key(glibc_release) >= ARGV0_SINCE,
        glibc_release=glibc_release, min_kernel=min_kernel, programs=tuple(programs),
        files=tuple(sorted(files.values(), key=lambda f: f.dest)), missing=tuple(missing),
        excluded=tuple(sorted(excluded)), env=env,
    )


def excluded_libraries(closures: list[Closure], globs: tuple[str, ...]) -> set[str]:
    """Sonames matching `globs`, plus those reachable only through them.

    A library that only an excluded one needs would otherwise shadow the host's own
    copy of it (found first through the program's DT_RPATH) and mix two builds. glibc's
    objects are never left out.
    """
    if not globs:
        return set()
    chosen = set()
    for closure in closures:
        for library in closure.libraries:
            soname = library.soname or library.name
            if any(fnmatch.fnmatchcase(n, g) for g in globs for n in (soname, library.name)):
                if is_glibc(soname):
                    raise InputError(f"--exclude: {soname} is part of glibc, which is bundled "
                                     "as one unit with its loader; it cannot be left out")
                chosen.add(soname)
    kept: set[str] = set()
    for closure in closures:
        by_name = {name: lib for lib in closure.libraries
                   for name in (lib.aliases or (lib.name,))}
        queue = [*closure.program.needed,
                 *(lib.name for lib in closure.libraries if lib.runtime)]
        while queue:
            needed = by_name.get(queue.pop())
            if needed is None:
                continue
            soname = needed.soname or needed.name
            if soname in chosen or soname in kept:
                continue
            kept.add(soname)
            queue += needed.facts.needed
    every = {lib.soname or lib.name for c in closures for lib in c.libraries}
    # glibc's own objects always stay: a host libm next to the bundled libc would not fit.
    return {soname for soname in every - kept if not is_glibc(soname)}


def _added_entry(plugin: Closure, first: Closure) -> StagedFile:
    facts = plugin.program
    if facts.is_static or facts.ident.file_type != "ET_DYN" or facts.interpreter is not None:
        raise InputError(f"--add {facts.path}: not a shared object (a plugin to dlopen); give "
                         "programs as BINARY")
    if plugin.arch != first.arch:
        raise InputError(f"--add {facts.path}: {plugin.arch.name}, the programs are "
                         f"{first.arch.name}")
    return StagedFile(f"lib/{plugin.program_label}", "library", DATA_MODE,
                      source=facts.path, patch=_library_patch(facts))


def privileges(program: ElfFacts) -> list[str]:
    return [name for name, present in (("setuid", program.setuid), ("setgid", program.setgid),
                                       ("file capabilities", program.capabilities is not None))
            if present]


def _check_privilege(closure: Closure, allowed: bool) -> None:
    held = privileges(closure.program)
    if held and not allowed:
        raise InputError(
            f"{closure.program.path}: has {' and '.join(held)}; started through the bundled "
            "loader it runs without them, and glibc ignores $ORIGIN for privileged programs. "
            "--allow-setuid bundles it with DT_RPATH PREFIX/lib: it keeps the privilege only "
            "when installed at the prefix and started directly"
        )


def program_patch(prefix: str, loader_name: str, home: str, privileged: bool) -> Patch:
    """PT_INTERP and DT_RPATH of a program whose libraries are in `home` (under the top).

    `home` is "lib" until identify() names it after lib/'s content. The DT_RPATH is
    `$ORIGIN/../HOME`, then the absolute PREFIX/HOME: started from a memfd copy
    (execveat, fexecve: runc's self re-exec) the kernel gives no path, /proc/self/exe reads
    "/memfd:NAME (deleted)", $ORIGIN becomes "/" and `$ORIGIN/../lib` the HOST's /lib; the
    absolute entry still finds the bundle at its prefix. Privileged programs get the
    absolute entry first: in secure mode glibc drops $ORIGIN entries.
    """
    origin, absolute = f"$ORIGIN/../{home}", f"{prefix}/{home}"
    if privileged:
        rpath = f"{absolute}:{origin}"
    else:
        rpath = origin if home == LIBRARY_HOME else f"{origin}:{absolute}"
    return Patch(f"{prefix}/{home}/{loader_name}", rpath)


def with_renames(plan: BundlePlan, renames: dict[str, tuple[Rename, ...]]) -> BundlePlan:
    """The plan with string edits added to the copies at these dests (glibc's libc and
    loader: scoping.py and sealing.py)."""
    files = tuple(dataclasses.replace(f, renames=(*f.renames, *renames[f.dest]))
                  if f.dest in renames and f.kind != "alias" else f for f in plan.files)
    return dataclasses.replace(plan, files=files)


def library_identity(plan: BundlePlan, digest: Callable[[str], str]) -> str:
    """16 hex digits naming everything under lib/: the files' content (by `digest` of the
    source), what is done to each copy, names and modes. Two artifacts share it only when
    their lib/ trees are the same bytes."""
    state = hashlib.sha256()
    for item in plan.files:
        if not item.dest.startswith(f"{LIBRARY_HOME}/"):
            continue
        content = digest(item.source) if item.source else None
        state.update(repr((item.dest, item.kind, item.mode, content, item.link_target,
                           item.offset, item.length, item.patch, item.renames)).encode())
        state.update(b"\0")
    return state.hexdigest()[:16]


def identify(plan: BundlePlan, digest: Callable[[str], str]) -> BundlePlan:
    """The plan with its programs pointed at `lib/.bundle-ID`, a symlink to `.` named after
    lib/'s content (library_identity), in PT_INTERP and DT_RPATH alike.

    Another version of the artifact installed at the prefix then has another ID: a copy
    run from elsewhere never takes a library from it (its absolute DT_RPATH entry names a
    directory that is not there), and a child that executes its libexec/ program directly
    gets "No such file or directory" for the interpreter instead of the installed
    version's loader paired with this version's libc. Call it last: the ID covers the
    string edits of sealing and scoping.
    """
    home = f"{LIBRARY_HOME}/{IDENTITY_PREFIX}{library_identity(plan, digest)}"
    files = [dataclasses.replace(f, patch=program_patch(plan.prefix, plan.loader_name, home,
                                                         f.privileged))
             if f.kind == "program" else f for f in plan.files]
    files.append(StagedFile(home, "alias", 0o777, link_target="."))
    return dataclasses.replace(plan, files=tuple(sorted(files, key=lambda f: f.dest)),
                               library_home=home)


def _program_mode(program: ElfFacts) -> int:
    """The setuid/setgid bits travel in the archive (tar run as root restores them)."""
    return EXECUTABLE_MODE | (0o4000 if program.setuid else 0) | (0o2000 if program.setgid else 0)


def _check_bundleable(closure: Closure, first: Closure) -> None:
    program = closure.program
    if program.is_static:
        raise InputError(f"{program.path}: statically linked; it needs no bundle, ship it as is")
    if program.interpreter is None:
        raise InputError(f"{program.path}: a shared library, not a program (no PT_INTERP)")
    if closure.loader is None:
        raise InputError(f"{program.path}: its interpreter {program.interpreter} was not found")
    if closure.arch != first.arch or (
        first.loader and closure.loader.realpath != first.loader.realpath
    ):
        raise InputError(f"{program.path}: uses another architecture or loader than "
                         f"{first.program.path}; bundle them separately")
    for library in closure.libraries:
        if "/" in library.name:
            raise InputError(f"{program.path}: needs {library.name} by path; such a DT_NEEDED "
                             "entry would still point at the build host's file")


def _libraries_by_file(closures: list[Closure]) -> list[tuple[Library, list[str], str]]:
    """Each library file once, with every name any program needs it under."""
    by_file: dict[str, tuple[Library, list[str], str]] = {}
    for closure in closures:
        for library in closure.libraries:
            _, names, _ = by_file.setdefault(
                library.host_path, (library, [], closure.program_label))
            for name in library.aliases or (library.name,):
                if name not in names:
                    names.append(name)
    return list(by_file.values())


def _library_entries(library: Library, names: list[str]) -> list[StagedFile]:
    """The file under its SONAME (or first name), relative symlinks for its other names."""
    primary = library.soname if library.soname in names else sorted(names)[0]
    soname = library.soname or library.name
    # glibc's own objects are never rewritten
    patch = None if is_glibc(soname) else _library_patch(library.facts)
    entries = [StagedFile(f"lib/{primary}", "library", _library_mode(library),
                          source=library.host_path, patch=patch, runtime=library.runtime)]
    entries += [StagedFile(f"lib/{alias}", "alias", 0o777, link_target=primary)
                for alias in sorted(names) if alias != primary]
    return entries


def _library_patch(facts: ElfFacts) -> Patch | None:
    """DT_RPATH $ORIGIN for a library that carries a search path of its own; none otherwise.

    A library without DT_RPATH/DT_RUNPATH finds its dependencies through the program's
    DT_RPATH ($ORIGIN/../lib: glibc searches the executable's DT_RPATH for every object that
    has no DT_RUNPATH, dl-load.c), so it is bundled byte for byte: nothing rewritten is
    nothing to go wrong, and LIEF (0.4 s to import, seconds on big files) is spared. One with
    a DT_RUNPATH would ignore the program's DT_RPATH, and one with a DT_RPATH would search
    the build host's dirs first on the target: both get $ORIGIN instead.
    """
    if facts.needed and (facts.rpath is not None or facts.runpath is not None):
        return Patch(None, LIBRARY_RPATH)
    return None


def _library_mode(library: Library) -> int:
    # libc.so.6 is executable (it prints its version); keep the x bit where it was meant.
    return EXECUTABLE_MODE if library.facts.interpreter else DATA_MODE

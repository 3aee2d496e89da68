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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from bundler import nss
from bundler.carry import Carry, Recipe
from bundler.choices import LAUNCHER_MODES, LauncherMode
from bundler.elf import ElfFacts
from bundler.errors import InputError
from bundler.glibc import is_glibc, release_key
from bundler.manifest import name_problem, prefix_problem
from bundler.nss import NssCoverage
from bundler.patch_spec import Patch
from bundler.resolve import Closure, Library
from bundler.scoping import (
    MAX_SCOPED_LENGTH,
    MIN_SCOPED_LENGTH,
    SCOPED_PREFIXES,
    Rename,
    scoped_name,
    whole_string_count,
)
from bundler.sealing import Seal, seal_libc, seal_loader

# What an artifact entry is; build.py materialises each kind its own way.
FileKind = Literal["program", "library", "loader", "launcher", "alias", "data"]
LIBRARY_HOME = "lib"
LIBC = "libc.so.6"
IDENTITY_PREFIX = ".bundle-"
LIBRARY_RPATH = "$ORIGIN"
EXECUTABLE_MODE = 0o755
DATA_MODE = 0o644
# The glibc-hwcaps levels glibc's loader knows, by architecture (glibc's
# sysdeps/x86_64/dl-hwcaps-subdirs.c); none for i386 and aarch64. From glibc 2.33.
HWCAPS_LEVELS = {"x86-64": ("x86-64-v2", "x86-64-v3", "x86-64-v4")}
HWCAPS_FROM = (2, 33)


@dataclass(frozen=True)
class EnvSetting:
    """A variable the launcher exports: for the bundled glibc (GCONV_PATH, LOCPATH), a
    recipe's or `--env`'s (PYTHONHOME={top}/usr)."""

    variable: str  # the name exported (a scoped name when renamed)
    means: str  # the variable it stands for: GCONV_PATH, PYTHONHOME
    path: str  # under the artifact's top ("" when `value` is given)
    scoped: bool = False  # renamed where it is read: programs it starts ignore it
    value: str | None = None  # the value with {top} for the top (carry.TOP); else top/path
    why: str = ""  # who asked: "" (the bundled glibc), "--env", "recipe python3"
    scoped_in: tuple[str, ...] = ()  # the dests whose copies read the scoped name

    @property
    def template(self) -> str:
        """The value with `{top}` standing for the artifact's top."""
        return self.value if self.value is not None else f"{{top}}/{self.path}"


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
    args: tuple[str, ...] = ()  # for "launcher": arguments before the caller's ({top})
    runtime: bool = False  # loaded by glibc at run time (NSS module, libgcc_s), not DT_NEEDED
    renames: tuple[Rename, ...] = ()  # strings renamed in the copy (glibc's variables)
    offset: int | None = None  # the file is `length` bytes of `source` from here (a locale
    length: int | None = None  # category inside locale-archive)
    privileged: bool = False  # a "program" with setuid, setgid or file capabilities
    mtime: int | None = None  # a carried file's own (None: the archive's epoch)


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
    runtime_missing_needed: tuple[str, ...] = ()  # of those, NSS modules its lookups load
    nss: NssCoverage | None = None  # which nsswitch.conf sources the artifact serves (nss.py)
    library_home: str = LIBRARY_HOME  # lib/.bundle-ID once identify() has run
    sealed: tuple[str, ...] = ()  # host paths the bundled glibc can no longer open
    unsealed: tuple[str, ...] = ()  # those left open, and why (sealing.py)
    carried: tuple[Carry, ...] = ()  # files and trees carried (--data, recipes, packages)
    recipes: tuple[Recipe, ...] = ()  # recognised and applied (recipes.py)
    declined: tuple[Recipe, ...] = ()  # recognised, not applied (--no-recipes)
    helpers: tuple[str, ...] = ()  # of `programs`, those bundled as another's helpers
    # The libexec/ file holding each planned closure's program, in the closures' order: a
    # program of the same bytes as an earlier one is held by that one's file (an alias in
    # libexec/ or a helper sharing a copy), so its label does not name its file.
    program_files: tuple[str, ...] = ()
    carry_notes: tuple[str, ...] = ()  # what carrying left out, and why (one line each)


@dataclass(frozen=True)
class ProgramPlace:
    """Where a program's launchers go: the programs given are started by bin/NAME, a
    --helper's launcher is at its DEST, a program of a carried tree is replaced in the tree
    by its launcher (git-core/git-upload-pack)."""

    launchers: tuple[str, ...]  # dests, relative to the top
    helper: bool = False  # executed by another program, not the artifact's own entry
    args: tuple[str, ...] = ()  # launcher arguments before the caller's ({top} allowed)
    in_tree: bool = False  # of a carried tree: bundled without setuid/setgid (noted there)


@dataclass(frozen=True)
class Carrying:
    """What carrying adds to the layout (gathered by build.py from carried_files.py,
    --helper and the recipes): program places by the program's host path, a plugin's
    place by its host path (default lib/NAME), and the carried trees' data and links."""

    places: Mapping[str, ProgramPlace] = field(default_factory=dict)
    plugin_dests: Mapping[str, str] = field(default_factory=dict)
    files: tuple[StagedFile, ...] = ()


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



@dataclass(frozen=True)
class GlibcCopies:
    """The bytes of the loader and libc.so.6 the artifact copies, read by the build (the
    plan's string edits are decided from them: scoping and sealing)."""

    loader: bytes
    libc_path: str | None  # the host file of the closure's libc.so.6 (None: it has none)
    libc: bytes | None


@dataclass(frozen=True)
class RuntimeNeeds:
    """What glibc will load at run time that the plan records (runtime_loads.py)."""

    missing: tuple[str, ...] = ()  # asked for, but the build root could not give them
    nss_lookups: bool = False  # anything in the closures calls an NSS lookup
    missing_needed: tuple[str, ...] = ()  # of `missing`, NSS modules its lookups would load


def make_plan(closures: list[Closure], glibc_release: str | None, min_kernel: str | None,
              options: PlanOptions, added: list[Closure] | None = None,
              data: tuple[StagedFile, ...] = (), env: tuple[EnvSetting, ...] = (),
              copies: GlibcCopies | None = None, runtime: RuntimeNeeds | None = None,
              digest: Callable[[str], str] | None = None,
              carrying: Carrying | None = None,
              read: Callable[[str], bytes] | None = None) -> BundlePlan:
    """The artifact's final plan: where each file goes (refusing what could not run from
    the bundle), the string edits of glibc's copies (`copies`: scoping and sealing), what
    glibc loads at run time and the NSS sources served (`runtime`), and the programs
    pointed at lib/.bundle-ID (`digest` hashes a source; last, since the ID covers every
    edit of lib/). Without `copies`, `runtime` or `digest` that step is left out (the
    unit tests of the layout). `carrying` places helpers, tree programs and plugins;
    `read` gives a source's bytes, to scope the variables of recipes and --env where the
    bundled objects read them (scope_environment)."""
    plan = _lay_out(closures, glibc_release, min_kernel, options, added, data, env,
                    carrying or Carrying(), digest)
    if copies is not None:
        plan = _edit_glibc_copies(plan, copies, read)
    if runtime is not None:
        plan = dataclasses.replace(plan, runtime_missing=runtime.missing,
                                   runtime_missing_needed=runtime.missing_needed,
                                   nss=nss_coverage(runtime.nss_lookups, plan, glibc_release))
    return identify(plan, digest) if digest is not None else plan


def _lay_out(closures: list[Closure], glibc_release: str | None, min_kernel: str | None,
             options: PlanOptions, added: list[Closure] | None = None,
             data: tuple[StagedFile, ...] = (),
             env: tuple[EnvSetting, ...] = (), carrying: Carrying = Carrying(),
             digest: Callable[[str], str] | None = None) -> BundlePlan:
    """Which file goes where; refuses what could not run from the bundle.

    `added` are the closures of --add shared objects (plugins the programs dlopen): each
    goes into lib/ under its file name (or at its carried tree's place), with the
    libraries it needs. Programs of the same content are bundled once: a helper or tree
    program equal to another program shares its libexec/ copy (git and git-core/git), a
    program given under another name is a link to it in libexec/ (git-upload-pack ->
    git); privileged programs keep their own copy.
    """
    launcher = launcher_mode(options.launcher)
    first = closures[0]
    name = validate_name(options.name or first.program_label)
    prefix = validate_prefix(options.prefix or f"/opt/{name}")
    for closure in closures:
        _check_bundleable(closure, first)
        place = carrying.places.get(closure.program.path)
        if place is None or not place.in_tree:
            _check_privilege(closure, options.allow_setuid)
    loader = first.loader
    assert loader is not None  # _check_bundleable refuses closures without one
    loader_name = loader.facts.soname or posixpath.basename(loader.path)
    files: dict[str, StagedFile] = {}
    sources: dict[str, str] = {}

    def add(entry: StagedFile, who: str) -> None:
        if entry.dest in files:
            if sources.get(entry.dest) == _identity_of(entry):
                return
            raise InputError(
                f"{entry.dest}: two different files want this name "
                f"({sources[entry.dest]} and {_identity_of(entry)}, "
                f"the second for {who}); bundle these programs separately"
            )
        files[entry.dest] = entry
        sources[entry.dest] = _identity_of(entry)

    add(StagedFile(f"lib/{loader_name}", "loader", EXECUTABLE_MODE, source=loader.host_path),
        first.program_label)
    for shortcut in hwcaps_shortcuts(first.arch.name, glibc_release):
        add(shortcut, first.program_label)
    programs: list[str] = []
    helpers: list[str] = []
    holders: list[str] = []
    by_content: dict[str, str] = {}
    for closure in closures:
        label = closure.program_label
        place = carrying.places.get(closure.program.path) or ProgramPlace((f"bin/{label}",))
        if name_problem(label):
            raise InputError(f"{closure.program.path}: its file name {label!r} holds a control "
                             "character or is too long; give it a plain name")
        content = digest(closure.program.path) if digest else closure.program.path
        privileged = not place.in_tree and bool(privileges(closure.program))
        same = by_content.get(content) if not privileged else None
        if not place.helper and not place.in_tree:
            if label in programs:
                raise InputError(f"{label}: given twice (two programs with the same file "
                                 "name)")
            bundled = label
            programs.append(label)
            if same is not None:  # the same bytes under another name: one copy
                add(StagedFile(f"libexec/{label}", "alias", 0o777, link_target=same), label)
        elif same is not None:  # a helper or a tree's program equal to one bundled
            bundled = same
        else:
            bundled = _free_label(label, programs) if label in programs else label
            programs.append(bundled)
            helpers.append(bundled)
        holders.append(f"libexec/{same or bundled}")
        if same is None:
            by_content.setdefault(content, bundled)
            add(StagedFile(f"libexec/{bundled}", "program",
                           EXECUTABLE_MODE if place.in_tree else _program_mode(closure.program),
                           source=closure.program.path,
                           patch=program_patch(prefix, loader_name, "lib", privileged),
                           privileged=privileged),
                bundled)
        for dest in place.launchers:
            add(StagedFile(dest, "launcher", EXECUTABLE_MODE, program=bundled, args=place.args),
                bundled)
    for plugin in added or ():
        add(_added_entry(plugin, first, carrying.plugin_dests.get(plugin.program.path)),
            plugin.program_label)
    for item in (*data, *carrying.files):
        add(item, "data")
    # The plugins count as needers: what one of them needs is not "only an excluded one's".
    excluded = excluded_libraries([*closures, *(added or ())], options.exclude)
    for library, names, who in _libraries_by_file([*closures, *(added or ())]):
        if (library.soname or library.name) in excluded:
            continue
        for entry in _library_entries(library, names):
            add(entry, who)
    missing = sorted({u.describe(placeless=True) for c in closures for u in c.unresolved})
    return BundlePlan(
        name=name, prefix=prefix, launcher=launcher, arch=first.arch.name,
        loader_name=loader_name,
        loader_supports_argv0=first.search is not None and first.search.argv0,
        glibc_release=glibc_release, min_kernel=min_kernel, programs=tuple(programs),
        files=tuple(sorted(files.values(), key=lambda f: f.dest)), missing=tuple(missing),
        excluded=tuple(sorted(excluded)), env=env, helpers=tuple(helpers),
        program_files=tuple(holders),
    )


def _identity_of(entry: StagedFile) -> str:
    """What an entry is, to tell a second request for the same file from a clash."""
    if entry.kind == "launcher":
        return f"the launcher of {entry.program} {entry.args}"
    return entry.source or entry.link_target or entry.dest


def _free_label(label: str, taken: list[str]) -> str:
    """`label-2`, `label-3`...: a name in libexec/ for a second program of that file name."""
    number = 2
    while f"{label}-{number}" in taken:
        number += 1
    return f"{label}-{number}"


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


def _added_entry(plugin: Closure, first: Closure, dest: str | None = None) -> StagedFile:
    """An --add plugin in lib/, or a carried tree's plugin at its place there (`dest`):
    one with a search path of its own gets DT_RPATH to lib/ from where it lies."""
    facts = plugin.program
    if facts.is_static or facts.ident.file_type != "ET_DYN" or facts.interpreter is not None:
        raise InputError(f"--add {facts.path}: not a shared object (a plugin to dlopen); give "
                         "programs as BINARY")
    if plugin.arch != first.arch:
        raise InputError(f"--add {facts.path}: {plugin.arch.name}, the programs are "
                         f"{first.arch.name}")
    if dest is None:
        return StagedFile(f"lib/{plugin.program_label}", "library", DATA_MODE,
                          source=facts.path, patch=_library_patch(facts))
    patch = _library_patch(facts)
    if patch is not None:
        up = posixpath.relpath(LIBRARY_HOME, posixpath.dirname(dest))
        patch = Patch(None, f"$ORIGIN/{up}")
    return StagedFile(dest, "library", DATA_MODE, source=facts.path, patch=patch)


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


def hwcaps_shortcuts(arch: str, glibc_release: str | None) -> list[StagedFile]:
    """lib/glibc-hwcaps/LEVEL -> .. for each level the bundled loader may look in first.

    glibc's loader (2.33 and later) tries each directory of a search path's glibc-hwcaps
    subdirectories (the levels the CPU supports, best first) and, before 2.37, its legacy
    hwcap subdirectories (tls, x86_64, haswell, ...), before the directory itself: for
    the first library found in lib/, ten failed opens and ten failed stats on glibc 2.36,
    0.02-0.05 ms of every start (measured on sqlite3 at its prefix). With the levels
    linking back to lib/, the first try finds each library (the same file: the loader
    knows it by device and inode). The libraries' names as the loader records them then
    read `lib/.bundle-ID/glibc-hwcaps/x86-64-v4/libc.so.6` (dladdr, dl_iterate_phdr; not
    /proc/PID/maps, where the kernel names the file); $ORIGIN of such a library resolves
    to lib/ all the same. A CPU below the lowest level (x86-64 before 2009) searches as
    before."""
    if release_key(glibc_release) < HWCAPS_FROM:
        return []
    return [StagedFile(f"{LIBRARY_HOME}/glibc-hwcaps/{level}", "alias", 0o777,
                       link_target="..") for level in HWCAPS_LEVELS.get(arch, ())]


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


def scope_environment(plan: BundlePlan, libc_dest: str, libc: bytes, loader: bytes,
                      libc_sha256: str,
                      read: Callable[[str], bytes] | None = None) -> BundlePlan:
    """The plan with each variable the launcher sets renamed where the bundled objects
    read it, so that programs started by the bundled one never see it: glibc's own
    (GCONV_PATH, LOCPATH) in the bundled libc where it is a whole string and the loader
    knows the original (so secure mode strips it); a recipe's or --env's in every bundled
    program and library holding the name (`read` gives their bytes), when it is a whole
    string in each of them (a name the linker shares as the tail of a longer string, like
    python's PYTHONHOME, cannot be renamed safely). The others stay unscoped (the report
    says programs started by the bundled one inherit them). Nothing is scoped for an
    artifact holding a privileged program."""
    if any(f.privileged for f in plan.files):
        return plan
    renames: dict[str, list[Rename]] = {}
    settings = []
    others = [s.means for s in plan.env if s.means not in SCOPED_PREFIXES]
    holders = _holders(plan, others, read) if others and read is not None else {}
    for setting in plan.env:
        if setting.means in SCOPED_PREFIXES:
            in_libc = whole_string_count(libc, setting.means)
            in_loader = whole_string_count(loader, setting.means)
            if in_libc and in_loader:
                scoped = scoped_name(setting.means, libc_sha256)
                renames.setdefault(libc_dest, []).append(Rename(setting.means, scoped))
                settings.append(dataclasses.replace(setting, variable=scoped, scoped=True))
                continue
        elif holders.get(setting.means):
            dests = holders[setting.means]
            scoped = scoped_name(setting.means, libc_sha256)
            for dest in dests:
                renames.setdefault(dest, []).append(Rename(setting.means, scoped))
            settings.append(dataclasses.replace(setting, variable=scoped, scoped=True,
                                                scoped_in=dests))
            continue
        settings.append(setting)
    plan = dataclasses.replace(plan, env=tuple(settings))
    if not renames:
        return plan
    return with_renames(plan, {dest: tuple(items) for dest, items in renames.items()})


def _holders(plan: BundlePlan, names: list[str], read: Callable[[str], bytes],
             ) -> dict[str, tuple[str, ...]]:
    """For each name that can be scoped, the dests of the bundled ELF objects holding it
    as a whole string; a name that some object holds only inside a longer string (or
    none holds, or too short to carry a digest) is left out."""
    found: dict[str, list[str]] = {n: [] for n in names
                                   if MIN_SCOPED_LENGTH <= len(n) <= MAX_SCOPED_LENGTH}
    unsafe: set[str] = set()
    for item in plan.files:
        if item.kind not in ("program", "library") or item.source is None:
            continue
        data = read(item.source)
        for name in found:
            if name.encode() + b"\0" not in data:
                continue
            if not whole_string_count(data, name):
                unsafe.add(name)
            else:
                found[name].append(item.dest)
    return {n: tuple(d) for n, d in found.items() if d and n not in unsafe}


def seal_plan(plan: BundlePlan, seals: list[tuple[str, Seal]]) -> BundlePlan:
    """The plan with each Seal's edits added to the copy at its `dest`, and what is sealed
    and what is not recorded for the manifest and the report."""
    edited = with_renames(plan, {dest: seal.renames for dest, seal in seals})
    return dataclasses.replace(
        edited,
        sealed=tuple(item for _, seal in seals for item in seal.sealed),
        unsealed=tuple(item for _, seal in seals for item in seal.unsealed))


def _edit_glibc_copies(plan: BundlePlan, copies: GlibcCopies,
                       read: Callable[[str], bytes] | None = None) -> BundlePlan:
    """The string edits of the bundled libc.so.6 and loader: the launcher's variables
    renamed in libc (scope_environment), host paths sealed in both (sealing.py)."""
    loader = next(f for f in plan.files if f.kind == "loader")
    libc_entry = None if copies.libc_path is None else next(
        (f for f in plan.files if f.source == copies.libc_path and f.kind == "library"), None)
    if loader.source is None:
        return plan
    if copies.libc is not None and libc_entry is not None and plan.env:
        plan = scope_environment(plan, libc_entry.dest, copies.libc, copies.loader,
                                 hashlib.sha256(copies.libc).hexdigest(), read)
    seals = [(loader.dest, seal_loader(copies.loader, keep_host_search=bool(plan.excluded)))]
    if copies.libc is not None and libc_entry is not None:
        privileged = any(f.privileged for f in plan.files)
        gconv = any(e.means == "GCONV_PATH" for e in plan.env)
        home = f"{plan.prefix}/lib/gconv" if privileged and gconv else None
        seals.append((libc_entry.dest, seal_libc(copies.libc, gconv_home=home)))
    else:
        seals.append((f"lib/{LIBC}", Seal((), (), (f"{LIBC}: not bundled",))))
    return seal_plan(plan, seals)


def nss_coverage(lookups: bool, plan: BundlePlan, release: str | None) -> nss.NssCoverage:
    """Which sources the planned artifact serves: its lib/libnss_*.so.2 and its glibc."""
    modules = [posixpath.basename(f.dest) for f in plan.files
               if f.kind == "library" and nss.source_of(posixpath.basename(f.dest))]
    return nss.coverage(lookups, modules, release, release_key(release))

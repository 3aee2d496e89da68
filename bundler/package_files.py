"""`--from-package`: the files of the Debian package that installed the program, as carries.

Like exodus's `--detect`: a program is often only half of its package (git's helpers in
/usr/lib/git-core and its templates, perl-base's modules), so the build can carry the rest.
The package is the one dpkg's database of the BUILD ROOT names (provenance.py reads it; its
reading is reused here, and a listed path matches through the root's own symlinks, so
/bin/ls listed on a merged-/usr root is the file at /usr/bin/ls, and the reverse; its
`diversions` are applied as `dpkg -S` applies them: a diverted file is where it was put).

What is carried: the package's regular files and symlinks, each at its own path under the
artifact's top (carry.default_dest), named by its canonical path in the root (one name per
file whichever alias dpkg listed). A directory ALL of whose entries in the root are this
package's (nothing of another package, nothing made locally) is carried as ONE tree
instead of file by file: /usr/lib/git-core is one carry, not 190; the report names trees a
reader recognises, and the lead's machinery finds the ELF files inside a tree either way.
The package's files that are left out inside such a tree go in its `exclude`.

What is left out, each said once in `left_out` (counts, not lists):
- the program itself (the build bundles it), unless it is inside a whole tree: the tree
  keeps it, so that links to it there (git-core's git-upload-pack -> git) do not dangle;
- documentation, packaging metadata, shell completion and service integration (systemd
  units, init scripts, cron and logrotate snippets): read by people, dpkg, shells and init,
  never by the program at run time;
- a conffile changed since dpkg installed it: that is the build host's configuration, not
  the package's (an admin's edits, perhaps secrets), so it is not shipped to other machines
  unasked. An unchanged /etc file IS carried: it is how the program runs at home
  (openssl's /etc/ssl/openssl.cnf); /etc/gitconfig is no package's file, so it never is;
- files the list names that the root lacks (path-excluded images drop them: said, with
  examples);
- a path whose own place under the top is the artifact's bin/ (a non-merged root's /bin).
The package's Depends are NOT followed: one that ships more than libraries (which the
closure brings) and documentation is named in `left_out` with where its files are, so the
user can carry what the program needs (perl's modules are perl-modules-5.36's).
"""

from __future__ import annotations

import glob
import hashlib
import os
import posixpath
import re
import stat
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from bundler.carry import Carry, check_dest, default_dest
from bundler.errors import InputError
from bundler.provenance import (
    Diversion,
    ListIndex,
    StatusEntry,
    load_database,
    load_diversions,
)
from bundler.sysroot import Sysroot
from bundler.tree import NotRegularFile, read_plain_file

OPTION = "--from-package"
MAX_CONFFILE_BYTES = 16 * 1024 * 1024  # a larger conffile is carried unchecked, and said
EXAMPLES = 3  # paths named in one note
# The root's diversions: canonical path diverted -> (the diversion, its target's canonical).
Diverted = Mapping[str, tuple[Diversion, str | None]]
PROGRAM = "the program itself"  # the build bundles it: not carried, not said

# What a program never reads at run time, by the directory it is under (as listed or
# canonical: /lib/systemd/system on a split root is /usr/lib/systemd/system merged).
LEFT_OUT_DIRS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("documentation", ("/usr/share/doc", "/usr/share/man", "/usr/share/info",
                       "/usr/share/doc-base", "/usr/share/gtk-doc")),
    ("packaging metadata", ("/usr/share/lintian", "/usr/share/bug", "/usr/share/menu")),
    ("shell completion", ("/usr/share/bash-completion", "/etc/bash_completion.d",
                          "/usr/share/zsh", "/usr/share/fish")),
    ("service integration", ("/lib/systemd", "/usr/lib/systemd", "/etc/systemd",
                             "/etc/init.d", "/etc/init", "/etc/cron.d", "/etc/cron.daily",
                             "/etc/cron.hourly", "/etc/cron.weekly", "/etc/cron.monthly",
                             "/etc/logrotate.d", "/usr/lib/tmpfiles.d",
                             "/usr/lib/sysusers.d", "/etc/rc0.d", "/etc/rc1.d", "/etc/rc2.d",
                             "/etc/rc3.d", "/etc/rc4.d", "/etc/rc5.d", "/etc/rc6.d",
                             "/etc/rcS.d")),
)
# Directories every package shares by their role: never one package's tree, even in a root
# where only it has files there (a tree named /usr/lib would tell the reader a falsehood).
SHARED_PARENTS = ("/", "/usr", "/var", "/usr/local")
SHARED_DIRS = ("/usr/share/perl5", "/usr/lib/python3", "/usr/lib/python3/dist-packages",
               "/usr/share/locale", "/usr/share/icons", "/usr/share/pixmaps",
               "/usr/share/applications", "/usr/share/fonts", "/usr/share/zoneinfo")
SHARED_TREES = ("/usr/share/locale", "/usr/share/icons", "/usr/share/fonts")  # and below
TRIPLET = re.compile(r"[a-z0-9_]+-linux-gnu[a-z0-9_]*")
SHARED_LIBRARY = re.compile(r"lib.*\.so(\.[0-9.]+)?")
LIBRARY_DIRS = re.compile(r"/(usr/)?lib(32|64|x32)?(/[a-z0-9_]+-linux-gnu[a-z0-9_]*)?")


@dataclass(frozen=True)
class PackageFiles:
    """What `--from-package` adds for one program: its package's files, as carries."""

    package: str  # name:arch, as dpkg says (git:amd64)
    version: str  # as dpkg says (1:2.39.5-0+deb12u3)
    carries: tuple[Carry, ...]  # files and whole trees, by source
    left_out: tuple[str, ...]  # one line each: what was not carried and why


# --- pure decisions ----------------------------------------------------------------------

def under(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def left_out_kind(*paths: str) -> str | None:
    """Why a file (by any of its names) is not for the program at run time; None: it may be."""
    for kind, directories in LEFT_OUT_DIRS:
        if any(under(path, d) for path in paths for d in directories):
            return kind
    return None


def is_shared_dir(directory: str) -> bool:
    """A directory that is many packages' by role: /, /usr, /etc, /usr/lib, /usr/share,
    /usr/lib/x86_64-linux-gnu, /usr/share/locale/de... Never carried as one package's tree."""
    parent, _, name = directory.rpartition("/")
    parent = parent or "/"
    return (directory == "/" or parent in SHARED_PARENTS or directory in SHARED_DIRS
            or any(under(parent, d) for d in SHARED_TREES)
            or (parent in ("/lib", "/usr/lib") and bool(TRIPLET.fullmatch(name))))


def is_shared_library(path: str) -> bool:
    """A library the loader finds in a system directory: the closure brings it if needed."""
    directory, _, name = path.rpartition("/")
    return bool(LIBRARY_DIRS.fullmatch(directory) and SHARED_LIBRARY.fullmatch(name))


def place_of(path: str) -> str:
    """Where a file is, to a reader: its first ancestor (or itself) below the shared
    directories: /usr/lib/python3.11 for /usr/lib/python3.11/os.py, /usr/bin/cpan itself."""
    parts = path.strip("/").split("/")
    for depth in range(1, len(parts) + 1):
        place = "/" + "/".join(parts[:depth])
        if not is_shared_dir(place):
            return place
    return path


def dependency_names(depends: str) -> list[list[tuple[str, str]]]:
    """`a (>= 1) | b:any, c` -> [[(a, ''), (b, 'any')], [(c, '')]]: each dependency's
    alternatives as (name, architecture qualifier)."""
    found = []
    for dependency in depends.split(","):
        alternatives = []
        for alternative in dependency.split("|"):
            words = alternative.strip().split()
            if not words:
                continue
            name, _, arch = words[0].partition(":")
            if re.fullmatch(r"[a-z0-9][a-z0-9+.-]+", name):
                alternatives.append((name, arch))
        if alternatives:
            found.append(alternatives)
    return found


def installed_dependency(alternatives: Iterable[tuple[str, str]], arch: str,
                         packages: Mapping[str, StatusEntry]) -> StatusEntry | None:
    """The installed package meeting a dependency: the first alternative installed, in the
    depender's architecture, or `all`, or any architecture when qualified `:any`."""
    for name, qualifier in alternatives:
        for wanted in (arch, "all") if qualifier != "any" else ():
            entry = packages.get(f"{name}:{wanted}")
            if entry is not None:
                return entry
        if qualifier == "any":
            for entry in packages.values():
                if entry.name == name:
                    return entry
    return None


def whole_trees(owned: Mapping[str, str], kept: Iterable[str],
                list_dir: Callable[[str], tuple[tuple[str, bool], ...] | None]) -> set[str]:
    """The largest directories to carry as one tree: each holds a kept file, and everything
    in it (`list_dir`: a directory's children in the root as (name, is_dir), None when
    unreadable) is a file of `owned` (canonical path -> file, link or dir) or such a
    directory, recursively; an empty directory counts when the package lists it. A shared
    directory (is_shared_dir) never qualifies. Reading stops at the first foreign entry, so
    /usr/share/locale's thousands of files are not all read to learn it is not git's."""
    pure: dict[str, bool] = {}

    def is_pure(directory: str) -> bool:
        if directory not in pure:
            pure[directory] = False  # a loop (impossible without symlinks) stays impure
            if is_shared_dir(directory):
                return False
            children = list_dir(directory)
            pure[directory] = owned.get(directory) == "dir" and children is not None and all(
                is_pure(f"{directory}/{name}") if is_dir
                else f"{directory}/{name}" in owned and owned[f"{directory}/{name}"] != "dir"
                for name, is_dir in children)
        return pure[directory]

    ancestors: set[str] = set()
    for path in kept:
        directory = posixpath.dirname(path)
        while directory not in ("/", "") and directory not in ancestors:
            ancestors.add(directory)
            directory = posixpath.dirname(directory)
    trees = {d for d in sorted(ancestors) if is_pure(d)}
    return {d for d in trees if posixpath.dirname(d) not in trees}


def note_of(what: str, examples: Iterable[str], after: str = "") -> str:
    """One line: `what` with {count} replaced, the first few examples, then `after`."""
    listed = sorted(examples)
    more = ", ..." if len(listed) > EXAMPLES else ""
    if len(listed) == 1:
        what = re.sub(r"\{count\} (\w+?)s\b", r"1 \1", what)  # 1 file, 1 conffile, 1 place
    return (f"{what.replace('{count}', str(len(listed)))}: {', '.join(listed[:EXAMPLES])}"
            f"{more}{after}")


# --- the edge ----------------------------------------------------------------------------

def package_carries(sysroot: Sysroot, program: str) -> PackageFiles:
    """The files of the package that installed `program` (its absolute path as the target
    sees it, e.g. /usr/bin/git or /bin/ls), as carries; what is left out said in one line
    each. The package is the one listing the program's file (symlinks followed), else the
    one listing the path as given (its directory resolved). Carries are sorted by source,
    each `Carry(source=canonical path in the root, dest=default_dest(source),
    why="package NAME")`, a tree's `exclude` holding glob-escaped relative paths. Nothing
    is written; Depends are named in `left_out`, never followed. InputError (one line) when
    the program is missing, the root has no dpkg database (or an RPM one), or no installed
    package lists the program."""
    database = load_database(sysroot)
    if database is None:
        if sysroot.is_dir("/var/lib/rpm") or sysroot.is_dir("/usr/lib/sysimage/rpm"):
            raise InputError(f"{OPTION}: the build root has an RPM database, not a dpkg one; "
                             "RPM build roots are not supported yet (carry files with --data)")
        raise InputError(f"{OPTION}: the build root has no dpkg database (/var/lib/dpkg/"
                         f"status), so the package of {program} cannot be known")
    root = database.root
    where = database.target if root.is_host else f"{database.target} in the build root"
    canonical = root.resolve(program) if program.startswith("/") else None
    if canonical is None:
        raise InputError(f"{OPTION}: {program} does not exist in the build root (give the "
                         "program's absolute path as the build root has it)")
    as_given = _canonical_listed(root, posixpath.normpath(program))
    diverted = _diversions(root)
    owners = _owners(database.owners, diverted, canonical, as_given)
    if not owners:
        others = database.other_owners(canonical)
        listed = f" (listed by {', '.join(others)}, not installed)" if others else ""
        raise InputError(f"{OPTION}: {program} is not installed by a package in the build "
                         f"root (dpkg database at {where}){listed}")
    entry = database.packages[owners[0]]
    left_out = [f"also listed by {', '.join(owners[1:])}; the files of {owners[0]} are "
                "carried"] if len(owners) > 1 else []
    programs = {canonical, as_given}
    carries, notes = _carries_of(root, database.by_basename.paths_of(entry.key), entry,
                                 diverted, programs)
    left_out += notes
    left_out += _dependency_notes(root, database.packages, database.by_basename, diverted,
                                  entry)
    return PackageFiles(entry.key, entry.version, carries, tuple(left_out))


def _canonical_listed(root: Sysroot, listed: str) -> str | None:
    """A listed path as the root has it: its directory resolved through the root's own
    symlinks, its name kept (a listed symlink names itself); None when the directory is
    missing."""
    directory, _, name = listed.rpartition("/")
    parent = root.resolve(directory or "/")
    if parent is None or not name:
        return None
    return f"{parent.rstrip('/')}/{name}"


def _diversions(root: Sysroot) -> dict[str, tuple[Diversion, str | None]]:
    """The root's diversions by the canonical path diverted, with the canonical path of
    their target (a diversion may name either alias of a merged-/usr path: dpkg does not
    resolve them)."""
    found = {}
    for diversion in load_diversions(root):
        canonical = _canonical_listed(root, diversion.path)
        if canonical is not None:
            found[canonical] = (diversion, _canonical_listed(root, diversion.to))
    return found


def _owners(owners_of: Callable[[str], list[str]],
            diverted: Diverted, canonical: str,
            as_given: str | None) -> list[str]:
    """The packages whose file is at `canonical` (else at `as_given`, the path as given
    with only its directory resolved: a symlink's own package), as dpkg -S says, diversions
    applied: the file at a diverted path is the diverting package's, the file at a
    diversion's target the diverted package's."""
    for path in (canonical, as_given):
        if path is None:
            continue
        if path in diverted:
            diversion = diverted[path][0]
            return [k for k in owners_of(path) if k.partition(":")[0] == diversion.by]
        for source, (diversion, target) in diverted.items():
            if target == path:
                found = [k for k in owners_of(source) if k.partition(":")[0] != diversion.by]
                if found:
                    return found
        found = owners_of(path)
        if found:
            return found
    return []


def _kind(root: Sysroot, path: str) -> str | None:
    try:
        mode = os.lstat(root.host_path(path)).st_mode
    except OSError:
        return None
    return "dir" if stat.S_ISDIR(mode) else "link" if stat.S_ISLNK(mode) else "file"


def _listing(root: Sysroot, directory: str) -> tuple[tuple[str, bool], ...] | None:
    try:
        with os.scandir(root.host_path(directory)) as entries:
            return tuple((e.name, e.is_dir(follow_symlinks=False)) for e in entries)
    except OSError:
        return None


def _changed_conffile(root: Sysroot, path: str, md5: str) -> bool | None:
    """Whether a conffile differs from what dpkg installed; None when it cannot be told."""
    try:
        data, _ = read_plain_file(root.host_path(path), MAX_CONFFILE_BYTES)
    except (OSError, NotRegularFile):
        return None
    if len(data) > MAX_CONFFILE_BYTES:
        return None
    return hashlib.md5(data, usedforsecurity=False).hexdigest() != md5.lower()


def _carries_of(root: Sysroot, listed: Iterable[str], entry: StatusEntry,
                diverted: Diverted, programs: set[str | None]
                ) -> tuple[tuple[Carry, ...], list[str]]:
    """The carries of one package's listed paths, and the notes of what is left out."""
    owned: dict[str, str] = {}  # canonical path -> file, link or dir
    aliases: dict[str, str] = {}  # canonical -> as listed (for the left-out rules)
    absent: list[str] = []
    listed = tuple(listed)
    parents = {posixpath.dirname(path) for path in listed}
    for path in listed:
        canonical = _canonical_listed(root, path)
        diversion, target = diverted.get(canonical or "", (None, None))
        if diversion is not None and diversion.by != entry.name:
            canonical = target  # another package's file is at the listed path
        kind = _kind(root, canonical) if canonical is not None else None
        if path in parents and kind is not None:
            kind = "dir"  # the package's directory, even as a symlink (merged /usr's /bin)
        if canonical is None or kind is None:
            if left_out_kind(path) is None and path not in parents:
                absent.append(path)
            continue
        owned.setdefault(canonical, kind)
        aliases.setdefault(canonical, path)
    conffiles = {}
    for path, md5 in entry.conffiles:
        canonical = _canonical_listed(root, path)
        if canonical is not None:
            conffiles[canonical] = md5
    left: dict[str, list[str]] = {}
    kept: set[str] = set()
    unchecked: list[str] = []
    for path, kind in owned.items():
        if kind == "dir":
            continue
        kind_left = left_out_kind(path, aliases[path])
        reason = PROGRAM if path in programs else kind_left and f"{kind_left} files"
        changed = _changed_conffile(root, path, conffiles[path]) \
            if reason is None and path in conffiles and kind == "file" else False
        if changed:
            reason = ("conffiles changed since dpkg installed the package (the build host's "
                      "configuration: --data one to carry it)")
        elif changed is None:
            unchecked.append(path)
        if reason is None:
            try:
                check_dest(default_dest(path), OPTION)
            except InputError:
                reason = ("files whose own place would be the artifact's bin/ (--data "
                          "SRC:DEST to carry one)")
        if reason is None:
            kept.add(path)
        else:
            left.setdefault(reason, []).append(path)
    trees = whole_trees(owned, kept, lambda directory: _listing(root, directory))
    # The program stays in a whole tree: links to it there (git-core's git-upload-pack ->
    # git) must not dangle, and the build stores identical files once.
    left_paths = {p for reason, paths in left.items() if reason != PROGRAM for p in paths}
    why = f"package {entry.name}"
    carries: list[Carry] = []
    covered: set[str] = set()
    for tree in sorted(trees):
        inside = sorted(p for p in left_paths if under(p, tree))
        exclude = tuple(glob.escape(posixpath.relpath(p, tree)) for p in inside)
        carries.append(Carry(tree, default_dest(tree), why, exclude=exclude))
        covered.update(p for p in kept if under(p, tree))
    carries += [Carry(p, default_dest(p), why) for p in kept - covered]
    notes = [note_of(f"left out {{count}} {reason}", paths)
             for reason, paths in left.items() if reason != PROGRAM]
    if absent:
        notes.append(note_of(f"left out {{count}} files {entry.key} lists that the build "
                             "root lacks", absent))
    if unchecked:
        notes.append(note_of(f"carried {{count}} conffiles not known to be as dpkg installed "
                             f"them (unreadable, or over {MAX_CONFFILE_BYTES} bytes)",
                             unchecked))
    return tuple(sorted(carries, key=lambda c: c.source)), notes


def _dependency_notes(root: Sysroot, packages: Mapping[str, StatusEntry], lists: ListIndex,
                      diverted: Diverted, entry: StatusEntry) -> list[str]:
    """A note for each installed Depends that ships more than shared libraries
    (the closure brings those when the program needs them) and documentation: its files are
    not carried, and may be what the program cannot run without (perl's modules). glibc's
    packages are left unsaid: the build carries glibc its own way. Pre-Depends are not
    followed: they are what installing needs (dpkg, debconf) and libraries."""
    notes = []
    seen = {entry.key}
    for alternatives in dependency_names(entry.depends):
        dependency = installed_dependency(alternatives, entry.architecture, packages)
        if dependency is None or dependency.key in seen or dependency.source == "glibc":
            continue
        seen.add(dependency.key)
        carries, _ = _carries_of(root, lists.paths_of(dependency.key), dependency, diverted,
                                 set())
        places = {place_of(c.source) for c in carries
                  if c.exclude or not is_shared_library(c.source)}
        if places:
            notes.append(note_of(f"depends on {dependency.key} {dependency.version}, not "
                                 "carried: {count} places", places,
                                 " (--data what the program needs of them, or "
                                 "--from-package for a program of it)"))
    return notes

"""The files of the carried trees, as the build root holds them (the I/O of carrying).

A carried tree is copied as it is at home, with three exceptions that make it run from the
artifact: an ELF program in it cannot run with the host's loader, so it is bundled as a
program (libexec/, patched) and a launcher takes its place; an ELF shared object (a plugin:
python's lib-dynload, perl's XS modules, openssl's providers) stays in place but brings its
libraries into lib/; and a symlink that leaves the tree (or is absolute) is replaced by what
it names, since an absolute or escaping link would name the host's file on the target.
Directories, devices and links that lead nowhere are left out, each with a note.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from bundler.carry import Carry
from bundler.elf import read_elf, read_ident
from bundler.errors import BundleError, InputError
from bundler.sysroot import Sysroot

CarriedKind = Literal["data", "alias", "program", "plugin"]
MAX_FILES = 200_000  # a tree larger than this is a mistake (--data /usr), not a data dir
ELF_MAGIC = b"\x7fELF"
PERMISSIONS = 0o777  # setuid/setgid bits are not carried in data (they would not apply)


@dataclass(frozen=True)
class CarriedFile:
    """One entry a carried tree puts under the artifact's top."""

    dest: str  # relative to the top
    kind: CarriedKind
    why: str
    source: str | None = None  # the host path to read (None for an alias)
    target: str | None = None  # its path in the build root, as the target sees it
    mode: int = 0o644
    mtime: int | None = None  # the original's, so caches keyed by it stay valid (.pyc)
    link_target: str | None = None  # an alias: the relative link, as at home


@dataclass(frozen=True)
class CarriedTrees:
    files: tuple[CarriedFile, ...]
    carried: tuple[Carry, ...]  # the carries found in the root
    notes: tuple[str, ...]  # what was left out, one line each


def walk_carries(carries: Iterable[Carry], sysroot: Sysroot) -> CarriedTrees:
    """Every file each carry puts in the artifact. A required carry the root lacks is an
    InputError; an optional one is noted and skipped."""
    files: list[CarriedFile] = []
    found: list[Carry] = []
    notes: list[str] = []
    for carry in carries:
        resolved = sysroot.resolve(carry.source)
        if resolved is None:
            if carry.required:
                raise InputError(f"{_who(carry)}: {carry.source} is not in the build root "
                                 f"{sysroot.root}")
            notes.append(f"{carry.source} ({carry.why}): not in the build root, not carried")
            continue
        found.append(carry)
        host = sysroot.host_path(resolved)
        if os.path.isdir(host):
            files += _tree(carry, resolved, sysroot, notes)
        else:
            entry = _file(carry, carry.dest, resolved, sysroot, notes)
            if entry is not None:
                files.append(entry)
    return CarriedTrees(tuple(files), tuple(found), tuple(notes))


def _who(carry: Carry) -> str:
    return carry.why if carry.why.startswith("--") else f"{carry.why} ({carry.source})"


def _tree(carry: Carry, root: str, sysroot: Sysroot, notes: list[str]) -> list[CarriedFile]:
    """The files under the tree `root` (a resolved target path), relative names kept."""
    files: list[CarriedFile] = []
    for relative, host in _walk(sysroot.host_path(root), carry):
        if len(files) >= MAX_FILES:
            raise InputError(f"{_who(carry)}: {carry.source} holds over {MAX_FILES} files; "
                             "carry the directories the program reads, not a whole system")
        target = posixpath.join(root, relative)
        dest = posixpath.join(carry.dest, relative)
        try:
            st = os.lstat(host)
        except OSError as exc:
            raise InputError(f"{_who(carry)}: cannot read {target}: "
                             f"{exc.strerror or exc}") from None
        if stat.S_ISLNK(st.st_mode):
            entry = _link(carry, dest, target, root, relative, sysroot, notes)
        elif stat.S_ISREG(st.st_mode):
            entry = _file(carry, dest, target, sysroot, notes)
        else:
            notes.append(f"{target} ({carry.why}): not a regular file, not carried")
            entry = None
        if entry is not None:
            files.append(entry)
    return files


def _walk(top: str, carry: Carry) -> Iterator[tuple[str, str]]:
    """(relative path, host path) of every non-directory under `top`, sorted, without
    following symlinks, leaving out what `carry.exclude` matches (a matched directory is
    not entered)."""
    def excluded(relative: str) -> bool:  # fnmatch: "*" crosses "/" ("*/__pycache__")
        return any(fnmatch.fnmatchcase(relative, glob) for glob in carry.exclude)

    for directory, dirs, names in os.walk(top, onerror=_raise):
        base = os.path.relpath(directory, top)
        base = "" if base == "." else base.replace(os.sep, "/")
        links = [d for d in dirs if os.path.islink(os.path.join(directory, d))]
        dirs[:] = sorted(d for d in dirs if d not in links
                         and not excluded(posixpath.join(base, d)))
        for name in sorted([*names, *links]):
            relative = posixpath.join(base, name)
            if not excluded(relative):
                yield relative, os.path.join(directory, name)


def _raise(exc: OSError) -> None:
    raise InputError(f"cannot read {exc.filename}: {exc.strerror or exc}")


def _link(carry: Carry, dest: str, target: str, root: str, relative: str,
          sysroot: Sysroot, notes: list[str]) -> CarriedFile | None:
    """A symlink in a tree: kept as a relative link when what it names is in the same tree
    (git-core's `git-add -> git`), else replaced by the file it names."""
    host = sysroot.host_path(target)
    link = os.readlink(host)
    named = posixpath.normpath(link if link.startswith("/")
                               else posixpath.join(posixpath.dirname(target), link))
    resolved = sysroot.resolve(target)
    if resolved is None:
        notes.append(f"{target} ({carry.why}): a link to {link}, which is not in the build "
                     "root: not carried")
        return None
    inside = named == root or named.startswith(root + "/")
    if inside and (resolved == root or resolved.startswith(root + "/")):
        relative_link = posixpath.relpath(named, posixpath.dirname(target))
        return CarriedFile(dest, "alias", carry.why, target=target, mode=0o777,
                           link_target=relative_link)
    if os.path.isdir(sysroot.host_path(resolved)):
        notes.append(f"{target} ({carry.why}): a link to the directory {link}, outside the "
                     "carried tree: left to the host")
        return None
    return _file(carry, dest, resolved, sysroot, notes)


def _file(carry: Carry, dest: str, target: str, sysroot: Sysroot,
          notes: list[str]) -> CarriedFile | None:
    """A regular file (followed through symlinks): data, or an ELF program or plugin."""
    resolved = sysroot.resolve(target) or target
    host = sysroot.host_path(resolved)
    try:
        st = os.stat(host)
        with open(host, "rb") as handle:
            head = handle.read(64)
    except OSError as exc:
        raise InputError(f"{_who(carry)}: cannot read {target}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        notes.append(f"{target} ({carry.why}): not a regular file, not carried")
        return None
    mode = st.st_mode & PERMISSIONS
    kind = _elf_kind(host, head) if head.startswith(ELF_MAGIC) else "data"
    if kind == "program" and st.st_mode & (stat.S_ISUID | stat.S_ISGID):
        notes.append(f"{target} ({carry.why}): setuid/setgid, bundled without the privilege")
    return CarriedFile(dest, kind, carry.why, source=host, target=resolved, mode=mode,
                       mtime=int(st.st_mtime))


def _elf_kind(host: str, head: bytes) -> CarriedKind:
    """program: dynamically linked, with an interpreter (needs the bundled loader);
    plugin: a shared object without one (dlopen'd); data: anything else (static programs,
    objects, core files: they need nothing of the artifact)."""
    ident = read_ident(head)
    if ident is None:
        return "data"
    try:
        facts = read_elf(host)
    except BundleError:
        return "data"  # not an ELF file the loader could load either
    if facts.interpreter is not None and not facts.is_static:
        return "program"
    if facts.ident.file_type == "ET_DYN" and facts.interpreter is None and not facts.is_static:
        return "plugin"
    return "data"

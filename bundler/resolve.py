"""The dependency closure of a program, found with ld.so's own search rules.

This follows glibc's `elf/dl-load.c` (`_dl_map_object`) and `elf/dl-deps.c` as written
in GLIBC-NOTES section 1: breadth-first loading; a name already loaded (by the name it was
requested under, its path or its SONAME) is reused; DT_RPATH of the requester and of its
loader chain up to the program (all skipped when the requester has DT_RUNPATH), then
`--library-path` (the loader's LD_LIBRARY_PATH), then the requester's own DT_RUNPATH, then
ld.so.cache, then the loader's compiled-in dirs; DF_1_NODEFLIB skips those dirs and the
cache entries under them (other cache entries still count).
Candidates of another class or machine are skipped; a file that is not ELF stops the
loader, and so it stops us. The target is never executed.

A bundle must run on every CPU of the architecture, so the baseline copy of a library is
chosen where glibc-hwcaps (or legacy hwcap) variants exist; the variants are recorded.
"""

from __future__ import annotations

import functools
import os
import posixpath
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from bundler.elf import ElfFacts, read_elf, read_ident
from bundler.errors import InputError, MissingLibraryError
from bundler.glibc import is_glibc, release_of_libc
from bundler.ldcache import CacheReading, read_ld_so_cache, read_ld_so_conf
from bundler.ldso import LoaderSearchFacts, search_facts
from bundler.machine import ARCHITECTURES, Architecture, architecture_of, same_abi
from bundler.sysroot import Sysroot

LEGACY_HWCAP_SUBDIRS = ("tls", "haswell", "xeon_phi", "avx512_1")
_DST = re.compile(r"\$(?:\{(ORIGIN|LIB|PLATFORM)\}|(ORIGIN|LIB|PLATFORM)(?![A-Za-z0-9_]))")

# How the loader found an object: the search step (DT_RPATH, LD_LIBRARY_PATH, ...) that
# gave its path, or "loader" for the interpreter itself.
FoundVia = Literal["rpath", "library_path", "runpath", "cache", "default", "multiarch", "path",
                   "loader"]
FOUND_VIA_TEXT: dict[FoundVia, str] = {
    "rpath": "DT_RPATH of {via}",
    "library_path": "--library-path",
    "runpath": "DT_RUNPATH of {via}",
    "cache": "ld.so.cache",
    "default": "default dir of the loader",
    "multiarch": "this machine's multiarch dir, after the cross sysroot's",
    "path": "path named in DT_NEEDED of {via}",
    "loader": "the program's interpreter",
}

# How requested_by names libc.so.6 when glibc itself loads a library (libgcc_s, NSS).
RUN_TIME_SUFFIX = " at run time"


@dataclass(frozen=True)
class Library:
    """One shared object the loader would map, and how it would find it."""

    name: str  # the DT_NEEDED name that first brought it in
    soname: str | None
    path: str  # the path the loader would open (search dir + name), in target space
    realpath: str  # its canonical path in target space (or on the host, see `on_host`)
    host_path: str  # the file on this machine
    found_via: FoundVia
    via_object: str | None  # whose DT_RPATH/DT_RUNPATH/DT_NEEDED gave it
    search_dir: str | None
    loaded_by: str  # the first object that needed it: the loader's `l_loader`
    requested_by: tuple[str, ...]
    depth: int
    hwcap_variants: tuple[str, ...]  # CPU-specific copies a bundle must not take
    facts: ElfFacts
    aliases: tuple[str, ...] = ()  # every DT_NEEDED name it was requested under
    runtime: bool = False  # loaded by glibc at run time (e.g. libgcc_s.so.1), not DT_NEEDED

    @property
    def reason(self) -> str:
        text = FOUND_VIA_TEXT[self.found_via].format(via=self.via_object)
        return f"{text}; loaded at run time by glibc" if self.runtime else text


@dataclass(frozen=True)
class Loader:
    """The program's interpreter (PT_INTERP), i.e. glibc's ld.so."""

    path: str  # as named by PT_INTERP (or the sysroot's loader for a library)
    realpath: str
    host_path: str
    facts: ElfFacts


@dataclass(frozen=True)
class Unresolved:
    """A DT_NEEDED that the loader would fail on, with the chain that asked for it."""

    name: str
    chain: tuple[str, ...]
    searched: tuple[str, ...]  # target dirs; "DIR (on this machine)" for the host's
    problem: str  # "not found" or why the file that was found is refused
    sysroot: str = "/"  # the root the target dirs are inside

    def describe(self, placeless: bool = False) -> str:
        """The line a user reads; `placeless`: as the artifact records it (the manifest,
        the report), naming the sysroot "the build root", never where this host keeps it."""
        chain = " -> ".join((*self.chain, self.name))
        text = f"{chain}: {self.problem}"
        if self.searched:
            text += "; " + searched_text(self.searched, self.sysroot, placeless)
        return text


def searched_text(searched: Sequence[str], sysroot: str, placeless: bool = False) -> str:
    """The dirs searched, saying that they are inside the sysroot when it is not `/`:
    `/lib/aarch64-linux-gnu` alone reads as this machine's dir."""
    named = "the build root" if placeless else f"the sysroot {sysroot}"
    where = "searched" if sysroot == "/" else f"searched in {named}"
    return f"{where}: " + ", ".join(searched)


@dataclass(frozen=True)
class Closure:
    """Everything the loader would load for `program`, in its loading order."""

    program: ElfFacts
    program_label: str
    arch: Architecture
    sysroot: str
    loader: Loader | None
    libraries: tuple[Library, ...]
    unresolved: tuple[Unresolved, ...]
    search: LoaderSearchFacts | None
    notes: tuple[str, ...]

    def chain_of(self, library: Library) -> tuple[str, ...]:
        by_name = {lib.name: lib for lib in self.libraries}
        chain = [library.name]
        current = library
        while current.loaded_by in by_name and len(chain) <= len(self.libraries):
            current = by_name[current.loaded_by]
            chain.append(current.name)
        chain.append(self.program_label)
        return tuple(reversed(chain))


@dataclass(frozen=True)
class ResolveOptions:
    library_path: tuple[str, ...] = ()  # target dirs searched like LD_LIBRARY_PATH
    allow_missing: bool = False
    # Libraries glibc itself dlopens at run time (libgcc_s.so.1 for pthread_cancel):
    # searched as libc.so.6 would, added with their own dependencies; a miss is a note.
    runtime_loaded: tuple[str, ...] = ()


@dataclass(frozen=True)
class _SearchDir:
    path: str
    space: Sysroot
    source: FoundVia
    via: str | None


@dataclass
class _Node:
    """A loaded object while the closure is being built (the loader's link_map)."""

    label: str
    facts: ElfFacts
    space: Sysroot
    path: str  # l_name
    realpath: str
    origin: str | None  # the value of $ORIGIN
    loader: _Node | None
    depth: int
    names: set[str] = field(default_factory=set)
    requested_by: list[str] = field(default_factory=list)
    found_via: FoundVia | Literal["main"] = "main"  # "main": the program itself
    via_object: str | None = None
    search_dir: str | None = None
    variants: tuple[str, ...] = ()
    runtime: bool = False  # dlopened by glibc at run time, not a DT_NEEDED
    order: int = -1  # its place in the loaded list (set when it is registered)


@dataclass(frozen=True)
class _Found:
    path: str
    realpath: str
    space: Sysroot
    found_via: FoundVia
    via: str | None
    search_dir: str | None
    variants: tuple[str, ...]


class _Refused(Exception):
    """The loader found a file but cannot load it, and stops."""


def resolve_closure(
    program_path: str, sysroot: Sysroot, options: ResolveOptions = ResolveOptions()
) -> Closure:
    """Resolve the closure of the ELF file at `program_path` (a path on this machine)."""
    return resolve_closures([program_path], sysroot, options)[0]


def resolve_closures(program_paths: Sequence[str], sysroot: Sysroot, options: ResolveOptions,
                     runtime_loaded: Callable[[list[Closure]], tuple[str, ...]] | None = None,
                     ) -> list[Closure]:
    """The closures of several programs, each walked once.

    `runtime_loaded` (runtime_loads.py) sees every program's DT_NEEDED closure and names
    what glibc itself will dlopen for them (libgcc_s, NSS modules); each resolver then loads
    those after `options.runtime_loaded`, searched as libc.so.6 would search them. A program
    missing a DT_NEEDED library is refused before the next one is read.
    """
    resolvers = []
    for path in program_paths:
        resolver = _Resolver(read_elf(path), sysroot, options)
        resolver.walk()
        resolvers.append(resolver)
    extra = runtime_loaded([r.closure() for r in resolvers]) if runtime_loaded else ()
    return [r.finish((*options.runtime_loaded, *extra)) for r in resolvers]


def sysroot_architectures(sysroot: Sysroot) -> tuple[tuple[Architecture, str], ...]:
    """The architectures whose glibc loader the sysroot holds, with the loader's path."""
    found = []
    for arch in ARCHITECTURES:
        for loader in arch.loader_names:
            for directory in ("/lib64", "/lib", f"/lib/{arch.multiarch}", "/lib32", "/libx32"):
                path = f"{directory}/{loader}"
                head = sysroot.read_bytes(path, 64) if sysroot.is_file(path) else None
                ident = read_ident(head) if head else None
                if ident and architecture_of_or_none(ident) == arch:
                    found.append((arch, path))
                    break
            else:
                continue
            break
    return tuple(found)


def architecture_of_or_none(ident) -> Architecture | None:
    try:
        return architecture_of(ident)
    except InputError:
        return None


class _Resolver:
    def __init__(self, program: ElfFacts, sysroot: Sysroot, options: ResolveOptions) -> None:
        self.program = program
        self.target = sysroot
        self.host = Sysroot("/") if not sysroot.is_host else sysroot
        self.options = options
        self.arch = architecture_of(program.ident)
        self.label = os.path.basename(program.path)
        self.notes: list[str] = []
        self.unresolved: list[Unresolved] = []
        self.loaded: list[_Node] = []
        self.by_identity: dict[tuple[int, int], _Node] = {}
        # The first loaded object each name would be taken from (_already_loaded): one
        # lookup per DT_NEEDED instead of a walk of the loaded list (quadratic in N).
        self.by_name: dict[str, _Node] = {}
        self.listing: dict[tuple[int, str], list[str]] = {}
        self.listed: dict[tuple[int, str], frozenset[str]] = {}

    # -- entry -------------------------------------------------------------------------
    def walk(self) -> None:
        """The loader, the search facts and the DT_NEEDED closure, breadth first; a miss
        not allowed is the error here (what glibc loads later never adds one)."""
        self.loader: Loader | None = None
        self.searched: LoaderSearchFacts | None = None  # the closure's: None when static
        if self.program.is_static:
            return
        main = self._main_node()
        loader = self.loader = self._loader()
        search = search_facts(
            self.target.read_bytes(loader.realpath) if loader else None, self.arch
        )
        self.search = self.searched = search
        self.cache = self._cache()
        self._register(main)
        if loader is not None:
            rtld = _Node(
                label=loader.facts.soname or posixpath.basename(loader.path),
                facts=loader.facts, space=self.target, path=loader.path,
                realpath=loader.realpath, origin=posixpath.dirname(loader.path),
                loader=None, depth=0, found_via="loader",
            )
            rtld.names.add(loader.path)
            if loader.facts.soname:
                rtld.names.add(loader.facts.soname)
            self._register(rtld)
        self._walk([main])
        if self.unresolved and not self.options.allow_missing:
            first = self.unresolved[0]
            raise MissingLibraryError(first.describe())

    def finish(self, runtime_loaded: tuple[str, ...]) -> Closure:
        """The closure with what glibc loads at run time added (each a note if missing)."""
        if not self.program.is_static:
            for name in runtime_loaded:
                self._load_at_run_time(name)
        return self.closure()

    def closure(self) -> Closure:
        return self._closure(self.loader, self.searched)

    def _walk(self, queue: list[_Node]) -> None:
        """Breadth-first over DT_NEEDED, as `_dl_map_object_deps` loads them."""
        while queue:
            requester = queue.pop(0)
            for name in requester.facts.needed:
                node = self._already_loaded(name)
                if node is None:
                    count = len(self.loaded)
                    node = self._load(name, requester)
                    if node is None:
                        continue
                    if len(self.loaded) > count:
                        queue.append(node)
                self._add_name(node, name)
                if requester.label not in node.requested_by:
                    node.requested_by.append(requester.label)

    def _load_at_run_time(self, name: str) -> None:
        """A dlopen by libc.so.6 itself: its search, then its dependencies."""
        if self._already_loaded(name) is not None:
            return
        libc = next((n for n in self.loaded if n.facts.soname == "libc.so.6"), self.loaded[0])
        before, count = len(self.unresolved), len(self.loaded)
        node = self._load(name, libc)
        if node is None:
            for missing in self.unresolved[before:]:
                self._note(f"{name} (loaded at run time by glibc) not found: "
                           f"{missing.problem}; "
                           + searched_text(missing.searched, self.target.root))
            del self.unresolved[before:]
            return
        self._add_name(node, name)
        node.requested_by.append(libc.label + RUN_TIME_SUFFIX)
        node.runtime = True
        self._walk([node])
        if len(self.unresolved) > before:
            self._unload_since(count, before, name)

    def _unload_since(self, count: int, before: int, name: str) -> None:
        """Forget a run-time load whose dependencies are missing: glibc's dlopen of it
        fails as a whole, so the bundle leaves it out (a note, not an error: `--nss auto`
        takes every module of the root, and one broken module must not stop the build)."""
        for missing in self.unresolved[before:]:
            self._note(f"{name} (loaded at run time by glibc) left out: {missing.describe()}")
        del self.unresolved[before:]
        gone = self.loaded[count:]
        del self.loaded[count:]
        labels = {node.label for node in gone}
        for node in self.loaded:
            node.requested_by[:] = [r for r in node.requested_by if r not in labels]
        for node in gone:
            identity = self._identity(node.space, node.realpath)
            if identity is not None and self.by_identity.get(identity) is node:
                del self.by_identity[identity]
        self.by_name = {}
        for node in self.loaded:
            self._index(node)

    def _closure(self, loader: Loader | None, search: LoaderSearchFacts | None) -> Closure:
        libraries = tuple(library for library in map(self._library, self.loaded)
                          if library is not None)
        return Closure(
            program=self.program, program_label=self.label, arch=self.arch,
            sysroot=self.target.root, loader=loader, libraries=libraries,
            unresolved=tuple(self.unresolved), search=search, notes=tuple(self.notes),
        )

    def _library(self, node: _Node) -> Library | None:
        """The closure's record of a loaded object; None for the program and its loader."""
        via = node.found_via
        if via == "main" or via == "loader":
            return None
        return Library(
            name=node.label, soname=node.facts.soname, path=node.path,
            realpath=node.realpath, host_path=node.space.host_path(node.realpath),
            found_via=via, via_object=node.via_object,
            search_dir=node.search_dir,
            loaded_by=node.loader.label if node.loader else self.label,
            requested_by=tuple(node.requested_by), depth=node.depth,
            hwcap_variants=node.variants, facts=node.facts,
            aliases=tuple(sorted(n for n in node.names if "/" not in n)),
            runtime=node.runtime,
        )

    # -- the program and its loader -----------------------------------------------------
    def _main_node(self) -> _Node:
        inside = self.target.target_path(self.program.path)
        space = self.target if inside is not None else self.host
        real = inside if inside is not None else os.path.realpath(self.program.path)
        # Started by the kernel, $ORIGIN comes from /proc/self/exe: symlinks resolved.
        node = _Node(label=self.label, facts=self.program, space=space, path=real,
                     realpath=real, origin=posixpath.dirname(real), loader=None, depth=0)
        if self.program.soname:
            node.names.add(self.program.soname)
        return node

    def _loader(self) -> Loader | None:
        held = sysroot_architectures(self.target)
        where = f"the sysroot {self.target.root}"
        interp = self.program.interpreter
        if interp is None:  # a shared object given directly: the sysroot's loader
            interp = next((path for arch, path in held if arch == self.arch), None)
        if interp is None or not self.target.is_file(interp):
            if held and self.arch not in [arch for arch, _ in held]:
                raise InputError(
                    f"{self.program.path}: {self.arch.name} object, but {where} holds "
                    + ", ".join(arch.name for arch, _ in held)
                    + f"; pass --sysroot DIR with the {self.arch.name} libraries"
                )
            problem = f"interpreter {interp or '(none)'} not found in {where}"
            if not self.options.allow_missing:
                raise MissingLibraryError(f"{self.label}: {problem}")
            self.notes.append(problem)
            return None
        real = self.target.resolve(interp) or interp
        facts = read_elf(self.target.host_path(real))
        if not same_abi(facts.ident, self.program.ident):
            raise InputError(
                f"{self.program.path}: {self.program.ident.describe()}, but its interpreter "
                f"{interp} in {where} is {facts.ident.describe()}; pass --sysroot DIR with "
                f"the {self.arch.name} libraries"
            )
        return Loader(path=interp, realpath=real, host_path=self.target.host_path(real),
                      facts=facts)

    def _cache(self) -> CacheReading:
        reading = read_ld_so_cache(self.target)
        if reading.problem:
            self.notes.append(reading.problem)
        elif reading.cache is None:
            conf_dirs = read_ld_so_conf(self.target)
            note = (f"no /etc/ld.so.cache in {self.target.root}: ld.so searches only its "
                    "default dirs")
            if conf_dirs:
                note += " (ld.so.conf lists " + ", ".join(conf_dirs) + "; run ldconfig -r)"
            self.notes.append(note)
        return reading

    # -- the loaded list ---------------------------------------------------------------
    def _register(self, node: _Node) -> None:
        node.order = len(self.loaded)
        self.loaded.append(node)
        self._index(node)
        identity = self._identity(node.space, node.realpath)
        if identity is not None:
            self.by_identity.setdefault(identity, node)

    def _index(self, node: _Node) -> None:
        """Every name `node` answers to in _already_loaded, each kept for the first object
        in loading order that answers to it."""
        keys = set(node.names)
        if node.found_via != "main":
            keys.add(node.path)
        if node.facts.soname is not None:
            keys.add(node.facts.soname)
        for key in keys:
            self._index_name(key, node)

    def _index_name(self, name: str, node: _Node) -> None:
        held = self.by_name.get(name)
        if held is None or held.order > node.order:
            self.by_name[name] = node

    def _add_name(self, node: _Node, name: str) -> None:
        node.names.add(name)
        self._index_name(name, node)

    @staticmethod
    def _identity(space: Sysroot, realpath: str) -> tuple[int, int] | None:
        try:
            st = os.stat(space.host_path(realpath))
        except OSError:
            return None
        return (st.st_dev, st.st_ino)

    def _already_loaded(self, name: str) -> _Node | None:
        """The first loaded object (in loading order) whose names, path (not the
        program's) or SONAME is `name`, as _dl_map_object's `_dl_name_match_p` walk finds
        it (by_name, kept by _index)."""
        return self.by_name.get(name)

    # -- one DT_NEEDED -----------------------------------------------------------------
    def _load(self, name: str, requester: _Node) -> _Node | None:
        try:
            found, searched = self._search(name, requester)
        except _Refused as refusal:
            self._unresolved(name, requester, (), str(refusal))
            return None
        if found is None:
            self._unresolved(name, requester, searched, "not found")
            return None
        identity = self._identity(found.space, found.realpath)
        if identity in self.by_identity:
            return self.by_identity[identity]
        facts = read_elf(found.space.host_path(found.realpath))
        node = _Node(
            label=name, facts=facts, space=found.space, path=found.path,
            realpath=found.realpath, origin=posixpath.dirname(found.path),
            loader=requester, depth=requester.depth + 1, found_via=found.found_via,
            via_object=found.via, search_dir=found.search_dir, variants=found.variants,
        )
        self._register(node)
        return node

    def _unresolved(self, name: str, requester: _Node, searched, problem: str) -> None:
        chain = []
        node: _Node | None = requester
        while node is not None:
            chain.append(node.label)
            node = node.loader
        self.unresolved.append(Unresolved(name, tuple(reversed(chain)), tuple(searched), problem,
                                          self.target.root))

    def _search(self, name: str, requester: _Node) -> tuple[_Found | None, list[str]]:
        if "/" in name:
            return self._named_path(name, requester), []
        searched: list[str] = []
        variants: list[str] = []
        for directory in self._search_dirs(requester):
            searched.append(self._shown(directory))
            found = self._try(directory, name, variants)
            if found:
                return found, searched
        # DF_1_NODEFLIB drops only the cache entries under a default dir, not the cache.
        found = self._from_cache(name, variants, requester.facts.nodeflib)
        if found:
            return found, searched
        if self.cache.cache is not None:
            searched.append("ld.so.cache")
        if not requester.facts.nodeflib:
            for path in self.search.system_dirs:
                searched.append(path)
                found = self._try(_SearchDir(path, self.target, "default", None), name, variants)
                if found:
                    return found, searched
            for directory in self._host_multiarch_dirs():
                searched.append(self._shown(directory))
                found = self._try(directory, name, variants)
                if found:
                    self._note(f"{name}: found in this machine's multiarch dir {directory.path} "
                               f"(dpkg --add-architecture), searched after the cross sysroot "
                               f"{self.target.root}'s own dirs")
                    return found, searched
        return None, searched

    def _host_multiarch_dirs(self) -> list[_SearchDir]:
        """This machine's dirs of the program's architecture (Debian multiarch:
        `dpkg --add-architecture arm64` installs libsqlite3-0:arm64 under
        /usr/lib/aarch64-linux-gnu), searched last for a cross sysroot.

        Only for a cross root (no multiarch dirs of its own, as Debian's libc6-arm64-cross
        in /usr/aarch64-linux-gnu) of an architecture foreign to this machine: a full root
        (an old release's tree) is complete in itself, and this machine's own architecture's
        libraries would mix this machine's build into it."""
        own = (f"/lib/{self.arch.multiarch}", f"/usr/lib/{self.arch.multiarch}")
        if (self.target.is_host or self.arch.platform == os.uname().machine
                or any(self.target.is_dir(path) for path in own)):
            return []
        return [_SearchDir(path, self.host, "multiarch", None) for path in own
                if self.host.is_dir(path)]

    def _shown(self, directory: _SearchDir) -> str:
        """A searched dir as an error names it: the host's marked when the target's is not."""
        if directory.space is self.host and not self.target.is_host:
            return f"{directory.path} (on this machine)"
        return directory.path

    def _named_path(self, name: str, requester: _Node) -> _Found | None:
        expanded = self._expand(name, requester)
        if expanded is None or not expanded.startswith("/"):
            raise _Refused(f"path {name!r} is relative to the working directory at run time")
        space = requester.space if "ORIGIN" in name else self.target
        real = space.resolve(expanded)
        if real is None or not self._acceptable(space, real, expanded):
            return None
        return _Found(expanded, real, space, "path", requester.label, None, ())

    def _search_dirs(self, requester: _Node) -> list[_SearchDir]:
        dirs: list[_SearchDir] = []
        if requester.facts.runpath is None:
            node: _Node | None = requester
            did_main = False
            while node is not None:
                if node.facts.effective_rpath is not None:
                    dirs += self._split(node.facts.effective_rpath, node, "rpath")
                    did_main = did_main or node.loader is None
                node = node.loader
            main = self.loaded[0]
            if not did_main and main.facts.effective_rpath is not None:
                dirs += self._split(main.facts.effective_rpath, main, "rpath")
        for entry in self.options.library_path:
            dirs += self._split(entry, self.loaded[0], "library_path", via=None)
        if requester.facts.runpath is not None:
            dirs += self._split(requester.facts.runpath, requester, "runpath")
        return dirs

    def _split(
        self, value: str, owner: _Node, source: FoundVia, via: str | None = ""
    ) -> list[_SearchDir]:
        dirs = []
        for entry in value.split(":"):
            expanded = self._expand(entry, owner) if entry else None
            if expanded is None:
                self._note(f"{owner.label}: {source} entry {entry!r} ignored "
                           "(empty or $ORIGIN unknown: it would mean the working directory)")
                continue
            if not expanded.startswith("/"):
                self._note(f"{owner.label}: {source} entry {entry!r} is relative to the working "
                           "directory at run time; ignored")
                continue
            if len(expanded) > 1:
                expanded = expanded.rstrip("/")
            space = owner.space if _DST.search(entry) and "ORIGIN" in entry else self.target
            dirs.append(_SearchDir(expanded, space, source, owner.label if via == "" else via))
        return dirs

    def _expand(self, text: str, owner: _Node) -> str | None:
        values = {"ORIGIN": owner.origin, "LIB": self.search.lib_token,
                  "PLATFORM": self.arch.platform}
        missing = False

        def substitute(match: re.Match[str]) -> str:
            nonlocal missing
            value = values[match.group(1) or match.group(2)]
            if value is None:
                missing = True
                return ""
            return value

        expanded = _DST.sub(substitute, text)
        return None if missing else expanded

    def _note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def _try(self, directory: _SearchDir, name: str, variants: list[str]) -> _Found | None:
        variants.extend(self._variants(directory, name))
        path = f"{directory.path.rstrip('/')}/{name}"
        real = directory.space.resolve(path)
        if real is None or not self._acceptable(directory.space, real, path):
            return None
        return _Found(path, real, directory.space, directory.source, directory.via,
                      directory.path, tuple(variants))

    def _from_cache(self, name: str, variants: list[str], nodeflib: bool) -> _Found | None:
        cache = self.cache.cache
        if cache is None:
            return None
        variants.extend(cache.variants(name, self.arch.cache_flags))
        entry = cache.lookup(name, self.arch.cache_flags)
        if entry is None:
            return None
        if nodeflib and any(entry.path.startswith(d.rstrip("/") + "/")
                            for d in self.search.system_dirs):
            return None  # glibc's prefix test in _dl_map_object: a default dir's entry
        real = self.target.resolve(entry.path)
        if real is None or not self._acceptable(self.target, real, entry.path):
            return None
        return _Found(entry.path, real, self.target, "cache", None,
                      posixpath.dirname(entry.path), tuple(variants))

    def _variants(self, directory: _SearchDir, name: str) -> list[str]:
        """CPU-specific copies of `name` under `directory` that this CPU's ld.so may prefer."""
        subdirs = [f"glibc-hwcaps/{level}" for level in self._list(directory, "glibc-hwcaps")]
        listed = self._listed(directory)
        subdirs += [s for s in (*LEGACY_HWCAP_SUBDIRS, self.arch.platform) if s in listed]
        found = []
        for subdir in subdirs:
            path = f"{directory.path.rstrip('/')}/{subdir}/{name}"
            if directory.space.is_file(path):
                found.append(path)
        return found

    def _list(self, directory: _SearchDir, sub: str) -> list[str]:
        path = posixpath.join(directory.path, sub) if sub else directory.path
        key = (id(directory.space), path)
        if key not in self.listing:
            self.listing[key] = directory.space.list_dir(path)
        return self.listing[key]

    def _listed(self, directory: _SearchDir) -> frozenset[str]:
        """The names in `directory`, as a set: asked once per library searched there."""
        key = (id(directory.space), directory.path)
        if key not in self.listed:
            self.listed[key] = frozenset(self._list(directory, ""))
        return self.listed[key]

    def _acceptable(self, space: Sysroot, real: str, shown: str) -> bool:
        """The loader's `open_verify`: skip other classes/machines, stop on non-ELF files."""
        host = space.host_path(real)
        if os.path.isdir(host):  # open() works on a dir, read() fails (EISDIR): fatal
            raise _Refused(f"{shown}: cannot read file data: Is a directory (ld.so stops here)")
        try:
            with open(host, "rb") as handle:
                head = handle.read(64)
        except OSError:
            return False
        if len(head) < (64 if self.program.ident.elf_class == 64 else 52):  # sizeof(Ehdr)
            raise _Refused(f"{shown}: file too short (ld.so stops here)")
        ident = read_ident(head)
        if ident is None:
            raise _Refused(f"{shown}: invalid ELF header (ld.so stops here)")
        expected = self.program.ident
        if ident.elf_class != expected.elf_class or ident.machine != expected.machine:
            self._note(f"skipped {shown}: {ident.describe()}, not {expected.describe()}")
            return False
        if ident.little_endian != expected.little_endian:
            raise _Refused(f"{shown}: wrong byte order (ld.so stops here)")
        if ident.file_type != "ET_DYN":
            raise _Refused(f"{shown}: not a shared object ({ident.file_type})")
        return True


def libc_release(closure: Closure) -> tuple[Library | None, str | None]:
    """The libc.so.6 of the closure and its glibc release (read from its banner)."""
    libc = find_libc(closure)
    if libc is None:
        return None, None
    st = os.stat(libc.host_path)
    return libc, _release_once(libc.host_path, st.st_dev, st.st_ino, st.st_size,
                               st.st_mtime_ns, libc.facts.version_definitions)


@functools.lru_cache(maxsize=16)
def _release_once(path: str, _dev: int, _ino: int, _size: int, _mtime: int,
                  version_definitions: tuple[str, ...]) -> str | None:
    """The release in a libc's banner, read once per file identity and change (the build
    asks for it while deciding NSS modules and again for the program's facts)."""
    with open(path, "rb") as handle:
        return release_of_libc(handle.read(), version_definitions)


def find_libc(closure: Closure) -> Library | None:
    return next((lib for lib in closure.libraries if (lib.soname or lib.name) == "libc.so.6"),
                None)


def closure_objects(closure: Closure) -> list[tuple[str, ElfFacts]]:
    """The program and its non-glibc DT_NEEDED libraries, labelled: what the hazards (and
    the threads test) look at. What glibc loads at run time (NSS modules, libgcc_s) is
    glibc's business, not the program's."""
    objects: list[tuple[str, ElfFacts]] = [(closure.program_label, closure.program)]
    objects += [(lib.name, lib.facts) for lib in closure.libraries
                if not is_glibc(lib.soname or lib.name) and not lib.runtime]
    return objects

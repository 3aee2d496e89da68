"""`bundle diff OLD NEW`: what changed between two releases, as facts.

Both artifacts are read by `artifact_inspection.read_artifact` (the CLI calls it: a safe
unpack, the manifest checked against the tree, exit 4 on any difference), so everything
compared here is the typed, checked manifest and the verdict the artifact's report states;
no archive is read a second way. `diff_artifacts` is pure: two `ArtifactFacts` in, one
`ArtifactDiff` out; release_diff_render.py turns it into text and JSON.

What counts as a difference is the content: files (by path: type, sha256, size, mode,
symlink target), packages, Go modules, glibc, programs, NSS modules, the settings a target
sees (architecture, prefix, launcher, ...) and the verdict. The container does not: a
`.tar.zst` and the directory it unpacks to (or a `.tar.gz` of the same tree) have other
sha256s and compressed sizes, which are shown, but they hold the same release.

Three kinds of lines would drown the interesting ones, so they are put aside:
- a program or glibc file edited by the build (PT_INTERP, DT_RPATH, renamed strings) whose
  original is the same (`same_original`) changed only because something else did: the
  text lists it last, as re-edited;
- the `lib/.bundle-ID` symlink is named after lib/'s content (plan.identify): every change
  to a library renames it. It is compared as one "library home" setting, not as a file
  removed and another added;
- the files under `.bundle/` (SBOMs, licence files, SOURCES) follow the files they
  describe: they are a category of their own (`metadata`), which the text summarises.
  The manifest and report.md themselves are not records (manifest.NOT_LISTED): the
  manifest is compared field by field, the report by its verdict.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from bundler.inventory import GoModule, Package
from bundler.manifest import FileRecord, Manifest, archived_size

if TYPE_CHECKING:  # the data only: inspect and diff share the reader, not each other's code
    from bundler.artifact_inspection import ArtifactFacts, ReportVerdict

METADATA_DIR = ".bundle/"
LIBC_PATH = "lib/libc.so.6"
LIBRARY_HOME_KEY = "lib/.bundle-ID"  # the identity symlink, whatever its ID (see above)
# The settings compared one by one: (manifest field, what the text calls it).
SETTINGS: tuple[tuple[str, str], ...] = (
    ("arch", "architecture"),
    ("name", "name"),
    ("prefix", "prefix"),
    ("launcher", "launcher"),
    ("launcher_type", "launcher type"),
    ("loader", "loader"),
    ("library_home", "library home"),
    ("min_kernel", "min kernel"),
)
T = TypeVar("T")


@dataclass(frozen=True)
class Changed(Generic[T]):
    """One thing present in both artifacts whose content differs."""

    key: str  # its identity: a path, a package's NAME:ARCH, a program's name
    old: T
    new: T


@dataclass(frozen=True)
class Changes(Generic[T]):
    """A category's differences: each list sorted by key."""

    added: tuple[T, ...] = ()
    removed: tuple[T, ...] = ()
    changed: tuple[Changed[T], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)


@dataclass(frozen=True)
class Setting:
    """A scalar of the manifest that differs (old or new None: not recorded there)."""

    field: str  # the manifest's name for it: launcher_type
    label: str  # the text's: launcher type
    old: str | None
    new: str | None


@dataclass(frozen=True)
class LinkedModule:
    """A Go module as one program's build info names it (version, sum, replace)."""

    program: str
    module: GoModule


@dataclass(frozen=True)
class Glibc:
    version: str | None  # None: the manifest does not say
    package: Package | None  # the package lib/libc.so.6 came from (None: not recorded)


@dataclass(frozen=True)
class Side:
    """One artifact as the diff names it."""

    artifact: str  # the path as given
    name: str
    sha256: str | None  # of the archive file; None for a directory artifact
    compressed_size: int | None  # bytes of the archive file; None for a directory
    files: int  # records (files and symlinks)
    raw_size: int  # bytes the files hold
    verdict: ReportVerdict | None  # None: no readable report
    glibc: Glibc


@dataclass(frozen=True)
class ArtifactDiff:
    old: Side
    new: Side
    files: Changes[FileRecord]  # outside .bundle/
    metadata: Changes[FileRecord]  # under .bundle/: SBOMs, licence files, SOURCES
    packages: Changes[Package]
    go_modules: Changes[LinkedModule]  # keyed by "PROGRAM MODULE-PATH"
    programs: Changes[str]  # changed: the programs whose libexec/ file differs
    nss_modules: Changes[str]  # changed: the modules whose file differs
    settings: tuple[Setting, ...]

    @property
    def verdict_changed(self) -> bool:
        return self.old.verdict != self.new.verdict

    @property
    def glibc_changed(self) -> bool:
        a, b = self.old.glibc, self.new.glibc
        if a.version != b.version or (a.package is None) != (b.package is None):
            return True
        return a.package is not None and b.package is not None and not same_package(
            a.package, b.package)

    @property
    def differ(self) -> bool:
        """Whether the releases differ in content (the container's sha256 and compressed
        size do not count: see the module's docstring)."""
        return bool(self.verdict_changed or self.glibc_changed or self.files or self.metadata
                    or self.packages or self.go_modules or self.programs or self.nss_modules
                    or self.settings)


# -- pure ---------------------------------------------------------------------------------
def diff_artifacts(old: ArtifactFacts, new: ArtifactFacts) -> ArtifactDiff:
    """What changed from OLD to NEW, category by category."""
    a, b = old.manifest, new.manifest
    old_files, new_files = _records(a), _records(b)
    files = compare(
        {k: f for k, f in old_files.items() if not k.startswith(METADATA_DIR)},
        {k: f for k, f in new_files.items() if not k.startswith(METADATA_DIR)},
        same_file)
    metadata = compare(
        {k: f for k, f in old_files.items() if k.startswith(METADATA_DIR)},
        {k: f for k, f in new_files.items() if k.startswith(METADATA_DIR)},
        same_file)
    packages = compare({p.key: p for p in a.packages}, {p.key: p for p in b.packages},
                       same_package)
    return ArtifactDiff(
        old=side(old), new=side(new), files=files, metadata=metadata, packages=packages,
        go_modules=compare(_go_modules(a), _go_modules(b), lambda x, y: x == y),
        programs=_named(a.programs, b.programs, lambda n: b.program_record(n).path, files),
        nss_modules=_named(_nss_modules(a), _nss_modules(b), lambda n: f"lib/{n}", files),
        settings=tuple(Setting(field, label, _setting(a, field), _setting(b, field))
                       for field, label in SETTINGS
                       if _setting(a, field) != _setting(b, field)),
    )


def side(facts: ArtifactFacts) -> Side:
    m = facts.manifest
    return Side(artifact=facts.artifact, name=m.name, sha256=facts.sha256,
                compressed_size=facts.size, files=len(m.files),
                raw_size=archived_size(m.files), verdict=facts.verdict, glibc=glibc_of(m))


def glibc_of(m: Manifest) -> Glibc:
    """The bundled glibc's version and the package its libc.so.6 came from."""
    libc = next((f for f in m.files if f.path == LIBC_PATH), None)
    key = None if libc is None else libc.package
    return Glibc(m.glibc, next((p for p in m.packages if p.key == key), None))


def compare(old: dict[str, T], new: dict[str, T],
            same: Callable[[T, T], bool]) -> Changes[T]:
    """Added, removed and changed entries of two maps keyed by identity."""
    return Changes(
        added=tuple(new[k] for k in sorted(new.keys() - old.keys())),
        removed=tuple(old[k] for k in sorted(old.keys() - new.keys())),
        changed=tuple(Changed(k, old[k], new[k]) for k in sorted(old.keys() & new.keys())
                      if not same(old[k], new[k])),
    )


def same_file(a: FileRecord, b: FileRecord) -> bool:
    """The same bytes at the same place: what a target gets. Where a file came from
    (source, package, the string edits) is not the file; its package is compared as a
    package."""
    return (a.type, a.sha256, a.size, a.mode, a.target) == (
        b.type, b.sha256, b.size, b.mode, b.target)


def same_original(a: FileRecord, b: FileRecord) -> bool:
    """Whether two edited copies were made from the same original (the manifest records
    its sha256): their bytes differ only by the build's edits, e.g. a program's PT_INTERP
    and DT_RPATH pointing at another library home because a library changed."""
    if a.patched is None or b.patched is None or a.patched.source_sha256 is None:
        return False
    return (a.patched.source_sha256, a.patched.source_size) == (
        b.patched.source_sha256, b.patched.source_size)


def same_package(a: Package, b: Package) -> bool:
    """The same release of the same package, under the same terms. Where its database
    lay (the build root's path) and its copyright file's host path are not compared."""
    return (a.version, a.source, a.source_version, a.licence, a.distro) == (
        b.version, b.source, b.source_version, b.licence, b.distro)


def _records(m: Manifest) -> dict[str, FileRecord]:
    """The manifest's records by path, the library home under one key for any ID."""
    return {(LIBRARY_HOME_KEY if f.path == m.library_home and f.type == "symlink"
             else f.path): f for f in m.files}


def _named(old: Iterable[str], new: Iterable[str], path_of: Callable[[str], str],
           files: Changes[FileRecord]) -> Changes[str]:
    """Names added and removed, and those kept whose file changed."""
    old_names, new_names = set(old), set(new)
    changed_paths = {c.key for c in files.changed}
    return Changes(
        added=tuple(sorted(new_names - old_names)),
        removed=tuple(sorted(old_names - new_names)),
        changed=tuple(Changed(n, n, n) for n in sorted(old_names & new_names)
                      if path_of(n) in changed_paths),
    )


def _go_modules(m: Manifest) -> dict[str, LinkedModule]:
    """Each Go module by the program that links it and its path (two programs may link
    two versions of one module)."""
    return {f"{program} {module.path}": LinkedModule(program, module)
            for program, modules in m.go_modules for module in modules}


def _nss_modules(m: Manifest) -> tuple[str, ...]:
    return () if m.nss is None else m.nss.modules


def _setting(m: Manifest, field: str) -> str | None:
    value = getattr(m, field)
    return None if value is None else str(value)

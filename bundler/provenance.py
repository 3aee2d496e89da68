"""Whose each bundled file is: the dpkg package that installed it, and a Go program's modules.

The oracle is dpkg itself (`dpkg -S`, `dpkg-query -W`), so this reads what dpkg reads: the
`status` file (only packages whose Status says installed) and `info/*.list`, the paths each
package shipped. dpkg lists paths as shipped, not as they resolve (Debian 12 ships
/lib/x86_64-linux-gnu/libc.so.6 while /lib is a symlink to usr/lib), so a file matches a listed
path when the listed path's directory, resolved through the ROOT's own symlinks (never the
host's: `Sysroot` re-roots them), is the file's canonical directory and the names are equal.
Lists are indexed by basename, so only the few candidates are resolved.

A sysroot without a database whose top directory some package of the host's database ships
(the cross sysroot /usr/aarch64-linux-gnu, from libc6-arm64-cross) is looked up in the host's
database, and says so; any other root without one leaves every file's package unknown, with
the reason in words. Everything read here comes from a tree the user chose, so every file is
read with a cap and every parser tolerates garbage: a bad line is skipped, never a traceback.

Each package's licence is read from its copyright file by licences.py, which imports
license-expression (and python-debian, for the rare file it cannot read plainly) only when
one is parsed, which `inspect` need not pay.

What a build pays is kept to what its files need (sqlite3 on the dev host, 1,157 packages:
160 ms before, see `ListIndex` and `StatusHead`): every .list file is read (dpkg -S reads
them all too) but kept as bytes, with reads sized by fstat; of the status file, every
paragraph gives only its package, architecture and state, and only the packages shipped
are parsed whole.
"""

from __future__ import annotations

import bisect
import os
import re
import shlex
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypeVar

from bundler.inventory import (
    NOASSERTION,
    FileOrigin,
    GoModule,
    LicenceKind,
    Package,
    Provenance,
)
from bundler.licences import licence_kind, licence_of_copyright
from bundler.sysroot import Sysroot
from bundler.tree import NotRegularFile, read_plain_file

if TYPE_CHECKING:
    from bundler.golang import BuildInfo, Module

ADMINDIR = "/var/lib/dpkg"
MAX_STATUS_BYTES = 64 * 1024 * 1024  # Debian 12 with 765 packages: 0.7 MB
MAX_LIST_BYTES = 16 * 1024 * 1024  # the largest on the dev host: 4 MB
MAX_LIST_FILES = 100_000
MAX_LISTS_TOTAL_BYTES = 512 * 1024 * 1024  # all together; the dev host: 8 MB
MAX_COPYRIGHT_BYTES = 4 * 1024 * 1024  # a truncated DEP-5 file is not parsed: NOASSERTION
MAX_OS_RELEASE_BYTES = 64 * 1024
OS_RELEASE = ("/etc/os-release", "/usr/lib/os-release")

# Debian's short names (DEP-5 "License short name") that are not SPDX ids as written.
# Debian's exception keywords ("GPL-3+ with GCC-exception") -> SPDX exception ids, by the
# major version of the licence they modify.

# --- pure parsers ----------------------------------------------------------------------

class _PackageState:
    """What an entry and a head of dpkg's status say alike: installed or not, and the
    package's key (NAME:ARCH)."""

    name: str
    architecture: str
    state: str

    @property
    def installed(self) -> bool:
        return self.state == "installed"

    @property
    def key(self) -> str:
        return f"{self.name}:{self.architecture}"


@dataclass(frozen=True)
class StatusEntry(_PackageState):
    """One paragraph of dpkg's status file, reduced to what provenance needs."""

    name: str
    architecture: str
    version: str
    source: str
    source_version: str
    state: str  # the Status field's last word: installed, config-files, half-configured...
    multi_arch: str = ""
    maintainer: str = ""  # "Name <email>", the SBOMs' supplier
    depends: str = ""  # the Depends field as written (package_files.py)
    conffiles: tuple[tuple[str, str], ...] = ()  # (path, md5 as shipped); obsolete ones left out


def parse_source_field(value: str | None, name: str, version: str) -> tuple[str, str]:
    """The source package and its version from `Source: glibc (2.36-9)` or `Source: glibc`,
    defaulting to the binary's own name and version (dpkg omits the field when they agree)."""
    match = re.fullmatch(r"\s*([^\s()]+)\s*(?:\(\s*([^\s()]+)\s*\))?\s*", value or "")
    if match is None:
        return name, version
    return match.group(1), match.group(2) or version


def parse_status(text: str) -> tuple[StatusEntry, ...]:
    """Every package paragraph of a dpkg status file; paragraphs without a Package or Status
    field, and lines that are not `Field: value`, are skipped as dpkg-query would not show
    them either."""
    entries = (status_entry(paragraph) for paragraph in status_paragraphs(text))
    return tuple(entry for entry in entries if entry is not None)


def status_paragraphs(text: str) -> list[str]:
    return re.split(r"\n[ \t]*\n", text.replace("\r\n", "\n"))


def status_entry(paragraph: str) -> StatusEntry | None:
    """One paragraph of `status_paragraphs` as parse_status reads it; None when it names
    no package or no status."""
    fields: dict[str, str] = {}
    conffiles: list[tuple[str, str]] = []
    current = ""
    for line in paragraph.split("\n"):
        if not line or line[0] in " \t":  # continuation of a multi-line field
            words = line.split()
            if current == "conffiles" and len(words) == 2 and words[0].startswith("/"):
                conffiles.append((words[0], words[1]))  # 3 words: obsolete, or removed
            continue
        key, colon, value = line.partition(":")
        current = ""
        if colon and key.strip() and " " not in key.strip():
            current = key.strip().lower()
            fields.setdefault(current, value.strip())
    name = fields.get("package", "")
    status = fields.get("status", "").split()
    if not name or not status:
        return None
    version = fields.get("version", "")
    source, source_version = parse_source_field(fields.get("source"), name, version)
    return StatusEntry(name, fields.get("architecture", ""), version, source,
                       source_version, status[-1], fields.get("multi-arch", ""),
                       fields.get("maintainer", ""), fields.get("depends", ""),
                       tuple(conffiles))


@dataclass(frozen=True)
class StatusHead(_PackageState):
    """What a database read needs of every package: who owns which .list file. The rest of
    a paragraph is parsed (`status_entry`) only for the packages a build ships: parsing all
    1,157 paragraphs of this host's status took 15 ms of every build."""

    name: str
    architecture: str
    state: str
    paragraph: str


# A line naming one of the three fields StatusHead needs, as status_entry reads a field:
# not led by a space or tab, the name (stripped) before the line's first colon. Searched
# from each line's newline, which the regex engine finds fast (3 ms for this host's 1,157
# paragraphs; `^` in MULTILINE mode is tried at every character: 15 ms).
_HEAD_FIELD = re.compile(r"\n(?![ \t])[^\S\n]*(package|status|architecture)[^\S\n]*:([^\n]*)",
                         re.IGNORECASE)


def status_head(paragraph: str) -> StatusHead | None:
    """The package, architecture and state status_entry would read from `paragraph`; None
    where it reads no entry. A paragraph that is not ASCII (where a field name could
    lower-case to `package` in ways the pattern does not know) is parsed whole."""
    if not paragraph.isascii():
        entry = status_entry(paragraph)
        return None if entry is None else StatusHead(entry.name, entry.architecture,
                                                     entry.state, paragraph)
    fields: dict[str, str] = {}
    for key, value in _HEAD_FIELD.findall("\n" + paragraph):
        fields.setdefault(key.lower(), value.strip())
    name, status = fields.get("package", ""), fields.get("status", "").split()
    if not name or not status:
        return None
    return StatusHead(name, fields.get("architecture", ""), status[-1], paragraph)


class StatusEntries(Mapping[str, StatusEntry]):
    """The installed packages by key (the first paragraph of each), each parsed when it is
    first asked for."""

    def __init__(self, heads: Iterable[StatusHead]) -> None:
        self._heads: dict[str, StatusHead] = {}
        for head in heads:
            self._heads.setdefault(head.key, head)
        self._entries: dict[str, StatusEntry] = {}

    def __getitem__(self, key: str) -> StatusEntry:
        if key not in self._entries:
            entry = status_entry(self._heads[key].paragraph)
            assert entry is not None  # status_head read the same fields
            self._entries[key] = entry
        return self._entries[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._heads)

    def __len__(self) -> int:
        return len(self._heads)


class _Architectured(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def architecture(self) -> str: ...


Owner = TypeVar("Owner", bound=_Architectured)


def by_name(entries: Iterable[Owner]) -> dict[str, list[Owner]]:
    found: dict[str, list[Owner]] = {}
    for entry in entries:
        found.setdefault(entry.name, []).append(entry)
    return found


def list_owner(list_name: str, entries: Mapping[str, Sequence[Owner]]) -> Owner | None:
    """The package (of `by_name(...)`) an `info/NAME.list` file belongs to: `libc6:amd64.list`
    names its architecture (Multi-Arch: same packages), `zlib1g.list` the one package so
    named; None when none or several could be meant."""
    stem = list_name.removesuffix(".list")
    name, _, arch = stem.partition(":")
    matching = [e for e in entries.get(name, ()) if not arch or e.architecture == arch]
    return matching[0] if len(matching) == 1 or (arch and matching) else None


def parse_list(text: str) -> tuple[str, ...]:
    """The absolute paths of a .list file (dpkg writes `/.` for the root; skipped)."""
    stripped = (line.rstrip("/") for line in text.split("\n") if line.startswith("/"))
    return tuple(path for path in stripped if path and path != "/.")


@dataclass(frozen=True)
class Diversion:
    """One `dpkg-divert`: the file a package ships at `path` is at `to` instead, unless
    the package is the one diverting (`by`; "" for a local diversion, of no package)."""

    path: str
    to: str
    by: str


def parse_diversions(text: str) -> tuple[Diversion, ...]:
    """dpkg's `diversions` file: three lines each (from, to, package or ":" for local); a
    group that is not two absolute paths is skipped."""
    lines = text.split("\n")
    found = []
    for at in range(0, len(lines) - 2, 3):
        path, to, by = lines[at:at + 3]
        if path.startswith("/") and to.startswith("/") and by:
            found.append(Diversion(path, to, "" if by == ":" else by))
    return tuple(found)


def load_diversions(root: Sysroot) -> tuple[Diversion, ...]:
    """The diversions of `root`'s dpkg database; () without one."""
    target = _admindir(root)
    found = _read_in_root(root, f"{target}/diversions", MAX_LIST_BYTES) if target else None
    if found is None or found[1] is None:
        return ()
    return parse_diversions(found[1][0])


def parse_os_release(text: str) -> str | None:
    """`ID-VERSION_ID` (e.g. debian-12), the purl's distro qualifier; None without both
    (Debian testing/sid has no VERSION_ID)."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, equals, raw = line.partition("=")
        if not equals or not re.fullmatch(r"[A-Z_][A-Z0-9_]*", key.strip()):
            continue
        try:
            words = shlex.split(raw, comments=True)
        except ValueError:
            continue
        values[key.strip()] = words[0] if len(words) == 1 else ""
    ident, version = values.get("ID", ""), values.get("VERSION_ID", "")
    if not ident or not version or not re.fullmatch(r"[A-Za-z0-9._~+-]+", ident + version):
        return None
    return f"{ident}-{version}"




# --- Go modules --------------------------------------------------------------------------

def go_modules(info: BuildInfo) -> tuple[GoModule, ...]:
    """The main module, then every dependency by path, as `go version -m` lists them.

    A replaced module carries the replacement's go.sum hash: that is the code linked in.
    """

    def module(mod: Module, main: bool) -> GoModule:
        replaced = mod.replace
        if replaced is None:
            return GoModule(mod.path, mod.version or "(devel)", mod.sum, None, main)
        return GoModule(mod.path, mod.version or "(devel)", replaced.sum,
                        (replaced.path, replaced.version or "(devel)"), main)

    mains = (module(info.main, True),) if info.main and (info.main.path or info.main.version) \
        else ()
    return (*mains, *(module(d, False) for d in sorted(info.deps, key=lambda d: d.path)))


# --- the database (I/O) ----------------------------------------------------------------

def _read_capped(path: str, limit: int) -> tuple[str, bool] | None:
    """A regular file's text (undecodable bytes kept as surrogates, so paths compare as the
    OS's do) and whether it was cut at `limit`; None when unreadable. Callers resolve paths
    inside the root first; a symlink left at the end, a FIFO or a device is refused here, so a
    hostile tree can neither point this at a host file nor make it block."""
    found = _read_capped_bytes(path, limit)
    return None if found is None else (found[0].decode("utf-8", "surrogateescape"), found[1])


def _read_capped_bytes(path: str, limit: int) -> tuple[bytes, bool] | None:
    """`_read_capped` undecoded: the .list files stay bytes (ListIndex decodes the lines it
    finds; decoding all 10 MB of this host's lists cost 12 ms)."""
    try:
        data, _ = read_plain_file(path, limit)
    except (OSError, NotRegularFile):
        return None
    return data[:limit], len(data) > limit


def _read_in_root(root: Sysroot, target_path: str, limit: int
                  ) -> tuple[str, tuple[str, bool] | None] | None:
    """(canonical target path, `_read_capped`) of a target path resolved inside the root;
    None if absent."""
    resolved = root.resolve(target_path)
    if resolved is None:
        return None
    return resolved, _read_capped(root.host_path(resolved), limit)


@dataclass
class _Database:
    """One dpkg database, parsed once per process: installed packages and who lists what."""

    root: Sysroot  # the tree its paths are in (the host's for "/")
    admindir: str  # host path of var/lib/dpkg
    target: str  # the same as the tree sees it (/var/lib/dpkg): what the artifact names
    packages: Mapping[str, StatusEntry]  # installed, by key
    by_basename: ListIndex  # name -> (listed dir, package key)
    not_installed: ListIndex  # the same for other states' lists
    problems: tuple[str, ...]  # files cut or unreadable, said in the note
    distro: str | None
    licences: dict[str, tuple[str, LicenceKind, str | None]] = field(default_factory=dict)

    def prefetch(self, canonicals: Iterable[str]) -> None:
        """Look up the files at these canonical paths in one pass over each index."""
        names = [canonical.rpartition("/")[2] for canonical in canonicals]
        self.by_basename.prefetch(names)
        self.not_installed.prefetch(names)

    def owners(self, canonical: str) -> list[str]:
        """Keys of the installed packages listing the file at canonical path `canonical`."""
        return self._match(self.by_basename, canonical)

    def other_owners(self, canonical: str) -> list[str]:
        return self._match(self.not_installed, canonical)

    def _match(self, index: ListIndex, canonical: str) -> list[str]:
        directory, _, name = canonical.rpartition("/")
        directory = directory or "/"
        found = {key for listed_dir, key in index.get(name, ())
                 if self.root.resolve(listed_dir) == directory}
        return sorted(found)

    def lists_root_of(self, host_dir: str) -> str | None:
        """A package listing the directory `host_dir` (canonical, host): e.g. the cross
        sysroot /usr/aarch64-linux-gnu is libc6-arm64-cross's."""
        owners = self.owners(host_dir)
        return owners[0] if owners else None


_CACHE: dict[str, tuple[tuple[int, ...], _Database]] = {}


def _stamp(admindir: str) -> tuple[int, ...] | None:
    """What changes when dpkg changes the database: it renames new status and .list files
    into place, which changes the status file's inode and the info directory's mtime."""
    try:
        status = os.stat(os.path.join(admindir, "status"))
        info = os.stat(os.path.join(admindir, "info"))
    except OSError:
        return None
    return (status.st_ino, status.st_size, status.st_mtime_ns, info.st_ino, info.st_mtime_ns)


def _admindir(root: Sysroot) -> str | None:
    """ROOT's /var/lib/dpkg resolved inside the root (a target path), when it holds a
    status file."""
    resolved = root.resolve(ADMINDIR)
    if resolved is None or not root.is_file(f"{resolved}/status"):
        return None
    return resolved


def load_database(root: Sysroot) -> _Database | None:
    """The dpkg database of `root`, from the cache unless dpkg changed it since."""
    target = _admindir(root)
    if target is None:
        return None
    admindir = root.host_path(target)
    stamp = _stamp(admindir)
    cached = _CACHE.get(admindir)
    if stamp is not None and cached is not None and cached[0] == stamp:
        return cached[1]
    database = _read_database(Sysroot(root.root), target)
    if stamp is not None:
        _CACHE[admindir] = (stamp, database)
    return database


def _read_database(root: Sysroot, target: str) -> _Database:
    """Read the database at target path `target` (var/lib/dpkg resolved inside `root`)."""
    admindir = root.host_path(target)
    problems = []
    status = _read_capped(os.path.join(admindir, "status"), MAX_STATUS_BYTES)
    if status is None:
        problems.append("status unreadable")
    elif status[1]:
        problems.append(f"status cut at {MAX_STATUS_BYTES} bytes")
    heads = [head for head in map(status_head, status_paragraphs(status[0]) if status else ())
             if head is not None]
    installed = [h for h in heads if h.installed]
    others = [h for h in heads if not h.installed]
    packages = StatusEntries(installed)
    by_basename, not_installed = ListIndex(), ListIndex()
    info_target = root.resolve(f"{target}/info")
    info = root.host_path(info_target) if info_target is not None else ""
    try:
        names = sorted(n for n in os.listdir(info) if n.endswith(".list")) if info else []
    except OSError:
        names = []
    if not names:
        problems.append("no info/*.list files")
    if len(names) > MAX_LIST_FILES:
        problems.append(f"only the first {MAX_LIST_FILES} of {len(names)} .list files read")
        names = names[:MAX_LIST_FILES]
    installed_by_name, others_by_name = by_name(installed), by_name(others)
    budget = MAX_LISTS_TOTAL_BYTES
    for list_name in names:
        owner = list_owner(list_name, installed_by_name)
        index = by_basename
        if owner is None:
            owner = list_owner(list_name, others_by_name)
            index = not_installed
        if owner is None:
            continue
        if budget <= 0:
            problems.append(f"lists after {list_name} not read: over {MAX_LISTS_TOTAL_BYTES} "
                            "bytes in all")
            break
        limit = min(MAX_LIST_BYTES, budget)
        text = _read_capped_bytes(os.path.join(info, list_name), limit)
        if text is None:
            problems.append(f"{list_name} unreadable")
            continue
        budget -= len(text[0])
        if text[1]:
            problems.append(f"{list_name} cut at {limit} bytes")
        label = owner.key if index is by_basename else f"{owner.key} ({owner.state})"
        index.add(text[0], label)
    return _Database(root, admindir, target, packages, by_basename, not_installed,
                     tuple(problems), _distro(root))


class ListIndex:
    """Which lists name a file, searched by its name when asked.

    A database read keeps the .list files as one text and builds no index of their
    ~140,000 paths (splitting and indexing them took 0.16 s of every build on this host);
    each name asked for is found with a substring search over all of them, once. A line is
    a path as parse_list reads it: absolute, not `/.`. A search is a pass over the text
    (1.3-2.7 ms on this host): `prefetch` finds many names in one pass (0.18 s), so a
    closure of 1,000 libraries costs one pass, not 2,000 (2.7 s). Only the names asked
    for are kept (an index of every name held ~45 MB more at the peak). The text is kept
    as the bytes read (undecodable bytes are surrogates in the str a caller gives or is
    given, as os.fsdecode makes them), and only the lines found are decoded.
    """

    PREFETCH_AT_LEAST = 64  # fewer names are searched one by one

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._starts: list[int] = []  # where each list begins in the joined text
        self._labels: list[str] = []  # the package key (and state) of each list
        self._size = 0
        self._text = b""
        self._found: dict[str, list[tuple[str, str]]] = {}

    def add(self, text: str | bytes, label: str) -> None:
        data = text if isinstance(text, bytes) else _encoded(text)
        if data and not data.endswith(b"\n"):
            data += b"\n"
        self._starts.append(self._size)
        self._labels.append(label)
        self._parts.append(data)
        self._size += len(data)

    def get(self, name: str, default: Iterable[tuple[str, str]] = ()
            ) -> list[tuple[str, str]]:
        """(listed directory, label) of every line naming a file `name`."""
        if not name or "\n" in name or "/" in name:
            return list(default)
        if name not in self._found:
            self._found[name] = self._search(name)
        return self._found[name] or list(default)

    def prefetch(self, names: Iterable[str]) -> None:
        """Find these names (what `get` will be asked) in one pass, when there are at
        least PREFETCH_AT_LEAST of them not found yet: what _search finds for each."""
        wanted = {name for name in names if name and "\n" not in name and "/" not in name
                  and name not in self._found}
        if len(wanted) < self.PREFETCH_AT_LEAST:
            return
        self._join()
        found: dict[str, list[tuple[str, str]]] = {name: [] for name in wanted}
        for number, start in enumerate(self._starts):
            end = self._starts[number + 1] if number + 1 < len(self._starts) else self._size
            label = self._labels[number]
            text = _decoded(self._text[start:end])
            for line in text.split("\n"):
                directory, _, name = line.rpartition("/")
                if name in found and line.startswith("/") and line != "/.":
                    found[name].append((directory or "/", label))
        self._found.update(found)

    def paths_of(self, label: str) -> tuple[str, ...]:
        """Every path the list labelled `label` names (its directories too), in its order;
        () for a label no list has."""
        if label not in self._labels:
            return ()
        index = self._labels.index(label)
        self._join()
        end = self._starts[index + 1] if index + 1 < len(self._starts) else self._size
        return parse_list(_decoded(self._text[self._starts[index]:end]))

    def _join(self) -> None:
        if self._parts:
            self._text += b"".join(self._parts)
            self._parts = []

    def _search(self, name: str) -> list[tuple[str, str]]:
        self._join()
        encoded = _encoded(name)
        text, needle, places = self._text, b"/" + encoded + b"\n", []
        at = text.find(needle)
        while at != -1:
            start = text.rfind(b"\n", 0, at) + 1  # every list ends with a newline
            line = text[start:at + len(needle) - 1]
            if line.startswith(b"/") and line != b"/.":
                owner = self._labels[bisect.bisect_right(self._starts, at) - 1]
                directory = line[:len(line) - len(encoded) - 1]
                places.append((_decoded(directory) or "/", owner))
            at = text.find(needle, at + 1)
        return places


def _encoded(text: str) -> bytes:
    """The bytes a path read from a list decodes to (`_decoded`). A str no bytes decode to
    (a lone surrogate that is not an escaped byte, which no path of a file system gives)
    is encoded as is, so it still finds only itself."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def _decoded(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _distro(root: Sysroot) -> str | None:
    for path in OS_RELEASE:
        found = _read_in_root(root, path, MAX_OS_RELEASE_BYTES)
        if found is not None and found[1] is not None:
            return parse_os_release(found[1][0])
    return None


def _licence(database: _Database, name: str) -> tuple[str, LicenceKind, str | None]:
    """Licence, kind and canonical path in the root of /usr/share/doc/NAME/copyright, read
    inside it (doc dirs are often symlinks to another package's: followed, never out of
    it)."""
    if name not in database.licences:
        found = _read_in_root(database.root, f"/usr/share/doc/{name}/copyright",
                              MAX_COPYRIGHT_BYTES)
        content = found[1] if found is not None else None
        if found is None or content is None:
            database.licences[name] = (NOASSERTION, "unknown", None)
        else:
            text, cut = content
            licence = NOASSERTION if cut else licence_of_copyright(text)
            database.licences[name] = (licence, licence_kind(licence), found[0])
    return database.licences[name]


def _package(database: _Database, key: str, label: str) -> Package:
    entry = database.packages[key]
    licence, kind, copyright_path = _licence(database, entry.name)
    return Package(entry.name, entry.version, entry.architecture, entry.source,
                   entry.source_version, database.distro, licence, kind, copyright_path, label,
                   entry.maintainer or None)


# --- the edge ----------------------------------------------------------------------------

def find_provenance(sysroot: Sysroot, files: Sequence[tuple[str, str | None]]) -> Provenance:
    """The package of every file (dest in the artifact, host path it was copied from or None
    when the build made it) from the dpkg database of the build root (or of the host, for a
    package-installed sysroot without one).

    What it records names paths as the tree sees them (the database /var/lib/dpkg, a
    copyright file /usr/share/doc/NAME/copyright) and the tree by what it is ("the build
    root"), never by where the build host keeps it: the artifact and its SBOMs carry these
    words, and two CI jobs with their build roots in different places must agree on them.
    """
    own = load_database(sysroot)
    database, label, note, outside, tree = own, "", "", "", sysroot.root
    if own is not None:
        label = own.target if sysroot.is_host else f"{own.target} in the build root"
        # Not how many packages it holds: a build image with one more tool installed
        # would give another artifact (measured: a CI run whose machine gained packages).
        note = f"dpkg database {label}"
        outside = "outside the build root, whose dpkg database is the one read"
    elif not sysroot.is_host:
        host = load_database(Sysroot("/"))
        lister = host.lists_root_of(sysroot.root) if host is not None else None
        if host is not None and lister is not None:
            # The root is a package's directory of the build host (libc6-arm64-cross ships
            # /usr/aarch64-linux-gnu): its place is that package's, the same on every host,
            # and the host's database names its files by their paths there.
            database, tree = host, "/"
            label = f"{host.target} (the build host's: the build root has no dpkg database)"
            note = (f"no dpkg database in the build root; its files were looked up in the "
                    f"build host's dpkg database {host.target}, whose packages ship the "
                    f"build root (e.g. {lister})")
    if database is None:
        note = "no dpkg database in the build root: no file's package is known"
    else:
        note += "".join(f"; {p}" for p in database.problems)
    if database is not None:
        database.prefetch(inside for inside in (_inside(database.root, source)
                                                for _, source in files if source is not None)
                          if inside is not None)
    origins = []
    used: dict[str, Package] = {}
    for dest, source in files:
        if source is None:
            origins.append(FileOrigin(dest, None, None, "made by the build, not by a package"))
            continue
        if database is None:
            origins.append(FileOrigin(dest, source, None, "no dpkg database in the build root"))
            continue
        inside = _inside(database.root, source)
        if inside is None:
            origins.append(FileOrigin(dest, source, None, outside))
            continue
        owners = database.owners(inside)
        if not owners:
            others = database.other_owners(inside)
            why = f"not installed by any package of {label}"
            if others:
                why += f" (listed by {', '.join(others)}, not installed)"
            origins.append(FileOrigin(dest, source, None, why))
            continue
        key = owners[0]  # several owners: dpkg -S names them all; the first by key is kept
        if key not in used:
            used[key] = _package(database, key, label)
        origins.append(FileOrigin(dest, source, key))
    return Provenance(tuple(sorted(used.values(), key=lambda p: p.key)),
                      tuple(sorted(origins, key=lambda o: o.dest)), note, tree=tree)


def path_in_tree(tree: str, host_path: str) -> str:
    """How the artifact names a file copied from `host_path`: its path in `tree` (the
    Provenance's: the build root, or `/` when the host's database spoke for it) as the target
    sees it, e.g. /usr/lib/x86_64-linux-gnu/libz.so.1 wherever the build root lies; a file
    outside the tree (this machine's multiarch dir for a cross root) keeps its host path,
    this machine's system dir. Lexical: the resolver's paths are already canonical in the
    root, and resolving again on the host would follow the root's absolute symlinks out."""
    path = os.path.abspath(host_path)
    if tree == "/" or not path.startswith(tree.rstrip("/") + "/"):
        return path
    return path[len(tree.rstrip("/")):]


def _inside(root: Sysroot, host_path: str) -> str | None:
    """The canonical path inside `root` of a host file, resolved through the root's own
    symlinks; None when it is not under the root at all."""
    path = os.path.abspath(host_path)
    if not root.is_host:
        if not path.startswith(root.root + "/"):
            return None
        path = path[len(root.root):]
    resolved = root.resolve(path)
    if resolved is not None:
        return resolved
    directory, _, name = path.rpartition("/")
    parent = root.resolve(directory or "/")
    return None if parent is None else f"{parent.rstrip('/')}/{name}"

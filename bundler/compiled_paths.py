"""Absolute paths compiled into the artifact's programs and libraries, and which of them
the artifact does not carry.

A program that opens `/usr/lib/git-core/git-upload-pack` or `/usr/lib/ssl/openssl.cnf`
by a path compiled into it finds the build root's file at home and the host's (another
version, or nothing) on a target: the build said nothing and the verdict was "ship the
artifact" (issue 20). The evidence is in the file: the whole NUL-terminated strings of its
read-only data that start with "/". Checked against the build root, each names a helper
program, a plugin or data dir, a data or config file, or nothing there; most are noise
(device files, /tmp, the loader, the host's own /etc/passwd, paths only in usage text), and
what glibc itself reads is served or sealed by the artifact (sealing.py, nss.py, gconv.py,
locales.py). What is left, load-bearing and not carried, lowers the verdict (hazards.py).

Reading is the I/O edge (`read_rodata`, `root_entry`); the decisions are pure functions
over the bytes read and frozen facts of the build root, so they are tested directly.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import posixpath
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from bundler.elf import SHT_PROGBITS, file_identity, plain_section_headers
from bundler.glibc import is_glibc
from bundler.locales import normalize_name
from bundler.sysroot import Sysroot

if TYPE_CHECKING:
    from bundler.carry import Recipe
    from bundler.plan import BundlePlan, StagedFile

SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 0x1, 0x2, 0x4
PF_X, PF_W = 0x1, 0x2
MAX_DATA = 64 << 20  # bytes of read-only data read from one object (a 4 MB git has 0.4 MB)
WALK_LIMIT = 400  # directory entries looked at to tell what a dir holds
SHOWN = 5  # of the uncarried paths, in a hazard's evidence and the summary

# Every "/" in the data starts a candidate: printable, no space (a space ends a path in text).
SLASH_RUN = re.compile(rb"/[\x21-\x7e]*")
PATH_CHARS = re.compile(r"/[A-Za-z0-9._+@,=~-]+(?:/[A-Za-z0-9._+@,=~-]+)*/?")
# Before a path inside longer text: a space, a quote, a bracket, '=', ':' or '`'.
TEXT_BEFORE = frozenset(b" \t\n\"'(<[=:`")
LOCALE_NAME = re.compile(r"(?:C|POSIX|[a-z]{2,3}_[A-Z]{2})\.(?:UTF-8|utf8|UTF8|utf-8)")
LOCALE_MARKERS = (b".UTF-8\0", b".utf8\0", b".UTF8\0", b".utf-8\0")
# One pass for all of them: ~6x less CPU than a find per marker (300 libraries and node's
# 45 MB of read-only data: 0.022 s against 0.148 s); matched in the markers' order after.
_LOCALE_MARKER = re.compile(b"\\.(" + b"|".join(re.escape(m[1:-1]) for m in LOCALE_MARKERS)
                            + b")\0")
_MARKER_ORDER = {marker[1:-1]: number for number, marker in enumerate(LOCALE_MARKERS)}

# The kernel's file systems: what a path there holds is never read (root_entry).
KERNEL_TREES = ("/dev", "/proc", "/sys")
# Not reported at all: kernel and scratch file systems, the top of the tree, the loader.
NOISE_TREES = (*KERNEL_TREES, "/tmp", "/run", "/var/tmp", "/var/run", "/var/lock",
               "/usr/lib/debug", "/usr/share/doc", "/usr/share/man", "/usr/share/info",
               "/mnt", "/media", "/lost+found")
GENERIC_DIRS = frozenset({
    "/", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/var",
    "/opt", "/srv", "/boot", "/home", "/root", "/usr/bin", "/usr/sbin", "/usr/lib",
    "/usr/lib32", "/usr/lib64",
    "/usr/libexec", "/usr/share", "/usr/include", "/usr/local", "/usr/local/bin",
    "/usr/local/sbin", "/usr/local/lib", "/usr/local/share", "/usr/local/libexec",
    "/usr/src", "/var/lib", "/var/cache", "/var/log", "/var/spool", "/var/mail",
    "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib/i386-linux-gnu",
    "/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu", "/lib/i386-linux-gnu",
})
LOADER_NAMES = re.compile(r"/(?:usr/)?lib(?:32|64|x32)?/(?:[^/]+/)?ld-linux[^/]*|"
                          r"/(?:usr/)?lib(?:32|64)?/ld(?:64)?\.so\.\d+")
# What glibc reads itself: the artifact seals it or serves its own (sealing.py, nss.py,
# gconv.py, locales.py), so no program needs it carried.
GLIBC_SERVED = ("/etc/ld.so.cache", "/etc/ld.so.preload", "/etc/ld.so.conf",
                "/etc/ld.so.conf.d", "/etc/nsswitch.conf", "/usr/lib/locale",
                "/usr/lib/x86_64-linux-gnu/gconv", "/usr/lib/aarch64-linux-gnu/gconv",
                "/usr/lib/gconv", "/usr/lib64/gconv", "/etc/gai.conf", "/etc/host.conf",
                "/etc/rpc", "/etc/services", "/etc/protocols", "/etc/networks",
                "/etc/shells", "/etc/netgroup")
# The host's and only the host's: its users, names, resolver, time zone, CA store, shell,
# the login shell of accounts that have none.
HOST_OWNED = ("/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow", "/etc/hosts",
              "/etc/hostname", "/etc/resolv.conf", "/etc/localtime", "/etc/timezone",
              "/etc/machine-id", "/etc/mtab", "/etc/fstab", "/etc/ssl/certs",
              "/etc/ssl/private", "/etc/pki", "/etc/ca-certificates",
              "/usr/share/ca-certificates", "/usr/lib/ssl/cert.pem", "/etc/ssl/cert.pem",
              "/bin/sh", "/usr/bin/sh", "/bin/bash", "/usr/bin/bash", "/usr/bin/env",
              "/bin/env", "/usr/sbin/nologin", "/sbin/nologin", "/bin/false", "/usr/bin/false",
              "/etc/environment", "/etc/login.defs", "/etc/mime.types", "/etc/os-release",
              "/usr/lib/os-release")
# Where other programs live under their own names: a tool the target has or not, on its own
# terms, unless it shares the program's name (gpg -> /usr/bin/gpg-agent).
PATH_DIRS = frozenset({"/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/local/bin",
                       "/usr/local/sbin", "/usr/games"})
MIN_STEM = 3
# Read-only sections that hold no strings a program opens: unwind tables, the loader's path,
# Go's line tables (the build host's source file names) and build info.
SKIPPED_SECTIONS = (".eh_frame", ".interp", ".gcc_except", ".gopclntab", ".gosymtab",
                    ".go.buildinfo", ".note")
# Well-known libraries' dirs that they load from only when asked, or whose data they also
# have built in: reported, not load-bearing (calibrated on git's and gpg's closures).
OPTIONAL = (
    (re.compile(r"/usr/lib/(?:[^/]+/)?sasl2(?:/.*)?"),
     "Cyrus SASL mechanisms: loaded only for a SASL login"),
    (re.compile(r"/usr/lib/(?:[^/]+/)?krb5/plugins(?:/.*)?"),
     "Kerberos plugins (preauth, KDB, locate): loaded only when configured"),
    (re.compile(r"/usr/lib/(?:[^/]+/)?engines-\d+(?:/.*)?"),
     "OpenSSL engines: loaded only when a configuration or the caller names one"),
    (re.compile(r"/usr/share/publicsuffix(?:/.*)?"),
     "libpsl's public suffix list: it has a built-in copy"),
    (re.compile(r"/usr/lib/(?:[^/]+/)?gio/modules(?:/.*)?"),
     "GIO modules (proxies, TLS, settings back ends): optional extensions"),
)
GO_SECTIONS = (".go.buildinfo", ".gopclntab", ".note.go.buildid")
# Source file names (assert messages, __FILE__, Go's tables): where it was built, not what
# it opens, even when the build root is where it was built.
SOURCE_SUFFIXES = (".c", ".h", ".cc", ".cpp", ".cxx", ".hh", ".hpp", ".go", ".rs", ".s",
                   ".S", ".y", ".l")


@dataclass(frozen=True)
class Found:
    """A path as one object holds it."""

    path: str
    whole: bool  # a whole NUL-terminated string; False: only inside longer text
    joined: str = ""  # for a dir string + a name string: "DIR + NAME"
    listed: bool = False  # a part of a colon list ("/usr/bin:/bin": a search path)


@dataclass(frozen=True)
class RootEntry:
    """What the build root holds at a path (resolved through its symlinks)."""

    exists: bool
    resolved: str | None = None
    is_dir: bool = False
    is_file: bool = False
    executable: bool = False  # a regular file with an x bit
    privileged: bool = False  # setuid or setgid
    elf: bool = False
    shared_object: bool = False  # an ELF file named *.so or *.so.N
    script: bool = False  # starts with #!
    holds_executables: bool = False  # a dir with executable files (not libraries) in it
    holds_libraries: bool = False  # a dir with *.so files in it or below (bounded walk)
    holds_files: bool = False  # a dir with anything in it


@dataclass(frozen=True)
class CompiledPath:
    """A path compiled into the artifact's objects that the build root holds."""

    path: str
    kind: str  # "helper program", "helper dir", "plugin", "plugin dir", "data dir", ...
    found_in: tuple[str, ...]  # the objects holding it (their dests)
    load_bearing: bool  # the program likely fails or changes without it
    carried: bool  # the artifact carries it (or the tree holding it)
    why: str  # why it is (not) load-bearing; for a joined path, which strings made it


@dataclass(frozen=True)
class CompiledPaths:
    """The scan of one plan: what is compiled in, and what to add that it cannot decide."""

    paths: tuple[CompiledPath, ...]  # uncarried load-bearing first, then carried, then noise
    suggestions: tuple[str, ...]  # one line each: "... reads C.UTF-8: add --locale C.UTF-8"
    scanned: tuple[str, ...] = ()  # the objects read

    @property
    def uncarried(self) -> tuple[CompiledPath, ...]:
        """The load-bearing paths the artifact does not carry: the hazard and the gate."""
        return tuple(p for p in self.paths if p.load_bearing and not p.carried)


# --- reading: the I/O edge --------------------------------------------------------------

def read_rodata(path: str, limit: int = MAX_DATA, go: bool = False) -> bytes:
    """`_read_rodata`, read once per file as it is (the recipes look at a program's strings
    before the scan does: node's 47 MB of .rodata were read twice). b"" for a Go program
    unless `go`: the recipes look for the C strings of its cgo part too."""
    try:
        info = os.stat(path)
    except OSError:
        return b""
    data, is_go = _rodata_once(path, *file_identity(info), limit)
    return b"" if is_go and not go else data


@functools.lru_cache(maxsize=16)
def _rodata_once(path: str, _dev: int, _ino: int, _size: int, _mtime: int, _ctime: int,
                 limit: int) -> tuple[bytes, bool]:
    return _read_rodata(path, limit)


def _read_rodata(path: str, limit: int) -> tuple[bytes, bool]:
    """The allocated read-only data of an ELF file (its string tables live there), each
    section after a NUL so no string runs into the next; without section headers, the
    file bytes of its non-executable, non-writable PT_LOAD segments; and whether it is a
    Go program. b"" when unreadable (a file the scan cannot read is one it says nothing
    of). The scan leaves Go programs out: Go keeps its strings as lengths and bytes run
    together, so none can be told whole, and the NUL-terminated ones are its build's
    (GOROOT, source file names). The section headers come from elf.py's plain reader where
    it reads the file (~10x less CPU than pyelftools: every library of the closure is
    scanned)."""
    plain = plain_section_headers(path)
    if plain is not None:
        is_go = any(s.name in GO_SECTIONS for s in plain)
        ranges = [(s.offset, s.size) for s in plain
                  if _is_rodata(s.kind == SHT_PROGBITS, s.flags, s.name)]
        try:
            if all(offset + size <= os.path.getsize(path) for offset, size in ranges):
                with open(path, "rb") as handle:
                    return _joined_ranges(handle, ranges, limit), is_go
        except OSError:
            return b"", is_go
    from elftools.common.exceptions import ELFError  # the files the plain reader declines
    from elftools.construct.core import ConstructError
    from elftools.elf.elffile import ELFFile

    try:
        with open(path, "rb") as handle:
            elf = ELFFile(handle)
            is_go = any(elf.get_section_by_name(name) is not None for name in GO_SECTIONS)
            ranges = ([(s["sh_offset"], s["sh_size"]) for s in elf.iter_sections()
                       if _is_rodata(s["sh_type"] == "SHT_PROGBITS", s["sh_flags"], s.name)]
                      if elf.num_sections() else
                      [(p["p_offset"], p["p_filesz"]) for p in elf.iter_segments()
                       if p["p_type"] == "PT_LOAD" and not p["p_flags"] & (PF_X | PF_W)])
            return _joined_ranges(handle, ranges, limit), is_go
    except (OSError, ELFError, ConstructError, ValueError):
        return b"", False


def _is_rodata(progbits: bool, flags: int, name: str) -> bool:
    """An allocated, read-only, non-executable section of data (not unwind tables)."""
    return (progbits and bool(flags & SHF_ALLOC) and not flags & (SHF_WRITE | SHF_EXECINSTR)
            and not name.startswith(SKIPPED_SECTIONS))


def _joined_ranges(handle: BinaryIO, ranges: list[tuple[int, int]], limit: int) -> bytes:
    """The bytes of each range after a NUL, up to `limit` bytes in all."""
    parts = [b"\0"]
    total = 0
    for offset, size in ranges:
        size = min(size, limit - total)
        if size <= 0:
            break
        handle.seek(offset)
        parts += [handle.read(size), b"\0"]
        total += size
    return b"".join(parts)


def root_entry(sysroot: Sysroot, path: str) -> RootEntry:
    """What the build root holds at `path`; a dir's contents by a bounded walk. Nothing
    under /proc, /sys or /dev is read or walked: their "regular files" are the kernel's,
    and reading one may never return (a build hung on libsystemd-shared's /proc/kmsg)."""
    resolved = sysroot.resolve(path)
    if resolved is None:
        return RootEntry(False)
    if under(resolved, KERNEL_TREES):
        return RootEntry(True, resolved)  # never the artifact's to carry (NOISE_TREES)
    host = sysroot.host_path(resolved)
    try:
        mode = os.stat(host).st_mode
    except OSError:
        return RootEntry(False)
    if stat.S_ISREG(mode):
        head = sysroot.read_bytes(resolved, 4) or b""
        return RootEntry(True, resolved, is_file=True, executable=bool(mode & 0o111),
                         privileged=bool(mode & (stat.S_ISUID | stat.S_ISGID)),
                         elf=head == b"\x7fELF", script=head.startswith(b"#!"),
                         shared_object=head == b"\x7fELF" and _library_name(resolved))
    if not stat.S_ISDIR(mode):
        return RootEntry(True, resolved)
    executables, libraries, anything = _walk(host)
    return RootEntry(True, resolved, is_dir=True, holds_executables=executables,
                     holds_libraries=libraries, holds_files=anything)


def _walk(top: str) -> tuple[bool, bool, bool]:
    """(executables at the top, *.so files within three levels, any entry at all), from
    at most WALK_LIMIT entries: enough to tell a plugin dir from a data dir."""
    executables = libraries = anything = False
    seen = 0
    pending = [(top, 0)]
    while pending and seen < WALK_LIMIT:
        where, depth = pending.pop()
        try:
            with os.scandir(where) as entries:
                for entry in entries:
                    seen += 1
                    anything = True
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            if depth < 2:
                                pending.append((entry.path, depth + 1))
                        elif entry.is_file():
                            if _library_name(entry.name):
                                libraries = True
                            elif depth == 0 and entry.stat().st_mode & 0o111:
                                executables = True
                    except OSError:
                        continue
                    if seen >= WALK_LIMIT or (executables and libraries):
                        break
        except OSError:
            continue
    return executables, libraries, anything


def _library_name(path: str) -> bool:
    name = posixpath.basename(path)
    return name.endswith(".so") or ".so." in name


# --- what the bytes hold: pure ----------------------------------------------------------

def paths_in(data: bytes) -> tuple[Found, ...]:
    """The absolute paths in `data`: whole NUL-terminated strings (a colon list such as
    "/usr/bin:/bin" gives each part), and paths only inside longer text (after a space or
    a quote, or before one: "see /usr/share/foo", "/dev/urandom (or equivalent)"). A
    printf or glob template ("/proc/%d/fd", "/tmp/x.XXXXXX") is not a path."""
    whole: set[str] = set()
    listed: set[str] = set()
    text: set[str] = set()
    for match in SLASH_RUN.finditer(data):
        start, end = match.span()
        before = data[start - 1] if start else 0
        after = data[end] if end < len(data) else 0
        raw = match.group().decode("ascii")
        if before == 0 and after == 0:
            if ":" in raw:
                listed.update(p for p in raw.split(":") if _plain_path(p))
            elif _plain_path(raw):
                whole.add(raw)
        elif before == 0 or before in TEXT_BEFORE:
            # The head of a message, or a path in one: up to where path characters end.
            head = PATH_CHARS.match(raw.split(":")[0])
            if head and _plain_path(head.group().rstrip(".,")):
                text.add(head.group().rstrip(".,"))
    found = [Found(_normal(p), True) for p in sorted(whole)]
    found += [Found(_normal(p), True, listed=True) for p in sorted(listed - whole)]
    found += [Found(_normal(p), False) for p in sorted(text - whole - listed)]
    return tuple(dict.fromkeys(found))


def _plain_path(text: str) -> bool:
    return (len(text) > 1 and PATH_CHARS.fullmatch(text) is not None
            and "//" not in text and not text.endswith("XXX"))


def _normal(path: str) -> str:
    return posixpath.normpath(path) if path != "/" else path


def has_name(data: bytes, name: str) -> bool:
    """Whether `data` holds `name` as a whole string or as the last part of a path string
    ("gpg-agent", "/agent/gpg-agent"): what a program joins to a dir it holds."""
    needle = name.encode("ascii", "replace")
    return b"\0" + needle + b"\0" in data or b"/" + needle + b"\0" in data


def locales_in(data: bytes) -> tuple[str, ...]:
    """Locale names held as whole strings ("C.UTF-8", "en_US.UTF-8"): a program that
    calls setlocale with one needs it compiled, and the bundled glibc reads only its own."""
    found = []
    for match in _LOCALE_MARKER.finditer(data):
        at = match.start()
        begin = data.rfind(b"\0", max(0, at - 12), at) + 1
        name = data[begin:match.end() - 1].decode("ascii", "replace")
        if begin and LOCALE_NAME.fullmatch(name):
            found.append((_MARKER_ORDER[match.group(1)], at, name))
    return tuple(dict.fromkeys(name for _, _, name in sorted(found)))


# --- decisions: pure ------------------------------------------------------------------

def under(path: str, trees: Iterable[str]) -> bool:
    """`path` is one of `trees` or inside one."""
    return any(path == t or path.startswith(t.rstrip("/") + "/") for t in trees)


def dropped(path: str) -> bool:
    """Noise, or what is never the artifact's to carry: kernel and scratch trees, the top
    dirs, source file names, the loader, what glibc reads (the artifact serves or seals
    it), the host's own files (users, names, resolver, CA store, shell)."""
    return (path in GENERIC_DIRS or under(path, NOISE_TREES) or path.endswith(SOURCE_SUFFIXES)
            or LOADER_NAMES.fullmatch(path) is not None
            or under(path, GLIBC_SERVED) or under(path, HOST_OWNED))


def stem(name: str) -> str:
    """A program's name without its version or variant: "gpg", "python", "crypto"."""
    base = name.removeprefix("lib") if name.startswith("lib") and ".so" in name else name
    match = re.match(r"[A-Za-z]+", base)
    return match.group().lower() if match else ""


def shares_stem(name: str, stems: Iterable[str]) -> bool:
    return any(len(s) >= MIN_STEM and name.lower().startswith(s) for s in stems)


def joined_candidates(found: Iterable[Found], listing: dict[str, list[str]],
                      stems: frozenset[str]) -> tuple[tuple[str, str], ...]:
    """(dir, name) pairs a program likely joins: a PATH dir it holds whole ("/usr/bin")
    and, among that dir's entries, those that share a program's stem ("gpg-agent").
    Checking each against the object's bytes (has_name) is the caller's."""
    pairs = []
    for item in found:
        if item.whole and not item.listed and item.path in PATH_DIRS:
            pairs += [(item.path, name) for name in listing.get(item.path, ())
                      if shares_stem(name, stems)]
    return tuple(pairs)


def classify(path: str, entry: RootEntry, found_in: tuple[str, ...], whole: bool,
             carried: bool, stems: frozenset[str], joined: str = "") -> CompiledPath | None:
    """What a compiled-in path is and whether the program likely needs it; None when it
    is not reported (noise, not in the build root, glibc's or the host's own)."""
    if not entry.exists or dropped(path) or (entry.resolved and dropped(entry.resolved)):
        return None
    real = entry.resolved or path
    kind, load_bearing, why = _kind(path, real, entry, stems)
    if joined:
        why = f"{why}; joined from the strings {joined}"
    if not whole and load_bearing:
        load_bearing, why = False, "only inside longer text (usage or help), not a string " \
                                   "the program opens"
    return CompiledPath(path, kind, found_in, load_bearing, carried, why)


Kind = tuple[str, bool, str]  # (kind, load-bearing, why)


def _kind(path: str, real: str, entry: RootEntry, stems: frozenset[str]) -> Kind:
    return _by_place(path, real, entry) or _by_content(path, entry, stems)


def _by_place(path: str, real: str, entry: RootEntry) -> Kind | None:
    """What is not the program's to carry, whatever it holds: the host's configuration,
    translations, time zones, terminal descriptions, state, what libraries load only
    when asked."""
    if under(path, ("/etc",)) or under(real, ("/etc",)):
        return ("config dir" if entry.is_dir else "config file", False,
                "host configuration under /etc: the target's own is read, or none")
    if "/locale" in real and (real.endswith("/locale") or "/locale/" in real):
        return ("locale dir", False,
                "message translations: without them messages are in English")
    if under(real, ("/usr/share/zoneinfo", "/usr/lib/zoneinfo")):
        return ("zoneinfo", False, "time zones: glibc reads the target's (a stable format); "
                "without them times are UTC")
    if posixpath.basename(real) == "terminfo" or "/terminfo/" in real:
        return ("terminfo", False, "terminal descriptions: ncurses reads the target's (a "
                "stable format); where it has none, only its built-in ones are known")
    optional = next((why for pattern, why in OPTIONAL
                     if pattern.fullmatch(path) or pattern.fullmatch(real)), None)
    if optional is not None:
        return ("plugin dir" if entry.is_dir and entry.holds_libraries else
                "data dir" if entry.is_dir else "data file", False, optional)
    if under(real, ("/var",)):
        return ("state", False, "the host's state, not the program's files")
    return None


def _by_content(path: str, entry: RootEntry, stems: frozenset[str]) -> Kind:
    """A helper, plugin or data, by what the build root holds there."""
    if entry.is_file:
        if entry.shared_object:
            return "plugin", True, "a shared object loaded by its path"
        if entry.executable and (entry.elf or entry.script):
            name = posixpath.basename(path)
            if posixpath.dirname(path) in PATH_DIRS and not shares_stem(name, stems):
                return ("host tool", False, f"another program ({name}) the target has or "
                        "not on its own terms")
            if entry.privileged:
                return ("privileged helper", False, "setuid or setgid: a copy in the artifact "
                        "would lose the privilege, so only the target's own can work")
            return "helper program", True, "a program it executes by this path"
        return "data file", True, "a file it reads by this path"
    if entry.is_dir:
        if entry.holds_executables:
            return "helper dir", True, "a dir of programs it executes"
        if entry.holds_libraries:
            return "plugin dir", True, "a dir of shared objects it loads"
        if entry.holds_files:
            return "data dir", True, "a dir of files it reads"
        return "data dir", False, "empty in the build root"
    return "special file", False, "neither a regular file nor a dir"


def is_carried(path: str, resolved: str | None, sources: Iterable[str]) -> bool:
    """Whether a carried file or tree (a Carry's source, a bundled helper) covers it."""
    sources = tuple(sources)
    return under(path, sources) or (resolved is not None and under(resolved, sources))


def ordered(paths: Iterable[CompiledPath]) -> tuple[CompiledPath, ...]:
    """Uncarried load-bearing first (what to act on), then carried, then the rest."""
    def rank(p: CompiledPath) -> tuple[int, str]:
        return (0 if p.load_bearing and not p.carried else 1 if p.carried else 2, p.path)
    return tuple(sorted(paths, key=rank))


def locale_suggestions(found: dict[str, tuple[str, ...]],
                       carried: frozenset[str]) -> tuple[str, ...]:
    """One line per object that names locales the artifact does not carry (C and POSIX
    are glibc's own; a carried name is normalised the way localedef writes it)."""
    lines = []
    for label, names in found.items():
        wanted = [n for n in names if not n.startswith("POSIX")
                  and normalize_name(n) not in carried]
        if not wanted or (len(wanted) < len(names) and any(
                normalize_name(n) in carried for n in names)):
            continue  # it tries several and one of them is carried
        first = next((n for n in wanted if n.startswith("C.")), wanted[0])
        alternatives = f" (or {', '.join(n for n in wanted if n != first)})" \
            if len(wanted) > 1 else ""
        lines.append(f"{posixpath.basename(label)} reads the locale {first}{alternatives} by "
                     f"name: add --locale {first}")
    return tuple(dict.fromkeys(lines))


def remedy(path: CompiledPath) -> str:
    """The option that carries it."""
    return (f"--helper {path.path}" if path.kind == "helper program"
            else f"--data {path.path}")


# --- the scan of a plan ----------------------------------------------------------------

def scan_plan(plan: BundlePlan, sysroot: Sysroot) -> CompiledPaths:
    """The compiled-in paths of the plan's programs and libraries (their sources are read;
    glibc's own are sealed, scoped or served already), checked in the build root. What the
    plan carries (Carry sources, helpers bundled) is marked carried; the artifact's own
    libraries and programs are not reported, and a path reached by several spellings
    (/bin/x, /usr/bin/x) is reported once."""
    objects = [f for f in plan.files if f.kind in ("program", "library") and f.source
               and not is_glibc(posixpath.basename(f.dest))]
    targets = {f.dest: sysroot.target_path(f.source) or f.source
               for f in objects if f.source}
    helpers = {targets[f.dest] for f in objects
               if f.kind == "program" and posixpath.basename(f.dest) in plan.helpers}
    own = set(targets.values()) - helpers
    sources = {c.source for c in plan.carried} | helpers
    stems = frozenset(stem(posixpath.basename(p)) for p in plan.programs)
    holders, locales = _gather(objects, sysroot, stems)
    results: dict[str, CompiledPath] = {}
    for path in sorted(holders, key=lambda p: (holders[p][0].joined != "", len(p), p)):
        if dropped(path):
            continue  # classify drops it whatever the root holds there: not even looked at
        found = holders[path]
        entry = root_entry(sysroot, path)
        key = entry.resolved or path
        if key in own or path in own or (key in results and path != key):
            continue  # the artifact's own, or a spelling of a path already reported
        classified = classify(path, entry, tuple(dict.fromkeys(f.label for f in found)),
                              any(f.whole for f in found),
                              is_carried(path, entry.resolved, sources), stems,
                              next((f.joined for f in found if f.joined), ""))
        if classified is not None:
            results[key] = _left_on_purpose(classified, plan.recipes)
    for need in declined_needs(plan, sysroot, sources):
        results.setdefault(root_entry(sysroot, need.path).resolved or need.path, need)
    carried_locales = frozenset(normalize_name(part) for f in plan.files
                                for part in _locale_of(f.dest))
    return CompiledPaths(ordered(results.values()),
                         locale_suggestions(locales, carried_locales),
                         tuple(f.dest for f in objects))


def declined_needs(plan: BundlePlan, sysroot: Sysroot,
                   carried: Iterable[str]) -> list[CompiledPath]:
    """What the recipes recognised but turned off (--no-recipes) would have carried: the
    program needs it as surely as the recipe knows it (python3's standard library holds
    no string the scan could find), so it is load-bearing unless carried otherwise."""
    needs = []
    for recipe in plan.declined:
        wanted = [(c.source, "data dir" if sysroot.is_dir(c.source) else "data file")
                  for c in recipe.carry]
        wanted += [(h.source, "helper program") for h in recipe.helpers]
        for source, kind in wanted:
            if sysroot.resolve(source) is None or under(source, carried):
                continue
            needs.append(CompiledPath(
                source, kind, (recipe.program or plan.programs[0],), True, False,
                f"the {recipe.name} recipe carries it ({recipe.recognised}); "
                "--no-recipes left it out"))
    return needs


def _left_on_purpose(path: CompiledPath, recipes: Iterable[Recipe]) -> CompiledPath:
    """A path a recipe leaves to the host on purpose (Recipe.leaves) is reported, but not
    as load-bearing: the recipe knows the program runs without it."""
    if not path.load_bearing or path.carried:
        return path
    for recipe in recipes:
        if under(path.path, recipe.leaves):
            return dataclasses.replace(path, load_bearing=False,
                                       why=f"left to the host by the {recipe.name} recipe")
    return path


@dataclass(frozen=True)
class _Held:
    label: str
    whole: bool
    joined: str


def _gather(objects: list[StagedFile], sysroot: Sysroot, stems: frozenset[str],
            ) -> tuple[dict[str, list[_Held]], dict[str, tuple[str, ...]]]:
    """Each path found, with the objects holding it; each object's locale names."""
    holders: dict[str, list[_Held]] = {}
    locales: dict[str, tuple[str, ...]] = {}
    listing: dict[str, list[str]] = {}
    read: set[str] = set()
    for item in objects:
        assert item.source is not None
        real = os.path.realpath(item.source)
        if real in read:
            continue  # one file at several dests (a link, a copy deduplicated): read once
        read.add(real)
        data = read_rodata(real)
        found = paths_in(data)
        for path_dir in {f.path for f in found if f.whole and not f.listed
                         and f.path in PATH_DIRS} - set(listing):
            listing[path_dir] = sysroot.list_dir(path_dir)
        found += tuple(Found(f"{d}/{n}", True, f'"{d}" + "{n}"')
                       for d, n in joined_candidates(found, listing, stems)
                       if has_name(data, n))
        for f in found:
            holders.setdefault(f.path, []).append(_Held(item.dest, f.whole, f.joined))
        names = locales_in(data)
        if names:
            locales[item.dest] = names
    return holders, locales


def _locale_of(dest: str) -> tuple[str, ...]:
    """The locale a staged file belongs to: lib/locale/NAME/LC_* gives NAME."""
    parts = dest.split("/")
    if "locale" in parts[:-1]:
        at = parts.index("locale")
        if at + 1 < len(parts) - 1:
            return (parts[at + 1],)
    return ()

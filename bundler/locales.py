"""Compiled locales for `--locale`: found in the sysroot, laid out for LOCPATH.

glibc's setlocale looks for a locale in the archive `/usr/lib/locale/locale-archive` and
in directories `/usr/lib/locale/NAME/LC_*` (only directories once LOCPATH is set). Locale
files of one glibc build may be refused by another (each category file starts with a magic
number and a count of items that changes between releases), so the bundle brings the
locales compiled by its own glibc, extracted from the archive where that is where they live
(Debian's `locales` package compiles into the archive).
"""

from __future__ import annotations

import posixpath
import struct
from dataclasses import dataclass

from bundler.errors import InputError
from bundler.plan import EnvSetting, StagedFile
from bundler.sysroot import Sysroot

LOCALE_DIR = "/usr/lib/locale"
ARCHIVE = f"{LOCALE_DIR}/locale-archive"
ARCHIVE_MAGIC = 0xDE020109
# glibc's category numbers (locale/categories.def); 6 is LC_ALL, which has no file.
CATEGORY_FILES = {
    0: "LC_CTYPE", 1: "LC_NUMERIC", 2: "LC_TIME", 3: "LC_COLLATE", 4: "LC_MONETARY",
    5: "LC_MESSAGES/SYS_LC_MESSAGES", 7: "LC_PAPER", 8: "LC_NAME", 9: "LC_ADDRESS",
    10: "LC_TELEPHONE", 11: "LC_MEASUREMENT", 12: "LC_IDENTIFICATION",
}
CATEGORY_COUNT = 13  # __LC_LAST
HEADER = struct.Struct("14I")
NAME_ENTRY = struct.Struct("3I")
RECORD = struct.Struct(f"{1 + 2 * CATEGORY_COUNT}I")
MAX_TABLE_ENTRIES = 1 << 20  # a lying header must not make us allocate gigabytes


@dataclass(frozen=True)
class LocaleFile:
    """One category file of a bundled locale: a whole file, or a range of the archive."""

    dest: str  # relative to the locale dir: NAME/LC_CTYPE
    source: str  # host path
    offset: int | None = None  # within `source` when it is the archive
    length: int | None = None


def normalize_codeset(codeset: str) -> str:
    """glibc's _nl_normalize_codeset: alphanumerics, lower case, `iso` before all digits."""
    kept = "".join(c.lower() for c in codeset if c.isascii() and c.isalnum())
    return "iso" + kept if kept.isdigit() else kept


def normalize_name(name: str) -> str:
    """`en_US.UTF-8@euro` -> `en_US.utf8@euro`: the directory name localedef writes and
    setlocale finds under either spelling."""
    base, at, modifier = name.partition("@")
    language, dot, codeset = base.partition(".")
    return language + (dot + normalize_codeset(codeset) if dot else "") + at + modifier


def validate_names(names: tuple[str, ...]) -> tuple[str, ...]:
    """Split comma lists and refuse names glibc itself would refuse (a path, `..`)."""
    result: list[str] = []
    for raw in names:
        for name in (n.strip() for n in raw.split(",")):
            if not name:
                continue
            if "/" in name or name.startswith(".") or "\0" in name or len(name) > 255:
                raise InputError(f"--locale {name!r}: not a locale name (like C.UTF-8)")
            if name not in result:
                result.append(name)
    return tuple(result)


def parse_archive_index(read) -> dict[str, tuple[tuple[int, int, int], ...]]:
    """locale name -> ((category, offset, length), ...) from a locale-archive.

    `read(offset, size)` returns the archive's bytes there (short at the end). Offsets in
    the archive are from its start (locale/locarchive.h). Native byte order: an archive
    is written by localedef on the machine it belongs to.
    """
    header = read(0, HEADER.size)
    if len(header) < HEADER.size:
        raise ValueError("shorter than its header")
    fields = HEADER.unpack(header)
    if fields[0] != ARCHIVE_MAGIC:
        raise ValueError("not a locale-archive (bad magic)")
    namehash_offset, namehash_size = fields[2], fields[4]
    if namehash_size > MAX_TABLE_ENTRIES:
        raise ValueError(f"name table of {namehash_size} entries")
    table = read(namehash_offset, namehash_size * NAME_ENTRY.size)
    if len(table) < namehash_size * NAME_ENTRY.size:
        raise ValueError("name table past the end of the file")
    locales: dict[str, tuple[tuple[int, int, int], ...]] = {}
    for index in range(namehash_size):
        _, name_offset, record_offset = NAME_ENTRY.unpack_from(table, index * NAME_ENTRY.size)
        if name_offset == 0:
            continue  # an empty slot of the hash table
        name = read(name_offset, 256).split(b"\0", 1)[0].decode("utf-8", "replace")
        record = read(record_offset, RECORD.size)
        if len(record) < RECORD.size or not name:
            raise ValueError(f"record of {name or 'an entry'} past the end of the file")
        values = RECORD.unpack(record)
        locales[name] = tuple((category, values[1 + 2 * category], values[2 + 2 * category])
                              for category in CATEGORY_FILES)
    return locales


def available(sysroot: Sysroot) -> tuple[dict[str, str], dict[str, tuple], str | None]:
    """(normalized name -> locale dir, normalized name -> archive ranges, archive host path)."""
    directories: dict[str, str] = {}
    for entry in sysroot.list_dir(LOCALE_DIR):
        path = f"{LOCALE_DIR}/{entry}"
        if sysroot.is_file(f"{path}/LC_CTYPE"):
            directories.setdefault(normalize_name(entry), path)
    archived: dict[str, tuple] = {}
    real = sysroot.resolve(ARCHIVE)
    host = sysroot.host_path(real) if real is not None and sysroot.is_file(ARCHIVE) else None
    if host is not None:
        try:
            with open(host, "rb") as handle:
                def read(offset: int, size: int) -> bytes:
                    handle.seek(offset)
                    return handle.read(size)
                index = parse_archive_index(read)
        except (OSError, ValueError, struct.error) as exc:
            raise InputError(f"--locale: {ARCHIVE} in {sysroot.root} is unreadable "
                             f"({exc})") from None
        for name, ranges in index.items():
            archived.setdefault(normalize_name(name), ranges)
    return directories, archived, host


def select_files(names: tuple[str, ...], sysroot: Sysroot) -> tuple[LocaleFile, ...]:
    """The category files of each named locale (`all`: every compiled one)."""
    directories, archived, archive = available(sysroot)
    if names == ("all",):
        wanted = sorted(set(directories) | set(archived))
        if not wanted:
            raise InputError(f"--locale all: no compiled locales in {sysroot.root}{LOCALE_DIR}")
    else:
        wanted = []
        for name in names:
            key = normalize_name(name)
            if key not in directories and key not in archived:
                known = ", ".join(sorted(set(directories) | set(archived))[:8]) or "none"
                raise InputError(f"--locale {name}: not compiled in {sysroot.root} "
                                 f"(available: {known}; compile it with localedef)")
            wanted.append(key)
    files: list[LocaleFile] = []
    for key in wanted:
        if key in directories:
            files += _directory_files(key, directories[key], sysroot)
        else:
            assert archive is not None
            files += [LocaleFile(f"{key}/{CATEGORY_FILES[category]}", archive, offset, length)
                      for category, offset, length in archived[key] if length]
    return tuple(files)


def _directory_files(key: str, directory: str, sysroot: Sysroot) -> list[LocaleFile]:
    files = []
    for category in CATEGORY_FILES.values():
        real = sysroot.resolve(f"{directory}/{category}")
        if real is not None and sysroot.is_file(f"{directory}/{category}"):
            files.append(LocaleFile(f"{key}/{category}", sysroot.host_path(real)))
    return files


def relative_dest(name: str) -> str:
    return posixpath.join("lib", "locale", name)


def staged_locales(names: tuple[str, ...], sysroot: Sysroot,
                   ) -> tuple[tuple[StagedFile, ...], tuple[EnvSetting, ...]]:
    """`--locale`: compiled locales for lib/locale and the LOCPATH the launcher sets."""
    if not names:
        return (), ()
    files = select_files(validate_names(names), sysroot)
    data = tuple(StagedFile(relative_dest(f.dest), "data", 0o644, source=f.source,
                            offset=f.offset, length=f.length) for f in files)
    return data, (EnvSetting("LOCPATH", "LOCPATH", "lib/locale"),)

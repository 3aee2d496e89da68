"""Seal the bundled glibc: its loader and libc never open a host file of another glibc.

The bundled ld.so, when a name is not found through the program's DT_RPATH, goes on to the
host's `/etc/ld.so.cache` and its compiled-in system dirs, and it always reads the host's
`/etc/ld.so.preload`; the bundled libc.so.6 loads gconv modules from its compiled-in gconv
dir (and its gconv-modules.cache) and locales from the compiled-in locale-archive and
locale dir. On another host those are files of another glibc: measured, bundled 2.36 iconv
loaded Debian 11's 2.31 `KOI8-R.so`, and a program re-executed from a memfd loaded the
host's libseccomp and libc 2.31. So, in the artifact's copies only, each of those paths is
replaced by a path of the same length that can never be opened:

- `/dev/null/xxx...` (10 characters or more): every path under /dev/null fails with
  ENOTDIR, whatever the host holds, and it reads as "sealed" in strace and LD_DEBUG.
- `/sys/` padded with slashes (5 to 9 characters, the short system dirs `/lib/`,
  `/usr/lib/`): glibc asserts that a system dir starts with '/', and sysfs has no entry
  named like a library.

Measured on glibc 2.36 (strace, LANG=en_US.UTF-8, a dlopen of a missing name, iconv to
KOI8-R, getpwuid): every such open then fails with ENOTDIR/ENOENT, the missing name fails
with the loader's own "cannot open shared object file", setlocale falls back to C and
iconv_open fails instead of loading a host module. The system-dir string sits twice in
ld.so 2.36 (once not NUL-preceded), so the whole NUL-separated run is replaced as one unit.

What the user leaves to the host with `--exclude` must still be found there: then the
cache and the system dirs stay (the report says the loader searches the host for names
missing from the artifact); the preload file is sealed in every case.

A privileged program (setuid, setgid, capabilities) is only privileged at its prefix, where
no launcher sets variables: its libc copy's gconv dir points at PREFIX/lib/gconv instead,
when that path fits in the original's length.
"""

from __future__ import annotations

from dataclasses import dataclass

from bundler.ldso import system_dirs_run
from bundler.scoping import Rename, whole_string_count

LD_SO_CACHE = "/etc/ld.so.cache"
LD_SO_PRELOAD = "/etc/ld.so.preload"
GCONV_CACHE_NAME = "/gconv-modules.cache"
LOCALE_ARCHIVE_NAME = "/locale-archive"
NEVER_DIR = "/dev/null/"  # nothing can exist below a character device
SHORT_NEVER_DIR = "/sys/"


@dataclass(frozen=True)
class Seal:
    """The string edits that seal one copy, and what they seal, in words."""

    renames: tuple[Rename, ...]
    sealed: tuple[str, ...]  # e.g. "ld.so.cache", "system dirs /lib/x86_64-linux-gnu, ..."
    unsealed: tuple[str, ...]  # what could not be sealed, and why


def never_opened(path: str) -> str | None:
    """A path of `path`'s length that no open() can succeed on; None when it is too short.

    A trailing '/' is kept: glibc joins system dirs and names without adding one."""
    length = len(path)
    if length >= len(NEVER_DIR):
        if path.endswith("/") and length > len(NEVER_DIR):
            return NEVER_DIR + "x" * (length - len(NEVER_DIR) - 1) + "/"
        return NEVER_DIR + "x" * (length - len(NEVER_DIR))
    if length >= len(SHORT_NEVER_DIR) and path.endswith("/"):
        return SHORT_NEVER_DIR + "/" * (length - len(SHORT_NEVER_DIR))
    return None


def seal_loader(data: bytes, keep_host_search: bool) -> Seal:
    """The edits of a bundled ld.so: no preload file; no cache and system dirs unless the
    user left libraries to the host (`keep_host_search`)."""
    renames: list[Rename] = []
    sealed: list[str] = []
    unsealed: list[str] = []
    wanted = [(LD_SO_PRELOAD, "ld.so.preload")]
    if not keep_host_search:
        wanted.append((LD_SO_CACHE, "ld.so.cache"))
    for path, label in wanted:
        _seal_whole(data, path, label, renames, sealed, unsealed)
    if keep_host_search:
        unsealed.append("ld.so.cache and system dirs: kept for the libraries left to the host "
                        "(--exclude)")
    else:
        run = system_dirs_run(data)
        dirs = run.decode("ascii", "replace").split("\0")[:-1] if run else []
        replaced = [never_opened(d) for d in dirs]
        if run and dirs and all(r is not None for r in replaced):
            new = "".join(f"{r}\0" for r in replaced if r is not None)
            renames.append(Rename(run.decode("ascii"), new, whole=False))
            sealed.append("system dirs " + ", ".join(dirs))
        else:
            unsealed.append("system dirs: not found in the loader, or one too short to seal")
    return Seal(tuple(renames), tuple(sealed), tuple(unsealed))


def seal_libc(data: bytes, gconv_home: str | None = None) -> Seal:
    """The edits of a bundled libc.so.6: no host gconv dir or cache, no host locales.

    `gconv_home` (PREFIX/lib/gconv for a privileged program with --gconv) replaces the
    gconv dir instead when it fits."""
    renames: list[Rename] = []
    sealed: list[str] = []
    unsealed: list[str] = []
    gconv_cache = _string_ending(data, GCONV_CACHE_NAME)
    gconv_dir = gconv_cache[: -len(GCONV_CACHE_NAME)] if gconv_cache else None
    archive = _string_ending(data, LOCALE_ARCHIVE_NAME)
    locale_dir = archive[: -len(LOCALE_ARCHIVE_NAME)] if archive else None
    if (gconv_dir and gconv_home and len(gconv_home) <= len(gconv_dir)
            and whole_string_count(data, gconv_dir)):
        padded = gconv_home + "\0" * (len(gconv_dir) - len(gconv_home))
        renames.append(Rename(gconv_dir, padded))
        sealed.append(f"gconv dir (now {gconv_home})")
    elif gconv_dir:
        _seal_whole(data, gconv_dir, "gconv dir", renames, sealed, unsealed)
    else:
        unsealed.append("gconv dir: not found in libc.so.6")
    for path, label in ((gconv_cache, "gconv-modules.cache"), (archive, "locale-archive"),
                        (locale_dir, "locale dir")):
        if path:
            _seal_whole(data, path, label, renames, sealed, unsealed)
        else:
            unsealed.append(f"{label}: not found in libc.so.6")
    return Seal(tuple(renames), tuple(sealed), tuple(unsealed))


def _seal_whole(data: bytes, path: str, label: str, renames: list[Rename],
                sealed: list[str], unsealed: list[str]) -> None:
    replacement = never_opened(path)
    if replacement is not None and whole_string_count(data, path):
        renames.append(Rename(path, replacement))
        sealed.append(f"{label} {path}")
    else:
        unsealed.append(f"{label} {path}: not a whole string of its own, left as it is")


def _string_ending(data: bytes, tail: str) -> str | None:
    """The absolute NUL-terminated string ending in `tail` (e.g. libc's compiled-in
    `.../gconv/gconv-modules.cache`), when there is exactly one."""
    needle = tail.encode() + b"\0"
    found = set()
    start = data.find(needle)
    while start != -1:
        begin = data.rfind(b"\0", 0, start) + 1
        text = data[begin:start + len(tail)]
        if text.startswith(b"/") and all(32 < byte < 127 for byte in text):
            found.add(text.decode())
        start = data.find(needle, start + 1)
    return found.pop() if len(found) == 1 else None



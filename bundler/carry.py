"""What an artifact carries besides libraries, and how the program is pointed at it.

Programs open files, run helper programs and load plugins at absolute paths compiled into
them (python3's standard library, git's /usr/lib/git-core, openssl's openssl.cnf, gpg's
/usr/bin/gpg-agent). Such a path names the build root's file at home and the host's (or
nothing) on the target, so the artifact carries a copy under its own top, and an
environment variable or a launcher argument points the program at it. These are the
facts of that, whoever asked for them: `--data`, `--helper`, `--env`, `--from-package`, or
a recipe (recipes.py). Parsing of the options' values is here too: one home for the rules
every DEST and NAME=VALUE is held to.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from bundler.errors import InputError

# `{top}` in a value: the artifact's top directory as the launcher finds it at each start.
TOP = "{top}"
# Under the top, these belong to the artifact's own layout: carried files go elsewhere
# (lib/ subdirectories are allowed: their names cannot be a library's).
RESERVED_TOPS = ("bin", "libexec", ".bundle")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Carry:
    """A file or directory tree of the build root that the artifact carries."""

    source: str  # absolute, as the target sees it (a path in the build root)
    dest: str  # relative to the artifact's top
    why: str  # who asked: "--data", "recipe python3", "package git"
    required: bool = True  # False: skipped (with a note) when the build root lacks it
    # globs (fnmatch: "*" crosses "/") of paths relative to the tree, left out
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class EnvValue:
    """A variable the launcher sets; `{top}` in the value is the artifact's top."""

    name: str
    value: str
    why: str


@dataclass(frozen=True)
class Helper:
    """Another program of the build root that this one executes: bundled with it (sharing
    lib/), with its launcher at `dest`."""

    source: str  # absolute, in the build root
    dest: str  # the launcher's place, relative to the top (default bin/NAME)
    why: str


@dataclass(frozen=True)
class Recipe:
    """What a well-known program or library needs beyond its libraries, recognised from
    the program and its closure (recipes.py), applied without being asked, and listed in
    the report."""

    name: str  # "python3", "openssl"
    recognised: str  # why it applies, in words: "exports Py_BytesMain"
    program: str | None = None  # the program label whose launcher takes `args` (None: all)
    carry: tuple[Carry, ...] = ()
    env: tuple[EnvValue, ...] = ()
    helpers: tuple[Helper, ...] = ()
    args: tuple[str, ...] = ()  # launcher arguments before the caller's; `{top}` allowed
    locales: tuple[str, ...] = ()  # compiled locales to carry (--locale)
    notes: tuple[str, ...] = ()  # what the report says of it (limits, what stays the host's)
    # compiled-in paths it leaves to the host on purpose (gpg's table of every GnuPG tool):
    # the scan reports them, not as load-bearing (compiled_paths.py)
    leaves: tuple[str, ...] = ()


def default_dest(source: str) -> str:
    """A carried path's place when none is given: its own path under the top, so
    /usr/lib/python3.11 is TOP/usr/lib/python3.11 and PYTHONHOME={top}/usr works."""
    return posixpath.normpath(source).lstrip("/")


def check_dest(dest: str, option: str) -> str:
    """`dest` normalised, or a one-line error: relative, no `..`, not the top itself, and
    outside bin/, libexec/ and .bundle/ (the launchers', programs' and manifest's)."""
    if not dest or dest.startswith("/") or "\0" in dest:
        raise InputError(f"{option}: destination {dest!r} must be a relative path under the "
                         "artifact's top")
    normal = posixpath.normpath(dest)
    parts = normal.split("/")
    if normal in (".", "") or ".." in parts:
        raise InputError(f"{option}: destination {dest!r} must name a place under the "
                         "artifact's top (no '..')")
    if parts[0] in RESERVED_TOPS or normal == "lib":
        raise InputError(f"{option}: destination {dest!r} is inside the artifact's own "
                         f"{parts[0]}/; choose another directory (e.g. share/)")
    if any(not part.isprintable() for part in parts):
        raise InputError(f"{option}: destination {dest!r} holds a control character")
    return normal


def parse_data(text: str) -> Carry:
    """`--data SRC[:DEST]`: a file or tree, at DEST or its own path under the top."""
    source, _, dest = text.partition(":")
    if not source.startswith("/"):
        raise InputError(f"--data {text}: SRC must be an absolute path (as the build root "
                         "has it)")
    source = posixpath.normpath(source)
    if source == "/":
        raise InputError(f"--data {text}: the whole root cannot be carried")
    return Carry(source, check_dest(dest or default_dest(source), f"--data {text}"), "--data")


def parse_helper(text: str) -> Helper:
    """`--helper PROG[:DEST]`: a program this one executes; its launcher at DEST (default
    bin/NAME)."""
    source, _, dest = text.partition(":")
    if not source.startswith("/"):
        raise InputError(f"--helper {text}: PROG must be an absolute path (as the build root "
                         "has it)")
    source = posixpath.normpath(source)
    name = posixpath.basename(source)
    if not dest:
        return Helper(source, f"bin/{name}", "--helper")
    normal = posixpath.normpath(dest)
    if normal.startswith("bin/") and normal.count("/") == 1 and normal != "bin/":
        return Helper(source, normal, "--helper")
    return Helper(source, check_dest(dest, f"--helper {text}"), "--helper")


def parse_env(text: str) -> EnvValue:
    """`--env NAME=VALUE`; `{top}` in VALUE is the artifact's top at each start."""
    name, equals, value = text.partition("=")
    if not equals or not ENV_NAME.fullmatch(name):
        raise InputError(f"--env {text}: give NAME=VALUE, NAME of letters, digits and '_'")
    check_value(value, f"--env {text}")
    return EnvValue(name, value, "--env")


def check_value(value: str, option: str) -> str:
    """A launcher value: no control characters (the launcher keeps it as one C string, and
    one line in the report); `{...}` other than `{top}` is refused as a likely typo."""
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise InputError(f"{option}: the value holds a control character")
    other = re.sub(re.escape(TOP), "", value)
    if re.search(r"\{[a-z_]+\}", other):
        raise InputError(f"{option}: only {TOP} is replaced in a value (the artifact's top)")
    return value


def expand(value: str, top: str) -> str:
    """A value as the launcher sets it for an artifact at `top`."""
    return value.replace(TOP, top)

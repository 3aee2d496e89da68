"""A Debian copyright file's licences as one SPDX expression, and what kind it is.

Debian's machine-readable copyright format (DEP-5) names a licence per `Files` paragraph
with Debian's short names (GPL-2+, LGPL-2.1+, Expat, BSD-3-clause, "GPL-3+ with
GCC-exception"); the SBOMs want SPDX expressions (GPL-2.0-or-later, MIT, ...). Every
paragraph's licence goes in, joined with AND: the package ships files under each. A file
that is not DEP-5 has no machine-readable licence: NOASSERTION, and the file is carried so
a person can read it. A file in plain deb822 (831 of the 845 DEP-5 files of the dev host)
is read here; python-debian reads the others, imported only then (26 ms). license-expression
checks names against SPDX's list, imported and built on first use (about 20 ms: its import
and SPDX's table), once per process: `spdx_licensing` is the one the SBOMs check with too.
"""

from __future__ import annotations

import functools
import importlib
import logging
import re
import warnings
from typing import Any

from bundler.inventory import (
    NOASSERTION,
    LicenceKind,
)

_DEBIAN_NAMES = {
    "expat": "MIT",
    "public-domain": "LicenseRef-public-domain",
    "psf": "PSF-2.0",
    "psf-2": "PSF-2.0",
    "python": "Python-2.0",
    "zope": "ZPL-2.1",
    "perl": "Artistic-1.0-Perl OR GPL-1.0-or-later",
    "apache": "Apache-2.0",
}


_GNU_FAMILIES = ("GPL", "LGPL", "AGPL", "GFDL")


_EXCEPTIONS = {
    "gcc": {"3": "GCC-exception-3.1", "2": "GCC-exception-2.0"},
    "autoconf": {"3": "Autoconf-exception-3.0", "2": "Autoconf-exception-2.0"},
    "bison": {"3": "Bison-exception-2.2", "2": "Bison-exception-2.2"},
    "classpath": {"2": "Classpath-exception-2.0"},
    "font": {"2": "Font-exception-2.0", "3": "Font-exception-2.0"},
    "libtool": {"2": "Libtool-exception", "3": "Libtool-exception"},
}


_COPYLEFT_PREFIXES = ("GPL", "LGPL", "AGPL", "MPL", "EPL", "EUPL", "CDDL")


_PERMISSIVE = frozenset({
    "MIT", "MIT-0", "ISC", "Zlib", "curl", "X11", "PSF-2.0", "Python-2.0", "Unlicense",
    "0BSD", "BSL-1.0", "CC0-1.0", "Apache-1.0", "Apache-1.1", "Apache-2.0", "FSFAP", "FSFUL",
    "FSFULLR", "Libpng", "libpng-2.0", "NTP", "HPND", "bzip2-1.0.6", "OpenSSL", "SSLeay",
    "Info-ZIP", "PostgreSQL", "blessing", "LicenseRef-public-domain", "LicenseRef-permissive",
})


_PERMISSIVE_PREFIXES = ("BSD-", "MIT-")
_SPDX_IDS: dict[str, str] = {}


@functools.cache
def _licensing() -> Any:
    # Imported by name: license-expression ships no type information, and this keeps mypy
    # clean with or without an ignore_missing_imports override for it.
    return importlib.import_module("license_expression").get_spdx_licensing()


def spdx_licensing() -> Any:
    """license-expression's SPDX Licensing (`get_spdx_licensing()`), built once per process:
    building it reads SPDX's whole licence list (about 15 ms), so every user shares this
    one rather than building another."""
    return _licensing()


def licence_ref(name: str) -> str:
    """An SPDX LicenseRef for a name SPDX does not know (idstring: letters, digits, . and -)."""
    cleaned = re.sub(r"[^A-Za-z0-9.]+", "-", name).strip("-")
    return f"LicenseRef-{cleaned or 'unnamed'}"


def spdx_id(debian_name: str) -> str:
    """The SPDX id of one Debian licence short name: GPL-2+ -> GPL-2.0-or-later,
    BSD-3-clause -> BSD-3-Clause, Expat -> MIT; LicenseRef-NAME when SPDX has none."""
    name = debian_name.strip()
    if name.lower() in _DEBIAN_NAMES:
        return _DEBIAN_NAMES[name.lower()]
    known = _spdx_ids_lowercase()
    plus = name.endswith("+")
    base = name.rstrip("+")
    match = re.fullmatch(r"(.*?)-?v?(\d+(?:\.\d+)*)", base)
    family, version = (match.group(1), match.group(2)) if match else (base, "")
    if family.upper() in _GNU_FAMILIES and version:
        if "." not in version:
            version += ".0"
        candidate = f"{family.upper()}-{version}-{'or-later' if plus else 'only'}"
        return known.get(candidate.lower(), licence_ref(name))
    if not plus:
        for candidate in (base, f"{family}-{version}", f"{family}-{version}.0"):
            if candidate.lower() in known:
                return known[candidate.lower()]
    # SPDX's `+` operator is not understood by license-expression; say "or later" in a ref.
    return licence_ref(f"{base}-or-later" if plus else base)


def _spdx_ids_lowercase() -> dict[str, str]:
    """SPDX's licence ids by lower-case name (not scancode's LicenseRef- keys)."""
    if not _SPDX_IDS:
        for lower, symbol in _licensing().known_symbols_lowercase.items():
            if not symbol.key.startswith("LicenseRef-") and not symbol.is_exception:
                _SPDX_IDS[lower] = symbol.key
    return _SPDX_IDS


def _with_exception(licence_name: str, exception_words: list[str]) -> str:
    licence = spdx_id(licence_name)
    keyword = re.sub(r"-?exception$", "", "-".join(exception_words).lower()).strip("-")
    major = re.search(r"(\d)", licence_name)
    exception = _EXCEPTIONS.get(keyword, {}).get(major.group(1) if major else "")
    if exception is None or licence.startswith("LicenseRef-") or " " in licence:
        return licence_ref(f"{licence_name}-with-{'-'.join(exception_words)}")
    return f"{licence} WITH {exception}"


def synopsis_expression(synopsis: str) -> str:
    """A Files paragraph's `License:` first line as an SPDX expression.

    DEP-5 writes `A or B`, `A and B`, `A with X exception`, and uses a comma for lower
    precedence (`A or B, and C` is `(A OR B) AND C`). Anything the SPDX parser then refuses
    becomes one LicenseRef of the whole synopsis, so no expression is invalid.
    """
    groups = []
    for group_number, group in enumerate(synopsis.split(",")):
        words = group.split()
        operator = ""
        if group_number and words and words[0].lower() in ("and", "or"):
            operator = words.pop(0).upper()
        terms: list[str] = []
        position = 0
        while position < len(words):
            word = words[position]
            if word.lower() in ("and", "or"):
                terms.append(word.upper())
                position += 1
                continue
            end = position + 1
            if end < len(words) and words[end].lower() == "with":
                stop = end + 1
                while stop < len(words) and words[stop].lower() not in ("and", "or"):
                    stop += 1
                terms.append(_with_exception(word, words[end + 1:stop]))
                position = stop
                continue
            spdx = spdx_id(word)
            terms.append(f"({spdx})" if " " in spdx else spdx)
            position = end
        if terms:
            expression = " ".join(terms)
            groups.append((operator or "AND", f"({expression})" if len(terms) > 1 else expression))
    text = " ".join(f"{op} {expr}" if i else expr for i, (op, expr) in enumerate(groups))
    try:
        return str(_licensing().parse(text, simple=True).render()) if text else NOASSERTION
    except Exception:  # the parser raises several types; the input is text
        return licence_ref(synopsis)


def licence_of_copyright(text: str) -> str:
    """The SPDX expression of a Debian copyright file: the licences of every Files paragraph
    (a paragraph's own `A and B` split into its terms), deduplicated, sorted, joined with AND;
    NOASSERTION unless the file is machine-readable (DEP-5, a `Format:` header)."""
    if not re.match(r"\s*Format:", text):
        return NOASSERTION
    try:
        synopses = _synopses(text)
    except Exception:  # python-debian raises many types on malformed input
        return NOASSERTION
    licensing = _licensing()
    terms = set()
    for synopsis in synopses:
        expression = synopsis_expression(synopsis)
        if expression == NOASSERTION:
            continue
        parsed = licensing.parse(expression, simple=True)
        for part in parsed.args if isinstance(parsed, licensing.AND) else (parsed,):
            rendered = str(part.render())
            terms.add(f"({rendered})" if " AND " in rendered or " OR " in rendered
                      else rendered)
    return " AND ".join(sorted(terms, key=lambda t: t.lstrip("("))) if terms else NOASSERTION


def _synopses(text: str) -> set[str]:
    """The `License:` first lines of the Files paragraphs: read here when the file keeps to
    the plain grammar, else by python-debian (quietly: it logs a warning for every old
    Format URL, which is not the user's business). Importing and running python-debian
    cost 26 ms + 1.2 ms a file on every build (9 files for sqlite3); the plain reading
    0.05 ms a file, and tests check both agree on every copyright file of the machine."""
    try:
        return plain_dep5_synopses(text)
    except UnusualCopyright:
        pass
    from debian.copyright import Copyright

    logging.getLogger("debian.copyright").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = Copyright(text.splitlines(), strict=False)
    licences: list[Any] = [p.license for p in parsed.all_files_paragraphs()]
    return {lic.synopsis for lic in licences if lic is not None and lic.synopsis.strip()}


class UnusualCopyright(Exception):
    """The copyright file uses more of deb822 than the plain reading follows (comments,
    repeated fields, tab-led continuations, lines that are not fields): python-debian
    reads it."""


# python-debian's field line (debian/_deb822_repro/tokens.py, _RE_FIELD_LINE): a name of
# printable ASCII without `:` (not starting with `#` or `-`), `:`, the value stripped.
_FIELD_LINE = re.compile(r"([\x21\x22\x24-\x2C\x2F-\x39\x3B-\x7F][\x21-\x39\x3B-\x7F]*)"
                         r":\s*(?:(\S(?:.*\S)?)\s*)?")


def plain_dep5_synopses(text: str) -> set[str]:
    """What python-debian's `Copyright(text.splitlines(), strict=False)` gives as the
    non-blank License synopses of its Files paragraphs, for a file that keeps to plain
    deb822: paragraphs of `Name: value` lines and space-led continuations, split by blank
    lines. UnusualCopyright for anything else, so the answer is never a guess. The first
    paragraph is the header, which must name its Format; a later one with a Files field is
    a Files paragraph, and its License's first line is the synopsis."""
    paragraphs: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    field = ""
    for line in text.splitlines():  # as python-debian is given it: the same line breaks
        if (line + "\n").isspace():
            current, field = None, ""
            continue
        if line[0] in " \t":
            if not field or (field == "license" and line[0] == "\t"):
                raise UnusualCopyright("a continuation outside a field, or led by a tab")
            continue
        match = _FIELD_LINE.match(line)
        if line[0] == "#" or match is None:
            raise UnusualCopyright("a comment or a line that is not a field")
        field = match.group(1).lower()
        if current is None:
            current = {}
            paragraphs.append(current)
        if field in current:
            raise UnusualCopyright(f"the field {field} twice in a paragraph")
        current[field] = match.group(2) or ""
    if not paragraphs or not paragraphs[0].get("format") \
            or "format-specification" in paragraphs[0]:
        raise UnusualCopyright("no plain Format in the header")
    return {paragraph["license"] for paragraph in paragraphs[1:]
            if "files" in paragraph and paragraph.get("license", "").strip()}


def licence_ids(expression: str) -> tuple[str, ...]:
    """The licence ids of an expression (exceptions left out); () for NOASSERTION."""
    if expression == NOASSERTION:
        return ()
    try:
        licensing = _licensing()
        parsed = licensing.parse(expression, simple=True)
        symbols = licensing.license_symbols(parsed, decompose=True)
        return tuple(sorted({s.key for s in symbols if not s.is_exception}))
    except Exception:  # an unparsable expression names nothing we know
        return ()


def licence_kind(expression: str) -> LicenceKind:
    """copyleft when any GPL-family, MPL, EPL, EUPL or CDDL licence appears (there is
    something to honour even if an OR offers a way out); permissive when every licence is a
    known permissive one; unknown otherwise (NOASSERTION included)."""
    ids = licence_ids(expression)
    if not ids:
        return "unknown"
    bare = [i.removeprefix("LicenseRef-") for i in ids]
    if any(b.upper().startswith(_COPYLEFT_PREFIXES) for b in bare):
        return "copyleft"
    if all(i in _PERMISSIVE or i.startswith(_PERMISSIVE_PREFIXES) for i in ids):
        return "permissive"
    return "unknown"

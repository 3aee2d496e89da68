"""licences.plain_dep5_synopses, the plain reading of a DEP-5 copyright file, against
python-debian's on every copyright file of this machine (and of the Debian 11 root when it
is there) and on texts that take the unusual corners of deb822: where the plain reading
answers, it answers what python-debian does; where it cannot be sure, it says so and
python-debian reads the file."""

from __future__ import annotations

import glob
import logging
import warnings

import pytest
from support.roots import debian11_tree

from bundler.licences import UnusualCopyright, _synopses, plain_dep5_synopses
from bundler.provenance import MAX_COPYRIGHT_BYTES


def python_debian(text: str) -> set[str] | str:
    """The synopses python-debian gives, or the name of what it raised."""
    from debian.copyright import Copyright

    logging.getLogger("debian.copyright").setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = Copyright(text.splitlines(), strict=False)
        found = [p.license for p in parsed.all_files_paragraphs()]
    except Exception as error:  # what it raises is what licence_of_copyright catches
        return type(error).__name__
    return {lic.synopsis for lic in found if lic is not None and lic.synopsis.strip()}


def plain(text: str) -> set[str] | None:
    try:
        return plain_dep5_synopses(text)
    except UnusualCopyright:
        return None


def copyright_texts(root: str) -> list[tuple[str, str]]:
    """Every /usr/share/doc/*/copyright of `root`, read as provenance.py reads it."""
    texts = []
    for path in sorted(glob.glob(f"{root.rstrip('/')}/usr/share/doc/*/copyright")):
        try:
            with open(path, "rb") as handle:
                data = handle.read(MAX_COPYRIGHT_BYTES + 1)
        except OSError:
            continue
        if len(data) <= MAX_COPYRIGHT_BYTES:
            texts.append((path, data.decode("utf-8", "surrogateescape")))
    return texts


ROOTS = ["/", "bullseye"]


@pytest.mark.parametrize("root", ROOTS, ids=["host", "bullseye"])
def test_the_plain_reading_agrees_with_python_debian_on_every_copyright_file(root: str):
    root = str(debian11_tree()) if root == "bullseye" else root
    texts = copyright_texts(root)
    assert texts, f"no copyright files under {root}"
    answered = 0
    for path, text in texts:
        mine = plain(text)
        if mine is not None:
            answered += 1
            assert mine == python_debian(text), path
    dep5 = [text for _, text in texts if text.lstrip().startswith("Format:")]
    # Most machine-readable files are plain: if this fails, the fast path went dead.
    assert answered >= len(dep5) * 0.8, (answered, len(dep5))


AGREEING = [
    "Format: x\n\nFiles: *\nLicense:   GPL-2+   \n foo\n .\n bar\n",
    "Format: x\n\nFiles: *\nLicense:\n GPL-2+\n",  # the synopsis is empty: left out
    "Format: x\n\nFiles: *\nLicense:\n",
    "Format: x\n\nfiles: *\nlicense: MIT\n",  # field names are not case-sensitive
    "Format: x\r\n\r\nFiles: *\r\nLicense: MIT\r\n",
    "Format: x\n\x0c\nFiles: *\nLicense: MIT\n \t\nFiles: a\nLicense: BSD-3-clause\n",
    "Format: x\n\nFiles: a\nLicense: MIT or Expat, and Zlib\n\nFiles: b\nLicense: MIT\n",
    "Format: x\n\nLicense: GPL-2\n GPL text\n\nFiles: *\nCopyright: me\nLicense: GPL-2\n",
    "Format: x\n\nFiles: *\nComment: c\n\tx\nLicense: MIT\n",
    "Format: x\nLicense: header only\n\nFiles: *\nLicense: ISC\n",
    "Format: x\n\nCopyright: no files\nLicense: MIT\n",
    "Format: x\n\nFiles: *\nLicense: MIT \u00e9\n",
    "\n\n  \nFormat: x\n\nFiles: *\nLicense: MIT",
]

UNUSUAL = [
    "Format: x\n\nFiles: *\nLicense: MIT\n\tfoo\n",  # python-debian refuses the licence
    "Format: x\n\nFiles: *\nLicense: MIT\n#comment\n foo\n",
    "Format: x\n\nFiles: *\nLicense: MIT\nLicense: BSD\n",
    "Format: x\n\nFiles: *\nLicense: MIT\x1eLicense: BSD\n",  # \x1e breaks the line: twice
    "Format: x\nFormat: y\n\nFiles: *\nLicense: MIT\n",
    "Format-Specification: x\n\nFiles: *\nLicense: MIT\n",
    "Format:\n\nFiles: *\nLicense: MIT\n",
    " Format: x\n\nFiles: *\nLicense: MIT\n",
    "Format: x\n\nFiles: *\nnot a field\nLicense: MIT\n",
    "Format: x\n\nFiles: *\n-License: MIT\n",
    "Format: x\n\nFiles: *\nLic\u00e9nse: MIT\n",
    "Format: x\n\nFiles: *\nLicense MIT\n",
    "",
]


@pytest.mark.parametrize("text", AGREEING)
def test_plain_texts_read_as_python_debian_reads_them(text: str):
    assert plain(text) is not None
    assert plain(text) == python_debian(text)
    assert _synopses(text) == python_debian(text)


@pytest.mark.parametrize("text", UNUSUAL)
def test_unusual_texts_are_left_to_python_debian(text: str):
    assert plain(text) is None
    try:
        found: set[str] | str = _synopses(text)
    except Exception as error:  # licence_of_copyright makes it NOASSERTION
        found = type(error).__name__
    assert found == python_debian(text)

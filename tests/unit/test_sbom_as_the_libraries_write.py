"""sbom.py writes its JSON with the standard library: the bytes must be what
cyclonedx-python-lib and spdx-tools write for the same inventory (tests/support/
sbom_reference.py is the code that wrote them with the libraries), for odd inventories and
for generated ones, and both validators must accept them. The real builds' inventories are
in tests/integration/test_sbom_real_inventories.py.

Byte for byte, not as parsed JSON: both libraries' output is deterministic (key order,
sorting; test_sbom.py checks the same bytes across hash seeds), so a difference in key
order or escaping is a difference a reader could see."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pickle
import random
import subprocess
import sys
import warnings
from typing import Any

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from spdx_tools.spdx.parser.jsonlikedict.json_like_dict_parser import JsonLikeDictParser
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document
from support.paths import REPO
from support.sbom_reference import cyclonedx_json_by_library, spdx_json_by_library

from bundler.inventory import NOASSERTION, GoModule, Inventory, InventoryFile, Package
from bundler.sbom import cyclonedx_json, document_problems, spdx_json

# Strings a real root or build can hold and a JSON writer must treat alike: quotes,
# backslashes, control characters, non-ASCII (escaped as \\uXXXX), astral characters
# (escaped as surrogate pairs), the characters SPDXIDs and purls must encode.
ODD_TEXT = ('a"b', "back\\slash", "tab\there", "new\nline", "\x00nul", "caf\u00e9",
            "\u65e5\u672c", "emoji \U0001F600", "</script>", "a+b~c:d", "100%", "@at",
            "q?x=1&y", "frag#ment", "sp ace", "-lead", "dot.", "UPPER", "\u2028sep")
LICENCES = ("MIT", "mit", "GPL-2+", "LGPL-2.1+ AND GPL-2.0-or-later", "GPL-2 | BSD",
            "(BSD", "GPL-3 with GCC-exception-3.1", "Apache-2.0 WITH LLVM-exception",
            "GPL-2.0-only WITH No-such-exception", "public-domain", "LicenseRef-x y",
            "LicenseRef-", "Expat or BSD-3-clause", "Zlib and (MIT or GPL-2+)",
            NOASSERTION, "", "  ", "GPL-2+ with OpenSSL exception", "caf\u00e9-licence")
MAINTAINERS = (None, "", "  ", "GNU Libc Maintainers <debian-glibc@lists.debian.org>",
               "No Email", "<only@email>", "Name <>", "Ren\u00e9 \"Q\" O'Brien <r@x.org>",
               "Two <a@b> <c@d>", "Trailing <x@y.z>  ")


def _file(dest: str, package: str | None, kind: str, made: bool = False,
          patched_by: str | None = None) -> InventoryFile:
    data = dest.encode("utf-8", "surrogatepass")
    return InventoryFile(dest, hashlib.sha256(data).hexdigest(), len(data), kind, package,
                         hashlib.sha1(data).hexdigest(), made, patched_by)


def _package(name: str, version: str, licence: str, maintainer: str | None,
             distro: str | None, architecture: str = "amd64",
             copyright: str | None = "/usr/share/doc/x/copyright") -> Package:
    return Package(name=name, version=version, architecture=architecture,
                   source=f"src {name}", source_version=f"{version}+src", distro=distro,
                   licence=licence, licence_kind="unknown", copyright=copyright,
                   database="/var/lib/dpkg", maintainer=maintainer)


def _assert_as_the_libraries_write(inventory: Inventory, validate: bool = True) -> None:
    with warnings.catch_warnings():  # the library warns of a root with no dependencies
        warnings.simplefilter("ignore")
        expected_cdx = cyclonedx_json_by_library(inventory)
    cdx = cyclonedx_json(inventory)
    assert cdx == expected_cdx
    expected_spdx = spdx_json_by_library(inventory)
    spdx = spdx_json(inventory)
    assert spdx == expected_spdx
    if validate:
        assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(cdx) is None
        parsed = JsonLikeDictParser().parse(json.loads(spdx))
        assert [m.validation_message for m in validate_full_spdx_document(parsed)] == []


def _odd_inventory() -> Inventory:
    """Every odd string, licence and maintainer above at least once; Go modules without a
    namespace, with upper case, a local and a remote replace, (devel), one module main in
    one program and a dependency in another, the same path at two versions; a loading
    cycle (libc and the loader need each other); a file of no package; made files; copies
    LIEF patched (one named oddly)."""
    packages = [_package(f"pkg{n}", f"{n}:1.0~rc{n}+dfsg-{n}", LICENCES[n % len(LICENCES)],
                         MAINTAINERS[n % len(MAINTAINERS)],
                         ("debian-12", "ubuntu-22.04", "debian", None)[n % 4],
                         architecture=("amd64", "all", "arm64")[n % 3],
                         copyright=None if n % 5 == 0 else f"/usr/share/doc/pkg{n}/copyright")
                for n in range(len(LICENCES))]
    packages += [_package(f"name-{n}", text, "MIT", text, "debian-12")
                 for n, text in enumerate(ODD_TEXT)]
    files = [_file(f"lib/{text}.so", packages[n % len(packages)].key, "library",
                   patched_by=f"lief {text}" if n % 4 == 0 else None)
             for n, text in enumerate(ODD_TEXT)]
    files += [_file("lib/libc.so.6", packages[0].key, "library"),
              _file("lib/ld-linux-x86-64.so.2", packages[0].key, "loader"),
              _file("libexec/go one", None, "program", patched_by="lief 1.0.0-d05b3499b"),
              _file("libexec/go2", None, "program", patched_by="lief 1.0.0-d05b3499b"),
              _file("bin/go one", None, "launcher", made=True),
              _file(".bundle/SOURCES", None, "notice", made=True),
              _file("share/empty", None, "data")]
    files = sorted(files, key=lambda f: f.dest)
    modules_one = (GoModule("Example.COM/Main", "(devel)", "", None, main=True),
                   GoModule("solo", "v1.0.0", "h1:solo="),
                   GoModule("golang.org/x/sys", "v0.1.0", "h1:a=",
                            ("github.com/fork/sys", "v0.2.0")),
                   GoModule("example.com/local", "v1.0.0", "", ("../local", "")),
                   GoModule("example.com/lib", "v1.2.3", "h1:lib="))
    modules_two = (GoModule("example.com/lib", "v1.2.3", "", None, main=True),
                   GoModule("golang.org/x/sys", "v0.3.0", "h1:b="),
                   GoModule("example.com/caf\u00e9", "v0.0.0-2023+incompatible", ""),
                   GoModule("solo", "(devel)", ""))  # beside solo v1.0.0: no version last
    dependencies = (("lib/libc.so.6", ("lib/ld-linux-x86-64.so.2",)),
                    ("lib/ld-linux-x86-64.so.2", ("lib/libc.so.6",)),
                    ("libexec/go one", ("lib/ld-linux-x86-64.so.2", "lib/libc.so.6")),
                    (files[0].dest, tuple(f.dest for f in files[1:4])))
    return Inventory(name="odd \"app\" caf\u00e9/1", arch="x86-64", tool_version="0.1.0+dev",
                     created=1700000000, files=tuple(files),
                     packages=tuple(sorted(packages, key=lambda p: p.key)),
                     go_modules=(("libexec/go one", modules_one), ("libexec/go2", modules_two)),
                     dependencies=dependencies)


def test_odd_names_licences_suppliers_and_modules_are_written_as_the_libraries_write() -> None:
    # (not validated: a NUL or a line break in a file name is no valid SPDX fileName for
    # the library's validator either; the validated cases are below and in integration/)
    _assert_as_the_libraries_write(_odd_inventory(), validate=False)


def test_odd_licences_and_suppliers_with_plain_names_validate() -> None:
    odd = _odd_inventory()
    plain = [p for p in odd.packages if p.name.startswith("pkg")]
    files = tuple(_file(f"lib/{p.name}.so", p.key, "library") for p in plain)
    _assert_as_the_libraries_write(dataclasses.replace(
        odd, files=files, packages=tuple(plain), go_modules=(), dependencies=()))


def test_a_cycle_with_no_root_and_an_empty_artifact() -> None:
    odd = _odd_inventory()
    cycle = tuple(f for f in odd.files if f.dest in ("lib/libc.so.6", "lib/ld-linux-x86-64.so.2"))
    _assert_as_the_libraries_write(dataclasses.replace(
        odd, files=cycle, packages=tuple(p for p in odd.packages if p.key == cycle[0].package),
        go_modules=(),
        dependencies=odd.dependencies[:2]))
    _assert_as_the_libraries_write(dataclasses.replace(
        odd, files=(), packages=(), go_modules=(), dependencies=()))


def _generated(seed: int) -> Inventory:
    """A random inventory: names from the odd strings and plain ones, random packages,
    modules and a random acyclic graph of loads."""
    rng = random.Random(seed)
    words = [*ODD_TEXT, "libc", "libz", "x", "a-b", "a+b", "A", "a"]

    def name() -> str:
        return "".join(rng.choice(words) for _ in range(rng.randint(1, 3)))

    packages = {}
    for _ in range(rng.randint(0, 8)):
        package = _package(name().replace("\x00", ""), name(), rng.choice(LICENCES),
                           rng.choice(MAINTAINERS), rng.choice(("debian-12", None, "debian")))
        packages[package.key] = package
    keys = [None, *packages]
    dests = sorted({f"{rng.choice(('lib', 'libexec', 'share'))}/{name()}"
                    for _ in range(rng.randint(0, 20))})
    files = [_file(dest, rng.choice(keys), rng.choice(("library", "program", "data")),
                   made=rng.random() < 0.1) for dest in dests]
    dependencies = []
    for n, dest in enumerate(dests):
        later = dests[n + 1:]
        if later and rng.random() < 0.6:
            dependencies.append((dest, tuple(sorted(rng.sample(later,
                                                               rng.randint(1, len(later)))))))
    programs = [f.dest for f in files if f.kind == "program"]
    go_modules = []
    for program in programs[:3]:
        modules = tuple(GoModule(rng.choice(("example.com/", "", "github.com/x/")) + name(),
                                 rng.choice(("v1.0.0", "(devel)", "v0.0.0-1+x")),
                                 rng.choice(("", "h1:x=")),
                                 rng.choice((None, ("../dir", ""), ("example.org/r", "v2.0.0"))),
                                 main=rng.random() < 0.2)
                        for _ in range(rng.randint(0, 4)))
        go_modules.append((program, modules))
    return Inventory(name=name(), arch=rng.choice(("x86-64", "aarch64")),
                     tool_version="0.1.0", created=rng.randint(0, 2_000_000_000),
                     files=tuple(files), packages=tuple(packages.values()),
                     go_modules=tuple(go_modules), dependencies=tuple(dependencies))


@pytest.mark.parametrize("first", range(0, 300, 50))
def test_generated_inventories_are_written_as_the_libraries_write(first: int) -> None:
    for seed in range(first, first + 50):
        _assert_as_the_libraries_write(_generated(seed), validate=False)


def test_what_the_libraries_refuse_is_refused() -> None:
    """An inventory naming what it does not list, and files without a SHA-1: the same
    ValueError from both writers."""
    odd = _odd_inventory()
    dangling = dataclasses.replace(odd, dependencies=(("lib/libc.so.6", ("lib/nowhere",)),))
    no_sha1 = dataclasses.replace(odd, files=tuple(dataclasses.replace(f, sha1="")
                                                   for f in odd.files))
    for inventory, words in ((dangling, "lib/nowhere"), (no_sha1, "SHA-1")):
        for writer in (spdx_json, spdx_json_by_library):
            with pytest.raises(ValueError, match=words):
                writer(inventory)
    for writer in (cyclonedx_json, cyclonedx_json_by_library):
        with pytest.raises(ValueError, match="lib/nowhere"):
            writer(dangling)


def test_the_run_time_check_finds_what_would_make_the_document_invalid() -> None:
    """document_problems (spdx_json's check before writing) on a valid document and on
    each fault it looks for."""
    inventory = dataclasses.replace(_odd_inventory(), go_modules=())
    document: dict[str, Any] = json.loads(spdx_json(inventory))
    assert document_problems(document) == []
    faults = {
        "malformed SPDXID": lambda d: d["files"][0].update(SPDXID="SPDXRef-a b"),
        "used twice": lambda d: d["files"].append(d["files"][0]),
        "SPDXRef-nowhere": lambda d: d["relationships"][0].update(
            relatedSpdxElement="SPDXRef-nowhere"),
        "not a digest": lambda d: d["files"][1]["checksums"][0].update(checksumValue="ABC"),
        "malformed licence id": lambda d: d["hasExtractedLicensingInfos"][0].update(
            licenseId="LicenseRef-a b"),
        "LicenseRef-undefined is not defined": lambda d: d["packages"][1].update(
            licenseDeclared="MIT OR LicenseRef-undefined"),
    }
    for words, fault in faults.items():
        broken = json.loads(json.dumps(document))
        fault(broken)
        assert any(words in problem for problem in document_problems(broken)), words
        # ... and the library's full validator finds each of them too
        try:
            parsed = JsonLikeDictParser().parse(broken)
        except Exception:  # (a malformed value the library's parser refuses outright)
            continue
        assert validate_full_spdx_document(parsed) != [], words


def test_writing_the_sboms_imports_neither_library() -> None:
    """The point of writing them directly: no cyclonedx, spdx_tools, beartype or
    py_serializable import (0.3 s) when a build writes both documents."""
    script = ("import pickle, sys\n"
              "from bundler.sbom import cyclonedx_json, spdx_json\n"
              "inventory = pickle.load(sys.stdin.buffer)\n"
              "cyclonedx_json(inventory), spdx_json(inventory)\n"
              "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
              "('cyclonedx', 'spdx_tools', 'beartype', 'py_serializable', 'jsonschema'))))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True,
                            input=pickle.dumps(_odd_inventory()), cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == b""

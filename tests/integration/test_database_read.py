"""The database read a build does (status paragraphs read only for package, architecture and
state; .list files kept as bytes and searched by name) against a reference built the plain
way here (every status paragraph parsed whole, every list split into paths), on this host's
dpkg database and the Debian 11 root's: the same owners and other owners for hundreds of
listed paths (prefetched and searched one by one), the same installed packages."""

from __future__ import annotations

import os
import random

import pytest
from support.roots import debian11_tree

from bundler import provenance
from bundler.provenance import by_name, list_owner, parse_list, parse_status
from bundler.sysroot import Sysroot

ROOTS = ["/", "bullseye"]


def reference(root: str) -> tuple[dict[str, object], dict[str, set[str]], dict[str, set[str]]]:
    """(installed packages by key, path -> installed owners, path -> other owners' labels)."""
    admindir = os.path.join(root, "var/lib/dpkg")
    with open(os.path.join(admindir, "status"), "rb") as handle:
        entries = parse_status(handle.read().decode("utf-8", "surrogateescape"))
    installed = [e for e in entries if e.installed]
    others = [e for e in entries if not e.installed]
    packages: dict[str, object] = {}
    for entry in installed:
        packages.setdefault(entry.key, entry)
    owners: dict[str, set[str]] = {}
    other_owners: dict[str, set[str]] = {}
    info = os.path.join(admindir, "info")
    for name in sorted(os.listdir(info)):
        if not name.endswith(".list"):
            continue
        owner, index = list_owner(name, by_name(installed)), owners
        if owner is None:
            owner, index = list_owner(name, by_name(others)), other_owners
        if owner is None:
            continue
        label = owner.key if index is owners else f"{owner.key} ({owner.state})"
        with open(os.path.join(info, name), "rb") as handle:
            for path in parse_list(handle.read().decode("utf-8", "surrogateescape")):
                index.setdefault(path, set()).add(label)
    return packages, owners, other_owners


@pytest.mark.parametrize("root", ROOTS, ids=["host", "bullseye"])
def test_the_database_read_finds_what_the_plain_reading_finds(root: str):
    root = str(debian11_tree()) if root == "bullseye" else root
    packages, owners, other_owners = reference(root)
    sysroot = Sysroot(root)
    database = provenance._read_database(sysroot, "/var/lib/dpkg")
    assert not database.problems
    assert list(database.packages) == list(packages)
    assert dict(database.packages) == packages
    # Paths as listed, looked up where they are (the reference does not resolve symlinks, so
    # take paths whose directory is already canonical in the root).
    chooser = random.Random(21)
    listed = sorted(set(owners) | set(other_owners))
    sample = [p for p in chooser.sample(listed, min(3000, len(listed)))
              if sysroot.resolve(os.path.dirname(p) or "/") == (os.path.dirname(p) or "/")]
    assert len(sample) > 200
    one_by_one, prefetched = sample[:60], sample[60:]  # both ways ListIndex finds names
    database.prefetch(prefetched)
    installed_by_name, others_by_name = _by_name(owners), _by_name(other_owners)
    for path in [*one_by_one, *prefetched]:
        assert set(database.owners(path)) == _owners(installed_by_name, sysroot, path), path
        assert set(database.other_owners(path)) == _owners(others_by_name, sysroot, path), path


Grouped = dict[str, list[tuple[str, set[str]]]]


def _by_name(index: dict[str, set[str]]) -> Grouped:
    """(listed path, labels) by the listed path's name."""
    grouped: Grouped = {}
    for listed, labels in index.items():
        grouped.setdefault(listed.rpartition("/")[2], []).append((listed, labels))
    return grouped


def _owners(grouped: Grouped, sysroot: Sysroot, path: str) -> set[str]:
    """Labels of every listed path with `path`'s name whose directory resolves to path's,
    as dpkg -S matches them."""
    directory, _, name = path.rpartition("/")
    found: set[str] = set()
    for listed, labels in grouped.get(name, ()):
        if sysroot.resolve(listed.rpartition("/")[0] or "/") == (directory or "/"):
            found |= labels
    return found

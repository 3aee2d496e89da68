"""provenance.status_head, the cheap reading of a dpkg status paragraph a database read does
for every package, against status_entry's full parse: on every paragraph of this machine's
status file (and the Debian 11 root's when it is there), and on every paragraph of mutated
copies (field names re-cased, padded, repeated; values emptied; bytes that are not ASCII).
The installed packages by key (StatusEntries, parsed when asked) are the full parse's."""

from __future__ import annotations

import os
import random

import pytest
from support.roots import debian11_tree

from bundler.provenance import (
    StatusEntries,
    parse_status,
    status_entry,
    status_head,
    status_paragraphs,
)


def status_text(root: str) -> str:
    with open(os.path.join(root, "var/lib/dpkg/status"), "rb") as handle:
        return handle.read().decode("utf-8", "surrogateescape")


def assert_heads_agree(text: str) -> int:
    """Every paragraph's head is its full entry's; the number of entries."""
    found = 0
    for paragraph in status_paragraphs(text):
        entry, head = status_entry(paragraph), status_head(paragraph)
        if entry is None:
            assert head is None, paragraph
            continue
        found += 1
        assert head is not None, paragraph
        assert (head.name, head.architecture, head.state, head.key, head.installed) == (
            entry.name, entry.architecture, entry.state, entry.key, entry.installed), paragraph
    return found


ROOTS = ["/", "bullseye"]


@pytest.mark.parametrize("root", ROOTS, ids=["host", "bullseye"])
def test_heads_agree_with_the_full_parse_on_the_real_status_file(root: str):
    root = str(debian11_tree()) if root == "bullseye" else root
    text = status_text(root)
    assert assert_heads_agree(text) > 50
    entries = parse_status(text)
    first: dict[str, object] = {}
    for entry in entries:
        if entry.installed:
            first.setdefault(entry.key, entry)
    lazy = StatusEntries(h for h in map(status_head, status_paragraphs(text))
                         if h is not None and h.installed)
    assert list(lazy) == list(first)
    assert dict(lazy) == first


MUTATIONS = [
    lambda line: line.upper(),
    lambda line: line.lower(),
    lambda line: line.replace(":", " :", 1),
    lambda line: line.replace(":", "\t:", 1),
    lambda line: "\x0c" + line,
    lambda line: "\r" + line,
    lambda line: " " + line,
    lambda line: "\t" + line,
    lambda line: line.replace(":", "", 1),
    lambda line: line.split(":", 1)[0] + ":",
    lambda line: line.split(":", 1)[0] + ":   \x1f ",
    lambda line: line.replace("a", "\u212a", 1),  # KELVIN SIGN lower-cases to k
    lambda line: line.replace("e", "\xe9", 1),
    lambda line: line + "\n" + line.replace(": ", ": other-", 1),  # repeated
    lambda line: "Pack age: x\n" + line,
    lambda line: "",
]


def test_heads_agree_on_mutated_paragraphs():
    text = status_text("/")
    paragraphs = status_paragraphs(text)
    chooser = random.Random(21)
    mutated = []
    for paragraph in chooser.sample(paragraphs, min(200, len(paragraphs))):
        lines = paragraph.split("\n")
        for mutation in MUTATIONS:
            at = chooser.randrange(min(len(lines), 6))  # Package, Status, Architecture lead
            mutated.append("\n".join([*lines[:at], mutation(lines[at]), *lines[at + 1:]]))
    for paragraph in mutated:
        entry, head = status_entry(paragraph), status_head(paragraph)
        assert (entry is None) == (head is None), paragraph
        if entry is not None and head is not None:
            assert (head.name, head.architecture, head.state) == (
                entry.name, entry.architecture, entry.state), paragraph
    assert sum(status_entry(p) is None for p in mutated) > 100  # the mutations did bite

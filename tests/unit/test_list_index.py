"""provenance.ListIndex: `prefetch` (one pass for many names) finds what the substring search
finds for each, line for line and in the same order."""

from __future__ import annotations

from bundler.provenance import ListIndex

LISTS = (
    ("/.\n/usr\n/usr/lib\n/usr/lib/libz.so.1\n/usr/lib/libz.so.1.2.13\n/usr/share/doc/z/\n",
     "zlib1g:amd64"),
    ("", "empty:amd64"),
    ("/lib/x86_64-linux-gnu/libz.so.1\n/libz.so.1\n/usr/bin/ls", "other:amd64"),
    ("relative/libz.so.1\n/usr/lib/x\n/usr/lib/x/\n", "odd:amd64 (config-files)"),
)
NAMES = ("libz.so.1", "libz.so.1.2.13", "ls", "x", "lib", "usr", "missing", "doc", "z")


def _index() -> ListIndex:
    index = ListIndex()
    for text, label in LISTS:
        index.add(text, label)
    return index


def test_prefetch_finds_what_the_search_finds():
    searched = _index()
    indexed = _index()
    fillers = [f"filler-{number}" for number in range(ListIndex.PREFETCH_AT_LEAST)]
    indexed.prefetch([*NAMES, *fillers])
    assert set(NAMES) <= indexed._found.keys()  # found in the one pass
    for name in NAMES:
        assert indexed.get(name) == searched._search(name), name
    assert indexed.get("libz.so.1") == [("/usr/lib", "zlib1g:amd64"),
                                        ("/lib/x86_64-linux-gnu", "other:amd64"),
                                        ("/", "other:amd64")]
    assert indexed.get("x") == [("/usr/lib", "odd:amd64 (config-files)")]


def test_a_few_names_are_left_to_their_own_searches():
    index = _index()
    index.prefetch(NAMES)
    assert not index._found
    assert index.get("ls") == [("/usr/bin", "other:amd64")]

"""How a missing library's error names the dirs searched: inside the sysroot, said so."""

from __future__ import annotations

from bundler.resolve import Unresolved


def test_dirs_of_the_host_root_are_named_plainly() -> None:
    gone = Unresolved("libgone.so.1", ("prog",), ("/lib", "/usr/lib"), "not found")
    assert gone.describe() == "prog -> libgone.so.1: not found; searched: /lib, /usr/lib"


def test_dirs_of_another_root_are_said_to_be_inside_it() -> None:
    gone = Unresolved("libsqlite3.so.0", ("agent",), ("/lib/aarch64-linux-gnu", "/lib"),
                      "not found", "/usr/aarch64-linux-gnu")
    assert gone.describe() == ("agent -> libsqlite3.so.0: not found; searched in the sysroot "
                               "/usr/aarch64-linux-gnu: /lib/aarch64-linux-gnu, /lib")


def test_nothing_searched_names_no_dirs() -> None:
    refused = Unresolved("libx.so", ("prog",), (), "path 'libx.so' is relative", "/srv/root")
    assert refused.describe() == "prog -> libx.so: path 'libx.so' is relative"


def test_the_artifacts_words_name_the_build_root_not_where_it_lies() -> None:
    """The manifest's `missing` and the report carry the placeless line: the same root at
    two places must give the same bytes (tests/integration/test_same_bytes.py)."""
    gone = Unresolved("libsqlite3.so.0", ("agent",), ("/lib",), "not found", "/srv/ci/7/root")
    assert gone.describe(placeless=True) == (
        "agent -> libsqlite3.so.0: not found; searched in the build root: /lib")
    host = Unresolved("libgone.so.1", ("prog",), ("/lib",), "not found")
    assert host.describe(placeless=True) == host.describe()

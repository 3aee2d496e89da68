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

"""start_modes: what the report says holds in each way an artifact can be started."""

from __future__ import annotations

from bundler.start_modes import start_modes

LOADER = "ld-linux-x86-64.so.2"


def test_four_modes_in_a_fixed_order() -> None:
    modes = start_modes("native", True, LOADER, False)
    assert [m.how for m in modes] == [
        "at the prefix, through bin/NAME or a symlink to it",
        "at the prefix, libexec/NAME directly (systemd ExecStart)",
        "elsewhere, through bin/NAME",
        "elsewhere, libexec/NAME directly",
    ]
    assert modes[3].holds.startswith("fails with 'No such file or directory'")


def test_argv0_depends_on_the_launcher_at_the_prefix_and_the_loader_elsewhere() -> None:
    native = start_modes("native", True, LOADER, False)
    sh = start_modes("sh", True, LOADER, False)
    assert native[0].holds.startswith("argv[0] as the caller gave it (a symlink's own name too)")
    assert sh[0].holds.startswith("argv[0] is PREFIX/libexec/NAME (a sh launcher cannot")
    assert native[2].holds.startswith("argv[0] as the caller gave it; ")
    old = start_modes("native", False, LOADER, False)
    assert old[2].holds.startswith("argv[0] is the libexec/ path (this glibc's loader has no "
                                   "--argv0)")
    assert native[1] == sh[1] == old[1]  # started directly: nothing of the launcher's matters


def test_privilege_holds_only_at_the_prefix() -> None:
    plain = start_modes("sh", True, LOADER, False)
    privileged = start_modes("sh", True, LOADER, True)
    assert privileged[0].holds == plain[0].holds + "; setuid/capabilities hold (installed by root)"
    assert privileged[2] == plain[2]
    assert "setuid and capabilities are lost" in privileged[2].holds


def test_the_loader_is_named_as_ps_shows_it() -> None:
    (elsewhere,) = [m for m in start_modes("sh", True, LOADER, False)
                    if m.how == "elsewhere, through bin/NAME"]
    assert f"/proc/self/exe is lib/{LOADER}" in elsewhere.holds
    assert "ps/pidof/top show ld-linux-x86-64;" in elsewhere.holds  # comm: 15 characters

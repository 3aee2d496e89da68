"""The version-aware rules of the Go static diagnosis (issue 17), on small evidence records.

Each rule is a pure function of the build info and a few facts, so these records are
written by hand: module lines as `go version -m` prints them, function names as a binary's
.symtab holds them. The toolchain-backed checks (the printed command really links with the
predicted warnings) are in tests/integration/test_go_diagnosis_versions.py.
"""

from __future__ import annotations

import shlex

import pytest

from bundler.diagnose import (
    GoEvidence,
    containerd_rule,
    diagnose,
    go_build_command,
    module_version,
    version_key,
)
from bundler.golang import parse_modinfo

CTR = "github.com/containerd/containerd"
CTR2 = "github.com/containerd/containerd/v2"
SQLITE = "github.com/mattn/go-sqlite3"
SETTINGS = "build\tCGO_ENABLED=1\nbuild\tGOARCH={arch}\nbuild\tGOOS=linux\n"


def modinfo(*deps: str, arch: str = "amd64", tags: str = "", main: str = "example.com/a") -> str:
    text = f"path\t{main}\nmod\t{main}\t(devel)\t\n" if main else "path\t_/tmp/w/agent\n"
    text += "".join(f"{d}\n" for d in deps)
    if tags:
        text += f"build\t-tags={tags}\n"
    return text + SETTINGS.format(arch=arch)


def evidence(text: str, functions: set[str] = frozenset(), **changes) -> GoEvidence:
    fields = dict(info=parse_modinfo("go1.19.8", text), functions=frozenset(functions),
                  imports=frozenset(), needed=(), needs_libm=False, missing_static=(),
                  program_name="agent", host_goarch="amd64")
    fields.update(changes)
    return GoEvidence(**fields)


def causes(ev: GoEvidence) -> dict:
    return {c.code: c for c in diagnose(ev).causes}


# -- containerd --------------------------------------------------------------------------
@pytest.mark.parametrize(("version", "tags", "names"), [
    ("v1.5.18", ("static_build",), "v1.5.18 (before 1.7.25 / 2.0.2)"),
    ("v1.6.20", ("static_build",), "v1.6.20 (before 1.7.25 / 2.0.2)"),
    ("1.6.20+unknown", ("static_build",), "1.6.20+unknown (before"),  # version.go's form
    ("v1.7.24", ("static_build",), "v1.7.24 (before"),
    ("v1.7.25", ("no_dynamic_plugins",), "v1.7.25 (>= 1.7.25 / >= 2.0.2)"),
    ("v1.7.30", ("no_dynamic_plugins",), "v1.7.30 (>="),
    ("v2.0.0", ("static_build",), "v2.0.0 (before"),
    ("v2.0.1", ("static_build",), "v2.0.1 (before"),
    ("v2.0.2", ("no_dynamic_plugins",), "v2.0.2 (>="),
    ("v2.1.3", ("no_dynamic_plugins",), "v2.1.3 (>="),
    (None, ("static_build", "no_dynamic_plugins"), "version unknown"),
])
def test_containerd_rule_by_version(version: str | None, tags: tuple[str, ...],
                                    names: str) -> None:
    got_tags, rule = containerd_rule(version)
    assert got_tags == tags
    assert names in rule


def test_containerd_16_gets_static_build_and_names_the_file() -> None:
    ev = evidence(modinfo(f"dep\t{CTR}\tv1.6.20\th1:x="), {"plugin.open"})
    cause = causes(ev)["containerd-plugins"]
    assert cause.tags == ("static_build",)
    assert "plugin/plugin_go18.go is built under amd64 && !static_build" in cause.rule
    assert cause.evidence == ("plugin.open", f"{CTR} v1.6.20")
    assert "static_build" in shlex.split(diagnose(ev).command)


def test_no_dynamic_plugins_without_effect_is_named() -> None:
    """A static build of 1.6 with the tag the old diagnosis advised still has plugin.open."""
    ev = evidence(modinfo(f"dep\t{CTR}\tv1.6.20\th1:x=", tags="no_dynamic_plugins"),
                  {"plugin.open"})
    cause = causes(ev)["containerd-plugins"]
    assert "-tags no_dynamic_plugins was given but has no effect" in cause.explanation
    assert flag_tags(diagnose(ev).command) == ["no_dynamic_plugins", "static_build"]


def test_directory_replacement_uses_the_version_read_there() -> None:
    text = modinfo(f"dep\t{CTR}\tv1.6.20\th1:x=\n=>\t/usr/share/gocode/src/{CTR}\t(devel)")
    read = ((CTR, "1.6.20+unknown", f"/usr/share/gocode/src/{CTR}/version/version.go"),)
    ev = evidence(text, {"plugin.open"}, directory_versions=read)
    assert module_version(ev, CTR) == (
        "1.6.20+unknown", f"{CTR} => /usr/share/gocode/src/{CTR}: version 1.6.20+unknown read "
        f"from /usr/share/gocode/src/{CTR}/version/version.go")
    assert causes(ev)["containerd-plugins"].tags == ("static_build",)


def test_unreadable_directory_says_unknown_and_gives_every_range() -> None:
    text = modinfo(f"dep\t{CTR}\tv1.6.20\th1:x=\n=>\t../containerd\t")
    ev = evidence(text, {"plugin.open"})
    assert module_version(ev, CTR) == (
        None, f"{CTR} => ../containerd (a directory; its version could not be read)")
    cause = causes(ev)["containerd-plugins"]
    assert cause.tags == ("static_build", "no_dynamic_plugins")
    assert "version unknown" in cause.rule and "from 1.7.25 and 2.0.2" in cause.rule
    assert "upgrade" not in cause.fix


def test_gopath_containerd_is_found_by_its_functions() -> None:
    ev = evidence(modinfo(main=""), {"plugin.open", f"{CTR}/plugin.loadPlugins"})
    cause = causes(ev)["containerd-plugins"]
    assert cause.evidence[-1] == f"{CTR} (a GOPATH build: no module version recorded)"
    assert cause.tags == ("static_build", "no_dynamic_plugins")


def test_containerd_plugin_cause_is_amd64_only() -> None:
    arm = diagnose(evidence(modinfo(f"dep\t{CTR}\tv1.6.20\th1:x=", arch="arm64")))
    assert arm.causes == ()
    assert any("amd64 only: this arm64 build has none" in n for n in arm.notes)
    amd = diagnose(evidence(modinfo(f"dep\t{CTR}\tv1.6.20\th1:x=")))
    assert amd.notes == ()


def test_containerd_v2_module_is_recognised() -> None:
    ev = evidence(modinfo(f"dep\t{CTR2}\tv2.0.4\th1:x="), {"plugin.open"})
    assert causes(ev)["containerd-plugins"].tags == ("no_dynamic_plugins",)


def test_plugin_without_containerd_has_no_tag() -> None:
    cause = causes(evidence(modinfo(), {"plugin.open"}))["go-plugin"]
    assert cause.tags == () and cause.remains and "no tag removes it" in cause.rule


# -- go-sqlite3 ----------------------------------------------------------------------------
LOADS = {f"{SQLITE}._Cfunc_sqlite3_load_extension", f"{SQLITE}.(*SQLiteConn).exec"}


def test_upstream_sqlite_amalgamation_loses_the_warning() -> None:
    ev = evidence(modinfo(f"dep\t{SQLITE}\tv1.14.22\th1:x="), LOADS | {"unixDlOpen"})
    found = causes(ev)
    assert list(found) == ["sqlite-load-extension"]
    assert "amalgamation" in found["sqlite-load-extension"].rule
    assert diagnose(ev).remaining == ()


@pytest.mark.parametrize("how", ["tag", "needed", "debian-dir", "dir-without-amalgamation"])
def test_system_libsqlite3_keeps_the_warning(how: str) -> None:
    dep = f"dep\t{SQLITE}\tv1.14.16\th1:x="
    changes: dict = {}
    text = modinfo(dep, tags="libsqlite3") if how == "tag" else modinfo(dep)
    if how == "needed":
        changes["needed"] = ("libsqlite3.so.0", "libc.so.6")
    if how == "debian-dir":
        text = modinfo(dep + f"\n=>\t/usr/share/gocode/src/{SQLITE}\t")
    if how == "dir-without-amalgamation":
        text = modinfo(dep + "\n=>\t/src/go-sqlite3\t(devel)")
        changes["sqlite_amalgamation"] = False
    ev = evidence(text, LOADS, **changes)
    found = causes(ev)
    assert list(found) == ["sqlite-load-extension", "system-libsqlite3"]
    assert "libsqlite3.a" in found["system-libsqlite3"].explanation
    assert "libsqlite3.a keeps unixDlOpen" in found["sqlite-load-extension"].rule
    assert diagnose(ev).remaining == (
        "Using 'dlopen' in statically linked applications (unixDlOpen in libsqlite3.a)",)


def test_directory_with_amalgamation_is_upstream() -> None:
    text = modinfo(f"dep\t{SQLITE}\tv1.14.16\th1:x=\n=>\t/src/go-sqlite3\t(devel)")
    ev = evidence(text, LOADS, sqlite_amalgamation=True)
    assert list(causes(ev)) == ["sqlite-load-extension"]


def test_gopath_sqlite_is_found_by_its_functions() -> None:
    """No module info: the Go functions prove go-sqlite3 is in; DT_NEEDED says whose SQLite."""
    dynamic = evidence(modinfo(main=""), LOADS, needed=("libsqlite3.so.0", "libc.so.6"))
    assert list(causes(dynamic)) == ["sqlite-load-extension", "system-libsqlite3"]
    static = diagnose(evidence(modinfo(main=""), LOADS))
    assert [c.code for c in static.causes] == ["sqlite-load-extension"]
    assert static.remaining == ()
    assert any("where SQLite comes from is unknown" in n for n in static.notes)


# -- net and os/user -----------------------------------------------------------------------
def test_net_and_user_rules() -> None:
    ev = evidence(modinfo(), {"net._C2func_getaddrinfo", "os/user._Cfunc_mygetpwuid_r"})
    found = causes(ev)
    assert found["cgo-dns"].tags == ("netgo",) and "netgo" in found["cgo-dns"].rule
    assert found["cgo-user"].tags == ("osusergo",) and "osusergo" in found["cgo-user"].rule
    done = evidence(modinfo(tags="netgo,osusergo"),
                    {"net._C2func_getaddrinfo", "os/user._Cfunc_mygetpwuid_r"})
    assert causes(done) == {}


def test_version_key() -> None:
    assert version_key("v1.6.20") == (1, 6, 20)
    assert version_key("1.6.20~ds1") == (1, 6, 20)
    assert version_key("(devel)") is None and version_key(None) is None


# -- the printed command -------------------------------------------------------------------
def flag_tags(command: str) -> list[str]:
    words = shlex.split(command)
    return words[words.index("-tags") + 1].split(",")


def test_gopath_command_builds_the_directory() -> None:
    """`_/tmp/w/agent` is what Go names a package outside GOPATH; `go build` cannot take it."""
    info = parse_modinfo("go1.19.8", modinfo(main=""))
    command = go_build_command(info, [], "agent", "amd64")
    assert command.startswith("cd /tmp/w/agent && GO111MODULE=off CGO_ENABLED=1 ")
    assert shlex.split(command)[-1] == "." and "_/" not in command


def test_gopath_command_inside_gopath_names_the_import_path() -> None:
    info = parse_modinfo("go1.19.8", modinfo(main="").replace("_/tmp/w/agent", "example.com/a"))
    ev = evidence(modinfo(main="").replace("_/tmp/w/agent", "example.com/a"))
    assert shlex.split(go_build_command(info, [], "agent", "amd64"))[-1] == "example.com/a"
    assert any("(it holds example.com/a)" in n for n in diagnose(ev).notes)


@pytest.mark.parametrize(("arch", "extra", "cc"), [
    ("arm64", "", "CC=aarch64-linux-gnu-gcc"),
    ("arm", "build\tGOARM=7\n", "CC=arm-linux-gnueabihf-gcc"),
    ("amd64", "", None),
])
def test_cross_command_names_the_cross_compiler(arch: str, extra: str, cc: str | None) -> None:
    info = parse_modinfo("go1.19.8", modinfo(arch=arch) + extra)
    words = shlex.split(go_build_command(info, [], "agent", "amd64"))
    env = words[:words.index("go")]
    assert (cc in env) if cc else not any(w.startswith("CC=") for w in env)
    assert f"GOARCH={arch}" in env
    assert ("GOARM=7" in env) == (arch == "arm")


def test_tag_without_effect_dates_an_unknown_containerd() -> None:
    """GOPATH build, no version: no_dynamic_plugins given and plugin.open still in means the
    containerd predates the tag, so static_build is the one that works."""
    ev = evidence(modinfo(main="", tags="netgo,no_dynamic_plugins"),
                  {"plugin.open", f"{CTR}/plugin.loadPlugins"})
    cause = causes(ev)["containerd-plugins"]
    assert cause.tags == ("static_build",)
    assert "predates 1.7.25 / 2.0.2" in cause.rule
    assert "no_dynamic_plugins was given but has no effect" in cause.explanation
    assert flag_tags(diagnose(ev).command) == ["netgo", "no_dynamic_plugins", "static_build"]


def test_no_cgo_left_means_cgo_disabled() -> None:
    """containerd 1.6's plugin was the only cgo package: with static_build the program is
    pure Go, and `-linkmode external` without runtime/cgo would trap at start."""
    ev = evidence(modinfo(f"dep\t{CTR}\tv1.6.20\th1:x=", tags="netgo"),
                  {"plugin.open", "plugin._Cfunc_pluginOpen", "local.plugin._Cfunc_pluginOpen",
                   "main.main"})
    diagnosis = diagnose(ev)
    words = shlex.split(diagnosis.command)
    assert words[0] == "CGO_ENABLED=0" and "-ldflags" not in words
    assert any("no package uses cgo" in n for n in diagnosis.notes)
    # go-sqlite3 keeps cgo: the external static link stays.
    with_sqlite = diagnose(evidence(modinfo(f"dep\t{CTR}\tv1.6.20\th1:x="),
                                    {"plugin._Cfunc_pluginOpen", f"{SQLITE}._Cfunc_sqlite3_open"}))
    assert shlex.split(with_sqlite.command)[0] == "CGO_ENABLED=1"
    assert "-linkmode external" in with_sqlite.command


def test_goarch_from_the_elf_machine_when_the_build_info_has_none() -> None:
    """Go before 1.18 records no build settings: the ELF machine says arm64, so CC is set."""
    text = "path\texample.com/a\nmod\texample.com/a\t(devel)\t\n"
    ev = evidence(text, {"net._C2func_getaddrinfo", f"{SQLITE}._Cfunc_sqlite3_open"},
                  elf_goarch="arm64")
    words = shlex.split(diagnose(ev).command)
    assert words[:4] == ["CC=aarch64-linux-gnu-gcc", "CGO_ENABLED=1", "GOOS=linux",
                         "GOARCH=arm64"]

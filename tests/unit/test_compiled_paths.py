"""compiled_paths: the absolute paths compiled into a program, told load-bearing from noise.

The decisions are pure functions over bytes and build-root facts (tested with both made by
hand); the reading is tested on real gcc-built programs over a fake build root (Sysroot
over a temp dir) and calibrated on the real Debian 12 programs of issue 20, which
scripts/test installs (each test skips where its program is absent).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest
from support.builders import DIGEST, artifact_summary, hazard
from support.schemas import validate
from support.toolchain import gcc

from bundler.carry import Carry
from bundler.choices import GATE_NAMES
from bundler.compiled_paths import (
    LOCALE_MARKERS,
    LOCALE_NAME,
    CompiledPath,
    CompiledPaths,
    Found,
    RootEntry,
    classify,
    dropped,
    has_name,
    joined_candidates,
    locale_suggestions,
    locales_in,
    ordered,
    paths_in,
    read_rodata,
    remedy,
    scan_plan,
    stem,
)
from bundler.gates import failed_gates
from bundler.hazards import uncarried_hazards
from bundler.plan import BundlePlan, StagedFile
from bundler.report_model import (
    CarriedLine,
    Carrying,
    EnvLine,
    InputSummary,
    Needs,
    RecipeLine,
    Report,
    assemble,
)
from bundler.report_render import report_json, report_markdown, report_text
from bundler.sysroot import Sysroot
from bundler.verdict import decide

STEMS = frozenset({"prog"})
DATA = RootEntry(True, "/opt/p/share/data.txt", is_file=True)
HELPERS = RootEntry(True, "/usr/lib/p", is_dir=True, holds_executables=True, holds_files=True)
PLUGINS = RootEntry(True, "/usr/lib/p/mods", is_dir=True, holds_libraries=True,
                    holds_files=True)


# --- what the bytes hold ---------------------------------------------------------------

def test_whole_strings_are_paths_text_mentions_are_not_and_templates_are_dropped() -> None:
    data = (b"\0/usr/lib/p\0/etc/p.conf\0usage: see /usr/share/p/help for more\0"
            b"/dev/urandom (or equivalent) not found\0/proc/%d/fd\0/tmp/p.XXXXXX\0"
            b"/usr/bin:/bin\0x/tail/merged\0/\0")
    found = {f.path: f for f in paths_in(data)}
    assert found["/usr/lib/p"] == Found("/usr/lib/p", True)
    assert found["/etc/p.conf"].whole
    assert found["/usr/share/p/help"] == Found("/usr/share/p/help", False)
    assert found["/dev/urandom"] == Found("/dev/urandom", False)
    assert found["/usr/bin"].listed and found["/bin"].listed  # a search path's parts
    assert not {"/proc/%d/fd", "/tmp/p.XXXXXX", "/tail/merged", "/"} & set(found)


def test_a_name_is_held_whole_or_as_a_paths_last_part() -> None:
    assert has_name(b"\0gpg-agent\0", "gpg-agent")
    assert has_name(b"\0/agent/gpg-agent\0", "gpg-agent")
    assert not has_name(b"\0gpg-agent-extra\0", "gpg-agent")
    assert not has_name(b"\0a gpg-agent\0", "gpg-agent")


def test_locale_names_are_whole_strings_only() -> None:
    data = b"\0C.UTF-8\0en_US.UTF-8\0need UTF-8\0xx.utf8\0de_DE.utf8\0"
    assert locales_in(data) == ("C.UTF-8", "en_US.UTF-8", "de_DE.utf8")


# --- decisions ----------------------------------------------------------------------

@pytest.mark.parametrize("path", [
    "/dev/null", "/dev/tty", "/proc/self/exe", "/tmp", "/run/p.pid", "/var/tmp/x", "/",
    "/usr", "/usr/bin", "/etc", "/lib64/ld-linux-x86-64.so.2",
    "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "/etc/ld.so.cache", "/etc/nsswitch.conf",
    "/usr/lib/locale", "/usr/lib/locale/C.utf8", "/usr/lib/x86_64-linux-gnu/gconv",
    "/etc/passwd", "/etc/resolv.conf", "/etc/localtime", "/etc/ssl/certs",
    "/etc/ssl/certs/ca-certificates.crt", "/bin/sh", "/usr/bin/env",
    "/usr/lib/debug/.build-id", "/usr/share/doc/p", "/usr/share/man/man1",
    "/usr/share/gocode/src/github.com/mattn/go-sqlite3/sqlite3.go", "/home/me/p/src/main.c"])
def test_noise_glibcs_own_and_the_hosts_own_are_dropped(path: str) -> None:
    assert dropped(path)


@pytest.mark.parametrize("path", ["/usr/lib/git-core", "/usr/share/perl/5.36", "/usr/lib/ssl",
                                  "/usr/bin/gpg-agent", "/etc/gitconfig", "/opt/p"])
def test_program_paths_are_kept(path: str) -> None:
    assert not dropped(path)


@pytest.mark.parametrize("entry,kind,load_bearing", [
    (DATA, "data file", True),
    (HELPERS, "helper dir", True),
    (PLUGINS, "plugin dir", True),
    (RootEntry(True, "/opt/p/share", is_dir=True, holds_files=True), "data dir", True),
    (RootEntry(True, "/opt/p/empty", is_dir=True), "data dir", False),
    (RootEntry(True, "/opt/p/mod.so", is_file=True, elf=True, shared_object=True),
     "plugin", True),
    (RootEntry(True, "/opt/p/bin/helper", is_file=True, executable=True, script=True),
     "helper program", True),
    (RootEntry(True, "/usr/lib/p/utempter", is_file=True, executable=True, elf=True,
               privileged=True), "privileged helper", False),
    (RootEntry(True, "/etc/p.conf", is_file=True), "config file", False),
    (RootEntry(True, "/etc/p", is_dir=True, holds_files=True), "config dir", False),
    (RootEntry(True, "/usr/share/locale", is_dir=True, holds_files=True), "locale dir", False),
    (RootEntry(True, "/usr/share/zoneinfo", is_dir=True, holds_files=True), "zoneinfo", False),
    (RootEntry(True, "/var/lib/p", is_dir=True, holds_files=True), "state", False),
    (RootEntry(True, "/lib/terminfo", is_dir=True, holds_files=True), "terminfo", False),
])
def test_what_the_build_root_holds_decides_the_kind(entry: RootEntry, kind: str,
                                                     load_bearing: bool) -> None:
    assert entry.resolved is not None
    found = classify(entry.resolved, entry, ("libexec/prog",), True, False, STEMS)
    assert found is not None
    assert (found.kind, found.load_bearing) == (kind, load_bearing), found.why
    assert found.found_in == ("libexec/prog",) and not found.carried


@pytest.mark.parametrize("path", ["/usr/lib/x86_64-linux-gnu/sasl2",
                                  "/usr/lib/x86_64-linux-gnu/krb5/plugins",
                                  "/usr/lib/x86_64-linux-gnu/engines-3",
                                  "/usr/share/publicsuffix/public_suffix_list.dafsa"])
def test_what_well_known_libraries_load_only_when_asked_is_not_load_bearing(path: str) -> None:
    entry = RootEntry(True, path, is_dir=True, holds_libraries=True, holds_files=True)
    found = classify(path, entry, ("lib/libx.so.1",), True, False, STEMS)
    assert found is not None and not found.load_bearing and found.why
    modules = "/usr/lib/x86_64-linux-gnu/ossl-modules"  # providers: the openssl
    needed = classify(modules, dataclasses.replace(entry, resolved=modules),
                      ("lib/libcrypto.so.3",), True, False, STEMS)
    assert needed is not None and needed.load_bearing


def test_a_program_in_a_path_dir_is_a_helper_only_under_the_programs_own_name() -> None:
    agent = RootEntry(True, "/usr/bin/prog-agent", is_file=True, executable=True, elf=True)
    editor = RootEntry(True, "/usr/bin/vi", is_file=True, executable=True, elf=True)
    own = classify("/usr/bin/prog-agent", agent, ("libexec/prog",), True, False, STEMS)
    other = classify("/usr/bin/vi", editor, ("libexec/prog",), True, False, STEMS)
    assert own is not None and (own.kind, own.load_bearing) == ("helper program", True)
    assert other is not None and (other.kind, other.load_bearing) == ("host tool", False)


def test_absent_text_only_symlinked_into_the_host_and_carried_paths() -> None:
    assert classify("/opt/gone", RootEntry(False), ("libexec/prog",), True, False, STEMS) is None
    text = classify(DATA.resolved or "", DATA, ("libexec/prog",), False, False, STEMS)
    assert text is not None and not text.load_bearing and "text" in text.why
    # /usr/lib/ssl/certs -> /etc/ssl/certs: the host's CA store, whatever the spelling
    certs = RootEntry(True, "/etc/ssl/certs", is_dir=True, holds_files=True)
    assert classify("/usr/lib/ssl/certs", certs, ("lib/libcrypto.so.3",), True, False,
                    STEMS) is None
    carried = classify("/usr/lib/p", HELPERS, ("libexec/prog",), True, True, STEMS)
    assert carried is not None and carried.carried and carried.load_bearing


def test_a_path_dir_is_joined_only_with_names_of_the_programs_stem() -> None:
    found = (Found("/usr/bin", True), Found("/bin", True, listed=True))
    listing = {"/usr/bin": ["prog", "prog-agent", "progress", "vi", "true"],
               "/bin": ["prog-agent"]}
    assert joined_candidates(found, listing, STEMS) == (
        ("/usr/bin", "prog"), ("/usr/bin", "prog-agent"), ("/usr/bin", "progress"))
    assert stem("gpg-agent") == "gpg" and stem("libcrypto.so.3") == "crypto"
    assert stem("python3.11") == "python"


def test_uncarried_load_bearing_first_then_carried_then_the_rest() -> None:
    rest = CompiledPath("/etc/a", "config file", ("p",), False, False, "x")
    held = CompiledPath("/b", "data dir", ("p",), True, True, "x")
    need = CompiledPath("/c", "data dir", ("p",), True, False, "x")
    scan = CompiledPaths(ordered([rest, held, need]), ())
    assert scan.paths == (need, held, rest)
    assert scan.uncarried == (need,)
    assert remedy(need) == "--data /c"
    assert remedy(dataclasses.replace(need, kind="helper program")) == "--helper /c"


def test_a_locale_read_by_name_is_suggested_unless_carried() -> None:
    found = {"libexec/tmux": ("C.UTF-8", "en_US.UTF-8")}
    assert locale_suggestions(found, frozenset()) == (
        "tmux reads the locale C.UTF-8 (or en_US.UTF-8) by name: add --locale C.UTF-8",)
    assert locale_suggestions(found, frozenset({"C.utf8"})) == ()
    assert locale_suggestions(found, frozenset({"en_US.utf8"})) == ()  # one it tries


# --- hazard and verdict ------------------------------------------------------------------

def test_an_uncarried_load_bearing_path_is_a_high_hazard_that_lowers_the_verdict() -> None:
    need = [CompiledPath(f"/opt/p/{n}", "data dir", ("libexec/prog",), True, False, "x")
            for n in range(7)]
    noise = CompiledPath("/etc/p", "config dir", ("libexec/prog",), False, False, "x")
    assert uncarried_hazards(None) == ()
    assert uncarried_hazards(CompiledPaths((noise,), ())) == ()
    carried = dataclasses.replace(need[0], carried=True)
    assert uncarried_hazards(CompiledPaths((carried,), ())) == ()
    (found,) = uncarried_hazards(CompiledPaths(tuple(need), ()))
    assert (found.code, found.subject, found.severity) == ("uncarried-files", "artifact", "high")
    assert found.evidence[0] == "/opt/p/0 (data dir, in libexec/prog)"
    assert found.evidence[-1].startswith("and 2 more")
    assert "--data PATH, --helper PROG, or --from-package" in found.action
    plain = decide(None, None, None, None, (hazard("other", "low"),))
    lowered = decide(None, None, None, None, (found,))
    assert plain.headline == "ship the artifact"
    assert lowered.headline != "ship the artifact"
    assert found.action in lowered.fixes


# --- reading real ELF files ----------------------------------------------------------

PROGRAM = r"""
#include <dlfcn.h>
#include <locale.h>
#include <stdio.h>
static const char usage[] = "usage: prog [FILE]\n  FILE defaults to /opt/fake/share/usage.txt\n";
int main(int argc, char **argv) {
    const char *strings[] = {"/opt/fake/share/data.txt", "/etc/passwd", "/dev/null",
        "/opt/fake/libexec", "/opt/fake/plugins", "/etc/fake.conf", "/opt/absent/file",
        "/opt/fake/lib/libfake.so.1", "/usr/bin", "prog-agent", "vi", "/usr/bin/other"};
    setlocale(LC_ALL, "C.UTF-8");
    if (argc > 1) {
        fputs(usage, stderr);
        for (unsigned i = 0; i < sizeof strings / sizeof *strings; i++)
            puts(strings[i]);
    }
    FILE *f = fopen("/opt/fake/share/data.txt", "r");
    return f == NULL;
}
"""


def fake_root(top: Path) -> Sysroot:
    """A build root holding what PROGRAM names (and /etc/passwd, /dev/null)."""
    files = {"opt/fake/share/data.txt": 0o644, "opt/fake/share/usage.txt": 0o644,
             "opt/fake/libexec/helper": 0o755, "opt/fake/plugins/mod.so": 0o644,
             "etc/fake.conf": 0o644, "etc/passwd": 0o644, "dev/null": 0o644,
             "usr/bin/prog-agent": 0o755, "usr/bin/vi": 0o755, "usr/bin/other": 0o755}
    for name, mode in files.items():
        path = top / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\n" if mode & 0o111 else "data\n")
        path.chmod(mode)
    return Sysroot(str(top))


def plan_of(objects: dict[str, str], carried: tuple[Carry, ...] = (),
            extra: tuple[StagedFile, ...] = ()) -> BundlePlan:
    """A plan of these programs and libraries (dest -> source) as scan_plan reads it."""
    files = tuple(StagedFile(dest, "program" if dest.startswith("libexec/") else "library",
                             0o755, source=source) for dest, source in objects.items())
    return BundlePlan(
        name="prog", prefix="/opt/prog", launcher="loader", arch="x86-64",
        loader_name="ld-linux-x86-64.so.2", loader_supports_argv0=True,
        glibc_release="2.36", min_kernel=None,
        programs=tuple(d.split("/")[-1] for d in objects if d.startswith("libexec/")),
        files=files + extra, missing=(), carried=carried)


@pytest.fixture
def built(tmp_path: Path) -> tuple[Path, Sysroot, Path]:
    root = fake_root(tmp_path / "root")
    program = gcc(tmp_path / "bin" / "prog", PROGRAM, "-O2")
    library = gcc(tmp_path / "root" / "opt" / "fake" / "lib" / "libfake.so.1",
                  'const char *where(void) { return "/opt/fake/share"; }', shared=True)
    return program, root, library


def test_the_read_only_data_of_a_real_program_holds_its_strings(built) -> None:
    program, _, _ = built
    found = {f.path: f for f in paths_in(read_rodata(str(program)))}
    for path in ("/opt/fake/share/data.txt", "/etc/passwd", "/opt/fake/libexec", "/usr/bin"):
        assert found[path].whole, path
    assert not found["/opt/fake/share/usage.txt"].whole
    assert "/lib64/ld-linux-x86-64.so.2" not in found  # .interp is not read
    assert locales_in(read_rodata(str(program))) == ("C.UTF-8",)
    assert read_rodata(str(program.parent / "missing")) == b""


def test_scan_plan_reports_what_the_root_holds_outside_the_artifact(built) -> None:
    program, root, library = built
    scan = scan_plan(plan_of({"libexec/prog": str(program),
                              "lib/libfake.so.1": str(library)}), root)
    found = {p.path: p for p in scan.paths}
    assert {p.path: p.kind for p in scan.uncarried} == {
        "/opt/fake/share/data.txt": "data file", "/opt/fake/libexec": "helper dir",
        "/opt/fake/plugins": "plugin dir", "/usr/bin/prog-agent": "helper program",
        # the library's own "/opt/fake/share" (a dir of files)
        "/opt/fake/share": "data dir"}
    assert found["/opt/fake/share"].found_in == ("lib/libfake.so.1",)
    assert '"/usr/bin" + "prog-agent"' in found["/usr/bin/prog-agent"].why
    assert not found["/opt/fake/share/usage.txt"].load_bearing
    assert (found["/etc/fake.conf"].kind, found["/etc/fake.conf"].load_bearing) == (
        "config file", False)
    assert (found["/usr/bin/other"].kind, found["/usr/bin/other"].load_bearing) == (
        "host tool", False)
    # noise, the host's own, absent, a bundled library, names not of its stem
    assert not {"/etc/passwd", "/dev/null", "/opt/absent/file", "/opt/fake/lib/libfake.so.1",
                "/usr/bin/vi", "/usr/bin"} & set(found)
    assert scan.suggestions == ("prog reads the locale C.UTF-8 by name: add --locale C.UTF-8",)
    assert scan.scanned == ("libexec/prog", "lib/libfake.so.1")


def test_carried_trees_and_locales_are_not_asked_for_again(built) -> None:
    program, root, _ = built
    locale = StagedFile("lib/locale/C.utf8/LC_CTYPE", "data", 0o644, source="/dev/null")
    scan = scan_plan(plan_of({"libexec/prog": str(program)},
                             (Carry("/opt/fake", "opt/fake", "--data"),
                              Carry("/usr/bin/prog-agent", "bin/prog-agent", "--helper")),
                             (locale,)), root)
    assert scan.uncarried == () and scan.suggestions == ()
    assert {p.path for p in scan.paths if p.carried} == {
        "/opt/fake/share/data.txt", "/opt/fake/libexec", "/opt/fake/plugins",
        "/usr/bin/prog-agent", "/opt/fake/share/usage.txt",
        "/opt/fake/lib/libfake.so.1"}  # the library, not bundled this time, is carried


# --- calibration on the real Debian 12 programs (issue 20) --------------------------------

def scan_real(*objects: str) -> CompiledPaths:
    for path in objects:
        if not os.path.exists(path):
            pytest.skip(f"{path} is not installed (scripts/test installs it)")
    return scan_plan(plan_of({("lib/" if ".so" in p else "libexec/") + os.path.basename(p): p
                              for p in objects}), Sysroot("/"))


def kinds(scan: CompiledPaths) -> dict[str, str]:
    return {p.path: p.kind for p in scan.uncarried}


def test_git_needs_its_helper_dir() -> None:
    scan = scan_real("/usr/bin/git")
    assert kinds(scan) == {"/usr/lib/git-core": "helper dir"}


def test_gpg_needs_gpg_agent_joined_from_its_bindir_and_its_own_dirs() -> None:
    found = kinds(scan_real("/usr/bin/gpg"))
    assert found["/usr/bin/gpg-agent"] == "helper program"
    assert found["/usr/lib/gnupg"] == "helper dir"
    assert "/usr/share/gnupg" in found
    assert "/bin/true" not in found and "/usr/bin/gpg" not in found


def test_libperl_needs_its_inc_dirs() -> None:
    found = kinds(scan_real("/usr/lib/x86_64-linux-gnu/libperl.so.5.36"))
    assert found["/usr/share/perl/5.36"] == "data dir"
    assert found["/usr/lib/x86_64-linux-gnu/perl/5.36"] == "plugin dir"
    assert not any(path.startswith("/etc") for path in found)


def test_libcrypto_needs_its_config_dir_and_provider_modules() -> None:
    found = kinds(scan_real("/usr/lib/x86_64-linux-gnu/libcrypto.so.3"))
    assert found["/usr/lib/x86_64-linux-gnu/ossl-modules"] == "plugin dir"
    assert "/usr/lib/ssl" in found
    assert "/usr/lib/ssl/certs" not in found  # -> /etc/ssl/certs, the host's CA store


def test_python_holds_nothing_load_bearing_its_recipe_decides() -> None:
    scan = scan_real("/usr/bin/python3.11")
    assert scan.uncarried == ()


def test_tmux_needs_nothing_but_a_locale_it_names() -> None:
    scan = scan_real("/usr/bin/tmux", "/usr/lib/x86_64-linux-gnu/libutempter.so.0",
                     "/usr/lib/x86_64-linux-gnu/libtinfo.so.6")
    assert scan.uncarried == ()
    assert scan.suggestions == (
        "tmux reads the locale C.UTF-8 (or en_US.UTF-8) by name: add --locale C.UTF-8",)


# --- report, gate, JSON ------------------------------------------------------------------

def report_with(scan: CompiledPaths | None, carrying: Carrying | None = None) -> Report:
    summary = InputSummary("/tmp/prog", DIGEST, "x86-64", 100, "ELF", "dynamic", None)
    hazards = uncarried_hazards(scan)
    return assemble(summary, Needs(None, None, (), (), ()), artifact_summary(format="zst"),
                    hazards,
                    None, None, decide(None, None, None, None, hazards),
                    compiled_paths=scan, carrying=carrying)


NEED = CompiledPath("/usr/lib/git-core", "helper dir", ("libexec/git",), True, False,
                    "a dir of programs it executes")
HELD = CompiledPath("/usr/share/git-core", "data dir", ("libexec/git",), True, True,
                    "a dir of files it reads")
NOISE = CompiledPath("/etc/gitconfig", "config file", ("libexec/git",), False, False,
                     "host configuration under /etc: the target's own is read, or none")
CARRYING = Carrying(
    recipes=(RecipeLine("git", "program named git", ("templates stay the host's",)),),
    carried=(CarriedLine("/usr/share/git-core", "usr/share/git-core", "recipe git"),),
    helpers=("git-upload-pack",),
    env=(EnvLine("GIT_EXEC_PATH", "{top}/libexec/git-core", "recipe git", False, ()),
         EnvLine("BUNDLE_X", "{top}/x", "--env", True, ("libexec/git",))),
    notes=("left out /usr/share/git-core/contrib: not needed",))


def test_the_uncarried_files_gate_holds_only_for_an_uncarried_load_bearing_path() -> None:
    held = failed_gates(report_with(CompiledPaths((NEED, HELD, NOISE), ())), GATE_NAMES)
    assert "uncarried-files" in [f.gate for f in held]
    why = next(f.why for f in held if f.gate == "uncarried-files")
    assert "/usr/lib/git-core (helper dir)" in why and "/etc/gitconfig" not in why
    for scan in (None, CompiledPaths((HELD, NOISE), ())):
        assert failed_gates(report_with(scan), ("uncarried-files",)) == ()


def test_the_report_lists_what_is_carried_and_what_is_not() -> None:
    scan = CompiledPaths((NEED, HELD, NOISE), ("git reads the locale C.UTF-8 by name: add "
                                               "--locale C.UTF-8",), ("libexec/git",))
    report = report_with(scan, CARRYING)
    text = report_text(report)
    section = text.split("9. Compiled-in paths")[1]
    lines = [line.strip() for line in section.splitlines()]
    assert "recipe git: program named git" in lines
    assert "/usr/share/git-core -> usr/share/git-core (recipe git)" in lines
    assert ("GIT_EXEC_PATH={top}/libexec/git-core (recipe git; inherited by programs it "
            "starts)") in lines
    assert ("BUNDLE_X={top}/x (--env; scoped: only libexec/git reads it)") in lines
    order = [line.split(":")[0] for line in lines if line.startswith(
        ("NOT CARRIED", "carried:", "not needed"))]
    assert order == ["NOT CARRIED", "carried", "not needed"]
    assert any(line.startswith("NOT CARRIED: /usr/lib/git-core [helper dir, in libexec/git]")
               and line.endswith("-> --data /usr/lib/git-core") for line in lines)
    assert "suggestion: git reads the locale C.UTF-8 by name: add --locale C.UTF-8" in lines
    assert "uncarried-files" in text.split("5. Hazards")[1].split("6. ")[0]
    assert "## 9. Compiled-in paths" in report_markdown(report)


def test_the_json_report_with_its_scan_is_valid_against_the_build_schema() -> None:
    for report in (report_with(CompiledPaths((NEED, HELD, NOISE), ("s",), ("libexec/git",)),
                               CARRYING), report_with(None)):
        data = json.loads(report_json(report))
        validate("build", data)
    assert data["compiled_paths"] is None and data["carrying"] is None


def _locales_one_marker_at_a_time(data: bytes) -> tuple[str, ...]:
    """locales_in as it was written first: a find per marker (the reference)."""
    found = []
    for marker in LOCALE_MARKERS:
        at = data.find(marker)
        while at != -1:
            begin = data.rfind(b"\0", max(0, at - 12), at) + 1
            name = data[begin:at + len(marker) - 1].decode("ascii", "replace")
            if begin and LOCALE_NAME.fullmatch(name):
                found.append(name)
            at = data.find(marker, at + 1)
    return tuple(dict.fromkeys(found))


def test_locale_names_found_in_one_pass_as_marker_by_marker() -> None:
    """The same names in the same order as a find per marker: on the read-only data of the
    host's programs and libc, and on made-up data dense with markers, names and their
    near misses (at the start, adjacent, truncated, in every order)."""
    import random

    checked = 0
    for path in [*sorted(Path("/usr/bin").iterdir())[:400], Path(os.path.realpath(
            "/lib/x86_64-linux-gnu/libc.so.6"))]:
        if path.is_file() and not path.is_symlink():
            data = read_rodata(str(path))
            assert locales_in(data) == _locales_one_marker_at_a_time(data), path
            checked += bool(data)
    assert checked > 100
    pieces = [b"\0", b"C", b"POSIX", b"en_US", b"de_DE", b"xx", b"abcd_EF", b".", b"UTF-8",
              b"utf8", b"UTF8", b"utf-8", b".UTF-8\0", b".utf8\0", b"need ", b"\xff"]
    chooser = random.Random(7)
    for _ in range(3000):
        data = b"".join(chooser.choices(pieces, k=chooser.randint(0, 40)))
        assert locales_in(data) == _locales_one_marker_at_a_time(data), data

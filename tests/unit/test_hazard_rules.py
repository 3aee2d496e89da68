"""hazards.py: the evidence rules of GLIBC-NOTES section 3, on hand-made symbol sets."""

from __future__ import annotations

from support.builders import LIBC, closure, elf, library, program

from bundler import nss
from bundler.hazards import (
    SHOWN,
    artifact_hazards,
    dynamic_hazards,
    static_hazards,
)
from bundler.resolve import closure_objects
from bundler.static import StaticContents

GLIBC = StaticContents(libc="glibc", go_runtime=False)
GLIBC_GO = StaticContents(libc="glibc", go_runtime=True)
STRIPPED_NSS = StaticContents(libc="glibc", go_runtime=False,
                              nss_markers=("libnss_", "nss_files"))


def codes(hazards: tuple) -> list[str]:
    return [h.code for h in hazards]


def test_no_glibc_inside_no_static_hazards() -> None:
    everything = frozenset({"getaddrinfo", "unixDlOpen", "iconv_open"})
    assert static_hazards(StaticContents(libc=None, go_runtime=True), everything) == ()
    assert static_hazards(StaticContents(libc="musl", go_runtime=False), everything) == ()
    assert static_hazards(GLIBC, frozenset({"main", "printf"})) == ()


def test_nss_callers_in_a_static_glibc_program() -> None:
    (hazard,) = static_hazards(GLIBC, frozenset({"main", "getpwnam", "getaddrinfo"}))
    assert (hazard.code, hazard.severity, hazard.subject) == ("static-nss", "high",
                                                              "static build")
    assert hazard.evidence == ("getaddrinfo", "getpwnam")
    assert hazard.action.startswith("keep getaddrinfo/getpw*/getgr* out of the static build")
    (go,) = static_hazards(GLIBC_GO, frozenset({"getaddrinfo"}))
    assert go.action == "build with -tags netgo,osusergo (Go's own resolver and user lookups)"


def test_evidence_is_capped() -> None:
    many = frozenset(sorted(["getpwnam", "getpwuid", "getgrnam", "getgrgid", "getaddrinfo",
                             "gethostbyname", "getservbyname", "initgroups", "getspnam",
                             "glob"]))
    (hazard,) = static_hazards(GLIBC, many)
    assert len(hazard.evidence) == SHOWN
    assert list(hazard.evidence) == sorted(many)[:SHOWN]


def test_dlopen_itself_proves_nothing_its_callers_do() -> None:
    assert static_hazards(GLIBC, frozenset({"dlopen", "_dl_open", "dlmopen"})) == ()
    (hazard,) = static_hazards(GLIBC, frozenset({
        "dlopen", "unixDlOpen", "main._Cfunc_sqlite3_load_extension", "plugin.open"}))
    assert (hazard.code, hazard.severity) == ("static-dlopen", "high")
    assert hazard.evidence == ("main._Cfunc_sqlite3_load_extension", "plugin.open",
                               "unixDlOpen")


def test_a_stripped_static_program_is_judged_by_strings() -> None:
    nss_hazard, unknown = static_hazards(STRIPPED_NSS, None)
    assert nss_hazard.code == "static-nss"
    assert nss_hazard.evidence == ("string 'libnss_'", "string 'nss_files'")
    assert (unknown.code, unknown.severity, unknown.evidence) == (
        "static-dlopen-unknown", "low", ("stripped: no .symtab",))
    assert codes(static_hazards(GLIBC, None)) == ["static-dlopen-unknown"]
    # with symbols, the strings alone are not evidence: a program without callers is clean
    assert static_hazards(STRIPPED_NSS, frozenset({"main"})) == ()


def test_iconv_in_a_static_program_is_medium() -> None:
    hazards = static_hazards(GLIBC, frozenset({"iconv_open", "getgrnam"}))
    assert codes(hazards) == ["static-nss", "static-iconv"]
    assert hazards[1].severity == "medium" and hazards[1].evidence == ("iconv_open",)


def test_closure_objects_leave_glibc_and_run_time_libraries_to_glibc() -> None:
    foo = library("libfoo.so.1")
    gcc_s = library("libgcc_s.so.1", runtime=True)
    libm = library("libm.so.6")
    prog = program(needed=("libfoo.so.1", "libm.so.6", "libc.so.6"))
    objects = closure_objects(closure(prog, (foo, libm, LIBC, gcc_s)))
    assert [label for label, _ in objects] == ["prog", "libfoo.so.1"]
    assert objects[0][1] is prog and objects[1][1] is foo.facts


def test_a_plain_dynamic_program_has_no_hazards() -> None:
    prog = program(imported=("printf", "malloc"))
    assert dynamic_hazards(prog, [("prog", prog)]) == ()


def test_privileged_programs() -> None:
    prog = program(setuid=True, capabilities=b"\x01")
    (hazard,) = dynamic_hazards(prog, [("prog", prog)])
    assert (hazard.code, hazard.severity, hazard.subject) == ("privileged", "high", "program")
    assert hazard.evidence == ("setuid", "file capabilities")
    (sgid,) = dynamic_hazards(program(setgid=True), [])
    assert sgid.evidence == ("setgid",)


def test_imports_are_labelled_by_the_object_that_imports_them() -> None:
    prog = program(imported=("dlopen", "getpwuid"))
    lib = elf("/usr/lib/libfoo.so.1", imported=("getaddrinfo", "iconv_open", "dlmopen"))
    hazards = dynamic_hazards(prog, [("prog", prog), ("libfoo.so.1", lib)])
    assert codes(hazards) == ["dynamic-dlopen", "dynamic-nss", "dynamic-iconv"]
    assert [h.severity for h in hazards] == ["medium", "medium", "low"]
    assert hazards[0].evidence == ("libfoo.so.1: dlmopen", "prog: dlopen")
    assert hazards[1].evidence == ("libfoo.so.1: getaddrinfo", "prog: getpwuid")
    assert hazards[2].evidence == ("libfoo.so.1: iconv_open",)


def test_what_the_artifact_does_about_nss_and_iconv_is_the_action() -> None:
    prog = program(imported=("getpwnam", "iconv_open"))
    objects = [("prog", prog)]
    bare_nss, bare_iconv = dynamic_hazards(prog, objects)
    assert bare_nss.action.endswith("their lookups fail quietly (--nss)")
    assert bare_iconv.action.endswith("(--gconv bundles them)")
    nss_b, iconv_b = dynamic_hazards(prog, objects, frozenset({"NSS modules", "gconv modules"}))
    assert nss_b.action.startswith("the bundled NSS modules")
    assert iconv_b.action.startswith("the bundled gconv modules serve the charsets")
    cover = nss.coverage(True, ("libnss_sss.so.2",), "2.36", (2, 36))
    covered, _ = dynamic_hazards(prog, objects, frozenset({"NSS modules"}), cover)
    assert covered.action.startswith(str(nss.brief(cover)) + ". A static build instead: ")
    assert nss.static_lookups(nss.GLIBC_STATIC) in covered.action


def test_a_program_that_sets_its_locale_is_told_what_the_artifact_carries() -> None:
    """setlocale or newlocale: low; without bundled locales the action says the artifact
    runs in C under a UTF-8 LANG and names --locale; with them, that they serve."""
    prog = program(imported=("setlocale",))
    lib = elf("/usr/lib/libfoo.so.1", imported=("newlocale", "uselocale"))
    objects = [("prog", prog), ("libfoo.so.1", lib)]
    (bare,) = dynamic_hazards(prog, objects)
    assert (bare.code, bare.severity, bare.subject) == ("dynamic-locale", "low", "program")
    assert bare.evidence == ("libfoo.so.1: newlocale", "prog: setlocale")
    assert "it runs in C" in bare.action and "--locale C.UTF-8" in bare.action
    (served,) = dynamic_hazards(prog, objects, frozenset({"locales"}))
    assert served.action.startswith("the bundled locales")
    other = program(imported=("uselocale", "localeconv"))  # neither chooses a locale
    assert dynamic_hazards(other, [("prog", other)]) == ()


def test_artifact_hazards() -> None:
    (loader_start,) = artifact_hazards("loader")
    assert (loader_start.code, loader_start.severity, loader_start.subject) == (
        "loader-start-proc-self-exe", "low", "artifact")
    hazards = artifact_hazards("env", ("libGL.so.1", "libcuda.so.1"))
    assert codes(hazards) == ["loader-start-proc-self-exe", "excluded-libraries",
                              "env-launcher-leak"]
    assert hazards[1].evidence == ("libGL.so.1", "libcuda.so.1")
    assert hazards[1].severity == "medium" and hazards[2].severity == "high"


def test_an_unreachable_sqlite_loader_is_not_high() -> None:
    """go-sqlite3 with sqlite_omit_load_extension on a system libsqlite3.a: unixDlOpen is
    linked in but nothing turns extension loading on. Reachable again as soon as the Go
    side enables or loads extensions; a C program is not judged (kept high)."""
    omitted = frozenset({"unixDlOpen", "main.main", "runtime.main"})
    (idle,) = static_hazards(GLIBC_GO, omitted)
    assert (idle.code, idle.severity, idle.evidence) == (
        "static-dlopen-unreachable", "low", ("unixDlOpen",))
    assert "would become reachable" in idle.action
    enabled = omitted | {"github.com/mattn/go-sqlite3._Cfunc_sqlite3_enable_load_extension"}
    assert [(h.code, h.severity) for h in static_hazards(GLIBC_GO, enabled)] == [
        ("static-dlopen", "high")]
    with_plugin = omitted | {"plugin.open"}
    assert [(h.code, h.severity, h.evidence) for h in static_hazards(GLIBC_GO, with_plugin)] == [
        ("static-dlopen-unreachable", "low", ("unixDlOpen",)),
        ("static-dlopen", "high", ("plugin.open",))]
    assert [(h.code, h.severity) for h in static_hazards(GLIBC, omitted)] == [
        ("static-dlopen", "high")]

"""What can still go wrong at run time, in a static build and in the artifact.

Pure functions over facts already read. The evidence rules are GLIBC-NOTES section 3:
in a static glibc program the callers of NSS lookups and of dlopen need the build host's
glibc at run time; `dlopen`/`_dl_open` themselves prove nothing (glibc links them into
every static program), and a stripped binary is judged by the strings glibc's NSS loader
always carries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bundler import nss
from bundler.compiled_paths import SHOWN as PATHS_SHOWN
from bundler.compiled_paths import CompiledPaths
from bundler.elf import ElfFacts
from bundler.static import StaticContents

DLOPEN_IMPORTS = frozenset({"dlopen", "dlmopen"})
# Callers of dlopen in static programs: SQLite's loader of extensions, Go's plugin package.
DLOPEN_CALLERS = frozenset({"unixDlOpen", "pluginOpen", "plugin.open"})
DLOPEN_CALLER_SUFFIXES = ("_Cfunc_sqlite3_load_extension", "_Cfunc_pluginOpen")
ICONV_CALLERS = frozenset({"iconv_open"})
LOCALE_CALLERS = frozenset({"setlocale", "newlocale"})
SQLITE_LOADER = "unixDlOpen"  # SQLite's os_unix.c: dlopen for load_extension()
# cgo wrappers a Go program has only when its code enables or loads SQLite extensions.
SQLITE_ENABLERS = ("_Cfunc_sqlite3_load_extension", "_Cfunc_sqlite3_enable_load_extension")
SHOWN = 8
Severity = Literal["high", "medium", "low"]  # "high" hazards decide the verdict (verdict.py)


@dataclass(frozen=True)
class Hazard:
    """One run-time risk: where it is, the evidence, what it does, what to do."""

    code: str  # stable key, e.g. "static-nss"
    subject: str  # "static build", "program", "artifact"
    severity: Severity
    evidence: tuple[str, ...]
    effect: str
    action: str


def static_hazards(contents: StaticContents, symbols: frozenset[str] | None) -> tuple[Hazard, ...]:
    """Hazards inside a static program; `symbols` is None when it is stripped."""
    hazards = []
    if contents.libc == "glibc":
        callers = sorted(nss.NSS_CALLERS & symbols) if symbols is not None else []
        if callers or (symbols is None and contents.nss):
            evidence = (callers[:SHOWN] if callers
                        else [f"string {m!r}" for m in contents.nss_markers])
            fix = ("build with -tags netgo,osusergo (Go's own resolver and user lookups)"
                   if contents.go_runtime else
                   "keep getaddrinfo/getpw*/getgr* out of the static build, or link it "
                   "dynamically and ship the artifact")
            hazards.append(Hazard(
                "static-nss", "static build", "high", tuple(evidence),
                "lookups through NSS modules other than files and dns (systemd, sss, ldap, "
                "mdns in the target's nsswitch.conf) load the target's libnss_*.so.2 and "
                "libc.so.6 into the program; with another glibc there they fail silently or "
                "abort",
                fix,
            ))
        dl = sorted(_dlopen_callers(symbols)) if symbols is not None else []
        idle = _unreachable_dlopen(contents, symbols, dl)
        dl = [caller for caller in dl if caller not in idle]
        if idle:
            hazards.append(Hazard(
                "static-dlopen-unreachable", "static build", "low", tuple(idle),
                "SQLite's extension loader (unixDlOpen, in libsqlite3.a) is linked in, but "
                "nothing in the Go program turns extension loading on, and SQLite keeps "
                "load_extension() off until something does: it cannot run",
                "none needed; it would become reachable if the program loaded extensions "
                "(go-sqlite3's LoadExtension or Extensions, built without "
                "sqlite_omit_load_extension), and then it would be a high hazard",
            ))
        if dl:
            hazards.append(Hazard(
                "static-dlopen", "static build", "high", tuple(dl[:SHOWN]),
                "dlopen in a static glibc program loads shared objects that need the build "
                "host's glibc; on other hosts they fail to load or crash",
                "disable run-time loading (go-sqlite3: -tags sqlite_omit_load_extension with "
                "the amalgamation; containerd: -tags no_dynamic_plugins), or ship the artifact",
            ))
        elif symbols is None:
            hazards.append(Hazard(
                "static-dlopen-unknown", "static build", "low", ("stripped: no .symtab",),
                "whether the program calls dlopen cannot be told from a stripped static binary",
                "inspect the unstripped build to be sure",
            ))
        iconv = sorted(ICONV_CALLERS & symbols) if symbols is not None else []
        if iconv:
            hazards.append(Hazard(
                "static-iconv", "static build", "medium", tuple(iconv),
                "iconv_open loads the target's gconv modules for most charsets; with another "
                "glibc they fail to load",
                "convert without iconv, or ship the artifact",
            ))
    return tuple(hazards)


def _unreachable_dlopen(contents: StaticContents, symbols: frozenset[str] | None,
                        callers: list[str]) -> list[str]:
    """The dlopen callers that cannot run: SQLite's unixDlOpen in a Go program whose Go
    side has no call that enables or loads an extension (go-sqlite3 built with
    sqlite_omit_load_extension against a system libsqlite3.a, whose os_unix.c keeps it).
    Only Go is judged: a C program's calls into libsqlite3.a cannot be told from the
    archive's own definitions, so there unixDlOpen stays reachable."""
    if symbols is None or not contents.go_runtime or SQLITE_LOADER not in callers:
        return []
    if any(s.endswith(SQLITE_ENABLERS) for s in symbols):
        return []
    return [SQLITE_LOADER]


def _dlopen_callers(symbols: frozenset[str]) -> set[str]:
    found = set(DLOPEN_CALLERS & symbols)
    found.update(s for s in symbols if s.endswith(DLOPEN_CALLER_SUFFIXES))
    return found



def dynamic_hazards(program: ElfFacts, objects: list[tuple[str, ElfFacts]],
                    bundled: frozenset[str] = frozenset(),
                    nss_cover: nss.NssCoverage | None = None) -> tuple[Hazard, ...]:
    """Hazards of a dynamic program and its non-glibc libraries, and what the artifact does.

    `bundled` names the run-time parts the artifact carries ("NSS modules", "gconv modules");
    `nss_cover` which nsswitch.conf sources the artifact serves (nss.py).
    """
    hazards = []
    if program.setuid or program.setgid or program.capabilities is not None:
        bits = [b for b, on in (("setuid", program.setuid), ("setgid", program.setgid),
                                ("file capabilities", program.capabilities is not None)) if on]
        hazards.append(Hazard(
            "privileged", "program", "high", tuple(bits),
            "started through the bundled loader the privilege is lost (the kernel grants it "
            "only to the file it executes); started directly, glibc's secure mode ignores "
            "$ORIGIN in DT_RPATH (measured: libc.so.6 not found)",
            "bundled only with --allow-setuid, which adds the absolute PREFIX/lib to DT_RPATH: "
            "install at the prefix as root (tar keeps the setuid bit; capabilities need setcap "
            "again) and start libexec/ or bin/ there",
        ))
    nss_action = ((nss.brief(nss_cover) or "") + ". A static build instead: with "
                  + nss.static_lookups(nss.GO_PURE) + "; with "
                  + nss.static_lookups(nss.GLIBC_STATIC)
                  if nss_cover is not None else
                  "the bundled NSS modules (see 'loaded at run time') and the built-in files "
                  "and dns serve it; other modules the host names fail their lookups quietly"
                  if "NSS modules" in bundled else
                  "with the bundled glibc, files and dns work; modules the host names beyond "
                  "those are not in the artifact and their lookups fail quietly (--nss)")
    iconv_action = ("the bundled gconv modules serve the charsets chosen with --gconv; "
                    "others fail" if "gconv modules" in bundled else
                    "the artifact does not carry gconv modules: conversions other than the "
                    "built-in ones (UTF-8, ASCII, ISO-8859-1) fail (--gconv bundles them)")
    locale_action = ("the bundled locales (see 'loaded at run time') serve a LANG/LC_* "
                     "naming them; any other name falls back to C" if "locales" in bundled
                     else "the artifact carries only C and POSIX: under a host's "
                     "LANG=C.UTF-8 or en_US.UTF-8 it runs in C, ASCII only (measured: "
                     "`cmp --version` writes Torbjorn for Torbjörn); --locale C.UTF-8, or "
                     "the fleet's locales, bundles them")
    imports: tuple[tuple[str, frozenset[str], Severity, str, str], ...] = (
        ("dynamic-dlopen", DLOPEN_IMPORTS, "medium",
         "libraries loaded at run time are not DT_NEEDED, so they are not in the closure",
         "the artifact holds only the closure; a dlopen of a library outside it loads the "
         "host's copy (or fails); add such plugins to the bundle (--add)"),
        ("dynamic-nss", nss.NSS_CALLERS, "medium",
         "lookups go through /etc/nsswitch.conf of the host; glibc >= 2.34 has files and "
         "dns built in, other modules (systemd, sss, ldap) are loaded at run time",
         nss_action),
        ("dynamic-iconv", ICONV_CALLERS, "low",
         "iconv_open loads gconv modules at run time for most charsets", iconv_action),
        ("dynamic-locale", LOCALE_CALLERS, "low",
         "it sets a locale, most programs the one LANG, LC_ALL and LC_* name: multibyte "
         "text, case, sorting, number and date formats follow it, loaded from compiled "
         "locale files at run time", locale_action),
    )
    for code, names, severity, effect, action in imports:
        evidence = sorted({f"{label}: {symbol}" for label, facts in objects
                           for symbol in names.intersection(facts.imported_symbols)})
        if evidence:
            hazards.append(Hazard(code, "program", severity, tuple(evidence[:SHOWN]),
                                  effect, action))
    return tuple(hazards)


def artifact_hazards(launcher: str, excluded: tuple[str, ...] = ()) -> tuple[Hazard, ...]:
    """What the chosen launcher and the left-out libraries mean for the program."""
    hazards = [Hazard(
        "loader-start-proc-self-exe", "artifact", "low",
        ("launcher starts lib/ld-linux*.so.* PROGRAM when not at its prefix",),
        "/proc/self/exe names the loader: os.Executable, self re-exec and pidof see ld.so",
        "install at the prefix (then the launcher execs the program itself), or run "
        "libexec/PROGRAM directly there",
    )]
    if excluded:
        hazards.append(Hazard(
            "excluded-libraries", "artifact", "medium", excluded,
            "these come from each target host: a host without them fails at start, and one "
            "built against a newer glibc than the bundled one fails with a version error",
            "exclude only host-specific libraries (GPU drivers, site plugins)",
        ))
    if launcher == "env":
        hazards.append(Hazard(
            "env-launcher-leak", "artifact", "high", ("LD_LIBRARY_PATH exported",),
            "every dynamically linked program it starts (sh -c, iptables, mount) loads the "
            "bundled glibc with the host's loader and fails",
            "use the default loader launcher",
        ))
    return tuple(hazards)


def uncarried_hazards(scan: CompiledPaths | None) -> tuple[Hazard, ...]:
    """A high hazard when the programs or libraries hold absolute paths of helpers,
    plugins or data that the build root has and the artifact does not carry
    (compiled_paths.py): on a target those paths name the host's files, of another
    version or none, and the build would otherwise say "ship the artifact"."""
    missing = scan.uncarried if scan is not None else ()
    if not missing:
        return ()
    evidence = [f"{p.path} ({p.kind}, in {', '.join(p.found_in)})"
                for p in missing[:PATHS_SHOWN]]
    if len(missing) > PATHS_SHOWN:
        evidence.append(f"and {len(missing) - PATHS_SHOWN} more (see Compiled-in paths)")
    return (Hazard(
        "uncarried-files", "artifact", "high", tuple(evidence),
        "the programs open these at absolute paths compiled into them, which the artifact "
        "does not carry: on a target they name the host's files (another version) or "
        "nothing, and helpers, plugins or data fail to load",
        "carry it: --data PATH, --helper PROG, or --from-package",
    ),)

"""Why a Go CGO program does not link (or run) cleanly static, and the one command that fixes it.

The rules are GLIBC-NOTES section 4's table. Evidence comes from the binary alone: symbol
names (`.symtab`, or `.gopclntab` when stripped), dynamic imports, DT_NEEDED, and the
build info (tags, ldflags, deps and their replacements). `go_build_command` merges the
needed tags and -extldflags into what the binary was built with.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from bundler.elf import ElfFacts
from bundler.glibc import is_glibc
from bundler.golang import BuildInfo, function_names
from bundler.resolve import Closure
from bundler.sysroot import Sysroot

SQLITE_MODULE = "github.com/mattn/go-sqlite3"
CONTAINERD_MODULES = ("github.com/containerd/containerd/v2", "github.com/containerd/containerd")
DEBIAN_GOCODE = "/usr/share/gocode/"

# Name endings: the Go side is `net._C2func_getaddrinfo`, the C side of an externally
# linked binary `_cgo_<hash>_C2func_getaddrinfo`; either proves the cgo path is in.
CGO_DNS = ("_C2func_getaddrinfo", "_Cfunc_getaddrinfo")
CGO_USER = ("_Cfunc_mygetpwuid_r", "_Cfunc_mygetpwnam_r", "_Cfunc_mygetgrgid_r",
            "_Cfunc_mygetgrnam_r", "_Cfunc_mygetgrouplist")
SQLITE_LOAD_EXTENSION = ("_Cfunc_sqlite3_load_extension",)
PLUGIN = ("plugin.open", "_Cfunc_pluginOpen")
SHOWN = 4


@dataclass(frozen=True)
class Cause:
    code: str
    evidence: tuple[str, ...]
    explanation: str
    fix: str
    tags: tuple[str, ...] = ()
    extldflags: tuple[str, ...] = ()
    remains: str | None = None  # a link warning the fix will not remove


@dataclass(frozen=True)
class Diagnosis:
    causes: tuple[Cause, ...]
    command: str
    remaining: tuple[str, ...]
    notes: tuple[str, ...]


@dataclass(frozen=True)
class GoEvidence:
    """What the diagnosis looks at, gathered by the caller (I/O stays at the edge)."""

    info: BuildInfo
    functions: frozenset[str]  # from .symtab, or .gopclntab when stripped
    imports: frozenset[str]  # undefined dynamic symbols (dynamic builds)
    needed: tuple[str, ...]  # DT_NEEDED (dynamic builds)
    needs_libm: bool  # a library to be linked statically needs libm.so.6
    missing_static: tuple[str, ...]  # archives (libc.a, libsqlite3.a) the sysroot lacks
    program_name: str


def evidence_of(info: BuildInfo, facts: ElfFacts, functions: frozenset[str],
                library_needs: dict[str, tuple[str, ...]],
                missing_static: tuple[str, ...]) -> GoEvidence:
    """Bundle the facts; `library_needs` maps each non-glibc DT_NEEDED to its own."""
    return GoEvidence(
        info=info, functions=functions, imports=frozenset(facts.imported_symbols),
        needed=facts.needed,
        needs_libm=any("libm.so.6" in needs for needs in library_needs.values()),
        missing_static=missing_static, program_name=facts.path.rsplit("/", 1)[-1],
    )


def diagnose(ev: GoEvidence) -> Diagnosis:
    causes: list[Cause] = []
    dns = _ending(ev.functions, CGO_DNS) + _found(ev.imports, ("getaddrinfo",))
    if dns and "netgo" not in ev.info.tags:
        causes.append(Cause(
            "cgo-dns", tuple(dns), "the cgo DNS resolver calls glibc's getaddrinfo (NSS)",
            "-tags netgo (Go's own resolver)", tags=("netgo",)))
    user = _ending(ev.functions, CGO_USER) + _found(ev.imports, ("getpwuid_r", "getgrouplist"))
    if user and "osusergo" not in ev.info.tags:
        causes.append(Cause(
            "cgo-user", tuple(user), "os/user through cgo calls getpwuid_r and friends (NSS)",
            "-tags osusergo (Go's own /etc/passwd parser)", tags=("osusergo",)))
    causes += _sqlite_causes(ev)
    causes += _plugin_causes(ev)
    if ev.missing_static:
        causes.append(Cause(
            "missing-static-lib", ev.missing_static,
            "the static link needs these archives and the build root lacks them "
            "(link error: cannot find -lc / -lsqlite3)",
            "install the static libraries (Debian: libc6-dev, libsqlite3-dev; Fedora: "
            "glibc-static, sqlite-static)"))
    if ev.needs_libm and ev.needed:
        causes.append(Cause(
            "missing-lm", ("a static library needs libm (e.g. libsqlite3: log, pow)",),
            "linked statically, libsqlite3.a needs libm, which -static alone does not pull in",
            "-extldflags '-static -lm'", extldflags=("-lm",)))
    remaining = tuple(c.remains for c in causes if c.remains)
    notes = []
    if ev.info.setting("-trimpath") == "true" and ev.info.ldflags is None:
        notes.append("built with -trimpath: the original -ldflags are not recorded; add yours "
                     "to the command")
    return Diagnosis(tuple(causes), go_build_command(ev.info, causes, ev.program_name),
                     remaining, tuple(notes))


def _found(names: frozenset[str], wanted: tuple[str, ...]) -> list[str]:
    return [name for name in wanted if name in names]


def _ending(names: frozenset[str], endings: tuple[str, ...]) -> list[str]:
    return sorted(name for name in names if name.endswith(endings))[:SHOWN]


def _sqlite_causes(ev: GoEvidence) -> list[Cause]:
    sqlite = ev.info.dep(SQLITE_MODULE)
    if sqlite is None:
        return []
    causes = []
    loads = _ending(ev.functions, SQLITE_LOAD_EXTENSION) + _found(ev.functions, ("unixDlOpen",))
    loads += _found(ev.imports, ("sqlite3_load_extension",))
    if loads and "sqlite_omit_load_extension" not in ev.info.tags:
        causes.append(Cause(
            "sqlite-load-extension", tuple(loads),
            "go-sqlite3's load_extension calls dlopen, which needs the build host's glibc",
            "-tags sqlite_omit_load_extension", tags=("sqlite_omit_load_extension",)))
    system = []
    if "libsqlite3.so.0" in ev.needed:
        system.append("DT_NEEDED libsqlite3.so.0")
    replaced = sqlite.replace.path if sqlite.replace else ""
    if replaced.startswith(DEBIAN_GOCODE):
        system.append(f"{SQLITE_MODULE} => {replaced} (Debian's, links -lsqlite3)")
    if "libsqlite3" in ev.info.tags:
        system.append("-tags libsqlite3")
    if system:
        causes.append(Cause(
            "system-libsqlite3", tuple(system),
            "SQLite comes from the system libsqlite3, whose os_unix.c keeps unixDlOpen whatever "
            "the Go tags",
            "use the upstream go-sqlite3 module (its bundled amalgamation honours "
            "sqlite_omit_load_extension) to lose the warning; otherwise it stays",
            remains="Using 'dlopen' in statically linked applications (unixDlOpen in "
                    "libsqlite3.a)"))
    return causes


def _plugin_causes(ev: GoEvidence) -> list[Cause]:
    plugin = _ending(ev.functions, PLUGIN)
    if not plugin:
        return []
    containerd = next((ev.info.dep(m) for m in CONTAINERD_MODULES if ev.info.dep(m)), None)
    if containerd is None:
        return [Cause("go-plugin", tuple(plugin),
                      "the Go plugin package dlopens .so files at run time",
                      "stop importing plugin (or build a variant without it)",
                      remains="Using 'dlopen' in statically linked applications (plugin)")]
    version = containerd.replace.version if containerd.replace else containerd.version
    if _containerd_has_no_dynamic_plugins(version):
        return [Cause("containerd-plugins", (*plugin, f"containerd {version}"),
                      "containerd imports Go's plugin package for dynamic plugins",
                      "-tags no_dynamic_plugins", tags=("no_dynamic_plugins",))]
    return [Cause("containerd-plugins", (*plugin, f"containerd {version}"),
                  "containerd imports Go's plugin package for dynamic plugins; "
                  f"{version} has no no_dynamic_plugins tag",
                  "upgrade containerd to >= 1.7.25 or >= 2.0.2 and build with "
                  "-tags no_dynamic_plugins (or -tags static_build)",
                  tags=("no_dynamic_plugins",))]


def _containerd_has_no_dynamic_plugins(version: str) -> bool:
    match = re.match(r"v(\d+)\.(\d+)\.(\d+)", version or "")
    if not match:
        return False
    key = tuple(int(p) for p in match.groups())
    return key >= (2, 0, 2) or ((1, 7, 25) <= key < (2, 0, 0))


def go_build_command(info: BuildInfo, causes: list[Cause], name: str) -> str:
    """One `go build` line: the binary's own tags/ldflags plus what the causes need."""
    tags = list(info.tags)
    for cause in causes:
        tags += [t for t in cause.tags if t not in tags]
    extra = ["-static"]
    for cause in causes:
        extra += [f for f in cause.extldflags if f not in extra]
    ldflags = _merged_ldflags(info.ldflags or "", extra)
    env = ["CGO_ENABLED=1"]
    goos, goarch = info.setting("GOOS"), info.setting("GOARCH")
    if goos and goarch:
        env += [f"GOOS={goos}", f"GOARCH={goarch}"]
    words = [*env, "go", "build"]
    if info.setting("-trimpath") == "true":
        words.append("-trimpath")
    if tags:
        words += ["-tags", ",".join(tags)]
    words += ["-ldflags", ldflags, "-o", f"{name}-static", _package(info)]
    return " ".join(_shell_word(w) if i >= len(env) else w for i, w in enumerate(words))


def _shell_word(word: str) -> str:
    """Quote for sh, preferring "..." around Go's own '...' quoting of -extldflags."""
    if word == shlex.quote(word):
        return word
    if not any(ch in word for ch in '"$`\\!'):
        return f'"{word}"'
    return shlex.quote(word)


def _split(text: str) -> list[str]:
    """Shell words as Go splits -ldflags; unbalanced quotes (a damaged binary) by spaces."""
    try:
        return shlex.split(text)
    except ValueError:
        return text.split()


def _merged_ldflags(ldflags: str, extldflags: list[str]) -> str:
    """Existing -ldflags with -linkmode external and the -extldflags merged in."""
    words = _split(ldflags)
    existing: list[str] = []
    rest: list[str] = []
    index = 0
    while index < len(words):
        word = words[index]
        if word in ("-extldflags", "--extldflags") and index + 1 < len(words):
            existing += _split(words[index + 1])
            index += 2
            continue
        if word.startswith(("-extldflags=", "--extldflags=")):
            existing += _split(word.split("=", 1)[1])
        elif word == "-linkmode" and index + 1 < len(words):
            index += 2
            continue
        else:
            rest.append(word)
        index += 1
    merged = existing + [f for f in extldflags if f not in existing]
    words = ["-linkmode", "external", *map(_go_quote, rest)]
    return " ".join([*words, "-extldflags", _go_quote(_go_join(merged), always=True)])


def _go_join(words: list[str]) -> str:
    """Join as Go's cmd/internal/quoted.Join does, so `go build` splits it back the same."""
    return " ".join(_go_quote(word) for word in words)


def _go_quote(word: str, always: bool = False) -> str:
    if word and not always and not any(ch.isspace() or ch in "'\"" for ch in word):
        return word
    return f'"{word}"' if "'" in word else f"'{word}'"


def _package(info: BuildInfo) -> str:
    module = info.main.path if info.main else ""
    if not info.path or info.path == module or info.path == "command-line-arguments":
        return "."
    if module and info.path.startswith(module + "/"):
        return "./" + info.path[len(module) + 1:]
    return info.path


def go_diagnosis(closure: Closure, info: BuildInfo, sysroot: Sysroot) -> Diagnosis:
    """Gather the evidence for the static-readiness diagnosis of a Go program."""
    library_needs = {lib.name: lib.facts.needed for lib in closure.libraries
                     if not is_glibc(lib.soname or lib.name)}
    system_dirs = closure.search.system_dirs if closure.search is not None else None
    return diagnosis_for(closure.program, info, library_needs, system_dirs, sysroot)


def diagnosis_for(program: ElfFacts, info: BuildInfo,
                  library_needs: dict[str, tuple[str, ...]],
                  system_dirs: tuple[str, ...] | None, sysroot: Sysroot) -> Diagnosis:
    """The diagnosis from a program's facts, its libraries' needs, and the static archives
    (libc.a, lib<name>.a) found in `system_dirs` of `sysroot` (not looked for when None)."""
    missing = []
    if not program.is_static and system_dirs is not None:
        wanted = ["libc.a"] + [_archive_name(name) for name in program.needed
                               if not is_glibc(name)]
        for archive in wanted:
            if not any(sysroot.is_file(f"{d}/{archive}") for d in system_dirs):
                missing.append(archive)
    evidence = evidence_of(info, program, function_names(program.path), library_needs,
                           tuple(missing))
    return diagnose(evidence)


def _archive_name(soname: str) -> str:
    return soname.split(".so", 1)[0] + ".a"

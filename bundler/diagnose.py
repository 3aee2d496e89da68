"""Why a Go CGO program does not link (or run) cleanly static, and the one command that fixes it.

The rules are GLIBC-NOTES section 4's table. Evidence comes from the binary alone: symbol
names (`.symtab`, or `.gopclntab` when stripped), dynamic imports, DT_NEEDED, and the
build info (tags, ldflags, deps and their replacements), plus what the build host's module
directories say (the version of a module `replace`d by a directory). The rules depend on
versions (containerd's tags changed in 1.7.25 and 2.0.2) and on where SQLite comes from, so
every cause names the rule it used (`Cause.rule`). `go_build_command` merges the needed tags
and -extldflags into what the binary was built with, for module and GOPATH builds, native
and cross.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import re
import shlex
from dataclasses import dataclass

from bundler.elf import ElfFacts
from bundler.glibc import is_glibc
from bundler.golang import BuildInfo, Module, function_names
from bundler.resolve import Closure
from bundler.sysroot import Sysroot

SQLITE_MODULE = "github.com/mattn/go-sqlite3"
CONTAINERD_MODULES = ("github.com/containerd/containerd/v2", "github.com/containerd/containerd")
DEBIAN_GOCODE = "/usr/share/gocode/"
# containerd's own record of its version (github.com/containerd/containerd/version).
VERSION_FILES = ("version/version.go",)
VERSION_ASSIGNMENT = re.compile(r'^\s*Version\s*=\s*"([^"]+)"', re.MULTILINE)
# Upstream go-sqlite3 compiles SQLite from this file unless -tags libsqlite3; Debian's
# packaged source drops it (and links -lsqlite3 always).
SQLITE_AMALGAMATION = "sqlite3-binding.c"
# Debian's cross compilers, by GOARCH: what CC must name for a cgo cross build.
CROSS_CC = {"amd64": "x86_64-linux-gnu-gcc", "386": "i686-linux-gnu-gcc",
            "arm64": "aarch64-linux-gnu-gcc", "arm": "arm-linux-gnueabihf-gcc",
            "riscv64": "riscv64-linux-gnu-gcc", "ppc64le": "powerpc64le-linux-gnu-gcc",
            "s390x": "s390x-linux-gnu-gcc"}
ELF_GOARCH = {("EM_X86_64", 64, True): "amd64", ("EM_386", 32, True): "386",
              ("EM_AARCH64", 64, True): "arm64", ("EM_ARM", 32, True): "arm",
              ("EM_RISCV", 64, True): "riscv64", ("EM_PPC64", 64, True): "ppc64le",
              ("EM_PPC64", 64, False): "ppc64", ("EM_S390", 64, False): "s390x"}
HOST_GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "i686": "386", "i386": "386",
               "armv7l": "arm", "riscv64": "riscv64", "ppc64le": "ppc64le", "s390x": "s390x"}

# Name endings: the Go side is `net._C2func_getaddrinfo`, the C side of an externally
# linked binary `_cgo_<hash>_C2func_getaddrinfo`; either proves the cgo path is in.
CGO_DNS = ("_C2func_getaddrinfo", "_Cfunc_getaddrinfo", "_C2func_getnameinfo",
           "_C2func_res_search")
CGO_USER = ("_Cfunc_mygetpwuid_r", "_Cfunc_mygetpwnam_r", "_Cfunc_mygetgrgid_r",
            "_Cfunc_mygetgrnam_r", "_Cfunc_mygetgrouplist")
SQLITE_LOAD_EXTENSION = ("_Cfunc_sqlite3_load_extension",)
PLUGIN = ("plugin.open", "_Cfunc_pluginOpen")
CGO_WRAPPER = re.compile(r"(?:local\.)?([\w./-]+?)\.(?:_cgo_[0-9a-f]+_)?_C2?func_")
# The package whose cgo calls each fix removes.
CGO_REMOVED_BY = {"cgo-dns": "net", "cgo-user": "os/user", "containerd-plugins": "plugin"}
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
    rule: str = ""  # the rule (and the version it was chosen for) that gave this fix


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
    # (module, version, file it was read from) for modules replaced by a directory
    directory_versions: tuple[tuple[str, str, str], ...] = ()
    # whether go-sqlite3's replacement directory holds the amalgamation (None: not read)
    sqlite_amalgamation: bool | None = None
    host_goarch: str | None = None  # where the printed command runs (a cross build needs CC)
    elf_goarch: str | None = None  # GOARCH from the ELF machine (build info before Go 1.18
    #                                records no GOARCH)


def evidence_of(info: BuildInfo, facts: ElfFacts, functions: frozenset[str],
                library_needs: dict[str, tuple[str, ...]],
                missing_static: tuple[str, ...]) -> GoEvidence:
    """Bundle the facts; `library_needs` maps each non-glibc DT_NEEDED to its own."""
    return GoEvidence(
        info=info, functions=functions, imports=frozenset(facts.imported_symbols),
        needed=facts.needed,
        needs_libm=any("libm.so.6" in needs for needs in library_needs.values()),
        missing_static=missing_static, program_name=facts.path.rsplit("/", 1)[-1],
        elf_goarch=ELF_GOARCH.get((facts.ident.machine, facts.ident.elf_class,
                                   facts.ident.little_endian)),
    )


def _goarch(ev: GoEvidence) -> str | None:
    return ev.info.setting("GOARCH") or ev.elf_goarch


def diagnose(ev: GoEvidence) -> Diagnosis:
    causes: list[Cause] = []
    dns = _ending(ev.functions, CGO_DNS) + _found(ev.imports, ("getaddrinfo", "getnameinfo"))
    if dns and "netgo" not in ev.info.tags:
        causes.append(Cause(
            "cgo-dns", tuple(dns), "the cgo DNS resolver calls glibc's getaddrinfo (NSS)",
            "-tags netgo (Go's own resolver)", tags=("netgo",),
            rule="net: the cgo resolver is built unless -tags netgo (any Go version)"))
    user = _ending(ev.functions, CGO_USER) + _found(ev.imports, ("getpwuid_r", "getgrouplist"))
    if user and "osusergo" not in ev.info.tags:
        causes.append(Cause(
            "cgo-user", tuple(user), "os/user through cgo calls getpwuid_r and friends (NSS)",
            "-tags osusergo (Go's own /etc/passwd parser)", tags=("osusergo",),
            rule="os/user: the cgo lookups are built unless -tags osusergo (any Go version)"))
    causes += _sqlite_causes(ev)
    plugin_causes, notes = _plugin_causes(ev)
    causes += plugin_causes
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
    notes += _notes(ev, causes)
    cgo_left = _cgo_left(ev, causes)
    if not cgo_left:
        notes.append("with these tags no package uses cgo: CGO_ENABLED=0 links statically with "
                     "Go's own linker")
        causes = [c for c in causes if not c.extldflags]  # no C link, so no -lm
    return Diagnosis(tuple(causes),
                     go_build_command(ev.info, causes, ev.program_name, ev.host_goarch,
                                      cgo_left=cgo_left, elf_goarch=ev.elf_goarch),
                     remaining, tuple(notes))


def _notes(ev: GoEvidence, causes: list[Cause]) -> list[str]:
    """What the reader of the command must know that no cause says."""
    notes = []
    if _sqlite_source(ev)[0] == "unknown" and any(c.code == "sqlite-load-extension"
                                                  for c in causes):
        notes.append("where SQLite comes from is unknown (no module info): from a system "
                     "libsqlite3 (Debian's go-sqlite3, -tags libsqlite3) the link warning "
                     "'dlopen' (unixDlOpen in libsqlite3.a) remains; from go-sqlite3's "
                     "amalgamation it does not")
    if ev.info.setting("-trimpath") == "true" and ev.info.ldflags is None:
        notes.append("built with -trimpath: the original -ldflags are not recorded; add yours "
                     "to the command")
    if _is_gopath_build(ev.info):
        holds = "" if ev.info.path.startswith("_/") else f" (it holds {ev.info.path})"
        notes.append(f"a GOPATH build (no module info): run the command with the GOPATH it was "
                     f"built with{holds}")
    goarch = _goarch(ev)
    if _is_cross(goarch, ev.host_goarch) and goarch not in CROSS_CC:
        notes.append(f"a cross build for {goarch}: set CC to a C cross compiler for it")
    return notes


def _cgo_left(ev: GoEvidence, causes: list[Cause]) -> bool:
    """Whether the fixed build still calls C: a cgo package the fixes do not remove, or a C
    library in DT_NEEDED. Without function names it is not known gone, so True."""
    packages = cgo_packages(ev.functions) - {
        CGO_REMOVED_BY[c.code] for c in causes if c.code in CGO_REMOVED_BY}
    c_libraries = [name for name in ev.needed if not is_glibc(name)]
    return bool(packages or c_libraries or not ev.functions)


def cgo_packages(functions: frozenset[str]) -> set[str]:
    """The Go packages that call C: they own `pkg._Cfunc_x` / `pkg._C2func_x` wrappers (and
    `pkg._cgo_<hash>_Cfunc_x` pointers in externally linked binaries)."""
    packages = set()
    for name in functions:
        match = CGO_WRAPPER.match(name)
        if match:
            packages.add(match[1])
    return packages


def _found(names: frozenset[str], wanted: tuple[str, ...]) -> list[str]:
    return [name for name in wanted if name in names]


def _ending(names: frozenset[str], endings: tuple[str, ...]) -> list[str]:
    return sorted(name for name in names if name.endswith(endings))[:SHOWN]


def _is_gopath_build(info: BuildInfo) -> bool:
    """GOPATH mode (GO111MODULE=off) records no `mod` line, so no module and no deps."""
    return info.main is None or not info.main.path


def _is_cross(goarch: str | None, host_goarch: str | None) -> bool:
    return bool(goarch and host_goarch and goarch != host_goarch)


def _uses_package(ev: GoEvidence, module: str) -> bool:
    """A GOPATH build has no deps: the package's functions are the evidence it is in."""
    return any(name.startswith(module + "/") or name.startswith(module + ".")
               for name in ev.functions)


def version_key(version: str | None) -> tuple[int, int, int] | None:
    """1.6.20 from v1.6.20, 1.6.20+unknown (containerd's version.go), 1.6.20~ds1 (Debian)."""
    match = re.match(r"v?(\d+)\.(\d+)\.(\d+)", version or "")
    return None if match is None else (int(match[1]), int(match[2]), int(match[3]))


def module_version(ev: GoEvidence, path: str) -> tuple[str | None, str]:
    """The version of module `path` in the build and how it is known (evidence words);
    None when unknown: a `replace` by a directory whose version could not be read, a
    `(devel)` main module, or a GOPATH build."""
    module = ev.info.dep(path)
    if module is None and ev.info.main is not None and ev.info.main.path == path:
        module = ev.info.main
    if module is None:
        return None, f"{path} (a GOPATH build: no module version recorded)"
    replace = module.replace
    if replace is not None and not replaced_by_directory(module):
        return replace.version, f"{path} => {replace.path} {replace.version}"
    if replace is not None:
        read = next(((v, f) for m, v, f in ev.directory_versions if m == path), None)
        if read is not None:
            return read[0], f"{path} => {replace.path}: version {read[0]} read from {read[1]}"
        return None, f"{path} => {replace.path} (a directory; its version could not be read)"
    if version_key(module.version) is not None:
        return module.version, f"{path} {module.version}"
    return None, f"{path} {module.version or '(devel)'} (version unknown)"


def replaced_by_directory(module: Module) -> bool:
    """A `replace` by a directory (Go: a path starting with /, ./ or ../) has no version of
    its own; the build info shows `(devel)` or nothing."""
    replace = module.replace
    return replace is not None and replace.path.startswith(("/", "./", "../"))


def _sqlite_source(ev: GoEvidence) -> tuple[str | None, list[str]]:
    """Where go-sqlite3's SQLite comes from: "system" (libsqlite3), "amalgamation" (the
    bundled sqlite3-binding.c), "unknown", or None when go-sqlite3 is not in the build;
    with the evidence."""
    sqlite = ev.info.dep(SQLITE_MODULE)
    if sqlite is None and not _uses_package(ev, SQLITE_MODULE):
        return None, []
    system = []
    if "libsqlite3.so.0" in ev.needed:
        system.append("DT_NEEDED libsqlite3.so.0")
    if "libsqlite3" in ev.info.tags:
        system.append("-tags libsqlite3")
    replaced = sqlite.replace.path if sqlite is not None and sqlite.replace and \
        replaced_by_directory(sqlite) else ""
    if replaced and ev.sqlite_amalgamation is False:
        system.append(f"{SQLITE_MODULE} => {replaced} (no {SQLITE_AMALGAMATION} there: "
                      f"links -lsqlite3)")
    elif replaced.startswith(DEBIAN_GOCODE) and ev.sqlite_amalgamation is None:
        system.append(f"{SQLITE_MODULE} => {replaced} (Debian's, links -lsqlite3)")
    if system:
        return "system", system
    if sqlite is None:
        return "unknown", []
    return "amalgamation", [f"{SQLITE_MODULE} {sqlite.version or '(devel)'}"]


def _sqlite_causes(ev: GoEvidence) -> list[Cause]:
    source, evidence = _sqlite_source(ev)
    if source is None:
        return []
    causes = []
    loads = _ending(ev.functions, SQLITE_LOAD_EXTENSION) + _found(ev.functions, ("unixDlOpen",))
    loads += _found(ev.imports, ("sqlite3_load_extension",))
    if loads and "sqlite_omit_load_extension" not in ev.info.tags:
        rule = {
            "amalgamation": "go-sqlite3 with its amalgamation: -tags sqlite_omit_load_extension "
                            "compiles out load_extension and SQLite's unixDlOpen",
            "system": "go-sqlite3 on a system libsqlite3: -tags sqlite_omit_load_extension "
                      "drops the Go side only; libsqlite3.a keeps unixDlOpen",
            "unknown": "go-sqlite3, SQLite source unknown: the tag drops the Go side; "
                       "SQLite's unixDlOpen goes only with the amalgamation",
        }[source]
        causes.append(Cause(
            "sqlite-load-extension", tuple(loads),
            "go-sqlite3's load_extension calls dlopen, which needs the build host's glibc",
            "-tags sqlite_omit_load_extension", tags=("sqlite_omit_load_extension",),
            rule=rule))
    if source == "system":
        causes.append(Cause(
            "system-libsqlite3", tuple(evidence),
            "SQLite comes from the system libsqlite3 (the static link needs libsqlite3.a), "
            "whose os_unix.c keeps unixDlOpen whatever the Go tags",
            "use the upstream go-sqlite3 module (its bundled amalgamation honours "
            "sqlite_omit_load_extension) to lose the warning; otherwise it stays",
            remains="Using 'dlopen' in statically linked applications (unixDlOpen in "
                    "libsqlite3.a)",
            rule="go-sqlite3 on a system libsqlite3 (Debian's packaged source, -tags "
                 "libsqlite3): no Go tag removes unixDlOpen from libsqlite3.a"))
    return causes


def containerd_rule(version: str | None) -> tuple[tuple[str, ...], str]:
    """The tags that leave containerd's dynamic plugin loader (and with it Go's `plugin`)
    out of a build of `version` (None: unknown), and the rule that says so.

    containerd <= 1.7.24 and 2.0.0-2.0.1 build plugin/plugin_go18.go under `amd64 &&
    !static_build`; the no_dynamic_plugins tag exists from 1.7.25 and 2.0.2 on.
    """
    key = version_key(version)
    if key is None:
        return (("static_build", "no_dynamic_plugins"),
                "containerd, version unknown: before 1.7.25 and in 2.0.0-2.0.1 the plugin "
                "loader (amd64 only in 1.x) goes with -tags static_build; from 1.7.25 and 2.0.2 "
                "on with -tags no_dynamic_plugins; the command adds both")
    if _containerd_has_no_dynamic_plugins(version or ""):
        return (("no_dynamic_plugins",),
                f"containerd {version} (>= 1.7.25 / >= 2.0.2): -tags no_dynamic_plugins "
                "leaves the plugin loader out")
    return (("static_build",),
            f"containerd {version} (before 1.7.25 / 2.0.2): plugin/plugin_go18.go is built "
            "under amd64 && !static_build; no_dynamic_plugins does not exist yet")


def _containerd_module(ev: GoEvidence) -> str | None:
    for module in CONTAINERD_MODULES:
        if ev.info.dep(module) or (ev.info.main and ev.info.main.path == module):
            return module
    if _uses_package(ev, CONTAINERD_MODULES[1]):
        return CONTAINERD_MODULES[1]
    return None


def _plugin_causes(ev: GoEvidence) -> tuple[list[Cause], list[str]]:
    """The causes from Go's plugin package, and notes (containerd's loader is amd64-only)."""
    plugin = _ending(ev.functions, PLUGIN)
    module = _containerd_module(ev)
    goarch = _goarch(ev)
    if not plugin:
        if module is not None and goarch and goarch != "amd64":
            version, _ = module_version(ev, module)
            key = version_key(version)
            if key is None or key < (2, 0, 0):
                return [], [f"containerd's dynamic plugin loader (plugin/plugin_go18.go) is "
                            f"built for amd64 only: this {goarch} build has none"]
        return [], []
    if module is None:
        return [Cause("go-plugin", tuple(plugin),
                      "the Go plugin package dlopens .so files at run time",
                      "stop importing plugin (or build a variant without it)",
                      remains="Using 'dlopen' in statically linked applications (plugin)",
                      rule="Go's plugin package: no tag removes it; only not importing it")], []
    version, known_as = module_version(ev, module)
    tags, rule = containerd_rule(version)
    if version is None and "no_dynamic_plugins" in ev.info.tags:
        # The tag was given and the loader is still in: this containerd predates the tag.
        tags = ("static_build",)
        rule = ("containerd, version unknown, but -tags no_dynamic_plugins was given and the "
                "plugin loader is still in: it predates 1.7.25 / 2.0.2, where "
                "plugin/plugin_go18.go is built under amd64 && !static_build")
    useless = [t for t in ("no_dynamic_plugins", "static_build")
               if t in ev.info.tags and t not in tags]
    explanation = "containerd imports Go's plugin package for dynamic plugins"
    if useless:
        explanation += (f"; -tags {','.join(useless)} was given but has no effect on this "
                        f"containerd")
    fix = f"-tags {','.join(tags)}"
    if version is not None and not _containerd_has_no_dynamic_plugins(version):
        fix += " (or upgrade containerd to >= 1.7.25 / >= 2.0.2 and use no_dynamic_plugins)"
    return [Cause("containerd-plugins", (*plugin, known_as), explanation, fix, tags=tags,
                  rule=rule)], []


def _containerd_has_no_dynamic_plugins(version: str) -> bool:
    key = version_key(version)
    if key is None:
        return False
    return key >= (2, 0, 2) or ((1, 7, 25) <= key < (2, 0, 0))


def go_build_command(info: BuildInfo, causes: list[Cause], name: str,
                     host_goarch: str | None = None, cgo_left: bool = True,
                     elf_goarch: str | None = None) -> str:
    """One `go build` line: the binary's own tags/ldflags plus what the causes need.

    A GOPATH build (no module info) gets GO111MODULE=off and, when Go named the package
    `_/dir` (built outside any GOPATH, which `go build` cannot take as a path), a `cd dir`
    first. A cgo cross build (GOARCH not `host_goarch`) needs a C cross compiler in CC.
    When the fixes leave no cgo package (`cgo_left` False), the command is CGO_ENABLED=0
    without -linkmode external: an external static link without runtime/cgo gives a program
    that traps at start ("loadinternal: cannot find runtime/cgo"; measured, Go 1.19).
    """
    tags = list(info.tags)
    for cause in causes:
        tags += [t for t in cause.tags if t not in tags]
    extra = ["-static"]
    for cause in causes:
        extra += [f for f in cause.extldflags if f not in extra]
    ldflags = _merged_ldflags(info.ldflags or "", extra if cgo_left else None)
    env = ["CGO_ENABLED=1" if cgo_left else "CGO_ENABLED=0"]
    goarch = info.setting("GOARCH") or elf_goarch
    goos = info.setting("GOOS") or ("linux" if elf_goarch else None)  # a glibc ELF program
    if goos and goarch:
        env += [f"GOOS={goos}", f"GOARCH={goarch}"]
    goarm = info.setting("GOARM")
    if goarch == "arm" and goarm:
        env.append(f"GOARM={goarm}")
    if cgo_left and _is_cross(goarch, host_goarch) and goarch in CROSS_CC:
        env.insert(0, f"CC={CROSS_CC[goarch or '']}")
    prefix = []
    package = _package(info)
    if _is_gopath_build(info):
        env.insert(0, "GO111MODULE=off")
        if info.path.startswith("_/"):
            prefix = ["cd", shlex.quote(info.path[1:]), "&&"]
            package = "."
    words = [*env, "go", "build"]
    if info.setting("-trimpath") == "true":
        words.append("-trimpath")
    if tags:
        words += ["-tags", ",".join(tags)]
    if ldflags:
        words += ["-ldflags", ldflags]
    words += ["-o", f"{name}-static", package]
    return " ".join([*prefix, *(_shell_word(w) if i >= len(env) else w
                                for i, w in enumerate(words))])


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


def _merged_ldflags(ldflags: str, extldflags: list[str] | None) -> str:
    """Existing -ldflags with -linkmode external and the -extldflags merged in; with
    `extldflags` None (no cgo left), without either: Go's own linker links statically."""
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
    if extldflags is None:
        return " ".join(map(_go_quote, rest))
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
    (libc.a, lib<name>.a) found in `system_dirs` of `sysroot` (not looked for when None).

    Directories that modules were `replace`d by are read on this machine (where the
    program is usually built; Debian's /usr/share/gocode tree): their recorded version,
    and whether go-sqlite3's holds the SQLite amalgamation."""
    missing = []
    if not program.is_static and system_dirs is not None:
        wanted = ["libc.a"] + [_archive_name(name) for name in program.needed
                               if not is_glibc(name)]
        for archive in wanted:
            if not any(sysroot.is_file(f"{d}/{archive}") for d in system_dirs):
                missing.append(archive)
    evidence = evidence_of(info, program, function_names(program.path), library_needs,
                           tuple(missing))
    sqlite = info.dep(SQLITE_MODULE)
    sqlite_dir = sqlite.replace.path if sqlite and sqlite.replace and \
        replaced_by_directory(sqlite) else None
    evidence = dataclasses.replace(
        evidence, directory_versions=directory_versions(info),
        sqlite_amalgamation=(os.path.isfile(os.path.join(sqlite_dir, SQLITE_AMALGAMATION))
                             if sqlite_dir and os.path.isdir(sqlite_dir) else None),
        host_goarch=HOST_GOARCH.get(platform.machine()))
    return diagnose(evidence)


def directory_versions(info: BuildInfo) -> tuple[tuple[str, str, str], ...]:
    """(module, version, file) for each module replaced by an absolute directory that
    records its version (containerd's version/version.go: `Version = "1.6.20+unknown"`)."""
    found = []
    for module in info.deps:
        replace = module.replace
        if replace is None or not os.path.isabs(replace.path):
            continue
        for name in VERSION_FILES:
            path = os.path.join(replace.path, name)
            try:
                with open(path, encoding="utf-8", errors="replace") as handle:
                    match = VERSION_ASSIGNMENT.search(handle.read(64 * 1024))
            except OSError:
                continue
            if match and version_key(match[1]) is not None:
                found.append((module.path, match[1], path))
                break
    return tuple(found)


def _archive_name(soname: str) -> str:
    return soname.split(".so", 1)[0] + ".a"

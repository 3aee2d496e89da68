"""The report model: one tree of frozen dataclasses, built from facts already gathered.

Sections follow DESIGN.md ("The report"): the input, what it needs unbundled, the
artifact, hazards, the static build, and the verdict. Renderers live in `report_render.py`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from bundler import __version__
from bundler.compiled_paths import CompiledPaths
from bundler.diagnose import Diagnosis
from bundler.elf import ElfFacts
from bundler.glibc import is_glibc
from bundler.golang import BuildInfo
from bundler.hazards import Hazard
from bundler.inventory import LicenceKind, Package
from bundler.nss import NssCoverage
from bundler.nss import summary as nss_summary
from bundler.requirements import GlibcNeed, OtherNeed, Requirements
from bundler.resolve import Closure
from bundler.start_modes import StartMode
from bundler.static import StaticContents

REPORT_FORMAT_VERSION = 2  # 2: compiled_paths, carrying; the uncarried-files hazard
LIBC_DEST = "lib/libc.so.6"  # where every artifact keeps its libc (the glibc it brings)
# Which to ship: the static build, the artifact, or the static build once its high
# hazards are fixed (the artifact until then); compare.decide chooses.
Ship = Literal["static", "artifact", "static-after-fixes"]


@dataclass(frozen=True)
class InputSummary:
    path: str
    sha256: str
    arch: str
    size: int
    kind: str
    linkage: str  # "dynamic" or "static"
    interpreter: str | None


@dataclass(frozen=True)
class LibraryLine:
    name: str
    path: str
    realpath: str
    reason: str
    glibc: bool
    size: int


@dataclass(frozen=True)
class Needs:
    glibc_program: GlibcNeed | None
    glibc_closure: GlibcNeed | None
    other: tuple[OtherNeed, ...]
    libraries: tuple[LibraryLine, ...]
    unresolved: tuple[str, ...]


@dataclass(frozen=True)
class RuntimePart:
    """Something glibc loads at run time, and whether the artifact carries it."""

    name: str
    included: bool
    note: str
    # What the program's own lookups would load but the build root could not give (NSS
    # modules nsswitch.conf names for a database it looks up): the `missing-nss` gate
    # (gates.py) reads this, not the note.
    missing: tuple[str, ...] = ()


@dataclass(frozen=True)
class PackageLine:
    """A package the artifact's files came from, as the report lists it."""

    name: str
    version: str
    architecture: str
    source: str
    source_version: str
    licence: str  # SPDX expression, or NOASSERTION
    kind: LicenceKind
    files: int  # how many of the artifact's files it installed


@dataclass(frozen=True)
class Licensing:
    """Whose the artifact's files are, and the terms that come with shipping them."""

    packages: tuple[PackageLine, ...]  # sorted by name and architecture
    copyleft: int  # packages by licence kind: their terms travel with the artifact
    permissive: int
    unknown: int  # no machine-readable copyright file: read .bundle/licenses/PACKAGE
    unpackaged: tuple[str, ...]  # files no package database names (the program, usually)
    note: str  # the package database read, or why there was none


def licensing_of(packages: tuple[Package, ...], files: Iterable[tuple[str, str | None]],
                 note: str) -> Licensing:
    """The report's licence section from the packages and (dest, package key) of the
    artifact's copied files (made files, such as launchers, have no source to own)."""
    counted: dict[str, int] = {}
    unpackaged = []
    for dest, key in files:
        if key is None:
            unpackaged.append(dest)
        else:
            counted[key] = counted.get(key, 0) + 1
    lines = tuple(PackageLine(p.name, p.version, p.architecture, p.source, p.source_version,
                              p.licence, p.licence_kind, counted.get(p.key, 0))
                  for p in sorted(packages, key=lambda p: p.key))
    kinds = [p.licence_kind for p in packages]
    return Licensing(lines, kinds.count("copyleft"), kinds.count("permissive"),
                     kinds.count("unknown"), tuple(sorted(unpackaged)), note)


@dataclass(frozen=True)
class ArtifactSummary:
    out: str | None
    format: str | None
    files: int
    raw_size: int
    compressed_size: int | None
    launcher: str
    interpreter: str
    prefix: str
    glibc: str | None
    min_kernel: str | None
    runtime_parts: tuple[RuntimePart, ...]
    launcher_type: str = "sh"  # what bin/NAME is: "native" or "sh"
    launcher_note: str = ""  # why, and what it costs (native_launcher.launcher_note)
    nss: NssCoverage | None = None  # which nsswitch.conf sources it serves (nss.py)
    sealed: tuple[str, ...] = ()  # host paths the bundled glibc never opens (sealing.py)
    unsealed: tuple[str, ...] = ()  # those it still may, and why
    start_modes: tuple[StartMode, ...] = ()  # what holds in each way of starting it
    # The package lib/libc.so.6 came from, "libc6 2.36-9+deb12u14": the distribution's
    # patch level, which `glibc` (the upstream release) does not tell (None: not packaged)
    glibc_package: str | None = None
    # OUT's sha256 (the archive file's; `compressed_size` is its bytes): None for a
    # directory, and in the report.md the artifact carries, which cannot hold its own hash
    sha256: str | None = None


@dataclass(frozen=True)
class StaticSide:
    """The fully static build given with --static, judged on its own."""

    path: str
    sha256: str
    size: int
    compressed_size: int
    really_static: bool
    not_static_because: tuple[str, ...]
    same_program: bool
    identity: str  # how sameness was judged, or the warning
    min_kernel: str | None
    contents: StaticContents | None
    hazards: tuple[Hazard, ...]
    # A Go static build's own diagnosis: what is still in it and the fixes for its versions
    # (a tag it was built with that did nothing is named); None for other programs.
    diagnosis: Diagnosis | None = None


@dataclass(frozen=True)
class RunResult:
    exit_codes: tuple[int, ...]
    output: str  # stdout of the first run (trimmed)
    errors: str  # stderr of the first run (trimmed)
    median_seconds: float


@dataclass(frozen=True)
class RunComparison:
    args: tuple[str, ...]
    runs: int
    static: RunResult
    artifact: RunResult
    outputs_match: bool
    exit_codes_match: bool


@dataclass(frozen=True)
class Verdict:
    ship: Ship
    headline: str
    reasons: tuple[str, ...]
    fixes: tuple[str, ...]


@dataclass(frozen=True)
class RecipeLine:
    """A recipe applied (recipes.py): which, why it applied, what the report says of it."""

    name: str
    recognised: str
    notes: tuple[str, ...]


@dataclass(frozen=True)
class CarriedLine:
    """A file or tree of the build root the artifact carries, where, and who asked."""

    source: str
    dest: str
    why: str


@dataclass(frozen=True)
class EnvLine:
    """A variable the launcher sets for a recipe or `--env` ({top}: the artifact's top)."""

    variable: str
    template: str
    why: str
    scoped: bool  # renamed where it is read: programs it starts do not see it
    scoped_in: tuple[str, ...]


@dataclass(frozen=True)
class Carrying:
    """What the artifact carries besides libraries, and how the programs are pointed at
    it (carry.py: recipes, --data, --helper, --env, --from-package)."""

    recipes: tuple[RecipeLine, ...]
    carried: tuple[CarriedLine, ...]
    helpers: tuple[str, ...]
    env: tuple[EnvLine, ...]
    notes: tuple[str, ...]


@dataclass(frozen=True)
class Report:
    format_version: int
    tool_version: str
    input: InputSummary
    needs: Needs
    artifact: ArtifactSummary | None
    hazards: tuple[Hazard, ...]
    static: StaticSide | None
    runs: RunComparison | None
    verdict: Verdict
    go: BuildInfo | None = None
    diagnosis: Diagnosis | None = None
    licences: Licensing | None = None  # whose the artifact's files are (None: not recorded)
    # Absolute paths compiled into its objects, checked in the build root (None: not scanned)
    compiled_paths: CompiledPaths | None = None
    carrying: Carrying | None = None  # what it carries besides libraries (None: not recorded)


def input_summary(program: ElfFacts, sha256: str) -> InputSummary:
    return InputSummary(
        path=program.path, sha256=sha256, arch=program.ident.machine_name, size=program.size,
        kind=program.kind, linkage="static" if program.is_static else "dynamic",
        interpreter=program.interpreter,
    )


def needs_of(closure: Closure, requirements: Requirements) -> Needs:
    return Needs(
        glibc_program=requirements.program_glibc,
        glibc_closure=requirements.closure_glibc,
        other=requirements.other,
        libraries=tuple(
            LibraryLine(lib.name, lib.path, lib.realpath, lib.reason,
                        is_glibc(lib.soname or lib.name), lib.facts.size)
            for lib in closure.libraries
        ),
        unresolved=tuple(u.describe(placeless=True) for u in closure.unresolved),
    )


def runtime_parts(library_names: set[str], uses_threads: bool,
                  env: tuple[tuple[str, str, bool], ...] = (),
                  missing: tuple[str, ...] = (),
                  nss_cover: NssCoverage | None = None,
                  missing_needed: tuple[str, ...] = ()) -> tuple[RuntimePart, ...]:
    """The run-time-loaded pieces of glibc (GLIBC-NOTES section 2) and their state.

    `env` holds (glibc variable, exported name, scoped) for what the launcher sets;
    `missing` what glibc would load (NSS modules nsswitch.conf names) but the build root
    does not have, `missing_needed` those of them the program's own lookups load (the NSS
    part's `missing`); `nss_cover` which nsswitch.conf sources the artifact serves.
    """
    has_gcc_s = "libgcc_s.so.1" in library_names
    nss = sorted(n for n in library_names if n.startswith("libnss_"))
    gconv = any(n.startswith("gconv/") for n in library_names)
    locales = sorted({n.split("/")[1] for n in library_names
                      if n.startswith("locale/") and n.count("/") >= 2})
    exported = {means: (variable, scoped) for means, variable, scoped in env}
    nss_missing = [n for n in missing if n.startswith("libnss_")]
    absent = (f"; not in the build root, or a library it needs is not, so not bundled: "
              f"{', '.join(nss_missing)} (on a "
              "target whose nsswitch.conf names them, those services' lookups fail and the "
              "next source in the line answers)" if nss_missing else "")
    nss_note = (nss_summary(nss_cover) if nss_cover is not None else
                "files and dns are built into glibc >= 2.34; services the target's "
                "nsswitch.conf names beyond those and not bundled fail their lookups")
    return (
        RuntimePart("NSS modules", bool(nss),
                    (", ".join(nss) + " bundled; " if nss else "") + nss_note + absent,
                    missing_needed),
        RuntimePart("libgcc_s.so.1", has_gcc_s,
                    "in the closure" if has_gcc_s else
                    ("not bundled: pthread_cancel and pthread_exit abort without it"
                     if uses_threads else "not needed unless threads are cancelled")),
        RuntimePart("gconv modules", gconv,
                    "bundled in lib/gconv; " + _env_note("GCONV_PATH", exported)
                    if gconv else "iconv to charsets other than the built-in ones (UTF-8, "
                    "ASCII, ISO-8859-1, UCS) fails: the bundled libc never loads the host's "
                    "modules, which belong to another glibc (--gconv bundles them)"),
        RuntimePart("locales", bool(locales),
                    f"{', '.join(locales)} bundled in lib/locale, used when LANG/LC_ALL/LC_* "
                    "name them; other names fall back to the C locale (the host's locale "
                    "files, compiled by another glibc, are never read); "
                    + _env_note("LOCPATH", exported)
                    if locales else "only C and POSIX: a LANG/LC_* naming any other locale "
                    "falls back to C, since the bundled libc never reads the host's locale "
                    "files, compiled by another glibc (--locale NAME bundles them)"),
    )


def _env_note(means: str, exported: dict[str, tuple[str, bool]]) -> str:
    variable, scoped = exported.get(means, (means, False))
    if scoped:
        return (f"the launcher exports {variable}, which only the bundled libc.so.6 reads "
                f"(renamed from {means} in its copy): programs it starts are not affected")
    return (f"the launcher exports {variable}: programs it starts inherit it (not scoped: "
            f"this glibc's {means} string could not be renamed safely)")


def assemble(input_: InputSummary, needs: Needs, artifact: ArtifactSummary | None,
             hazards: tuple[Hazard, ...], static: StaticSide | None,
             runs: RunComparison | None, verdict: Verdict, go: BuildInfo | None = None,
             diagnosis: Diagnosis | None = None, licences: Licensing | None = None,
             compiled_paths: CompiledPaths | None = None,
             carrying: Carrying | None = None) -> Report:
    return Report(REPORT_FORMAT_VERSION, __version__, input_, needs, artifact, hazards,
                  static, runs, verdict, go, diagnosis, licences, compiled_paths, carrying)


def glibc_package_of(files: Iterable[tuple[str, str | None]],
                     packages: Iterable[Package]) -> str | None:
    """"NAME VERSION" of the package the artifact's lib/libc.so.6 came from, from the
    (dest, package key) of its files; None when no package database named it."""
    key = next((key for dest, key in files if dest == LIBC_DEST), None)
    package = next((p for p in packages if p.key == key), None) if key else None
    return f"{package.name} {package.version}" if package else None


def glibc_text(artifact: ArtifactSummary) -> str:
    """The bundled glibc as the report and the summary show it: the upstream release and,
    when known, its package ("2.36 (libc6 2.36-9+deb12u14)")."""
    release = artifact.glibc or "unknown"
    return f"{release} ({artifact.glibc_package})" if artifact.glibc_package else release


def carried(artifact: ArtifactSummary) -> frozenset[str]:
    """The run-time parts of glibc the artifact carries, by name."""
    return frozenset(p.name for p in artifact.runtime_parts if p.included)

"""`bundle BINARY... -o OUT`: resolve, plan, patch, render, write. The I/O edge.

The staging directory sits beside OUT (same file system, so nothing large crosses
devices) and is removed whatever happens.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import posixpath
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from bundler import __version__, gconv, locales
from bundler.archive import (
    MULTITHREAD_FROM,
    ZSTD_LEVEL,
    Digest,
    Entry,
    OutputWriter,
    digests_ahead,
    open_output,
    output_format,
    planned_size,
    sha256_of,
    source_date_epoch,
)
from bundler.build_report import artifact_summary, build_report
from bundler.carry import Carry, EnvValue, Helper
from bundler.choices import SBOM_FORMATS
from bundler.compiled_paths import scan_plan
from bundler.elf import refuse_hostile_layout
from bundler.errors import EnvironmentUnfitError, InputError
from bundler.exhaustive import assert_never
from bundler.framed_zstd import AHEAD_FROM, AheadFrames, ahead_pool
from bundler.gathering import Gathered, gather
from bundler.golang import BuildInfo, read_build_info
from bundler.inputs import SysrootInput, note_substitutions, sysroot_inputs
from bundler.inventory import GoModule, Inventory, Provenance
from bundler.launcher import render_launcher
from bundler.manifest import (
    FORMAT_VERSION,
    MANIFEST_PATH,
    NOTICE_KIND,
    REPORT_PATH,
    SBOM_KIND,
    SBOM_PATHS,
    SBOM_SUFFIXES,
    SOURCES_PATH,
    ElfEdit,
    EnvRecord,
    Extracted,
    FileRecord,
    Manifest,
    Patched,
    archived_size,
    dump,
)
from bundler.native_launcher import Launchers, build_launchers, warm
from bundler.notices import carried_licences, inventory_of, licence_path, sources_notice
from bundler.outcome import BuildResult
from bundler.package_meta import PackageMeta
from bundler.packaging import package_format, write_package
from bundler.patch_worker import PatchWorker
from bundler.plan import (
    DATA_MODE,
    BundlePlan,
    GlibcCopies,
    PlanOptions,
    RuntimeNeeds,
    StagedFile,
    make_plan,
)
from bundler.program_facts import program_facts
from bundler.provenance import find_provenance, go_modules, path_in_tree
from bundler.report_model import Report, licensing_of
from bundler.report_render import report_markdown
from bundler.resolve import Closure, Library, ResolveOptions, closure_objects
from bundler.runtime_loads import RuntimeLoads, resolve_programs, uses_threads
from bundler.scoping import apply_renames
from bundler.scratch import make_dir, sweep
from bundler.signals import (
    checkpoint,
    deferred_signals,
    forget_written,
    note_written,
    stop_if_any_received,
)
from bundler.static_build import static_side
from bundler.sysroot import Sysroot
from bundler.verdict import completed


@dataclass(frozen=True)
class BuildRequest:
    binaries: tuple[str, ...]
    out: str | None
    sysroot: str = "/"
    resolve: ResolveOptions = field(default_factory=ResolveOptions)
    plan: PlanOptions = field(default_factory=PlanOptions)
    add: tuple[str, ...] = ()  # extra shared objects (dlopen'd plugins) for lib/
    nss: str = "auto"  # NSS modules: auto (from the build root's nsswitch.conf), none, LIST
    gconv: str | None = None  # gconv modules: "all" or a list of charsets
    locales: tuple[str, ...] = ()  # compiled locales: names, or ("all",)
    static: str | None = None  # compare mode: the fully static build
    run_args: tuple[str, ...] | None = None  # compare mode: run both with these
    sbom: tuple[str, ...] = SBOM_FORMATS  # SBOM formats, inside and beside OUT; () for none
    # -o NAME.deb|.rpm|.oci.tar: the package's own facts (name "" = the artifact's name)
    package: PackageMeta = field(default_factory=lambda: PackageMeta(""))
    data: tuple[Carry, ...] = ()  # --data SRC[:DEST]
    helpers: tuple[Helper, ...] = ()  # --helper PROG[:DEST]
    env: tuple[EnvValue, ...] = ()  # --env NAME=VALUE
    from_package: bool = False  # --from-package: the files of the first program's package
    recipes: bool = True  # --no-recipes turns the built-in recipes off


def default_out(name: str) -> str:
    return f"./{name}.tar.zst"


def build(request: BuildRequest, patcher: PatchWorker | None = None) -> BuildResult:
    """Write the artifact. `patcher`: a worker to reuse across builds (the fuzzer's);
    by default one is taken (prestarted by the console script) and stopped after."""
    if not request.binaries:
        raise InputError("no BINARY given")
    if request.out is not None:
        refuse_inputs_as_output(request.out, "-o", _inputs(request))
    if patcher is not None:
        try:
            return _build_output(request, patcher)
        finally:
            patcher.drain()
    taken = PatchWorker.take()  # importing LIEF meanwhile
    try:
        result = _build_output(request, taken)
    except BaseException:
        taken.kill()  # its work is thrown away: no waiting for the job it is on
        raise
    taken.close()
    return result


def _inputs(request: BuildRequest) -> tuple[str, ...]:
    return (*request.binaries, *request.add, *((request.static,) if request.static else ()))


def refuse_inputs_as_output(out: str, option: str, inputs: Iterable[str]) -> None:
    """An output named like an input (or, for `-o DIR/`, a directory holding one) would
    replace it: refused before any work. Symlinks are followed on both sides (a link to
    the input is refused too, though the rename would only replace the link)."""
    as_directory = out.endswith("/")
    target = out.rstrip("/") or out
    beside = [target + suffix for suffix in (".sha256", *SBOM_SUFFIXES.values())]
    targets = [target, *beside]  # a directory gets no .sha256, but its SBOMs beside it
    for path in inputs:
        real = os.path.realpath(path)
        for candidate in targets:
            named = os.path.realpath(candidate)
            if real == named or _same_file(path, candidate):
                raise InputError(f"{option} {out}: is the input {path}; writing it would "
                                 "replace the input")
            if as_directory and real.startswith(named.rstrip("/") + "/"):
                raise InputError(f"{option} {out}: holds the input {path}; replacing the "
                                 "directory would delete it")


def _same_file(first: str, second: str) -> bool:
    try:
        return os.path.samefile(first, second)
    except OSError:
        return False


def _build_output(request: BuildRequest, patcher: PatchWorker) -> BuildResult:
    fmt = package_format(request.out)
    return _build(request, patcher) if fmt is None else _build_package(request, patcher, fmt)


def _build_package(request: BuildRequest, patcher: PatchWorker, fmt: str) -> BuildResult:
    """-o NAME.deb|.rpm|.oci.tar: the artifact written as a directory in a staging
    directory beside OUT, then wrapped by the package writer; OUT, OUT.sha256 and the
    SBOMs (of the artifact's files) beside OUT, as for an archive."""
    assert request.out is not None
    out = request.out
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent):
        raise InputError(f"-o {out}: directory {parent} does not exist")
    sweep(parent)
    try:
        held = make_dir(parent, f"{os.path.basename(out)}.package")
    except OSError as exc:
        raise EnvironmentUnfitError(
            f"-o {out}: cannot write in {parent}: {exc.strerror or exc}") from None
    try:
        # Not in the locked staging directory itself: the inner build locks its OUT's
        # directory (flock locks of two descriptors conflict within one process).
        os.mkdir(os.path.join(held.path, "out"))
        inner = os.path.join(held.path, "out", "artifact")
        result = _build(dataclasses.replace(request, out=inner + "/"), patcher)
        forget_written()  # staged, not delivered: a signal still stops it
        stop_if_any_received()
        meta = request.package
        meta = dataclasses.replace(meta, name=meta.name or result.plan.name)
        with deferred_signals():
            digest, size = write_package(fmt, os.path.join(inner, result.plan.name),
                                         result.manifest, meta, out, source_date_epoch())
            note_written(out)
        for suffix in SBOM_SUFFIXES.values():
            if os.path.exists(inner + suffix):
                os.replace(inner + suffix, out + suffix)
            elif os.path.lexists(out + suffix):  # an earlier build's, not this one's
                os.unlink(out + suffix)
    finally:
        held.discard()
    report = completed(result.report, out, fmt, size, result.report.runs, sha256=digest)
    return dataclasses.replace(result, out=out, format=fmt, output_size=size, sha256=digest,
                               report=report)


def _build(request: BuildRequest, patcher: PatchWorker) -> BuildResult:
    sysroot = Sysroot(request.sysroot)
    programs = sysroot_inputs(request.binaries, sysroot, "program")
    patcher.prepare(programs[0].path)  # LIEF parses the program while this process resolves
    with ThreadPoolExecutor(1, "bundle-launcher") as compiler, _hash_pool() as hasher:
        # the launcher compiled (on a machine's first build) while this process resolves
        compiler.submit(warm, request.plan.launcher_type, programs[0].path)
        return _build_resolved(request, patcher, sysroot, programs, compiler, hasher)


@contextlib.contextmanager
def _hash_pool() -> Iterator[Executor]:
    """A thread hashing the closure's files while this one plans (`_hash_ahead`); on the
    way out its queued files are dropped, not hashed."""
    pool = ThreadPoolExecutor(1, "bundle-hash")
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _hash_ahead(pool: Executor, closures: Iterable[Closure]) -> Callable[[str], str]:
    """sha256_of for the plan, with every library and loader of `closures` hashed ahead,
    in `pool`, while this thread lays out and edits the plan: hashlib and the reads let go
    of the GIL, so the hashing runs on the core the plan leaves idle (ffmpeg: 240 MB,
    0.19 s of the plan's 0.56 s). The SHA-1 the archive's digests need is taken in the same
    read (digests_ahead), and the archive takes both for the same unchanged file. A file
    the pool could not hash is hashed here again, so that its error is the one this thread
    would have met."""
    futures: dict[str, Future[str]] = {}
    for closure in closures:
        paths = [lib.host_path for lib in closure.libraries]
        if closure.loader is not None:
            paths.append(closure.loader.host_path)
        for path in paths:
            if path not in futures:
                futures[path] = pool.submit(digests_ahead, path)

    def digest(path: str) -> str:
        ahead = futures.get(path)
        if ahead is not None:
            with contextlib.suppress(Exception):
                return ahead.result()
        return sha256_of(path)

    return digest


def _build_resolved(request: BuildRequest, patcher: PatchWorker, sysroot: Sysroot,
                    programs: tuple[SysrootInput, ...], compiler: ThreadPoolExecutor,
                    hasher: Executor) -> BuildResult:
    plugins = sysroot_inputs(request.add, sysroot, "--add object")
    note_substitutions((*programs, *plugins))  # the sysroot's copy of a host path
    closures, added, runtime = resolve_programs([p.path for p in programs],
                                                [p.path for p in plugins], sysroot,
                                                request.resolve, request.nss)
    hashed = _hash_ahead(hasher, [*closures, *added])
    closures, added, runtime, found = _with_carried(request, sysroot, programs, plugins,
                                                    closures, added, runtime)
    facts = program_facts(closures[0], sysroot)
    gconv_data, gconv_env = gconv.staged_modules(request.gconv, sysroot, closures[0])
    locale_data, locale_env = locales.staged_locales(
        tuple(dict.fromkeys((*request.locales, *found.locales))), sysroot)
    for setting in found.env:
        if any(setting.means == e.means for e in gconv_env + locale_env):
            raise InputError(f"{setting.why} {setting.means}: set by the artifact itself "
                             "(--gconv, --locale)")
    plan = make_plan(closures, facts.glibc_release, facts.min_kernel, request.plan, added,
                     gconv_data + locale_data, gconv_env + locale_env + found.env,
                     read_glibc_copies(closures[0], facts.libc),
                     RuntimeNeeds(runtime.missing, runtime.nss_lookups,
                                  runtime.missing_needed), hashed,
                     found.layout(closures, len(programs)), _read_source)
    plan = dataclasses.replace(plan, carried=found.trees.carried, recipes=found.recipes,
                               declined=found.declined, carry_notes=found.trees.notes)
    if request.run_args is not None and request.static is None:
        raise InputError("--run compares two programs: give the static build with --static")
    static = (static_side(request.static, closures[0].program, plan.programs[0])
              if request.static else None)
    threads = uses_threads(closure_objects(closures[0]))
    out = request.out or default_out(plan.name)
    if request.out is None:
        refuse_inputs_as_output(out, "-o", _inputs(request))
    fmt = output_format(out)
    parent = os.path.dirname(os.path.abspath(out.rstrip("/") or out))
    if not os.path.isdir(parent):
        raise InputError(f"-o {out}: directory {parent} does not exist")
    epoch = source_date_epoch()
    with deferred_signals():  # Ctrl-C/SIGTERM/SIGHUP while patching must clean up too
        sweep(parent)  # what builds killed by SIGKILL left here
        try:
            held = make_dir(parent, f"{plan.name}.staging")
        except OSError as exc:  # e.g. a read-only or immutable directory
            raise EnvironmentUnfitError(
                f"-o {out}: cannot write in {parent}: {exc.strerror or exc}") from None
        staging = held.path
        stack = contextlib.ExitStack()
        try:
            # The patch jobs first: the worker patches while the launchers are compiled,
            # provenance is read and the compiled-in paths are scanned (measured on node:
            # the job used to start 1.9 s into the build, after all of them).
            submitted = _submit_patches(plan, staging, patcher)
            # the large patched programs' unchanged bytes are compressed meanwhile
            # (framed_zstd.py), and the native launchers compiled (a compiler process)
            large = _source_bytes(plan) >= MULTITHREAD_FROM  # framed, if a .tar.zst
            ahead = (_compress_ahead(plan, stack.enter_context(ahead_pool()))
                     if large and fmt == "zst" else {})
            compiling = compiler.submit(build_launchers, plan, request.plan.launcher_type,
                                        closures[0].arch.multiarch)
            # provenance and the compiled-in paths are read while a large artifact's files
            # are written: neither changes what goes in before .bundle/
            analysis = ThreadPoolExecutor(1, "bundle-analysis")
            stack.callback(analysis.shutdown, wait=True, cancel_futures=True)
            if large:
                stack.callback(sys.setswitchinterval, sys.getswitchinterval())
                sys.setswitchinterval(ANALYSIS_SWITCH_SECONDS)
            reading = analysis.submit(_provenance, sysroot, plan, closures, facts.go)
            scanning = analysis.submit(scan_plan, plan, sysroot)
            launchers = compiling.result()
            entries, staged = _stage(plan, staging, patcher, launchers.native, submitted,
                                     ahead)
            if not large:  # written in a moment: these first
                reading.result(), scanning.result()
            with open_output(out, epoch, planned_size(entries)) as writer:
                # .bundle/ last: the manifest holds the digests and sizes taken while
                # writing (patched copies were still being made when writing began); the
                # SBOMs hold them too, and the manifest theirs.
                digests = writer.add(entries)
                provenance, compiled = reading.result(), scanning.result()
                staged = _recorded_sources(
                    staged, _workspace_files(programs + plugins, provenance), provenance.tree)
                records = _with_packages(
                    _fill_digests(plan, staged, digests, patcher.rewriter), provenance)
                records += _add_notices(plan, staging, provenance, writer)
                inventory = inventory_of(plan, records, provenance, closures, __version__,
                                         epoch, {path.removeprefix(f"{plan.name}/"): d.sha1
                                                 for path, d in writer.written.items()})
                records += _add_sboms(plan, staging, inventory, request.sbom, writer)
                manifest = _manifest(plan, launchers, records, provenance)
                report = build_report(facts, plan,
                                      artifact_summary(plan, launchers, manifest.files, threads,
                                                       manifest.packages),
                                      static, licensing_of(
                                          provenance.packages,
                                          [(f.dest, f.package) for f in provenance.files
                                           if f.source is not None], provenance.note),
                                      compiled_paths=compiled)
                writer.add([_stage_manifest(plan, staging, manifest),
                            _stage_report(plan, staging, report)])
            digest = writer.archive_sha256
        except KeyboardInterrupt:  # (a signal) the worker may be writing into staging:
            patcher.kill()  # stopped first, or the removal races its new file
            raise
        except BaseException:
            patcher.drain()  # its queued jobs end (each bounded) before staging goes
            raise
        finally:
            stack.close()  # the helper threads: queued work dropped, running work ends
            held.discard()
    raw = archived_size(manifest.files)
    size = os.path.getsize(out) if fmt != "dir" else raw
    runs = None
    if request.run_args is not None and static is not None:
        from bundler.integrity import unpacked  # compare runs only: off a plain build's start
        from bundler.side_by_side import run_both

        with unpacked(out) as checked:
            launcher = os.path.join(checked.top, "bin", plan.programs[0])
            runs = run_both(static.path, launcher, request.run_args)
    report = completed(report, out, fmt, size if fmt != "dir" else None, runs, sha256=digest)
    return BuildResult(plan, launchers, out, fmt, manifest, raw, size, digest, tuple(closures),
                       report)



# While the analysis thread runs Python, the writer waits for the GIL after each read,
# hash and compression call: 5 ms each at the default switch interval. A small artifact is
# written in a moment, so there the analysis comes first (overlapped, sqlite3 took 15% more
# wall time); for a large one the interval is shortened while both run.
ANALYSIS_SWITCH_SECONDS = 0.0005
MAX_CARRY_ROUNDS = 4  # recipes recognised in what carrying brought (python's _ssl.so)


def _with_carried(request: BuildRequest, sysroot: Sysroot, programs: tuple[SysrootInput, ...],
                  plugins: tuple[SysrootInput, ...], closures: list[Closure],
                  added: list[Closure], runtime: RuntimeLoads,
                  ) -> tuple[list[Closure], list[Closure], RuntimeLoads, Gathered]:
    """The closures with what carrying adds (helpers, the programs and plugins of carried
    trees), and what was gathered. The recipes are recognised again in what was added,
    until nothing new applies: python's lib-dynload/_ssl.so brings libcrypto, whose
    recipe carries openssl.cnf and the providers."""
    def gathered(everything: list[Closure]) -> Gathered:
        return gather(sysroot, programs, everything, request.data, request.helpers,
                      request.env, request.from_package, request.recipes)

    given = [p.path for p in programs]
    added_given = [p.path for p in plugins]
    found = gathered([*closures, *added])
    for _ in range(MAX_CARRY_ROUNDS):
        if not (found.trees.files or found.helpers):
            break
        closures, added, runtime = resolve_programs(
            [*given, *(p for p in found.program_paths if p not in given)],
            [*added_given, *(p for p in found.plugin_paths if p not in added_given)],
            sysroot, request.resolve, request.nss)
        again = gathered([*closures, *added])
        if (again.recipes, again.declined) == (found.recipes, found.declined):
            break
        found = again
    else:
        raise InputError("the recipes kept finding new programs to carry after "
                         f"{MAX_CARRY_ROUNDS} rounds; bundle with --no-recipes and --data")
    return closures, added, runtime, found


def read_glibc_copies(closure: Closure, libc: Library | None) -> GlibcCopies:
    """The bytes of the loader and libc.so.6 the artifact copies, for the plan's string
    edits (a closure without a loader is refused by make_plan)."""
    loader = _read_source(closure.loader.host_path) if closure.loader is not None else b""
    return GlibcCopies(loader, libc.host_path if libc else None,
                       _read_source(libc.host_path) if libc else None)




def _stage_report(plan: BundlePlan, staging: str, report: Report) -> Entry:
    """`.bundle/report.md`: the report as it stands before compression and runs, with
    the inputs named by file name only (`placeless`)."""
    path = os.path.join(staging, "report.md")
    with open(path, "w") as handle:
        handle.write(report_markdown(placeless(report)))
    return Entry(f"{plan.name}/{REPORT_PATH}", "file", 0o644, source=path)


def placeless(report: Report) -> Report:
    """The report as the artifact carries it: the program (and the --static build) named
    by file name, not by the path it was given as (`capp`, `./capp`, `$PWD/capp` and a
    copy elsewhere make the same bytes; the terminal summary still shows the paths)."""
    static = report.static
    if static is not None:
        static = dataclasses.replace(static, path=os.path.basename(static.path))
    return dataclasses.replace(
        report, input=dataclasses.replace(report.input,
                                          path=os.path.basename(report.input.path)),
        static=static)


def _workspace_files(given: Iterable[SysrootInput], provenance: Provenance) -> set[str]:
    """The programs and --add objects the user gave that no package of the build root
    installed: their own builds, wherever their workspace lies."""
    packaged = {f.source for f in provenance.files if f.package is not None}
    return {item.path for item in given if item.path not in packaged}


def recorded_source(path: str, workspace: Iterable[str], tree: str = "/") -> str:
    """The manifest's `source` of a copied file. A program or --add object of the user's
    workspace is recorded by file name only: where a checkout lies is no fact of the
    artifact, and recording it would make two CI workspaces disagree on the sha256. Files
    of the build root (a packaged /usr/bin/sqlite3 given as the program too) keep their
    path there as the target sees it (/usr/lib/x86_64-linux-gnu/libz.so.1), a fact
    provenance rests on, whatever directory holds the root (`tree`: Provenance.tree)."""
    if path in workspace:
        return os.path.basename(path)
    return path_in_tree(tree, path)


def _submit_patches(plan: BundlePlan, staging: str, patcher: PatchWorker) -> dict[str, str]:
    """Hand every copy that LIEF patches to the worker now; their staged paths by dest."""
    submitted = {}
    for item in plan.files:
        if item.patch is not None and item.offset is None:
            path = _materialise(plan, item, staging, patcher, {})
            assert path is not None  # a patched copy has a staged path
            submitted[item.dest] = path
    return submitted


def _compress_ahead(plan: BundlePlan, pool: Executor) -> dict[str, AheadFrames]:
    """The patched copies whose source's blocks are compressed while LIEF works, those of
    AHEAD_FROM bytes or more; for an artifact that will be a framed .tar.zst (its files make
    MULTITHREAD_FROM or more: the archive decides by the same sizes)."""
    return {item.dest: AheadFrames(item.source, ZSTD_LEVEL, pool) for item in plan.files
            if item.patch is not None and item.source is not None and item.offset is None
            and os.path.getsize(item.source) >= AHEAD_FROM}


def _source_bytes(plan: BundlePlan) -> int:
    """About the bytes the artifact's files will hold, known from the plan (the sources:
    launchers, rendered texts and LIEF's additions are small beside them)."""
    return sum(os.path.getsize(item.source) for item in plan.files
               if item.source is not None and item.kind != "alias" and item.offset is None)



def _recorded_sources(records: list[FileRecord], workspace: Iterable[str], tree: str,
                      ) -> list[FileRecord]:
    """The records with each copied file's `source` as the manifest says it (known once
    provenance is: `recorded_source`); `_stage` gives the host paths."""
    workspace = frozenset(workspace)
    return [dataclasses.replace(r, source=recorded_source(r.source, workspace, tree))
            if r.source else r for r in records]


def _stage(plan: BundlePlan, staging: str, patcher: PatchWorker,
           launchers: Mapping[str, bytes] | None = None,
           submitted: Mapping[str, str] | None = None,
           ahead: Mapping[str, AheadFrames] | None = None,
           ) -> tuple[list[Entry], list[FileRecord]]:
    """Patch and render into `staging`; return archive entries and manifest records (their
    sha256 and size are taken while the archive is written: each file is read once; their
    sources are host paths until `_recorded_sources`)."""
    top = plan.name
    entries = [Entry(top, "dir", 0o755), Entry(f"{top}/.bundle", "dir", 0o755)]
    for directory in sorted({"bin", "libexec", "lib"} | _carried_dirs(plan)):
        entries.append(Entry(f"{top}/{directory}", "dir", 0o755))
    records: list[FileRecord] = []
    for item in plan.files:
        checkpoint()
        content = ((submitted or {}).get(item.dest)
                   or _materialise(plan, item, staging, patcher, launchers or {}))
        if item.kind == "alias":
            entries.append(Entry(f"{top}/{item.dest}", "symlink", 0o777,
                                 link_target=item.link_target))
            records.append(FileRecord(item.dest, "symlink", item.kind,
                                      target=item.link_target))
            continue
        assert content is not None
        ready = functools.partial(patcher.wait, content) if item.patch is not None else None
        entries.append(Entry(f"{top}/{item.dest}", "file", item.mode, source=content,
                             ready=ready, size_hint=_size(item.source) if ready else None,
                             mtime=item.mtime, ahead=(ahead or {}).get(item.dest)))
        records.append(FileRecord(
            item.dest, "file", item.kind, mode=item.mode,  # sha256, size: once archived
            source=item.source,
            loaded_at_run_time=item.runtime, patched=_patched_record(item),
            extracted=None if item.offset is None else Extracted(item.offset, item.length)))
    return entries, records


def _carried_dirs(plan: BundlePlan) -> set[str]:
    """The directories under the top that hold files (usr/, usr/lib/git-core/...): each an
    entry of its own (mode 755), not left to the unpacker to invent."""
    dirs = set()
    for item in plan.files:
        parent = posixpath.dirname(item.dest)
        while parent:
            dirs.add(parent)
            parent = posixpath.dirname(parent)
    return dirs


def _fill_digests(plan: BundlePlan, records: list[FileRecord], digests: dict[str, Digest],
                  rewriter: str | None) -> list[FileRecord]:
    """The records with each file's sha256 and size: those of the bytes archived (a
    source that changed while it was read was refused by archive.py); each copy LIEF
    patched with what wrote it (`rewriter`: the patch worker's, known once they are
    archived)."""
    filled = []
    for record in records:
        if record.type == "file":
            digest = digests[f"{plan.name}/{record.path}"]
            record = dataclasses.replace(record, sha256=digest.sha256, size=digest.size)
        if record.patched is not None and record.patched.elf is not None:
            if rewriter is None:
                raise AssertionError(f"{record.path}: archived before it was patched")
            record = record.written_by(rewriter)
        filled.append(record)
    return filled


def _stage_manifest(plan: BundlePlan, staging: str, manifest: Manifest) -> Entry:
    path = os.path.join(staging, posixpath.basename(MANIFEST_PATH))
    with open(path, "w") as handle:
        handle.write(dump(manifest))
    return Entry(f"{plan.name}/{MANIFEST_PATH}", "file", 0o644, source=path)


def _materialise(plan: BundlePlan, item: StagedFile, staging: str,
                 patcher: PatchWorker, launchers: Mapping[str, bytes]) -> str | None:
    """The host file holding `item`'s bytes: the original, a patched copy, or a launcher
    (the native one compiled for this program, else the sh script)."""
    if item.kind == "alias":
        return None
    if item.kind == "launcher":
        assert item.program is not None
        path = os.path.join(staging, "launcher-" + item.dest.replace("/", "__"))
        launcher = launchers.get(item.dest)
        _write_staged(path, launcher if launcher is not None
                      else render_launcher(plan, item.program, posixpath.dirname(item.dest),
                                           item.args).encode())
        return path
    if (item.kind != "program" and item.kind != "library" and item.kind != "loader"
            and item.kind != "data"):
        assert_never(item.kind)  # every other kind is a copy of its source, below
    assert item.source is not None
    path = os.path.join(staging, item.dest.replace("/", "__"))
    if item.offset is not None:
        _write_staged(path, _extract(item.source, item.offset, item.length or 0))
    elif item.renames and item.patch is None:
        _write_staged(path, apply_renames(_read_source(item.source), item.renames))
    elif item.patch is not None:
        refuse_hostile_layout(item.source)  # before LIEF sees it (elf.py says why)
        source = item.source
        if item.renames:  # a program reading a scoped variable: renamed, then patched
            source = path + ".renamed"
            _write_staged(source, apply_renames(_read_source(item.source), item.renames))
        patcher.submit(source, path, item.patch)  # written meanwhile; Entry.ready waits
    else:
        return item.source
    return path


def _write_staged(path: str, data: bytes) -> None:
    """A staged copy; a full or read-only file system is this machine's problem (exit 3)."""
    try:
        with open(path, "wb") as copy:
            copy.write(data)
    except OSError as exc:
        raise EnvironmentUnfitError(f"cannot write {os.path.dirname(path)}: "
                                    f"{exc.strerror or exc}") from None


def _read_source(path: str, offset: int = 0, length: int = -1) -> bytes:
    try:
        with open(path, "rb") as source:
            source.seek(offset)
            return source.read(length)
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _extract(source: str, offset: int, length: int) -> bytes:
    """`length` bytes of `source` from `offset` (a locale category in locale-archive)."""
    data = _read_source(source, offset, length)
    if len(data) != length:
        raise InputError(f"{source}: ends inside a locale record ({offset}+{length})")
    return data


def _patched_record(item: StagedFile) -> Patched | None:
    """The manifest's note of what was changed in a copy, with the original's identity."""
    if item.patch is None and not item.renames:
        return None
    assert item.source is not None  # only copies of a source are patched or renamed
    return Patched(
        source_sha256=sha256_of(item.source), source_size=_size(item.source),
        elf=None if item.patch is None else ElfEdit(item.patch.interpreter, item.patch.rpath),
        renamed_strings=tuple(sorted({r.original: r.scoped for r in item.renames}.items())))


def _size(path: str | None) -> int | None:
    return os.path.getsize(path) if path else None


def _provenance(sysroot: Sysroot, plan: BundlePlan, closures: list[Closure],
                first_go: BuildInfo | None) -> Provenance:
    """The package of every copied file, and each Go program's modules (by the libexec/
    file holding the program: two names of the same bytes link the same modules)."""
    found = find_provenance(sysroot, [(f.dest, f.source) for f in plan.files
                                      if f.kind != "alias" and f.kind != "launcher"])
    modules: dict[str, tuple[GoModule, ...]] = {}
    for number, (closure, held_by) in enumerate(zip(closures, plan.program_files,
                                                    strict=True)):
        program = held_by.removeprefix("libexec/")  # of the same bytes: the same modules
        if program in modules:
            continue
        info = first_go if number == 0 else read_build_info(closure.program.path)
        if info is not None:
            modules[program] = go_modules(info)
    return dataclasses.replace(found, go_modules=tuple(modules.items()))


def _with_packages(records: list[FileRecord], provenance: Provenance) -> list[FileRecord]:
    """The records with the package each file came from."""
    keys = {f.dest: f.package for f in provenance.files}
    return [dataclasses.replace(r, package=keys.get(r.path)) if r.type == "file" else r
            for r in records]


def _add_notices(plan: BundlePlan, staging: str, provenance: Provenance,
                 writer: OutputWriter) -> list[FileRecord]:
    """Each package's copyright file and the SOURCES notice, archived; their records."""
    carried = carried_licences(provenance)
    licences = [Entry(f"{plan.name}/{path}", "file", DATA_MODE, source=host)
                for path, _, host in carried]
    sources = os.path.join(staging, posixpath.basename(SOURCES_PATH))
    _write_staged(sources, sources_notice(provenance, __version__).encode())
    notice = Entry(f"{plan.name}/{SOURCES_PATH}", "file", DATA_MODE, source=sources)
    digests = writer.add([*licences, notice])
    owners = {licence_path(p): p.key for p in provenance.packages}  # the file is theirs
    recorded = {path: source for path, source, _ in carried}  # as the build root has it
    return ([dataclasses.replace(r, package=owners.get(r.path), source=recorded[r.path])
             for r in _records_of(plan, digests, NOTICE_KIND, licences, carried=True)]
            + _records_of(plan, digests, NOTICE_KIND, [notice], carried=False))


def _add_sboms(plan: BundlePlan, staging: str, inventory: Inventory, formats: tuple[str, ...],
               writer: OutputWriter) -> list[FileRecord]:
    """The SBOMs asked for, in .bundle/ and beside OUT (the same bytes); their records."""
    for name in sorted(SBOM_SUFFIXES.keys() - set(formats)):
        writer.beside(SBOM_SUFFIXES[name], None)  # not asked for: an old one would mislead
    if not formats:
        return []
    from bundler import sbom  # (packageurl, license-expression: only when one is asked for)

    entries = []
    for name in formats:
        text = (sbom.cyclonedx_json(inventory) if name == "cyclonedx"
                else sbom.spdx_json(inventory)).encode()
        path = os.path.join(staging, posixpath.basename(SBOM_PATHS[name]))
        _write_staged(path, text)
        writer.beside(SBOM_SUFFIXES[name], text)
        entries.append(Entry(f"{plan.name}/{SBOM_PATHS[name]}", "file", DATA_MODE,
                             source=path))
    return _records_of(plan, writer.add(entries), SBOM_KIND, entries, carried=False)


def _records_of(plan: BundlePlan, digests: dict[str, Digest], kind: str,
                entries: list[Entry], carried: bool) -> list[FileRecord]:
    """Manifest records of files carried into .bundle/ (their source recorded) or made
    there by the build (no source: the staging copy is nobody's business)."""
    records = []
    for entry in entries:
        digest = digests[entry.path]
        records.append(FileRecord(entry.path.removeprefix(f"{plan.name}/"), "file", kind,
                                  sha256=digest.sha256, size=digest.size, mode=entry.mode,
                                  source=entry.source if carried else None))
    return records


def _manifest(plan: BundlePlan, launchers: Launchers, records: list[FileRecord],
              provenance: Provenance) -> Manifest:
    """The artifact's manifest: the plan as built, with the records of what was archived."""
    return Manifest(
        name=plan.name, arch=plan.arch, prefix=plan.prefix, launcher=plan.launcher,
        loader=f"lib/{plan.loader_name}", glibc=plan.glibc_release,
        min_kernel=plan.min_kernel, programs=plan.programs, missing=plan.missing,
        excluded=plan.excluded,
        environment=tuple(EnvRecord(e.variable, e.means, e.path, e.scoped, e.value, e.why,
                                    e.scoped_in) for e in plan.env),
        runtime_missing=plan.runtime_missing,
        runtime_missing_needed=plan.runtime_missing_needed,
        files=tuple(sorted(records, key=lambda r: r.path)),
        format_version=FORMAT_VERSION, launcher_type=launchers.kind,
        nss=plan.nss.manifest() if plan.nss else None, library_home=plan.library_home,
        sealed=plan.sealed, unsealed=plan.unsealed, tool="bundle", tool_version=__version__,
        packages=provenance.packages, provenance=provenance.note,
        go_modules=provenance.go_modules,
        arguments=tuple(sorted({f.program: f.args for f in plan.files
                                if f.kind == "launcher" and f.args and f.program
                                and f.dest == f"bin/{f.program}"}.items())),
        recipes=tuple(r.name for r in plan.recipes),
        carried=tuple((c.source, c.dest, c.why) for c in plan.carried))

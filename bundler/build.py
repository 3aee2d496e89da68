"""`bundle BINARY... -o OUT`: resolve, plan, patch, render, write. The I/O edge.

The staging directory sits beside OUT (same file system, so nothing large crosses
devices) and is removed whatever happens.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass, field

from bundler import __version__, gconv, locales, nss
from bundler.archive import (
    Digest,
    Entry,
    output_format,
    sha256_of,
    source_date_epoch,
    write_output,
)
from bundler.compare import run_both, static_side, unpacked
from bundler.elf import refuse_hostile_layout
from bundler.errors import EnvironmentUnfitError, InputError
from bundler.exhaustive import assert_never
from bundler.golang import read_build_info
from bundler.hazards import NSS_CALLERS, closure_objects
from bundler.inspection import go_diagnosis, libc_release
from bundler.launcher import render_launcher
from bundler.ldcache import read_ld_so_cache
from bundler.manifest import (
    MANIFEST_PATH,
    REPORT_PATH,
    WrittenFile,
    WrittenRecord,
    written_size,
)
from bundler.native_launcher import build_launchers
from bundler.patch_worker import PatchWorker
from bundler.plan import (
    BundlePlan,
    EnvSetting,
    PlanOptions,
    StagedFile,
    identify,
    make_plan,
    release_key,
)
from bundler.render import report_markdown
from bundler.report import Report
from bundler.reporting import artifact_summary, build_report, uses_threads
from bundler.resolve import Closure, Library, ResolveOptions, resolve_closure
from bundler.scoping import apply_renames, scope_environment
from bundler.scratch import make_dir, sweep
from bundler.sealing import Seal, seal_libc, seal_loader, seal_plan
from bundler.signals import checkpoint, deferred_signals
from bundler.sysroot import Sysroot

MANIFEST_FORMAT = 1


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


@dataclass(frozen=True)
class BuildResult:
    plan: BundlePlan
    out: str
    format: str
    files: tuple[WrittenRecord, ...]  # the manifest's file records
    raw_size: int
    output_size: int
    sha256: str | None
    closures: tuple[Closure, ...]
    report: Report


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
            return _build(request, patcher)
        finally:
            patcher.drain()
    taken = PatchWorker.take()  # importing LIEF meanwhile
    try:
        result = _build(request, taken)
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
    targets = [target] if as_directory else [target, target + ".sha256"]
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


def _build(request: BuildRequest, patcher: PatchWorker) -> BuildResult:
    sysroot = Sysroot(request.sysroot)
    closures = [resolve_closure(path, sysroot, request.resolve) for path in request.binaries]
    added = [resolve_closure(path, sysroot, request.resolve) for path in request.add]
    lookups = nss_lookups([*closures, *added])
    runtime = runtime_loaded(closures) + nss_modules(request.nss, sysroot, closures, lookups,
                                                     request.resolve.library_path)
    if runtime:  # again, with what glibc will dlopen (facts are cached: cheap)
        options = dataclasses.replace(
            request.resolve, runtime_loaded=(*request.resolve.runtime_loaded, *runtime))
        closures = [resolve_closure(path, sysroot, options) for path in request.binaries]
    libc, release = libc_release(closures[0])
    tag = libc.facts.abi_tag if libc else None
    gconv_data, gconv_env = gconv_files(request.gconv, sysroot, closures[0])
    locale_data, locale_env = locale_files(request.locales, sysroot)
    plan = make_plan(closures, release, tag.describe() if tag else None, request.plan, added,
                     gconv_data + locale_data, gconv_env + locale_env)
    plan = glibc_copies_plan(plan, libc)
    found = {name for c in closures for lib in c.libraries for name in (*lib.aliases, lib.name)}
    plan = dataclasses.replace(plan, runtime_missing=tuple(
        sorted(name for name in set(runtime) if name not in found)),
        nss=nss_coverage(lookups, plan, release))
    plan = identify(plan, sha256_of)  # last: the ID covers every edit of lib/
    if request.run_args is not None and request.static is None:
        raise InputError("--run compares two programs: give the static build with --static")
    static = (static_side(request.static, closures[0].program, plan.programs[0])
              if request.static else None)
    threads = uses_threads(closure_objects(closures[0]))
    go = read_build_info(closures[0].program.path)
    diagnosis = go_diagnosis(closures[0], go, sysroot) if go is not None else None
    out = request.out or default_out(plan.name)
    if request.out is None:
        refuse_inputs_as_output(out, "-o", _inputs(request))
    fmt = output_format(out)
    parent = os.path.dirname(os.path.abspath(out.rstrip("/") or out))
    if not os.path.isdir(parent):
        raise InputError(f"-o {out}: directory {parent} does not exist")
    epoch = source_date_epoch()
    plan, launchers = build_launchers(plan, request.plan.launcher_type,
                                      closures[0].arch.multiarch)
    with deferred_signals():  # Ctrl-C/SIGTERM/SIGHUP while patching must clean up too
        sweep(parent)  # what builds killed by SIGKILL left here
        try:
            held = make_dir(parent, f"{plan.name}.staging")
        except OSError as exc:  # e.g. a read-only or immutable directory
            raise EnvironmentUnfitError(
                f"-o {out}: cannot write in {parent}: {exc.strerror or exc}") from None
        staging = held.path
        try:
            entries, records = _stage(plan, staging, patcher, launchers)

            def trailer(digests: dict[str, Digest]) -> list[Entry]:
                """.bundle/ last: the manifest holds the digests and sizes taken while
                writing (patched copies were still being made when writing began)."""
                _fill_digests(plan, records, digests)
                inside = build_report(
                    closures[0], libc, release, plan,
                    artifact_summary(plan, records, None, None, None, threads),
                    static, None, go, diagnosis)
                return [_stage_manifest(plan, staging, records),
                        _stage_report(plan, staging, inside)]

            digest = write_output(entries, out, epoch, trailer=trailer).archive_sha256
        except KeyboardInterrupt:  # (a signal) the worker may be writing into staging:
            patcher.kill()  # stopped first, or the removal races its new file
            raise
        except BaseException:
            patcher.drain()  # its queued jobs end (each bounded) before staging goes
            raise
        finally:
            held.discard()
    raw = sum(written_size(r) for r in records if r["type"] == "file")
    size = os.path.getsize(out) if fmt != "dir" else raw
    runs = None
    if request.run_args is not None and static is not None:
        with unpacked(out) as top:
            launcher = os.path.join(top, "bin", plan.programs[0])
            runs = run_both(static.path, launcher, request.run_args)
    report = build_report(closures[0], libc, release, plan,
                          artifact_summary(plan, records, out, fmt,
                                           size if fmt != "dir" else None, threads),
                          static, runs, go, diagnosis)
    return BuildResult(plan, out, fmt, tuple(records), raw, size, digest, tuple(closures),
                       report)


def runtime_loaded(closures: list[Closure]) -> tuple[str, ...]:
    """What glibc will dlopen for these programs: libgcc_s.so.1 when they use threads.

    pthread_cancel and pthread_exit unwind through libgcc_s; without it glibc aborts with
    "libgcc_s.so.1 must be installed for pthread_cancel to work" (GLIBC-NOTES section 2).
    """
    threads = any(uses_threads(closure_objects(c)) for c in closures)
    return ("libgcc_s.so.1",) if threads else ()


def gconv_files(choice: str | None, sysroot: Sysroot, closure: Closure,
                ) -> tuple[tuple[StagedFile, ...], tuple[EnvSetting, ...]]:
    """`--gconv`: the modules for lib/gconv and the GCONV_PATH the launcher sets."""
    if not choice:
        return (), ()
    directory = gconv.gconv_dir(sysroot, closure.search.system_dirs if closure.search else ())
    if directory is None:
        raise InputError(f"--gconv {choice}: no gconv-modules in {sysroot.root}")
    files = gconv.select_files(choice, sysroot, directory)
    data = tuple(StagedFile(gconv.relative_dest(f.name), "data", 0o644, source=f.source)
                 for f in files)
    return data, (EnvSetting("GCONV_PATH", "GCONV_PATH", "lib/gconv"),)


def locale_files(names: tuple[str, ...], sysroot: Sysroot,
                 ) -> tuple[tuple[StagedFile, ...], tuple[EnvSetting, ...]]:
    """`--locale`: compiled locales for lib/locale and the LOCPATH the launcher sets."""
    if not names:
        return (), ()
    files = locales.select_files(locales.validate_names(names), sysroot)
    data = tuple(StagedFile(locales.relative_dest(f.dest), "data", 0o644, source=f.source,
                            offset=f.offset, length=f.length) for f in files)
    return data, (EnvSetting("LOCPATH", "LOCPATH", "lib/locale"),)


def glibc_copies_plan(plan: BundlePlan, libc: Library | None) -> BundlePlan:
    """The string edits of the bundled libc.so.6 and loader: the launcher's variables
    renamed in libc (scoping.py), host paths sealed in both (sealing.py)."""
    loader = next(f for f in plan.files if f.kind == "loader")
    libc_entry = None if libc is None else next(
        (f for f in plan.files if f.source == libc.host_path and f.kind == "library"), None)
    if loader.source is None:
        return plan
    with open(loader.source, "rb") as handle:
        loader_bytes = handle.read()
    libc_bytes = b""
    if libc is not None and libc_entry is not None:
        with open(libc.host_path, "rb") as handle:
            libc_bytes = handle.read()
        if plan.env:
            plan = scope_environment(plan, libc_entry.dest, libc_bytes, loader_bytes,
                                     sha256_of(libc.host_path))
    seals = [(loader.dest, seal_loader(loader_bytes, keep_host_search=bool(plan.excluded)))]
    if libc_entry is not None:
        privileged = any(f.privileged for f in plan.files)
        gconv = any(e.means == "GCONV_PATH" for e in plan.env)
        home = f"{plan.prefix}/lib/gconv" if privileged and gconv else None
        seals.append((libc_entry.dest, seal_libc(libc_bytes, gconv_home=home)))
    else:
        seals.append(("lib/libc.so.6", Seal((), (), ("libc.so.6: not bundled",))))
    return seal_plan(plan, seals)


def nss_lookups(closures: list[Closure]) -> bool:
    """Whether the programs, their libraries or the --add plugins call an NSS lookup.

    Closure-wide: glibc does the lookup for whoever calls getaddrinfo or getpwnam, a
    library (libcurl, libpam) as much as the program; a Go program with the cgo resolver
    or cgo os/user imports getaddrinfo/getpwuid_r itself. glibc's own objects are left out
    (closure_objects): they call into NSS only for a caller that is counted here.
    """
    return any(NSS_CALLERS.intersection(f.imported_symbols)
               for c in closures for _, f in closure_objects(c))


def nss_modules(choice: str, sysroot: Sysroot, closures: list[Closure], lookups: bool,
                library_path: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The libnss_*.so.2 modules to bundle for `--nss`, judged by the bundled libc; auto
    looks for modules where the loader looks for libraries (nss.py says why all of them)."""
    _, release = libc_release(closures[0])
    first = closures[0]
    dirs = [*library_path, *(first.search.system_dirs if first.search else ())]
    cache = read_ld_so_cache(sysroot).cache if choice == "auto" and lookups else None
    if cache is not None:
        dirs += [posixpath.dirname(e.path) for e in cache.entries
                 if e.flags in first.arch.cache_flags and e.is_baseline
                 and nss.source_of(posixpath.basename(e.name)) is not None]
    return nss.module_names(choice, sysroot, release_key(release), lookups, dirs)


def nss_coverage(lookups: bool, plan: BundlePlan, release: str | None) -> nss.NssCoverage:
    """Which sources the planned artifact serves: its lib/libnss_*.so.2 and its glibc."""
    modules = [posixpath.basename(f.dest) for f in plan.files
               if f.kind == "library" and nss.source_of(posixpath.basename(f.dest))]
    return nss.coverage(lookups, modules, release, release_key(release))


def _stage_report(plan: BundlePlan, staging: str, report: Report) -> Entry:
    """`.bundle/report.md`: the report as it stands before compression and runs."""
    path = os.path.join(staging, "report.md")
    with open(path, "w") as handle:
        handle.write(report_markdown(report))
    return Entry(f"{plan.name}/{REPORT_PATH}", "file", 0o644, source=path)


def _stage(plan: BundlePlan, staging: str, patcher: PatchWorker,
           launchers: dict[str, bytes] | None = None,
           ) -> tuple[list[Entry], list[WrittenRecord]]:
    """Patch and render into `staging`; return archive entries and manifest records (their
    sha256 is filled in while the archive is written: each file is read once)."""
    top = plan.name
    entries = [Entry(top, "dir", 0o755), Entry(f"{top}/.bundle", "dir", 0o755)]
    for directory in ("bin", "libexec", "lib"):
        entries.append(Entry(f"{top}/{directory}", "dir", 0o755))
    records: list[WrittenRecord] = []
    for item in plan.files:
        checkpoint()
        content = _materialise(plan, item, staging, patcher, launchers or {})
        if item.kind == "alias":
            entries.append(Entry(f"{top}/{item.dest}", "symlink", 0o777,
                                 link_target=item.link_target))
            records.append({"path": item.dest, "type": "symlink", "target": item.link_target,
                            "kind": item.kind})
            continue
        assert content is not None
        ready = functools.partial(patcher.wait, content) if item.patch is not None else None
        entries.append(Entry(f"{top}/{item.dest}", "file", item.mode, source=content,
                             ready=ready, size_hint=_size(item.source) if ready else None))
        record: WrittenFile = {
            "path": item.dest,
            "type": "file",
            "kind": item.kind,
            "sha256": None,  # both taken while the archive is written
            "size": None,
            "mode": f"{item.mode:04o}",
            "source": os.path.abspath(item.source) if item.source else None,
            "loaded_at_run_time": item.runtime,
            "patched": _patched_record(item),
            "extracted": None if item.offset is None else {
                "offset": item.offset, "length": item.length},
        }
        records.append(record)
    return entries, records


def _fill_digests(plan: BundlePlan, records: list[WrittenRecord],
                  digests: dict[str, Digest]) -> None:
    """The manifest's sha256 and size of each file: those of the bytes archived (a source
    that changed while it was read was refused by archive.py)."""
    for record in records:
        if record["type"] == "file":
            digest = digests[f"{plan.name}/{record['path']}"]
            record["sha256"], record["size"] = digest.sha256, digest.size


def _stage_manifest(plan: BundlePlan, staging: str, records: list[WrittenRecord]) -> Entry:
    manifest = os.path.join(staging, "manifest.json")
    with open(manifest, "w") as handle:
        json.dump(_manifest(plan, records), handle, indent=2, sort_keys=True)
        handle.write("\n")
    return Entry(f"{plan.name}/{MANIFEST_PATH}", "file", 0o644, source=manifest)


def _materialise(plan: BundlePlan, item: StagedFile, staging: str,
                 patcher: PatchWorker, launchers: dict[str, bytes]) -> str | None:
    """The host file holding `item`'s bytes: the original, a patched copy, or a launcher
    (the native one compiled for this program, else the sh script)."""
    if item.kind == "alias":
        return None
    if item.kind == "launcher":
        assert item.program is not None
        path = os.path.join(staging, "launcher-" + item.program)
        launcher = launchers.get(item.program)
        _write_staged(path, launcher if launcher is not None
                      else render_launcher(plan, item.program).encode())
        return path
    if (item.kind != "program" and item.kind != "library" and item.kind != "loader"
            and item.kind != "data"):
        assert_never(item.kind)  # every other kind is a copy of its source, below
    assert item.source is not None
    path = os.path.join(staging, item.dest.replace("/", "__"))
    if item.offset is not None:
        _write_staged(path, _extract(item.source, item.offset, item.length or 0))
    elif item.renames:
        _write_staged(path, apply_renames(_read_source(item.source), item.renames))
    elif item.patch is not None:
        refuse_hostile_layout(item.source)  # before LIEF sees it (elf.py says why)
        patcher.submit(item.source, path, item.patch)  # written meanwhile; Entry.ready waits
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


def _patched_record(item: StagedFile) -> dict[str, object] | None:
    """The manifest's note of what was changed in a copy, with the original's identity."""
    if item.patch is None and not item.renames:
        return None
    assert item.source is not None  # only copies of a source are patched or renamed
    record: dict[str, object] = {"source_sha256": sha256_of(item.source),
                                 "source_size": _size(item.source)}
    if item.patch is not None:
        record.update(interpreter=item.patch.interpreter, rpath=item.patch.rpath)
    if item.renames:
        record["renamed_strings"] = {r.original: r.scoped for r in item.renames}
    return record


def _size(path: str | None) -> int | None:
    return os.path.getsize(path) if path else None


def _manifest(plan: BundlePlan, records: list[WrittenRecord]) -> dict[str, object]:
    return {
        "format_version": MANIFEST_FORMAT,
        "tool": "bundle",
        "tool_version": __version__,
        "name": plan.name,
        "arch": plan.arch,
        "prefix": plan.prefix,
        "launcher": plan.launcher,
        "launcher_type": plan.launcher_type,
        "loader": f"lib/{plan.loader_name}",
        "glibc": plan.glibc_release,
        "min_kernel": plan.min_kernel,
        "programs": list(plan.programs),
        "missing": list(plan.missing),
        "excluded": list(plan.excluded),
        "environment": [dataclasses.asdict(e) for e in plan.env],
        "runtime_missing": list(plan.runtime_missing),
        "library_home": plan.library_home,
        "sealed": {"sealed": list(plan.sealed), "unsealed": list(plan.unsealed)},
        "nss": plan.nss.manifest() if plan.nss else None,
        "files": sorted(records, key=lambda r: r["path"]),
    }

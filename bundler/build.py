"""`bundle BINARY... -o OUT`: resolve, plan, patch, render, write. The I/O edge.

The staging directory sits beside OUT (same file system, so nothing large crosses
devices) and is removed whatever happens.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field

from bundler import __version__, gconv, locales
from bundler.archive import (
    Entry,
    output_format,
    sha256_of,
    source_date_epoch,
    write_output,
)
from bundler.compare import run_both, static_side, unpacked
from bundler.errors import EnvironmentUnfitError, InputError
from bundler.golang import read_build_info
from bundler.hazards import NSS_CALLERS, closure_objects
from bundler.inspection import go_diagnosis, libc_release
from bundler.launcher import render_launcher
from bundler.nss import module_names
from bundler.patch_worker import PatchWorker
from bundler.plan import (
    BundlePlan,
    EnvSetting,
    PlanOptions,
    StagedFile,
    make_plan,
    release_key,
)
from bundler.render import report_markdown
from bundler.report import Report
from bundler.reporting import artifact_summary, build_report, uses_threads
from bundler.resolve import Closure, Library, ResolveOptions, resolve_closure
from bundler.scoping import apply_renames, scope_environment
from bundler.signals import checkpoint, deferred_signals
from bundler.sysroot import Sysroot

MANIFEST_FORMAT = 1
MANIFEST_PATH = ".bundle/manifest.json"
REPORT_PATH = ".bundle/report.md"


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
    files: tuple[dict, ...]  # the manifest's file records
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
    if patcher is not None:
        try:
            return _build(request, patcher)
        finally:
            patcher.drain()
    with contextlib.closing(PatchWorker.take()) as taken:  # imports LIEF meanwhile
        return _build(request, taken)


def _build(request: BuildRequest, patcher: PatchWorker) -> BuildResult:
    sysroot = Sysroot(request.sysroot)
    closures = [resolve_closure(path, sysroot, request.resolve) for path in request.binaries]
    runtime = runtime_loaded(closures) + nss_modules(request.nss, sysroot, closures)
    if runtime:  # again, with what glibc will dlopen (facts are cached: cheap)
        options = dataclasses.replace(
            request.resolve, runtime_loaded=(*request.resolve.runtime_loaded, *runtime))
        closures = [resolve_closure(path, sysroot, options) for path in request.binaries]
    libc, release = libc_release(closures[0])
    tag = libc.facts.abi_tag if libc else None
    added = [resolve_closure(path, sysroot, request.resolve) for path in request.add]
    gconv_data, gconv_env = gconv_files(request.gconv, sysroot, closures[0])
    locale_data, locale_env = locale_files(request.locales, sysroot)
    plan = make_plan(closures, release, tag.describe() if tag else None, request.plan, added,
                     gconv_data + locale_data, gconv_env + locale_env)
    if plan.env and libc is not None:
        plan = scoped_plan(plan, libc)
    found = {name for c in closures for lib in c.libraries for name in (*lib.aliases, lib.name)}
    plan = dataclasses.replace(plan, runtime_missing=tuple(
        sorted(name for name in set(runtime) if name not in found)))
    if request.run_args is not None and request.static is None:
        raise InputError("--run compares two programs: give the static build with --static")
    static = (static_side(request.static, closures[0].program, plan.programs[0])
              if request.static else None)
    threads = uses_threads(closure_objects(closures[0]))
    go = read_build_info(closures[0].program.path)
    diagnosis = go_diagnosis(closures[0], go, sysroot) if go is not None else None
    out = request.out or default_out(plan.name)
    fmt = output_format(out)
    parent = os.path.dirname(os.path.abspath(out.rstrip("/") or out))
    if not os.path.isdir(parent):
        raise InputError(f"-o {out}: directory {parent} does not exist")
    epoch = source_date_epoch()
    with deferred_signals():  # Ctrl-C/SIGTERM while patching must clean up too
        try:
            staging = tempfile.mkdtemp(dir=parent, prefix=f".{plan.name}.staging.")
        except OSError as exc:  # e.g. a read-only or immutable directory
            raise EnvironmentUnfitError(
                f"-o {out}: cannot write in {parent}: {exc.strerror or exc}") from None
        try:
            entries, records = _stage(plan, staging, patcher)

            def trailer(digests: dict[str, str]) -> list[Entry]:
                """.bundle/ last: the manifest holds the digests and sizes taken while
                writing (patched copies were still being made when writing began)."""
                _fill_digests(plan, records, digests, entries)
                inside = build_report(
                    closures[0], libc, release, plan,
                    artifact_summary(plan, records, None, None, None, threads),
                    static, None, go, diagnosis)
                return [_stage_manifest(plan, staging, records),
                        _stage_report(plan, staging, inside)]

            digest = write_output(entries, out, epoch, trailer=trailer).archive_sha256
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    raw = sum(r["size"] for r in records)
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


def scoped_plan(plan: BundlePlan, libc: Library) -> BundlePlan:
    """Rename the launcher's variables inside the bundled glibc (scoping.py)."""
    libc_entry = next((f for f in plan.files if f.source == libc.host_path
                       and f.kind == "library"), None)
    loader = next(f for f in plan.files if f.kind == "loader")
    if libc_entry is None or loader.source is None:
        return plan
    with open(libc.host_path, "rb") as handle:
        libc_bytes = handle.read()
    with open(loader.source, "rb") as handle:
        loader_bytes = handle.read()
    return scope_environment(plan, libc_entry.dest, libc_bytes, loader_bytes,
                             sha256_of(libc.host_path))


def nss_modules(choice: str, sysroot: Sysroot, closures: list[Closure]) -> tuple[str, ...]:
    """The libnss_*.so.2 modules to bundle for `--nss`, judged by the bundled libc."""
    _, release = libc_release(closures[0])
    uses = any(NSS_CALLERS.intersection(f.imported_symbols)
               for c in closures for _, f in closure_objects(c))
    return module_names(choice, sysroot, release_key(release), uses)


def _stage_report(plan: BundlePlan, staging: str, report: Report) -> Entry:
    """`.bundle/report.md`: the report as it stands before compression and runs."""
    path = os.path.join(staging, "report.md")
    with open(path, "w") as handle:
        handle.write(report_markdown(report))
    return Entry(f"{plan.name}/{REPORT_PATH}", "file", 0o644, source=path)


def _stage(plan: BundlePlan, staging: str, patcher: PatchWorker,
           ) -> tuple[list[Entry], list[dict]]:
    """Patch and render into `staging`; return archive entries and manifest records (their
    sha256 is filled in while the archive is written: each file is read once)."""
    top = plan.name
    entries = [Entry(top, "dir", 0o755), Entry(f"{top}/.bundle", "dir", 0o755)]
    for directory in ("bin", "libexec", "lib"):
        entries.append(Entry(f"{top}/{directory}", "dir", 0o755))
    records = []
    for item in plan.files:
        checkpoint()
        content = _materialise(plan, item, staging, patcher)
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
        records.append({
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
        })
    return entries, records


def _fill_digests(plan: BundlePlan, records: list[dict], digests: dict[str, str],
                  entries: list[Entry]) -> None:
    sources = {e.path: e.source for e in entries if e.kind == "file"}
    for record in records:
        if record["type"] == "file":
            path = f"{plan.name}/{record['path']}"
            record["sha256"] = digests[path]
            record["size"] = os.path.getsize(sources[path])


def _stage_manifest(plan: BundlePlan, staging: str, records: list[dict]) -> Entry:
    manifest = os.path.join(staging, "manifest.json")
    with open(manifest, "w") as handle:
        json.dump(_manifest(plan, records), handle, indent=2, sort_keys=True)
        handle.write("\n")
    return Entry(f"{plan.name}/{MANIFEST_PATH}", "file", 0o644, source=manifest)


def _materialise(plan: BundlePlan, item: StagedFile, staging: str,
                 patcher: PatchWorker) -> str | None:
    """The host file holding `item`'s bytes: the original, a patched copy, or a launcher."""
    if item.kind == "alias":
        return None
    if item.kind == "launcher":
        assert item.program is not None
        path = os.path.join(staging, "launcher-" + item.program)
        with open(path, "w") as handle:
            handle.write(render_launcher(plan, item.program))
        return path
    assert item.source is not None
    path = os.path.join(staging, item.dest.replace("/", "__"))
    if item.offset is not None:
        _extract(item.source, item.offset, item.length or 0, path)
    elif item.renames:
        with open(item.source, "rb") as source:
            data = source.read()
        with open(path, "wb") as copy:
            copy.write(apply_renames(data, item.renames))
    elif item.patch is not None:
        patcher.submit(item.source, path, item.patch)  # written meanwhile; Entry.ready waits
    else:
        return item.source
    return path


def _extract(source: str, offset: int, length: int, path: str) -> None:
    """`length` bytes of `source` from `offset` (a locale category in locale-archive)."""
    with open(source, "rb") as archive, open(path, "wb") as copy:
        archive.seek(offset)
        data = archive.read(length)
        if len(data) != length:
            raise InputError(f"{source}: ends inside a locale record ({offset}+{length})")
        copy.write(data)


def _patched_record(item: StagedFile) -> dict | None:
    """The manifest's note of what was changed in a copy, with the original's identity."""
    if item.patch is None and not item.renames:
        return None
    record: dict = {"source_sha256": sha256_of(item.source), "source_size": _size(item.source)}
    if item.patch is not None:
        record.update(interpreter=item.patch.interpreter, rpath=item.patch.rpath)
    if item.renames:
        record["renamed_strings"] = {r.original: r.scoped for r in item.renames}
    return record


def _size(path: str | None) -> int | None:
    return os.path.getsize(path) if path else None


def _manifest(plan: BundlePlan, records: list[dict]) -> dict:
    return {
        "format_version": MANIFEST_FORMAT,
        "tool": "bundle",
        "tool_version": __version__,
        "name": plan.name,
        "arch": plan.arch,
        "prefix": plan.prefix,
        "launcher": plan.launcher,
        "loader": f"lib/{plan.loader_name}",
        "glibc": plan.glibc_release,
        "min_kernel": plan.min_kernel,
        "programs": list(plan.programs),
        "missing": list(plan.missing),
        "excluded": list(plan.excluded),
        "environment": [dataclasses.asdict(e) for e in plan.env],
        "runtime_missing": list(plan.runtime_missing),
        "files": sorted(records, key=lambda r: r["path"]),
    }

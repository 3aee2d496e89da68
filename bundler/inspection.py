"""`bundle inspect`: the closure, the requirements and the static contents of a program.

`inspect_program` is the I/O edge (reads files); `inspection_json` and `inspection_text`
are pure renderers of the result, so that the report issue can reuse the model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from bundler import __version__
from bundler.diagnose import Diagnosis, diagnose, evidence_of
from bundler.elf import ElfFacts
from bundler.glibc import is_glibc, release_of_libc
from bundler.golang import BuildInfo, function_names, read_build_info
from bundler.requirements import GlibcNeed, Requirements, glibc_need, other_needs
from bundler.resolve import Closure, Library, ResolveOptions, resolve_closure
from bundler.static import StaticContents, static_contents
from bundler.sysroot import Sysroot
from bundler.text import one_line

JSON_FORMAT_VERSION = 1
SYMBOLS_SHOWN = 6


@dataclass(frozen=True)
class Inspection:
    closure: Closure
    requirements: Requirements
    static: StaticContents | None
    go: BuildInfo | None = None
    diagnosis: Diagnosis | None = None


def inspect_program(path: str, sysroot: Sysroot, options: ResolveOptions) -> Inspection:
    closure = resolve_closure(path, sysroot, options)
    static = static_contents(path) if closure.program.is_static else None
    libc, release = libc_release(closure)
    go = read_build_info(path)
    diagnosis = go_diagnosis(closure, go, sysroot) if go is not None else None
    return Inspection(closure, requirements_of(closure, libc, release), static, go, diagnosis)


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


def libc_release(closure: Closure) -> tuple[Library | None, str | None]:
    """The libc.so.6 of the closure and its glibc release (read from its banner)."""
    libc = find_libc(closure)
    if libc is None:
        return None, None
    with open(libc.host_path, "rb") as handle:
        return libc, release_of_libc(handle.read(), libc.facts.version_definitions)


def find_libc(closure: Closure) -> Library | None:
    return next((lib for lib in closure.libraries if (lib.soname or lib.name) == "libc.so.6"),
                None)


def requirements_of(closure: Closure, libc: Library | None, release: str | None) -> Requirements:
    """Requirements of the program alone and of the program with its non-glibc libraries."""
    program = (closure.program_label, closure.program)
    own = [(lib.name, lib.facts) for lib in closure.libraries
           if not is_glibc(lib.soname or lib.name)]
    tag = (libc.facts.abi_tag if libc else None) or (
        closure.program.abi_tag if closure.program.is_static else None
    )
    return Requirements(
        program_glibc=glibc_need([program]),
        closure_glibc=glibc_need([program, *own]),
        other=other_needs([program, *own]),
        bundled_glibc=release,
        libc_path=libc.realpath if libc else None,
        min_kernel=tag.describe() if tag else None,
    )


# -- JSON ------------------------------------------------------------------------------
def _facts_json(facts: ElfFacts) -> dict:
    return {
        "path": facts.path,
        "size": facts.size,
        "arch": facts.ident.machine_name,
        "class": facts.ident.elf_class,
        "endianness": "little" if facts.ident.little_endian else "big",
        "type": facts.ident.file_type,
        "kind": facts.kind,
        "pie": facts.pie,
        "interpreter": facts.interpreter,
        "needed": list(facts.needed),
        "rpath": facts.rpath,
        "runpath": facts.runpath,
        "soname": facts.soname,
        "flags_1": facts.flags_1,
        "abi_tag": facts.abi_tag.describe() if facts.abi_tag else None,
        "setuid": facts.setuid,
        "setgid": facts.setgid,
        "capabilities": facts.capabilities is not None,
    }


def _need_json(need: GlibcNeed | None) -> dict | None:
    if need is None:
        return None
    return {
        "version": need.release,
        "forced_by": [{"object": f.object, "version": f.version, "symbols": list(f.symbols)}
                      for f in need.forced_by],
    }


def _library_json(lib: Library) -> dict:
    own = glibc_need([(lib.name, lib.facts)])
    return {
        "name": lib.name,
        "soname": lib.soname or lib.name,
        "path": lib.path,
        "realpath": lib.realpath,
        "host_path": lib.host_path,
        "found_via": lib.found_via,
        "via_object": lib.via_object,
        "reason": lib.reason,
        "search_dir": lib.search_dir,
        "loaded_by": lib.loaded_by,
        "requested_by": list(lib.requested_by),
        "depth": lib.depth,
        "glibc": is_glibc(lib.soname or lib.name),
        "glibc_required": own.release if own else None,
        "hwcap_variants": list(lib.hwcap_variants),
        "needed": list(lib.facts.needed),
        "size": lib.facts.size,
    }


def inspection_json(result: Inspection) -> dict:
    closure, req = result.closure, result.requirements
    needed = req.closure_glibc or req.program_glibc
    return {
        "format_version": JSON_FORMAT_VERSION,
        "tool_version": __version__,
        "program": _facts_json(closure.program),
        "static": closure.program.is_static,
        "static_contents": None if result.static is None else {
            "libc": result.static.libc,
            "go_runtime": result.static.go_runtime,
            "nss": result.static.nss,
        },
        "arch": closure.arch.name,
        "sysroot": closure.sysroot,
        "loader": None if closure.loader is None else {
            "path": closure.loader.path,
            "realpath": closure.loader.realpath,
            "host_path": closure.loader.host_path,
            "soname": closure.loader.facts.soname,
        },
        "libraries": [_library_json(lib) for lib in closure.libraries],
        "unresolved": [
            {"name": u.name, "chain": list(u.chain), "searched": list(u.searched),
             "problem": u.problem, "message": u.describe()}
            for u in closure.unresolved
        ],
        "glibc_required": needed.release if needed else None,
        "requirements": {
            "program_glibc": _need_json(req.program_glibc),
            "closure_glibc": _need_json(req.closure_glibc),
            "other": [
                {"library": o.library, "family": o.family, "highest": o.highest,
                 "needed_by": list(o.needed_by), "symbols": list(o.symbols)}
                for o in req.other
            ],
            "bundled_glibc": req.bundled_glibc,
            "libc_path": req.libc_path,
            "min_kernel": req.min_kernel,
        },
        "search": None if closure.search is None else {
            "system_dirs": list(closure.search.system_dirs),
            "lib": closure.search.lib_token,
            "read_from_loader": closure.search.from_loader,
        },
        "notes": list(closure.notes),
        "go": None if result.go is None else dataclasses.asdict(result.go),
        "static_diagnosis": None if result.diagnosis is None
        else dataclasses.asdict(result.diagnosis),
    }


# -- text ------------------------------------------------------------------------------
def inspection_text(result: Inspection) -> str:
    closure = result.closure
    program = closure.program
    linkage = "statically linked" if program.is_static else "dynamically linked"
    lines = [f"{program.path}: {program.ident.describe()}, {program.kind}, {linkage}"]
    if closure.sysroot != "/":
        lines.append(f"  sysroot      {closure.sysroot}")
    if program.is_static:
        lines += _static_lines(result)
    else:
        lines += _dynamic_lines(closure)
    lines += _requirement_lines(result.requirements, program.is_static)
    if result.go is not None:
        lines += go_lines(result.go, result.diagnosis)
    if closure.notes:
        lines.append("")
        lines.append("Notes")
        lines += [f"  - {note}" for note in closure.notes]
    # Names, paths and symbols come from the file inspected: one line each, inert (text.py).
    return "\n".join(one_line(line) for line in lines) + "\n"


def _static_lines(result: Inspection) -> list[str]:
    lines = ["", "Static: no loader and no shared libraries; it contains"]
    assert result.static is not None
    lines += [f"  - {part}" for part in result.static.describe()]
    return lines


def _dynamic_lines(closure: Closure) -> list[str]:
    lines = []
    if closure.loader is not None:
        loader = closure.loader
        shown = loader.path if loader.path == loader.realpath else (
            f"{loader.path} => {loader.realpath}")
        lines.append(f"  interpreter  {shown}")
    count = len(closure.libraries)
    lines.append("")
    lines.append(f"Libraries ({count}; as loaded, each under the object that first needed it)")
    lines.append(closure.program_label)
    children: dict[str, list[Library]] = {}
    for lib in closure.libraries:
        children.setdefault(lib.loaded_by, []).append(lib)
    lines += _tree(children, closure.program_label, "")
    for missing in closure.unresolved:
        lines.append(f"MISSING  {missing.describe()}")
    return lines


def _tree(children: dict[str, list[Library]], parent: str, indent: str) -> list[str]:
    lines = []
    kids = children.get(parent, [])
    for number, lib in enumerate(kids):
        last = number == len(kids) - 1
        branch, carry = ("└── ", "    ") if last else ("├── ", "│   ")
        target = lib.path if lib.path == lib.realpath else f"{lib.path} -> {lib.realpath}"
        extra = " (glibc)" if is_glibc(lib.soname or lib.name) else ""
        if lib.hwcap_variants:
            extra += f" (baseline; {len(lib.hwcap_variants)} CPU-specific variant(s) not taken)"
        lines.append(f"{indent}{branch}{lib.name} => {target}  [{lib.reason}]{extra}")
        lines += _tree(children, lib.name, indent + carry)
    return lines


def _requirement_lines(req: Requirements, static: bool) -> list[str]:
    lines = ["", "Requirements"]
    if not static:
        lines.append("  glibc needed to run unbundled:")
        lines += _need_lines("the program", req.program_glibc)
        lines += _need_lines("with its libraries", req.closure_glibc)
        if req.other:
            lines.append("  other versioned needs:")
            for other in req.other:
                lines.append(f"    {other.highest:<22} from {other.library} "
                             f"(needed by {', '.join(other.needed_by)})")
    if req.bundled_glibc or req.libc_path:
        lines.append(f"  glibc that would be bundled: {req.bundled_glibc or 'unknown'}"
                     f" ({req.libc_path})")
    lines.append(f"  minimum kernel: {req.min_kernel or 'not recorded (no ABI tag)'}")
    return lines


def go_lines(info: BuildInfo, diagnosis: Diagnosis | None) -> list[str]:
    """The Go build info and the static-readiness diagnosis, for inspect and the report."""
    module = info.main.path if info.main else info.path
    lines = ["", f"Go: {info.go_version}, module {module}, CGO_ENABLED="
                 f"{info.setting('CGO_ENABLED') or '?'}, tags {','.join(info.tags) or '(none)'}"]
    if diagnosis is None:
        return lines
    if not diagnosis.causes:
        lines.append("  static build: nothing found that keeps it from a clean static link")
    else:
        lines.append("  what keeps a static build from being clean, and the fix:")
        for cause in diagnosis.causes:
            lines.append(f"    - {cause.code}: {cause.explanation}")
            lines.append(f"      evidence: {', '.join(cause.evidence)}")
            lines.append(f"      fix: {cause.fix}")
    lines.append("  static build command:")
    lines.append(f"    {diagnosis.command}")
    lines += [f"  this warning will remain: {r}" for r in diagnosis.remaining]
    lines += [f"  note: {n}" for n in diagnosis.notes]
    return lines


def _need_lines(what: str, need: GlibcNeed | None) -> list[str]:
    if need is None:
        return [f"    {what:<20} no versioned glibc symbols"]
    lines = [f"    {what:<20} GLIBC_{need.release}"]
    for forced in need.forced_by:
        shown = list(forced.symbols[:SYMBOLS_SHOWN])
        more = len(forced.symbols) - len(shown)
        text = ", ".join(shown) + (f" (+{more} more)" if more > 0 else "")
        lines.append(f"      {forced.object}: {forced.version} {text}".rstrip())
    return lines

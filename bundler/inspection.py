"""`bundle inspect`: the closure, the requirements and the static contents of a program.

`inspect_program` is the I/O edge (reads files); `inspection_json` and `inspection_text`
are pure renderers of the result, so that the report issue can reuse the model.
"""

from __future__ import annotations

import dataclasses

from bundler import __version__
from bundler.elf import ElfFacts
from bundler.glibc import is_glibc
from bundler.program_facts import ProgramFacts, program_facts
from bundler.report_render import go_lines, symbols_text
from bundler.requirements import GlibcNeed, Requirements, glibc_need
from bundler.resolve import Closure, Library, ResolveOptions, resolve_closure
from bundler.sysroot import Sysroot
from bundler.text import one_line

JSON_FORMAT_VERSION = 1


def inspect_program(path: str, sysroot: Sysroot, options: ResolveOptions) -> ProgramFacts:
    return program_facts(resolve_closure(path, sysroot, options), sysroot)


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


def inspection_json(result: ProgramFacts) -> dict:
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
def inspection_text(result: ProgramFacts) -> str:
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


def _static_lines(result: ProgramFacts) -> list[str]:
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



def _need_lines(what: str, need: GlibcNeed | None) -> list[str]:
    if need is None:
        return [f"    {what:<20} no versioned glibc symbols"]
    lines = [f"    {what:<20} GLIBC_{need.release}"]
    for forced in need.forced_by:
        lines.append(f"      {forced.object}: {forced.version} "
                     f"{symbols_text(forced.symbols)}".rstrip())
    return lines

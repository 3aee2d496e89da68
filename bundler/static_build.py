"""The static build of compare mode, read and judged: really static, the same program, its
hazards and its compressed size (the verdict, verdict.py, weighs them)."""

from __future__ import annotations

import os

import zstandard

from bundler.archive import ZSTD_LEVEL, sha256_of
from bundler.diagnose import diagnosis_for
from bundler.elf import ElfFacts, defined_symbol_names, read_elf
from bundler.golang import BuildInfo, read_build_info
from bundler.hazards import static_hazards
from bundler.report_model import StaticSide
from bundler.static import static_contents
from bundler.sysroot import Sysroot


def static_side(path: str, program: ElfFacts | None, program_name: str) -> StaticSide:
    """Read the static build and judge it: really static? the same program? hazards?"""
    facts = read_elf(path)
    not_static = []
    if facts.interpreter is not None:
        not_static.append(f"it has an interpreter ({facts.interpreter})")
    if facts.needed:
        not_static.append("it needs shared libraries: " + ", ".join(facts.needed))
    if not facts.is_static and not not_static:
        not_static.append(f"it is a {facts.kind}, not an executable")
    contents = static_contents(path) if facts.is_static else None
    hazards = static_hazards(contents, defined_symbol_names(path)) if contents else ()
    same, identity = _same_program(path, facts, program, program_name)
    info = read_build_info(path)
    # Its own symbols and build info; no archives are looked for (it is already linked).
    diagnosis = (diagnosis_for(facts, info, {}, None, Sysroot("/"))
                 if info is not None and facts.is_static else None)
    return StaticSide(
        path=path, sha256=sha256_of(path), size=facts.size,
        compressed_size=_compressed_size(path), really_static=not not_static,
        not_static_because=tuple(not_static), same_program=same, identity=identity,
        min_kernel=facts.abi_tag.describe() if facts.abi_tag else None,
        contents=contents, hazards=hazards, diagnosis=diagnosis,
    )


def _same_program(path: str, facts: ElfFacts, program: ElfFacts | None,
                  program_name: str) -> tuple[bool, str]:
    if program is not None and facts.ident.machine != program.ident.machine:
        return False, (f"warning: the static build is {facts.ident.machine_name}, the program "
                       f"{program.ident.machine_name}")
    ours = read_build_info(path)
    theirs = read_build_info(program.path) if program is not None else None
    if ours is not None and theirs is not None:
        mine, other = _module_path(ours), _module_path(theirs)
        if mine == other:
            return True, f"same Go module ({mine})"
        return False, (f"warning: the static build is Go module {mine}, the program "
                       f"{other}; is it the same program?")
    static_name = os.path.basename(path)
    stem = static_name.removesuffix("-static").removesuffix(".static")
    if stem == program_name or static_name == program_name:
        return True, f"same file name ({static_name} for {program_name})"
    return False, (f"warning: {static_name} does not look like {program_name} (file names "
                   "differ); is it the same program?")


def _module_path(info: BuildInfo) -> str:
    return info.main.path if info.main is not None and info.main.path else info.path


def _compressed_size(path: str) -> int:
    with open(path, "rb") as handle:
        compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=-1)
        return len(compressor.compress(handle.read()))

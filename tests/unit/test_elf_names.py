"""bundler.elf names machines and section types as pyelftools does, without importing it
for the common ones (its import sat on the critical path of every small build)."""

from __future__ import annotations

import subprocess
import sys

from elftools.elf.enums import ENUM_E_MACHINE, ENUM_SH_TYPE_AMD64, ENUM_SH_TYPE_BASE

from bundler import elf


def test_common_machine_names_are_pyelftools_names():
    theirs = {v: k for k, v in ENUM_E_MACHINE.items() if isinstance(v, int)}
    for number, name in elf.COMMON_MACHINES.items():
        assert theirs[number] == name
    assert elf._machine_name(2) == theirs[2]  # one looked up in pyelftools' own table
    assert elf._machine_name(0xFEED) == "EM_65261"


def test_section_kind_names_are_pyelftools_names():
    theirs = {v: k for k, v in {**ENUM_SH_TYPE_BASE, **ENUM_SH_TYPE_AMD64}.items()
              if isinstance(v, int)}
    for number, name in elf.SECTION_KIND_NAMES.items():
        assert theirs[number] == name
    accepted = elf._PLAIN_SECTIONS | elf._CHECKED_SECTIONS | {elf.SHT_X86_64_UNWIND}
    assert set(elf.SECTION_KIND_NAMES) == accepted


def test_broken_elf_holds_pyelftools_errors_once_it_is_imported():
    from elftools.common.exceptions import ELFError
    from elftools.construct.core import ConstructError

    assert {ELFError, ConstructError, OSError} <= set(elf.broken_elf(OSError))


def test_reading_ordinary_files_never_imports_pyelftools():
    """What a build reads of an ordinary program and its libraries, and what the patch
    worker checks a copy with, is read without pyelftools."""
    code = """
import sys
from bundler import elf, golang
for path in (sys.executable, "/bin/ls"):
    elf.read_elf(path)
    elf.read_link_facts(path)
    elf.read_section_table(path)
    elf.defined_symbol_names(path)
    golang.read_build_info(path)
import bundler.build, bundler.cli, bundler.patch, bundler.patch_worker
print(sorted(m for m in sys.modules if m.startswith("elftools")))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"

"""The worker parses the program ahead of its job (issue 21): the same bytes, never stale.

`PatchWorker.prepare(path)` has the worker parse a program with LIEF while the build still
resolves; the job later uses that parse only for the very file it was made from, unchanged.
Checked with real gcc programs and the real worker: the copy patched from a prepared parse is
byte for byte the copy patched without one; a file replaced or rewritten after it was
prepared is patched from what is there at the job (its own interpreter path and strings);
a prepare that cannot be used (a static program, a non-ELF file, a missing path) leaves the
jobs after it working; a bundle built with the prepare runs.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from support.cli import run_cli
from support.toolchain import gcc

from bundler.patch import patch_copy, prepare
from bundler.patch_spec import Patch
from bundler.patch_worker import PatchWorker

PATCH = Patch("/opt/prepared/lib/.bundle-0123456789abcdef/ld-linux-x86-64.so.2",
              "$ORIGIN/../lib/.bundle-0123456789abcdef")
FIRST = '#include <stdio.h>\nint main(void) { puts("first"); return 0; }\n'
SECOND = ('#include <stdio.h>\n#include <string.h>\n'
          'int main(int c, char **v) { printf("second %zu\\n", strlen(v[0])); return 0; }\n')


def _interp_and_rpath(path: Path) -> tuple[str, str]:
    with open(path, "rb") as handle:
        elf = ELFFile(handle)
        interp = next(s for s in elf.iter_segments() if s["p_type"] == "PT_INTERP")
        dynamic = elf.get_section_by_name(".dynamic")
        rpath = next(t.rpath for t in dynamic.iter_tags() if t.entry.d_tag == "DT_RPATH")
        return interp.get_interp_name(), rpath


def _strings(path: Path) -> str:
    return subprocess.run(["strings", str(path)], capture_output=True, text=True,
                          check=True).stdout


@pytest.fixture
def worker():
    started = PatchWorker()
    yield started
    started.kill()


def test_a_prepared_parse_gives_the_same_bytes(tmp_path: Path, worker: PatchWorker) -> None:
    program = gcc(tmp_path / "first", FIRST, "-g")
    patch_copy(str(program), str(tmp_path / "direct"), PATCH)
    patch_copy(str(program), str(tmp_path / "in-process"), PATCH, prepare(str(program)))
    worker.prepare(str(program))
    worker.submit(str(program), str(tmp_path / "worker"), PATCH)
    worker.wait(str(tmp_path / "worker"))
    direct = (tmp_path / "direct").read_bytes()
    assert (tmp_path / "in-process").read_bytes() == direct
    assert (tmp_path / "worker").read_bytes() == direct
    assert _interp_and_rpath(tmp_path / "worker") == (PATCH.interpreter, PATCH.rpath)


@pytest.mark.parametrize("how", ["replaced", "rewritten"])
def test_a_file_changed_after_it_was_prepared_is_parsed_again(
        tmp_path: Path, how: str) -> None:
    program = tmp_path / "program"
    gcc(program, FIRST)
    second = gcc(tmp_path / "second", SECOND)
    parsed = prepare(str(program))
    if how == "replaced":  # a new file at the path (a package upgrade renames over it)
        os.replace(second, program)
    else:  # the same inode, new bytes
        program.write_bytes(second.read_bytes())
    assert not parsed.matches(str(program))
    patch_copy(str(program), str(tmp_path / "out"), PATCH, parsed)
    out = tmp_path / "out"
    assert "second %zu" in _strings(out)
    assert "first" not in _strings(out).split()
    assert _interp_and_rpath(out) == (PATCH.interpreter, PATCH.rpath)


def test_a_prepared_parse_is_used_once(tmp_path: Path) -> None:
    program = gcc(tmp_path / "first", FIRST)
    parsed = prepare(str(program))
    patch_copy(str(program), str(tmp_path / "one"), PATCH, parsed)
    with pytest.raises(AssertionError, match="used twice"):
        patch_copy(str(program), str(tmp_path / "two"), PATCH, parsed)


@pytest.mark.parametrize("what", ["static", "not-elf", "missing", "directory"])
def test_a_prepare_that_cannot_be_used_leaves_the_jobs_working(
        tmp_path: Path, worker: PatchWorker, what: str) -> None:
    target = tmp_path / what
    if what == "static":
        gcc(target, FIRST, "-static")
    elif what == "not-elf":
        target.write_text("#!/bin/sh\necho hi\n")
    elif what == "directory":
        target.mkdir()
    program = gcc(tmp_path / "first", FIRST)
    worker.prepare(str(target))
    worker.submit(str(program), str(tmp_path / "out"), PATCH)
    worker.wait(str(tmp_path / "out"))
    assert _interp_and_rpath(tmp_path / "out") == (PATCH.interpreter, PATCH.rpath)
    assert worker.alive


def test_a_bundle_built_with_the_prepared_program_runs(tmp_path: Path) -> None:
    program = gcc(tmp_path / "second", SECOND)
    out = tmp_path / "out"
    result = run_cli(str(program), "-o", f"{out}/")
    assert result.returncode == 0, result.stderr
    ran = subprocess.run([str(out / "second" / "bin" / "second")], capture_output=True, text=True,
                         check=True)
    assert ran.stdout.startswith("second ")

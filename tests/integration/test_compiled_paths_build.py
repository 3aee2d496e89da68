"""A real build of a gcc program with a data dir compiled into it (issue 20, "Find them"):
the scan names the dir, the verdict is no longer plain "ship the artifact", the
`uncarried-files` gate holds, and once `--data` carries the dir nothing is asked for.

The data dir is made outside /tmp (pytest's tmp_path), which the scan takes for scratch:
in the home dir, removed after each test.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.cli import cli_command, cli_env, run_cli
from support.gobuild import build_agent
from support.paths import REPO
from support.schemas import validate
from support.toolchain import gcc

from bundler.build import BuildRequest, build
from bundler.carry import parse_data
from bundler.compiled_paths import read_rodata, scan_plan
from bundler.sysroot import Sysroot

GREET = r"""
#include <stdio.h>
int main(void) {
    char line[100];
    FILE *f = fopen(DATA_DIR "/greeting.txt", "r");
    if (f == NULL || fgets(line, sizeof line, f) == NULL) {
        fprintf(stderr, "usage: greet (reads %s/greeting.txt)\n", DATA_DIR);
        return 1;
    }
    fputs(line, stdout);
    return 0;
}
"""


@pytest.fixture
def greet(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(the program, its data dir) with the dir's path compiled in."""
    home = Path(tempfile.mkdtemp(prefix="bundle-compiled-", dir=Path.home()))
    try:
        data = home / "share" / "greet"
        data.mkdir(parents=True)
        (data / "greeting.txt").write_text("hello\n")
        program = gcc(tmp_path / "greet", GREET, f'-DDATA_DIR="{data}"')
        yield program, data
    finally:
        shutil.rmtree(home)


def test_the_plan_of_a_real_build_holds_the_compiled_in_data_dir(tmp_path: Path,
                                                                  greet) -> None:
    program, data = greet
    result = build(BuildRequest((str(program),), str(tmp_path / "greet.tar.gz"), sbom=(),
                                recipes=False))
    scan = scan_plan(result.plan, Sysroot("/"))
    assert [(p.path, p.kind, p.found_in) for p in scan.uncarried] == [
        (str(data), "data dir", ("libexec/greet",)),
        (f"{data}/greeting.txt", "data file", ("libexec/greet",))]
    assert "lib/libc.so.6" not in scan.scanned  # glibc's own paths are sealed or served
    carried = build(BuildRequest((str(program),), str(tmp_path / "carried.tar.gz"), sbom=(),
                                 recipes=False, data=(parse_data(str(data)),)))
    rescan = scan_plan(carried.plan, Sysroot("/"))
    assert rescan.uncarried == ()
    assert [p.path for p in rescan.paths if p.carried] == [str(data),
                                                           f"{data}/greeting.txt"]


def test_the_build_reports_it_lowers_the_verdict_and_the_gate_holds(tmp_path: Path,
                                                                     greet) -> None:
    program, data = greet
    report = tmp_path / "report.json"
    result = run_cli(str(program), "-o", str(tmp_path / "greet.tar.gz"), "--sbom", "none",
                     "--no-recipes", "--report", str(report), "--fail-on", "uncarried-files")
    found = json.loads(report.read_text())
    validate("build", found)
    assert result.returncode == 5, result.stderr
    assert result.stderr.splitlines()[-1].startswith(
        f"bundle: error: --fail-on: uncarried-files: the programs hold absolute paths the "
        f"artifact does not carry: {data} (data dir), {data}/greeting.txt (data file)")
    assert [p["path"] for p in found["compiled_paths"]["paths"]
            if p["load_bearing"] and not p["carried"]] == [str(data), f"{data}/greeting.txt"]
    assert found["verdict"]["headline"] != "ship the artifact"
    assert any(h["code"] == "uncarried-files" for h in found["hazards"])
    assert f"  NOT CARRIED    {data} (data dir, in libexec/greet): --data {data}" in \
        result.stderr.splitlines()

    carried = tmp_path / "carried.json"
    again = run_cli(str(program), "-o", str(tmp_path / "carried.tar.gz"), "--sbom", "none",
                    "--no-recipes", "--data", str(data), "--report", str(carried),
                    "--fail-on", "uncarried-files")
    assert again.returncode == 0, again.stderr
    found = json.loads(carried.read_text())
    validate("build", found)
    assert found["verdict"]["headline"] == "ship the artifact"
    assert found["carrying"]["carried"] == [
        {"source": str(data), "dest": str(data).lstrip("/"), "why": "--data"}]
    assert "NOT CARRIED" not in again.stderr


def test_a_go_programs_strings_are_not_taken_for_paths() -> None:
    """Go keeps strings as lengths and bytes run together: a NUL after one is chance, and the
    NUL-terminated ones are its build's (GOROOT /usr/lib/go-1.19, its source files)."""
    agent = build_agent("dynamic")
    assert b"/usr/lib/go" in agent.read_bytes()  # what a byte scan would have found
    assert read_rodata(str(agent)) == b""


def test_a_recipe_turned_off_names_what_it_would_carry(tmp_path: Path) -> None:
    """python3 holds no string naming its standard library: with --no-recipes the python3
    recipe, still recognised, names it in the scan, and the verdict is lowered."""
    python = "/usr/bin/python3"  # Debian's (scripts/test installs python3)
    report = tmp_path / "report.json"
    result = run_cli(python, "-o", str(tmp_path / "py.tar.zst"), "--sbom", "none",
                     "--no-recipes", "--report", str(report), "--fail-on", "uncarried-files")
    assert result.returncode == 5, result.stderr
    found = json.loads(report.read_text())
    validate("build", found)
    uncarried = [p for p in found["compiled_paths"]["paths"]
                 if p["load_bearing"] and not p["carried"]]
    stdlib = next(p for p in uncarried if p["path"].startswith("/usr/lib/python3."))
    assert "the python3 recipe carries it" in stdlib["why"] and "--no-recipes" in stdlib["why"]
    assert found["verdict"]["headline"] != "ship the artifact"
    assert found["carrying"]["recipes"] == []
    with_recipe = run_cli(python, "-o", str(tmp_path / "py2.tar.zst"), "--sbom", "none",
                          "--json", "--fail-on", "uncarried-files")
    assert with_recipe.returncode == 0, with_recipe.stderr
    data = json.loads(with_recipe.stdout)
    assert [r["name"] for r in data["carrying"]["recipes"]][:1] == ["python3"]
    assert data["verdict"]["headline"] == "ship the artifact"


KMSG = r"""
#include <stdio.h>
int main(void) { puts("/proc/kmsg"); puts("/sys/kernel/notes"); return 0; }
"""

ROOT_ENTRY_OF = r"""
import sys
from bundler.compiled_paths import root_entry
from bundler.sysroot import Sysroot
for path in sys.argv[1:]:
    entry = root_entry(Sysroot("/"), path)
    print(path, entry.exists, entry.resolved, entry.is_file, entry.is_dir)
"""


def test_the_kernels_files_are_never_read(tmp_path: Path) -> None:
    """A compiled-in /proc/kmsg (libsystemd-shared has one) made a build as root hang for
    ever: the scan read the first bytes of every path the root holds, and /proc/kmsg is a
    "regular file" whose read waits for the next kernel message. Neither it nor a link
    into /proc is read now (a subprocess, so that a regression fails instead of hanging),
    and the program builds."""
    link = tmp_path / "kmsg-link"
    link.symlink_to("/proc/kmsg")
    looked = subprocess.run([sys.executable, "-c", ROOT_ENTRY_OF, "/proc/kmsg", str(link),
                             "/sys/kernel"], capture_output=True, text=True, timeout=60,
                            env={"PYTHONPATH": str(REPO)})
    assert looked.returncode == 0, looked.stderr
    assert looked.stdout.splitlines() == [
        "/proc/kmsg True /proc/kmsg False False",
        f"{link} True /proc/kmsg False False",
        "/sys/kernel True /sys/kernel False False"]
    program = gcc(tmp_path / "kmsg", KMSG)
    built = subprocess.run(cli_command(str(program), "-o", str(tmp_path / "kmsg.tar.zst"),
                                       "--sbom", "none"),
                           capture_output=True, text=True, timeout=120, env=cli_env())
    assert built.returncode == 0, built.stderr

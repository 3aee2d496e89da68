"""`bundle verify --trace`: one more sandboxed run under strace lists the files the program
opened, executed or looked for outside its artifact, missing ones first.

The program is built here with gcc and bundled with `bundle`; it runs in verify's bare root
(which has /etc/hosts and a static /bin/sh, and no /etc/bundle-trace-probe.conf).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from support.cli import assert_one_line_error, run_cli
from support.needs import need, need_tool
from support.roots import debian11_tree, need_root
from support.schemas import validate
from support.toolchain import gcc

from bundler.isolation import static_shell

PROBE = r"""
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
int main(void) {
    FILE *conf = fopen("/etc/bundle-trace-probe.conf", "r");
    FILE *hosts = fopen("/etc/hosts", "r");
    printf("conf %s, hosts %s\n", conf ? "found" : "missing", hosts ? "found" : "missing");
    pid_t pid = fork();
    if (pid == 0) {
        execl("/usr/libexec/bundle-trace-helper", "helper", (char *)0);
        execl("/bin/sh", "sh", "-c", "exit 0", (char *)0);
        _exit(127);
    }
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
"""
TIMES = re.compile(r" in \d+ ms")


@pytest.fixture(scope="module")
def probe_artifact(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("probe")
    program = gcc(work / "probe", PROBE)
    out = work / "probe.tar.zst"
    built = run_cli(str(program), "-o", str(out))
    assert built.returncode == 0, built.stderr
    return out


def _needs() -> None:
    need_root()
    need_tool("strace")
    need(static_shell() is not None, "a static busybox for the bare root's /bin/sh")


def _trace_section(stdout: str) -> list[str]:
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("TRACE "))
    return lines[start:-1]  # up to the verdict, which stays last


def test_trace_lists_missing_and_found_files_outside_the_artifact(
        probe_artifact: Path, private_tmp: Path) -> None:
    _needs()
    traced = run_cli("verify", str(probe_artifact), "--trace",
                     "--expect-output", "^conf missing, hosts found$")
    assert traced.returncode == 0, traced.stdout + traced.stderr
    print(traced.stdout)
    section = _trace_section(traced.stdout)
    assert section[0].startswith("TRACE at its prefix /opt/probe (launcher, direct start), "
                                 "under strace: exit 0 in ")
    assert section[1] == ("  Files opened outside the artifact (traced run): 2 missing, "
                          "2 found")
    assert section[2:] == [
        "    missing  /etc/bundle-trace-probe.conf  (looked for by probe)",
        "    missing  /usr/libexec/bundle-trace-helper  (looked for by probe)",
        "    found    /bin/sh  (executed by probe)",
        "    found    /etc/hosts  (opened by probe)",
    ]
    # the artifact's own files (its lib/, libexec/, reached through "..") are not listed
    assert not [line for line in section if "/opt/probe/" in line or "lib/" in line]
    assert traced.stdout.rstrip().endswith("verify: PASS (2 of 2 runs passed)")
    assert list(private_tmp.iterdir()) == []  # the strace output went with the scratch


def test_trace_in_the_debian_11_root_names_what_that_tree_lacks(
        probe_artifact: Path, private_tmp: Path) -> None:
    """Another root, other facts: Debian 11 minbase has no /etc/hosts, and its /bin/sh is a
    dynamic dash whose own loader's opens are listed under its name."""
    need_root()
    need_tool("strace")
    tree = debian11_tree()
    traced = run_cli("verify", str(probe_artifact), "--root", str(tree), "--trace",
                     "--expect-output", "^conf missing, hosts missing$")
    assert traced.returncode == 0, traced.stdout + traced.stderr
    section = _trace_section(traced.stdout)
    assert "    missing  /etc/hosts  (looked for by probe)" in section
    assert "    found    /bin/sh  (executed by probe)" in section
    assert "    found    /etc/ld.so.cache  (opened by sh)" in section
    assert not [line for line in section if "/opt/probe/" in line or tree.name in line]


def test_without_trace_the_output_is_as_before(probe_artifact: Path, private_tmp: Path,
                                               ) -> None:
    _needs()
    plain = run_cli("verify", str(probe_artifact))
    traced = run_cli("verify", str(probe_artifact), "--trace")
    assert plain.returncode == traced.returncode == 0, plain.stdout + traced.stdout
    assert "TRACE" not in plain.stdout and "strace" not in plain.stdout
    untraced = [line for line in traced.stdout.splitlines()
                if line not in _trace_section(traced.stdout)]
    assert TIMES.sub("", plain.stdout).splitlines() == [TIMES.sub("", line) for line in untraced]


def test_json_has_the_trace_when_asked(probe_artifact: Path, private_tmp: Path) -> None:
    _needs()
    plain = json.loads(run_cli("verify", str(probe_artifact), "--json").stdout)
    validate("verify", plain)
    assert plain["trace"] is None  # not asked for
    traced = json.loads(run_cli("verify", str(probe_artifact), "--json", "--trace").stdout)
    validate("verify", traced)
    trace = traced["trace"]
    assert trace["started"] and trace["exit_code"] == 0 and not trace["timed_out"]
    assert trace["missing"][0] == {"path": "/etc/bundle-trace-probe.conf",
                                   "how": "looked for (missing)", "count": 1,
                                   "process": "probe"}
    assert {(f["path"], f["how"]) for f in trace["found"]} == {
        ("/bin/sh", "executed"), ("/etc/hosts", "opened")}
    assert traced["passed"] and len(traced["runs"]) == 2  # the traced run is not judged


def test_trace_refuses_an_emulator_and_needs_strace(probe_artifact: Path, tmp_path: Path,
                                                     ) -> None:
    assert_one_line_error(
        run_cli("verify", str(probe_artifact), "--trace", "--emulator", "qemu-aarch64-static"),
        2, "--trace", "--emulator", "-strace")
    empty = tmp_path / "bin"
    empty.mkdir()
    assert_one_line_error(run_cli("verify", str(probe_artifact), "--trace",
                                  env={"PATH": str(empty)}),
                          3, "--trace needs strace: apt-get install strace")

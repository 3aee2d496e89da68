"""One program under two names (`bundle git git-upload-pack`, or git-receive-pack whose git
recipe brings git itself as a helper): one copy in libexec/, the second name a link to it or
a launcher of it, and every record that names the program (the manifest, the SBOMs' graph of
who loads whom, the Go modules) names the file that holds its bytes.

Found by bundling every program of /usr/bin: the git-* links stopped at a traceback
("dependency on libexec/git, which it does not list") and, with --sbom none, made an artifact
bundle's own reader refused ("'git-upload-pack' has no file record libexec/git-upload-pack").
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from support.cli import run_cli
from support.gobuild import build_agent
from support.roots import unpack
from support.toolchain import gcc

from bundler.manifest import load as load_manifest

NAMES = r"""
#include <stdio.h>
#include <string.h>
int far(void);
int main(int argc, char **argv) {
    const char *slash = strrchr(argv[0], '/');
    printf("%s %d\n", slash ? slash + 1 : argv[0], far());
    return 0;
}
"""


def _assert_graph_names_files(sbom: Path, holder: str, second: str) -> None:
    """Every ref of the CycloneDX graph of who loads whom is a component the document
    lists (or the artifact itself); the program's file loads libraries, its second name
    nothing (a link or a launcher loads nothing: the file does)."""
    document = json.loads(sbom.read_text())
    refs = {c["bom-ref"] for c in document["components"]}
    refs.add(document["metadata"]["component"]["bom-ref"])
    graph = {d["ref"]: d.get("dependsOn", []) for d in document["dependencies"]}
    for ref, needs in graph.items():
        assert {ref, *needs} <= refs, (ref, set(needs) - refs)
    assert f"file:libexec/{second}" not in graph
    assert any(need.startswith("file:lib/") for need in graph[f"file:libexec/{holder}"])


def test_a_go_program_given_under_a_second_name(tmp_path: Path) -> None:
    """The agent and a symlink to it, with the default SBOMs: one copy, the second name a
    link to it; its Go modules are recorded once, under the file; both launchers run it;
    `inspect` reads the artifact."""
    agent = build_agent("dynamic", tmp_path / "src")
    second = agent.parent / "agent-two"
    second.symlink_to(agent.name)
    out = tmp_path / "agent.tar.zst"
    built = run_cli(str(agent), str(second), "-o", str(out))
    assert built.returncode == 0, built.stderr
    top = unpack(out, tmp_path / "u") / agent.name
    assert os.readlink(top / "libexec" / "agent-two") == agent.name
    manifest = load_manifest(str(top), str(out))
    assert manifest.programs == (agent.name, "agent-two")
    assert manifest.program_record("agent-two").path == f"libexec/{agent.name}"
    assert [program for program, _ in manifest.go_modules] == [agent.name]
    _assert_graph_names_files(Path(f"{out}.cdx.json"), agent.name, "agent-two")
    spdx = json.loads(Path(f"{out}.spdx.json").read_text())
    assert "libexec/agent-two" not in json.dumps(spdx["relationships"])
    inspected = run_cli("inspect", "--json", str(out))
    assert inspected.returncode == 0, inspected.stderr
    programs = json.loads(inspected.stdout)["programs"]
    assert [p["path"] for p in programs] == [f"libexec/{agent.name}", "libexec/agent-two"]
    text = run_cli("inspect", str(out))
    assert f"libexec/agent-two -> {agent.name}" in text.stdout, text.stdout
    for name in (agent.name, "agent-two"):
        launcher = top / "bin" / name
        ran = subprocess.run([str(launcher)], capture_output=True, text=True, timeout=60)
        assert ran.returncode == 0, ran.stderr
        # (its os.Executable() is the loader that ran it: the launcher's documented start)
        lines = ran.stdout.splitlines()
        assert lines[0] == "sqlite: hello" and lines[1].startswith("lookup: ok "), ran.stdout


def test_a_second_name_given_and_the_first_as_a_helper(tmp_path: Path, c_lib) -> None:
    """git-receive-pack's shape: the program given is a link's name, and the same bytes
    come again under their own name as a helper; the helper shares the given name's copy,
    runs under its own name, and the records name that copy."""
    lib = c_lib(tmp_path / "lib" / "libfar.so", "int far(void) { return 7; }",
                "-Wl,-soname,libfar.so")
    tool = gcc(tmp_path / "bin" / "tool", NAMES, f"-L{lib.parent}", "-lfar",
               f"-Wl,-rpath,{lib.parent}")
    alias = tool.parent / "tool-alias"
    alias.symlink_to("tool")
    out = tmp_path / "alias.tar.zst"
    built = run_cli(str(alias), "--helper", f"{tool}:share/t/tool", "-o", str(out))
    assert built.returncode == 0, built.stderr
    top = unpack(out, tmp_path / "u") / "tool-alias"
    assert sorted(os.listdir(top / "libexec")) == ["tool-alias"]
    manifest = load_manifest(str(top), str(out))
    assert manifest.program_record("tool-alias").path == "libexec/tool-alias"
    _assert_graph_names_files(Path(f"{out}.cdx.json"), "tool-alias", "tool")
    for launcher, said in ((top / "bin" / "tool-alias", "tool-alias 7\n"),
                           (top / "share" / "t" / "tool", "tool 7\n")):
        ran = subprocess.run([str(launcher)], capture_output=True, text=True, timeout=60)
        assert (ran.returncode, ran.stdout) == (0, said), ran.stderr

"""The static-readiness diagnosis of the Go agent, held to the real toolchain.

`bundle inspect --json` names, for every build of the fixture, exactly the causes that keep
it from a clean static link, and one `go build` line. That line is then run here, in a copy
of the fixture module with the same offline environment as tests/support/gobuild.py: it must link,
give a really static program with the merged tags, leave only the link warnings the
diagnosis predicts, and the program must work.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from support.cli import run_cli
from support.gobuild import AGENT_DIR, assert_agent_output, build_agent, go_build, go_env

from bundler.diagnose import (
    Cause,
    GoEvidence,
    _containerd_has_no_dynamic_plugins,
    diagnose,
    go_build_command,
)
from bundler.elf import defined_symbol_names
from bundler.golang import parse_modinfo

ALL_TAGS = "netgo,osusergo,sqlite_omit_load_extension"
DYNAMIC_CAUSES = ["cgo-dns", "cgo-user", "sqlite-load-extension", "system-libsqlite3",
                  "missing-lm"]
EXPECTED = {
    "dynamic": DYNAMIC_CAUSES,
    "stripped": DYNAMIC_CAUSES,
    "trimpath": DYNAMIC_CAUSES,
    "static-notags": ["cgo-dns", "cgo-user", "sqlite-load-extension", "system-libsqlite3"],
    "static-tags": ["system-libsqlite3"],
}
FIXES = {  # code: (tags, extldflags, words the fix names)
    "cgo-dns": (["netgo"], [], "-tags netgo"),
    "cgo-user": (["osusergo"], [], "-tags osusergo"),
    "sqlite-load-extension": (["sqlite_omit_load_extension"], [],
                              "-tags sqlite_omit_load_extension"),
    "system-libsqlite3": ([], [], "upstream go-sqlite3"),
    "missing-lm": ([], ["-lm"], "-static -lm"),
}
LINK_WARNING = re.compile(r"in function `(\w+)':\n[^\n]*warning: Using '(\w+)' in statically "
                          r"linked applications")


def diagnosis_of(binary: Path) -> dict:
    result = run_cli("inspect", "--json", str(binary))
    assert result.returncode == 0, result.stderr
    diagnosis = json.loads(result.stdout)["static_diagnosis"]
    assert diagnosis is not None
    return diagnosis


def go_fields(text: str) -> list[str]:
    """Split as Go's cmd/internal/quoted.Split splits -ldflags and -extldflags."""
    fields = []
    text = text.strip()
    while text:
        if text[0] in "'\"":
            end = text.index(text[0], 1)
            fields.append(text[1:end])
            text = text[end + 1:].lstrip()
        else:
            word, _, text = text.partition(" ")
            fields.append(word)
            text = text.lstrip()
    return fields


def flag_value(words: list[str], flag: str) -> str:
    assert words.count(flag) == 1, words
    return words[words.index(flag) + 1]


def go_version_m(binary: Path) -> str:
    done = subprocess.run(["go", "version", "-m", str(binary)], capture_output=True,
                          text=True, env=go_env())
    assert done.returncode == 0, done.stderr
    return done.stdout


# -- the diagnosis of every build of the agent ---------------------------------------------
@pytest.mark.parametrize("variant", sorted(EXPECTED))
def test_causes_fixes_and_command(variant: str) -> None:
    diagnosis = diagnosis_of(build_agent(variant))
    causes = {c["code"]: c for c in diagnosis["causes"]}
    assert [c["code"] for c in diagnosis["causes"]] == EXPECTED[variant]
    for code, cause in causes.items():
        tags, extldflags, fix = FIXES[code]
        assert (cause["tags"], cause["extldflags"]) == (tags, extldflags), cause
        assert fix in cause["fix"], cause
        assert cause["evidence"], cause
    # Debian's libsqlite3.a keeps unixDlOpen: the one warning no tag removes.
    assert len(diagnosis["remaining"]) == 1
    assert diagnosis["remaining"] == [causes["system-libsqlite3"]["remains"]]
    assert "'dlopen'" in diagnosis["remaining"][0] and "unixDlOpen" in diagnosis["remaining"][0]

    command = diagnosis["command"]
    assert "\n" not in command and command == command.strip()
    words = shlex.split(command)
    assert words[:5] == ["CGO_ENABLED=1", "GOOS=linux", "GOARCH=amd64", "go", "build"]
    assert flag_value(words, "-tags") == ALL_TAGS
    assert flag_value(words, "-o") == "myagent-static" and words[-1] == "."
    ldflags = go_fields(flag_value(words, "-ldflags"))
    assert ldflags[:2] == ["-linkmode", "external"]
    assert go_fields(flag_value(ldflags, "-extldflags")) == ["-static", "-lm"]
    assert ("-s" in ldflags and "-w" in ldflags) == (variant == "stripped")
    assert ("-trimpath" in words) == (variant == "trimpath")
    trimpath_note = any("-trimpath" in note for note in diagnosis["notes"])
    assert trimpath_note == (variant == "trimpath")


def test_dynamic_evidence_names_the_cgo_callers() -> None:
    causes = {c["code"]: c for c in diagnosis_of(build_agent("dynamic"))["causes"]}
    assert "getaddrinfo" in causes["cgo-dns"]["evidence"]  # a dynamic import
    assert any(e.endswith("_C2func_getaddrinfo") for e in causes["cgo-dns"]["evidence"])
    assert "getpwuid_r" in causes["cgo-user"]["evidence"]
    assert "DT_NEEDED libsqlite3.so.0" in causes["system-libsqlite3"]["evidence"]


def test_stripped_evidence_comes_from_gopclntab() -> None:
    """-s -w drops .symtab; the Go function names survive in .gopclntab."""
    binary = build_agent("stripped")
    assert defined_symbol_names(str(binary)) is None
    causes = {c["code"]: c for c in diagnosis_of(binary)["causes"]}
    assert "net._C2func_getaddrinfo" in causes["cgo-dns"]["evidence"]
    assert "os/user._Cfunc_mygetpwuid_r" in causes["cgo-user"]["evidence"]
    assert ("github.com/mattn/go-sqlite3._Cfunc_sqlite3_load_extension"
            in causes["sqlite-load-extension"]["evidence"])
    # No C-side `_cgo_<hash>_` names: those live only in the .symtab that was stripped.
    every = [e for c in causes.values() for e in c["evidence"]]
    assert not any("_cgo_" in e for e in every), every


def test_static_builds_are_judged_by_their_contents() -> None:
    notags = {c["code"]: c for c in diagnosis_of(build_agent("static-notags"))["causes"]}
    assert "unixDlOpen" in notags["sqlite-load-extension"]["evidence"]
    assert not any(e.startswith("DT_NEEDED") for e in notags["system-libsqlite3"]["evidence"])
    tags = diagnosis_of(build_agent("static-tags"))["causes"]
    assert any("/usr/share/gocode/" in e for e in tags[0]["evidence"])


# -- the suggested command, run ------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("variant", ["dynamic", "stripped", "trimpath"])
def test_suggested_command_links_and_runs(variant: str, tmp_path: Path) -> None:
    go_build("dynamic")  # the toolchain is there (else skip), and the caches are warm
    diagnosis = diagnosis_of(build_agent(variant))
    src = tmp_path / "src"
    shutil.copytree(AGENT_DIR, src)
    # The command as printed, through sh, in the module: no -buildvcs=false needed here
    # (the copy is in no VCS checkout).
    done = subprocess.run(["sh", "-c", diagnosis["command"]], cwd=src, env=go_env(),
                          capture_output=True, text=True, timeout=600)
    log = done.stdout + done.stderr
    assert done.returncode == 0, f"{diagnosis['command']}\n{log}"
    binary = src / "myagent-static"

    program = subprocess.run(["readelf", "-W", "-l", "-d", str(binary)], capture_output=True,
                             text=True, check=True).stdout
    assert "INTERP" not in program and "(NEEDED)" not in program

    info = go_version_m(binary)
    assert f"\tbuild\t-tags={ALL_TAGS}\n" in info
    # -trimpath leaves -ldflags out of the build info (the diagnosis notes it).
    assert ("-extldflags '-static -lm'" in info) == (variant != "trimpath")

    warnings = [line for line in log.splitlines() if "warning:" in line]
    seen = LINK_WARNING.findall(log)
    assert len(seen) == len(warnings) >= 1, log
    for function, symbol in seen:
        assert any(f"Using '{symbol}'" in r and function in r for r in diagnosis["remaining"]), (
            f"unpredicted link warning: {symbol} in {function}\n{log}")

    ran = subprocess.run([str(binary)], capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert_agent_output(ran.stdout, binary)


# -- go_build_command on synthetic build info ----------------------------------------------
MODINFO = (
    "path\texample.com/agent/cmd/agent\n"
    "mod\texample.com/agent\t(devel)\t\n"
    "dep\tgithub.com/mattn/go-sqlite3\tv1.14.22\th1:abc=\n"
    "build\t-tags=foo\n"
    "build\t-ldflags=\"-X main.v=1 -extldflags '-Wl,--as-needed'\"\n"
    "build\tCGO_ENABLED=1\n"
    "build\tGOARCH=arm64\n"
    "build\tGOOS=linux\n"
)


def evidence(modinfo: str, functions: set[str], **changes) -> GoEvidence:
    fields = dict(info=parse_modinfo("go1.22.0", modinfo), functions=frozenset(functions),
                  imports=frozenset(), needed=(), needs_libm=False, missing_static=(),
                  program_name="agent")
    fields.update(changes)
    return GoEvidence(**fields)


def test_command_merges_existing_tags_and_ldflags() -> None:
    info = parse_modinfo("go1.22.0", MODINFO)
    assert info.tags == ("foo",)
    diagnosis = diagnose(evidence(
        MODINFO, {"net._C2func_getaddrinfo", "os/user._Cfunc_mygetpwuid_r"},
        needed=("libsqlite3.so.0", "libc.so.6"), needs_libm=True))
    assert [c.code for c in diagnosis.causes] == ["cgo-dns", "cgo-user", "system-libsqlite3",
                                                  "missing-lm"]
    words = shlex.split(diagnosis.command)
    assert words[:5] == ["CGO_ENABLED=1", "GOOS=linux", "GOARCH=arm64", "go", "build"]
    assert flag_value(words, "-tags") == "foo,netgo,osusergo"
    assert words[-3:] == ["-o", "agent-static", "./cmd/agent"]
    ldflags = go_fields(flag_value(words, "-ldflags"))
    assert ldflags == ["-linkmode", "external", "-X", "main.v=1",
                       "-extldflags", "-Wl,--as-needed -static -lm"]


def test_command_keeps_quoted_ldflags_words() -> None:
    """`-X 'main.v=1 beta'` stays one word for Go (it was split in two before)."""
    info = parse_modinfo("go1.22.0", MODINFO.replace(
        "-X main.v=1 ", "-X 'main.v=1 beta' -linkmode internal "))
    cause = Cause("c", (), "", "", tags=("netgo",), extldflags=("-lm",))
    words = shlex.split(go_build_command(info, [cause], "agent"))
    assert go_fields(flag_value(words, "-ldflags")) == [
        "-linkmode", "external", "-X", "main.v=1 beta",
        "-extldflags", "-Wl,--as-needed -static -lm"]


# -- containerd's dynamic plugins ----------------------------------------------------------
@pytest.mark.parametrize(("version", "has_tag"), [
    ("v1.6.30", False), ("v1.7.24", False), ("v1.7.25", True), ("v1.7.30", True),
    ("v2.0.0", False), ("v2.0.1", False), ("v2.0.2", True), ("v2.1.0", True),
    ("", False), ("(devel)", False),
])
def test_containerd_versions_with_no_dynamic_plugins(version: str, has_tag: bool) -> None:
    assert _containerd_has_no_dynamic_plugins(version) is has_tag


def containerd_modinfo(module: str, version: str, replaced: str | None = None) -> str:
    text = ("path\texample.com/shim\nmod\texample.com/shim\t(devel)\t\n"
            f"dep\t{module}\t{version}\th1:x=\n")
    if replaced:
        text += f"=>\t{module}\t{replaced}\th1:y=\n"
    return text + "build\tCGO_ENABLED=1\nbuild\tGOARCH=amd64\nbuild\tGOOS=linux\n"


def test_old_containerd_takes_static_build() -> None:
    """Before 1.7.25 there is no no_dynamic_plugins tag: plugin/plugin_go18.go is built under
    `amd64 && !static_build`, so static_build is the tag that works (issue 17)."""
    modinfo = containerd_modinfo("github.com/containerd/containerd", "v1.7.24")
    diagnosis = diagnose(evidence(modinfo, {"plugin.open"}))
    [cause] = diagnosis.causes
    assert cause.code == "containerd-plugins"
    assert cause.evidence == ("plugin.open", "github.com/containerd/containerd v1.7.24")
    assert cause.tags == ("static_build",)
    assert cause.fix.startswith("-tags static_build")
    assert "upgrade containerd to >= 1.7.25 / >= 2.0.2" in cause.fix
    assert "v1.7.24 (before 1.7.25 / 2.0.2)" in cause.rule
    assert flag_value(shlex.split(diagnosis.command), "-tags") == "static_build"


@pytest.mark.parametrize(("module", "version", "replaced"), [
    ("github.com/containerd/containerd", "v1.7.25", None),
    ("github.com/containerd/containerd/v2", "v2.0.2", None),
    ("github.com/containerd/containerd", "v1.7.20", "v1.7.27"),  # the replacement counts
])
def test_new_containerd_takes_the_tag(module: str, version: str, replaced: str | None) -> None:
    diagnosis = diagnose(evidence(containerd_modinfo(module, version, replaced),
                                  {"plugin.open"}))
    [cause] = diagnosis.causes
    assert cause.code == "containerd-plugins"
    assert cause.fix == "-tags no_dynamic_plugins"
    assert cause.tags == ("no_dynamic_plugins",)
    assert cause.evidence[-1].endswith(f"{module} {replaced or version}")
    assert f"containerd {replaced or version} (>= 1.7.25 / >= 2.0.2)" in cause.rule
    assert cause.remains is None and diagnosis.remaining == ()
    assert flag_value(shlex.split(diagnosis.command), "-tags") == "no_dynamic_plugins"


def test_plugin_without_containerd_remains() -> None:
    modinfo = containerd_modinfo("example.com/other", "v1.0.0")
    diagnosis = diagnose(evidence(modinfo, {"plugin.open"}))
    assert [c.code for c in diagnosis.causes] == ["go-plugin"]
    assert diagnosis.remaining == ("Using 'dlopen' in statically linked applications (plugin)",)
    assert "-tags" not in shlex.split(diagnosis.command)


def test_compare_diagnoses_like_the_build(tmp_path: Path) -> None:
    """`bundle compare ARTIFACT STATIC` reads the Go program from the artifact and gives
    the same diagnosis as the build did (it used to give none), evidence and all: the cgo
    callers (`_cgo_<hash>_Cfunc_sqlite3_load_extension`, ...) are .symtab names, which the
    artifact lost while LIEF emptied .symtab (patch.py now puts it back)."""
    import json
    import shutil

    from support.cli import run_cli
    from support.gobuild import build_agent

    agent = tmp_path / "myagent"
    shutil.copyfile(build_agent("dynamic"), agent)
    agent.chmod(0o755)
    static = tmp_path / "myagent-static"
    shutil.copyfile(build_agent("static-notags"), static)
    static.chmod(0o755)
    out = tmp_path / "myagent.tar.zst"
    built = run_cli(str(agent), "-o", str(out), "--static", str(static), "--json")
    assert built.returncode == 0, built.stderr
    compared = run_cli("compare", str(out), str(static), "--json")
    assert compared.returncode == 0, compared.stderr
    at_build, at_compare = (json.loads(r.stdout)["diagnosis"] for r in (built, compared))
    assert [c["code"] for c in at_build["causes"]] == DYNAMIC_CAUSES
    assert at_compare == at_build
    load_extension = next(c for c in at_compare["causes"] if c["code"] == "sqlite-load-extension")
    assert any(name.endswith("_Cfunc_sqlite3_load_extension")
               for name in load_extension["evidence"]), load_extension

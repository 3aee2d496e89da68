"""Carrying files, helpers and plugins a program reaches by path (--data, --helper, --env).

A gcc-built program reads a data file, dlopens a plugin of a carried tree (which needs
libz: it must come into lib/), executes a helper program of the tree through a symlink
(the tree's program is bundled in libexec/ and its launcher takes its place), and starts
/bin/sh to show what its children inherit. Run in an empty root at the prefix and
elsewhere, with both launcher types, and in the Debian 11 root.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from support.cli import assert_one_line_error, run_cli
from support.roots import chroot_run, debian11_root, empty_root

from bundler.build import BuildRequest, build
from bundler.carry import Carry, EnvValue, Helper

PROGRAM = r"""
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv) {
    char path[4096];
    snprintf(path, sizeof path, "%s/greeting.txt", getenv("PROBE_DATA_DIR"));
    FILE *f = fopen(path, "r");
    if (!f) { perror(path); return 3; }
    char text[256]; size_t n = fread(text, 1, sizeof text - 1, f); text[n] = 0; fclose(f);
    printf("greeting: %s", text);
    printf("args:"); for (int i = 1; i < argc; i++) printf(" [%s]", argv[i]); printf("\n");
    void *plugin = dlopen(getenv("PROBE_PLUGIN"), RTLD_NOW);
    if (!plugin) { printf("dlopen: %s\n", dlerror()); return 4; }
    const char *(*version)(void) = (const char *(*)(void))dlsym(plugin, "plugin_zlib");
    printf("plugin: zlib %s\n", version());
    fflush(stdout);
    if (system("exec /bin/sh -c 'echo child sees [${PROBE_DATA_DIR-unset}] "
               "[${PROBE_LOOSE-unset}]'") != 0) return 5;
    execl(getenv("PROBE_TOOL"), "tool-alias", "from-main", (char *)0);
    perror("exec");
    return 6;
}
"""
TOOL = r"""
#include <stdio.h>
#include <string.h>
int main(int argc, char **argv) {
    const char *base = strrchr(argv[0], '/');
    printf("tool: argv0 %s arg %s\n", base ? base + 1 : argv[0], argc > 1 ? argv[1] : "-");
    return 0;
}
"""
PLUGIN = r"""
#include <zlib.h>
const char *plugin_zlib(void) { return zlibVersion(); }
"""
ENV = ("PROBE_DATA_DIR={top}/share/probe", "PROBE_PLUGIN={top}/share/probe/plugins/plug.so",
       "PROBE_TOOL={top}/share/probe/tool-alias", "PROBE_LOOSE={top}")


def _gcc(source: str, out: Path, *flags: str) -> Path:
    src = out.with_suffix(".c")
    src.write_text(source)
    subprocess.run(["gcc", "-O1", "-o", str(out), str(src), *flags], check=True)
    return out


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The program and the tree it reaches: data, a helper program and a link to it, a
    plugin needing libz, a link leaving the tree, and a FIFO (left out)."""
    work = tmp_path_factory.mktemp("carry")
    _gcc(PROGRAM, work / "probe", "-ldl")
    top = work / "tree"
    (top / "plugins").mkdir(parents=True)
    (top / "greeting.txt").write_text("hello from the tree\n")
    _gcc(TOOL, top / "tool")
    (top / "tool-alias").symlink_to("tool")
    _gcc(PLUGIN, top / "plugins" / "plug.so", "-shared", "-fPIC", "-lz")
    (work / "outside.txt").write_text("outside\n")
    (top / "outside-link").symlink_to("../outside.txt")
    (top / "dangling").symlink_to("nowhere")
    os.mkfifo(top / "fifo")
    os.utime(top / "greeting.txt", (1_600_000_000, 1_600_000_000))
    return work


def _build(tree: Path, out: str, *extra: str) -> subprocess.CompletedProcess[str]:
    args = [str(tree / "probe"), "-o", out, "--data", f"{tree / 'tree'}:share/probe",
            "--sbom", "none"]
    for setting in ENV:
        args += ["--env", setting]
    return run_cli(*args, *extra)


@pytest.fixture(scope="module", params=["native", "sh"])
def artifact(request: pytest.FixtureRequest, tree: Path) -> Path:
    out = tree / f"probe-{request.param}.tar.zst"
    result = _build(tree, str(out), "--launcher-type", request.param)
    assert result.returncode == 0, result.stderr
    return out


def _expected(top: str) -> list[str]:
    return ["greeting: hello from the tree", "args: [a b] [c]",
            "plugin: zlib " + _zlib_version(),
            f"child sees [unset] [{top}]", "tool: argv0 tool-alias arg from-main"]


def _zlib_version() -> str:
    header = Path("/usr/include/zlib.h").read_text()
    return header.split('#define ZLIB_VERSION "', 1)[1].split('"', 1)[0]


def _unpack(artifact: Path, root: Path, where: str) -> None:
    target = root / where.lstrip("/")
    target.mkdir(parents=True)
    subprocess.run(["tar", "--zstd", "-xf", str(artifact), "-C", str(target),
                    "--strip-components=1"], check=True)


def test_the_tree_runs_from_the_artifact_in_an_empty_root(artifact: Path,
                                                          tmp_path: Path) -> None:
    with empty_root(tmp_path) as root:
        _unpack(artifact, root, "/opt/probe")
        _unpack(artifact, root, "/elsewhere/probe")
        for top in ("/opt/probe", "/elsewhere/probe"):
            done = chroot_run(root, [f"{top}/bin/probe", "a b", "c"])
            assert done.returncode == 0, (top, done.stdout, done.stderr)
            assert done.stdout.splitlines() == _expected(top), top


def test_the_tree_runs_in_the_debian11_root(artifact: Path, tmp_path: Path) -> None:
    with debian11_root(tmp_path) as root:
        _unpack(artifact, root, "/opt/probe")
        done = chroot_run(root, ["/opt/probe/bin/probe", "a b", "c"])
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == _expected("/opt/probe")


def test_the_manifest_records_what_was_carried_and_how_it_is_pointed_at(
        artifact: Path, tmp_path: Path) -> None:
    subprocess.run(["tar", "--zstd", "-xf", str(artifact), "-C", str(tmp_path)], check=True)
    top = tmp_path / "probe"
    manifest = json.loads((top / ".bundle" / "manifest.json").read_text())
    settings = {e["means"]: e for e in manifest["environment"]}
    # A whole string in the program: renamed there, so its children never see it.
    data_dir = settings["PROBE_DATA_DIR"]
    assert data_dir["scoped"] and data_dir["variable"] != "PROBE_DATA_DIR"
    assert data_dir["value"] == "{top}/share/probe" and data_dir["why"] == "--env"
    assert data_dir["scoped_in"] == ["libexec/probe"]
    # Read by nobody in the artifact: exported as is, inherited.
    assert settings["PROBE_LOOSE"]["scoped"] is False
    assert settings["PROBE_LOOSE"]["variable"] == "PROBE_LOOSE"
    assert manifest["carried"] == [{"source": str(artifact.parent / "tree"),
                                    "dest": "share/probe", "why": "--data"}]
    files = {f["path"]: f for f in manifest["files"]}
    # The tree's program is bundled, its place taken by a launcher; its link kept.
    assert files["libexec/tool"]["kind"] == "program"
    assert files["share/probe/tool"]["kind"] == "launcher"
    assert files["share/probe/tool-alias"] == {"path": "share/probe/tool-alias",
                                               "type": "symlink", "kind": "alias",
                                               "target": "tool"}
    assert files["share/probe/plugins/plug.so"]["kind"] == "library"
    assert "lib/libz.so.1" in files  # the plugin's library
    assert files["share/probe/outside-link"]["kind"] == "data"  # the file it names
    assert (top / "share/probe/outside-link").read_text() == "outside\n"
    assert "share/probe/fifo" not in files and "share/probe/dangling" not in files
    # The carried file keeps its own mtime (caches keyed by it stay valid).
    assert (top / "share/probe/greeting.txt").stat().st_mtime == 1_600_000_000
    assert manifest["programs"] == ["probe", "tool"]


def test_what_was_left_out_is_noted_and_a_copy_of_the_program_is_stored_once(
        tree: Path, tmp_path: Path) -> None:
    copy = tmp_path / "again"
    copy.mkdir()
    shutil.copy2(tree / "probe", copy / "probe-copy")
    result = build(BuildRequest(
        binaries=(str(tree / "probe"),), out=str(tmp_path / "out") + "/", sbom=(),
        data=(Carry(str(tree / "tree"), "share/probe", "--data"),),
        helpers=(Helper(str(copy / "probe-copy"), "bin/probe-copy", "--helper"),),
        env=tuple(EnvValue(*s.split("=", 1), "--env") for s in ENV)))
    plan = result.plan
    notes = " | ".join(plan.carry_notes)
    assert "fifo" in notes and "not a regular file" in notes
    assert "dangling" in notes
    assert [f.dest for f in plan.files if f.kind == "program"] == ["libexec/probe",
                                                                    "libexec/tool"]
    launchers = {f.dest: f.program for f in plan.files if f.kind == "launcher"}
    assert launchers["bin/probe-copy"] == "probe"  # the same bytes: one copy, two launchers
    assert plan.helpers == ("tool",)


def test_carrying_mistakes_are_one_line_errors(tree: Path, tmp_path: Path) -> None:
    out = str(tmp_path / "x.tar.zst")
    cases = [
        (["--data", "relative/x"], "SRC must be an absolute path"),
        (["--data", "/nonexistent/bundle-test"], "is not in the build root"),
        (["--env", "NO_VALUE"], "NAME=VALUE"),
        (["--env", "A=1", "--env", "A=2"], "given twice"),
        (["--helper", "/nonexistent/prog"], "not a file in the build root"),
        (["--data", f"{tree / 'tree'}:bin/x"], "artifact's own bin/"),
    ]
    for extra, words in cases:
        result = run_cli(str(tree / "probe"), "-o", out, "--no-recipes", *extra)
        assert_one_line_error(result, 2, words)
        assert not os.path.exists(out)


GIT_SCRIPT = """set -e
G=$1
cd /tmp && rm -rf src dst && mkdir src && cd src
$G init -q . && echo hi > a && $G add a
$G -c user.name=T -c user.email=t@e commit -qm one && cd ..
$G clone -q src dst && cd dst && echo more >> a
$G -c user.name=T -c user.email=t@e commit -qam two && $G log --format=%s
"""


def test_from_package_carries_gits_helpers_for_a_clone_in_an_empty_root(
        tmp_path: Path) -> None:
    """--from-package brings the files of git's package (git-core's helpers become
    launchers of the one bundled git); --env points git at them: `git clone` runs
    git-upload-pack from the artifact. No recipe is used (--no-recipes)."""
    git = shutil.which("git")
    assert git, "scripts/test installs git"
    out = tmp_path / "git.tar.zst"
    result = run_cli(git, "-o", str(out), "--from-package", "--no-recipes", "--sbom", "none",
                     "--env", "GIT_EXEC_PATH={top}/usr/lib/git-core",
                     "--env", "GIT_TEMPLATE_DIR={top}/usr/share/git-core/templates")
    assert result.returncode == 0, result.stderr
    with empty_root(tmp_path) as root:
        _unpack(out, root, "/opt/git")
        _unpack(out, root, "/elsewhere/git")
        (root / "tmp" / "t.sh").write_text(GIT_SCRIPT)
        (root / "dev").mkdir()  # git opens /dev/null and /dev/urandom, as any host has
        for name, minor in (("null", 3), ("zero", 5), ("urandom", 9)):
            os.mknod(root / "dev" / name, stat.S_IFCHR | 0o666, os.makedev(1, minor))
        for top in ("/opt/git", "/elsewhere/git"):
            done = chroot_run(root, ["/bin/sh", "/tmp/t.sh", f"{top}/bin/git"])
            assert (done.returncode, done.stdout) == (0, "two\none\n"), (top, done.stderr)
            assert "warning" not in done.stderr, done.stderr
    listing = subprocess.run(["tar", "--zstd", "-tvf", str(out)], capture_output=True,
                             text=True, check=True).stdout
    # git and git-core/git are the same bytes: one copy in libexec/, launchers elsewhere.
    assert listing.count("libexec/git\n") == 1
    assert "usr/share/doc" not in listing


# --- the launcher's own arguments and {top} values, at any depth -----------------------------

FAKE_LOADER = """#!/bin/sh
for word in "$@"; do printf 'arg=%s\\n' "$word"; done
printf 'env=%s\\n' "$PROBE_VALUE"
"""


@pytest.mark.parametrize("kind", ["native", "sh"])
def test_launcher_arguments_and_top_values_at_depth(tmp_path: Path, kind: str) -> None:
    """A launcher three directories below the top (a carried tree's) finds the top, puts
    its arguments (a recipe's: `{top}` expanded, spaces and quotes kept) before the
    caller's and sets `{top}` values; the loader here is a script recording what it got."""
    from bundler import native_launcher
    from bundler.launcher import render_launcher
    from bundler.plan import BundlePlan, EnvSetting

    top = tmp_path / "it's top"
    (top / "lib").mkdir(parents=True)
    (top / "libexec").mkdir()
    (top / "libexec" / "prog").write_text("")
    loader = top / "lib" / "ld.so"
    loader.write_text(FAKE_LOADER)
    loader.chmod(0o755)
    plan = BundlePlan(name="prog", prefix="/opt/prog-nowhere", launcher="loader",
                      arch="x86-64", loader_name="ld.so", loader_supports_argv0=True,
                      glibc_release="2.36", min_kernel=None, programs=("prog",), files=(),
                      missing=(), env=(EnvSetting("PROBE_VALUE", "PROBE_VALUE", "",
                                                  value="{top}/a:{top}/b c", why="--env"),))
    args = ("--agent-program", "{top}/bin/x 'y'", "plain")
    dest = top / "usr" / "lib" / "tree" / "helper"
    dest.parent.mkdir(parents=True)
    if kind == "native":
        compiler = native_launcher.find_compiler("x86-64", "x86_64-linux-gnu")
        assert compiler is not None, "scripts/test installs gcc"
        dest.write_bytes(native_launcher.launcher_for(compiler, plan, "prog", 3, args))
    else:
        dest.write_text(render_launcher(plan, "prog", "usr/lib/tree", args))
    dest.chmod(0o755)
    done = subprocess.run([str(dest), "caller's", "two words"], capture_output=True,
                          text=True, check=True)
    here = str(top)
    assert done.stdout.splitlines() == [
        "arg=--library-path", f"arg={here}/lib", "arg=--argv0", f"arg={dest}",
        f"arg={here}/libexec/prog", "arg=--agent-program", f"arg={here}/bin/x 'y'",
        "arg=plain", "arg=caller's", "arg=two words", f"env={here}/a:{here}/b c"]


def test_a_tree_object_of_another_architecture_is_carried_as_data(tree: Path,
                                                                   tmp_path: Path) -> None:
    """An aarch64 plugin in an x86-64 program's tree cannot load into it: carried as it is,
    noted, its libraries not looked for."""
    cross = shutil.which("aarch64-linux-gnu-gcc")
    assert cross, "scripts/test installs gcc-aarch64-linux-gnu"
    mixed = tmp_path / "mixed"
    shutil.copytree(tree / "tree", mixed, symlinks=True, ignore=shutil.ignore_patterns("fifo"))
    source = tmp_path / "other.c"
    source.write_text("int other(void) { return 1; }\n")
    subprocess.run([cross, "-shared", "-fPIC", "-o", str(mixed / "plugins" / "other.so"),
                    str(source)], check=True)
    result = build(BuildRequest(
        binaries=(str(tree / "probe"),), out=str(tmp_path / "out") + "/", sbom=(),
        data=(Carry(str(mixed), "share/probe", "--data"),), recipes=False))
    entry = next(f for f in result.plan.files if f.dest == "share/probe/plugins/other.so")
    assert entry.kind == "data" and entry.patch is None
    assert any("other.so" in n and "carried as data" in n for n in result.plan.carry_notes)

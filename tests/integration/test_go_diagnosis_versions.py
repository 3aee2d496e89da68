"""The printed `go build` command, run: its link warnings are exactly the predicted ones.

Issue 17 found the diagnosis wrong where the rules depend on how the program was built:
containerd 1.6 needs -tags static_build (no_dynamic_plugins came in 1.7.25 / 2.0.2), a
GOPATH build has no module info (no deps, a `_/dir` package path that `go build` cannot
take), and a cgo cross build needs CC. Each test here builds a real program from Debian's
packaged Go sources (go-sqlite3 from golang-github-mattn-go-sqlite3-dev, containerd 1.6
from golang-github-containerd-containerd-dev, GOPATH=/usr/share/gocode), runs `bundle
inspect --json`, then runs the printed command through sh and compares the warnings the
linker printed with `remaining` (symbol and function): none unpredicted, none missing.
Module mode with containerd `replace`d by Debian's directory is built offline from a
vendor/ of symlinks into /usr/share/gocode (`vendor_from_gocode`).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from support.cli import run_cli
from support.gobuild import AGENT_DIR, SQLITE_SRC, assert_agent_output, go_env
from support.needs import need, need_tool
from support.paths import FIXTURES

from bundler.diagnose import VERSION_FILES, directory_versions
from bundler.golang import parse_modinfo

GOCODE = Path("/usr/share/gocode")
CONTAINERD = "github.com/containerd/containerd"
CONTAINERD_SRC = GOCODE / "src" / CONTAINERD
CTR_DIR = FIXTURES / "ctrplugin"
# GNU ld names the function that calls the symbol on the line before the warning.
LINK_WARNING = re.compile(r"in function `(\w+)':\n[^\n]*warning: Using '(\w+)' in statically "
                          r"linked applications")
PREDICTED = re.compile(r"Using '(\w+)' in statically linked applications \((\w+)")


def gopath_env(**extra: str) -> dict[str, str]:
    """go_env() in GOPATH mode over Debian's gocode tree (-mod is for modules only)."""
    env = go_env()
    env.update({"GO111MODULE": "off", "GOPATH": str(GOCODE), "GOFLAGS": ""}, **extra)
    return env


def need_sources(*dirs: Path) -> None:
    need_tool("go")
    need_tool("gcc")
    for path in dirs:
        need(path.is_dir(), f"no {path}: install golang-github-mattn-go-sqlite3-dev and "
             "golang-github-containerd-containerd-dev")


def go_build(cwd: Path, env: dict[str, str], *flags: str) -> str:
    done = subprocess.run(["go", "build", *flags], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def inspect(binary: Path, *options: str) -> dict:
    result = run_cli("inspect", "--json", *options, str(binary))
    assert result.returncode == 0, result.stderr
    diagnosis = json.loads(result.stdout)["static_diagnosis"]
    assert diagnosis is not None
    return diagnosis


def run_printed(command: str, cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(["sh", "-c", command], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)
    log = done.stdout + done.stderr
    assert done.returncode == 0, f"{command}\n{log}"
    return log


def assert_warnings_as_predicted(log: str, remaining: list[str]) -> None:
    """Exactly the predicted warnings: (symbol, function) pairs, both ways."""
    seen = set(LINK_WARNING.findall(log))
    assert len(seen) == sum("warning:" in line for line in log.splitlines()), log
    predicted = {(function, symbol) for symbol, function in
                 (PREDICTED.search(r).groups() for r in remaining)}  # type: ignore[union-attr]
    assert seen == predicted, f"predicted {sorted(predicted)}, linker said:\n{log}"


def assert_static(binary: Path) -> None:
    program = subprocess.run(["readelf", "-W", "-l", "-d", str(binary)], capture_output=True,
                             text=True, check=True).stdout
    assert "INTERP" not in program and "(NEEDED)" not in program


def go_symbols(binary: Path) -> str:
    return subprocess.run(["go", "tool", "nm", str(binary)], capture_output=True, text=True,
                          env=go_env(), check=True).stdout


# -- GOPATH mode ---------------------------------------------------------------------------
@pytest.mark.slow
def test_gopath_agent_command_leaves_the_predicted_warning(tmp_path: Path) -> None:
    """GO111MODULE=off: no module info, so go-sqlite3 is known by its functions and the
    package is `_/<dir>`; the command builds `.` in that directory."""
    need_sources(SQLITE_SRC)
    src = tmp_path / "agent"
    shutil.copytree(AGENT_DIR, src)
    env = gopath_env(CGO_ENABLED="1")
    go_build(src, env, "-o", "agent", ".")
    diagnosis = inspect(src / "agent")
    assert [c["code"] for c in diagnosis["causes"]] == [
        "cgo-dns", "cgo-user", "sqlite-load-extension", "system-libsqlite3", "missing-lm"]
    command = diagnosis["command"]
    assert command.startswith(f"cd {src} && GO111MODULE=off CGO_ENABLED=1 "), command
    assert "_/" not in command and command.endswith(" -o agent-static .")
    assert any("GOPATH build" in n for n in diagnosis["notes"])

    log = run_printed(command, tmp_path, gopath_env())
    assert_warnings_as_predicted(log, diagnosis["remaining"])
    binary = src / "agent-static"
    assert_static(binary)
    ran = subprocess.run([str(binary)], capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert_agent_output(ran.stdout, binary)


@pytest.mark.slow
def test_containerd16_static_build_removes_the_plugin_loader(tmp_path: Path) -> None:
    """The old advice (-tags no_dynamic_plugins) left containerd 1.6's plugin loader in: the
    diagnosis of that static build names the tag as without effect, and its command
    (static_build) links with no warning at all and runs."""
    need_sources(CONTAINERD_SRC)
    src = tmp_path / "ctrplugin"
    shutil.copytree(CTR_DIR, src)
    env = gopath_env(CGO_ENABLED="1")
    old_log = go_build(src, env, "-tags", "netgo,osusergo,no_dynamic_plugins", "-ldflags",
                       "-linkmode external -extldflags -static", "-o", "ctrplugin", ".")
    assert ("pluginOpen", "dlopen") in LINK_WARNING.findall(old_log), old_log
    assert "plugin.open" in go_symbols(src / "ctrplugin")

    diagnosis = inspect(src / "ctrplugin")
    [cause] = diagnosis["causes"]
    assert cause["code"] == "containerd-plugins"
    assert "no_dynamic_plugins was given but has no effect" in cause["explanation"]
    # GOPATH: no version recorded, but the tag without effect proves it predates 1.7.25.
    assert cause["tags"] == ["static_build"]
    assert "predates 1.7.25 / 2.0.2" in cause["rule"]
    assert "static_build" in diagnosis["command"].split()[diagnosis["command"].split()
                                                          .index("-tags") + 1]
    assert diagnosis["remaining"] == []

    (src / "ctrplugin").unlink()
    assert_plugin_loader_gone(diagnosis, tmp_path, gopath_env(), src)


def assert_plugin_loader_gone(diagnosis: dict, cwd: Path, env: dict[str, str],
                              src: Path) -> None:
    """Run the printed command: exactly the predicted warnings, a static binary without Go's
    plugin loader, and it still runs (plugin.Load finds nothing to load)."""
    log = run_printed(diagnosis["command"], cwd, env)
    assert_warnings_as_predicted(log, diagnosis["remaining"])
    binary = src / "ctrplugin-static"
    assert_static(binary)
    assert "plugin.open" not in go_symbols(binary)
    ran = subprocess.run([str(binary)], capture_output=True, text=True, timeout=60)
    assert (ran.returncode, ran.stdout) == (0, "load: <nil>\n"), ran.stderr


def test_debian_containerd_directory_gives_its_version() -> None:
    """A `replace` by Debian's gocode directory: the version is read from its
    version/version.go (the build info says only the directory)."""
    need(CONTAINERD_SRC.is_dir(), f"no {CONTAINERD_SRC}: golang-github-containerd-containerd-dev")
    info = parse_modinfo("go1.19.8", f"path\tx\nmod\tx\t(devel)\t\ndep\t{CONTAINERD}\tv1.6.20\t\n"
                                     f"=>\t{CONTAINERD_SRC}\t\n")
    [(module, version, source)] = directory_versions(info)
    assert (module, source) == (CONTAINERD, f"{CONTAINERD_SRC}/{VERSION_FILES[0]}")
    text = Path(source).read_text()
    assert f'Version = "{version}"' in text and version.startswith("1.6.")


# -- module mode: containerd `replace`d by Debian's directory --------------------------------
def vendor_from_gocode(src: Path, version: str) -> None:
    """Make `src` a module that requires containerd `version` replaced by Debian's directory,
    offline: its imports are vendored as symlinks into /usr/share/gocode (what `go mod
    vendor` would copy), since GOPROXY=off cannot resolve containerd's own go.mod graph."""
    listed = subprocess.run(
        ["go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}} {{.Dir}}{{end}}", "."],
        cwd=src, env=gopath_env(), capture_output=True, text=True, check=True).stdout
    modules: dict[tuple[str, Path], list[str]] = {}
    top = GOCODE / "src"
    for line in listed.splitlines():
        package, directory = line.split(" ", 1)
        if package.startswith("_/"):
            continue
        root = Path(directory)
        while not (root / "go.mod").is_file() and top in root.parent.parents:
            root = root.parent
        if (root / "go.mod").is_file():
            module = next(w.split()[1] for w in (root / "go.mod").read_text().splitlines()
                          if w.startswith("module "))
        else:  # Debian's tree has modules without go.mod (github.com/pkg/errors)
            module = "/".join(package.split("/")[:3])
            root = top / module
        modules.setdefault((module, root), []).append(package)
    lines, requires = [], []
    for (module, root), packages in sorted(modules.items()):
        if module == CONTAINERD:
            lines.append(f"# {module} {version} => {root}")
        else:
            lines.append(f"# {module} v0.0.0")
            requires.append(f"require {module} v0.0.0\n")
        lines += ["## explicit; go 1.19", *sorted(packages)]
        link = src / "vendor" / module
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(root)
    lines.append(f"# {CONTAINERD} => {CONTAINERD_SRC}")
    (src / "vendor" / "modules.txt").write_text("\n".join(lines) + "\n")
    (src / "go.mod").write_text(f"module example.com/ctrplugin\n\ngo 1.19\n\n"
                                f"require {CONTAINERD} {version}\n{''.join(requires)}\n"
                                f"replace {CONTAINERD} => {CONTAINERD_SRC}\n")


@pytest.mark.slow
def test_module_replaced_by_debian_directory_gets_its_version(tmp_path: Path) -> None:
    """`replace containerd => /usr/share/gocode/...` shows `(devel)` in the build info; the
    version comes from the directory's version/version.go, so the rule is 1.6's
    (static_build), and the printed command links with no warning and runs."""
    need_sources(CONTAINERD_SRC)
    src = tmp_path / "ctrplugin"
    shutil.copytree(CTR_DIR, src)
    vendor_from_gocode(src, "v1.6.20")
    env = go_env()
    env["GOFLAGS"] = "-mod=vendor"
    go_build(src, {**env, "CGO_ENABLED": "1"}, "-o", "ctrplugin", ".")
    diagnosis = inspect(src / "ctrplugin")
    causes = {c["code"]: c for c in diagnosis["causes"]}
    assert set(causes) <= {"cgo-dns", "cgo-user", "containerd-plugins"}, causes  # net: grpc
    cause = causes["containerd-plugins"]
    assert cause["evidence"][-1].startswith(
        f"{CONTAINERD} => {CONTAINERD_SRC}: version 1.6.")
    assert cause["evidence"][-1].endswith(f"read from {CONTAINERD_SRC}/{VERSION_FILES[0]}")
    assert cause["tags"] == ["static_build"]
    assert "plugin/plugin_go18.go is built under amd64 && !static_build" in cause["rule"]
    command = diagnosis["command"]
    assert command.startswith("CGO_ENABLED=0 ") and command.endswith(" ."), command

    assert_plugin_loader_gone(diagnosis, src, env, src)


# -- arm64 cross builds --------------------------------------------------------------------
ARM64_CC = "aarch64-linux-gnu-gcc"
ARM64_SQLITE = Path("/usr/lib/aarch64-linux-gnu/libsqlite3.a")


def need_arm64() -> None:
    need_tool(ARM64_CC)
    need_tool("qemu-aarch64-static")


@pytest.mark.slow
def test_arm64_cross_command_names_cc_and_leaves_the_predicted_warning(tmp_path: Path) -> None:
    """The printed command of an arm64 cgo build carries CC (without it: `gcc_arm64.S: no
    such instruction`); it links against the multiarch libsqlite3.a:arm64 with exactly the
    predicted warning, and the program runs under qemu."""
    need_sources(SQLITE_SRC)
    need_arm64()
    need(ARM64_SQLITE.is_file(), f"no {ARM64_SQLITE}: install libsqlite3-dev:arm64")
    src = tmp_path / "agent"
    shutil.copytree(AGENT_DIR, src)
    env = go_env()
    go_build(src, {**env, "CC": ARM64_CC, "GOARCH": "arm64", "CGO_ENABLED": "1"}, "-o",
             "myagent", ".")
    diagnosis = inspect(src / "myagent")
    command = diagnosis["command"]
    assert command.startswith(f"CC={ARM64_CC} CGO_ENABLED=1 GOOS=linux GOARCH=arm64 go build "), \
        command
    assert diagnosis["remaining"] == [
        "Using 'dlopen' in statically linked applications (unixDlOpen in libsqlite3.a)"]

    log = run_printed(command, src, env)  # env has no CC: the command must bring it
    assert_warnings_as_predicted(log, diagnosis["remaining"])
    binary = src / "myagent-static"
    assert_static(binary)
    ran = subprocess.run(["qemu-aarch64-static", str(binary)], capture_output=True, text=True,
                         timeout=120)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert_agent_output(ran.stdout, binary)


@pytest.mark.slow
def test_arm64_containerd16_has_no_plugin_cause(tmp_path: Path) -> None:
    """containerd 1.6 builds its plugin loader for amd64 only: an arm64 build has no plugin
    cause (a note says why), no cgo is left, and the pure-Go command links with no warning."""
    need_sources(CONTAINERD_SRC)
    need_arm64()
    src = tmp_path / "ctrplugin"
    shutil.copytree(CTR_DIR, src)
    go_build(src, gopath_env(CC=ARM64_CC, GOARCH="arm64", CGO_ENABLED="1"), "-o",
             "ctrplugin", ".")
    diagnosis = inspect(src / "ctrplugin")
    assert diagnosis["causes"] == []
    assert any("amd64 only: this arm64 build has none" in n for n in diagnosis["notes"])
    command = diagnosis["command"]
    assert command.startswith(f"cd {src} && GO111MODULE=off CGO_ENABLED=0 GOOS=linux "
                              "GOARCH=arm64 go build "), command

    log = run_printed(command, tmp_path, gopath_env())
    assert_warnings_as_predicted(log, diagnosis["remaining"])
    binary = src / "ctrplugin-static"
    assert_static(binary)
    ran = subprocess.run(["qemu-aarch64-static", str(binary)], capture_output=True, text=True,
                         timeout=120)
    assert (ran.returncode, ran.stdout) == (0, "load: <nil>\n"), ran.stderr

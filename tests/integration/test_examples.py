"""The CI recipes in examples/ are run, not only read: each recipe's own release commands,
taken from the file as written (GitHub Actions `run:` steps, GitLab `script:` lines,
goreleaser's build hooks), run here on a checkout laid out as the recipes expect, with the
demo agent's source, a real minisign key passed the way CI passes a secret, and `bundle` on
PATH. The install steps (apt-get, pipx) are this machine's scripts/test's job.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.gobuild import AGENT_DIR, go_env
from support.needs import need, need_tool
from support.paths import REPO
from support.roots import need_root
from support.schemas import validate

from bundler.elf import read_elf

EXAMPLES = REPO / "examples"
TAG = "v1.4.2"
VERSION = "1.4.2"
yaml = pytest.importorskip("yaml")  # PyYAML comes with spdx-tools


def _checkout(top: Path) -> tuple[Path, dict[str, str]]:
    """A repository as the recipes see it: the agent's source, bundle.toml at the top,
    examples/*.sh; and the environment of a CI job (the secret, `bundle` on PATH)."""
    need_root()
    for tool in ("go", "gcc", "aarch64-linux-gnu-gcc", "qemu-aarch64-static", "sha256sum"):
        need_tool(tool)
    need(os.path.exists("/usr/lib/aarch64-linux-gnu/libsqlite3.so"),
         "libsqlite3-dev:arm64 is not installed")
    minisign = need_tool("minisign")
    repo = top / "repo"
    shutil.copytree(AGENT_DIR, repo)
    (repo / "examples").mkdir()
    for script in ("build.sh", "release.sh"):
        shutil.copy2(EXAMPLES / script, repo / "examples" / script)
    shutil.copyfile(EXAMPLES / "bundle.toml", repo / "bundle.toml")
    keys = top / "keys"
    keys.mkdir()
    subprocess.run([minisign, "-G", "-W", "-p", str(keys / "release.pub"),
                    "-s", str(keys / "release.key")], check=True, capture_output=True)
    bin_dir = top / "bin"  # `bundle` as pipx would put it on PATH: this checkout's
    bin_dir.mkdir()
    (bin_dir / "bundle").write_text(
        f"#!/bin/sh\nPYTHONPATH={shlex.quote(str(REPO))} exec "
        f"{shlex.quote(sys.executable)} -m bundler \"$@\"\n")
    (bin_dir / "bundle").chmod(0o755)
    env = {**go_env(), "PATH": f"{bin_dir}:{os.environ['PATH']}",
           "MINISIGN_SECRET_KEY": (keys / "release.key").read_text()}
    env.pop("LD_LIBRARY_PATH", None)
    return repo, env


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    repo, env = _checkout(tmp_path_factory.mktemp("examples"))
    return repo, env


def _run(command: str, repo: Path, env: dict[str, str], *, shell: bool = True
         ) -> subprocess.CompletedProcess[str]:
    argv = ["sh", "-eu", "-c", command] if shell else shlex.split(command)
    return subprocess.run(argv, cwd=repo, env=env, capture_output=True, text=True,
                          timeout=900)


def _fresh(repo: Path) -> None:
    for leftover in ("dist", "release.json"):
        path = repo / leftover
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def _check_release(repo: Path, dist: Path, arches: tuple[str, ...]) -> dict:
    """What every recipe must leave: the archives, true SHA256SUMS signed by the key, the
    release JSON valid and passed, and no secret key on disk."""
    data = json.loads((repo / "release.json").read_text())
    validate("release", data)
    assert data["passed"] and data["version"] == VERSION
    assert [t["arch"] for t in data["targets"]] == list(arches)
    for arch in arches:
        assert (dist / f"myagent-{VERSION}-linux-{arch}.tar.zst").is_file()
    assert all(v["passed"] for t in data["targets"] for v in t["verify"])
    assert subprocess.run(["sha256sum", "--strict", "-c", "SHA256SUMS"], cwd=dist,
                          capture_output=True).returncode == 0
    signed = subprocess.run(["minisign", "-V", "-m", str(dist / "SHA256SUMS"), "-p",
                             str(repo.parent / "keys" / "release.pub")],
                            capture_output=True, text=True)
    assert signed.returncode == 0, signed.stderr
    assert not (repo / "release.key").exists()  # the secret lived for the step only
    return data


def _build(repo: Path, env: dict[str, str]) -> None:
    built = _run("examples/build.sh", repo, env)
    assert built.returncode == 0, built.stderr
    for arch, machine in (("amd64", "x86-64"), ("arm64", "aarch64")):
        assert read_elf(str(repo / "build" / arch / "myagent")).ident.machine_name == machine


def test_github_actions_release_steps(checkout) -> None:
    repo, env = checkout
    workflow = yaml.safe_load((EXAMPLES / "github-actions.yml").read_text())
    steps = workflow["jobs"]["release"]["steps"]
    ours = [s for s in steps if "examples/" in s.get("run", "")]
    assert [s["run"].split()[0] for s in ours] == ["examples/build.sh", "examples/release.sh"]
    assert ours[1]["env"] == {"MINISIGN_SECRET_KEY": "${{ secrets.MINISIGN_SECRET_KEY }}"}
    _fresh(repo)
    for step in ours:
        done = _run(step["run"], repo, {**env, "GITHUB_REF_NAME": TAG})
        assert done.returncode == 0, (step["run"], done.stderr)
    _check_release(repo, repo / "dist", ("amd64", "arm64"))


def test_gitlab_ci_script(checkout) -> None:
    repo, env = checkout
    job = yaml.safe_load((EXAMPLES / "gitlab-ci.yml").read_text())["release"]
    assert job["script"][0] == "examples/build.sh"
    assert job["script"][1].startswith('examples/release.sh "$CI_COMMIT_TAG"')
    _fresh(repo)
    for line in job["script"]:
        done = _run(line, repo, {**env, "CI_COMMIT_TAG": TAG})
        assert done.returncode == 0, (line, done.stderr)
    _check_release(repo, repo / "dist", ("amd64", "arm64"))
    assert set(job["artifacts"]["paths"]) == {"dist/", "release.json"}


def test_goreleaser_build_hooks(checkout) -> None:
    """goreleaser puts each build where bundle.toml looks (dist: build, binary ARCH/myagent)
    and runs its post hook per target, without a shell, templates filled in."""
    repo, env = checkout
    config = yaml.safe_load((EXAMPLES / "goreleaser.yaml").read_text())
    build = config["builds"][0]
    assert config["dist"] == "build" and build["binary"] == "{{ .Arch }}/myagent"
    assert build["no_unique_dist_dir"] is True and build["goarch"] == ["amd64", "arm64"]
    _fresh(repo)
    _build(repo, env)  # what goreleaser's builds make, at the same paths
    hook = build["hooks"]["post"][0]["cmd"]
    for arch in build["goarch"]:
        command = hook.replace("{{ .Version }}", VERSION).replace("{{ .Arch }}", arch)
        done = _run(command, repo, env, shell=False)
        assert done.returncode == 0, (command, done.stderr)
        _check_release(repo, repo / "dist" / f"bundle-{arch}", (arch,))


def test_the_release_step_passes_the_exit_code_on_and_keeps_the_json(checkout) -> None:
    repo, env = checkout
    _fresh(repo)
    _build(repo, env)
    done = _run(f"examples/release.sh {TAG} --target arm64 --no-verify --fail-on "
                "verdict:artifact", repo, env)
    assert done.returncode == 5, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(
        "bundle: error: release: --fail-on: arm64: verdict:artifact")
    data = json.loads((repo / "release.json").read_text())
    assert data["exit_code"] == 5
    assert not (repo / "release.key").exists()
    unsigned = _run(f"examples/release.sh {TAG} --target arm64 --no-verify", repo,
                    {k: v for k, v in env.items() if k != "MINISIGN_SECRET_KEY"})
    assert unsigned.returncode == 0, unsigned.stderr
    assert "MINISIGN_SECRET_KEY is not set" in unsigned.stderr
    assert not (repo / "dist" / "SHA256SUMS.minisig").exists()

"""`bundle release`: the demo agent for amd64 and arm64 from one bundle.toml, built, summed,
signed with real minisign and gpg keys, verified in a bare root (arm64 under qemu), gated.

Everything runs for real: Go builds of the agent (cached, tests/support/gobuild.py), the
sandbox `bundle verify` uses, the signing tools. What the release writes is checked with
the tools a user has: `sha256sum -c`, `bundle verify --key`, the shipped JSON schema.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.cli import assert_one_line_error, run_cli
from support.gobuild import build_agent
from support.needs import need, need_tool
from support.paths import REPO
from support.roots import need_root
from support.schemas import validate

VERSION = "1.4.2"
AMD64 = f"myagent-{VERSION}-linux-amd64.tar.zst"
ARM64 = f"myagent-{VERSION}-linux-arm64.tar.zst"

CONFIG = """\
name = "myagent"
version = "1.4.2"
fail-on = ["hazard:high"]

[[target]]
arch = "amd64"
programs = ["build/amd64/myagent"]
static = "build/amd64/myagent-static"

[[target]]
arch = "arm64"
programs = ["build/arm64/myagent"]
sysroot = "/"          # this machine's multiarch arm64 libraries (libsqlite3-dev:arm64)

[verify]
roots = ["bare"]
expect-output = "sqlite: hello"

[sign]
tool = "minisign"
key = "keys/release.key"
"""


def _project(top: Path) -> Path:
    """A release engineer's checkout: the builds, a minisign key pair, bundle.toml."""
    need_tool("aarch64-linux-gnu-gcc")
    need(os.path.exists("/usr/lib/aarch64-linux-gnu/libsqlite3.so"),
         "libsqlite3-dev:arm64 is not installed")
    for arch, variants in (("amd64", (("dynamic", "myagent"), ("static-tags", "myagent-static"))),
                           ("arm64", (("arm64-dynamic", "myagent"),))):
        (top / "build" / arch).mkdir(parents=True)
        for variant, name in variants:
            shutil.copyfile(build_agent(variant), top / "build" / arch / name)
            (top / "build" / arch / name).chmod(0o755)
    minisign = need_tool("minisign")
    (top / "keys").mkdir()
    subprocess.run([minisign, "-G", "-W", "-p", str(top / "keys/release.pub"),
                    "-s", str(top / "keys/release.key")], check=True, capture_output=True)
    (top / "bundle.toml").write_text(CONFIG)
    return top


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return _project(tmp_path_factory.mktemp("release"))


@pytest.fixture(scope="module")
def released(project: Path) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """The whole release, once: both targets, signed, verified (needs the sandbox)."""
    need_root()
    need_tool("qemu-aarch64-static")
    return project, run_cli("release", "--json", cwd=project)


def test_release_builds_sums_signs_and_verifies_every_target(released) -> None:
    project, result = released
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    validate("release", data)
    dist = project / "dist"
    assert sorted(p.name for p in dist.iterdir()) == sorted([
        "SHA256SUMS", "SHA256SUMS.minisig",
        *(f"{a}{s}" for a in (AMD64, ARM64) for s in ("", ".sha256", ".cdx.json", ".spdx.json"))])
    assert [t["arch"] for t in data["targets"]] == ["amd64", "arm64"]
    assert [t["machine"] for t in data["targets"]] == ["x86-64", "aarch64"]
    # every output verified in the bare root; arm64 under qemu, through the bundled loader
    verified = {Path(v["output"]).name: v for t in data["targets"] for v in t["verify"]}
    assert verified[AMD64]["passed"] and verified[AMD64]["emulator"] is None
    assert verified[ARM64]["passed"] and verified[ARM64]["emulator"] == "qemu-aarch64-static"
    assert data["targets"][0]["verdict"]["ship"] == "static"  # the clean static build given
    assert data["sums"] == {"path": str(dist / "SHA256SUMS"), "entries": 6,
                            "signature": str(dist / "SHA256SUMS.minisig"), "tool": "minisign"}
    # the sums are sha256sum's own format, and true
    checked = subprocess.run(["sha256sum", "--strict", "-c", "SHA256SUMS"], cwd=dist,
                             capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count(": OK") == 6
    # the summary (stderr): each target, its verdict and verification, the signature
    assert "PASS myagent-1.4.2-linux-arm64.tar.zst in bare under qemu-aarch64-static" \
        in result.stderr
    assert "6 files; signed: SHA256SUMS.minisig" in result.stderr
    assert "hazard:high: none held" in result.stderr


def test_the_signature_is_checked_by_verify_and_a_tampered_file_is_caught(
        released, tmp_path: Path) -> None:
    project, result = released
    assert result.returncode == 0, result.stderr
    dist, key = project / "dist", str(project / "keys/release.pub")
    good = run_cli("verify", str(dist / ARM64), "--key", key, "--emulator",
                   "qemu-aarch64-static", "--expect-output", "sqlite: hello")
    assert good.returncode == 0, good.stdout + good.stderr
    assert "signature  good: SHA256SUMS signed by" in good.stdout
    # the same files elsewhere, one byte of the amd64 archive changed
    copy = tmp_path / "dist"
    shutil.copytree(dist, copy)
    data = bytearray((copy / AMD64).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / AMD64).write_bytes(bytes(data))
    tampered = run_cli("verify", str(copy / AMD64), "--key", key)
    assert_one_line_error(tampered, 4, AMD64, "sha256")


def test_release_bytes_are_a_plain_builds(released, tmp_path: Path) -> None:
    """`bundle release` makes the build `bundle PROGRAM` makes: the same sha256."""
    project, result = released
    assert result.returncode == 0, result.stderr
    plain = run_cli(str(project / "build/arm64/myagent"), "-o", str(tmp_path / "x.tar.zst"),
                    "-q")
    assert plain.returncode == 0, plain.stderr
    listed = (project / "dist/SHA256SUMS").read_text()
    assert f"{(tmp_path / 'x.tar.zst.sha256').read_text().split()[0]}  {ARM64}\n" in listed


def test_a_gate_that_holds_is_exit_5_and_the_release_is_still_whole(project: Path,
                                                                     tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_cli("release", "--target", "arm64", "--no-verify", "--no-sign", "--json",
                     "--output-dir", str(out), "--fail-on", "verdict:artifact", cwd=project)
    assert result.returncode == 5, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("bundle: error: release: --fail-on: arm64: verdict:artifact: "), last
    assert "Traceback" not in result.stderr
    data = json.loads(result.stdout)
    validate("release", data)
    assert data["exit_code"] == 5 and not data["passed"]
    assert data["targets"][0]["gates_failed"][0]["gate"] == "verdict:artifact"
    assert data["fail_on"] == ["hazard:high", "verdict:artifact"]  # the file's, then added
    assert data["sums"]["signature"] is None
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["SHA256SUMS", ARM64, f"{ARM64}.sha256", f"{ARM64}.cdx.json", f"{ARM64}.spdx.json"])
    assert subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=out,
                          capture_output=True).returncode == 0


def test_a_failed_verification_is_exit_4_and_says_what_ran(project: Path, tmp_path: Path) -> None:
    need_root()
    config = tmp_path / "bundle.toml"
    config.write_text(CONFIG.replace('"sqlite: hello"', '"no such line"')
                      .replace('"build/', f'"{project}/build/')
                      .replace('"keys/', f'"{project}/keys/'))
    result = run_cli("release", "--config", str(config), "--target", "amd64", cwd=tmp_path)
    assert result.returncode == 4, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last == f"bundle: error: release: 1 verification(s) failed: {AMD64} in bare", last
    assert "FAIL myagent-1.4.2-linux-amd64.tar.zst in bare" in result.stderr
    assert "stdout does not match 'no such line'" in result.stderr
    assert (tmp_path / "dist" / AMD64).is_file()  # written whole: the pipeline stops on 4


def test_found_from_a_subdirectory_with_paths_relative_to_the_file(project: Path,
                                                                  tmp_path: Path) -> None:
    deep = project / "src" / "cmd"
    deep.mkdir(parents=True, exist_ok=True)
    out = tmp_path / "elsewhere"
    result = run_cli("release", "--target", "arm64", "--no-verify", "--no-sign", "-q",
                     "--output-dir", str(out), "--version", "2.0.0", cwd=deep)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # -q
    assert (out / "myagent-2.0.0-linux-arm64.tar.zst").is_file()


def test_a_failing_target_leaves_the_output_directory_as_it_was(project: Path,
                                                                tmp_path: Path) -> None:
    config = tmp_path / "bundle.toml"
    config.write_text(CONFIG.replace('"build/', f'"{project}/build/')
                      .replace('"keys/', f'"{project}/keys/')
                      .replace(f'"{project}/build/arm64/myagent"', '"build/arm64/nothing"'))
    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / "SHA256SUMS").write_text("an earlier release's\n")
    before = {p.name: p.read_bytes() for p in dist.iterdir()}
    result = run_cli("release", "--config", str(config), "--no-verify", cwd=tmp_path)
    assert_one_line_error(result, 2, "nothing")
    assert {p.name: p.read_bytes() for p in dist.iterdir()} == before  # no .part left either


def test_a_program_of_another_architecture_is_refused(project: Path, tmp_path: Path) -> None:
    config = tmp_path / "bundle.toml"
    config.write_text(f'[[target]]\narch = "amd64"\nprograms = ["{project}/build/arm64/myagent"]\n')
    result = run_cli("release", "--config", str(config), "--no-verify", "-q")
    assert_one_line_error(result, 2, "target amd64", "aarch64, not x86-64")
    assert not (tmp_path / "dist").exists() or not any(
        p for p in (tmp_path / "dist").iterdir() if not p.name.startswith("."))


@pytest.mark.parametrize(("text", "words"), [
    ('name = "a"\nprogramz = ["x"]\n', ("bundle.toml: programz: unknown key",)),
    ('programs = "x"\n[[target]]\narch = "amd46"\n', ("target[1].arch", "'amd46'", "arm64")),
    ('[[target]]\narch = "arm64"\n', ("target[1].programs: missing",)),
    ('programs = ["x"]\nformats = ["dir"]\n', ("formats: 'dir'", "no sha256")),
    ('programs = ["x"]\nfail-on = ["hazard:severe"]\n', ("fail-on hazard:severe", "no such gate")),
    ('programs = ["x"]\n[verify]\nexpect-exit = "0"\n', ("verify.expect-exit", "exit code")),
    ('programs = ["x"]\n[sign]\ntool = "pgp"\nkey = "k"\n', ("sign.tool", "'pgp'")),
    ('programs = ["x"]\nversion = "1/2"\n', ("version", "'1/2'")),
    ('programs = ["x"]\nname = \n', ("not valid TOML", "line 2")),
    ('programs = ["x"]\nlauncher = "exec"\n', ("launcher", "'exec'", "loader")),
])
def test_a_wrong_config_is_one_line_naming_the_key(tmp_path: Path, text: str,
                                                   words: tuple[str, ...]) -> None:
    (tmp_path / "bundle.toml").write_text(text)
    result = run_cli("release", cwd=tmp_path)
    assert_one_line_error(result, 2, *words)
    assert not (tmp_path / "dist").exists()


def test_no_config_and_an_unknown_target_are_one_line(project: Path, tmp_path: Path) -> None:
    assert_one_line_error(run_cli("release", cwd=tmp_path), 2, "no bundle.toml", "--config")
    assert_one_line_error(run_cli("release", "--target", "s390x", cwd=project), 2,
                          "--target s390x", "amd64, arm64")


@pytest.fixture
def gnupg_home(tmp_path: Path) -> Iterator[Path]:
    """An empty GNUPGHOME whose gpg-agent (gpg starts one) is stopped afterwards: CI's
    runs left one running per run."""
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    try:
        yield home
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False,
                       capture_output=True)


def test_gpg_signs_the_sums_and_verify_checks_them(project: Path, tmp_path: Path,
                                                   gnupg_home: Path) -> None:
    gpg = need_tool("gpg")
    home = gnupg_home
    env = {"GNUPGHOME": str(home)}
    subprocess.run([gpg, "--batch", "--passphrase", "", "--quick-gen-key",
                    "Release <release@example.org>", "ed25519", "sign", "never"],
                   check=True, capture_output=True, env={**os.environ, **env})
    public = tmp_path / "release.asc"
    public.write_bytes(subprocess.run([gpg, "--armor", "--export", "release@example.org"],
                                      check=True, capture_output=True,
                                      env={**os.environ, **env}).stdout)
    config = tmp_path / "bundle.toml"
    config.write_text(f'name = "myagent"\nprograms = ["{project}/build/arm64/myagent"]\n'
                      'formats = ["tar.gz"]\n[[target]]\narch = "arm64"\n'
                      '[sign]\ntool = "gpg"\nkey = "release@example.org"\n')
    result = run_cli("release", "--no-verify", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    dist = tmp_path / "dist"
    assert (dist / "SHA256SUMS.asc").read_text().startswith("-----BEGIN PGP SIGNATURE-----")
    artifact = str(dist / "myagent-linux-arm64.tar.gz")
    checked = run_cli("verify", artifact, "--key", str(public), "--emulator",
                      "qemu-aarch64-static")
    if checked.returncode == 3:  # no sandbox here: the signature line came first all the same
        pytest.skip(checked.stderr)
    assert "signature  good" in checked.stdout, checked.stdout + checked.stderr
    # a key that is not in the keyring: refused before any build
    config.write_text(config.read_text().replace("release@example.org", "nobody@example.org"))
    missing = run_cli("release", "--no-verify", env=env, cwd=tmp_path)
    assert_one_line_error(missing, 2,
                          "bundle.toml: sign: gpg key nobody@example.org: no secret key")


CROSS = r"""
#include <stdio.h>
int main(void) { printf("built for %s\n", "arm64"); return 0; }
"""


def test_a_cross_sysroot_target_is_released_and_verified_under_qemu(tmp_path: Path) -> None:
    """arm64 from Debian's cross sysroot (libc6-arm64-cross), next to this machine's own
    amd64 build of the same program: one SHA256SUMS, both verified."""
    need_root()
    cross = need_tool("aarch64-linux-gnu-gcc")
    need_tool("qemu-aarch64-static")
    need(os.path.exists("/usr/aarch64-linux-gnu/lib/libc.so.6"), "libc6-arm64-cross is missing")
    for arch, compiler in (("amd64", need_tool("gcc")), ("arm64", cross)):
        (tmp_path / arch).mkdir()
        (tmp_path / "tool.c").write_text(CROSS)
        subprocess.run([compiler, "-O2", "-o", str(tmp_path / arch / "tool"),
                        str(tmp_path / "tool.c")], check=True)
    (tmp_path / "bundle.toml").write_text(
        'name = "tool"\nformats = ["tar.xz"]\nsbom = "none"\n'
        '[[target]]\narch = "x86_64"\nprograms = ["amd64/tool"]\n'
        '[[target]]\narch = "aarch64"\nprograms = ["arm64/tool"]\n'
        'sysroot = "/usr/aarch64-linux-gnu"\n'
        '[verify]\nexpect-output = "^built for arm64$"\n')
    result = run_cli("release", "--json", "-q", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    validate("release", data)
    assert [(t["arch"], [v["passed"] for v in t["verify"]]) for t in data["targets"]] == [
        ("amd64", [True]), ("arm64", [True])]
    assert (tmp_path / "dist" / "SHA256SUMS").read_text().count("\n") == 2  # no SBOMs asked
    manifest = subprocess.run(["tar", "-xOJf", str(tmp_path / "dist/tool-linux-arm64.tar.xz"),
                               "tool/.bundle/manifest.json"], capture_output=True, check=True)
    assert json.loads(manifest.stdout)["arch"] == "aarch64"


def test_a_signal_between_two_targets_leaves_nothing(project: Path, tmp_path: Path) -> None:
    """SIGTERM once the first target is staged: the release stops (143), its staging goes,
    and the output directory gets nothing."""
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("LD_LIBRARY_PATH", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "bundler", "release", "--no-verify", "--no-sign",
         "--output-dir", str(out)], cwd=project, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(out.glob(f".release.*.part/out/{AMD64}")):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.005)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    if process.returncode == 0:  # the arm64 build finished first: nothing to test
        pytest.skip("the release ended before the signal")
    assert process.returncode == 143, stderr
    assert stderr.strip().splitlines()[-1] == "bundle: terminated; nothing was written"
    assert list(out.iterdir()) == []

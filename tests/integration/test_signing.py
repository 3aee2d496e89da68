"""A signed SHA256SUMS, as `bundle release` writes it and a user downloading the release
checks it: real gpg keys (in a temporary GNUPGHOME) and real minisign key pairs, a real
artifact built by `bundle`, the signature checked by `bundle verify --key` before anything
of the artifact is unpacked, and by the tools themselves (gpgv, minisign, sha256sum).

Every refusal is one line with exit 4 (2 for a usage error) and an empty stdout: no run
line, so nothing was unpacked or run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.cli import assert_one_line_error, run_cli
from support.needs import need_tool
from support.roots import need_root
from support.schemas import validate
from support.toolchain import gcc

from bundler.archive import sha256_of
from bundler.errors import EnvironmentUnfitError, InputError, UnsafeArtifactError
from bundler.signing import SigningKey, check_release, sign, sums_text

HELLO = r"""
#include <stdio.h>
int main(void) { puts("signed hello"); return 0; }
"""
TOOLS = ("gpg", "minisign")


@dataclass(frozen=True)
class Keys:
    """One signer of a tool: how sign() names its secret key, and its public key file."""

    tool: str
    secret: SigningKey
    public: Path
    key_id: str  # as the check reports it: gpg's fingerprint, minisign's key id


@pytest.fixture(scope="module")
def gnupg_home(tmp_path_factory) -> Iterator[Path]:
    """A temporary GNUPGHOME with two signing keys; its gpg-agent is stopped afterwards."""
    need_tool("gpg")
    need_tool("gpgv")
    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    try:
        for who in ("release", "stranger"):
            subprocess.run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key",
                            f"Bundle {who} <{who}@example.org>", "ed25519", "sign", "never"],
                           env=env, check=True, capture_output=True)
        yield home
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False,
                       capture_output=True)


def _gpg_keys(home: Path, who: str, armour: bool = True) -> Keys:
    env = {**os.environ, "GNUPGHOME": str(home)}
    listed = subprocess.run(["gpg", "--with-colons", "--list-keys", f"{who}@example.org"],
                            env=env, check=True, capture_output=True, text=True).stdout
    fingerprint = next(line.split(":")[9] for line in listed.splitlines()
                       if line.startswith("fpr:"))
    public = home / f"{who}.{'asc' if armour else 'gpg'}"
    subprocess.run(["gpg", "--export", *(["--armor"] if armour else []), "--output",
                    str(public), "--yes", fingerprint], env=env, check=True, capture_output=True)
    return Keys("gpg", SigningKey("gpg", fingerprint), public, fingerprint)


@pytest.fixture(scope="module")
def minisign_dir(tmp_path_factory) -> Path:
    """Two minisign key pairs made without a password (-W), as CI uses them."""
    need_tool("minisign")
    where = tmp_path_factory.mktemp("minisign")
    for who in ("release", "stranger"):
        subprocess.run(["minisign", "-G", "-W", "-p", str(where / f"{who}.pub"), "-s",
                        str(where / f"{who}.key")], check=True, capture_output=True)
    return where


def _minisign_keys(where: Path, who: str) -> Keys:
    public = where / f"{who}.pub"
    key_id = public.read_text().splitlines()[0].rsplit(" ", 1)[1]  # "... public key ID"
    return Keys("minisign", SigningKey("minisign", str(where / f"{who}.key")), public, key_id)


@pytest.fixture
def signers(request, gnupg_home: Path, minisign_dir: Path, monkeypatch) -> dict[str, Keys]:
    """release and stranger keys of the tool the test is parametrised with."""
    monkeypatch.setenv("GNUPGHOME", str(gnupg_home))  # sign() uses the user's keyring
    tool = request.param
    if tool == "gpg":
        return {who: _gpg_keys(gnupg_home, who) for who in ("release", "stranger")}
    return {who: _minisign_keys(minisign_dir, who) for who in ("release", "stranger")}


@pytest.fixture(scope="module")
def hello_artifact(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("hello")
    program = gcc(work / "hello", HELLO)
    out = work / "hello.tar.zst"
    result = run_cli(str(program), "-o", str(out), "--sbom", "none")
    assert result.returncode == 0, result.stderr
    return out


def _release(where: Path, artifact: Path, keys: Keys) -> Path:
    """A release directory as `bundle release` writes it: the artifact, SHA256SUMS, and
    its signature by `keys`. Returns the artifact's copy."""
    where.mkdir(parents=True, exist_ok=True)
    copy = where / artifact.name
    shutil.copyfile(artifact, copy)
    sums = where / "SHA256SUMS"
    sums.write_text(sums_text([(copy.name, sha256_of(str(copy)))]))
    sign(str(sums), keys.secret)
    return copy


def _verify(artifact: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("verify", str(artifact), *args, env={"TMPDIR": os.environ["TMPDIR"]})


def _refused(result: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    """One line, the exit code, and nothing unpacked or run (stdout would hold the runs)."""
    print(result.stderr.strip())
    assert_one_line_error(result, code, *words)
    assert "PASS" not in result.stderr and "manifest" not in result.stderr


# --- the good path --------------------------------------------------------------------


@pytest.mark.parametrize("signers", TOOLS, indirect=True)
def test_verify_key_passes_and_the_tools_agree(signers: dict[str, Keys], hello_artifact: Path,
                                               tmp_path: Path, private_tmp: Path) -> None:
    need_root()
    keys = signers["release"]
    artifact = _release(tmp_path / "dist", hello_artifact, keys)
    result = _verify(artifact, "--key", str(keys.public), "--expect-output", "^signed hello$")
    assert result.returncode == 0, result.stdout + result.stderr
    print(result.stdout)
    assert (f"  signature  good: SHA256SUMS signed by {keys.key_id} ({keys.tool}); lists "
            f"hello.tar.zst with its sha256") in result.stdout.splitlines()
    assert result.stdout.rstrip().endswith("verify: PASS (2 of 2 runs passed)")
    as_json = _verify(artifact, "--key", str(keys.public), "--json")
    assert as_json.returncode == 0, as_json.stderr
    document = json.loads(as_json.stdout)
    validate("verify", document)
    assert document["signature"] == {
        "tool": keys.tool, "key": str(keys.public), "key_id": keys.key_id,
        "signed_file": str(artifact.parent / "SHA256SUMS"), "artifact": "hello.tar.zst",
        "artifact_sha256": sha256_of(str(hello_artifact))}
    assert list(private_tmp.iterdir()) == []
    # What a user downloading the release runs, without bundle:
    dist = artifact.parent
    subprocess.run(["sha256sum", "--strict", "-c", "SHA256SUMS"], cwd=dist, check=True,
                   capture_output=True)
    if keys.tool == "gpg":
        assert (dist / "SHA256SUMS.asc").read_text().startswith(
            "-----BEGIN PGP SIGNATURE-----")
        dearmored = tmp_path / "release.gpg"
        subprocess.run(["gpg", "--batch", "--yes", "--output", str(dearmored), "--dearmor",
                        str(keys.public)], check=True, capture_output=True)
        subprocess.run(["gpgv", "--homedir", str(tmp_path), "--keyring", str(dearmored),
                        "SHA256SUMS.asc", "SHA256SUMS"], cwd=dist, check=True,
                       capture_output=True)
    else:
        subprocess.run(["minisign", "-V", "-p", str(keys.public), "-m", "SHA256SUMS"],
                       cwd=dist, check=True, capture_output=True)


def test_binary_gpg_key_and_sums_elsewhere(gnupg_home: Path, hello_artifact: Path,
                                           tmp_path: Path, monkeypatch) -> None:
    """An OpenPGP key exported without --armor works the same; --sums names a SHA256SUMS
    in another directory (the artifact is looked up by its file name)."""
    monkeypatch.setenv("GNUPGHOME", str(gnupg_home))
    keys = _gpg_keys(gnupg_home, "release", armour=False)
    artifact = _release(tmp_path / "dist", hello_artifact, keys)
    moved = tmp_path / "downloads"
    moved.mkdir()
    shutil.move(str(artifact), moved / artifact.name)
    check = check_release(str(moved / artifact.name), str(keys.public),
                          str(tmp_path / "dist" / "SHA256SUMS"))
    assert (check.tool, check.key_id, check.artifact) == ("gpg", keys.key_id, "hello.tar.zst")
    assert check.artifact_sha256 == sha256_of(str(hello_artifact))
    assert check.signed_file == str(tmp_path / "dist" / "SHA256SUMS")


def test_gpg_binary_sig_accepted_and_a_signed_message_is_no_detached_signature(
        gnupg_home: Path, tmp_path: Path) -> None:
    """`SHA256SUMS.sig` (gpg --detach-sign without --armor) is checked like `.asc`. A
    message the publisher once signed whole (gpg --sign: it carries its own data) put there
    as the signature is refused: a checker that verified the embedded data would pass any
    SHA256SUMS beside it."""
    env = {**os.environ, "GNUPGHOME": str(gnupg_home)}
    keys = _gpg_keys(gnupg_home, "release")
    artifact = tmp_path / "app.tar.zst"
    artifact.write_bytes(b"release bytes")
    sums = tmp_path / "SHA256SUMS"
    sums.write_text(sums_text([("app.tar.zst", sha256_of(str(artifact)))]))
    signature = tmp_path / "SHA256SUMS.sig"
    subprocess.run(["gpg", "--batch", "--local-user", keys.key_id, "--output", str(signature),
                    "--detach-sign", str(sums)], env=env, check=True, capture_output=True)
    assert check_release(str(artifact), str(keys.public)).key_id == keys.key_id
    message = tmp_path / "message"
    message.write_text("an announcement the publisher signed\n")
    signature.unlink()
    subprocess.run(["gpg", "--batch", "--local-user", keys.key_id, "--armor", "--output",
                    str(tmp_path / "SHA256SUMS.asc"), "--sign", str(message)], env=env,
                   check=True, capture_output=True)
    sums.write_text(sums_text([("app.tar.zst", "0" * 64)]))  # the attacker's
    with pytest.raises(UnsafeArtifactError, match=r"bad signature .*not a detached signature"):
        check_release(str(artifact), str(keys.public))


# --- what must be caught --------------------------------------------------------------


@pytest.mark.parametrize("signers", TOOLS, indirect=True)
def test_a_tampered_artifact_is_caught_before_unpacking(
        signers: dict[str, Keys], hello_artifact: Path, tmp_path: Path,
        private_tmp: Path) -> None:
    keys = signers["release"]
    artifact = _release(tmp_path / "dist", hello_artifact, keys)
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0x01  # one byte: unpacked, it would be a zstd or manifest error
    artifact.write_bytes(bytes(data))
    _refused(_verify(artifact, "--key", str(keys.public)), 4, "sha256 mismatch",
             sha256_of(str(hello_artifact)))
    assert list(private_tmp.iterdir()) == []


@pytest.mark.parametrize("signers", TOOLS, indirect=True)
def test_a_tampered_sha256sums_is_a_bad_signature(
        signers: dict[str, Keys], hello_artifact: Path, tmp_path: Path,
        private_tmp: Path) -> None:
    """The attacker's case: another artifact and its hash put in SHA256SUMS."""
    keys = signers["release"]
    artifact = _release(tmp_path / "dist", hello_artifact, keys)
    data = bytearray(artifact.read_bytes())
    data[-1] ^= 0x01
    artifact.write_bytes(bytes(data))
    sums = artifact.parent / "SHA256SUMS"
    sums.write_text(sums_text([(artifact.name, sha256_of(str(artifact)))]))
    _refused(_verify(artifact, "--key", str(keys.public)), 4, "bad signature")
    assert list(private_tmp.iterdir()) == []


@pytest.mark.parametrize("signers", TOOLS, indirect=True)
def test_a_signature_by_another_key_is_refused(
        signers: dict[str, Keys], hello_artifact: Path, tmp_path: Path,
        private_tmp: Path) -> None:
    """Signed by a key the user's keyring trusts (GNUPGHOME holds both, ultimately
    trusted): only the key file given counts."""
    artifact = _release(tmp_path / "dist", hello_artifact, signers["stranger"])
    result = run_cli("verify", str(artifact), "--key", str(signers["release"].public),
                     env={"TMPDIR": str(private_tmp), "GNUPGHOME": os.environ["GNUPGHOME"]})
    _refused(result, 4, "signed by another key", f"({signers['stranger'].key_id})",
             signers["release"].key_id)
    assert list(private_tmp.iterdir()) == []


@pytest.mark.parametrize("signers", TOOLS, indirect=True)
def test_missing_signature_unlisted_artifact_and_malformed_sums(
        signers: dict[str, Keys], hello_artifact: Path, tmp_path: Path,
        private_tmp: Path) -> None:
    keys = signers["release"]
    artifact = _release(tmp_path / "dist", hello_artifact, keys)
    dist = artifact.parent
    ending = ".asc" if keys.tool == "gpg" else ".minisig"
    signature = dist / f"SHA256SUMS{ending}"
    signature.rename(dist / "kept")
    _refused(_verify(artifact, "--key", str(keys.public)), 4, "no signature", ending)
    (dist / "kept").rename(signature)

    other = dist / "other.tar.zst"  # the same bytes under a name SHA256SUMS does not list
    shutil.copyfile(artifact, other)
    _refused(_verify(other, "--key", str(keys.public)), 4, "not listed", "SHA256SUMS")

    sums = dist / "SHA256SUMS"  # signed, but not sha256sum's format
    sums.write_text(sums.read_text() + "this is not a checksum line\n")
    sign(str(sums), keys.secret)
    _refused(_verify(artifact, "--key", str(keys.public)), 4, "line 2",
             "not a sha256sum line")

    (dist / "SHA256SUMS").unlink()
    _refused(_verify(artifact, "--key", str(keys.public)), 4, "no SHA256SUMS beside it")
    assert list(private_tmp.iterdir()) == []


def test_usage_errors_are_exit_2(gnupg_home: Path, minisign_dir: Path, hello_artifact: Path,
                                 tmp_path: Path, private_tmp: Path) -> None:
    keys = _minisign_keys(minisign_dir, "release")
    _refused(_verify(hello_artifact, "--sums", str(tmp_path / "SHA256SUMS")), 2,
             "--sums", "needs --key")
    _refused(_verify(hello_artifact, "--key", keys.secret.key), 2, "SECRET key")
    _refused(_verify(hello_artifact, "--key", str(tmp_path / "nothing.pub")), 2, "cannot read")
    junk = tmp_path / "junk.pub"
    junk.write_text("hello\n")
    _refused(_verify(hello_artifact, "--key", str(junk)), 2, "neither a minisign public key")
    _refused(_verify(hello_artifact, "--key", str(keys.public), "--sums",
                     str(tmp_path / "missing")), 2, "--sums", "no such file")
    directory = tmp_path / "dir"
    directory.mkdir()
    _refused(_verify(directory, "--key", str(keys.public)), 2, "directory artifact",
             "no sha256")
    both = tmp_path / "both.asc"  # --key names one key: a file with two is refused
    env = {**os.environ, "GNUPGHOME": str(gnupg_home)}
    subprocess.run(["gpg", "--armor", "--yes", "--output", str(both), "--export",
                    "release@example.org", "stranger@example.org"], env=env, check=True,
                   capture_output=True)
    _refused(_verify(hello_artifact, "--key", str(both)), 2, "holds 2 keys")
    assert list(private_tmp.iterdir()) == []


# --- signing --------------------------------------------------------------------------


def test_sign_failures_leave_nothing_and_say_why(gnupg_home: Path, minisign_dir: Path,
                                                 tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("GNUPGHOME", str(gnupg_home))
    sums = tmp_path / "SHA256SUMS"
    sums.write_text(sums_text([("x", "0" * 64)]))
    with pytest.raises(InputError, match=r"gpg key nobody@example.org: no secret key"):
        sign(str(sums), SigningKey("gpg", "nobody@example.org"))
    # a password-protected minisign key: fed from the passphrase file (CI), else refused
    protected, public = tmp_path / "pw.key", tmp_path / "pw.pub"
    subprocess.run(["minisign", "-G", "-p", str(public), "-s", str(protected)],
                   input="s3cret\ns3cret\n", text=True, check=True, capture_output=True)
    with pytest.raises(InputError, match=r"has a password .* passphrase file"):
        sign(str(sums), SigningKey("minisign", str(protected)))
    wrong = tmp_path / "wrong"
    wrong.write_text("guess\n")
    with pytest.raises(InputError, match="Wrong password"):
        sign(str(sums), SigningKey("minisign", str(protected), str(wrong)))
    assert sorted(os.listdir(tmp_path)) == ["SHA256SUMS", "pw.key", "pw.pub", "wrong"]
    right = tmp_path / "right"
    right.write_text("s3cret\n")
    made = sign(str(sums), SigningKey("minisign", str(protected), str(right)))
    assert made == f"{sums}.minisig"
    subprocess.run(["minisign", "-V", "-p", str(public), "-m", str(sums)], check=True,
                   capture_output=True)
    empty = tmp_path / "bin"  # no gpg, no minisign on PATH: exit 3 naming the package
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(EnvironmentUnfitError, match="apt-get install gnupg") as missing:
        sign(str(sums), SigningKey("gpg", "release@example.org"))
    assert missing.value.exit_code == 3
    with pytest.raises(EnvironmentUnfitError, match="apt-get install minisign"):
        check_release(str(sums), str(public))


def test_gpg_passphrase_file_for_ci(tmp_path: Path, monkeypatch) -> None:
    """A key with a passphrase, signed non-interactively through --passphrase-file."""
    need_tool("gpg")
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    try:
        subprocess.run(["gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase",
                        "s3cret", "--quick-gen-key", "CI <ci@example.org>", "ed25519", "sign",
                        "never"], env=env, check=True, capture_output=True)
        public = tmp_path / "ci.asc"
        subprocess.run(["gpg", "--armor", "--output", str(public), "--export",
                        "ci@example.org"], env=env, check=True, capture_output=True)
        passphrase = tmp_path / "passphrase"
        passphrase.write_text("s3cret\n")
        artifact = tmp_path / "app.tar.zst"
        artifact.write_bytes(b"not really an archive: check_release reads only its bytes")
        sums = tmp_path / "SHA256SUMS"
        sums.write_text(sums_text([("app.tar.zst", sha256_of(str(artifact)))]))
        monkeypatch.setenv("GNUPGHOME", str(home))
        wrong = tmp_path / "wrong"
        wrong.write_text("guess\n")
        with pytest.raises(InputError, match=r"gpg could not sign .*: signing failed: Bad "
                           r"passphrase$"):  # gpg's own words, one line
            sign(str(sums), SigningKey("gpg", "ci@example.org", str(wrong)))
        assert not (tmp_path / "SHA256SUMS.asc").exists()
        made = sign(str(sums), SigningKey("gpg", "ci@example.org", str(passphrase)))
        assert made == f"{sums}.asc"
        check = check_release(str(artifact), str(public))
        assert re.fullmatch(r"[0-9A-F]{40}", check.key_id)
        sums.write_text(sums.read_text().replace("app", "abb"))
        with pytest.raises(UnsafeArtifactError, match="bad signature"):
            check_release(str(artifact), str(public))
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False,
                       capture_output=True)


def test_bundle_sign_command(gnupg_home: Path, minisign_dir: Path, tmp_path: Path) -> None:
    """`bundle sign` writes what `bundle verify --key` and the tools check; an existing
    signature is replaced whole."""
    artifact = tmp_path / "app.tar.zst"
    artifact.write_bytes(b"the bytes of a release")
    sums = tmp_path / "SHA256SUMS"
    sums.write_text(sums_text([("app.tar.zst", sha256_of(str(artifact)))]))
    (tmp_path / "SHA256SUMS.minisig").write_text("an old signature\n")
    keys = _minisign_keys(minisign_dir, "release")
    made = run_cli("sign", str(sums), "--minisign", keys.secret.key)
    assert made.returncode == 0, made.stderr
    assert made.stderr == f"bundle: wrote {sums}.minisig\n" and made.stdout == ""
    assert check_release(str(artifact), str(keys.public)).key_id == keys.key_id
    gpg = _gpg_keys(gnupg_home, "release")
    made = run_cli("sign", str(sums), "--gpg", gpg.key_id, env={"GNUPGHOME": str(gnupg_home)})
    assert made.returncode == 0, made.stderr
    assert check_release(str(artifact), str(gpg.public)).key_id == gpg.key_id
    assert sorted(os.listdir(tmp_path)) == ["SHA256SUMS", "SHA256SUMS.asc",
                                            "SHA256SUMS.minisig", "app.tar.zst"]
    assert_one_line_error(run_cli("sign", str(sums)), 2, "--gpg KEYID or --minisign SECKEY")
    assert_one_line_error(run_cli("sign", str(sums), "--gpg", "x", "--minisign", "y"), 2,
                          "one of")
    assert_one_line_error(run_cli("sign", str(tmp_path / "nothing"), "--minisign",
                                  keys.secret.key), 2, "no such file")
    assert_one_line_error(run_cli("sign", str(sums), "--gpg", "nobody@example.org",
                                  env={"GNUPGHOME": str(gnupg_home)}), 2, "no secret key")

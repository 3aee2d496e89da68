"""SHA256SUMS and its signature: the one file a release publishes for all its outputs, signed
with the user's own key by a standard tool (gpg or minisign), and checked before anything
of a downloaded artifact is unpacked.

Why these tools, and why through their command lines: a user already has a gpg key or a
minisign key pair, and whoever downloads the release checks it with the same tool and
nothing of `bundle`: `sha256sum -c SHA256SUMS` after `gpgv SHA256SUMS.asc SHA256SUMS` or
`minisign -Vm SHA256SUMS -p KEY.pub`. So the file is written exactly as `sha256sum` writes
it, and `bundle verify --key` trusts ONLY the key file it is given: gpg runs on a keyring
made from that file in a private temporary home (never the user's keyring or trust
database), minisign with `-p` that file.

Everything read here is untrusted: SHA256SUMS, its signature and the key file are read once,
capped, into a private directory, and the tools check exactly the bytes that are parsed.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from bundler.archive import sha256_of
from bundler.errors import EnvironmentUnfitError, InputError, UnsafeArtifactError
from bundler.safe_unpack import open_regular
from bundler.tree import NotRegularFile, read_plain_file

SUMS_NAME = "SHA256SUMS"
SUMS_LIMIT = 4 << 20  # 4 MiB: some 40,000 lines; a release lists a handful of files
KEY_LIMIT = 1 << 20  # a key file, a signature, a passphrase file: small
TOOL_TIMEOUT = 60.0  # seconds for one check by gpg/gpgv/minisign (they take milliseconds)
PACKAGES = {"gpg": "gnupg", "gpgv": "gpgv", "minisign": "minisign"}  # Debian's, by command
SIGNATURE_ENDINGS = {"minisign": (".minisig",), "gpg": (".asc", ".sig")}
ARMOURED_PUBLIC = b"-----BEGIN PGP PUBLIC KEY BLOCK-----"
ARMOURED_SECRET = b"-----BEGIN PGP PRIVATE KEY BLOCK-----"
MINISIGN_COMMENT = b"untrusted comment:"
# A sha256sum line: 64 hex digits, a space, ' ' (text) or '*' (binary), the name.
SUMS_LINE = re.compile(r"([0-9a-fA-F]{64}) ([ *])(.+)")
CHANGED = "it does not match {sums}: one of them was changed after signing"


@dataclass(frozen=True)
class SigningKey:
    """The user's key. gpg: a key id, fingerprint or user id in the user's keyring
    (GNUPGHOME respected); minisign: the secret key file. `passphrase_file` is for CI,
    where nobody types it (gpg: loopback pinentry; minisign: fed on its stdin)."""

    tool: Literal["gpg", "minisign"]
    key: str
    passphrase_file: str | None = None


@dataclass(frozen=True)
class SignatureCheck:
    """What `check_release` proved: `signed_file` carries a good signature by `key_id`
    (the key in the file `key`, as the tool names it), and lists `artifact` with the
    sha256 its bytes have."""

    tool: str
    key: str
    key_id: str
    signed_file: str
    artifact: str
    artifact_sha256: str


# --- SHA256SUMS -------------------------------------------------------------------------


def sums_text(entries: Iterable[tuple[str, str]]) -> str:
    """(file name, sha256 hex) pairs as `sha256sum` writes them, sorted by name, so that
    `sha256sum -c SHA256SUMS` checks them. A name sha256sum would escape (newline,
    backslash) or that could not be checked where the file lies is refused."""
    listed: dict[str, str] = {}
    for name, digest in entries:
        problem = _name_problem(name)
        if problem:
            raise InputError(f"{SUMS_NAME}: cannot list {name!r}: {problem}")
        if not re.fullmatch(r"[0-9a-fA-F]{64}", digest):
            raise InputError(f"{SUMS_NAME}: {name}: {digest!r} is not a sha256")
        if name in listed:
            raise InputError(f"{SUMS_NAME}: {name} is given twice")
        listed[name] = digest.lower()
    return "".join(f"{listed[name]}  {name}\n" for name in sorted(listed))


def parse_sums(text: str, origin: str) -> dict[str, str]:
    """name -> sha256 (lower case) of a SHA256SUMS file, read strictly: every line is
    `HEX  NAME` or `HEX *NAME` (the binary marker); anything else, or a name listed twice,
    is refused naming `origin` and the line. An escaped line (`\\HEX  NAME`) is refused:
    sums_text never writes one."""
    sums: dict[str, str] = {}
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline
    for number, line in enumerate(lines, 1):
        match = SUMS_LINE.fullmatch(line)
        problem = _name_problem(match.group(3)) if match else ""
        if match is None or problem:
            shown = line if len(line) <= 60 else line[:57] + "..."
            why = f" ({problem})" if problem else ""
            raise UnsafeArtifactError(f"{origin}: line {number} is not a sha256sum line "
                                      f"'HEX  NAME'{why}: {shown!r}")
        name = match.group(3)
        if name in sums:
            raise UnsafeArtifactError(f"{origin}: line {number}: {name} is listed twice")
        sums[name] = match.group(1).lower()
    if not sums:
        raise UnsafeArtifactError(f"{origin}: lists no files")
    return sums


def read_sums(path: str) -> dict[str, str]:
    """The SHA256SUMS file at `path`, read capped and parsed strictly (parse_sums)."""
    return parse_sums(_decode(_read_capped(path, SUMS_LIMIT, "SHA256SUMS"), path), path)


def _name_problem(name: str) -> str:
    """Why `name` cannot be a line of SHA256SUMS ('' when it can)."""
    if not name:
        return "an empty name"
    if "\\" in name or any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        return "a backslash or control character, which sha256sum would escape"
    if name.startswith("/") or ".." in name.split("/"):
        return "not a path relative to the file's directory"
    return ""


# --- signing ----------------------------------------------------------------------------


def check_signing_key(key: SigningKey) -> None:
    """What sign() needs, checked without signing: the tool installed (else exit 3 naming
    the Debian package), the key there, its passphrase readable or typeable. `bundle
    release` asks before building, so that a missing key is said before minutes of builds."""
    if key.tool not in ("gpg", "minisign"):
        raise InputError(f"{key.tool}: not a signing tool (gpg or minisign)")
    tool = _tool(key.tool)
    if key.passphrase_file is not None:
        _check_passphrase_file(key.passphrase_file)
    if key.tool == "minisign":
        if (_minisign_secret_key(key.key).encrypted and key.passphrase_file is None
                and not sys.stdin.isatty()):
            raise InputError(f"{key.key}: the minisign key has a password and nobody can "
                             "type it here: give a passphrase file (or make the key with "
                             "minisign -G -W)")
        return
    listed = _run([tool, "--batch", "--with-colons", "--list-secret-keys", "--", key.key])
    if listed.returncode != 0 or not any(line.startswith("sec:")
                                         for line in listed.stdout.splitlines()):
        home = os.environ.get("GNUPGHOME") or "~/.gnupg"
        raise InputError(f"gpg key {key.key}: no secret key of that name in the keyring of "
                         f"{home} (gpg --list-secret-keys)")


def sign(path: str, key: SigningKey) -> str:
    """A detached signature of `path` beside it, written atomically: `PATH.asc` (gpg,
    ASCII-armoured) or `PATH.minisig`; returns its path. Nothing is left on failure."""
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file to sign")
    check_signing_key(key)
    signature = path + (".asc" if key.tool == "gpg" else ".minisig")
    directory, name = os.path.split(os.path.abspath(signature))
    descriptor, temporary = tempfile.mkstemp(prefix=f".{name}.", dir=directory)
    os.close(descriptor)
    try:
        if key.tool == "gpg":
            _sign_gpg(path, key, temporary)
        else:
            _sign_minisign(path, key, temporary)
        os.chmod(temporary, 0o644)
        os.replace(temporary, signature)
    except BaseException:
        if os.path.lexists(temporary):
            os.unlink(temporary)
        raise
    return signature


def _sign_gpg(path: str, key: SigningKey, out: str) -> None:
    command = [_tool("gpg"), "--batch", "--yes", "--armor", "--local-user", key.key]
    if key.passphrase_file is not None:
        command += ["--pinentry-mode", "loopback", "--passphrase-file", key.passphrase_file]
    command += ["--output", out, "--detach-sign", path]
    done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          errors="replace")
    if done.returncode != 0:
        raise InputError(f"gpg could not sign {path} with {key.key}: "
                         f"{_first_error(done.stderr, 'gpg', done.returncode)}")


def _sign_minisign(path: str, key: SigningKey, out: str) -> None:
    secret = _minisign_secret_key(key.key)
    password = (None if key.passphrase_file is None
                else _check_passphrase_file(key.passphrase_file))
    command = [_tool("minisign"), "-S", "-s", key.key, "-x", out, "-m", path]
    if password is not None:  # minisign reads the password from its stdin
        done = subprocess.run(command, input=password + "\n", capture_output=True, text=True,
                              errors="replace")
    elif secret.encrypted:  # a person at the terminal types it, and sees minisign's errors
        done = subprocess.run(command, stdout=subprocess.DEVNULL, text=True)
    else:
        done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, errors="replace")
    if done.returncode != 0:
        said = (done.stderr or "") + (done.stdout or "")
        raise InputError(f"minisign could not sign {path} with {key.key}: "
                         f"{_first_error(said, 'minisign', done.returncode)}")


@dataclass(frozen=True)
class _MinisignSecret:
    encrypted: bool  # made without -W: minisign asks for its password


def _minisign_secret_key(path: str) -> _MinisignSecret:
    lines = _decode(_read_capped(path, KEY_LIMIT, "minisign secret key"), path).splitlines()
    raw = _base64(lines[1]) if len(lines) >= 2 and lines[0].startswith("untrusted comment:") \
        else None
    # signature algorithm "Ed", KDF algorithm ("Sc" scrypt, or two zero bytes), checksum...
    if raw is None or len(raw) < 6 or raw[:2] != b"Ed":
        raise InputError(f"{path}: not a minisign secret key")
    return _MinisignSecret(encrypted=raw[2:4] != b"\0\0")


def _check_passphrase_file(path: str) -> str:
    """The passphrase: the first line of the file (gpg reads the same line itself)."""
    text = _decode(_read_capped(path, KEY_LIMIT, "passphrase file"), path)
    return text.split("\n", 1)[0]


# --- checking ---------------------------------------------------------------------------


def check_release(artifact: str, public_key: str, sums: str | None = None) -> SignatureCheck:
    """Prove that `artifact` is what its publisher signed: SHA256SUMS (`sums`, default the
    one beside the artifact) carries a good signature by the key in `public_key` (the key
    decides the tool), lists the artifact's file name, and gives the sha256 its bytes have.
    Any failure is one UnsafeArtifactError line saying which; a directory artifact or an
    unusable key file is an InputError (checked first: a usage error is said as one)."""
    _check_artifact_kind(artifact)
    key_bytes = _read_capped(public_key, KEY_LIMIT, "public key")
    tool = _key_tool(key_bytes, public_key)
    with tempfile.TemporaryDirectory(prefix="bundle-signature-") as work:
        key: _TrustedKey = (_minisign_key(key_bytes, work) if tool == "minisign"
                            else _gpg_key(key_bytes, work, public_key))
        sums = _sums_path(artifact, sums)
        signature = _signature_beside(sums, tool)
        sums_bytes = _read_capped(sums, SUMS_LIMIT, SUMS_NAME)
        copies = {"sums": os.path.join(work, "sums"), "sig": os.path.join(work, "sig")}
        for label, data in (("sums", sums_bytes),
                            ("sig", _read_capped(signature, KEY_LIMIT, "signature"))):
            with open(copies[label], "wb") as handle:
                handle.write(data)
        check = _check_minisign if tool == "minisign" else _check_gpg
        check(key, copies["sig"], copies["sums"], public_key, sums, signature)
    listed = parse_sums(_decode(sums_bytes, sums), sums)
    name = _listed_name(artifact, sums)
    if name not in listed:
        raise UnsafeArtifactError(f"{artifact}: not listed in {sums} (signed; it lists "
                                  f"{len(listed)} other file{'s' if len(listed) != 1 else ''})")
    actual = sha256_of(artifact)
    if actual != listed[name]:
        raise UnsafeArtifactError(f"{artifact}: sha256 mismatch: the file's is {actual}, the "
                                  f"signed {os.path.basename(sums)} says {listed[name]}")
    return SignatureCheck(tool, public_key, key.key_id, sums, name, actual)


@dataclass(frozen=True)
class _TrustedKey:
    """The one key a check trusts, made ready for its tool in the check's private
    directory: `path` is a minisign .pub or a binary OpenPGP keyring, `home` gpg's."""

    path: str
    key_id: str
    home: str = ""


def _sums_path(artifact: str, sums: str | None) -> str:
    if sums is None:
        sums = os.path.join(os.path.dirname(artifact) or ".", SUMS_NAME)
        if not os.path.lexists(sums):
            raise UnsafeArtifactError(f"{artifact}: no {SUMS_NAME} beside it to check the "
                                      "signature of (give --sums FILE)")
    elif not os.path.lexists(sums):
        raise InputError(f"--sums {sums}: no such file")
    return sums


def _check_artifact_kind(artifact: str) -> None:
    if os.path.isdir(artifact):
        raise InputError(f"--key {artifact}: a directory artifact has no sha256 for "
                         "SHA256SUMS to list; check the archive it was unpacked from")
    if not os.path.exists(artifact):
        raise InputError(f"{artifact}: no such file or directory")
    open_regular(artifact).close()  # a FIFO, device or socket: refused, nothing read


def _listed_name(artifact: str, sums: str) -> str:
    """The artifact's name as SHA256SUMS lists it: its path relative to the directory of
    SHA256SUMS when it lies beneath it, else its file name (both as given, symlinks not
    followed: the name the user sees is the name looked up)."""
    here = os.path.dirname(os.path.abspath(sums))
    relative = os.path.relpath(os.path.abspath(artifact), here)
    return os.path.basename(artifact) if relative.startswith("..") else relative


def _key_tool(data: bytes, path: str) -> Literal["gpg", "minisign"]:
    """Which tool's public key the file holds: minisign's two lines, an OpenPGP key
    (armoured, or a binary public-key packet). A secret key is refused: never needed here."""
    head = data.lstrip()
    if head.startswith(MINISIGN_COMMENT):
        lines = head.splitlines()
        raw = _base64(lines[1].decode("ascii", "replace")) if len(lines) >= 2 else None
        if raw is None or len(raw) != 42 or raw[:2] != b"Ed":
            secret = raw is not None and len(raw) > 42
            raise InputError(f"--key {path}: " + (
                "a minisign SECRET key: give the public one (.pub)" if secret
                else "not a minisign public key (the comment line, then the base64 key)"))
        return "minisign"
    if head.startswith(ARMOURED_PUBLIC):
        return "gpg"
    if head.startswith(ARMOURED_SECRET):
        raise InputError(f"--key {path}: an OpenPGP SECRET key: give the public key "
                         "(gpg --armor --export KEYID)")
    if data and data[0] & 0x80:
        # packet tag: old format bits 5..2, new format bits 5..0; 6 public key, 5 secret
        tag = data[0] & 0x3F if data[0] & 0x40 else (data[0] >> 2) & 0x0F
        if tag == 6:
            return "gpg"
        if tag == 5:
            raise InputError(f"--key {path}: an OpenPGP SECRET key: give the public key "
                             "(gpg --export KEYID)")
    raise InputError(f"--key {path}: neither a minisign public key nor an OpenPGP public key")


def _signature_beside(sums: str, tool: str) -> str:
    candidates = [sums + ending for ending in SIGNATURE_ENDINGS[tool]]
    for candidate in candidates:
        if os.path.lexists(candidate):
            return candidate
    names = " or ".join(os.path.basename(c) for c in candidates)
    raise UnsafeArtifactError(f"{sums}: no signature beside it ({names}, for the {tool} "
                              "key given)")


def _minisign_key(key_bytes: bytes, work: str) -> _TrustedKey:
    raw = _base64(key_bytes.lstrip().splitlines()[1].decode("ascii"))
    assert raw is not None  # _key_tool checked it
    path = os.path.join(work, "key.pub")
    with open(path, "wb") as handle:
        handle.write(key_bytes)
    # the key id as minisign prints it: hex of a little-endian 64-bit number, no leading 0s
    return _TrustedKey(path, format(int.from_bytes(raw[2:10], "little"), "X"))


def _check_minisign(key: _TrustedKey, signature_copy: str, sums_copy: str, public_key: str,
                    sums: str, signature: str) -> None:
    done = _run([_tool("minisign"), "-V", "-p", key.path, "-x", signature_copy, "-m",
                 sums_copy])
    if done.returncode == 0:
        return
    said = done.stderr + done.stdout
    other = re.search(r"Signature key id in \S+ is (\w+)", said)
    if other:
        raise UnsafeArtifactError(f"{signature}: signed by another key ({other.group(1)}), "
                                  f"not by {public_key} ({key.key_id})")
    if "Signature verification failed" in said:
        raise UnsafeArtifactError(f"{signature}: bad signature: {CHANGED.format(sums=sums)}")
    raise UnsafeArtifactError(f"{signature}: bad signature of {sums}: "
                              f"{_first_error(said, 'minisign', done.returncode)}")


def _gpg_key(key_bytes: bytes, work: str, public_key: str) -> _TrustedKey:
    """A keyring holding only the key file's one key, and an empty private gpg home: the
    user's keyring, trust database and agent are never consulted."""
    home = os.path.join(work, "home")
    os.mkdir(home, 0o700)
    source, keyring = os.path.join(work, "key"), os.path.join(work, "keyring.gpg")
    with open(source, "wb") as handle:
        handle.write(key_bytes)
    gpg = [_tool("gpg"), "--homedir", home, "--batch", "--no-options", "--no-autostart"]
    if key_bytes.lstrip().startswith(ARMOURED_PUBLIC):
        done = _run([*gpg, "--output", keyring, "--dearmor", source])
        if done.returncode != 0:
            raise InputError(f"--key {public_key}: not an OpenPGP public key: "
                             f"{_first_error(done.stderr, 'gpg', done.returncode)}")
    else:
        os.rename(source, keyring)
    fingerprint = _only_key(_run([*gpg, "--with-colons", "--show-keys", keyring]), public_key)
    return _TrustedKey(keyring, fingerprint, home)


def _check_gpg(key: _TrustedKey, signature_copy: str, sums_copy: str, public_key: str,
               sums: str, signature: str) -> None:
    """gpgv with that keyring alone; a detached signature only (gpgv refuses one that
    carries its own data, which would otherwise be what is checked)."""
    done = _run([_tool("gpgv"), "--homedir", key.home, "--status-fd", "1", "--keyring",
                 key.path, signature_copy, sums_copy])
    status = [line.split()[1:] for line in done.stdout.splitlines()
              if line.startswith("[GNUPG:] ") and len(line.split()) > 1]
    kinds = {fields[0] for fields in status}
    valid = [fields for fields in status if fields[0] == "VALIDSIG"]
    if done.returncode == 0 and valid and kinds.isdisjoint(
            {"BADSIG", "ERRSIG", "EXPKEYSIG", "REVKEYSIG", "EXPSIG"}):
        return
    if "NO_PUBKEY" in kinds:
        # ERRSIG KEYID ALGO HASH CLASS TIME RC FPR: the fingerprint where gpgv gives it
        signer = next((f[7] if len(f) > 7 and f[7] != "-" else f[1]) for f in status
                      if f[0] == "ERRSIG" and len(f) > 1)
        raise UnsafeArtifactError(f"{signature}: signed by another key ({signer}), not by "
                                  f"{public_key} ({key.key_id})")
    for kind, what in (("BADSIG", CHANGED.format(sums=sums)),
                       ("EXPKEYSIG", "made by an expired key"),
                       ("REVKEYSIG", "made by a revoked key"), ("EXPSIG", "expired")):
        if kind in kinds:
            raise UnsafeArtifactError(f"{signature}: bad signature: {what}")
    raise UnsafeArtifactError(f"{signature}: bad signature of {sums}: "
                              f"{_first_error(done.stderr, 'gpgv', done.returncode)}")


def _only_key(done: subprocess.CompletedProcess[str], public_key: str) -> str:
    """The fingerprint of the one primary key in the key file; several would make `--key`
    trust more than it names, none is not a key."""
    records = [line.split(":") for line in done.stdout.splitlines()]
    if any(r[0] in ("sec", "ssb") for r in records):
        raise InputError(f"--key {public_key}: an OpenPGP SECRET key: give the public key")
    primaries = [i for i, r in enumerate(records) if r[0] == "pub"]
    if done.returncode != 0 or not primaries:
        raise InputError(f"--key {public_key}: no OpenPGP public key in it: "
                         f"{_first_error(done.stderr, 'gpg', done.returncode)}")
    if len(primaries) > 1:
        raise InputError(f"--key {public_key}: holds {len(primaries)} keys; give a file with "
                         "the one key that signs releases (gpg --armor --export KEYID)")
    after = records[primaries[0] + 1:]
    return next((r[9] for r in after if r[0] == "fpr" and len(r) > 9), records[primaries[0]][4])


# --- helpers ----------------------------------------------------------------------------


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise EnvironmentUnfitError(f"{name} is not installed (Debian: apt-get install "
                                    f"{PACKAGES[name]})")
    return found


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, errors="replace", timeout=TOOL_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise EnvironmentUnfitError(f"{os.path.basename(command[0])} took longer than "
                                    f"{TOOL_TIMEOUT:.0f} s; stopped") from None


def _first_error(output: str, tool: str, code: int) -> str:
    """The tool's own first line that says what went wrong (prompts, progress and
    warnings skipped), without its `tool:` prefix."""
    noise = ("Password:", "Deriving a key from the password", "done", "WARNING",
             "keybox '", "using ", "Signature made")
    for raw in output.splitlines():
        line = raw.strip()
        for prefix in (f"{tool}: ", "Password: ",
                       "Deriving a key from the password and decrypting the secret key... "):
            line = line.removeprefix(prefix).strip()
        if line and not line.startswith(noise) and not line.endswith("created"):
            return line
    return f"{tool} exited with {code}"


def _read_capped(path: str, limit: int, what: str) -> bytes:
    """The file's bytes (at most `limit`): the user's path, its last symlink followed; a
    FIFO, device or directory is refused without a read that could block."""
    try:
        data, size = read_plain_file(os.path.realpath(path), limit)
    except NotRegularFile:
        raise InputError(f"{path}: not a regular file ({what})") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None
    if len(data) > limit:
        raise UnsafeArtifactError(f"{path}: {size} bytes; a {what} has at most {limit}")
    return data


def _decode(data: bytes, path: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UnsafeArtifactError(f"{path}: not UTF-8 text") from None


def _base64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None

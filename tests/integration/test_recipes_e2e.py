"""The built-in recipes, end to end: Debian 12's python3, perl, git, openssl, gpg and tmux,
each bundled with no option at all, run in the Debian 11 root and in an empty root (busybox
as /bin/sh), at the artifact's prefix and elsewhere, give the native run's output.

Without its recipe each of them fails somewhere (issue 20): python3 finds no `encodings`,
perl loads Debian 11's own Fcntl.so or finds no POSIX.pm, `git clone` finds no
git-upload-pack, openssl req no openssl.cnf, gpg no gpg-agent, tmux no C.UTF-8 locale.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.cli import run_cli
from support.needs import need
from support.roots import chroot_run, debian11_root, empty_root, need_root, unpack

PROGRAMS = {"python3": "python3", "perl": "perl", "git": "git", "openssl": "openssl",
            "gpg": "gpg", "tmux": "tmux"}
ROOTS = ("debian11", "empty")
PLACES = ("prefix", "elsewhere")
ELSEWHERE = "srv/else where"  # a space on the way: the launcher must not care
ENV = {"HOME": "/tmp", "LANG": "C", "GIT_CONFIG_NOSYSTEM": "1",
       "GIT_AUTHOR_NAME": "A U Thor", "GIT_AUTHOR_EMAIL": "author@example.com",
       "GIT_COMMITTER_NAME": "C O Mitter", "GIT_COMMITTER_EMAIL": "committer@example.com",
       "GIT_AUTHOR_DATE": "2000-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2000-01-01T00:00:00Z"}

PYTHON_SCRIPT = r"""
import ctypes, decimal, hashlib, sqlite3, ssl, sys
db = sqlite3.connect(":memory:")
db.execute("create table t(x integer)")
db.executemany("insert into t values (?)", [(i,) for i in range(1000)])
print("sqlite", sqlite3.sqlite_version, db.execute("select sum(x * x) from t").fetchone()[0])
print("sha256", hashlib.sha256(b"bundle" * 1000).hexdigest())
print("md5", hashlib.md5(b"bundle").hexdigest(), "sha3", hashlib.sha3_256(b"x").hexdigest())
decimal.getcontext().prec = 40
print("decimal", decimal.Decimal(1) / decimal.Decimal(7))
print("ctypes", ctypes.CDLL(None).strlen(b"hello, world"))
context = ssl.create_default_context()
print("ssl", ssl.OPENSSL_VERSION, context.verify_mode == ssl.CERT_REQUIRED,
      len(ssl.RAND_bytes(16)))
print("encoding", sys.getfilesystemencoding(), sys.stdout.encoding)
"""
PERL_SCRIPT = r"""
use strict; use warnings;
use POSIX qw(floor strftime); use Data::Dumper; use Digest::MD5 qw(md5_hex);
use Fcntl qw(:flock); use List::Util qw(sum);
$Data::Dumper::Sortkeys = 1; $Data::Dumper::Indent = 1;
print "floor ", floor(7.5), " ", strftime("%Y-%m-%d", gmtime(86400 * 365)), "\n";
print Dumper({ list => [1, 2, 3], name => "bundle" });
print md5_hex("bundle"), " ", sum(1 .. 100), " ", LOCK_EX, " ", sprintf("%vd", $^V), "\n";
"""
GIT_SCRIPT = """set -e
cd "$1"
"$2" init -q -b main src
cd src
printf 'hello\\n' > hello.txt
"$2" add hello.txt
"$2" commit -q -m first
cd ..
"$2" clone -q "file://$1/src" copy
cd copy
printf 'more\\n' >> hello.txt
"$2" commit -q -a -m second
"$2" log --format='%H %an %s'
"$2" rev-parse --abbrev-ref HEAD
ls .git/hooks
"""


def _program(name: str) -> str:
    path = shutil.which(name, path="/usr/bin:/bin")
    need(path is not None, f"{name} is not installed (scripts/test installs it)")
    assert path is not None
    return path


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> dict[str, Path]:
    """Each program bundled once, with no option: its recipe is all it gets."""
    need_root()
    work = tmp_path_factory.mktemp("recipes")
    built = {}
    for name, program in PROGRAMS.items():
        out = work / f"{name}.tar.zst"
        result = run_cli(_program(program), "-o", str(out))
        assert result.returncode == 0, result.stderr
        built[name] = out
    return built


@contextlib.contextmanager
def _terminals(root: Path) -> Iterator[None]:
    """A private devpts in the root (tmux opens /dev/ptmx), unmounted afterwards."""
    dev = root / "dev"
    (dev / "pts").mkdir(parents=True, exist_ok=True)
    for name, minor in (("null", 3), ("urandom", 9)):
        if not (dev / name).exists():
            os.mknod(dev / name, 0o20666, os.makedev(1, minor))
            os.chmod(dev / name, 0o666)
    if (dev / "ptmx").exists() or (dev / "ptmx").is_symlink():
        (dev / "ptmx").unlink()
    (dev / "ptmx").symlink_to("pts/ptmx")
    subprocess.run(["mount", "-t", "devpts", "-o", "newinstance,ptmxmode=0666,mode=620",
                    "devpts", str(dev / "pts")], check=True)
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(dev / "pts")], check=False)


def _end_processes_in(root: Path) -> None:
    """The daemons the runs started in `root` (gpg-agent, a tmux server left by a failed
    test), ended by their ids: a process belongs to the root when its /proc/PID/root is it."""
    real = os.path.realpath(root)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{entry}/root") == real:
                os.kill(int(entry), signal.SIGKILL)


@pytest.fixture(scope="module", params=ROOTS)
def root(request, tmp_path_factory, artifacts) -> Iterator[Path]:
    """The root with every artifact at its prefix (/opt/NAME) and elsewhere."""
    where = tmp_path_factory.mktemp(request.param)
    opener = debian11_root if request.param == "debian11" else empty_root
    with opener(where) as made, _terminals(made):
        try:
            for artifact in artifacts.values():
                unpack(artifact, made / "opt")
                unpack(artifact, made / ELSEWHERE)
            yield made
        finally:
            _end_processes_in(made)


@pytest.fixture(params=PLACES)
def place(request) -> str:
    return "/opt" if request.param == "prefix" else "/" + ELSEWHERE


@pytest.fixture
def work(root: Path) -> Iterator[str]:
    """A fresh working dir inside the root, as the root sees it."""
    inside = f"/tmp/work-{time.monotonic_ns()}"
    (root / inside.lstrip("/")).mkdir(mode=0o700)
    try:
        yield inside
    finally:
        _end_processes_in(root)
        shutil.rmtree(root / inside.lstrip("/"), ignore_errors=True)


def _native(argv: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", **ENV, **kwargs.pop("env", {})},
                          **kwargs)


def _bundled(root: Path, argv: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    return chroot_run(root, argv, env={**ENV, **kwargs.pop("env", {})}, timeout=120, **kwargs)


def test_python3_stdlib_and_extension_modules(root: Path, place: str) -> None:
    native = _native([_program("python3"), "-c", PYTHON_SCRIPT])
    assert native.returncode == 0 and "ctypes 12" in native.stdout, native.stderr
    bundled = _bundled(root, [f"{place}/python3/bin/python3", "-c", PYTHON_SCRIPT])
    assert (bundled.returncode, bundled.stdout) == (0, native.stdout), bundled.stderr


def test_perl_with_xs_modules(root: Path, place: str) -> None:
    native = _native([_program("perl"), "-e", PERL_SCRIPT])
    assert native.returncode == 0 and "'bundle'" in native.stdout, native.stderr
    bundled = _bundled(root, [f"{place}/perl/bin/perl", "-e", PERL_SCRIPT])
    assert (bundled.returncode, bundled.stdout) == (0, native.stdout), bundled.stderr
    assert bundled.stderr == "", bundled.stderr  # no "binaries are mismatched"


def test_git_clones_and_commits(root: Path, place: str, work: str, tmp_path: Path) -> None:
    """git clone over file:// runs git-upload-pack from the exec path; the template dir
    gives the clone its hooks; the same commits as the native git."""
    native = _native(["sh", "-c", GIT_SCRIPT, "sh", str(tmp_path), _program("git")])
    assert native.returncode == 0 and native.stdout.count(" A U Thor ") == 2, native.stderr
    assert "pre-commit.sample" in native.stdout
    bundled = _bundled(root, ["/bin/sh", "-c", GIT_SCRIPT, "sh", work,
                              f"{place}/git/bin/git"])
    assert (bundled.returncode, bundled.stdout) == (0, native.stdout), bundled.stderr


def _certificate_facts(text: str) -> list[str]:
    """What a fresh self-signed certificate must have in common with the native one:
    names, key type and size, and the extensions the default config asks for."""
    keep = re.compile(r"^\s*(Subject:|Issuer:|Public Key Algorithm|Public-Key|Signature "
                      r"Algorithm|X509v3 |CA:)")
    return sorted({line.strip() for line in text.splitlines() if keep.match(line)})


def _openssl_run(run, openssl: str, directory: str) -> tuple[list[str], str]:
    made = run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                f"{directory}/key.pem", "-out", f"{directory}/cert.pem", "-days", "30",
                "-subj", "/CN=bundle.example/O=Bundle"])
    assert made.returncode == 0, made.stderr
    shown = run([openssl, "x509", "-in", f"{directory}/cert.pem", "-noout", "-text"])
    assert shown.returncode == 0, shown.stderr
    providers = run([openssl, "list", "-providers", "-provider", "legacy", "-provider",
                     "default"])
    assert providers.returncode == 0, providers.stderr
    return _certificate_facts(shown.stdout), providers.stdout


def test_openssl_req_x509_with_the_default_config(root: Path, place: str, work: str,
                                                  tmp_path: Path) -> None:
    """req reads openssl.cnf (its v3_ca extensions show in the certificate); the legacy
    provider loads from the carried ossl-modules."""
    native = _openssl_run(_native, _program("openssl"), str(tmp_path))
    assert "CA:TRUE" in native[0] and "legacy" in native[1], native
    bundled = _openssl_run(lambda argv: _bundled(root, argv), f"{place}/openssl/bin/openssl",
                           work)
    assert bundled == native


def _gpg_run(run, gpg: str, home: str) -> list[str]:
    """A key made without a passphrase prompt, listed, and used to sign and verify."""
    env = {"GNUPGHOME": home}
    made = run([gpg, "--batch", "--pinentry-mode", "loopback", "--passphrase", "",
                "--quick-generate-key", "Bundle Test <bundle@example.com>", "ed25519",
                "sign", "never"], env=env)
    assert made.returncode == 0, made.stderr
    listed = run([gpg, "--batch", "--with-colons", "--list-secret-keys"], env=env)
    assert listed.returncode == 0, listed.stderr
    signed = run([gpg, "--batch", "--yes", "--pinentry-mode", "loopback", "--passphrase",
                  "", "-o", f"{home}/signed.gpg", "--sign", f"{home}/pubring.kbx"], env=env)
    assert signed.returncode == 0, signed.stderr
    verified = run([gpg, "--batch", "--verify", f"{home}/signed.gpg"], env=env)
    facts = [":".join(fields[i] for i in (0, 1, 2, 3, 9)) for fields in
             (line.split(":") for line in listed.stdout.splitlines())
             if fields[0] in ("sec", "uid")]
    return [*facts, f"verify {verified.returncode}",
            *re.findall(r'Good signature from "[^"]*"', verified.stderr)]


def test_gpg_generates_a_key_with_its_agent(root: Path, place: str, work: str,
                                           tmp_path: Path) -> None:
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    try:
        native = _gpg_run(_native, _program("gpg"), str(home))
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"],
                       capture_output=True, check=False)
    assert native[-1].startswith("Good signature") and native[0].startswith("sec:u:255:22"), \
        native
    (root / work.lstrip("/") / "gnupg").mkdir(mode=0o700)
    bundled = _gpg_run(lambda argv, env: _bundled(root, argv, env=env),
                       f"{place}/gpg/bin/gpg", f"{work}/gnupg")
    assert bundled == native


def _tmux_run(run, tmux: str, socket: str) -> str:
    """A detached session running cat, keys sent to it, its pane captured."""
    base = [tmux, "-S", socket, "-f", "/dev/null"]
    started = run([*base, "new-session", "-d", "-x", "40", "-y", "5", "cat"])
    assert started.returncode == 0, started.stderr
    try:
        sent = run([*base, "send-keys", "hello bundle", "Enter"])
        assert sent.returncode == 0, sent.stderr
        deadline = time.monotonic() + 10
        while True:
            pane = run([*base, "capture-pane", "-p"])
            assert pane.returncode == 0, pane.stderr
            if pane.stdout.count("hello bundle") >= 2 or time.monotonic() > deadline:
                return pane.stdout.rstrip("\n")
            time.sleep(0.1)
    finally:
        run([*base, "kill-server"])


def test_tmux_session_send_keys_capture_pane(root: Path, place: str, work: str,
                                             tmp_path: Path) -> None:
    """tmux refuses to start without a UTF-8 LC_CTYPE: with LANG=C it takes C.UTF-8,
    which its recipe carries."""
    native = _tmux_run(_native, _program("tmux"), str(tmp_path / "tmux.sock"))
    assert native == "hello bundle\nhello bundle", native
    bundled = _tmux_run(lambda argv: _bundled(root, argv), f"{place}/tmux/bin/tmux",
                        f"{work}/tmux.sock")
    assert bundled == native

"""Debian 12's own programs, bundled, in a Debian 11 root and in an empty root.

Each run is compared with the same program run natively on this host: curl fetching from
an HTTP server on 127.0.0.1 by the name `localhost` (/etc/hosts, through the bundled
glibc's built-in `files` NSS), git making a commit (the commit id must be the same), iconv
with the bundled gconv modules, id and getent through NSS, and a thread cancelled with
pthread_cancel (libgcc_s). The last tests check that the variables the launcher sets for
the bundled glibc do not reach the host programs it starts.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.cli import run_cli
from support.needs import need
from support.roots import ROOT_PATH, chroot_run, debian11_root, empty_root, need_root, unpack
from support.toolchain import gcc
from test_artifact_roots import CANCEL

from bundler.manifest import MANIFEST_PATH, dump
from bundler.manifest import load as load_manifest

ROOTS = ("debian11", "empty")
GIT_ENV = {
    "GIT_AUTHOR_NAME": "A U Thor", "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_COMMITTER_NAME": "C O Mitter", "GIT_COMMITTER_EMAIL": "committer@example.com",
    "GIT_AUTHOR_DATE": "2000-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2000-01-01T00:00:00Z",
}
GIT_SCRIPT = """set -e
cd "$1"
"$2" init -q -b main .
printf 'hello\\n' > hello.txt
"$2" add hello.txt
"$2" commit -q -m first
"$2" log --format='%H %an <%ae> %s'
"""
LATIN1 = b"caf\xe9 na\xefve \xa9\n"
KOI8 = b"\xf0\xd2\xc9\xd7\xc5\xd4"


def _program(name: str) -> str:
    path = shutil.which(name)
    need(path is not None, f"{name} is not installed (scripts/test installs it)")
    assert path is not None
    return os.path.realpath(path)


def _bundle(out: Path, *args: str) -> Path:
    result = run_cli(*args, "-o", str(out))
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> dict[str, Path]:
    need_root()
    work = tmp_path_factory.mktemp("artifacts")
    return {
        "curl": _bundle(work / "curl.tar.zst", _program("curl")),
        "git": _bundle(work / "git.tar.zst", _program("git")),
        "iconv": _bundle(work / "iconv.tar.zst", _program("iconv"), "--gconv", "all"),
        "users": _bundle(work / "users.tar.zst", _program("id"), _program("getent"),
                         "--name", "users"),
        "cancel": _bundle(work / "cancel.tar.zst", str(gcc(work / "cancel", CANCEL))),
    }


def _prepare_empty(root: Path) -> None:
    """What any real host has and busybox alone does not: /dev/null and /dev/urandom (git
    opens both), and an /etc with root's entries as this host has them."""
    (root / "dev").mkdir()
    for name, minor in (("null", 3), ("urandom", 9)):
        os.mknod(root / "dev" / name, 0o20666, os.makedev(1, minor))
        os.chmod(root / "dev" / name, 0o666)
    etc = root / "etc"
    etc.mkdir()
    (etc / "nsswitch.conf").write_text("passwd: files\ngroup: files\nhosts: files dns\n")
    for name in ("passwd", "group"):
        lines = [line for line in Path(f"/etc/{name}").read_text().splitlines()
                 if line.startswith("root:")]
        (etc / name).write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module", params=ROOTS)
def root(request, tmp_path_factory, artifacts) -> Iterator[Path]:
    """The root with every artifact unpacked in /tmp/NAME and `localhost` in /etc/hosts."""
    where = tmp_path_factory.mktemp(request.param)
    opener = debian11_root if request.param == "debian11" else empty_root
    with opener(where) as made:
        if request.param == "empty":
            _prepare_empty(made)
        (made / "etc" / "hosts").write_text("127.0.0.1 localhost\n")  # minbase has none
        for artifact in artifacts.values():
            unpack(artifact, made / "tmp")
        yield made


@contextlib.contextmanager
def http_server(directory: Path) -> Iterator[int]:
    """A static HTTP server on 127.0.0.1 (chroots share the network namespace)."""
    handler = functools.partial(QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def test_curl_fetches_from_localhost(root: Path, tmp_path: Path) -> None:
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "data.txt").write_text("served over HTTP\n" * 100)
    with http_server(tmp_path / "www") as port:
        url = f"http://localhost:{port}/data.txt"
        args = ["-sS", "-w", "%{http_code} %{size_download}\\n", url]
        native = subprocess.run([_program("curl"), *args], capture_output=True, text=True)
        bundled = chroot_run(root, ["/tmp/curl/bin/curl", *args])
        resolved = chroot_run(root, ["/tmp/curl/bin/curl", "-sS", "-o", "/tmp/x", "-w",
                                     "%{remote_ip}", url])
    assert native.returncode == 0 and native.stdout.endswith("200 1700\n"), native.stderr
    assert (bundled.returncode, bundled.stdout) == (0, native.stdout), bundled.stderr
    assert (resolved.returncode, resolved.stdout) == (0, "127.0.0.1"), resolved.stderr


def test_git_commits_the_same_commit(root: Path, tmp_path: Path) -> None:
    """Same content, identity and dates: the same commit id as the native git."""
    native_repo = tmp_path / "native"
    native_repo.mkdir()
    env = {**GIT_ENV, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    native = subprocess.run(["sh", "-c", GIT_SCRIPT, "sh", str(native_repo), _program("git")],
                            capture_output=True, text=True, env=env)
    assert native.returncode == 0 and native.stdout.count(" A U Thor ") == 1, native.stderr
    (root / "tmp" / "repo").mkdir()
    bundled = chroot_run(root, ["/bin/sh", "-c", GIT_SCRIPT, "sh", "/tmp/repo",
                                "/tmp/git/bin/git"], env=GIT_ENV)
    assert (bundled.returncode, bundled.stdout) == (0, native.stdout), bundled.stderr
    # git starts `git maintenance` from its compiled-in exec path (/usr/lib/git-core), which
    # is not part of the closure; it says so on stderr and the commit is made all the same.
    assert "cannot run maintenance" in bundled.stderr or "maintenance" not in bundled.stderr


def test_iconv_latin1_with_the_bundled_gconv(root: Path) -> None:
    native = subprocess.run([_program("iconv"), "-f", "latin1", "-t", "utf-8"], input=LATIN1,
                            capture_output=True)
    assert native.stdout == "café naïve ©\n".encode()
    bundled = subprocess.run(["chroot", str(root), "/tmp/iconv/bin/iconv", "-f", "latin1", "-t",
                              "utf-8"], input=LATIN1, capture_output=True, env={"PATH": ROOT_PATH})
    assert (bundled.returncode, bundled.stdout) == (0, native.stdout), bundled.stderr
    koi8 = subprocess.run(["chroot", str(root), "/tmp/iconv/bin/iconv", "-f", "KOI8-R", "-t",
                           "UTF-8"], input=KOI8, capture_output=True, env={"PATH": ROOT_PATH})
    assert (koi8.returncode, koi8.stdout) == (0, "Привет".encode()), koi8.stderr


@pytest.mark.parametrize("argv", [["id", "root"], ["getent", "passwd", "root"],
                                  ["getent", "group", "root"]])
def test_users_and_groups_through_nss(root: Path, argv: list[str]) -> None:
    native = subprocess.run([_program(argv[0]), *argv[1:]], capture_output=True, text=True)
    assert native.returncode == 0 and native.stdout.startswith(("uid=0(root)", "root:"))
    bundled = chroot_run(root, [f"/tmp/users/bin/{argv[0]}", *argv[1:]])
    assert (bundled.returncode, bundled.stdout) == (0, native.stdout), bundled.stderr


def test_pthread_cancel(root: Path, artifacts) -> None:
    program = Path(str(artifacts["cancel"]).removesuffix(".tar.zst"))
    native = subprocess.run([str(program)], capture_output=True, text=True)
    bundled = chroot_run(root, ["/tmp/cancel/bin/cancel"])
    assert (bundled.returncode, bundled.stdout) == (0, native.stdout) == (0, "cancelled\n")


PROBE = r"""
#include <iconv.h>
#include <langinfo.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    const char *name = setlocale(LC_ALL, "");
    printf("locale=%s codeset=%s\n", name ? name : "(failed)", nl_langinfo(CODESET));
    iconv_t cd = iconv_open("UTF-8", "KOI8-R");
    if (cd == (iconv_t)-1) { perror("iconv_open"); return 1; }
    char in[] = "\xf0\xd2\xc9\xd7\xc5\xd4", out[64], *ip = in, *op = out;
    size_t il = 6, ol = sizeof out - 1;
    iconv(cd, &ip, &il, &op, &ol);
    *op = 0;
    printf("koi8=%s\n", out);
    fflush(stdout);
    return argc > 1 && system(argv[1]) != 0 ? 3 : 0;
}
"""
CHILD = "iconv -f latin1 -t utf-8 /tmp/latin1.txt && LANG=en_US.UTF-8 locale charmap"


def _add_locale_to_root(root: Path, name: str = "en_US") -> None:
    """Compile NAME.UTF-8 into the root's own locale-archive with its own localedef."""
    need(Path("/usr/share/i18n/locales/en_US").exists(), "the locales package is not installed")
    shutil.copytree("/usr/share/i18n", root / "usr/share/i18n", dirs_exist_ok=True)
    made = chroot_run(root, ["localedef", "-i", name, "-f", "UTF-8", f"{name}.UTF-8"])
    assert made.returncode == 0, made.stderr


def test_launcher_variables_do_not_reach_host_children(tmp_path: Path) -> None:
    """The bundled glibc finds lib/gconv and lib/locale; the Debian 11 programs it starts
    keep their own iconv and locale-archive. Exported under glibc's own names, the same
    variables break both (measured below, which is why they are renamed)."""
    need_root()
    probe = gcc(tmp_path / "probe", PROBE)
    artifact = _bundle(tmp_path / "probe.tar.zst", str(probe), "--gconv", "KOI8-R",
                       "--locale", "C.UTF-8")
    with debian11_root(tmp_path) as root:
        _add_locale_to_root(root)
        (root / "tmp" / "latin1.txt").write_bytes(LATIN1)
        top = unpack(artifact, root / "tmp") / "probe"
        ran = chroot_run(root, ["/tmp/probe/bin/probe", CHILD], env={"LANG": "C.UTF-8"})
        assert (ran.returncode, ran.stdout) == (
            0, "locale=C.UTF-8 codeset=UTF-8\nkoi8=Привет\ncafé naïve ©\nUTF-8\n"), ran.stderr
        unscoped = {"GCONV_PATH": "/tmp/probe/lib/gconv", "LOCPATH": "/tmp/probe/lib/locale"}
        for command, broken in (
            ("iconv -f latin1 -t utf-8 /tmp/latin1.txt", "failed to start conversion"),
            ("LANG=en_US.UTF-8 locale charmap", "Cannot set LC_CTYPE"),
        ):
            clean = chroot_run(root, ["/bin/sh", "-c", command])
            leaked = chroot_run(root, ["/bin/sh", "-c", command], env=unscoped)
            assert clean.returncode == 0 and broken not in clean.stderr, clean.stderr
            assert broken in leaked.stderr, (command, leaked.stdout, leaked.stderr)
        launcher = (top / "bin" / "probe").read_bytes()  # a script or the native launcher
        assert b"GCONV_PATH" not in launcher and b"LOCPATH" not in launcher


def test_bundled_locale_and_gconv_in_an_empty_root(tmp_path: Path) -> None:
    """Nothing in the root: the locale and the KOI8-R module can only come from the bundle."""
    probe = gcc(tmp_path / "probe", PROBE)
    with_data = _bundle(tmp_path / "with.tar.zst", str(probe), "--gconv", "KOI8-R",
                        "--locale", "C.UTF-8")
    without = _bundle(tmp_path / "without.tar.zst", str(probe), "--name", "bare")
    with empty_root(tmp_path) as root:
        unpack(with_data, root / "tmp")
        unpack(without, root / "tmp")
        ran = chroot_run(root, ["/tmp/probe/bin/probe"], env={"LANG": "C.UTF-8"})
        assert (ran.returncode, ran.stdout) == (
            0, "locale=C.UTF-8 codeset=UTF-8\nkoi8=Привет\n"), ran.stderr
        bare = chroot_run(root, ["/tmp/bare/bin/probe"], env={"LANG": "C.UTF-8"})
        assert bare.returncode == 1 and bare.stdout == "locale=(failed) codeset=ANSI_X3.4-1968\n"
        # Each report says so ahead: the program sets its locale (hazard dynamic-locale)
        # and what the artifact does about it.
        served = (root / "tmp/probe/.bundle/report.md").read_text()
        told = (root / "tmp/bare/.bundle/report.md").read_text()
        for report in (served, told):
            assert "[low] program: dynamic-locale" in report
            assert "evidence: probe: setlocale" in report
        assert "the bundled locales (see 'loaded at run time') serve" in served
        assert "it runs in C, ASCII only" in told and "--locale C.UTF-8" in told


SHOW_ENV = r"""
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    const char *value = argc > 1 ? getenv(argv[1]) : 0;
    printf("%s\n", value ? value : "(unset)");
    return 0;
}
"""


UNSECURE = ("GCONV_PATH", "LOCPATH", "LD_PRELOAD", "LD_LIBRARY_PATH", "NLSPATH", "TMPDIR")


def test_secure_mode_keeps_all_of_glibcs_protection(tmp_path: Path) -> None:
    """A setuid program at its prefix, started by nobody: the bundled loader unsets every
    variable of glibc's unsecure list, the real GCONV_PATH and LOCPATH included (renaming
    them in the loader once let a caller's GCONV_PATH reach the host programs a setuid
    artifact started as root). Nothing is scoped in a privileged artifact, so no renamed
    variable exists to slip through; its gconv modules come from PREFIX/lib/gconv, written
    into its libc copy."""
    need_root()
    program = gcc(tmp_path / "showenv", SHOW_ENV)
    program.chmod(0o4755)
    artifact = _bundle(tmp_path / "showenv.tar.zst", str(program), "--allow-setuid",
                       "--gconv", "KOI8-R")
    with empty_root(tmp_path) as root:
        top = unpack(artifact, root / "opt" / "showenv", strip=True)
        manifest = json.loads((top / ".bundle" / "manifest.json").read_text())
        assert [(e["variable"], e["scoped"]) for e in manifest["environment"]] == [
            ("GCONV_PATH", False)]
        libc = manifest_record(manifest, "lib/libc.so.6")
        assert "/opt/showenv/lib/gconv" in "".join(libc["patched"]["renamed_strings"].values())
        env = {name: "/tmp/evil" for name in UNSECURE} | {"PATH": ROOT_PATH}
        for name in UNSECURE:
            argv = ["chroot", "--userspec=65534:65534", str(root),
                    "/opt/showenv/libexec/showenv", name]
            secure = subprocess.run(argv, capture_output=True, text=True, env=env)
            assert (secure.returncode, secure.stdout) == (0, "(unset)\n"), (name, secure.stderr)
        (top / "libexec" / "showenv").chmod(0o755)  # the same program without setuid
        plain = subprocess.run(["chroot", "--userspec=65534:65534", str(root),
                                "/opt/showenv/libexec/showenv", "GCONV_PATH"],
                               capture_output=True, text=True, env=env)
        assert (plain.returncode, plain.stdout) == (0, "/tmp/evil\n"), plain.stderr


def manifest_record(manifest: dict, path: str) -> dict:
    (record,) = [r for r in manifest["files"] if r["path"] == path]
    return record


def test_locale_from_an_old_roots_archive(tmp_path: Path) -> None:
    """--sysroot Debian 11 --locale en_US.UTF-8: extracted from its locale-archive, used by
    its `date` on this host, which has no en_US locale of its own."""
    need_root()
    with debian11_root(tmp_path) as root:
        _add_locale_to_root(root)
        artifact = _bundle(tmp_path / "date.tar.zst", str(root / "bin" / "date"), "--sysroot",
                           str(root), "--locale", "en_US.UTF-8")
    top = unpack(artifact, tmp_path / "u") / "date"
    assert (top / "lib" / "locale" / "en_US.utf8" / "LC_TIME").is_file()
    loaded = load_manifest(str(top), "date")  # extracted records too: written as read
    assert dump(loaded) == (top / MANIFEST_PATH).read_text()
    assert any(f.extracted is not None for f in loaded.files)
    env = {"LANG": "en_US.UTF-8", "TZ": "UTC", "PATH": ROOT_PATH}
    ran = subprocess.run([str(top / "bin" / "date"), "-d", "@0"], capture_output=True,
                         text=True, env=env)
    assert (ran.returncode, ran.stdout) == (0, "Thu Jan  1 12:00:00 AM UTC 1970\n"), ran.stderr
    host = subprocess.run(["date", "-d", "@0"], capture_output=True, text=True, env=env)
    assert host.stdout != ran.stdout  # the host itself falls back to C: the bundle did it

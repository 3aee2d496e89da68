"""The artifact is sealed: in every start mode the bundled loader and glibc open no library,
cache, preload list, gconv module or locale of the host (sealing.py, plan.identify).

Each start mode runs under `strace -ff` in the Debian 11 root (glibc 2.31 everywhere: a
host file loaded by mistake would be another glibc's) and in an empty root, and every open
made by the bundled program is checked: inside the artifact, a kernel interface, a host
configuration file, or a sealed path that cannot be opened (/dev/null/..., /sys/...).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.cli import run_cli
from support.gobuild import build_agent
from support.needs import need_tool
from support.roots import BUSYBOX, ROOT_PATH, debian11_root, mounted_proc, need_root, unpack
from support.toolchain import HOST_LOADER, gcc

from bundler.scoping import Rename, apply_renames, whole_string_count
from bundler.sealing import never_opened, seal_libc, seal_loader

LOADER_NAME = "ld-linux-x86-64.so.2"
HOST_LIBC = Path("/lib/x86_64-linux-gnu/libc.so.6")

SELFEXEC = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <iconv.h>
#include <locale.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
extern char **environ;

static int report(char **argv) {
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = 0;
    printf("argv0=%s\nexe=%s\n", argv[0], exe);
    printf("dlopen=%s\n", dlopen("libnotbundled.so.1", RTLD_NOW) ? "loaded" : "failed");
    iconv_t cd = iconv_open("UTF-8", "KOI8-R");
    printf("iconv=%s\n", cd == (iconv_t)-1 ? "failed" : "loaded");
    printf("locale=%s\n", setlocale(LC_ALL, "") ? "set" : "C");
    struct passwd *pw = getpwuid(0);
    printf("user=%s\n", pw ? pw->pw_name : "none");
    return 0;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "report";
    char *next[] = {argv[0], "report", NULL};
    fflush(stdout);
    if (!strcmp(mode, "report")) return report(argv);
    if (!strcmp(mode, "proc")) execv("/proc/self/exe", next);
    if (!strcmp(mode, "memfd")) {
        int src = open("/proc/self/exe", O_RDONLY), fd = memfd_create("selfexec", MFD_CLOEXEC);
        char buf[65536];
        ssize_t got;
        while ((got = read(src, buf, sizeof buf)) > 0) write(fd, buf, got);
        syscall(SYS_execveat, fd, "", next, environ, AT_EMPTY_PATH);
    }
    if (!strcmp(mode, "fexecve")) fexecve(open("/proc/self/exe", O_RDONLY), next, environ);
    if (!strcmp(mode, "child") && argc > 2) {
        pid_t pid = fork();
        if (pid == 0) {
            execv(argv[2], next);
            perror("child exec");
            _exit(126);
        }
        int status;
        waitpid(pid, &status, 0);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
    }
    perror(mode);
    return 126;
}
"""

# Host files the bundled glibc may read: configuration, not code of another glibc.
CONFIG_FILES = frozenset({
    "/etc/nsswitch.conf", "/etc/passwd", "/etc/group", "/etc/hosts", "/etc/host.conf",
    "/etc/resolv.conf", "/etc/localtime", "/etc/gai.conf", "/usr/share/locale/locale.alias",
})
SEALED_PREFIXES = ("/dev/null/", "/sys/")
KERNEL_PREFIXES = ("/proc/", "/sys/", "/dev/")
_CALL = re.compile(r'^(?P<call>openat|open|execve|execveat)\((?:AT_FDCWD, |\d+, )?"(?P<path>[^"]*)"'
                   r'.*\) = (?P<result>-?\d+)')


@dataclass(frozen=True)
class Call:
    pid: str
    call: str
    path: str
    ok: bool
    image: str  # what the process was running: the last path it executed ("" = memfd)


def traced(root: Path, argv: list[str], work: Path, env: dict[str, str] | None = None,
           ) -> tuple[subprocess.CompletedProcess[str], list[Call]]:
    """Run `argv` in `root` under strace -ff; every open and exec, by process."""
    strace = need_tool("strace")
    out = work / "strace"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    full_env = {"PATH": ROOT_PATH, "HOME": "/root", "LANG": "C.UTF-8"}
    full_env.update(env or {})
    ran = subprocess.run([strace, "-ff", "-s", "4096", "-o", str(out / "t"), "-e",
                          "trace=open,openat,execve,execveat", "chroot", str(root), *argv],
                         capture_output=True, text=True, env=full_env, timeout=60)
    calls = []
    for file in sorted(out.iterdir()):
        image = "?"  # a thread or fork of the traced program until it executes something
        for line in file.read_text(errors="replace").splitlines():
            match = _CALL.match(line)
            if not match:
                continue
            ok = not match["result"].startswith("-")
            calls.append(Call(file.name, match["call"], match["path"], ok, image))
            if match["call"].startswith("execve") and ok:
                image = match["path"]
    return ran, calls


def breaches(calls: list[Call], artifact: tuple[str, ...]) -> list[str]:
    """Opens by the bundled program of anything but the artifact, sealed paths, kernel
    interfaces and configuration files. The first process runs the host's `chroot`.

    A path through the artifact's own `lib/.bundle-ID` counts as the artifact's: started
    from a memfd, $ORIGIN is "/" and the loader tries "//../lib/.bundle-ID/" before the
    absolute PREFIX entry; only this very lib/ tree can have that name."""
    homes = {f"/{home}/" for home in _homes(calls)}
    found = []
    for call in calls:
        host_image = call.image.startswith("/usr/sbin/chroot") or (
            call.image.startswith("/") and not call.image.startswith(artifact)
            and call.image != "?")
        if host_image or call.call.startswith("execve"):
            continue
        path = call.path
        if path.startswith(artifact) or path in CONFIG_FILES:
            continue
        if any(home in path for home in homes) and not call.ok:
            continue
        if path.startswith(SEALED_PREFIXES) and not call.ok:
            continue
        if path.startswith(KERNEL_PREFIXES) and not path.startswith("/dev/null/"):
            continue
        found.append(f"{call.call} {path} ({'opened' if call.ok else 'tried'}) by "
                     f"{call.image}")
    return found


def _homes(calls: list[Call]) -> set[str]:
    return {m.group(0) for c in calls for m in [re.search(r"\.bundle-[0-9a-f]{16}", c.path)]
            if m}


@contextlib.contextmanager
def bare_root(where: Path) -> Iterator[Path]:
    """An empty root: busybox as /bin/sh, /proc, an /etc for user lookups, no libc."""
    need_root()
    root = where / "empty-root"
    for directory in ("bin", "tmp", "etc", "usr/local/bin", "opt", "dev"):
        (root / directory).mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, root / "bin" / "sh")
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\n")
    (root / "etc" / "nsswitch.conf").write_text("passwd: files\ngroup: files\n")
    (root / "dev" / "null").touch()
    subprocess.run(["mount", "--bind", "/dev/null", str(root / "dev" / "null")], check=True)
    try:
        with mounted_proc(root):
            yield root
    finally:
        subprocess.run(["umount", "-l", str(root / "dev" / "null")], check=False)


@contextlib.contextmanager
def a_root(kind: str, where: Path) -> Iterator[Path]:
    if kind == "debian11":
        with debian11_root(where) as root:
            yield root
    else:
        with bare_root(where) as root:
            yield root


def bundle(out: Path, program: Path, *args: str) -> Path:
    result = run_cli(str(program), "-o", str(out), *args)
    assert result.returncode == 0, result.stderr
    return out


def install(artifact: Path, root: Path, prefix: str) -> Path:
    return unpack(artifact, root / prefix.lstrip("/"), strip=True)


def library_home(top: Path) -> str:
    (link,) = [p.name for p in (top / "lib").iterdir() if p.name.startswith(".bundle-")]
    return link


def lines(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


SEALED_OUTCOME = {"dlopen": "failed", "iconv": "failed", "locale": "C", "user": "root"}


@pytest.fixture(scope="module")
def selfexec(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("selfexec")
    program = gcc(work / "selfexec", SELFEXEC)
    return bundle(work / "selfexec.tar.zst", program)


@pytest.mark.parametrize("kind", ["debian11", "empty"])
def test_every_start_mode_of_a_c_program_is_sealed(kind: str, tmp_path: Path, selfexec) -> None:
    with a_root(kind, tmp_path) as root:
        top = install(selfexec, root, "/opt/selfexec")
        away = unpack(selfexec, root / "tmp" / "away") / "selfexec"
        (root / "usr/local/bin/other-name").symlink_to("/opt/selfexec/bin/selfexec")
        (root / "tmp/away-name").symlink_to("/tmp/away/selfexec/bin/selfexec")
        installed, moved = "/opt/selfexec", "/tmp/away/selfexec"
        program, loader = f"{installed}/libexec/selfexec", f"{moved}/lib/{LOADER_NAME}"
        cases = [
            # (argv, argv[0] the program must see, its /proc/self/exe)
            ([f"{installed}/bin/selfexec"], f"{installed}/bin/selfexec", program),
            (["/usr/local/bin/other-name"], "/usr/local/bin/other-name", program),
            ([program], program, program),
            ([f"{installed}/bin/selfexec", "proc"], f"{installed}/bin/selfexec", program),
            ([f"{installed}/bin/selfexec", "memfd"], f"{installed}/bin/selfexec",
             "/memfd:selfexec (deleted)"),
            ([f"{installed}/bin/selfexec", "fexecve"], f"{installed}/bin/selfexec", program),
            (["/usr/local/bin/other-name", "child", f"{installed}/bin/selfexec"],
             "/usr/local/bin/other-name", program),
            ([f"{moved}/bin/selfexec"], f"{moved}/bin/selfexec", loader),
            (["/tmp/away-name"], "/tmp/away-name", loader),
        ]
        for argv, argv0, exe in cases:
            ran, calls = traced(root, argv, tmp_path)
            assert ran.returncode == 0, (argv, ran.stdout, ran.stderr)
            assert lines(ran.stdout) == {"argv0": argv0, "exe": exe, **SEALED_OUTCOME}, argv
            assert breaches(calls, (installed, moved)) == [], argv
        # Away from the prefix /proc/self/exe is the loader: a self re-exec starts it
        # without the program. It must fail, and still load nothing of the host's.
        ran, calls = traced(root, [f"{moved}/bin/selfexec", "proc"], tmp_path)
        assert ran.returncode != 0 and "argv0=" not in ran.stdout, ran.stdout
        assert breaches(calls, (installed, moved)) == []
        assert (top / "lib" / library_home(top)).resolve() == (top / "lib").resolve()
        assert library_home(top) == library_home(away)


@pytest.mark.parametrize("kind", ["debian11", "empty"])
def test_go_self_reexec_through_os_executable(kind: str, tmp_path: Path) -> None:
    artifact = bundle(tmp_path / "reexec.tar.zst", build_agent("reexec"))
    with a_root(kind, tmp_path) as root:
        install(artifact, root, "/opt/reexec")
        unpack(artifact, root / "tmp" / "away")
        ran, calls = traced(root, ["/opt/reexec/bin/reexec"], tmp_path)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert ran.stdout == ("parent exe=/opt/reexec/libexec/reexec\nchild "
                              "exe=/opt/reexec/libexec/reexec argv0=/opt/reexec/bin/reexec\n")
        assert breaches(calls, ("/opt/reexec", "/tmp/away/reexec")) == []
        # Elsewhere os.Executable() names the loader: the re-exec fails, sealed.
        ran, calls = traced(root, ["/tmp/away/reexec/bin/reexec"], tmp_path)
        assert ran.returncode == 3 and "re-exec failed" in ran.stdout, ran.stdout
        assert ran.stdout.startswith(f"parent exe=/tmp/away/reexec/lib/{LOADER_NAME}\n")
        assert breaches(calls, ("/opt/reexec", "/tmp/away/reexec")) == []


def test_another_version_at_the_prefix_is_never_used(tmp_path: Path, selfexec) -> None:
    """Version A installed at the prefix, version B (another lib/) run from elsewhere: B
    takes nothing of A's; B's libexec/ program started directly (by a child) finds no
    interpreter instead of A's loader."""
    need_root()
    program = gcc(tmp_path / "b" / "selfexec", SELFEXEC)
    newer = bundle(tmp_path / "b.tar.zst", program, "--gconv", "KOI8-R")
    with debian11_root(tmp_path) as root:
        old = install(selfexec, root, "/opt/selfexec")
        new = unpack(newer, root / "tmp" / "away") / "selfexec"
        assert library_home(old) != library_home(new)
        allowed = ("/tmp/away/selfexec", f"/opt/selfexec/lib/{library_home(new)}")
        ran, calls = traced(root, ["/tmp/away/selfexec/bin/selfexec"], tmp_path)
        assert ran.returncode == 0, ran.stderr
        assert lines(ran.stdout)["iconv"] == "loaded"  # B's own KOI8-R module
        assert breaches(calls, allowed) == []
        assert not [c for c in calls if c.path.startswith("/opt/selfexec") and c.ok
                    and c.call.startswith("open")]
        ran, calls = traced(root, ["/tmp/away/selfexec/bin/selfexec", "child",
                                   "/tmp/away/selfexec/libexec/selfexec"], tmp_path)
        assert ran.returncode == 126 and "No such file or directory" in ran.stderr, ran.stderr
        assert breaches(calls, allowed) == []


def test_never_opened_paths_keep_the_length() -> None:
    for original in ("/etc/ld.so.cache", "/lib/x86_64-linux-gnu/", "/lib/", "/usr/lib/",
                     "/usr/lib/x86_64-linux-gnu/gconv", "/usr/lib/locale"):
        sealed = never_opened(original)
        assert sealed is not None and len(sealed) == len(original)
        assert sealed.startswith(("/dev/null/", "/sys/"))
        assert sealed.endswith("/") == original.endswith("/")
    assert never_opened("/lib") is None  # too short to seal safely


def test_this_hosts_glibc_is_sealed_string_by_string() -> None:
    loader, libc = Path(HOST_LOADER).read_bytes(), HOST_LIBC.read_bytes()
    seal = seal_loader(loader, keep_host_search=False)
    assert not seal.unsealed, seal.unsealed
    sealed_loader = apply_renames(loader, seal.renames)
    assert len(sealed_loader) == len(loader)
    for path in ("/etc/ld.so.cache", "/etc/ld.so.preload", "/lib/x86_64-linux-gnu/",
                 "/usr/lib/x86_64-linux-gnu/"):
        assert path.encode() + b"\0" not in sealed_loader, path
    libc_seal = seal_libc(libc)
    assert not libc_seal.unsealed, libc_seal.unsealed
    sealed_libc = apply_renames(libc, libc_seal.renames)
    for path in ("/usr/lib/x86_64-linux-gnu/gconv", "/usr/lib/locale",
                 "/usr/lib/locale/locale-archive"):
        assert not whole_string_count(sealed_libc, path), path
    # --exclude: the host's cache and dirs stay searchable; the preload file never is.
    kept = apply_renames(loader, seal_loader(loader, keep_host_search=True).renames)
    assert whole_string_count(kept, "/etc/ld.so.cache")
    assert not whole_string_count(kept, "/etc/ld.so.preload")


def test_a_privileged_programs_gconv_dir_points_at_its_prefix() -> None:
    libc = HOST_LIBC.read_bytes()
    seal = seal_libc(libc, gconv_home="/opt/x/lib/gconv")
    assert Rename("/usr/lib/x86_64-linux-gnu/gconv",
                  "/opt/x/lib/gconv" + "\0" * 15) in seal.renames
    too_long = seal_libc(libc, gconv_home="/opt/" + "x" * 40 + "/lib/gconv")
    assert any(r.scoped.startswith("/dev/null/") and "gconv" in r.original
               for r in too_long.renames)


def test_strings_shared_with_others_are_reported_not_sealed() -> None:
    fake_loader = b"\0x/etc/ld.so.cache\0/etc/ld.so.preload\0"
    seal = seal_loader(fake_loader, keep_host_search=False)
    assert [r.original for r in seal.renames] == ["/etc/ld.so.preload"]
    assert any("ld.so.cache" in item for item in seal.unsealed)
    assert any("system dirs" in item for item in seal.unsealed)


def test_the_identity_follows_the_content(tmp_path: Path) -> None:
    """Two builds of the same inputs share lib/.bundle-ID; another library changes it."""
    program = gcc(tmp_path / "p", "int main(void){return 0;}\n")
    first = unpack(bundle(tmp_path / "1.tar.zst", program), tmp_path / "1") / "p"
    second = unpack(bundle(tmp_path / "2.tar.zst", program), tmp_path / "2") / "p"
    other = unpack(bundle(tmp_path / "3.tar.zst", program, "--gconv", "KOI8-R"),
                   tmp_path / "3") / "p"
    assert library_home(first) == library_home(second) != library_home(other)
    interp = subprocess.run(["readelf", "-l", str(first / "libexec" / "p")],
                            capture_output=True, text=True).stdout
    assert f"/opt/p/lib/{library_home(first)}/{LOADER_NAME}" in interp
    digest = hashlib.sha256((first / "lib" / "libc.so.6").read_bytes()).hexdigest()
    assert digest != hashlib.sha256(HOST_LIBC.read_bytes()).hexdigest()  # sealed copy
    assert os.readlink(first / "lib" / library_home(first)) == "."


def test_a_setuid_program_converts_with_its_prefixes_gconv_modules(tmp_path: Path) -> None:
    """A privileged artifact is not scoped (no renamed GCONV_PATH a caller could set): its
    libc's compiled-in gconv dir is PREFIX/lib/gconv instead. Started as nobody at the
    prefix, in secure mode, iconv still finds the bundled KOI8-R module; a caller's
    GCONV_PATH is ignored."""
    from test_debian_programs import PROBE

    need_root()
    program = gcc(tmp_path / "koi", PROBE)
    program.chmod(0o4755)
    artifact = bundle(tmp_path / "koi.tar.zst", program, "--allow-setuid", "--gconv", "KOI8-R")
    with bare_root(tmp_path) as root:
        install(artifact, root, "/opt/koi")
        (root / "evil").mkdir()
        env = {"PATH": ROOT_PATH, "LANG": "C", "GCONV_PATH": "/evil"}
        ran = subprocess.run(["chroot", "--userspec=65534:65534", str(root),
                              "/opt/koi/libexec/koi"], capture_output=True, text=True,
                             env=env, timeout=60)
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout.splitlines()[-1] == "koi8=Привет"

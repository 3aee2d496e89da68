"""The artifact where it matters: an empty root and a Debian 11 (glibc 2.31) root.

Programs are built here with gcc on Debian 12 (glibc 2.36), so unbundled they need
GLIBC_2.34 and cannot start on Debian 11. Bundled, they must run there, and the host
programs they start (`/bin/sh` of that root) must keep working.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from support.cli import assert_one_line_error, run_cli
from support.roots import chroot_run, debian11_root, debian11_tree, empty_root, need_root, unpack
from support.toolchain import gcc

SPAWNER = r"""
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
int main(void) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) { execl("/bin/sh", "sh", "-c", "echo child-ok", (char *)0); _exit(99); }
    int status = 0;
    waitpid(pid, &status, 0);
    printf("parent-ok child-exit=%d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return 0;
}
"""
SELF_EXE = r"""
#include <stdio.h>
#include <unistd.h>
int main(void) {
    char buf[4096]; ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n < 0) { perror("readlink"); return 1; }
    buf[n] = 0; printf("%s\n", buf); return 0;
}
"""


@pytest.fixture(scope="module")
def programs(tmp_path_factory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("programs")
    return {
        "spawner": gcc(work / "spawner", SPAWNER),
        "selfexe": gcc(work / "selfexe", SELF_EXE),
    }


def bundle(program: Path, out: Path, *extra: str) -> Path:
    result = run_cli(str(program), "-o", str(out), *extra)
    assert result.returncode == 0, result.stderr
    return out


def test_runs_in_an_empty_root(tmp_path: Path, programs: dict[str, Path]) -> None:
    need_root()
    spawner = bundle(programs["spawner"], tmp_path / "spawner.tar.zst")
    sqlite = bundle(Path("/usr/bin/sqlite3"), tmp_path / "sqlite3.tar.zst")
    with empty_root(tmp_path) as root:
        unpack(spawner, root / "tmp")
        unpack(sqlite, root / "tmp")
        ran = chroot_run(root, ["/tmp/spawner/bin/spawner"])
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout.splitlines() == ["child-ok", "parent-ok child-exit=0"]
        query = chroot_run(root, ["/tmp/sqlite3/bin/sqlite3"], stdin="select 40+2;\n")
        assert (query.returncode, query.stdout.strip()) == (0, "42"), query.stderr


def test_debian11_runs_the_bundle_and_its_host_children(tmp_path: Path,
                                                         programs: dict[str, Path]) -> None:
    need_root()
    artifact = bundle(programs["spawner"], tmp_path / "spawner.tar.zst")
    with debian11_root(tmp_path) as root:
        (root / "tmp" / "plain").mkdir()
        (root / "tmp" / "plain" / "spawner").write_bytes(programs["spawner"].read_bytes())
        (root / "tmp" / "plain" / "spawner").chmod(0o755)
        unbundled = chroot_run(root, ["/tmp/plain/spawner"])
        assert unbundled.returncode != 0
        assert "GLIBC_2.34' not found" in unbundled.stderr
        unpack(artifact, root / "tmp")
        ran = chroot_run(root, ["/tmp/spawner/bin/spawner"])
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout.splitlines() == ["child-ok", "parent-ok child-exit=0"]


def test_debian11_env_launcher_breaks_host_children(tmp_path: Path,
                                                    programs: dict[str, Path]) -> None:
    """What the `env` launcher does to the child: the documented reason it is not default.

    The child /bin/sh is dynamically linked against Debian 11's glibc 2.31; started by
    the kernel it gets the host's ld.so, which then loads the bundle's libc.so.6 (2.36)
    through the inherited LD_LIBRARY_PATH. The pair does not fit, and the child dies.
    """
    need_root()
    artifact = bundle(programs["spawner"], tmp_path / "spawner.tar.zst", "--launcher", "env")
    with debian11_root(tmp_path) as root:
        unpack(artifact, root / "tmp")
        ran = chroot_run(root, ["/tmp/spawner/bin/spawner"])
        assert ran.returncode == 0, ran.stderr  # the bundled program itself runs
        assert "child-ok" not in ran.stdout
        assert "parent-ok child-exit=0" not in ran.stdout
        assert "GLIBC_PRIVATE" in ran.stderr or "not found" in ran.stderr, ran.stderr


def test_debian11_sqlite3_from_debian12(tmp_path: Path) -> None:
    need_root()
    artifact = bundle(Path("/usr/bin/sqlite3"), tmp_path / "sqlite3.tar.gz")
    with debian11_root(tmp_path) as root:
        assert not (root / "usr/lib/x86_64-linux-gnu/libsqlite3.so.0").exists()
        unpack(artifact, root / "opt" / "elsewhere")
        query = chroot_run(root, ["/opt/elsewhere/sqlite3/bin/sqlite3", ":memory:"],
                           stdin="create table t(x); insert into t values (6*7);\n"
                                 "select x from t;\n")
        assert (query.returncode, query.stdout.strip()) == (0, "42"), query.stderr


def test_at_prefix_proc_self_exe_is_the_program(tmp_path: Path,
                                                programs: dict[str, Path]) -> None:
    """Installed at PREFIX the launcher execs the program itself; elsewhere the loader."""
    need_root()
    artifact = bundle(programs["selfexe"], tmp_path / "selfexe.tar.zst")
    with debian11_root(tmp_path) as root:
        unpack(artifact, root / "opt" / "selfexe", strip=True)
        via_launcher = chroot_run(root, ["/opt/selfexe/bin/selfexe"])
        assert via_launcher.returncode == 0, via_launcher.stderr
        assert via_launcher.stdout.strip() == "/opt/selfexe/libexec/selfexe"
        direct = chroot_run(root, ["/opt/selfexe/libexec/selfexe"])  # systemd ExecStart
        assert direct.stdout.strip() == "/opt/selfexe/libexec/selfexe", direct.stderr
        (root / "usr/local/bin/selfexe").symlink_to("/opt/selfexe/bin/selfexe")
        linked = chroot_run(root, ["selfexe"])
        assert linked.stdout.strip() == "/opt/selfexe/libexec/selfexe", linked.stderr

        unpack(artifact, root / "srv" / "other place")
        moved = chroot_run(root, ["/srv/other place/selfexe/bin/selfexe"])
        assert moved.returncode == 0, moved.stderr
        # Started through the bundled loader, /proc/self/exe names the loader.
        assert moved.stdout.strip() == "/srv/other place/selfexe/lib/ld-linux-x86-64.so.2"


def test_bundle_from_an_old_sysroot_runs_on_this_host(tmp_path: Path) -> None:
    """--sysroot with Debian 11: glibc 2.31 is bundled, and its loader has no --argv0."""
    tree = debian11_tree()
    artifact = bundle(tree / "usr/bin/ls", tmp_path / "ls.tar.gz", "--sysroot", str(tree),
                      "--launcher-type", "sh")  # its text is read below
    top = unpack(artifact, tmp_path / "u") / "ls"
    manifest = json.loads((top / ".bundle" / "manifest.json").read_text())
    assert manifest["glibc"] == "2.31"
    # The root's files, named as the root has them (not where this host keeps it).
    sources = [f["source"] for f in manifest["files"] if f.get("source")]
    assert sources and all(os.path.isfile(f"{tree}{source}") for source in sources)
    launcher = (top / "bin" / "ls").read_text()
    assert "--argv0" not in launcher
    ran = subprocess.run([str(top / "bin" / "ls"), "--version"], capture_output=True,
                         text=True)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith("ls (GNU coreutils) 8.32")  # Debian 11's, not this host's


CANCEL = r"""
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
static void *sleeper(void *arg) { (void)arg; for (;;) pause(); return 0; }
int main(void) {
    pthread_t t; void *result;
    pthread_create(&t, 0, sleeper, 0);
    usleep(10000);
    pthread_cancel(t);
    pthread_join(t, &result);
    puts(result == PTHREAD_CANCELED ? "cancelled" : "not cancelled");
    return 0;
}
"""


def test_pthread_cancel_gets_libgcc_s(tmp_path: Path) -> None:
    """glibc dlopens libgcc_s.so.1 to cancel a thread; a root without it aborts the program."""
    need_root()
    program = gcc(tmp_path / "cancel", CANCEL)
    artifact = bundle(program, tmp_path / "cancel.tar.zst")
    with empty_root(tmp_path) as root:
        top = unpack(artifact, root / "tmp") / "cancel"
        manifest = json.loads((top / ".bundle" / "manifest.json").read_text())
        (record,) = [f for f in manifest["files"] if f["path"] == "lib/libgcc_s.so.1"]
        assert record["kind"] == "library"
        ran = chroot_run(root, ["/tmp/cancel/bin/cancel"])
        assert (ran.returncode, ran.stdout) == (0, "cancelled\n"), ran.stderr
        (top / "lib" / "libgcc_s.so.1").unlink()  # what the bundle would be without it
        broken = chroot_run(root, ["/tmp/cancel/bin/cancel"])
        assert broken.returncode != 0
        assert "libgcc_s.so.1 must be installed for pthread_cancel to work" in broken.stderr


def test_programs_without_threads_get_no_libgcc_s(tmp_path: Path, programs) -> None:
    artifact = bundle(programs["selfexe"], tmp_path / "selfexe.tar")
    top = unpack(artifact, tmp_path / "u") / "selfexe"
    assert not (top / "lib" / "libgcc_s.so.1").exists()


EUID = r"""
#include <stdio.h>
#include <unistd.h>
int main(void) { printf("uid=%d euid=%d\n", (int)getuid(), (int)geteuid()); return 0; }
"""


def test_setuid_is_refused_unless_allowed_and_then_kept_at_the_prefix(tmp_path: Path) -> None:
    need_root()
    program = gcc(tmp_path / "whoami", EUID)
    program.chmod(0o4755)
    refused = run_cli(str(program), "-o", str(tmp_path / "refused.tar.zst"))
    assert_one_line_error(refused, 2, "setuid", "--allow-setuid")
    assert not (tmp_path / "refused.tar.zst").exists()
    artifact = bundle(program, tmp_path / "whoami.tar.zst", "--allow-setuid")
    with empty_root(tmp_path) as root:
        top = unpack(artifact, root / "opt" / "whoami", strip=True)
        assert (top / "libexec" / "whoami").stat().st_mode & 0o4000
        # Started directly at the prefix by an unprivileged user: the privilege holds,
        # and secure mode still finds the bundled libc through the absolute DT_RPATH.
        ran = subprocess.run(["chroot", "--userspec=65534:65534", str(root),
                              "/opt/whoami/bin/whoami"], capture_output=True, text=True)
        assert (ran.returncode, ran.stdout) == (0, "uid=65534 euid=0\n"), ran.stderr


def test_excluded_library_comes_from_the_host(tmp_path: Path) -> None:
    """--exclude libz: the artifact runs where the host has libz (Debian 11), not elsewhere."""
    need_root()
    program = gcc(tmp_path / "zver", '#include <stdio.h>\n#include <zlib.h>\n'
                  'int main(void){puts(zlibVersion()); return 0;}\n', "-lz")
    artifact = bundle(program, tmp_path / "zver.tar.zst", "--exclude", "libz.so*")
    top = unpack(artifact, tmp_path / "u") / "zver"
    manifest = json.loads((top / ".bundle" / "manifest.json").read_text())
    assert manifest["excluded"] == ["libz.so.1"]
    assert not (top / "lib" / "libz.so.1").exists()
    with debian11_root(tmp_path) as root:
        unpack(artifact, root / "tmp")
        ran = chroot_run(root, ["/tmp/zver/bin/zver"])
        assert (ran.returncode, ran.stdout) == (0, "1.2.11\n"), ran.stderr  # Debian 11's zlib
    with empty_root(tmp_path / "bare") as root:
        unpack(artifact, root / "tmp")
        ran = chroot_run(root, ["/tmp/zver/bin/zver"])
        assert ran.returncode != 0 and "libz.so.1" in ran.stderr


LOADS_PLUGIN = r"""
#include <dlfcn.h>
#include <stdio.h>
int main(void) {
    void *plugin = dlopen("libplug.so", RTLD_NOW);
    if (!plugin) { printf("dlopen failed: %s\n", dlerror()); return 1; }
    int (*answer)(void) = (int (*)(void))dlsym(plugin, "answer");
    printf("plugin says %d\n", answer());
    return 0;
}
"""


def test_added_plugin_and_its_dependency_are_bundled(tmp_path: Path) -> None:
    """--add: a dlopen'd plugin is not DT_NEEDED; it and what it needs go into lib/."""
    need_root()
    helper = gcc(tmp_path / "deps" / "libhelper.so.1", "int helper(void){return 42;}\n",
                 "-Wl,-soname,libhelper.so.1", shared=True)
    plugin = gcc(tmp_path / "plug" / "libplug.so", "int helper(void);\n"
                 "int answer(void){return helper();}\n", str(helper),
                 f"-Wl,-rpath,{helper.parent}", shared=True)
    program = gcc(tmp_path / "host", LOADS_PLUGIN)
    with_plugin = bundle(program, tmp_path / "with.tar.zst", "--add", str(plugin))
    without = bundle(program, tmp_path / "without.tar.zst")
    with empty_root(tmp_path) as root:
        top = unpack(with_plugin, root / "tmp" / "with") / "host"
        assert (top / "lib" / "libplug.so").is_file()
        assert (top / "lib" / "libhelper.so.1").is_file()
        ran = chroot_run(root, ["/tmp/with/host/bin/host"])
        assert (ran.returncode, ran.stdout) == (0, "plugin says 42\n"), ran.stderr
        unpack(without, root / "tmp" / "without")
        failed = chroot_run(root, ["/tmp/without/host/bin/host"])
        assert failed.returncode == 1 and "libplug.so" in failed.stdout


def test_add_refuses_programs(tmp_path: Path, programs) -> None:
    refused = run_cli(str(programs["selfexe"]), "-o", str(tmp_path / "x.tar.zst"),
                      "--add", str(programs["spawner"]))
    assert_one_line_error(refused, 2, "--add", "not a shared object")


def test_nss_modules_follow_nsswitch_and_the_choice(tmp_path: Path) -> None:
    """--nss: `passwd: compat` needs libnss_compat.so.2, which is not built into libc."""
    need_root()
    getent = Path("/usr/bin/getent")
    auto = bundle(getent, tmp_path / "auto.tar.zst")
    compat = bundle(getent, tmp_path / "compat.tar.zst", "--nss", "compat")
    none = bundle(getent, tmp_path / "none.tar.zst", "--nss", "none")
    listed = {p.name for p in (unpack(compat, tmp_path / "c") / "getent" / "lib").iterdir()}
    assert "libnss_compat.so.2" in listed
    assert not any(n.startswith("libnss_") for n in
                   (p.name for p in (unpack(none, tmp_path / "n") / "getent" / "lib").iterdir()))
    native = subprocess.run([str(getent), "passwd", "root"], capture_output=True, text=True)
    with debian11_root(tmp_path) as root:
        unpack(auto, root / "tmp")
        ran = chroot_run(root, ["/tmp/getent/bin/getent", "passwd", "root"])
        assert (ran.returncode, ran.stdout) == (0, native.stdout), ran.stderr
    with empty_root(tmp_path / "bare") as root:
        (root / "etc").mkdir()
        (root / "etc" / "nsswitch.conf").write_text("passwd: compat\n")
        (root / "etc" / "passwd").write_text("alice:x:1000:1000::/home/alice:/bin/sh\n")
        for artifact, name in ((compat, "compat"), (none, "none")):
            unpack(artifact, root / "tmp" / name)
        found = chroot_run(root, ["/tmp/compat/getent/bin/getent", "passwd", "alice"])
        assert (found.returncode, found.stdout) == (
            0, "alice:x:1000:1000::/home/alice:/bin/sh\n"), found.stderr
        missing = chroot_run(root, ["/tmp/none/getent/bin/getent", "passwd", "alice"])
        assert missing.returncode == 2 and missing.stdout == ""  # getent: key not found


def test_nss_modules_not_in_the_build_root_are_reported(tmp_path: Path) -> None:
    artifact = bundle(Path("/usr/bin/getent"), tmp_path / "g.tar.zst", "--nss", "compat,nosuch")
    top = unpack(artifact, tmp_path / "u") / "getent"
    manifest = json.loads((top / ".bundle" / "manifest.json").read_text())
    assert manifest["runtime_missing"] == ["libnss_nosuch.so.2"]
    report = (top / ".bundle" / "report.md").read_text()
    assert ("not in the build root, or a library it needs is not, so not bundled: "
            "libnss_nosuch.so.2") in report
    assert "libnss_compat.so.2 bundled" in report


def test_gconv_modules_for_iconv(tmp_path: Path) -> None:
    """--gconv KOI8-R: Debian 12's iconv converts KOI8-R in a bare root, as natively."""
    need_root()
    iconv = Path("/usr/bin/iconv")
    koi8 = b"\xf0\xd2\xc9\xd7\xc5\xd4\n"
    native = subprocess.run([str(iconv), "-f", "KOI8-R", "-t", "UTF-8"], input=koi8,
                            capture_output=True)
    assert native.stdout == "Привет\n".encode()
    with_modules = bundle(iconv, tmp_path / "with.tar.zst", "--gconv", "KOI8-R")
    without = bundle(iconv, tmp_path / "without.tar.zst")
    with empty_root(tmp_path) as root:
        unpack(with_modules, root / "tmp" / "with")
        unpack(without, root / "tmp" / "without")
        top = root / "tmp" / "with" / "iconv"
        assert sorted(p.name for p in (top / "lib" / "gconv").iterdir()) == [
            "KOI8-R.so", "gconv-modules", "gconv-modules.d"]
        env = {"PATH": "/usr/sbin:/usr/bin:/bin"}
        ran = subprocess.run(["chroot", str(root), "/tmp/with/iconv/bin/iconv", "-f", "KOI8-R",
                              "-t", "UTF-8"], input=koi8, capture_output=True, env=env)
        assert (ran.returncode, ran.stdout) == (0, native.stdout), ran.stderr
        failed = subprocess.run(["chroot", str(root), "/tmp/without/iconv/bin/iconv", "-f",
                                 "KOI8-R", "-t", "UTF-8"], input=koi8, capture_output=True,
                                env=env)
        assert failed.returncode != 0 and b"failed to start conversion" in failed.stderr


def test_gconv_refuses_unknown_charsets(tmp_path: Path) -> None:
    refused = run_cli("/usr/bin/iconv", "-o", str(tmp_path / "x.tar.zst"), "--gconv", "NOPE-9")
    assert_one_line_error(refused, 2, "--gconv NOPE-9", "no gconv module")

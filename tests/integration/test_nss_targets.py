"""NSS for the hosts an artifact will meet, not the build host (issue 13, item 5).

The bundled glibc reads the TARGET's /etc/nsswitch.conf and can load only the modules the
artifact carries. `--nss auto` therefore bundles every libnss_*.so.2 of the build root;
the plan, manifest and report say per source whether the artifact serves it, serves it
only while a host daemon runs, or cannot serve it; `bundle verify --root` warns about the
sources a root names that fall in the last two groups. Measured before the change: a
Debian 11 root with `passwd: compat` made the Go agent print `user: lookup userid 1234:
invalid argument`, and getent/id found no user at all.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from support.cli import run_cli
from support.gobuild import build_agent
from support.needs import need_tool
from support.roots import chroot_run, debian11_root, debian11_tree, need_root, unpack
from support.toolchain import gcc

from bundler.errors import InputError
from bundler.nss import (
    DAEMON,
    GLIBC_STATIC,
    GO_PURE,
    NO_LOOKUPS,
    NOT_SERVED,
    SERVED,
    chosen_sources,
    coverage,
    installed_sources,
    module_names,
    nsswitch_entries,
    static_kind,
    static_lookups,
    target_warnings,
)
from bundler.sysroot import Sysroot

COMPAT = "passwd: compat\ngroup: compat\nshadow: compat\nhosts: files dns\n"
ALICE_PASSWD = "alice:x:1234:1234:Alice:/home/alice:/bin/sh\n"
ALICE_GROUP = "alice:x:1234:\n"
HOSTS = "127.0.0.1 localhost\n"
HOST_LIBS = (Path("/lib/x86_64-linux-gnu"), Path("/usr/lib/x86_64-linux-gnu"))
DIRECTORY_SOURCES = ("sss", "ldap", "winbind")

LOOKUP = r"""
#include <pwd.h>
#include <stdio.h>
int main(int argc, char **argv) {
    struct passwd *pw = getpwnam(argc > 1 ? argv[1] : "root");
    if (!pw) { puts("unknown user"); return 2; }
    printf("%s %d\n", pw->pw_name, (int)pw->pw_uid);
    return 0;
}
"""
HELLO = '#include <stdio.h>\nint main(void) { puts("hello"); return 0; }\n'
HELPER = r"""
#include <pwd.h>
int helper_uid(const char *name) {
    struct passwd *pw = getpwnam(name);
    return pw ? (int)pw->pw_uid : -1;
}
"""
USES_HELPER = r"""
#include <stdio.h>
int helper_uid(const char *name);
int main(int argc, char **argv) {
    printf("%d\n", helper_uid(argc > 1 ? argv[1] : "root"));
    return 0;
}
"""
# A real NSS module, as a directory client installs one: `diruser` from "the directory".
DIRECTORY_MODULE = r"""
#include <nss.h>
#include <pwd.h>
#include <string.h>
enum nss_status _nss_SOURCE_getpwnam_r(const char *name, struct passwd *pw, char *buf,
                                       size_t len, int *errnop) {
    (void)buf; (void)len; (void)errnop;
    if (strcmp(name, "diruser") != 0) return NSS_STATUS_NOTFOUND;
    pw->pw_name = (char *)"diruser"; pw->pw_passwd = (char *)"x";
    pw->pw_uid = 4242; pw->pw_gid = 4242; pw->pw_gecos = (char *)"From SOURCE";
    pw->pw_dir = (char *)"/home/diruser"; pw->pw_shell = (char *)"/bin/sh";
    return NSS_STATUS_SUCCESS;
}
"""


def host_modules() -> set[str]:
    """The libnss_*.so.2 this build host has, files and dns aside (built into 2.36)."""
    return {p.name for d in HOST_LIBS if d.is_dir() for p in d.glob("libnss_*.so.2")
            if p.name not in ("libnss_files.so.2", "libnss_dns.so.2")}


def need_no_directory_modules() -> None:
    present = [s for s in DIRECTORY_SOURCES if f"libnss_{s}.so.2" in host_modules()]
    if present:
        pytest.skip(f"this build host has {', '.join(present)}: they would be bundled")


def directory_module(directory: Path, source: str) -> Path:
    """libnss_SOURCE.so.2 answering for `diruser` (uid 4242), built with gcc."""
    return gcc(directory / f"libnss_{source}.so.2", DIRECTORY_MODULE.replace("SOURCE", source),
               f"-Wl,-soname,libnss_{source}.so.2", shared=True)


def bundle(*args: str) -> None:
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr


def manifest_of(top: Path) -> dict:
    return json.loads((top / ".bundle" / "manifest.json").read_text())


def libnss_in(top: Path) -> set[str]:
    return {p.name for p in (top / "lib").rglob("libnss_*.so.2")}


# --- the pure decisions -------------------------------------------------------------------


def test_auto_takes_every_module_of_the_root_and_those_named() -> None:
    named, installed = ("files", "systemd", "sss"), ("compat", "dns", "files", "hesiod", "systemd")
    assert chosen_sources("auto", named, installed, (2, 36), True) == (
        "systemd", "sss", "compat", "hesiod")
    assert chosen_sources("auto", named, installed, (2, 31), True) == (
        "files", "systemd", "sss", "compat", "dns", "hesiod")
    assert chosen_sources("auto", named, installed, (2, 36), False) == ()
    assert chosen_sources("none", named, installed, (2, 36), True) == ()
    assert chosen_sources("compat,sss,compat,files", (), (), (2, 36), False) == ("compat", "sss")
    with pytest.raises(InputError, match=r"not a service name: \.\./x"):
        chosen_sources("compat,../x", (), (), (2, 36), True)


def test_every_source_gets_one_fact() -> None:
    modules = ["libnss_compat.so.2", "libnss_sss.so.2", "libnss_mdns4.so.2",
               "libnss_extrausers.so.2", "libnss3.so"]
    cover = coverage(True, modules, "2.36", (2, 36))
    states = {f.source: (f.state, f.daemon) for f in cover.facts}
    assert states["files"] == states["dns"] == (SERVED, None)
    assert "built into glibc 2.36" in cover.fact("files").how
    assert states["compat"] == (SERVED, None)
    assert states["extrausers"] == (SERVED, None)  # bundled, no daemon known
    assert states["sss"] == (DAEMON, "sssd")
    assert states["mdns4"] == (DAEMON, "avahi-daemon")  # the mdns family
    assert states["ldap"][0] == states["winbind"][0] == states["myhostname"][0] == NOT_SERVED
    assert "libnss-ldapd" in cover.fact("ldap").how
    assert cover.fact("nosuch").state == NOT_SERVED  # a source no list names
    assert cover.modules == ("libnss_compat.so.2", "libnss_extrausers.so.2",
                             "libnss_mdns4.so.2", "libnss_sss.so.2")
    recorded = cover.manifest()
    assert recorded.used is True
    assert {"files", "dns", "compat", "extrausers"} <= set(recorded.served)
    assert dict(recorded.daemon) == {"sss": "sssd", "mdns4": "avahi-daemon"}
    assert {"ldap", "winbind", "myhostname"} <= set(recorded.not_served)
    old = coverage(True, [], "2.31", (2, 31))  # before 2.34 files needs its module too
    assert old.fact("files").state == old.fact("dns").state == NOT_SERVED


def test_target_warnings_name_what_cannot_be_served() -> None:
    cover = coverage(True, ["libnss_compat.so.2", "libnss_systemd.so.2"], "2.36", (2, 36))
    text = ("passwd: compat sss systemd\ngroup: files [NOTFOUND=return] sss\n"
            "hosts: files mdns4_minimal [NOTFOUND=return] dns\nnetgroup: ldap # directory\n")
    assert nsswitch_entries(text)[1] == ("group", ("files", "sss"))
    warnings = target_warnings(cover, text, "/srv/t/etc/nsswitch.conf")
    assert len(warnings) == 4, warnings
    sss, systemd, mdns, ldap = warnings
    assert sss.startswith("warning: /srv/t/etc/nsswitch.conf names NSS source sss "
                          "(passwd, group): the artifact cannot serve it")
    assert "libnss-sss" in sss and "the next source answers" in sss
    assert "served by the bundled module only while systemd-userdbd (and PID 1) runs" in systemd
    assert "mdns4_minimal (hosts)" in mdns and "cannot serve" in mdns
    assert "ldap (netgroup)" in ldap and "cannot serve" in ldap
    unused = coverage(False, [], "2.36", (2, 36))
    assert target_warnings(unused, text, "x") == ()  # no lookups: nothing to warn about
    assert target_warnings(cover, "passwd: files compat\n", "x") == ()
    # A source the target has no module for fails for its own programs too: no warning.
    assert [w.split(" (")[0] for w in target_warnings(cover, text, "t", ("sss", "compat"))] == [
        "warning: t names NSS source sss", "warning: t names NSS source systemd"]


def test_modules_are_found_in_the_root_dirs(tmp_path: Path) -> None:
    root = tmp_path / "root"
    libs = root / "lib" / "x86_64-linux-gnu"
    libs.mkdir(parents=True)
    for name in ("libnss_foo.so.2", "libnss_bar-1.0.so", "libnss3.so", "libnss_baz.so",
                 "libnss_files.so.2"):
        (libs / name).write_bytes(b"\x7fELF")
    (libs / "libnss_bar.so.2").symlink_to("libnss_bar-1.0.so")
    (root / "usr").mkdir()
    (root / "usr" / "lib64").symlink_to("/lib/x86_64-linux-gnu")  # re-rooted, not the host's
    (root / "etc").mkdir()
    (root / "etc" / "nsswitch.conf").write_text("passwd: files sss\n")
    sysroot = Sysroot(str(root))
    dirs = ["/usr/lib64", "/lib/x86_64-linux-gnu", "/nonexistent"]
    assert installed_sources(sysroot, dirs) == ("bar", "files", "foo")
    assert module_names("auto", sysroot, (2, 36), True, dirs) == (
        "libnss_sss.so.2", "libnss_bar.so.2", "libnss_foo.so.2")
    assert module_names("auto", sysroot, (2, 36), False, dirs) == ()


def test_static_builds_look_up_in_their_own_ways() -> None:
    assert static_kind(go_runtime=True, nss_callers=False) == GO_PURE
    assert static_kind(go_runtime=True, nss_callers=True) == GLIBC_STATIC
    assert static_kind(go_runtime=False, nss_callers=False) == NO_LOOKUPS
    assert "/etc/passwd, /etc/group, /etc/hosts and DNS" in static_lookups(GO_PURE)
    assert "unknown user" in static_lookups(GO_PURE)
    assert "target's glibc is the build's" in static_lookups(GLIBC_STATIC)


# --- builds: what the plan, manifest and report say ----------------------------------------


def test_build_records_which_sources_are_served(tmp_path: Path) -> None:
    need_no_directory_modules()
    out = tmp_path / "out"
    bundle("/usr/bin/getent", "-o", f"{out}/", "--report", str(tmp_path / "r.json"))
    top = out / "getent"
    assert libnss_in(top) == host_modules()  # every module of the root, not only nsswitch's
    nss = manifest_of(top)["nss"]
    assert nss["used"] is True
    assert {"files", "dns", "compat"} <= set(nss["served"])
    assert set(DIRECTORY_SOURCES) <= set(nss["not_served"])
    if "libnss_systemd.so.2" in host_modules():
        assert nss["daemon"]["systemd"] == "systemd-userdbd (and PID 1)"
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["artifact"]["nss"]["facts"]
    part = next(p for p in report["artifact"]["runtime_parts"] if p["name"] == "NSS modules")
    assert "served on any target: files (built into glibc" in part["note"]
    assert "cannot serve: " in part["note"] and "sss" in part["note"]
    hazard = next(h for h in report["hazards"] if h["code"] == "dynamic-nss")
    assert "cannot serve" in hazard["action"] and "ldap" in hazard["action"]
    assert "-tags netgo,osusergo" in hazard["action"] and "unknown user" in hazard["action"]
    assert any(r.startswith("for NSS lookups the artifact serves files, dns, compat")
               and "cannot serve" in r and "winbind" in r
               for r in report["verdict"]["reasons"]), report["verdict"]["reasons"]
    text = (top / ".bundle" / "report.md").read_text()
    assert "cannot serve: " in text and "sss" in text


def test_no_lookups_no_modules(tmp_path: Path) -> None:
    hello = gcc(tmp_path / "hello", HELLO)
    out = tmp_path / "out"
    bundle(str(hello), "-o", f"{out}/", "--report", str(tmp_path / "r.txt"))
    top = out / "hello"
    assert libnss_in(top) == set()
    assert manifest_of(top)["nss"]["used"] is False
    assert "no NSS lookups in the program or its libraries" in (tmp_path / "r.txt").read_text()


def test_a_lookup_in_a_library_counts(tmp_path: Path) -> None:
    """glibc looks up for whoever calls: a library's getpwnam needs the modules too."""
    libdir = tmp_path / "libs"
    gcc(libdir / "libhelper.so.1", HELPER, "-Wl,-soname,libhelper.so.1", shared=True)
    (libdir / "libhelper.so").symlink_to("libhelper.so.1")
    program = gcc(tmp_path / "asks", USES_HELPER, f"-L{libdir}", "-lhelper",
                  f"-Wl,-rpath,{libdir}")
    imports = subprocess.run(["nm", "-D", "--undefined-only", str(program)],
                             capture_output=True, text=True, check=True).stdout
    assert "getpwnam" not in imports  # the program itself does no lookup
    out = tmp_path / "out"
    bundle(str(program), "-o", f"{out}/")
    assert "libnss_compat.so.2" in libnss_in(out / "asks")
    assert manifest_of(out / "asks")["nss"]["used"] is True


def test_a_module_with_a_missing_library_is_left_out(tmp_path: Path) -> None:
    """auto takes every module of the root: one whose library is gone (dlopen would fail)
    is left out and reported, and does not stop the build."""
    modules = tmp_path / "modules"
    gcc(modules / "libdep.so.1", "int dep(void) { return 1; }\n", "-Wl,-soname,libdep.so.1",
        shared=True)
    gcc(modules / "libnss_broken.so.2", "int dep(void);\nint _nss_broken_x(void) "
        "{ return dep(); }\n", "-Wl,-soname,libnss_broken.so.2", f"-L{modules}",
        "-l:libdep.so.1", shared=True)
    (modules / "libdep.so.1").unlink()
    out = tmp_path / "out"
    bundle("/usr/bin/getent", "-o", f"{out}/", "--library-path", str(modules))
    manifest = manifest_of(out / "getent")
    assert "libnss_broken.so.2" not in libnss_in(out / "getent")
    assert "libnss_broken.so.2" in manifest["runtime_missing"]
    assert "broken" not in manifest["nss"]["served"] and "libnss_compat.so.2" in libnss_in(
        out / "getent")
    listed = run_cli("--sysroot", "/", "/usr/bin/getent", "-o", f"{tmp_path}/again/",
                     "--library-path", str(modules), "--nss", "broken")
    assert listed.returncode == 0, listed.stderr  # named explicitly: the same, not an error


def test_verdict_against_a_static_glibc_build_names_the_sources(tmp_path: Path) -> None:
    dynamic = gcc(tmp_path / "lookup", LOOKUP)
    static = gcc(tmp_path / "lookup-static", LOOKUP, "-static")
    report = tmp_path / "r.json"
    bundle(str(dynamic), "-o", str(tmp_path / "lookup.tar.zst"), "--static", str(static),
           "--report", str(report))
    data = json.loads(report.read_text())
    assert data["verdict"]["ship"] == "static-after-fixes"
    reasons = data["verdict"]["reasons"]
    until = next(r for r in reasons if r.startswith("until then the artifact"))
    assert "the artifact serves files, dns, compat" in until, until
    assert "it cannot serve" in until and "sss" in until and "ldap" in until
    assert "safe choice" not in " ".join(reasons)
    text = run_cli("compare", str(tmp_path / "lookup.tar.zst"), str(static)).stdout
    assert "NSS lookups" in text and "static glibc: files and dns are built in" in text


def test_go_verdict_says_what_each_build_serves(tmp_path: Path) -> None:
    """Against a netgo/osusergo static build: the verdict names the artifact's sources and
    what the static build does instead (its own /etc/passwd and DNS, nothing else)."""
    agent = tmp_path / "myagent"
    shutil.copyfile(build_agent("dynamic"), agent)
    agent.chmod(0o755)
    report = tmp_path / "r.json"
    bundle(str(agent), "-o", str(tmp_path / "myagent.tar.zst"), "--static",
           str(build_agent("static-tags")), "--report", str(report))
    data = json.loads(report.read_text())
    reasons = data["verdict"]["reasons"]
    assert any("for NSS lookups the artifact serves files, dns, compat" in r for r in reasons)
    static = next(r for r in reasons if r.startswith("NSS in the static build: "))
    assert "reads only /etc/passwd, /etc/group, /etc/hosts and DNS" in static
    assert "unknown user" in static
    assert "safe choice" not in " ".join(reasons)


# --- on a target: a Debian 11 root ----------------------------------------------------------


def compat_root(root: Path) -> None:
    (root / "etc" / "nsswitch.conf").write_text(COMPAT)
    with open(root / "etc" / "passwd", "a") as passwd:
        passwd.write(ALICE_PASSWD)
    with open(root / "etc" / "group", "a") as group:
        group.write(ALICE_GROUP)
    (root / "etc" / "hosts").write_text(HOSTS)


def test_compat_users_are_found_on_debian11(tmp_path: Path) -> None:
    """Debian 12's getent and id, bundled by default, look users up through `compat` in a
    Debian 11 root; bundled without modules (--nss none) they cannot."""
    need_root()
    auto, none = tmp_path / "auto.tar.zst", tmp_path / "none.tar.zst"
    bundle("/usr/bin/getent", "/usr/bin/id", "--name", "users", "-o", str(auto))
    bundle("/usr/bin/getent", "--name", "bare", "--nss", "none", "-o", str(none))
    with debian11_root(tmp_path) as root:
        compat_root(root)
        unpack(auto, root / "opt" / "users", strip=True)
        unpack(none, root / "opt" / "bare", strip=True)
        by_uid = chroot_run(root, ["/opt/users/bin/getent", "passwd", "1234"])
        assert (by_uid.returncode, by_uid.stdout) == (0, ALICE_PASSWD), by_uid.stderr
        group = chroot_run(root, ["/opt/users/bin/getent", "group", "alice"])
        assert (group.returncode, group.stdout) == (0, ALICE_GROUP), group.stderr
        ident = chroot_run(root, ["/opt/users/bin/id", "alice"])
        assert (ident.returncode, ident.stdout) == (
            0, "uid=1234(alice) gid=1234(alice) groups=1234(alice)\n"), ident.stderr
        missing = chroot_run(root, ["/opt/bare/bin/getent", "passwd", "1234"])
        assert (missing.returncode, missing.stdout) == (2, "")  # getent: key not found


def test_go_agent_finds_its_compat_user_on_debian11(tmp_path: Path) -> None:
    """The measured failure: the cgo os/user lookup of uid 1234 through `compat`."""
    need_root()
    chroot = need_tool("chroot")  # run as alice (uid 1234): user.Current() asks for her
    agent = tmp_path / "build" / "myagent"
    agent.parent.mkdir()
    shutil.copyfile(build_agent("dynamic"), agent)
    agent.chmod(0o755)
    auto, none = tmp_path / "auto.tar.zst", tmp_path / "none.tar.zst"
    bundle(str(agent), "-o", str(auto))
    bundle(str(agent), "--nss", "none", "-o", str(none))
    with debian11_root(tmp_path) as root:
        compat_root(root)
        outputs = {}
        for artifact in (auto, none):
            shutil.rmtree(root / "opt" / "myagent", ignore_errors=True)
            unpack(artifact, root / "opt" / "myagent", strip=True)
            ran = subprocess.run([chroot, "--userspec=1234:1234", str(root),
                                  "/opt/myagent/bin/myagent"], capture_output=True, text=True,
                                 env={"PATH": "/usr/bin:/bin", "HOME": "/home/alice"},
                                 timeout=60)
            assert ran.returncode == 0, ran.stdout + ran.stderr
            outputs[artifact.name] = ran.stdout.splitlines()
    assert outputs["auto.tar.zst"][2] == "user: alice", outputs
    assert outputs["none.tar.zst"][2] != "user: alice", outputs  # the test can fail


def directory_root(tmp_path: Path, nsswitch: str) -> Path:
    """A copy of the Debian 11 tree (verify shows it read-only) with this nsswitch.conf."""
    tree = tmp_path / "target"
    subprocess.run(["cp", "-a", "--reflink=auto", str(debian11_tree()), str(tree)], check=True)
    (tree / "etc" / "nsswitch.conf").write_text(nsswitch)
    return tree


def test_sss_and_ldap_are_reported_and_verify_warns(tmp_path: Path) -> None:
    need_root()
    need_no_directory_modules()
    tree = directory_root(tmp_path, "passwd: files sss\ngroup: files sss\nshadow: files\n"
                                    "hosts: files dns\nnetgroup: ldap\nprotocols: db files\n")
    for source in ("sss", "ldap"):  # the target's own directory clients (db: not installed)
        directory_module(tree / "lib" / "x86_64-linux-gnu", source)
    artifact = tmp_path / "getent.tar.zst"
    bundle("/usr/bin/getent", "-o", str(artifact), "--report", str(tmp_path / "r.txt"))
    report = (tmp_path / "r.txt").read_text()
    assert "cannot serve: " in report
    cannot = report.split("cannot serve: ", 1)[1].split(" (", 1)[0].split(", ")
    assert {"sss", "ldap", "winbind"} <= set(cannot), cannot
    ran = run_cli("verify", str(artifact), "--root", str(tree), "--", "passwd", "root")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    warnings = [line.strip() for line in ran.stdout.splitlines() if "warning:" in line]
    conf = f"{tree}/etc/nsswitch.conf"
    assert len(warnings) == 2, ran.stdout
    assert warnings[0].startswith(f"note       warning: {conf} names NSS source sss "
                                  "(passwd, group): the artifact cannot serve it")
    assert warnings[1].startswith(f"note       warning: {conf} names NSS source ldap "
                                  "(netgroup): the artifact cannot serve it")
    # What the warning means: the target's own libnss_sss.so.2 (one that would even fit the
    # bundled glibc) is never loaded by the sealed artifact, so `diruser` is not found.
    unserved = run_cli("verify", str(artifact), "--root", str(tree), "--expect-exit", "2",
                       "--", "passwd", "diruser")
    assert "verify: PASS (2 of 2 runs passed)" in unserved.stdout, unserved.stdout
    hello = gcc(tmp_path / "hello", HELLO)
    quiet = tmp_path / "hello.tar.zst"
    bundle(str(hello), "-o", str(quiet))
    plain = run_cli("verify", str(quiet), "--root", str(tree))
    assert plain.returncode == 0 and "warning:" not in plain.stdout, plain.stdout


def test_a_module_of_the_build_root_serves_the_target(tmp_path: Path) -> None:
    """A directory client's module where the build looks for libraries is bundled by
    default and answers on Debian 11; verify names the daemon it would need."""
    need_root()
    modules = tmp_path / "modules"
    directory_module(modules, "ldap")
    artifact = tmp_path / "getent.tar.zst"
    bundle("/usr/bin/getent", "-o", str(artifact), "--library-path", str(modules))
    top = unpack(artifact, tmp_path / "unpacked") / "getent"
    assert "libnss_ldap.so.2" in libnss_in(top)
    assert manifest_of(top)["nss"]["daemon"]["ldap"] == "nslcd"
    nsswitch = "passwd: files ldap\ngroup: files\nhosts: files dns\n"
    with debian11_root(tmp_path) as root:
        (root / "etc" / "nsswitch.conf").write_text(nsswitch)
        unpack(artifact, root / "opt" / "getent", strip=True)
        found = chroot_run(root, ["/opt/getent/bin/getent", "passwd", "diruser"])
        assert (found.returncode, found.stdout) == (
            0, "diruser:x:4242:4242:From ldap:/home/diruser:/bin/sh\n"), found.stderr
    tree = directory_root(tmp_path, nsswitch)
    ran = run_cli("verify", str(artifact), "--root", str(tree), "--", "passwd", "diruser")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert (f"warning: {tree}/etc/nsswitch.conf names NSS source ldap (passwd): served by "
            "the bundled module only while nslcd runs there") in ran.stdout

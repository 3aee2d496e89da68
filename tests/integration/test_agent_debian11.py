"""The dynamic Go CGO agent, built on Debian 12, bundled and run on Debian 11 (glibc 2.31).

Unbundled it cannot start there (no libsqlite3, GLIBC_2.34). Bundled and installed at its
prefix, everything it does through the bundled glibc works: SQLite, the `localhost` lookup
(NSS files, built into glibc >= 2.34), the user lookup, and os.Executable.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from support.cli import run_cli
from support.gobuild import build_agent
from support.roots import chroot_run, debian11_root, empty_root, need_root, unpack

# debootstrap leaves no /etc/hosts; every real system has one.
HOSTS = "127.0.0.1 localhost\n::1 localhost\n"
EXPECTED = ["sqlite: hello", "lookup: ok 127.0.0.1", "user: root",
            "exe: /opt/myagent/libexec/myagent"]


def bundled_agent(tmp_path: Path) -> tuple[Path, Path]:
    """The dynamic agent, named `myagent`, and its artifact."""
    agent = tmp_path / "build" / "myagent"
    agent.parent.mkdir()
    shutil.copyfile(build_agent("dynamic"), agent)
    agent.chmod(0o755)
    artifact = tmp_path / "myagent.tar.zst"
    result = run_cli(str(agent), "-o", str(artifact))
    assert result.returncode == 0, result.stderr
    return agent, artifact


def test_bundled_agent_runs_on_debian11(tmp_path: Path) -> None:
    need_root()
    agent, artifact = bundled_agent(tmp_path)

    with debian11_root(tmp_path) as root:
        (root / "etc" / "hosts").write_text(HOSTS)
        (root / "tmp" / "plain").mkdir()
        shutil.copy2(agent, root / "tmp" / "plain" / "myagent")
        unbundled = chroot_run(root, ["/tmp/plain/myagent"])
        assert unbundled.returncode != 0
        assert ("libsqlite3.so.0" in unbundled.stderr
                or "GLIBC_2.34' not found" in unbundled.stderr), unbundled.stderr

        unpack(artifact, root / "opt" / "myagent", strip=True)
        version = chroot_run(root, ["/opt/myagent/bin/myagent", "--version"])
        assert (version.returncode, version.stdout) == (0, "myagent 1.0\n"), version.stderr
        ran = chroot_run(root, ["/opt/myagent/bin/myagent"])
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert ran.stdout.splitlines() == EXPECTED, ran.stderr
        # Go picks its own resolver for this nsswitch.conf; forced to cgo, the lookup goes
        # through the bundled glibc's getaddrinfo and NSS files (::1 sorts first there).
        cgo = chroot_run(root, ["/opt/myagent/bin/myagent"], env={"GODEBUG": "netdns=cgo"})
        assert cgo.returncode == 0, cgo.stdout + cgo.stderr
        assert cgo.stdout.splitlines()[1] in ("lookup: ok ::1", "lookup: ok 127.0.0.1")


def test_bundled_agent_runs_in_an_empty_root_without_dev(tmp_path: Path) -> None:
    """What scripts/demo shows: no libc, no /dev; at the prefix the program is exec'd itself
    (the launcher once needed /dev/null for that and fell back to the loader start)."""
    need_root()
    _, artifact = bundled_agent(tmp_path)
    with empty_root(tmp_path) as root:
        assert not (root / "dev").exists()
        (root / "etc").mkdir()
        (root / "etc" / "hosts").write_text(HOSTS)
        (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
        unpack(artifact, root / "opt" / "myagent", strip=True)
        ran = chroot_run(root, ["/opt/myagent/bin/myagent"])
        assert (ran.returncode, ran.stderr) == (0, "")
        assert ran.stdout.splitlines() == EXPECTED

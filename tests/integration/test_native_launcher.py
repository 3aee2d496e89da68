"""bin/NAME as a static native launcher, and the sh launcher it replaces where no compiler is.

Real builds through the command line, real runs: on this host (at the prefix and
elsewhere), in a root without /bin/sh (with and without /proc), in the Debian 11 root,
under qemu-aarch64-static, and as i386 (gcc -m32). The program prints its argv[0] and
/proc/self/exe, which is what the launcher is for: argv[0] exactly as the caller gave it
(a symlink's own name) and, at the prefix, /proc/self/exe naming the program.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.cli import assert_one_line_error, run_cli
from support.files import sha256
from support.needs import need, need_tool
from support.roots import chroot_run, debian11_root, debian11_tree, mounted_proc, need_root, unpack
from support.toolchain import gcc

from bundler import native_launcher
from bundler.elf import read_elf
from bundler.errors import EnvironmentUnfitError
from bundler.plan import BundlePlan, EnvSetting

PROBE = r"""
#include <stdio.h>
#include <unistd.h>
int main(int argc, char **argv) {
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n < 0 ? 0 : n] = 0;
    printf("argv0=%s\nexe=%s\n", argc ? argv[0] : "(none)", n < 0 ? "(no /proc)" : exe);
    for (int i = 1; i < argc; i++) printf("arg=%s\n", argv[i]);
    return 0;
}
"""
ENVIRON = r"""
#include <stdio.h>
extern char **environ;
int main(void) { for (char **e = environ; *e; e++) printf("%s\n", *e); return 0; }
"""
LOADER = "ld-linux-x86-64.so.2"
TYPES = ("native", "sh")
CROSS_SYSROOT = Path("/usr/aarch64-linux-gnu")
FAKE_TOOLS = ("readlink", "cc", "dirname", "realpath", "probe", "ld-linux-x86-64.so.2")


def expected(argv0: str, exe: str, *args: str) -> str:
    return f"argv0={argv0}\nexe={exe}\n" + "".join(f"arg={a}\n" for a in args)


def run(argv: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
        ) -> subprocess.CompletedProcess[str]:
    base = {"PATH": "/usr/bin:/bin", "HOME": "/root", "LANG": "C"}
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=cwd,
                          env=env if env is not None else base)


def bundle(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = run_cli(*args, env=env)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result


def install(artifact: Path, prefix: Path) -> Path:
    """Installed as the summary says: the top's content at `prefix`."""
    return unpack(artifact, prefix, strip=True)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("native")


@pytest.fixture(scope="module")
def probe(work: Path) -> Path:
    return gcc(work / "src" / "probe", PROBE)


@functools.cache
def _built(work: Path, probe: Path, kind: str) -> Path:
    out = work / f"probe-{kind}.tar.gz"
    bundle(str(probe), "-o", str(out), "--launcher-type", kind, "--prefix",
           str(prefix_of(work, kind)))
    return out


def prefix_of(work: Path, kind: str) -> Path:
    return work / f"prefix-{kind}" / "opt" / "probe"


@pytest.fixture(scope="module", params=TYPES)
def kind(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def artifact(work: Path, probe: Path, kind: str) -> Path:
    return _built(work, probe, kind)


@pytest.fixture(scope="module")
def installed(work: Path, artifact: Path, kind: str) -> Path:
    """The artifact installed at its prefix on this host."""
    return install(artifact, prefix_of(work, kind))


@pytest.fixture(scope="module")
def elsewhere(work: Path, artifact: Path, kind: str) -> Path:
    return unpack(artifact, work / f"elsewhere-{kind}" / "some dir") / "probe"


# --- what was built -----------------------------------------------------------------------


def test_the_launcher_type_is_recorded(elsewhere: Path, kind: str) -> None:
    launcher = elsewhere / "bin" / "probe"
    data = launcher.read_bytes()
    manifest = json.loads((elsewhere / ".bundle" / "manifest.json").read_text())
    assert manifest["launcher_type"] == kind
    report = (elsewhere / ".bundle" / "report.md").read_text()
    if kind == "native":
        assert data.startswith(b"\x7fELF")
        facts = read_elf(str(launcher))
        assert facts.is_static and facts.interpreter is None and not facts.needed
        assert (facts.ident.machine, facts.ident.elf_class) == ("EM_X86_64", 64)
        assert "native, static without libc" in report
    else:
        assert data.startswith(b"#!/bin/sh\n")
        assert "sh script (asked for with --launcher-type sh): needs /bin/sh" in report


def test_summary_says_which_launcher_and_what_it_costs(tmp_path: Path, probe: Path) -> None:
    native = bundle(str(probe), "-o", f"{tmp_path}/n/").stderr
    assert re.search(r"^  bin/ launcher  native, static without libc \(built by (cc|gcc)\)",
                     native, re.M), native
    script = bundle(str(probe), "-o", f"{tmp_path}/s/", "--launcher-type", "sh").stderr
    line = next(x for x in script.splitlines() if x.startswith("  bin/ launcher"))
    assert "sh script" in line and "needs /bin/sh" in line and "argv[0]" in line


def test_two_builds_give_byte_identical_launchers(tmp_path: Path, work: Path, probe: Path,
                                                  elsewhere: Path, kind: str) -> None:
    bundle(str(probe), "-o", f"{tmp_path}/again/", "--launcher-type", kind, "--prefix",
           str(prefix_of(work, kind)))
    again = tmp_path / "again" / "probe" / "bin" / "probe"
    assert sha256(again) == sha256(elsewhere / "bin" / "probe")
    if kind == "native":
        data = again.read_bytes()
        assert b"bundle-launcher." not in data and b"launcher.c" not in data
        assert b"GCC" not in data
        notes = subprocess.run(["readelf", "-n", str(again)], capture_output=True, text=True)
        assert "Build ID" not in notes.stdout


@pytest.mark.parametrize("arch", ["x86-64", "i386", "aarch64"])
def test_compiled_for_each_architecture(tmp_path: Path, arch: str) -> None:
    """Static, of the right machine, the same bytes when compiled again."""
    multiarch = {"x86-64": "x86_64-linux-gnu", "i386": "i386-linux-gnu",
                 "aarch64": "aarch64-linux-gnu"}[arch]
    compiler = native_launcher.find_compiler(arch, multiarch)
    need(compiler is not None, f"no C compiler for {arch} (gcc-multilib, gcc-aarch64-linux-gnu)")
    assert compiler is not None
    plan = BundlePlan(name="p", prefix="/opt/p", launcher="loader", arch=arch,
                      loader_name="ld.so", loader_supports_argv0=True, glibc_release="2.36",
                      min_kernel=None, programs=("p",), files=(), missing=(),
                      env=(EnvSetting("BGC3F2A91C", "GCONV_PATH", "lib/gconv", True),))
    space = native_launcher.MIN_VALUES_SPACE
    first = native_launcher.compile_launcher(compiler, space)
    assert native_launcher.compile_launcher(compiler, space) == first
    path = tmp_path / "launcher"
    path.write_bytes(native_launcher.launcher_for(compiler, plan, "p"))
    facts = read_elf(str(path))
    machine, bits = native_launcher.MACHINES[arch]
    assert (facts.ident.machine, facts.ident.elf_class, facts.is_static) == (machine, bits, True)


def test_compilers_by_host_and_target() -> None:
    candidates = native_launcher.compiler_candidates
    assert candidates("x86-64", "x86_64-linux-gnu", "x86_64")[:2] == (("cc",), ("gcc",))
    assert candidates("i386", "i386-linux-gnu", "x86_64")[0] == ("gcc", "-m32")
    assert candidates("aarch64", "aarch64-linux-gnu", "x86_64") == (("aarch64-linux-gnu-gcc",),)
    assert candidates("x86-64", "x86_64-linux-gnu", "aarch64") == (("x86_64-linux-gnu-gcc",),)


def test_an_architecture_without_a_native_launcher() -> None:
    """launcher.c has no _start for riscv64: auto takes the sh launcher, native is exit 3."""
    choice = native_launcher.choose("auto", "riscv64", "riscv64-linux-gnu")
    assert (choice.kind, choice.compiler) == ("sh", None)
    assert "no native launcher for riscv64" in choice.why
    with pytest.raises(EnvironmentUnfitError) as caught:
        native_launcher.choose("native", "riscv64", "riscv64-linux-gnu")
    assert caught.value.exit_code == 3 and "--launcher-type native" in caught.value.message


# --- argv[0] and /proc/self/exe --------------------------------------------------------------


def test_through_a_symlink_at_the_prefix(tmp_path: Path, installed: Path, kind: str) -> None:
    link = tmp_path / "unxz"
    link.symlink_to(installed / "bin" / "probe")
    program = str(installed / "libexec" / "probe")
    ran = run([str(link), "a b"])
    assert ran.returncode == 0, ran.stderr
    if kind == "native":
        # The point of the native launcher: the caller's argv[0], and the program itself.
        assert ran.stdout == expected(str(link), program, "a b")
        by_path = run(["unxz", "x"], env={"PATH": f"{tmp_path}:/usr/bin:/bin"})
        assert by_path.stdout == expected("unxz", program, "x"), by_path.stderr
    else:
        # sh has no exec with another argv[0]: called by another name (a multi-call
        # program's link), the script starts the bundled loader, whose --argv0 keeps it.
        loader = str(installed / "lib" / LOADER)
        assert ran.stdout == expected(str(link), loader, "a b")
        by_name = run([str(installed / "bin" / "probe"), "a b"])
        assert by_name.stdout == expected(program, program, "a b")  # its own name: direct


def test_through_a_symlink_elsewhere(tmp_path: Path, elsewhere: Path, kind: str) -> None:
    links = tmp_path / "links"
    links.mkdir()
    (links / "first").symlink_to(elsewhere / "bin" / "probe")
    (links / "second").symlink_to("first")  # relative, to a link
    loader = str(elsewhere / "lib" / LOADER)
    for called in (str(links / "second"), "./second"):
        ran = run([called, "-x"], cwd=links)
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout == expected(called, loader, "-x"), called


def test_fake_tools_first_on_path_are_never_run(tmp_path: Path, installed: Path,
                                                 elsewhere: Path, kind: str) -> None:
    """readlink, cc and the program's own name first on PATH: none of them is run."""
    fakes = tmp_path / "fakes"
    fakes.mkdir()
    marker = tmp_path / "fake-ran"
    for name in FAKE_TOOLS:
        (fakes / name).write_text(f"#!/bin/sh\necho {name} >> '{marker}'\necho /etc\n")
        (fakes / name).chmod(0o755)
    env = {"PATH": f"{fakes}:/usr/bin:/bin", "LANG": "C"}
    (tmp_path / "at").symlink_to(installed / "bin" / "probe")
    (tmp_path / "away").symlink_to(elsewhere / "bin" / "probe")
    at = run([str(tmp_path / "at")], env=env)
    away = run([str(tmp_path / "away")], env=env)
    program = str(installed / "libexec" / "probe")
    started = program if kind == "native" else str(installed / "lib" / LOADER)
    assert at.stdout == expected(str(tmp_path / "at"), started), at.stderr
    assert away.stdout == expected(str(tmp_path / "away"), str(elsewhere / "lib" / LOADER))
    if kind == "sh":
        # `sh NAME` in bin/: the file there, not the fake `probe` found through PATH.
        by_sh = run(["sh", "probe"], env=env, cwd=elsewhere / "bin")
        assert by_sh.stdout == expected("probe", str(elsewhere / "lib" / LOADER)), by_sh.stderr
        # busybox sh, as in the bare roots: its own readlink applet, not the fake.
        busybox = shutil.which("busybox")
        if busybox:
            by_busybox = run([busybox, "sh", str(tmp_path / "away")], env=env)
            assert by_busybox.stdout == expected(str(tmp_path / "away"),
                                                 str(elsewhere / "lib" / LOADER)), \
                by_busybox.stderr
    assert not marker.exists(), marker.read_text()


ODD_PLACES = ["dir with space/x y", "co:lon/se;mi", "it's \"q\" $x", "new\nline/dir",
              "-dash/-x", "dollar $HOME/`x`"]


@pytest.mark.parametrize("where", ODD_PLACES)
def test_odd_install_paths(tmp_path: Path, artifact: Path, kind: str, where: str) -> None:
    top = unpack(artifact, tmp_path / where) / "probe"
    launcher = top / "bin" / "probe"
    for called, cwd in ((str(launcher), None), ("./" + os.path.relpath(launcher, tmp_path),
                                                 tmp_path)):
        ran = run([called, "-n", "new\nline"], cwd=cwd)
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout == expected(called, str(top / "lib" / LOADER), "-n", "new\nline")


# ':', ';', '$' and newlines are refused in a prefix (DT_RPATH and PT_INTERP hold it).
ODD_PREFIX = 'pre "q" \'s `id` back\\slash */ -x'
ODD_PROGRAM = "it's \"q\" $x"


def test_odd_prefix_and_program_name(tmp_path: Path, kind: str) -> None:
    """Both become values inside the launcher: at the prefix it still starts directly."""
    program = gcc(tmp_path / "src" / ODD_PROGRAM, PROBE)
    prefix = tmp_path / ODD_PREFIX
    out = tmp_path / "odd.tar.gz"
    bundle(str(program), "-o", str(out), "--launcher-type", kind, "--prefix", str(prefix))
    install(out, prefix)
    launcher = str(prefix / "bin" / ODD_PROGRAM)
    target = str(prefix / "libexec" / ODD_PROGRAM)
    ran = run([launcher, "$x"])
    assert ran.stdout == expected(launcher if kind == "native" else target, target, "$x"), \
        ran.stderr


# --- the environment ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def environ_program(work: Path) -> Path:
    return gcc(work / "src" / "environ", ENVIRON)


@pytest.mark.parametrize("mode", ["loader", "env"])
def test_same_environment_as_the_sh_launcher(tmp_path: Path, environ_program: Path,
                                             mode: str) -> None:
    """The plan's variables (here a scoped LOCPATH) and, in env mode, LD_LIBRARY_PATH:
    what the sh launcher sets, nothing else (dash adds PWD when it is missing)."""
    seen = {}
    for kind in TYPES:
        bundle(str(environ_program), "-o", f"{tmp_path}/{kind}/", "--launcher-type", kind,
               "--launcher", mode, "--locale", "C.UTF-8")
        top = tmp_path / kind / "environ"
        for old in (None, "", "/old:/dirs"):
            env = {"PATH": "/usr/bin:/bin", "A": "1"}
            if old is not None:
                env["LD_LIBRARY_PATH"] = old
            ran = run([str(top / "bin" / "environ")], env=env)
            assert ran.returncode == 0, ran.stderr
            lines = {line.replace(str(top), "TOP") for line in ran.stdout.splitlines()
                     if not line.startswith("PWD=")}
            seen[kind, old] = lines
            if kind == "native":
                manifest = json.loads((top / ".bundle" / "manifest.json").read_text())
                (variable,) = [e["variable"] for e in manifest["environment"]
                               if e["means"] == "LOCPATH"]
                assert f"{variable}=TOP/lib/locale" in lines
                library_path = {None: "", "": "", "/old:/dirs": ":/old:/dirs"}[old]
                if mode == "env":
                    assert f"LD_LIBRARY_PATH=TOP/lib{library_path}" in lines
                else:
                    assert ("LD_LIBRARY_PATH" in "".join(lines)) == (old is not None)
    for old in (None, "", "/old:/dirs"):
        assert seen["native", old] == seen["sh", old]


def final_exec(argv: list[str], log: Path, env: dict[str, str]) -> tuple[list[str], set[str]]:
    """(argv, environment) of the last execve `argv` makes (the program's or the loader's),
    as strace shows them; run in env's PWD."""
    strace = need_tool("strace")
    subprocess.run([strace, "-f", "-qq", "-v", "-s", "65536", "-e", "trace=execve", "-o",
                    str(log), *argv], check=True, capture_output=True, env=env,
                   cwd=env["PWD"])
    line = [x for x in log.read_text().splitlines() if " execve(" in x and x.endswith("= 0")][-1]
    arrays = re.findall(r"\[((?:\"(?:[^\"\\]|\\.)*\"(?:, )?)*)\]", line)
    argv_seen, env_seen = (re.findall(r'"((?:[^"\\]|\\.)*)"', a) for a in arrays[:2])
    return argv_seen, set(env_seen)


@pytest.mark.parametrize("place", ["prefix", "elsewhere"])
def test_the_same_exec_as_the_sh_launcher(tmp_path: Path, work: Path, probe: Path,
                                          place: str) -> None:
    """Both launchers end in the same execve (file, argv, environment): the native one
    means what the script means, but at the prefix called by another name: the native one
    keeps argv[0] in a direct start, the script only through the loader's --argv0."""
    env = {"PATH": "/usr/bin:/bin", "PWD": str(tmp_path), "A": "1"}  # dash adds PWD if unset
    seen = {}
    for kind in TYPES:
        artifact = _built(work, probe, kind)
        if place == "prefix":
            top = prefix_of(work, kind)
            if not (top / "bin").exists():
                install(artifact, top)
        else:
            top = unpack(artifact, tmp_path / kind) / "probe"
        (tmp_path / f"link-{kind}").symlink_to(top / "bin" / "probe")
        argv, environment = final_exec([str(tmp_path / f"link-{kind}"), "x y"],
                                       tmp_path / f"{kind}.log", env)
        seen[kind] = ([a.replace(str(top), "TOP").replace(f"link-{kind}", "LINK")
                       for a in argv], environment)
    if place == "prefix":
        assert seen["native"][0] == [f"{tmp_path}/LINK", "x y"]
        assert seen["sh"][0] == [f"TOP/lib/{LOADER}", "--library-path", "TOP/lib",
                                 "--argv0", f"{tmp_path}/LINK", "TOP/libexec/probe", "x y"]
    else:
        assert seen["native"][0] == seen["sh"][0] == [
            f"TOP/lib/{LOADER}", "--library-path", "TOP/lib", "--argv0", f"{tmp_path}/LINK",
            "TOP/libexec/probe", "x y"]
    assert seen["native"][1] == seen["sh"][1] == {f"{k}={v}" for k, v in env.items()}


# --- failures ---------------------------------------------------------------------------------


def test_a_failure_is_one_line_and_exit_127(tmp_path: Path, work: Path, probe: Path) -> None:
    top = unpack(_built(work, probe, "native"), tmp_path) / "probe"
    (top / "lib" / LOADER).unlink()
    ran = run([str(top / "bin" / "probe")])
    assert ran.returncode == 127
    assert ran.stdout == ""
    assert ran.stderr == f"probe: cannot start {top}/lib/{LOADER} (ENOENT)\n"


@pytest.fixture(scope="module")
def aarch64_probe(work: Path) -> Path:
    compiler = need_tool("aarch64-linux-gnu-gcc")
    need((CROSS_SYSROOT / "lib" / "libc.so.6").is_file(), "libc6-arm64-cross is not installed")
    (work / "a64").mkdir(exist_ok=True)
    source = work / "a64" / "probe.c"
    source.write_text(PROBE)
    program = work / "a64" / "probe"
    subprocess.run([compiler, "-o", str(program), str(source)], check=True)
    return program


def test_no_compiler_for_the_architecture(tmp_path: Path, aarch64_probe: Path) -> None:
    """auto: the sh launcher, and the summary says why; native: exit 3, one line."""
    env = {"PATH": str(tmp_path / "empty")}  # no cross compiler to be found
    auto = bundle(str(aarch64_probe), "--sysroot", str(CROSS_SYSROOT), "-o", f"{tmp_path}/a/",
                  env=env)
    assert "sh script (no C compiler for aarch64 on the build host" in auto.stderr
    assert (tmp_path / "a" / "probe" / "bin" / "probe").read_bytes().startswith(b"#!/bin/sh")
    native = run_cli(str(aarch64_probe), "--sysroot", str(CROSS_SYSROOT), "-o",
                     f"{tmp_path}/n/", "--launcher-type", "native", env=env)
    assert_one_line_error(native, 3, "--launcher-type native", "no C compiler for aarch64")
    assert not (tmp_path / "n").exists()


def test_a_compiler_that_builds_something_else(tmp_path: Path, probe: Path) -> None:
    """The output is checked: a dynamically linked file is no launcher. auto falls back to
    the sh launcher and says why; native is exit 3."""
    tools = tmp_path / "tools"
    tools.mkdir()
    fake = tools / "cc"
    fake.write_text("#!/bin/sh\ncp /bin/true launcher\n")  # dynamically linked
    fake.chmod(0o755)
    env = {"PATH": f"{tools}:/usr/bin:/bin"}
    auto = bundle(str(probe), "-o", f"{tmp_path}/a/", env=env)
    assert re.search(r"bin/ launcher  sh script \(cc built a launcher that is .*, not static",
                     auto.stderr), auto.stderr
    native = run_cli(str(probe), "-o", f"{tmp_path}/n/", "--launcher-type", "native", env=env)
    assert_one_line_error(native, 3, "cc built a launcher", "not static")
    assert not (tmp_path / "n").exists()


# --- aarch64 under qemu, i386 natively ------------------------------------------------------


def qemu_execve(stderr: str) -> list[str]:
    """The argv of the execve `qemu -strace` logged (the launcher's one exec)."""
    line = next(x for x in stderr.splitlines() if " execve(" in x)
    return re.findall(r'"((?:[^"\\]|\\.)*)"', line.split("{", 1)[1].split("}", 1)[0])


def test_aarch64_launcher_under_qemu(tmp_path: Path, aarch64_probe: Path) -> None:
    """qemu-user without binfmt cannot follow the launcher's execve into the aarch64
    loader, so the run is checked in two halves: the launcher's execve (qemu -strace),
    then that exact command under qemu."""
    qemu = need_tool("qemu-aarch64-static")
    prefix = tmp_path / "opt" / "probe"
    out = tmp_path / "a64.tar.gz"
    bundle(str(aarch64_probe), "--sysroot", str(CROSS_SYSROOT), "-o", str(out),
           "--launcher-type", "native", "--prefix", str(prefix))
    top = unpack(out, tmp_path / "away") / "probe"
    assert read_elf(str(top / "bin" / "probe")).ident.machine == "EM_AARCH64"
    link = tmp_path / "hi"
    link.symlink_to(top / "bin" / "probe")
    traced = run([qemu, "-strace", str(link), "a"])
    assert traced.returncode == 127  # the exec of an aarch64 loader fails without binfmt
    command = qemu_execve(traced.stderr)
    loader = str(top / "lib" / "ld-linux-aarch64.so.1")
    assert command == [loader, "--library-path", str(top / "lib"), "--argv0", str(link),
                       str(top / "libexec" / "probe"), "a"]
    ran = run([qemu, *command])
    assert ran.stdout == expected(str(link), loader, "a"), ran.stderr
    # At the prefix: the program itself, argv untouched.
    install(out, prefix)
    (tmp_path / "at").symlink_to(prefix / "bin" / "probe")
    traced = run([qemu, "-strace", str(tmp_path / "at"), "b"])
    assert qemu_execve(traced.stderr) == [str(tmp_path / "at"), "b"]
    assert f'execve("{prefix}/libexec/probe"' in traced.stderr


def test_i386_program_with_an_i386_launcher(tmp_path: Path) -> None:
    program = tmp_path / "probe32"
    (tmp_path / "probe32.c").write_text(PROBE)
    built = subprocess.run([need_tool("gcc"), "-m32", "-o", str(program),
                            str(tmp_path / "probe32.c")], capture_output=True, text=True)
    need(built.returncode == 0, f"gcc -m32 does not work here: {built.stderr[:200]}")
    prefix = tmp_path / "opt" / "probe32"
    out = tmp_path / "p32.tar.gz"
    summary = bundle(str(program), "-o", str(out), "--launcher-type", "native", "--prefix",
                     str(prefix)).stderr
    assert "(i386)" in summary and "built by gcc -m32" in summary
    install(out, prefix)
    facts = read_elf(str(prefix / "bin" / "probe32"))
    assert (facts.ident.machine, facts.is_static) == ("EM_386", True)
    link = tmp_path / "link32"
    link.symlink_to(prefix / "bin" / "probe32")
    assert run([str(link), "a"]).stdout == expected(str(link), str(prefix / "libexec" /
                                                                    "probe32"), "a")
    away = unpack(out, tmp_path / "away") / "probe32"
    (tmp_path / "away32").symlink_to(away / "bin" / "probe32")
    assert run([str(tmp_path / "away32")]).stdout == expected(
        str(tmp_path / "away32"), str(away / "lib" / "ld-linux.so.2"))


# --- roots: without /bin/sh, without /proc, Debian 11 ------------------------------------------


@pytest.fixture
def shell_less_root(tmp_path: Path) -> Iterator[Path]:
    """A root with nothing in it (no /bin/sh, no libc) and /proc mounted."""
    need_root()
    root = tmp_path / "bare"
    (root / "tmp").mkdir(parents=True)
    with mounted_proc(root):
        yield root


def test_native_runs_where_there_is_no_bin_sh(shell_less_root: Path, work: Path,
                                               probe: Path) -> None:
    root = shell_less_root
    assert not (root / "bin" / "sh").exists()
    artifact = _built(work, probe, "native")
    prefix = prefix_of(work, "native")
    install(artifact, Path(f"{root}{prefix}"))
    unpack(artifact, root / "srv")
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "bin" / "at").symlink_to(f"{prefix}/bin/probe")
    (root / "usr" / "bin" / "away").symlink_to("../../srv/probe/bin/probe")
    at = chroot_run(root, ["/usr/bin/at", "x"])
    assert at.stdout == expected("/usr/bin/at", f"{prefix}/libexec/probe", "x"), at.stderr
    away = chroot_run(root, ["/usr/bin/away", "y"])
    assert away.stdout == expected("/usr/bin/away", f"/srv/probe/lib/{LOADER}", "y"), \
        away.stderr
    # The sh launcher cannot start there at all.
    unpack(_built(work, probe, "sh"), root / "opt" / "sh")
    assert chroot_run(root, ["/opt/sh/probe/bin/probe"]).returncode != 0
    # Without /proc: found through AT_EXECFN and its symlinks, started through the loader
    # even at the prefix ($ORIGIN needs /proc), argv[0] kept by --argv0.
    subprocess.run(["umount", "-l", str(root / "proc")], check=True)
    at = chroot_run(root, ["/usr/bin/at", "x"])
    assert at.stdout == expected("/usr/bin/at", "(no /proc)", "x"), at.stderr
    relative = chroot_run(root, ["usr/bin/away"])  # chroot's cwd is the new root
    assert relative.stdout == expected("usr/bin/away", "(no /proc)"), relative.stderr


def test_native_in_the_debian11_root(tmp_path: Path, work: Path, probe: Path) -> None:
    need_root()
    artifact = _built(work, probe, "native")
    prefix = prefix_of(work, "native")
    with debian11_root(tmp_path) as root:
        install(artifact, Path(f"{root}{prefix}"))
        unpack(artifact, root / "srv")
        (root / "usr" / "local" / "bin" / "at").symlink_to(f"{prefix}/bin/probe")
        (root / "usr" / "local" / "bin" / "away").symlink_to("/srv/probe/bin/probe")
        at = chroot_run(root, ["at", "x"])  # through PATH: argv[0] is the bare name
        assert at.stdout == expected("at", f"{prefix}/libexec/probe", "x"), at.stderr
        away = chroot_run(root, ["/usr/local/bin/away"])
        assert away.stdout == expected("/usr/local/bin/away", f"/srv/probe/lib/{LOADER}"), \
            away.stderr


def test_glibc_without_argv0(tmp_path: Path, kind: str) -> None:
    """Debian 11's dash bundles glibc 2.31, whose loader has no --argv0: elsewhere the
    program sees its libexec path; at the prefix the native launcher still keeps argv[0]."""
    tree = debian11_tree()
    prefix = tmp_path / "opt" / "dash"
    out = tmp_path / "dash.tar.gz"
    summary = bundle(str(tree / "usr/bin/dash"), "--sysroot", str(tree), "-o", str(out),
                     "--launcher-type", kind, "--prefix", str(prefix)).stderr
    assert "glibc < 2.33" in summary
    install(out, prefix)
    away = unpack(out, tmp_path / "away") / "dash"
    (tmp_path / "at").symlink_to(prefix / "bin" / "dash")
    (tmp_path / "elsewhere").symlink_to(away / "bin" / "dash")
    at = run([str(tmp_path / "at"), "-c", 'echo "$0"'])
    assert at.stdout == (f"{tmp_path / 'at'}\n" if kind == "native"
                         else f"{prefix / 'libexec' / 'dash'}\n"), at.stderr
    there = run([str(tmp_path / "elsewhere"), "-c", 'echo "$0"'])
    assert there.stdout == f"{away / 'libexec' / 'dash'}\n", there.stderr


# --- verify --------------------------------------------------------------------------------


def test_verify_runs_the_native_launcher_in_a_root_without_sh(tmp_path: Path, work: Path,
                                                               probe: Path) -> None:
    root = tmp_path / "nothing"
    (root / "etc").mkdir(parents=True)
    artifact = tmp_path / "probe.tar.gz"
    bundle(str(probe), "-o", str(artifact), "--prefix", "/opt/probe")
    result = run_cli("verify", str(artifact), "--root", str(root), "--expect-output",
                     "(?m)^argv0=.*/bin/probe$")
    if result.returncode == 3:
        need(False, f"verify cannot isolate here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^PASS  at its prefix .*\(launcher, direct start\)", result.stdout, re.M)
    assert re.search(r"^PASS  from .*\(launcher, loader start\)", result.stdout, re.M)
    shutil.rmtree(root)

"""The sh launchers as shellcheck reads them, and the renderer's two promises.

shellcheck (dialect sh) reads the templates as they are (plain shell since the markers are
`@name@` words, no more `$$`), the launchers of plans made in-process for every mode,
--argv0 and export combination with hostile names, and bin/NAME of real builds (gcc on
this host, dash from the Debian 11 root for a glibc without --argv0). The renderer never
reads a substituted value as a marker, and refuses a marker it has no value for.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
from importlib import resources
from pathlib import Path

import pytest
from support.cli import run_cli
from support.needs import need, need_tool
from support.roots import debian11_tree
from support.toolchain import gcc

from bundler.choices import LAUNCHER_MODES, LauncherMode
from bundler.launcher import fill_template, render_launcher
from bundler.plan import BundlePlan, EnvSetting

# Findings shellcheck may report on a launcher and the test accepts. Nothing else is.
EXCLUDED = (
    # SC3013 "In POSIX sh, -ef is undefined". The launcher's one test outside POSIX, kept
    # on purpose: "bin/.. is the top" and "installed at the prefix" are decided by device
    # and inode with no fork and no PATH lookup (`stat`/`ls -di` would need both, at every
    # start of the program). dash, bash, busybox ash, ksh and mksh all have -ef;
    # test_the_shells_here_have_ef checks the ones on this machine.
    "SC3013",
)
# Also accepted where a name or the prefix holds `$` or a backquote: SC2016 "Expressions
# don't expand in single quotes" (info). They are single-quoted precisely so that they don't.
HOSTILE_EXCLUDED = (*EXCLUDED, "SC2016")
ARGV0 = '--argv0 "$0"'
# Names `bundle build` takes (a prefix without '$': DT_RPATH would expand it); plans made
# in-process hold a newline and a '$' too.
ODD_NAME = "it's $HOME \"q\" `id` @argv0@"
ODD_PREFIX = "/opt/we'ird \"q\" `id` @prefix_q@"
SCOPED = (EnvSetting("BGC3F2A91C", "GCONV_PATH", "lib/gconv", True),
          EnvSetting("BLP3F2A91C", "LOCPATH", "lib/locale", True))
INHERITED = (EnvSetting("GCONV_PATH", "GCONV_PATH", "lib/gconv"),)


def shellcheck(*scripts: Path, excluded: tuple[str, ...] = EXCLUDED,
               ) -> subprocess.CompletedProcess[str]:
    """shellcheck as sh, every check at every severity but `excluded`, no rc file."""
    command = [need_tool("shellcheck"), "--norc", "--shell=sh", "--severity=style"]
    if excluded:
        command.append(f"--exclude={','.join(excluded)}")
    return subprocess.run([*command, *map(str, scripts)], capture_output=True, text=True)


def assert_clean(*scripts: Path, excluded: tuple[str, ...] = EXCLUDED) -> None:
    result = shellcheck(*scripts, excluded=excluded)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", ""), \
        result.stdout + result.stderr


def plan(mode: LauncherMode, *, argv0: bool = True, env: tuple[EnvSetting, ...] = (),
         name: str = "prog", prefix: str = "/opt/prog", loader: str = "ld-linux-x86-64.so.2",
         glibc: str | None = "2.36") -> BundlePlan:
    return BundlePlan(name=name, prefix=prefix, launcher=mode, arch="x86-64",
                      loader_name=loader, loader_supports_argv0=argv0, glibc_release=glibc,
                      min_kernel=None, programs=(name,), files=(), missing=(), env=env)


def template(name: str) -> str:
    return resources.files("bundler").joinpath("launcher_templates", name).read_text()


# --- shellcheck itself --------------------------------------------------------------------


def test_shellcheck_reports_what_it_should(tmp_path: Path) -> None:
    """The check can fail: a bashism is found (so the dialect is sh, not bash) and so is an
    unquoted expansion; -ef is found too, unless excluded as the launchers are."""
    script = tmp_path / "bad.sh"
    script.write_text('#!/bin/sh\nif [[ -n "$1" ]]; then echo $1; fi\n')
    found = shellcheck(script).stdout
    assert "SC3010" in found and "SC2086" in found, found
    uses_ef = tmp_path / "ef.sh"
    uses_ef.write_text('#!/bin/sh\n[ "$1" -ef "$2" ] && echo same\n')
    assert "SC3013" in shellcheck(uses_ef, excluded=()).stdout
    assert_clean(uses_ef)


def test_the_shells_here_have_ef(tmp_path: Path) -> None:
    """What excluding SC3013 rests on: every shell on this machine that may be /bin/sh
    compares device and inode with -ef (a hard link is the same file, a copy is not)."""
    first = tmp_path / "first"
    first.write_text("x")
    (tmp_path / "link").hardlink_to(first)
    (tmp_path / "copy").write_text("x")
    test = '[ "$1" -ef "$2" ] && ! [ "$1" -ef "$3" ] && ! [ "$1" -ef "$1.missing" ]'
    shells = [["/bin/sh"], [need_tool("dash")], [need_tool("busybox"), "sh"]]
    shells += [[path] for path in map(shutil.which, ("bash", "ksh", "mksh")) if path]
    for shell in shells:
        result = subprocess.run([*shell, "-c", test, "sh", str(first), str(tmp_path / "link"),
                                 str(tmp_path / "copy")], capture_output=True, text=True)
        assert (result.returncode, result.stderr) == (0, ""), (shell, result.stderr)


# --- the templates and in-process plans ---------------------------------------------------


@pytest.mark.parametrize("mode", LAUNCHER_MODES)
def test_the_templates_are_plain_shell(tmp_path: Path, mode: LauncherMode) -> None:
    """common.sh followed by the mode's part, as render_launcher joins them, markers and
    all: `$` is written as the shell reads it and every @name@ is an ordinary word."""
    text = template("common.sh") + template(f"{mode}.sh")
    assert "$$" not in text  # string.Template's escaping, gone for good
    script = tmp_path / f"{mode}.sh"
    script.write_text(text)
    assert_clean(script)


@pytest.mark.parametrize(("names", "excluded"), [
    (("prog", "/opt/prog"), EXCLUDED),
    ((f"{ODD_NAME}\nline", f"{ODD_PREFIX} $dir\nline"), HOSTILE_EXCLUDED)],
    ids=["plain names", "hostile names"])
def test_every_rendered_combination_is_clean(tmp_path: Path, names: tuple[str, str],
                                             excluded: tuple[str, ...]) -> None:
    """Both modes, with and without --argv0, no/inherited/scoped exports, a known and an
    unknown glibc; hostile names hold quotes, `$`, backquotes, a newline and markers."""
    name, prefix = names
    scripts = []
    combinations = itertools.product(LAUNCHER_MODES, (True, False), ((), INHERITED, SCOPED),
                                     ("2.36", None))
    for number, (mode, argv0, env, glibc) in enumerate(combinations):
        text = render_launcher(plan(mode, argv0=argv0, env=env, name=name, prefix=prefix,
                                    glibc=glibc), name)
        assert (ARGV0 in text) == argv0
        assert all(f"export {setting.variable}\n" in text for setting in env)
        script = tmp_path / f"{number}.sh"
        script.write_text(text)
        scripts.append(script)
    assert len(scripts) == 24
    assert_clean(*scripts, excluded=excluded)


# --- the renderer's promises --------------------------------------------------------------


@pytest.mark.parametrize("mode", LAUNCHER_MODES)
def test_a_value_is_never_read_as_a_marker(mode: LauncherMode) -> None:
    """Markers inside the name, prefix, program, loader and an export's path reach the
    script as written: one pass, substituted text is not scanned again."""
    settings = (EnvSetting("BGC3F2A91C", "@mode_comment@", "lib/@glibc@", True),)
    text = render_launcher(plan(mode, name="@argv0@", prefix="/opt/@prefix_q@",
                                loader="@loader_q@", env=settings), "@program_q@")
    lines = text.splitlines()
    assert lines[1].startswith("# @argv0@: launcher made by bundle ")
    assert "It starts libexec/@program_q@ with the glibc" in lines[1]
    assert lines[4:7] == ["prefix='/opt/@prefix_q@'", "loader='@loader_q@'",
                          "program='@program_q@'"]
    assert "# @mode_comment@ for the bundled glibc only: its libc.so.6 reads" in text
    assert 'BGC3F2A91C="$here"\'/lib/@glibc@\'; export BGC3F2A91C\n' in text
    # --argv0 is on each exec of the loader (two in loader mode, one in env), nowhere else.
    assert text.count(ARGV0) == {"loader": 2, "env": 1}[mode]
    assert fill_template("@a@-@b@", {"a": "@b@", "b": "@a@"}) == "@b@-@a@"


@pytest.mark.parametrize(("text", "values", "named"), [
    ("prefix=@prefix_q@ @prefx_q@\n", {"prefix_q": "'/opt/p'"}, "prefx_q"),
    ("prefix=@prefix_q@\n", {"prefix_q": "'/opt/p'", "loader_q": "'ld.so'"}, "loader_q"),
    ("prefix=@prefix_q@\n", {}, "prefix_q"),
])
def test_a_marker_without_a_value_is_refused(text: str, values: dict[str, str],
                                             named: str) -> None:
    """An unknown marker would ship as literal text in every launcher, and a value with no
    marker means one was renamed: both are refused, naming the marker."""
    with pytest.raises(ValueError, match=named):
        fill_template(text, values)


# --- real builds --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return gcc(tmp_path_factory.mktemp("program") / "prog", "int main(void) { return 0; }\n")


BUILDS = {  # args, whether it exports variables, what shellcheck may say
    "loader": ((), False, EXCLUDED),
    "env, exports": (("--launcher", "env", "--gconv", "KOI8-R", "--locale", "C.UTF-8"), True,
                     EXCLUDED),
    "hostile names": (("--name", ODD_NAME, "--prefix", ODD_PREFIX, "--locale", "C.UTF-8"), True,
                      HOSTILE_EXCLUDED),
}


def built_launcher(out: Path, *args: str) -> str:
    """bin/NAME of a `bundle build ... --launcher-type sh -o OUT/`."""
    result = run_cli(*args, "--launcher-type", "sh", "-o", f"{out}/")
    assert result.returncode == 0, result.stderr
    [launcher] = out.glob("*/bin/*")
    return launcher.read_text()


@pytest.mark.parametrize("case", BUILDS)
def test_built_launchers_are_clean(tmp_path: Path, program: Path, case: str) -> None:
    """bin/NAME as `bundle build` writes it for a program gcc built here (glibc >= 2.33)."""
    args, exports, excluded = BUILDS[case]
    text = built_launcher(tmp_path / "out", str(program), *args)
    assert (ARGV0 in text, "; export " in text) == (True, exports)
    script = tmp_path / "launcher.sh"
    script.write_text(text)
    assert_clean(script, excluded=excluded)


@pytest.mark.parametrize("mode", LAUNCHER_MODES)
def test_built_launchers_without_argv0_are_clean(tmp_path: Path, mode: LauncherMode) -> None:
    """Debian 11's dash: glibc 2.31, whose loader has no --argv0."""
    tree = debian11_tree()
    need((tree / "usr/bin/dash").exists(), "no dash in the Debian 11 root")
    text = built_launcher(tmp_path / "out", str(tree / "usr/bin/dash"), "--sysroot", str(tree),
                          "--launcher", mode)
    assert "(glibc 2.31)" in text and ARGV0 not in text
    script = tmp_path / "launcher.sh"
    script.write_text(text)
    assert_clean(script)

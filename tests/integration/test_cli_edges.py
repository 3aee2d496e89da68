"""The edges of the command line as a user meets them, in a subprocess: the version, help
as a command, one-line usage errors, grouped options and examples in every --help, -q/-v,
and shell completion through the real entry point (bundler/entry.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from support.cli import assert_one_line_error, run_cli
from support.toolchain import gcc

from bundler import __version__
from bundler.cli import cli
from bundler.entry import needs_patching

COMMANDS = tuple(sorted(cli.commands))  # every command there is, new ones included
# Looks a user up: `--nss files,nosuch` then gives the resolver a note to print with -v.
LOOKS_UP = ('#include <stdio.h>\n#include <pwd.h>\n'
            'int main(void){ getpwnam("root"); puts("hi"); return 0; }\n')


@pytest.fixture(scope="module")
def named_help(tmp_path_factory) -> Path:
    """A program literally named `help`."""
    return gcc(tmp_path_factory.mktemp("named") / "help", LOOKS_UP)


@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_version_flags_print_the_version(flag):
    result = run_cli(flag)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"bundle, version {__version__}\n"
    assert result.stderr == ""


def test_help_command_is_the_group_help():
    result, dashed = run_cli("help"), run_cli("--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout == dashed.stdout
    assert "Usage: bundle [OPTIONS] COMMAND" in result.stdout
    assert "-V, --version" in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_help_command_equals_dash_help(command):
    result = run_cli("help", command)
    assert result.returncode == 0, result.stderr
    assert result.stdout == run_cli(command, "--help").stdout
    assert result.stdout.startswith(f"Usage: bundle {command} ")


def test_help_of_an_unknown_command_is_one_line():
    assert_one_line_error(run_cli("help", "biuld"), 2, "help biuld: no such command", "build")


@pytest.mark.parametrize("command", ("", *COMMANDS))
def test_every_help_has_examples_that_use_bundle(command):
    result = run_cli(*([command] if command else []), "--help")
    assert result.returncode == 0, result.stderr
    examples = result.stdout.split("\nExamples:\n", 1)[1].splitlines()
    assert examples and all(line.startswith("  bundle ") for line in examples), examples
    if command not in ("", "help", "build"):  # (help and the group show several commands)
        assert all(f"{line} ".startswith(f"  bundle {command} ") for line in examples), examples


def test_build_help_groups_every_option_once():
    text = run_cli("build", "--help").stdout
    titles = re.findall(r"^(\S[^:\n]*):$", text, flags=re.M)
    assert titles == ["Output", "What goes in",
                      "Files, helpers and variables it needs beyond libraries", "Launcher",
                      "Compare with the static build",
                      "Report", "Packages (-o NAME.deb, NAME.rpm, NAME.oci.tar)",
                      "Other options", "Examples"], titles
    sections = dict(zip(titles, re.split(r"^\S[^:\n]*:$", text, flags=re.M)[1:]))
    assert "--output" in sections["Output"] and "--sbom" in sections["Output"]
    assert "--sysroot" in sections["What goes in"] and "--nss" in sections["What goes in"]
    assert "--launcher-type" in sections["Launcher"]
    carrying = sections["Files, helpers and variables it needs beyond libraries"]
    assert all(o in carrying for o in ("--data", "--helper", "--env", "--from-package",
                                       "--no-recipes"))
    assert "--static" in sections["Compare with the static build"]
    assert "-q, --quiet" in sections["Report"] and "-v, --verbose" in sections["Report"]
    assert "--fail-on GATE" in sections["Report"]
    options = re.findall(r"^  (?:-\w, )?(--[\w-]+)", text, flags=re.M)
    assert len(options) == len(set(options)) == 35, options  # 34 options and --help


@pytest.mark.parametrize("args, words", [
    (("build", "--bogus", "x"), ("No such option", "--bogus")),
    (("--bogus", "x"), ("No such option", "--bogus")),
    (("inspect", "--frobnicate", "x"), ("No such option", "--frobnicate")),
    (("build",), ("Missing argument", "BINARY...")),
    (("verify",), ("Missing argument", "ARTIFACT")),
    (("compare", "a.tar.zst"), ("Missing argument", "STATIC_BINARY")),
    (("x", "--launcher", "nope"), ("--launcher", "nope", "loader")),
    (("verify", "a.tar.zst", "--timeout", "0"), ("--timeout",)),
    (("help", "build", "extra"), ("extra",)),
    (("-q", "-v", "x"), ("--quiet", "--verbose")),
])
def test_usage_errors_are_one_line_exit_2(args, words):
    assert_one_line_error(run_cli(*args), 2, *words)


def test_a_program_named_help_is_bundled_by_its_path(named_help, tmp_path):
    """`help` is the command; `./help` is the file."""
    result = run_cli("./help", "-o", str(tmp_path / "help.tar.zst"), cwd=named_help.parent)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "help.tar.zst").is_file()
    assert run_cli("help", cwd=named_help.parent).stdout == run_cli("--help").stdout
    assert needs_patching(["./help"]) and not needs_patching(["help"])


def test_quiet_says_nothing_and_verbose_adds_the_resolvers_notes(named_help, tmp_path):
    args = ("--nss", "files,nosuch", "--sbom", "none")
    note = "bundle: note: libnss_nosuch.so.2 (loaded at run time by glibc) not found"

    quiet = run_cli("-q", str(named_help), "-o", str(tmp_path / "q.tar.zst"), *args)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == "" and quiet.stdout == ""
    assert (tmp_path / "q.tar.zst").is_file()

    plain = run_cli(str(named_help), "-o", str(tmp_path / "p.tar.zst"), *args)
    assert plain.returncode == 0, plain.stderr
    assert plain.stderr.startswith("bundle: wrote ") and "bundle: note:" not in plain.stderr

    verbose = run_cli("--verbose", str(named_help), "-o", str(tmp_path / "v.tar.zst"), *args)
    assert verbose.returncode == 0, verbose.stderr
    assert verbose.stderr.startswith(plain.stderr.split("\n", 1)[0].replace("p.tar", "v.tar"))
    assert [line for line in verbose.stderr.splitlines() if line.startswith(note)]


def test_quiet_still_prints_errors(tmp_path):
    assert_one_line_error(run_cli("-q", str(tmp_path / "absent")), 2, "absent")


def test_quiet_keeps_the_json_on_stdout(named_help, tmp_path):
    result = run_cli("-q", "--json", str(named_help), "-o", str(tmp_path / "j.tar.zst"),
                     "--sbom", "none")
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and result.stdout.startswith("{")


def test_bash_completion_through_the_entry_point():
    """What README tells a user to put in ~/.bashrc, and what bash then asks."""
    source = run_cli(env={"_BUNDLE_COMPLETE": "bash_source"})
    assert source.returncode == 0, source.stderr
    assert "_BUNDLE_COMPLETE=bash_complete" in source.stdout
    assert "complete -o nosort -F _bundle_completion bundle" in source.stdout

    def complete(words: str, index: int) -> list[str]:
        result = run_cli(env={"_BUNDLE_COMPLETE": "bash_complete", "COMP_WORDS": words,
                              "COMP_CWORD": str(index)})
        assert result.returncode == 0, result.stderr
        return result.stdout.split()

    assert complete("bundle ins", 1) == ["plain,inspect"]
    assert complete("bundle ./prog --launcher-t", 2) == ["plain,--launcher-type"]
    assert complete("bundle ./prog --launcher ", 3) == ["plain,loader", "plain,env"]

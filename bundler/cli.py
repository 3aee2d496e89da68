"""The `bundle` command line: thin click wrappers around the modules that do the work.

Every `BundleError` becomes one line on stderr and its documented exit code (see
`errors.py` and the README); click's own usage errors become one `bundle: error:` line
too, with click's exit code 2.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import sys

import click

from bundler import __version__
from bundler.choices import LAUNCHER_MODES, LAUNCHER_TYPES, SBOM_FORMATS, sbom_formats
from bundler.errors import EXIT_BAD_INPUT, BundleError, HungUp, InputError, Terminated
from bundler.signals import forget_written, settle, stop_at_once, written
from bundler.text import one_line, terminal_safe

EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
EXIT_HUNG_UP = 129
# The most specific first: Terminated and HungUp are KeyboardInterrupts too.
STOPS = ((HungUp, EXIT_HUNG_UP, "hung up"), (Terminated, EXIT_TERMINATED, "terminated"),
         (KeyboardInterrupt, EXIT_INTERRUPTED, "interrupted"))


class Stopped(Exception):
    """A signal's KeyboardInterrupt carried past click, which would print a blank line
    before our one-line message."""

    def __init__(self, cause: KeyboardInterrupt) -> None:
        super().__init__(str(cause))
        self.cause = cause


DEFAULT_COMMAND = "build"
GROUP_OPTIONS = ("-h", "--help", "-V", "--version")


class BundleCommand(click.Command):
    """A command whose --help has its options in named sections and an Examples section.

    click has no option groups: `sections` names each section's options in order; an option
    no section names (--help) goes under "Other options", so none is ever hidden."""

    def __init__(self, *args, sections: tuple[tuple[str, tuple[str, ...]], ...] = (),
                 examples: tuple[str, ...] = (), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.sections = sections
        self.examples = examples

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows: dict[str | None, tuple[str, str]] = {}
        for param in self.get_params(ctx):
            row = param.get_help_record(ctx) if isinstance(param, click.Option) else None
            if row is not None:  # arguments and hidden options have none
                rows[param.name] = row
        shown: set[str | None] = set()
        for title, names in (*self.sections, ("Other options", tuple(rows))):
            records = [rows[name] for name in names if name in rows and name not in shown]
            shown.update(names)
            if records:
                with formatter.section(title if self.sections else "Options"):
                    formatter.write_dl(records)

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        write_examples(formatter, self.examples)
        super().format_epilog(ctx, formatter)


def write_examples(formatter: click.HelpFormatter, examples: tuple[str, ...]) -> None:
    """The lines as written (click would rewrap them): each is a command to copy."""
    if examples:
        with formatter.section("Examples"):
            for line in examples:
                formatter.write(f"{'':>{formatter.current_indent}}{line}\n")


class DefaultCommandGroup(click.Group):
    """`bundle BINARY...` runs the default command; `bundle inspect ...` a subcommand."""

    command_class = BundleCommand
    examples = (
        "bundle myagent -o myagent.tar.zst",
        "bundle inspect myagent",
        "bundle verify myagent.tar.zst -- --version",
        "bundle help build",
    )

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        write_examples(formatter, self.examples)
        super().format_epilog(ctx, formatter)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # `help` is a command word: a program named help is bundled as `./help`.
        if args and args[0] not in self.commands and args[0] not in GROUP_OPTIONS:
            args = [DEFAULT_COMMAND, *args]
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as exc:
            raise Stopped(exc) from exc


@click.group(cls=DefaultCommandGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="bundle")
def cli() -> None:
    """Bundle a dynamically linked Linux program with its glibc so it runs anywhere.

    \b
      bundle BINARY...          the artifact (the same as `bundle build BINARY...`)
      bundle inspect BINARY     what it needs, and why
      bundle verify ARTIFACT    run it in a root without the host's glibc
      bundle help [COMMAND]     this help, or a command's
    """


@cli.command("help", examples=("bundle help", "bundle help build"))
@click.argument("command", required=False, metavar="[COMMAND]")
@click.pass_context
def help_command(ctx: click.Context, command: str | None) -> None:
    """Show the help of bundle, or of COMMAND (the same as `bundle COMMAND --help`)."""
    group = ctx.parent
    assert group is not None
    if command is None:
        click.echo(group.get_help())
        return
    chosen = cli.get_command(group, command)
    if chosen is None:
        raise click.UsageError(f"help {command}: no such command; choose "
                               f"{', '.join(cli.list_commands(group))}")
    with click.Context(chosen, info_name=command, parent=group) as sub:
        click.echo(chosen.get_help(sub))


def library_path_option(value: str | None) -> tuple[str, ...]:
    """`--library-path A:B` as target dirs; relative entries would depend on the cwd."""
    if not value:
        return ()
    dirs = tuple(part for part in value.split(":") if part)
    for directory in dirs:
        if not directory.startswith("/") and not directory.startswith("$ORIGIN"):
            raise InputError(f"--library-path {directory}: must be an absolute directory")
    return dirs


@cli.command(examples=(
    "bundle inspect ./myagent",
    "bundle inspect --sysroot /srv/bullseye /usr/bin/curl",
    "bundle inspect --json myagent.tar.zst",
))
@click.argument("binary", metavar="BINARY|ARTIFACT")
@click.option("--sysroot", default="/", show_default=True, metavar="DIR",
              help="Root of the target system whose libraries are bundled (a host "
                   "program path is read from inside it).")
@click.option("--library-path", "library_path", metavar="DIRS",
              help="Colon-separated dirs searched like LD_LIBRARY_PATH, inside --sysroot "
                   "(the builder's own LD_LIBRARY_PATH is never used).")
@click.option("--allow-missing", is_flag=True,
              help="List libraries that cannot be found instead of failing.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def inspect(binary: str, sysroot: str, library_path: str | None, allow_missing: bool,
            as_json: bool) -> None:
    """Show what BINARY needs: the loader's closure, why each file, the glibc it needs.

    Given an ARTIFACT (.tar.zst/.tar.gz/.tar.xz/.tar or a directory written by bundle):
    what it holds, the packages and licences of its files, and its report's verdict."""
    from bundler.artifact_inspection import is_artifact

    if is_artifact(binary):  # by content: an ELF file never is
        inspect_artifact(binary, as_json)
        return
    from bundler.inputs import note_substitutions, sysroot_input
    from bundler.inspection import inspect_program, inspection_json, inspection_text
    from bundler.resolve import ResolveOptions
    from bundler.sysroot import Sysroot

    options = ResolveOptions(library_path=library_path_option(library_path),
                             allow_missing=allow_missing)
    root = Sysroot(sysroot)
    program = sysroot_input(binary, root, "program")
    note_substitutions((program,))
    result = inspect_program(program.path, root, options)
    if as_json:
        click.echo(json.dumps(inspection_json(result), indent=2, sort_keys=False))
    else:
        click.echo(terminal_safe(inspection_text(result)), nl=False)


def inspect_artifact(artifact: str, as_json: bool) -> None:
    """`bundle inspect ARTIFACT`: the program's options do not apply to an artifact."""
    from bundler.artifact_inspection import artifact_json, artifact_text, read_artifact

    context = click.get_current_context()
    for option, flag in (("sysroot", "--sysroot"), ("library_path", "--library-path"),
                         ("allow_missing", "--allow-missing")):
        if context.get_parameter_source(option) != click.core.ParameterSource.DEFAULT:
            raise InputError(f"{flag}: applies to a program, not to an artifact "
                             f"({artifact})")
    facts = read_artifact(artifact)
    if as_json:
        click.echo(json.dumps(artifact_json(facts), indent=2, sort_keys=False))
    else:
        click.echo(terminal_safe(artifact_text(facts)), nl=False)


def report_options(command):
    """--report FILE and --json, shared by the build and compare commands."""
    command = click.option("--json", "as_json", is_flag=True,
                           help="Print the JSON report on stdout.")(command)
    return click.option("--report", "report_file", metavar="FILE",
                        help="Write the report: FILE.md, FILE.json or FILE.txt.")(command)


def run_option(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    try:
        return tuple(shlex.split(value))
    except ValueError as exc:
        raise InputError(f"--run {value!r}: {exc}") from None


@contextlib.contextmanager
def quieted(quiet: bool):
    """-q: what the build says on stderr on its way (notes, the progress line) is dropped;
    an error still reaches main() as an exception and is printed there, after this."""
    if not quiet:
        yield
        return
    with contextlib.redirect_stderr(io.StringIO()):
        yield


def verbose_notes(result, verbose: bool) -> str:
    """-v: the resolver's notes per program (`bundle inspect` shows them too; the summary
    leaves them out to stay one screen)."""
    if not verbose:
        return ""
    several = len(result.closures) > 1
    return "".join(f"bundle: note: {closure.program_label + ': ' if several else ''}{note}\n"
                   for closure in result.closures for note in closure.notes)


def emit_report(report, report_file: str | None, as_json: bool, text_on_stdout: bool) -> None:
    """Write the report where it was asked for; the text goes to stdout in compare mode."""
    from bundler.report_render import report_json, report_text, use_color

    if report_file:
        write_report_file(report, report_file)
    if as_json:
        click.echo(report_json(report), nl=False)
    elif text_on_stdout:
        click.echo(terminal_safe(report_text(report, color=use_color(sys.stdout.isatty()))),
                   nl=False)


REPORT_ENDINGS = (".md", ".json", ".txt")


def check_report_file(path: str | None) -> None:
    """Refuse a --report ending before anything is built or written."""
    if path is not None and not path.endswith(REPORT_ENDINGS):
        raise InputError(f"--report {path}: end it with .md, .json or .txt")


def write_report_file(report, path: str) -> None:
    """Atomically: a temporary beside PATH renamed over it. The rename replaces whatever
    PATH is, a symlink included: the report is never written through a link (to a file
    the user did not name), and a reader never sees half a report."""
    from bundler.report_render import report_json, report_markdown, report_text
    from bundler.scratch import make_file, sweep

    check_report_file(path)
    renderers = {".md": report_markdown, ".json": report_json, ".txt": report_text}
    renderer = next(r for ending, r in renderers.items() if path.endswith(ending))
    text = renderer(report).encode()
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path) and not os.path.islink(path):
        raise InputError(f"--report {path}: is a directory")
    sweep(directory)
    try:
        part = make_file(directory, os.path.basename(path))
    except OSError as exc:
        raise InputError(f"--report {path}: cannot write: {exc.strerror or exc}") from None
    try:
        assert part.handle is not None
        with part.handle as handle:
            handle.write(text)
        os.chmod(part.path, 0o644)
        os.replace(part.path, path)
    except OSError as exc:
        part.discard()
        raise InputError(f"--report {path}: cannot write: {exc.strerror or exc}") from None
    except BaseException:
        part.discard()
        raise
    part.release()


BUILD_SECTIONS = (
    ("Output", ("out", "name", "prefix", "sbom")),
    ("What goes in", ("sysroot", "library_path", "allow_missing", "add", "exclude", "nss",
                      "gconv", "locale_names", "allow_setuid")),
    ("Launcher", ("launcher", "launcher_type")),
    ("Compare with the static build", ("static", "run_args")),
    ("Report", ("report_file", "as_json", "quiet", "verbose")),
)


@cli.command(DEFAULT_COMMAND, sections=BUILD_SECTIONS, examples=(
    "bundle ./myagent -o dist/myagent.tar.zst",
    "bundle ./server ./worker --name suite --prefix /opt/suite",
    "bundle --sysroot /srv/bullseye /usr/bin/curl --nss none --locale C.UTF-8",
    "bundle ./myagent --static ./myagent-static --run '--version' --report report.md",
    "bundle -q ./myagent --json > report.json",
))
@click.argument("binaries", metavar="BINARY...", nargs=-1, required=True)
@click.option("-o", "--output", "out", metavar="OUT",
              help="OUT.tar.zst (default ./NAME.tar.zst), .tar.gz, .tar.xz, .tar, or DIR/.")
@click.option("--name", metavar="NAME", help="Artifact name (default: the first BINARY's).")
@click.option("--prefix", metavar="DIR", help="Install prefix (default /opt/NAME).")
@click.option("--launcher", type=click.Choice(LAUNCHER_MODES), default="loader",
              show_default=True, help="How bin/ starts the program (env leaks to children).")
@click.option("--launcher-type", "launcher_type", type=click.Choice(LAUNCHER_TYPES),
              default="auto", show_default=True,
              help="What bin/NAME is: a static native launcher (keeps argv[0], needs no "
                   "/bin/sh; built with the C compiler for the architecture), a POSIX sh "
                   "script, or auto (native when a compiler is found).")
@click.option("--sysroot", default="/", show_default=True, metavar="DIR",
              help="Root of the system whose libraries are bundled (a host program path "
                   "is read from inside it).")
@click.option("--library-path", "library_path", metavar="DIRS",
              help="Colon-separated dirs searched like LD_LIBRARY_PATH, inside --sysroot.")
@click.option("--allow-missing", is_flag=True, help="Leave out libraries that cannot be found.")
@click.option("--nss", "nss", default="auto", show_default=True, metavar="auto|none|LIST",
              help="NSS modules to bundle: auto (when the program looks users or hosts "
                   "up: every libnss_*.so.2 the build root has, and those its nsswitch.conf "
                   "names), none, or a list of sources.")
@click.option("--gconv", "gconv", metavar="all|CHARSETS",
              help="Bundle gconv modules for iconv (all, or e.g. KOI8-R,EBCDIC-US) for the "
                   "bundled glibc.")
@click.option("--locale", "locale_names", multiple=True, metavar="NAME",
              help="Bundle a compiled locale (e.g. C.UTF-8, en_US.UTF-8; repeatable, or "
                   "comma-separated; all) for the bundled glibc.")
@click.option("--add", "add", multiple=True, metavar="PATH",
              help="A shared object the program dlopens (a plugin): into lib/, with its "
                   "dependencies (repeatable).")
@click.option("--exclude", "exclude", multiple=True, metavar="GLOB",
              help="Leave libraries whose SONAME matches GLOB to the host (repeatable).")
@click.option("--allow-setuid", is_flag=True,
              help="Bundle a setuid/setgid/capability program (privileged only at the prefix).")
@click.option("--static", "static", metavar="STATIC_BINARY",
              help="Compare mode: the fully static build of the same program.")
@click.option("--run", "run_args", metavar="ARGS",
              help="Compare mode: run both with ARGS (shell-style words) and compare.")
@click.option("--sbom", "sbom", default=",".join(SBOM_FORMATS), show_default=True,
              metavar="FORMATS|none",
              help="SBOMs to write in .bundle/ and beside OUT (OUT.cdx.json, OUT.spdx.json): "
                   "cyclonedx, spdx, both comma-separated, or none. Licences and SOURCES "
                   "are always carried.")
@click.option("-q", "--quiet", is_flag=True,
              help="No summary or notes on stderr: errors only.")
@click.option("-v", "--verbose", is_flag=True,
              help="Also the resolver's notes on stderr (what glibc loads at run time, "
                   "libraries found in this machine's multiarch dirs).")
@report_options
def build_command(binaries: tuple[str, ...], out: str | None, name: str | None,
                  prefix: str | None, launcher: str, launcher_type: str, sysroot: str,
                  library_path: str | None,
                  allow_missing: bool, nss: str, gconv: str | None,
                  locale_names: tuple[str, ...], add: tuple[str, ...],
                  exclude: tuple[str, ...],
                  allow_setuid: bool,
                  static: str | None,
                  run_args: str | None, sbom: str, quiet: bool, verbose: bool,
                  report_file: str | None, as_json: bool) -> None:
    """Write the fallback artifact for BINARY... (several share one lib/)."""
    from bundler.build import (  # keeps `inspect` start-up light
        BuildRequest,
        build,
        refuse_inputs_as_output,
    )
    from bundler.plan import PlanOptions
    from bundler.resolve import ResolveOptions
    from bundler.terminal_summary import summary_text

    stop_at_once()  # a signal from here on stops the build, one since start-up now
    if quiet and verbose:
        raise InputError("-q/--quiet and -v/--verbose: choose one")
    check_report_file(report_file)
    formats = sbom_formats(sbom)
    if formats is None:
        raise InputError(f"--sbom {sbom}: choose {', '.join(SBOM_FORMATS)}, both "
                         "comma-separated, or none")
    request = BuildRequest(
        binaries=binaries, out=out, sysroot=sysroot,
        resolve=ResolveOptions(library_path=library_path_option(library_path),
                               allow_missing=allow_missing),
        plan=PlanOptions(name=name, prefix=prefix, launcher=launcher,
                         allow_setuid=allow_setuid, exclude=exclude,
                         launcher_type=launcher_type),
        add=add, nss=nss, gconv=gconv, locales=locale_names, static=static,
        run_args=run_option(run_args), sbom=formats,
    )
    if report_file:
        refuse_inputs_as_output(report_file, "--report",
                                (*binaries, *add, *((static,) if static else ())))
    with quieted(quiet):
        result = build(request)
    if not quiet:
        click.echo(terminal_safe(summary_text(result) + verbose_notes(result, verbose)),
                   nl=False, err=True)
    emit_report(result.report, report_file, as_json, text_on_stdout=static is not None)


@cli.command(examples=(
    "bundle compare myagent.tar.zst ./myagent-static --run '--version'",
    "bundle compare dist/myagent/ ./myagent-static --report compare.md",
))
@click.argument("artifact", metavar="ARTIFACT")
@click.argument("static", metavar="STATIC_BINARY")
@click.option("--run", "run_args", metavar="ARGS",
              help="Run both with ARGS (shell-style words) and compare.")
@click.option("--sysroot", default="/", show_default=True, metavar="DIR",
              help="Where the Go diagnosis looks for static archives (libc.a, lib*.a).")
@report_options
def compare(artifact: str, static: str, run_args: str | None, sysroot: str,
            report_file: str | None, as_json: bool) -> None:
    """Compare an artifact (OUT.tar.zst or its directory) with the static build."""
    from bundler.compare import compare_report
    from bundler.signals import checkpoint, deferred_signals

    stop_at_once()  # a signal since start-up (entry.py) stops it here, before any work
    check_report_file(report_file)
    with deferred_signals():  # the runs' sandboxes and temp dirs go first (run_both)
        report = compare_report(artifact, static, run_option(run_args), sysroot)
        checkpoint()  # a signal during the analysis: stop here, not after the report
    emit_report(report, report_file, as_json, text_on_stdout=True)


# Arguments for the program come after `--`: an unknown option before it is a usage error
# (a typo such as --expect-exitt must not reach the program and let the run pass).
@cli.command(examples=(
    "bundle verify myagent.tar.zst -- --version",
    "bundle verify myagent.tar.zst --root /srv/centos7 --expect-output 'agent [0-9]' -- -V",
    "bundle verify arm64/myagent.tar.zst --emulator qemu-aarch64-static -- --help",
))
@click.argument("artifact", metavar="ARTIFACT")
@click.argument("args", nargs=-1, type=click.UNPROCESSED, metavar="[-- ARGS...]")
@click.option("--root", "root", default="bare", show_default=True, metavar="bare|DIR",
              help="Run in an empty root made here, or in DIR (an old distribution's tree; "
                   "shown read-only, never written).")
@click.option("--expect-exit", "expect_exit", type=int, default=0, show_default=True,
              metavar="N", help="The exit code a passing run has.")
@click.option("--expect-output", "expect_output", metavar="REGEX",
              help="A regular expression a passing run's stdout must contain.")
@click.option("--emulator", "emulator", metavar="CMD",
              help="Run another architecture's artifact under CMD (e.g. qemu-aarch64-static), "
                   "through the bundled loader.")
@click.option("--program", "program", metavar="NAME",
              help="Which of the artifact's programs to run (default: the first).")
@click.option("--env", "env", multiple=True, metavar="NAME=VALUE",
              help="Set a variable for the run (repeatable; the root gets PATH, HOME, LANG=C).")
@click.option("--timeout", "timeout", type=click.FloatRange(min=0.1), default=60.0,
              show_default=True, metavar="SECONDS", help="A run taking longer fails.")
def verify(artifact: str, args: tuple[str, ...], root: str, expect_exit: int,
           expect_output: str | None, emulator: str | None, program: str | None,
           env: tuple[str, ...], timeout: float) -> None:
    """Check ARTIFACT against its manifest and run it in an isolated root: exit 0 when it
    passes, 4 when it does not."""
    from bundler.errors import EXIT_VERIFY_FAILED
    from bundler.signals import checkpoint, deferred_signals
    from bundler.verify import VerifyRequest, render
    from bundler.verify import verify as run_verify

    # A signal is acted on between steps and while a run is waited for: the sandbox is
    # killed and the temporary directory removed before the one-line message.
    stop_at_once()  # one since start-up (entry.py) stops it here, before any work
    with deferred_signals():
        result = run_verify(VerifyRequest(
            artifact=artifact, root=root, args=tuple(args), expect_exit=expect_exit,
            expect_output=expect_output, emulator=emulator, program=program, timeout=timeout,
            env=env))
        checkpoint()
    click.echo(terminal_safe(render(result)), nl=False)
    if not result.passed:
        sys.exit(EXIT_VERIFY_FAILED)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and turn user-facing failures into one line each."""
    forget_written()
    try:
        code = cli.main(args=argv, prog_name="bundle", standalone_mode=False)
        settle()  # (for each outcome, first: a later signal must not change it)
    except BundleError as exc:
        settle()
        click.echo(f"bundle: error: {one_line(exc.message)}", err=True)
        sys.exit(exc.exit_code)
    except (Stopped, click.exceptions.Abort, KeyboardInterrupt) as exc:
        settle()
        # click turns a KeyboardInterrupt outside a command into Abort; look beneath.
        cause = exc.cause if isinstance(exc, Stopped) else exc.__cause__ or exc
        code, word = next(((c, w) for kind, c, w in STOPS if isinstance(cause, kind)),
                          (EXIT_INTERRUPTED, "interrupted"))
        done = written()
        click.echo(f"bundle: {word}; " + (
            f"{terminal_safe(one_line(done))} was written, whole, but what came after "
            "(the --run comparison) was not finished" if done else "nothing was written"),
            err=True)
        sys.exit(code)
    except click.ClickException as exc:  # usage errors: one line too, exit 2
        settle()
        click.echo(f"bundle: error: {one_line(exc.format_message())}", err=True)
        sys.exit(exc.exit_code if exc.exit_code else EXIT_BAD_INPUT)
    except BrokenPipeError:
        settle()
        sys.stderr.close()
        sys.exit(0)
    sys.exit(code if isinstance(code, int) else 0)

"""The `bundle` command line: thin click wrappers around the modules that do the work.

Every `BundleError` becomes one line on stderr and its documented exit code (see
`errors.py` and the README); click's own usage errors keep click's exit code 2.
"""

from __future__ import annotations

import json
import shlex
import sys

import click

from bundler import __version__
from bundler.errors import EXIT_BAD_INPUT, BundleError, InputError, Terminated
from bundler.text import one_line, terminal_safe

EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


DEFAULT_COMMAND = "build"


class DefaultCommandGroup(click.Group):
    """`bundle BINARY...` runs the default command; `bundle inspect ...` a subcommand."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help",
                                                                      "--version"):
            args = [DEFAULT_COMMAND, *args]
        return super().parse_args(ctx, args)


@click.group(cls=DefaultCommandGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bundle")
def cli() -> None:
    """Bundle a dynamically linked Linux program with its glibc so it runs anywhere.

    \b
      bundle myagent -o myagent.tar.zst      the artifact (same as `bundle build ...`)
      bundle inspect myagent                 what it needs, and why
      bundle verify myagent.tar.zst -- --version   run it where the host's glibc is not
    """


def library_path_option(value: str | None) -> tuple[str, ...]:
    """`--library-path A:B` as target dirs; relative entries would depend on the cwd."""
    if not value:
        return ()
    dirs = tuple(part for part in value.split(":") if part)
    for directory in dirs:
        if not directory.startswith("/") and not directory.startswith("$ORIGIN"):
            raise InputError(f"--library-path {directory}: must be an absolute directory")
    return dirs


@cli.command()
@click.argument("binary", metavar="BINARY")
@click.option("--sysroot", default="/", show_default=True, metavar="DIR",
              help="Root of the target system whose libraries are bundled.")
@click.option("--library-path", "library_path", metavar="DIRS",
              help="Colon-separated dirs searched like LD_LIBRARY_PATH (the builder's own "
                   "LD_LIBRARY_PATH is never used).")
@click.option("--allow-missing", is_flag=True,
              help="List libraries that cannot be found instead of failing.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def inspect(binary: str, sysroot: str, library_path: str | None, allow_missing: bool,
            as_json: bool) -> None:
    """Show what BINARY needs: the loader's closure, why each file, the glibc it needs."""
    from bundler.inspection import inspect_program, inspection_json, inspection_text
    from bundler.resolve import ResolveOptions
    from bundler.sysroot import Sysroot

    options = ResolveOptions(library_path=library_path_option(library_path),
                             allow_missing=allow_missing)
    result = inspect_program(binary, Sysroot(sysroot), options)
    if as_json:
        click.echo(json.dumps(inspection_json(result), indent=2, sort_keys=False))
    else:
        click.echo(terminal_safe(inspection_text(result)), nl=False)


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


def emit_report(report, report_file: str | None, as_json: bool, text_on_stdout: bool) -> None:
    """Write the report where it was asked for; the text goes to stdout in compare mode."""
    from bundler.render import report_json, report_text, use_color

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
    from bundler.render import report_json, report_markdown, report_text

    check_report_file(path)
    renderers = {".md": report_markdown, ".json": report_json, ".txt": report_text}
    renderer = next(r for ending, r in renderers.items() if path.endswith(ending))
    try:
        with open(path, "w") as handle:
            handle.write(renderer(report))
    except OSError as exc:
        raise InputError(f"--report {path}: cannot write: {exc.strerror or exc}") from None


@cli.command(DEFAULT_COMMAND)
@click.argument("binaries", metavar="BINARY...", nargs=-1, required=True)
@click.option("-o", "--output", "out", metavar="OUT",
              help="OUT.tar.zst (default ./NAME.tar.zst), .tar.gz, .tar.xz, .tar, or DIR/.")
@click.option("--name", metavar="NAME", help="Artifact name (default: the first BINARY's).")
@click.option("--prefix", metavar="DIR", help="Install prefix (default /opt/NAME).")
@click.option("--launcher", type=click.Choice(["loader", "env"]), default="loader",
              show_default=True, help="How bin/ starts the program (env leaks to children).")
@click.option("--sysroot", default="/", show_default=True, metavar="DIR",
              help="Root of the system whose libraries are bundled.")
@click.option("--library-path", "library_path", metavar="DIRS",
              help="Colon-separated dirs searched like LD_LIBRARY_PATH.")
@click.option("--allow-missing", is_flag=True, help="Leave out libraries that cannot be found.")
@click.option("--nss", "nss", default="auto", show_default=True, metavar="auto|none|LIST",
              help="NSS modules to bundle: those the build root's nsswitch.conf names "
                   "(auto, when the program looks users or hosts up), none, or a list.")
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
@report_options
def build_command(binaries: tuple[str, ...], out: str | None, name: str | None,
                  prefix: str | None, launcher: str, sysroot: str, library_path: str | None,
                  allow_missing: bool, nss: str, gconv: str | None,
                  locale_names: tuple[str, ...], add: tuple[str, ...],
                  exclude: tuple[str, ...],
                  allow_setuid: bool,
                  static: str | None,
                  run_args: str | None,
                  report_file: str | None, as_json: bool) -> None:
    """Write the fallback artifact for BINARY... (several share one lib/)."""
    from bundler.build import BuildRequest, build  # keeps `inspect` start-up light
    from bundler.plan import PlanOptions
    from bundler.resolve import ResolveOptions
    from bundler.summary import summary_text

    check_report_file(report_file)
    request = BuildRequest(
        binaries=binaries, out=out, sysroot=sysroot,
        resolve=ResolveOptions(library_path=library_path_option(library_path),
                               allow_missing=allow_missing),
        plan=PlanOptions(name=name, prefix=prefix, launcher=launcher,
                         allow_setuid=allow_setuid, exclude=exclude),
        add=add, nss=nss, gconv=gconv, locales=locale_names, static=static,
        run_args=run_option(run_args),
    )
    result = build(request)
    click.echo(terminal_safe(summary_text(result)), nl=False, err=True)
    emit_report(result.report, report_file, as_json, text_on_stdout=static is not None)


@cli.command()
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
    from bundler.reporting import compare_report

    check_report_file(report_file)
    report = compare_report(artifact, static, run_option(run_args), sysroot)
    emit_report(report, report_file, as_json, text_on_stdout=True)


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("artifact", metavar="ARTIFACT")
@click.argument("args", nargs=-1, type=click.UNPROCESSED, metavar="[-- ARGS...]")
@click.option("--root", "root", default="bare", show_default=True, metavar="bare|DIR",
              help="Run in an empty root made here, or in DIR (an old distribution's tree; "
                   "used through an overlay, never written).")
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
    from bundler.verify import VerifyRequest, render
    from bundler.verify import verify as run_verify

    result = run_verify(VerifyRequest(
        artifact=artifact, root=root, args=tuple(args), expect_exit=expect_exit,
        expect_output=expect_output, emulator=emulator, program=program, timeout=timeout,
        env=env))
    click.echo(terminal_safe(render(result)), nl=False)
    if not result.passed:
        sys.exit(EXIT_VERIFY_FAILED)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and turn user-facing failures into one line each."""
    try:
        code = cli.main(args=argv, prog_name="bundle", standalone_mode=False)
    except BundleError as exc:
        click.echo(f"bundle: error: {one_line(exc.message)}", err=True)
        sys.exit(exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt) as exc:
        # click turns KeyboardInterrupt (and so our Terminated) into Abort; look beneath.
        if isinstance(exc, Terminated) or isinstance(exc.__cause__, Terminated):
            click.echo("bundle: terminated; nothing was written", err=True)
            sys.exit(EXIT_TERMINATED)
        click.echo("bundle: interrupted; nothing was written", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code if exc.exit_code else EXIT_BAD_INPUT)
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(0)
    sys.exit(code if isinstance(code, int) else 0)

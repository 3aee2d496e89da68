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
import sys

import click

from bundler import __version__
from bundler.choices import (
    GATE_NAMES,
    LAUNCHER_MODES,
    LAUNCHER_TYPES,
    SBOM_FORMATS,
    library_path_option,
    parse_gates,
    run_option,
    sbom_formats,
)
from bundler.errors import EXIT_BAD_INPUT, BundleError, HungUp, InputError, Terminated
from bundler.package_meta import DEFAULT_MAINTAINER, DEFAULT_VERSION
from bundler.signals import forget_written, settle, stop_at_once, written
from bundler.text import one_line, terminal_safe

EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
EXIT_HUNG_UP = 129
EXIT_DIFFERENT = 1  # `bundle diff --exit-code`: the releases differ
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
      bundle release            every target of bundle.toml: built, summed, signed, verified
      bundle diff OLD NEW       what changed between two releases
      bundle service ARTIFACT   its systemd unit (direct start at the prefix)
      bundle sign SHA256SUMS    its detached signature, by gpg or minisign
      bundle schema [NAME]      the JSON Schema of a --json output
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


FAIL_ON_HELP = ("Exit 5 (after writing everything) when the report meets GATE: "
                f"{', '.join(GATE_NAMES)} (comma-separated or repeated).")


def fail_on_option(command):
    return click.option("--fail-on", "fail_on", multiple=True, metavar="GATE",
                        help=FAIL_ON_HELP)(command)


def report_options(command):
    """--report FILE, --json and --fail-on, shared by the build and compare commands."""
    command = fail_on_option(command)
    command = click.option("--json", "as_json", is_flag=True,
                           help="Print the JSON report on stdout.")(command)
    return click.option("--report", "report_file", metavar="FILE",
                        help="Write the report: FILE.md, FILE.json or FILE.txt.")(command)


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


def package_request(out: str | None, version: str, maintainer: str, description: str,
                    licence: str, homepage: str | None, service: bool, enable_service: bool):
    """The package's facts, checked; given for an output that is no package, refused (an
    archive has nowhere to put them)."""
    from bundler.package_meta import PackageMeta, checked_meta
    from bundler.packaging import package_format

    meta = checked_meta(PackageMeta("", version, maintainer, description, licence, homepage,
                                    service, enable_service))
    if package_format(out) is None:
        context = click.get_current_context()
        for option in ("version", "maintainer", "description", "licence", "homepage",
                       "service", "enable_service"):
            if context.get_parameter_source(option) != click.core.ParameterSource.DEFAULT:
                flag = "--" + option.replace("_", "-")
                raise InputError(f"{flag}: for a package (-o NAME.deb, NAME.rpm or "
                                 f"NAME.oci.tar), not for {out or 'an archive'}")
    return meta


def check_gates(report, gates: tuple[str, ...]) -> None:
    """After everything is written and shown: exit 5 when a --fail-on gate holds."""
    if not gates:
        return
    from bundler.errors import GateFailedError
    from bundler.gates import failed_gates

    failures = failed_gates(report, gates)
    if failures:
        raise GateFailedError("--fail-on: " + "; ".join(f"{f.gate}: {f.why}" for f in failures))


def check_report_file(path: str | None) -> None:
    """Refuse a --report ending before anything is built or written."""
    if path is not None and not path.endswith(REPORT_ENDINGS):
        raise InputError(f"--report {path}: end it with .md, .json or .txt")


def write_report_file(report, path: str) -> None:
    """Atomically: a temporary beside PATH renamed over it. The rename replaces whatever
    PATH is, a symlink included: the report is never written through a link (to a file
    the user did not name), and a reader never sees half a report."""
    from bundler.report_render import report_json, report_markdown, report_text
    from bundler.scratch import replace_with, sweep

    check_report_file(path)
    renderers = {".md": report_markdown, ".json": report_json, ".txt": report_text}
    renderer = next(r for ending, r in renderers.items() if path.endswith(ending))
    text = renderer(report).encode()
    if os.path.isdir(path) and not os.path.islink(path):
        raise InputError(f"--report {path}: is a directory")
    sweep(os.path.dirname(os.path.abspath(path)))
    try:
        replace_with(path, text)
    except OSError as exc:
        raise InputError(f"--report {path}: cannot write: {exc.strerror or exc}") from None


BUILD_SECTIONS = (
    ("Output", ("out", "name", "prefix", "sbom")),
    ("What goes in", ("sysroot", "library_path", "allow_missing", "add", "exclude", "nss",
                      "gconv", "locale_names", "allow_setuid")),
    ("Files, helpers and variables it needs beyond libraries",
     ("data", "helpers", "env", "from_package", "no_recipes")),
    ("Launcher", ("launcher", "launcher_type")),
    ("Compare with the static build", ("static", "run_args")),
    ("Report", ("report_file", "as_json", "quiet", "verbose", "fail_on")),
    ("Packages (-o NAME.deb, NAME.rpm, NAME.oci.tar)",
     ("version", "maintainer", "description", "licence", "homepage", "service",
      "enable_service")),
)


def carrying_options(command):
    """What the artifact carries beyond libraries, and how the program is pointed at it
    (carry.py; the recipes apply without being asked)."""
    options = [
        click.option("--data", "data", multiple=True, metavar="SRC[:DEST]",
                     help="Carry a file or tree of the build root (at DEST under the "
                          "artifact's top, default its own path: /usr/share/x -> "
                          "usr/share/x); programs in it get launchers, plugins their "
                          "libraries (repeatable)."),
        click.option("--helper", "helpers", multiple=True, metavar="PROG[:DEST]",
                     help="Bundle another program this one executes, sharing lib/; its "
                          "launcher at DEST (default bin/NAME) (repeatable)."),
        click.option("--env", "env", multiple=True, metavar="NAME=VALUE",
                     help="Set a variable in the launcher; {top} is the artifact's top "
                          "(GIT_EXEC_PATH={top}/usr/lib/git-core). Renamed where the "
                          "bundled objects read it, else inherited (repeatable)."),
        click.option("--from-package", "from_package", is_flag=True,
                     help="Also carry the files of the Debian package that owns the first "
                          "program (documentation left out)."),
        click.option("--no-recipes", "no_recipes", is_flag=True,
                     help="Do not apply the built-in recipes (python3, perl, git, openssl, "
                          "gpg, fontconfig, compiled-in locales)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def package_options(command):
    """The package's own facts, for -o NAME.deb|.rpm|.oci.tar (package_meta.PackageMeta)."""
    options = [
        click.option("--version", "version", metavar="VERSION", default=DEFAULT_VERSION,
                     show_default=True, help="The package's version."),
        click.option("--maintainer", metavar="'NAME <EMAIL>'",
                     default=DEFAULT_MAINTAINER, show_default=True,
                     help="Who maintains the package."),
        click.option("--description", metavar="TEXT", default="",
                     help="One line saying what it is (default: made from the programs)."),
        click.option("--licence", metavar="SPDX", default="NOASSERTION", show_default=True,
                     help="The program's own licence (the bundled packages' are in "
                          ".bundle/)."),
        click.option("--homepage", metavar="URL", help="The project's home page."),
        click.option("--service", is_flag=True,
                     help="Ship a systemd unit for the first program (direct start at the "
                          "prefix; `bundle service ARTIFACT` prints it)."),
        click.option("--enable-service", "enable_service", is_flag=True,
                     help="Have the package's scripts enable and start the unit."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


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
@carrying_options
@report_options
@package_options
def build_command(binaries: tuple[str, ...], out: str | None, name: str | None,
                  prefix: str | None, launcher: str, launcher_type: str, sysroot: str,
                  library_path: str | None,
                  allow_missing: bool, nss: str, gconv: str | None,
                  locale_names: tuple[str, ...], add: tuple[str, ...],
                  exclude: tuple[str, ...],
                  allow_setuid: bool,
                  static: str | None,
                  run_args: str | None, sbom: str, quiet: bool, verbose: bool,
                  report_file: str | None, as_json: bool, fail_on: tuple[str, ...],
                  version: str, maintainer: str, description: str, licence: str,
                  homepage: str | None, service: bool, enable_service: bool,
                  data: tuple[str, ...], helpers: tuple[str, ...], env: tuple[str, ...],
                  from_package: bool, no_recipes: bool) -> None:
    """Write the fallback artifact for BINARY... (several share one lib/): an archive, a
    directory, or a .deb, .rpm or OCI image of it."""
    from bundler.build import (  # keeps `inspect` start-up light
        BuildRequest,
        build,
        refuse_inputs_as_output,
    )
    from bundler.carry import parse_data, parse_env, parse_helper
    from bundler.plan import PlanOptions
    from bundler.resolve import ResolveOptions
    from bundler.terminal_summary import summary_text

    stop_at_once()  # a signal from here on stops the build, one since start-up now
    if quiet and verbose:
        raise InputError("-q/--quiet and -v/--verbose: choose one")
    check_report_file(report_file)
    gates = parse_gates(fail_on)
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
        package=package_request(out, version, maintainer, description, licence, homepage,
                                service, enable_service),
        data=tuple(parse_data(d) for d in data), helpers=tuple(parse_helper(h) for h in helpers),
        env=tuple(parse_env(e) for e in env), from_package=from_package,
        recipes=not no_recipes,
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
    check_gates(result.report, gates)


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
            report_file: str | None, as_json: bool, fail_on: tuple[str, ...]) -> None:
    """Compare an artifact (OUT.tar.zst or its directory) with the static build."""
    from bundler.compare import compare_report
    from bundler.signals import checkpoint, deferred_signals

    stop_at_once()  # a signal since start-up (entry.py) stops it here, before any work
    check_report_file(report_file)
    gates = parse_gates(fail_on)
    with deferred_signals():  # the runs' sandboxes and temp dirs go first (run_both)
        report = compare_report(artifact, static, run_option(run_args), sysroot)
        checkpoint()  # a signal during the analysis: stop here, not after the report
    emit_report(report, report_file, as_json, text_on_stdout=True)
    check_gates(report, gates)


RELEASE_SECTIONS = (
    ("Configuration", ("config_file", "targets", "output_dir")),
    ("Override bundle.toml", ("name", "version", "prefix", "sbom", "fail_on", "no_verify",
                              "no_sign")),
    ("Report", ("as_json", "quiet")),
)


@cli.command("release", sections=RELEASE_SECTIONS, examples=(
    "bundle release",
    "bundle release --config ci/bundle.toml --version \"$CI_COMMIT_TAG\" --json > release.json",
    "bundle release --target arm64 --no-sign --fail-on hazard:high",
))
@click.option("-c", "--config", "config_file", metavar="FILE",
              help="The release's bundle.toml (default: the first in the working directory "
                   "or a parent).")
@click.option("--target", "targets", multiple=True, metavar="ARCH",
              help="Only these of the file's targets (repeatable).")
@click.option("--output-dir", "output_dir", metavar="DIR", help="Where the outputs go.")
@click.option("--name", metavar="NAME", help="The artifacts' name.")
@click.option("--version", "version", metavar="VERSION",
              help="The release's version (in the file names).")
@click.option("--prefix", metavar="DIR", help="Install prefix, for every target.")
@click.option("--sbom", "sbom", metavar="FORMATS|none",
              help="SBOMs: cyclonedx, spdx, both comma-separated, or none.")
@fail_on_option
@click.option("--no-verify", "no_verify", is_flag=True, help="Do not run the artifacts.")
@click.option("--no-sign", "no_sign", is_flag=True, help="Do not sign SHA256SUMS.")
@click.option("--json", "as_json", is_flag=True, help="Print the release as JSON on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="No summary on stderr: errors only.")
def release_command(config_file: str | None, targets: tuple[str, ...], output_dir: str | None,
                    name: str | None, version: str | None, prefix: str | None,
                    sbom: str | None, fail_on: tuple[str, ...], no_verify: bool, no_sign: bool,
                    as_json: bool, quiet: bool) -> None:
    """Build every target of bundle.toml, write one SHA256SUMS, sign it, verify each
    artifact, and exit non-zero when a verification (4) or a fail-on gate (5) fails."""
    from bundler.config import ReleaseOverrides, find_config, overridden, read_config
    from bundler.release import release
    from bundler.release_render import exit_code, failure_line, release_json, release_text

    stop_at_once()
    path = config_file or find_config(os.getcwd())
    if path is None:
        raise InputError("release: no bundle.toml in this directory or its parents; "
                         "give --config FILE")
    formats = sbom_formats(sbom) if sbom is not None else None
    if sbom is not None and formats is None:
        raise InputError(f"--sbom {sbom}: choose {', '.join(SBOM_FORMATS)}, both "
                         "comma-separated, or none")
    config = overridden(read_config(path), ReleaseOverrides(
        targets=targets, output_dir=output_dir, name=name, version=version, prefix=prefix,
        sbom=formats, fail_on=parse_gates(fail_on), verify=not no_verify, sign=not no_sign))
    with quieted(quiet):
        result = release(config)
    if not quiet:
        click.echo(terminal_safe(release_text(result)), nl=False, err=True)
    if as_json:
        click.echo(release_json(result), nl=False)
    line = failure_line(result)
    if line is not None:
        from bundler.errors import GateFailedError, VerifyFailedError

        error = VerifyFailedError if exit_code(result) == 4 else GateFailedError
        raise error(line)


def read_named(artifact: str):
    """`read_artifact`, its error naming ARTIFACT: of two, the user must know which one
    holds the hostile member (the unpacker's messages name the member only)."""
    from bundler.artifact_inspection import read_artifact

    try:
        return read_artifact(artifact)
    except BundleError as exc:
        if exc.message.startswith(f"{artifact}: "):
            raise
        raise type(exc)(f"{artifact}: {exc.message}") from None


@cli.command("diff", examples=(
    "bundle diff dist/v1/myagent.tar.zst dist/v2/myagent.tar.zst",
    "bundle diff --json old.tar.zst new.tar.zst > diff.json",
    "bundle diff --exit-code released.tar.zst candidate.tar.zst || echo changed",
))
@click.argument("old", metavar="OLD")
@click.argument("new", metavar="NEW")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--exit-code", "exit_code", is_flag=True,
              help="Exit 1 when the releases differ (as `git diff --exit-code`); "
                   "without it 0 either way.")
def diff_command(old: str, new: str, as_json: bool, exit_code: bool) -> None:
    """What changed from release OLD to NEW (artifacts: .tar.zst/.tar.gz/.tar.xz/.tar or
    directories written by bundle): verdict, glibc, packages, settings, sizes, files.

    Each is checked against its manifest first, as `bundle inspect` does (exit 4)."""
    from bundler.release_diff import diff_artifacts
    from bundler.release_diff_render import diff_json, diff_text

    result = diff_artifacts(read_named(old), read_named(new))
    if as_json:
        click.echo(json.dumps(diff_json(result), indent=2, sort_keys=False))
    else:
        click.echo(terminal_safe(diff_text(result)), nl=False)
    if exit_code and result.differ:
        sys.exit(EXIT_DIFFERENT)


@cli.command("service", examples=(
    "bundle service myagent.tar.zst > /etc/systemd/system/myagent.service",
    "bundle service --description 'Metrics agent' dist/myagent/",
))
@click.argument("artifact", metavar="ARTIFACT")
@click.option("--name", "name", metavar="NAME",
              help="The service's name in its Description= (default: the artifact's).")
@click.option("--description", "description", metavar="TEXT",
              help="Its Description= (default: made from the name and the programs).")
def service_command(artifact: str, name: str | None, description: str | None) -> None:
    """Print the systemd unit of ARTIFACT's first program: started directly at the prefix
    (ExecStart=PREFIX/libexec/NAME) with the Environment= lines the launcher would set, and
    bundle's hardening defaults. ARTIFACT is checked against its manifest first, as
    `bundle inspect` does (exit 4)."""
    from bundler.package_meta import PackageMeta
    from bundler.service import unit_text

    manifest = read_named(artifact).manifest
    meta = PackageMeta(name=name or manifest.name, description=description or "")
    click.echo(unit_text(manifest, meta), nl=False)


# Arguments for the program come after `--`: an unknown option before it is a usage error
# (a typo such as --expect-exitt must not reach the program and let the run pass).
@cli.command(examples=(
    "bundle verify myagent.tar.zst -- --version",
    "bundle verify myagent.tar.zst --root /srv/centos7 --expect-output 'agent [0-9]' -- -V",
    "bundle verify arm64/myagent.tar.zst --emulator qemu-aarch64-static -- --help",
    "bundle verify dist/myagent.tar.zst --key release.pub -- --version",
    "bundle verify myagent.tar.zst --trace -- --version",
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
@click.option("--key", "key", metavar="PUBKEY",
              help="First check the signed SHA256SUMS with this public key (minisign .pub or "
                   "OpenPGP); it must list ARTIFACT with its sha256.")
@click.option("--sums", "sums", metavar="FILE",
              help="The SHA256SUMS to check with --key (default: the one beside ARTIFACT).")
@click.option("--trace", "trace", is_flag=True,
              help="Run it once more under strace and list the files it opens, executes or "
                   "looks for outside the artifact (information, not judged; needs strace).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the result as one JSON object (`bundle schema verify`).")
def verify(artifact: str, args: tuple[str, ...], root: str, expect_exit: int,
           expect_output: str | None, emulator: str | None, program: str | None,
           env: tuple[str, ...], timeout: float, key: str | None, sums: str | None,
           trace: bool, as_json: bool) -> None:
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
            env=env, key=key, sums=sums, trace=trace))
        checkpoint()
    if as_json:
        from bundler.verify_json import verify_json

        click.echo(json.dumps(verify_json(result), indent=2, sort_keys=False))
    else:
        click.echo(terminal_safe(render(result)), nl=False)
    if not result.passed:
        sys.exit(EXIT_VERIFY_FAILED)


@cli.command("sign", examples=(
    "bundle sign dist/SHA256SUMS --minisign ~/.minisign/release.key",
    "bundle sign dist/SHA256SUMS --gpg release@example.org",
    "bundle sign SHA256SUMS --gpg KEYID --passphrase-file /run/secrets/gpg-passphrase",
))
@click.argument("file", metavar="FILE")
@click.option("--gpg", "gpg_key", metavar="KEYID",
              help="Sign with this key of your gpg keyring (GNUPGHOME): FILE.asc, armoured.")
@click.option("--minisign", "minisign_key", metavar="SECKEY",
              help="Sign with this minisign secret key file: FILE.minisig.")
@click.option("--passphrase-file", "passphrase_file", metavar="FILE",
              help="The key's passphrase is this file's first line (CI: nobody types it).")
def sign_command(file: str, gpg_key: str | None, minisign_key: str | None,
                 passphrase_file: str | None) -> None:
    """Write a detached signature of FILE (a release's SHA256SUMS) beside it, with gpg or
    minisign; `bundle verify --key PUBKEY` checks it, and so do gpgv and minisign -V."""
    from bundler.signing import SigningKey, sign

    stop_at_once()  # a signal since start-up stops it here; later, sign() leaves nothing
    if (gpg_key is None) == (minisign_key is None):
        raise InputError("bundle sign: give one of --gpg KEYID or --minisign SECKEY")
    key = (SigningKey("gpg", gpg_key, passphrase_file) if gpg_key is not None
           else SigningKey("minisign", str(minisign_key), passphrase_file))
    click.echo(f"bundle: wrote {terminal_safe(one_line(sign(file, key)))}", err=True)


@cli.command("schema", examples=(
    "bundle schema",
    "bundle schema build > build.schema.json",
    "bundle schema verify > verify.schema.json",
))
@click.argument("name", required=False, metavar="[NAME]")
def schema_command(name: str | None) -> None:
    """Print the JSON Schema of a --json output (build, compare, inspect-program,
    inspect-artifact, verify, ...); without NAME, the names, one a line."""
    from bundler.schemas import schema_names, schema_text

    if name is None:
        click.echo("\n".join(schema_names()))
    else:
        click.echo(schema_text(name), nl=False)


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
            f"{terminal_safe(one_line(done))} was written, whole, but what came after it "
            "(the --run comparison; a release's sums, signature and verification) was not "
            "finished" if done else "nothing was written"),
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

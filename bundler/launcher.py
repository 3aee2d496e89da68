"""Render the POSIX sh launchers in `launcher_templates/` for one program: the fallback
where no native launcher (native_launcher.py) can be built for the architecture.

The templates are plain shell (`$` as written, so shellcheck reads them as they are); a
value goes where its `@name@` marker stands. `@name@`, not `{{name}}`: braces are shell
syntax, and a `{{env_exports}}` line stops shellcheck's parser, while `@name@` is an
ordinary word. Values are single-quoted for the shell where they become words, so install
paths and names with spaces, quotes, `$` or newlines stay literal.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib import resources

from bundler import __version__
from bundler.carry import TOP
from bundler.plan import BundlePlan, EnvSetting
from bundler.text import shell_quote

# What follows "# " on the script's fourth line.
MODE_COMMENTS = {
    "loader": "Mode: loader. No LD_LIBRARY_PATH: child processes never see the bundled glibc.",
    "env": "Mode: env. Exports LD_LIBRARY_PATH, which child processes inherit.",
}
PLACEHOLDER = re.compile(r"@(\w+)@")


def fill_template(template: str, values: Mapping[str, str]) -> str:
    """`template` with every `@name@` replaced by `values[name]`, in one pass: a value is
    never scanned for markers, so a prefix holding "@prefix_q@" stays as written.

    A marker without a value, or a value without its marker, is a mistake in this package
    (a renamed marker would otherwise ship as literal text): ValueError, never a guess.
    """
    names = set(PLACEHOLDER.findall(template))
    missing = sorted(names - values.keys())
    unused = sorted(values.keys() - names)
    if missing or unused:
        raise ValueError(f"launcher template: no value for {missing}, no marker for {unused}")
    return PLACEHOLDER.sub(lambda marker: values[marker.group(1)], template)


def _template(name: str) -> str:
    return resources.files("bundler").joinpath("launcher_templates", name).read_text()


def render_launcher(plan: BundlePlan, program: str, below: str = "bin",
                    args: tuple[str, ...] = ()) -> str:
    """The launcher script text for `program` under `plan`'s mode, in the directory
    `below` the top (bin/NAME: "bin"; a carried tree's: "usr/lib/git-core"), putting `args`
    ({top} allowed) before the caller's."""
    up = below.count("/") + 1
    text = _template("common.sh") + _template(f"{plan.launcher}.sh")
    return fill_template(text, {
        "name": plan.name.replace("\n", " "),
        "version": __version__,
        "program": program.replace("\n", " "),
        "glibc": plan.glibc_release or "unknown",
        "mode_comment": MODE_COMMENTS[plan.launcher],
        "prefix_q": shell_quote(plan.prefix),
        "loader_q": shell_quote(plan.loader_name),
        "program_q": shell_quote(program),
        "argv0": '--argv0 "$0"' if plan.loader_supports_argv0 else "",
        "env_exports": "".join(_export_line(setting) for setting in plan.env),
        "up_path": "/.." * up,
        "below_q": shell_quote(below),
        "keeps_argv0": "yes" if plan.loader_supports_argv0 else "''",
        "set_args": (f"# The launcher's arguments come first (a recipe's).\nset -- "
                     f"{' '.join(shell_value(a) for a in args)} \"$@\"\n" if args else ""),
    })


def shell_value(template: str) -> str:
    """A value with `{top}` as one shell word: the literal parts single-quoted, the top
    as "$here"."""
    return '"$here"'.join(shell_quote(part) if part else "" for part in
                          template.split(TOP)) or "''"


def _export_line(setting: EnvSetting) -> str:
    """One export; the comment says whether programs started by this one see it."""
    if setting.scoped and not setting.why:
        comment = (f"# {setting.means} for the bundled glibc only: its libc.so.6 reads "
                   f"{setting.variable} instead, host programs ignore it.")
    elif setting.scoped:
        comment = (f"# {setting.means} ({setting.why}) for the bundled programs only: they "
                   f"read {setting.variable} instead, host programs ignore it.")
    else:
        comment = f"# {setting.means}: inherited by every program this one starts."
    return (f"{comment}\n{setting.variable}={shell_value(setting.template)}; "
            f"export {setting.variable}\n")

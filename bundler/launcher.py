"""Render the POSIX sh launchers in `launcher_templates/` for one program.

Values are substituted with `string.Template` and single-quoted for the shell, so install
paths and names with spaces, quotes, `$` or newlines stay literal.
"""

from __future__ import annotations

from importlib import resources
from string import Template

from bundler import __version__
from bundler.plan import BundlePlan

MODE_COMMENTS = {
    "loader": "# Mode: loader. Nothing is exported; child processes never see the bundled glibc.",
    "env": "# Mode: env. Exports LD_LIBRARY_PATH, which child processes inherit.",
}


def shell_quote(value: str) -> str:
    """One single-quoted shell word for `value` (POSIX: no escapes inside '...')."""
    return "'" + value.replace("'", "'\\''") + "'"


def _template(name: str) -> str:
    return resources.files("bundler").joinpath("launcher_templates", name).read_text()


def render_launcher(plan: BundlePlan, program: str) -> str:
    """The launcher script text for `program` under `plan`'s mode."""
    text = _template("common.sh") + _template(f"{plan.launcher}.sh")
    return Template(text).substitute(
        name=plan.name.replace("\n", " "),
        version=__version__,
        program=program.replace("\n", " "),
        glibc=plan.glibc_release or "unknown",
        mode_comment=MODE_COMMENTS[plan.launcher],
        prefix_q=shell_quote(plan.prefix),
        loader_q=shell_quote(plan.loader_name),
        program_q=shell_quote(program),
        argv0='--argv0 "$0"' if plan.loader_supports_argv0 else "",
        # Substituted values are not template text: a plain "$here" stays as written.
        env_exports="".join(f'{name}="$here/{path}"; export {name}\n'
                            for name, path in plan.env),
    )

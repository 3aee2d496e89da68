"""Render the POSIX sh launchers in `launcher_templates/` for one program: the fallback
where no native launcher (native_launcher.py) can be built for the architecture.

Values are substituted with `string.Template` and single-quoted for the shell, so install
paths and names with spaces, quotes, `$` or newlines stay literal.
"""

from __future__ import annotations

from importlib import resources
from string import Template

from bundler import __version__
from bundler.plan import BundlePlan, EnvSetting

MODE_COMMENTS = {
    "loader": "# Mode: loader. No LD_LIBRARY_PATH: child processes never see the bundled glibc.",
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
        env_exports="".join(_export_line(setting) for setting in plan.env),
    )


def _export_line(setting: EnvSetting) -> str:
    """One export; the comment says whether programs started by this one see it."""
    if setting.scoped:
        comment = (f"# {setting.means} for the bundled glibc only: its libc.so.6 reads "
                   f"{setting.variable} instead, host programs ignore it.")
    else:
        comment = f"# {setting.means}: inherited by every program this one starts."
    return f'{comment}\n{setting.variable}="$here/{setting.path}"; export {setting.variable}\n'


"""The values of the command line's choice options, and the parsing of option values, in
one place with no heavy imports.

The CLI lists them in `--help` (and imports nothing heavy to do so: `bundle inspect` starts
fast); plan.py and native_launcher.py check what they are given against the same tuples;
`bundle release` turns bundle.toml's values into a build with the same parsers.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from typing import Literal

from bundler.errors import InputError

LauncherMode = Literal["loader", "env"]  # how bin/NAME starts the program (launcher.py)
LAUNCHER_MODES: tuple[LauncherMode, ...] = ("loader", "env")
# What bin/NAME is: auto = native (a static C launcher) where a compiler exists, else sh.
LauncherType = Literal["native", "sh"]
LAUNCHER_TYPES = ("auto", "native", "sh")
SBOM_FORMATS = ("cyclonedx", "spdx")  # --sbom: both by default, or none


def sbom_formats(text: str) -> tuple[str, ...] | None:
    """`--sbom TEXT` as formats (() for none); None when TEXT names something else."""
    if text.strip() == "none":
        return ()
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    return names if names and all(n in SBOM_FORMATS for n in names) else None


def library_path_option(value: str | None) -> tuple[str, ...]:
    """`--library-path A:B` as target dirs; relative entries would depend on the cwd."""
    if not value:
        return ()
    dirs = tuple(part for part in value.split(":") if part)
    for directory in dirs:
        if not directory.startswith("/") and not directory.startswith("$ORIGIN"):
            raise InputError(f"--library-path {directory}: must be an absolute directory")
    return dirs


def run_option(value: str | None) -> tuple[str, ...] | None:
    """`--run ARGS` as the words a shell would split it into."""
    if value is None:
        return None
    try:
        return tuple(shlex.split(value))
    except ValueError as exc:
        raise InputError(f"--run {value!r}: {exc}") from None


# `--fail-on` gates (gates.py holds what makes each fail; these names are its keys, here so
# that --help and bundle.toml's checks need not import the report's modules).
GATE_NAMES = ("verdict:static", "verdict:artifact", "verdict:static-after-fixes",
              "hazard:high", "hazard:medium", "hazard:low", "missing-nss", "missing-library",
              "runs-differ", "licence:copyleft", "licence:unknown", "unsealed",
              "uncarried-files")


def parse_gates(values: Iterable[str], option: str = "--fail-on") -> tuple[str, ...]:
    """`--fail-on A,B --fail-on C` as gate names, in order, each once; an unknown name is
    refused before any work is done."""
    names = [n.strip() for value in values for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in GATE_NAMES]
    if unknown:
        raise InputError(f"{option} {unknown[0]}: no such gate; choose "
                         f"{', '.join(GATE_NAMES)}")
    return tuple(dict.fromkeys(names))

"""The values of the command line's choice options, in one place with no imports.

The CLI lists them in `--help` (and imports nothing heavy to do so: `bundle inspect` starts
fast); plan.py and native_launcher.py check what they are given against the same tuples.
"""

from __future__ import annotations

from typing import Literal

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

"""The published JSON Schemas of bundle's `--json` outputs, shipped in `bundler/schemas/`.

One file per output, `NAME.schema.json` (draft 2020-12), whose `$id` names the output and
its `format_version`; `bundle schema NAME` prints the installed version's file, so a
pipeline validates against exactly the tool it runs. The names are the files present
(a command that adds an output adds its schema file, and nothing here changes) and the
aliases: `bundle compare --json` prints the build's report (the same model, made from an
existing artifact), so `compare` is the build's schema, not a copy that could drift.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # (importlib.resources.abc is 3.11's; the annotation is never evaluated)
    from importlib.resources.abc import Traversable

from bundler.errors import InputError

SUFFIX = ".schema.json"
NAME = re.compile(r"[a-z][a-z0-9-]*")  # a file name in the package, never a path
ALIASES = {"compare": "build"}  # output -> the schema file it shares


def _directory() -> Traversable:
    return resources.files("bundler").joinpath("schemas")


def schema_names() -> tuple[str, ...]:
    """Every output's schema name (the files and the aliases), sorted."""
    files = {entry.name.removesuffix(SUFFIX) for entry in _directory().iterdir()
             if entry.name.endswith(SUFFIX)}
    return tuple(sorted(files | {alias for alias, name in ALIASES.items() if name in files}))


def schema_text(name: str) -> str:
    """The schema file as shipped (its exact text), or a one-line error naming the choices."""
    names = schema_names()
    if not NAME.fullmatch(name) or name not in names:
        raise InputError(f"schema {name}: no such schema; choose {', '.join(names)}")
    text: str = _directory().joinpath(ALIASES.get(name, name) + SUFFIX).read_text("utf-8")
    return text


def load_schema(name: str) -> dict:
    """The schema as a JSON object, for a validator."""
    data = json.loads(schema_text(name))
    assert isinstance(data, dict), name
    return data

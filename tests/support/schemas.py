"""The shipped JSON Schemas (bundler/schemas/) as the tests' oracle for every `--json` output.

`validate(name, data)` fails the test with every violation listed (path and message), so a
renamed, added or retyped key says where; format checking is on (draft 2020-12's
FORMAT_CHECKER). Each command's tests call it on what the real command printed.
"""

from __future__ import annotations

from functools import cache

from jsonschema import Draft202012Validator, ValidationError

from bundler.schemas import load_schema


@cache
def validator(name: str) -> Draft202012Validator:
    """A validator for the shipped schema NAME (itself checked against the metaschema);
    made once per name (the schemas are files of the package, fixed while tests run)."""
    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def violations(name: str, data: object) -> list[str]:
    """Every way `data` breaks schema NAME, one line each ("at input.sha256: ..."). A
    nullable object (`anyOf` [object, null]) is reported where inside it the object went
    wrong, not as a whole that matches neither."""
    found = [_deepest(error) for error in validator(name).iter_errors(data)]
    return [f"at {'.'.join(str(p) for p in error.absolute_path) or '(top)'}: "
            f"{error.message[:300]}"
            for error in sorted(found, key=lambda e: [str(p) for p in e.absolute_path])]


def _deepest(error: ValidationError) -> ValidationError:
    """Of the alternatives that failed, the one that got furthest into the data (and not
    merely "is not null")."""
    while error.context:
        error = max(error.context, key=lambda e: (len(e.absolute_path), e.validator != "type"))
    return error


def validate(name: str, data: object) -> None:
    """Assert that `data` (a parsed --json output) is valid against schema NAME."""
    problems = violations(name, data)
    assert not problems, f"not valid against {name}.schema.json:\n" + "\n".join(problems)

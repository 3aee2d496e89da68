"""`assert_never`: where code branches on every value of a kind, a kind nobody handles is a
mypy error, not a silent fall-through.

typing.assert_never is Python 3.11 and typing_extensions is not a dependency, so this is
the same few lines: `NoReturn` as a parameter type is mypy's bottom type (`Never`), so
only a value narrowed to nothing may be passed; at run time it can only be a bug.
"""

from __future__ import annotations

from typing import NoReturn


def assert_never(value: NoReturn) -> NoReturn:
    raise AssertionError(f"unhandled kind: {value!r}")

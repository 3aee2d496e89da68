"""Text from hostile files made safe for a terminal, for one-line errors and for sh.

Library names, paths and build settings come from the files being inspected; a DT_NEEDED
string may hold a newline (fuzzing found one splitting an error over two lines) or an
escape sequence that would drive the user's terminal.
"""

from __future__ import annotations

import re

KEPT_IN_BLOCKS = frozenset("\n\t")
# Colour and bold (SGR: ESC [ n;n m) are what the reports use on a terminal; harmless even
# when a file supplies them. Every other escape sequence is shown, not obeyed.
SGR = re.compile(r"\x1b\[[0-9;]*m")


def one_line(text: str) -> str:
    """Every control character shown escaped (\\n, \\x1b, ...): one line, inert."""
    return "".join(_escaped(c) if not c.isprintable() else c for c in text)


def terminal_safe(text: str) -> str:
    """Multi-line output with its newlines, tabs and colours kept, other controls escaped."""
    parts = []
    position = 0
    for match in SGR.finditer(text):
        parts.append(_block(text[position:match.start()]))
        parts.append(match.group())
        position = match.end()
    parts.append(_block(text[position:]))
    return "".join(parts)


def _block(text: str) -> str:
    return "".join(c if c.isprintable() or c in KEPT_IN_BLOCKS else _escaped(c) for c in text)


def shell_quote(value: str) -> str:
    """One single-quoted shell word for `value` (POSIX: no escapes inside '...'), whatever
    it holds: spaces, quotes, `$`, newlines."""
    return "'" + value.replace("'", "'\\''") + "'"


def _escaped(char: str) -> str:
    return repr(char)[1:-1] if char != "'" else char

"""Take the literal values out of a SQL statement before it leaves the process.

Vendor-neutral, so it sits outside ``otel_sentry._internal.sentry``: ``instrument/db.py`` applies it
to ``db.statement`` for every exporter (OTLP included), and Sentry's Queries insight, which groups
database spans by description, applies it again to descriptions from other sources. A statement must
never carry a user's data.

Every string and number literal becomes ``%s`` (the placeholder Sentry's own normalizer
writes), a list made only of literals collapses to ``(%s)`` so ``IN (1, 2)`` and
``IN (1, 2, 3)`` group together, driver placeholders (``?``, ``%s``, ``%(name)s``, ``$1``,
``:name``, ``@p1``) stay as they are, comments are dropped (sqlcommenter writes trace ids there,
which would make every statement unique) and whitespace is folded onto one line.

    parameterize_sql("SELECT * FROM users WHERE id = 42 AND name = 'bob'")
    # -> "SELECT * FROM users WHERE id = %s AND name = %s"

The work is one ``re.sub`` with a precompiled tokenizer. Every alternative starts with a
literal character, which lets the regex engine skip ahead in C to the next quote, digit,
``-``, ``/``, ``.`` or ``$``; and every alternative either succeeds once started or fails
within its own span, so the scan stays linear on any input, including unterminated quotes
and comments (they run to the end and are replaced whole).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Literal

__all__ = ["SqlDialect", "parameterize_sql"]

SqlDialect = Literal["ansi", "mysql"]
"""How quotes work. ``ansi`` (PostgreSQL, SQLite, SQL Server, Oracle): ``"x"`` is an identifier
and backslash is an ordinary character except in ``E'...'``. ``mysql`` (MySQL, MariaDB, and the
JSON-like statements of document stores): ``"x"`` is a string and backslash escapes."""

# Our own placeholder while scanning: a character that cannot survive from the input (NULs are
# removed first), so the list-collapsing pass can tell our literals from the driver's ``%s``.
_MARK = "\x00"

_NOT_AFTER = r"[\w$@:?.]"  # a digit after these is part of a name (t1) or a placeholder ($1)
_NUM_TAIL = r"(?:[eE][+-]?\d+)?(?![\w$])"
# One branch per leading character, each starting with a literal: see the module docstring.
_NUMBER = [
    rf"-(?<!{_NOT_AFTER}-)(?:0[xX][0-9a-fA-F]+|0[bB][01]+|(?:\d+(?:\.\d*)?|\.\d+){_NUM_TAIL})",
    rf"0(?<!{_NOT_AFTER}0)(?:[xX][0-9a-fA-F]+|[bB][01]+)(?![\w$])",
    *(rf"{d}(?<!{_NOT_AFTER}{d})\d*(?:\.\d*)?{_NUM_TAIL}" for d in "0123456789"),
    rf"\.(?<!{_NOT_AFTER}\.)\d+{_NUM_TAIL}",
]
_COMMENTS = [r"--[^\n]*", r"/\*.*?(?:\*/|\Z)"]
_BACKSLASH_BODY = r"(?:[^'\\]+|\\.?|'')*'?"
_ANSI = [
    *_COMMENTS,
    # E'...' is PostgreSQL's escape string, the one ANSI string where backslash escapes.
    rf"'(?<=[Ee]')(?<![\w$][Ee]'){_BACKSLASH_BODY}",
    r"'(?:[^']+|'')*'?",
    r"\$\$.*?(?:\$\$|\Z)",
    r"\$(?P<tag>[^\W\d]\w*)\$.*?(?:\$(?P=tag)\$|\Z)",
    *_NUMBER,
    r'"(?:[^"]+|"")*"?',
    r"`[^`]*`?",
]
_MYSQL = [
    *_COMMENTS,
    rf"'{_BACKSLASH_BODY}",
    r'"(?:[^"\\]+|\\.?|"")*"?',
    *_NUMBER,
    r"`[^`]*`?",
]
_TOKENIZERS: dict[str, re.Pattern[str]] = {
    "ansi": re.compile("|".join(_ANSI), re.S),
    "mysql": re.compile("|".join(_MYSQL), re.S),
}
_IDENTIFIER_QUOTES = {"ansi": '"`', "mysql": "`"}
_LITERAL_LIST = re.compile(rf"\( ?{_MARK}(?: ?, ?{_MARK})+ ?\)")

# Characters that end an operand: a ``-`` after them is subtraction, not a sign.
_OPERAND_END = frozenset("_)]\"'`$?")


def _replacer(identifier_quotes: str) -> Callable[[re.Match[str]], str]:
    def replace(match: re.Match[str]) -> str:
        text = match.group()
        first = text[0]
        if first in identifier_quotes:
            return text
        if first == "/" or text.startswith("--"):
            # One space keeps the tokens on either side of the comment apart.
            return " "
        if first == "-" and _is_subtraction(match.string, match.start()):
            return "-" + _MARK
        return _MARK

    return replace


_REPLACERS = {dialect: _replacer(quotes) for dialect, quotes in _IDENTIFIER_QUOTES.items()}


def _is_subtraction(text: str, minus: int) -> bool:
    i = minus - 1
    while i >= 0 and text[i].isspace():
        i -= 1
    if i < 0:
        return False
    ch = text[i]
    return ch.isalnum() or ch in _OPERAND_END


def parameterize_sql(statement: str, *, dialect: SqlDialect = "ansi") -> str:
    """Return ``statement`` with every literal value replaced by ``%s``, on one line.

    Never raises on odd input: unterminated strings, comments and dollar quotes are taken
    to run to the end of the statement and are replaced whole. A prefix letter stays in
    front of its placeholder (``E'x'`` -> ``E%s``).
    """
    if _MARK in statement:
        statement = statement.replace(_MARK, "")
    scrubbed = _TOKENIZERS[dialect].sub(_REPLACERS[dialect], statement)
    if "  " in scrubbed or "\n" in scrubbed or "\t" in scrubbed or "\r" in scrubbed:
        # str.split is the fastest way to fold whitespace runs; string literals are already
        # placeholders by now, so no value is reflowed.
        scrubbed = " ".join(scrubbed.split())
    else:
        scrubbed = scrubbed.strip()
    if _MARK not in scrubbed:
        return scrubbed
    if "(" in scrubbed:
        scrubbed = _LITERAL_LIST.sub("(" + _MARK + ")", scrubbed)
    return scrubbed.replace(_MARK, "%s")

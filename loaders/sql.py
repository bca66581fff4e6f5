"""Tiny helpers to write DuckDB SQL safely: quoted identifiers and literals."""

from __future__ import annotations

from typing import Any


def quote_ident(name: str) -> str:
    """A double-quoted SQL identifier (embedded quotes doubled), safe for any column name."""
    return '"' + name.replace('"', '""') + '"'


def literal(value: Any) -> str:
    """A SQL literal for a Python str, number, bool or None."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def literal_list(values: Any) -> str:
    """A parenthesised list of literals, for `in (...)`."""
    return "(" + ", ".join(literal(value) for value in values) + ")"

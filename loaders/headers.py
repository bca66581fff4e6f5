"""Column names read from a raw file must be present and unique."""

from __future__ import annotations

from pathlib import Path

from loaders.errors import LoadError


def check_header(path: Path, names: list[str]) -> None:
    """Refuse blank or repeated column names, naming the file and the columns."""
    blank = [str(i + 1) for i, name in enumerate(names) if not name]
    if blank:
        raise LoadError(f"{path}: header column(s) {', '.join(blank)} have no name")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise LoadError(f"{path}: header names {', '.join(duplicates)} more than once")

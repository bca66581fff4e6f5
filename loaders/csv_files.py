"""CSV input: find the files of a dataset, read their header, and describe them to DuckDB."""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

from loaders.contract import CsvOptions
from loaders.errors import LoadError
from loaders.sql import literal

SUFFIXES = (".csv", ".csv.gz")


def is_csv(path: Path) -> bool:
    """Whether the file name is one the CSV loader accepts."""
    return path.name.lower().endswith(SUFFIXES)


def stem(path: Path) -> str:
    """The file name without its .csv / .csv.gz suffix."""
    name = path.name
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def discover(folder: Path) -> list[Path]:
    """Every loadable file of a raw folder, in name order; anything else is refused."""
    if not folder.is_dir():
        raise LoadError(f"{folder}: no such folder (put the dataset's raw files there)")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    refused = [p.name for p in files if not is_csv(p)]
    if refused:
        raise LoadError(
            f"{folder}: cannot load {', '.join(refused)}: accepted file types are "
            f"{', '.join(SUFFIXES)}"
        )
    if not files:
        raise LoadError(f"{folder}: no files to load")
    return files


def read_header(path: Path, options: CsvOptions) -> list[str]:
    """The column names on the first record of a CSV file (a UTF-8 BOM is ignored)."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as binary:
            text = io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")
            reader = csv.reader(text, delimiter=options.delimiter, quotechar=options.quote)
            header = next(reader, None)
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
        raise LoadError(f"{path}: cannot read the header line: {exc}") from None
    if not header:
        raise LoadError(f"{path}: the file is empty (a header line is required)")
    names = [name.strip() for name in header]
    blank = [str(i + 1) for i, name in enumerate(names) if not name]
    if blank:
        raise LoadError(f"{path}: header column(s) {', '.join(blank)} have no name")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise LoadError(f"{path}: header names {', '.join(duplicates)} more than once")
    return names


def read_csv_sql(path: Path, header: list[str], options: CsvOptions) -> str:
    """A DuckDB `read_csv(...)` call reading every column of the file as text."""
    columns = "{" + ", ".join(f"{literal(name)}: 'VARCHAR'" for name in header) + "}"
    return (
        f"read_csv({literal(str(path))}, header = true, auto_detect = false, "
        f"columns = {columns}, delim = {literal(options.delimiter)}, "
        f"quote = {literal(options.quote)}, escape = {literal(options.escape)}, "
        "strict_mode = true, null_padding = false)"
    )

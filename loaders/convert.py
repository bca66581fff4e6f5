"""Formats DuckDB cannot read here, rewritten as Parquet in bounded memory.

feather (Arrow IPC) keeps its types, batch by batch. xlsx rows are read with python-calamine
(cached formula values, never evaluated) and written as text columns, 50,000 rows at a time:
numbers and dates are rendered so that DuckDB casts them back to the contract's types exactly.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
from python_calamine import CalamineError, CalamineWorkbook

from loaders.contract import XlsxOptions
from loaders.errors import LoadError
from loaders.headers import check_header

XLSX_BATCH = 50_000


def feather_to_parquet(source: Path, target: Path, original: Path) -> None:
    """Rewrite an Arrow IPC file as Parquet, one record batch at a time."""
    try:
        reader = ipc.open_file(source)
    except pa.ArrowInvalid as exc:
        raise LoadError(f"{original}: not a readable feather (Arrow IPC) file: {exc}") from None
    with pq.ParquetWriter(target, reader.schema) as writer:
        for index in range(reader.num_record_batches):
            writer.write_batch(reader.get_batch(index))


def xlsx_to_parquet(source: Path, options: XlsxOptions, target: Path, original: Path) -> list[str]:
    """Write the chosen worksheet as a Parquet file of text columns; returns the header row.

    Header names must be present and unique (checked before any row is converted).
    """
    rows = _sheet_rows(source, options, original)
    header = next(rows, None)
    if header is None:
        raise LoadError(f"{original}: worksheet {options.sheet!r} is empty")
    names = [(_text(value) or "").strip() for value in header]
    check_header(original, names)
    schema = pa.schema([(name, pa.string()) for name in names])
    with pq.ParquetWriter(target, schema) as writer:
        batch: list[list[str | None]] = []
        for row in rows:
            batch.append([_text(value) for value in row])
            if len(batch) == XLSX_BATCH:
                writer.write_table(_table(batch, schema))
                batch = []
        if batch:
            writer.write_table(_table(batch, schema))
    return names


def _sheet_rows(source: Path, options: XlsxOptions, original: Path) -> Iterator[list[Any]]:
    try:
        workbook = CalamineWorkbook.from_path(str(source))
        if isinstance(options.sheet, int):
            sheet = workbook.get_sheet_by_index(options.sheet)
        else:
            sheet = workbook.get_sheet_by_name(options.sheet)
    except (CalamineError, IndexError, KeyError, ValueError) as exc:
        names = ", ".join(repr(n) for n in CalamineWorkbook.from_path(str(source)).sheet_names)
        raise LoadError(
            f"{original}: cannot open worksheet {options.sheet!r} ({exc}); sheets: {names}"
        ) from None
    for index, row in enumerate(sheet.iter_rows()):
        if index >= options.skip_rows:
            yield list(row)


def _table(batch: list[list[str | None]], schema: pa.Schema) -> pa.Table:
    width = len(schema)
    columns = [[row[i] if i < len(row) else None for row in batch] for i in range(width)]
    return pa.Table.from_arrays([pa.array(col, pa.string()) for col in columns], schema=schema)


def _text(value: Any) -> str | None:
    """A cell as the text DuckDB casts back to its type; empty cells are NULL."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)

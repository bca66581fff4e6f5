"""Binary COPY into PostgreSQL from Arrow record batches.

PostgreSQL's binary COPY format is, per row, a 16-bit field count and, per field, a 32-bit length
(-1 for NULL) followed by the value in network byte order. Rows are built a batch at a time with
numpy (fixed-width values: byte-swapped and laid out side by side, NULLs masked out) and Arrow
compute (variable-width values joined in between), never value by value in Python, except for
`numeric` columns, which go through psycopg's own binary dumper. A writer thread sends one batch
while the next is encoded, and the server parses no text: this is faster than a CSV `\\copy`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg.adapt import PyFormat
from psycopg.copy import QueuedLibpqWriter

from loaders.postgres_types import PgColumn
from loaders.sql import quote_ident

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, header extension length
TRAILER = b"\xff\xff"
PG_EPOCH_MICROSECONDS = 946_684_800_000_000  # 2000-01-01 in Unix microseconds
PG_EPOCH_DAYS = 10_957  # 2000-01-01 in Unix days
NULL = np.frombuffer(b"\xff\xff\xff\xff", np.uint8)
EMPTY = pa.scalar(b"", pa.large_binary())

# encoding -> (Arrow storage dtype read from the values buffer, big-endian wire dtype)
FIXED: dict[str, tuple[str, str]] = {
    "int2": ("<i2", ">i2"),
    "int4": ("<i4", ">i4"),
    "int8": ("<i8", ">i8"),
    "float4": ("<f4", ">f4"),
    "float8": ("<f8", ">f8"),
    "date": ("<i4", ">i4"),
    "timestamp": ("<i8", ">i8"),
    "time": ("<i8", ">i8"),
    "bool": ("u1", "u1"),
}
VARIABLE = frozenset({"bytes", "numeric"})


@dataclass(frozen=True)
class _Item:
    """One piece of a fixed-width block: the field count, a fixed field, or a length header."""

    kind: str  # count | fixed | length
    column: int
    width: int


class BinaryRowEncoder:
    """Encodes record batches (columns in `columns` order) as binary COPY rows."""

    def __init__(self, columns: Sequence[PgColumn], connection: psycopg.Connection) -> None:
        self.columns = list(columns)
        self.connection = connection
        self.count = np.frombuffer(len(self.columns).to_bytes(2, "big"), np.uint8)
        # Fields go on the wire fixed-width first (COPY takes any column order): fewer segments.
        fixed = [i for i, column in enumerate(self.columns) if column.encoding not in VARIABLE]
        variable = [i for i, column in enumerate(self.columns) if column.encoding in VARIABLE]
        self.order = fixed + variable
        # Alternating segments: a list of fixed-width items, then a variable column's index.
        self.segments: list[list[_Item] | int] = []
        block = [_Item("count", -1, 2)]
        for index in self.order:
            column = self.columns[index]
            if column.encoding in VARIABLE:
                block.append(_Item("length", index, 4))
                self.segments += [block, index]
                block = []
            else:
                width = np.dtype(FIXED[column.encoding][1]).itemsize
                block.append(_Item("fixed", index, 4 + width))
        if block:
            self.segments.append(block)

    def encode(self, batch: pa.RecordBatch) -> memoryview:
        """The COPY rows of `batch`, back to back."""
        payloads = {
            index: self._payload(batch.column(index), self.columns[index])
            for index, column in enumerate(self.columns)
            if column.encoding in VARIABLE
        }
        pieces = []
        for segment in self.segments:
            if isinstance(segment, int):
                pieces.append(payloads[segment])
            else:
                pieces.append(self._block(batch, segment, payloads))
        if len(pieces) == 1:
            return memoryview(_buffer_data(pieces[0]))
        rows = pc.binary_join_element_wise(
            *pieces, EMPTY, null_handling="replace", null_replacement=""
        )
        return memoryview(_buffer_data(rows))

    def _block(
        self, batch: pa.RecordBatch, items: list[_Item], payloads: dict[int, pa.Array]
    ) -> pa.Array:
        rows = batch.num_rows
        width = sum(item.width for item in items)
        block = np.empty((rows, width), np.uint8)
        keep: np.ndarray | None = None
        position = 0
        for item in items:
            if item.kind == "count":
                block[:, position : position + 2] = self.count
            elif item.kind == "length":
                lengths = pc.binary_length(payloads[item.column]).fill_null(-1)
                wire = lengths.to_numpy(zero_copy_only=False).astype(">i4")
                block[:, position : position + 4] = wire.view(np.uint8).reshape(rows, 4)
            else:
                column = self.columns[item.column]
                values, valid = _fixed_values(batch.column(item.column), column.encoding)
                size = item.width - 4
                block[:, position : position + 4] = np.frombuffer(size.to_bytes(4, "big"), np.uint8)
                block[:, position + 4 : position + item.width] = values.view(np.uint8).reshape(
                    rows, size
                )
                if valid is not None:
                    missing = ~valid
                    block[missing, position : position + 4] = NULL
                    if keep is None:
                        keep = np.ones((rows, width), bool)
                    keep[missing, position + 4 : position + item.width] = False
            position += item.width
        if keep is None:
            data = block.reshape(-1)
            offsets = np.arange(rows + 1, dtype=np.int64) * width
        else:
            data = block[keep]
            offsets = np.zeros(rows + 1, np.int64)
            np.cumsum(keep.sum(axis=1), out=offsets[1:])
        return pa.LargeBinaryArray.from_buffers(
            pa.large_binary(), rows, [None, pa.py_buffer(offsets), pa.py_buffer(data)]
        )

    def _payload(self, array: pa.Array, column: PgColumn) -> pa.Array:
        """Variable-width values as large_binary (NULLs stay null: their length is -1)."""
        if column.encoding == "bytes":
            return array.cast(pa.large_binary())
        dumper = None
        dumped: list[bytes | None] = []
        for value in array.to_pylist():
            if value is None:
                dumped.append(None)
                continue
            if dumper is None:
                dumper_class = self.connection.adapters.get_dumper(type(value), PyFormat.BINARY)
                dumper = dumper_class(type(value), self.connection)
            dumped.append(bytes(dumper.dump(value)))
        return pa.array(dumped, pa.large_binary())


def _fixed_values(array: pa.Array, encoding: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Big-endian values of a fixed-width column (garbage where NULL) and its validity."""
    valid = array.is_valid().to_numpy(zero_copy_only=False) if array.null_count else None
    storage, wire = FIXED[encoding]
    if encoding == "bool":
        return array.fill_null(False).to_numpy(zero_copy_only=False).astype(np.uint8), valid
    if encoding == "timestamp" and array.type.unit != "us":
        array = array.cast(pa.timestamp("us", array.type.tz))
    values = np.frombuffer(array.buffers()[1], np.dtype(storage), count=len(array) + array.offset)[
        array.offset :
    ]
    if encoding == "timestamp":
        values = _shift_epoch(values, PG_EPOCH_MICROSECONDS, np.iinfo(np.int64))
    elif encoding == "date":
        values = _shift_epoch(values, PG_EPOCH_DAYS, np.iinfo(np.int32))
    return values.astype(wire), valid


def _shift_epoch(values: np.ndarray, epoch: int, limits: np.iinfo) -> np.ndarray:
    """Unix-based values to PostgreSQL's 2000-01-01 epoch, keeping +/-infinity."""
    shifted = values - values.dtype.type(epoch)
    infinite = np.abs(values) == limits.max  # DuckDB's +/-infinity
    if infinite.any():
        shifted[infinite] = np.where(values[infinite] > 0, limits.max, limits.min)
    return shifted


def _buffer_data(array: pa.Array) -> pa.Buffer:
    """The bytes of a (large) binary array's values, from its first to its last value."""
    _, offsets, data = array.buffers()
    bounds = np.frombuffer(offsets, np.int64, count=len(array) + 1, offset=array.offset * 8)
    return data.slice(int(bounds[0]), int(bounds[-1] - bounds[0]))


def copy_batches(
    cursor: psycopg.Cursor,
    table: str,
    columns: Sequence[PgColumn],
    batches: Iterable[pa.RecordBatch],
    *,
    freeze: bool = False,
) -> int:
    """COPY `batches` into `table` (a quoted, qualified name); returns the rows PostgreSQL took."""
    encoder = BinaryRowEncoder(columns, cursor.connection)
    names = ", ".join(quote_ident(columns[index].name) for index in encoder.order)
    options = "format binary, freeze" if freeze else "format binary"
    statement = f"copy {table} ({names}) from stdin ({options})"
    with cursor.copy(statement, writer=QueuedLibpqWriter(cursor)) as copy:
        copy.write(SIGNATURE)
        for batch in batches:
            if batch.num_rows:
                copy.write(encoder.encode(batch))
        copy.write(TRAILER)
    return cursor.rowcount

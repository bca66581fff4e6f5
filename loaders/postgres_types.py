"""PostgreSQL column types for published tables: the contract's types first, else DuckDB's.

Every column gets a PostgreSQL type, the DuckDB expression that reads it in the shape the binary
COPY encoder expects, and the name of that encoding (see `loaders/postgres_copy.py`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from loaders.contract import DUCKDB_TYPES, Contract
from loaders.errors import PublishError
from loaders.sql import quote_ident

# Contract type -> PostgreSQL type. `datetime` is `timestamp` (without time zone): DuckDB's
# TIMESTAMP and the raw files carry wall-clock times without a zone, and so does PostgreSQL.
POSTGRES_TYPES: dict[str, str] = {
    "int8": "smallint",
    "int16": "smallint",
    "int32": "integer",
    "int64": "bigint",
    "float32": "real",
    "float64": "double precision",
    "bool": "boolean",
    "string": "text",
    "category": "text",
    "date": "date",
    "datetime": "timestamp",
}

# DuckDB type -> (PostgreSQL type, DuckDB type to cast to before reading, encoding).
_DUCKDB_TO_POSTGRES: dict[str, tuple[str, str | None, str]] = {
    "BOOLEAN": ("boolean", None, "bool"),
    "TINYINT": ("smallint", "SMALLINT", "int2"),
    "UTINYINT": ("smallint", "SMALLINT", "int2"),
    "SMALLINT": ("smallint", None, "int2"),
    "USMALLINT": ("integer", "INTEGER", "int4"),
    "INTEGER": ("integer", None, "int4"),
    "UINTEGER": ("bigint", "BIGINT", "int8"),
    "BIGINT": ("bigint", None, "int8"),
    "UBIGINT": ("numeric(20,0)", "DECIMAL(20,0)", "numeric"),
    "HUGEINT": ("numeric(38,0)", "DECIMAL(38,0)", "numeric"),
    "FLOAT": ("real", None, "float4"),
    "DOUBLE": ("double precision", None, "float8"),
    "VARCHAR": ("text", None, "bytes"),
    "BLOB": ("bytea", None, "bytes"),
    "DATE": ("date", None, "date"),
    "TIME": ("time", None, "time"),
    "TIMESTAMP": ("timestamp", None, "timestamp"),
    "TIMESTAMP_S": ("timestamp", "TIMESTAMP", "timestamp"),
    "TIMESTAMP_MS": ("timestamp", "TIMESTAMP", "timestamp"),
    "TIMESTAMP_NS": ("timestamp", "TIMESTAMP", "timestamp"),
    "TIMESTAMP WITH TIME ZONE": ("timestamptz", None, "timestamp"),
}
_DECIMAL = re.compile(r"^DECIMAL\((\d+),\s*(\d+)\)$")
# How PostgreSQL's format_type() spells the types above that it spells differently.
_FORMATTED = {
    "timestamp": "timestamp without time zone",
    "timestamptz": "timestamp with time zone",
    "time": "time without time zone",
}


@dataclass(frozen=True)
class PgColumn:
    """One column of a published table."""

    name: str
    duckdb_type: str
    pg_type: str
    encoding: str
    cast: str | None = None

    @property
    def select(self) -> str:
        """The DuckDB expression that reads this column for the encoder."""
        column = quote_ident(self.name)
        return f"cast({column} as {self.cast}) as {column}" if self.cast else column

    @property
    def formatted_type(self) -> str:
        """The type as PostgreSQL's format_type() prints it, to compare with a live table."""
        return _FORMATTED.get(self.pg_type, self.pg_type)

    @property
    def ddl(self) -> str:
        return f"{quote_ident(self.name)} {self.pg_type}"


def pg_column(table: str, name: str, duckdb_type: str, contract: Contract) -> PgColumn:
    """The PostgreSQL column for a DuckDB column: the contract's type when it declares it."""
    duckdb_type = duckdb_type.upper()
    declared = _contract_type(contract, name)
    if declared is not None and DUCKDB_TYPES[declared] == duckdb_type:
        _, cast, encoding = _DUCKDB_TO_POSTGRES[duckdb_type]
        return PgColumn(name, duckdb_type, POSTGRES_TYPES[declared], encoding, cast)
    if duckdb_type in _DUCKDB_TO_POSTGRES:
        pg_type, cast, encoding = _DUCKDB_TO_POSTGRES[duckdb_type]
        return PgColumn(name, duckdb_type, pg_type, encoding, cast)
    decimal = _DECIMAL.match(duckdb_type)
    if decimal:
        precision, scale = decimal.groups()
        return PgColumn(name, duckdb_type, f"numeric({precision},{scale})", "numeric")
    if duckdb_type.startswith("ENUM("):
        return PgColumn(name, duckdb_type, "text", "bytes", "VARCHAR")
    raise PublishError(
        f"{table}.{name}: DuckDB type {duckdb_type} has no PostgreSQL mapping in ciq "
        f"(supported: {', '.join(sorted(_DUCKDB_TO_POSTGRES))}, DECIMAL, ENUM); "
        "cast it in the model"
    )


def pg_columns(
    table: str, columns: Sequence[tuple[str, str]], contract: Contract
) -> list[PgColumn]:
    """PostgreSQL columns for a DuckDB table's (name, type) pairs, in order."""
    return [pg_column(table, name, duckdb_type, contract) for name, duckdb_type in columns]


def dbt_data_type(contract_type: str) -> str:
    """A model contract's `data_type` valid on DuckDB and on PostgreSQL (rendered per target)."""
    duckdb_type = DUCKDB_TYPES[contract_type].lower()
    postgres_type = POSTGRES_TYPES[contract_type]
    if duckdb_type == postgres_type:
        return duckdb_type
    return f"{{{{ '{duckdb_type}' if target.type == 'duckdb' else '{postgres_type}' }}}}"


def _contract_type(contract: Contract, name: str) -> str | None:
    try:
        return contract.column(name).type
    except KeyError:
        return None

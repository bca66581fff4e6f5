"""The `_state.json` of a staged batch: state, counts and the schema hash the gate compares."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb

from loaders import atomic
from loaders.contract import Contract
from loaders.sql import literal

STATE = "_state.json"
LINEAGE_COLUMNS = ("_source_file", "_source_row", "_stage_id")  # the loader's, not the contract's
STAGED, FAILED_CONTRACT, FAILED_SCHEMA = "staged", "failed_contract", "failed_schema_mismatch"


def schema_hash(columns: list[tuple[str, str]]) -> str:
    """First 16 hex digits of SHA-256 of "col1:dtype1;col2:dtype2;..." in column order."""
    text = ";".join(f"{name}:{dtype}" for name, dtype in columns)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def contract_schema(contract: Contract) -> list[tuple[str, str]]:
    """The (column, DuckDB type) pairs staged Parquet must have, in contract order."""
    return [(column.name, column.duckdb_type) for column in contract.columns]


@dataclass
class BatchState:
    """What staging one batch produced."""

    run_date: str
    batch_id: str
    state: str
    rows: int = 0
    rejects: int = 0
    schema_hash: str | None = None
    columns: list[list[str]] = field(default_factory=list)
    parts_sha256: list[str] = field(default_factory=list)
    contract_sha256: str = ""
    issues: list[str] = field(default_factory=list)

    def describe_schema(self, folder: Path) -> None:
        """Record the columns and schema hash of the batch's staged Parquet."""
        self.columns = [list(column) for column in staged_schema(folder)]
        self.schema_hash = schema_hash([(n, t) for n, t in self.columns]) if self.columns else None


def staged_schema(folder: Path) -> list[tuple[str, str]]:
    """The contract columns (name, DuckDB type) of a folder of staged Parquet files."""
    if not any(folder.glob("*.parquet")):
        return []
    glob = literal(str(folder / "*.parquet"))
    rows = duckdb.sql(
        f"describe select * from read_parquet({glob}, union_by_name = true, "
        "hive_partitioning = false)"
    ).fetchall()
    return [(str(name), str(dtype)) for name, dtype, *_ in rows if name not in LINEAGE_COLUMNS]


def read_state(folder: Path) -> BatchState | None:
    path = folder / STATE
    return BatchState(**json.loads(path.read_text())) if path.exists() else None


def write_state(folder: Path, state: BatchState) -> None:
    atomic.write_text(folder / STATE, json.dumps(asdict(state), indent=2))

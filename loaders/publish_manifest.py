"""The publish manifest: what the last `ciq publish <dataset>` moved, as JSON on disk.

warehouse/publish/<dataset>.json records the server (never the password), the schema, the mode,
and per table the DuckDB and PostgreSQL row counts, the content checksum and the columns, plus
the result of the publish layer's dbt tests. The same counts are in the table
`<schema>.ciq_published_tables`, written in the publish transaction.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loaders import atomic
from loaders.publish_move import TableResult


def manifest_document(
    *,
    dataset: str,
    schema: str,
    mode: str,
    server: str,
    duckdb_file: Path,
    contract_sha256: str,
    tables: list[TableResult],
) -> dict[str, Any]:
    return {
        "dataset": dataset,
        "published_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": mode,
        "postgres": {"server": server, "schema": schema},
        "duckdb": {"file": str(duckdb_file), "schema": dataset},
        "contract_sha256": contract_sha256,
        "tables": [{**asdict(table), "key": list(table.key)} for table in tables],
        "dbt": {"status": "not run"},
    }


def write_manifest(path: Path, document: dict[str, Any]) -> Path:
    """Write `document` to `path` atomically (a temporary file renamed over it)."""
    return atomic.write_text(path, json.dumps(document, indent=2, sort_keys=False) + "\n")

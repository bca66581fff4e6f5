"""`ciq snapshot` and `ciq restore`: the tables of a dataset's schema as dated Parquet files.

Layout: data/snapshots/<YYYYMMDD>/<dataset>/<table>.parquet plus `_snapshot.json` (tables and
rows). A snapshot is written into a hidden folder and renamed into place, so a second snapshot the
same day replaces the first whole. A restore replaces every table inside one transaction.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import duckdb

from loaders import atomic
from loaders.errors import CiqError
from loaders.landing import check_run_date
from loaders.settings import Paths
from loaders.sql import literal, quote_ident
from loaders.staging import swap_dir

MANIFEST = "_snapshot.json"


class SnapshotError(CiqError):
    """No warehouse, nothing built, or no snapshot for the date asked for."""


@dataclass(frozen=True)
class SnapshotReport:
    """What a snapshot or restore did: the folder and the rows of each table."""

    verb: str
    dataset: str
    folder: Path
    rows: dict[str, int]

    def summary(self) -> str:
        lines = [f"{self.verb} {len(self.rows)} table(s) of {self.dataset}: {self.folder}"]
        lines += [f"  {table:<24} {rows:>10} rows" for table, rows in self.rows.items()]
        return "\n".join(lines)


def snapshots_dir(paths: Paths) -> Path:
    return paths.data / "snapshots"


def _connect(paths: Paths) -> duckdb.DuckDBPyConnection:
    if not paths.warehouse.exists():
        raise SnapshotError(f"{paths.warehouse}: no warehouse yet; run `make all` or `ciq build`")
    return duckdb.connect(str(paths.warehouse))


def schema_tables(con: duckdb.DuckDBPyConnection, schema: str) -> list[str]:
    """The base tables (not views) of a schema, by name."""
    rows = con.execute(
        "select table_name from information_schema.tables "
        "where table_schema = ? and table_type = 'BASE TABLE' order by table_name",
        [schema],
    ).fetchall()
    return [str(name) for (name,) in rows]


def _count(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> int:
    row = con.execute(f"select count(*) from {quote_ident(schema)}.{quote_ident(table)}").fetchone()
    return int(row[0]) if row else 0


def snapshot(paths: Paths, dataset: str, *, today: dt.date | None = None) -> SnapshotReport:
    """Copy every table of the dataset's schema to data/snapshots/<today>/<dataset>/."""
    day = (today or dt.date.today()).strftime("%Y%m%d")
    final = snapshots_dir(paths) / day / dataset
    final.parent.mkdir(parents=True, exist_ok=True)
    work = final.with_name(f".{dataset}.tmp-{uuid.uuid4().hex[:8]}")
    work.mkdir()
    try:
        with _connect(paths) as con:
            tables = schema_tables(con, dataset)
            if not tables:
                raise SnapshotError(
                    f"{paths.warehouse}: schema {dataset} has no tables; run `ciq build {dataset}`"
                )
            rows = {}
            for table in tables:
                source = f"{quote_ident(dataset)}.{quote_ident(table)}"
                target = literal(str(work / f"{table}.parquet"))
                con.execute(f"copy (select * from {source}) to {target} (format parquet)")
                rows[table] = _count(con, dataset, table)
        created = dt.datetime.now(dt.UTC).isoformat()
        manifest = {"dataset": dataset, "date": day, "created_at": created, "rows": rows}
        atomic.write_text(work / MANIFEST, json.dumps(manifest, indent=2))
        swap_dir(work, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return SnapshotReport("snapshot", dataset, final, rows)


def snapshot_dates(paths: Paths, dataset: str) -> list[str]:
    """The dates that hold a complete snapshot of the dataset, oldest first."""
    return sorted(
        manifest.parent.parent.name
        for manifest in snapshots_dir(paths).glob(f"*/{dataset}/{MANIFEST}")
    )


def restore(paths: Paths, dataset: str, date: str) -> SnapshotReport:
    """Replace the dataset's tables by those of the snapshot of `date`, in one transaction."""
    check_run_date(date)
    folder = snapshots_dir(paths) / date / dataset
    if not (folder / MANIFEST).exists():
        dates = ", ".join(snapshot_dates(paths, dataset)) or "none (run `ciq snapshot` first)"
        raise SnapshotError(f"no snapshot of {dataset} for {date} in {folder}; available: {dates}")
    expected: dict[str, int] = json.loads((folder / MANIFEST).read_text())["rows"]
    schema = quote_ident(dataset)
    with _connect(paths) as con:
        con.execute("begin transaction")
        try:
            con.execute(f"create schema if not exists {schema}")
            for table in expected:
                source = literal(str(folder / f"{table}.parquet"))
                con.execute(
                    f"create or replace table {schema}.{quote_ident(table)} as "
                    f"select * from read_parquet({source})"
                )
            rows = {table: _count(con, dataset, table) for table in expected}
            if rows != expected:
                raise SnapshotError(f"{folder}: restored rows {rows} differ from {MANIFEST}")
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
    return SnapshotReport("restored", dataset, folder, rows)

"""`ciq build <dataset> --target postgres`: the SQL layers built on PostgreSQL instead of DuckDB.

The scale-out path: the staged Parquet is loaded into `<dataset>.loader_records`, what
`source('loader', 'records')` names on PostgreSQL, with exactly the columns DuckDB reads from the
files (including `file_row_number`), so stg_loader__records, cur_records and causal_ready run
unchanged (engine-specific SQL goes through `adapter.dispatch` macros). The Python models are
disabled there: they run on DuckDB, and `ciq publish` moves their tables.
"""

from __future__ import annotations

import duckdb
import psycopg

from loaders.contract import Contract
from loaders.errors import BuildError, PublishError
from loaders.postgres import resolve
from loaders.postgres_copy import copy_batches
from loaders.postgres_dbt import require_postgres_target, run_dbt_on_postgres
from loaders.postgres_types import pg_columns
from loaders.publish_move import DEFAULT_BATCH_ROWS
from loaders.publish_settings import LOADER_TABLE, SCHEMA_VAR, publish_schema
from loaders.settings import Paths
from loaders.sql import quote_ident


def build_on_postgres(contract: Contract, paths: Paths, *, target: str) -> str:
    """Load the staged rows, `dbt build` up to causal_ready on `target`; returns a summary."""
    from loaders.batches import schema_gate
    from loaders.dbt_codegen import generate

    require_postgres_target(paths, target)
    schema_gate(paths, contract)
    generate(contract, paths)
    dataset = contract.dataset
    with resolve(paths).connect(autocommit=True) as pg:
        staged = load_staged(contract, paths, pg)
        run_dbt_on_postgres(
            paths,
            pg,
            "build",
            "--select",
            "+causal_ready",
            target=target,
            variables={SCHEMA_VAR: publish_schema(dataset, None)},  # as publish: partial parsing
            what=f"dbt build of {dataset} up to causal_ready",
        )
        ready = pg.execute(
            f"select count(*) from {quote_ident(dataset)}.{quote_ident('causal_ready')}"
        ).fetchone()[0]
        where = f"{pg.info.user}@{pg.info.host}:{pg.info.port}/{pg.info.dbname}"
    return (
        f"{dataset}: {ready} rows in {dataset}.causal_ready on PostgreSQL {where} "
        f"(from {staged} staged rows; dbt target {target})\n"
        "  the Python diagnostics run on DuckDB only: `ciq publish "
        f"{dataset}` builds them there and moves them next to these tables"
    )


def load_staged(
    contract: Contract,
    paths: Paths,
    pg: psycopg.Connection,
    *,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> int:
    """Replace `<dataset>.loader_records` with the staged Parquet, in one transaction."""
    from loaders.dbt_codegen import sources_yaml

    dataset = contract.dataset
    staged = paths.staged(dataset)
    if not any(staged.glob("run_date=*/batch_id=*/*.parquet")):
        raise BuildError(f"{staged}: no staged data: run `ciq load {dataset}` first")
    # the very relation the DuckDB source reads (meta.external_location of source loader)
    relation = sources_yaml(contract, paths)["sources"][0]["meta"]["external_location"]
    table = f"{quote_ident(dataset)}.{quote_ident(LOADER_TABLE)}"
    with duckdb.connect() as duck:
        described = duck.execute(f"describe select * from {relation}").fetchall()
        columns = pg_columns(LOADER_TABLE, [(row[0], row[1]) for row in described], contract)
        ((expected,),) = duck.execute(f"select count(*) from {relation}").fetchall()
        select = ", ".join(column.select for column in columns)
        reader = duck.sql(f"select {select} from {relation}").to_arrow_reader(batch_rows)
        try:
            with pg.transaction():
                pg.execute(f"create schema if not exists {quote_ident(dataset)}")
                # dbt's staging view over the table is rebuilt by the same `ciq build`
                pg.execute(f"drop table if exists {table} cascade")
                pg.execute(f"create table {table} ({', '.join(c.ddl for c in columns)})")
                copied = copy_batches(pg.cursor(), table, columns, reader, freeze=True)
                if copied != expected:
                    raise BuildError(
                        f"{table}: PostgreSQL took {copied} staged rows, DuckDB read {expected}"
                    )
                pg.execute(f"analyze {table}")
        except psycopg.Error as exc:
            reason = " ".join(str(exc).split())
            raise PublishError(
                f"loading {staged} into PostgreSQL table {table} failed: {reason}; "
                "the previous table is intact"
            ) from None
    return copied

"""`ciq publish <dataset>`: DuckDB build -> PostgreSQL tables -> publish layer, in one command.

1. `dbt build` on DuckDB as `ciq build` does (gates included; skipped with --no-build, which
   publishes the tables of the last build);
2. every model of the causal layer (`meta.ciq_publish`, see loaders/publish_tables.py) is moved
   into the PostgreSQL schema `<dataset>` (or --schema) in one transaction
   (loaders/publish_move.py), and logged in `<schema>.ciq_published_tables`;
3. the publish manifest warehouse/publish/<dataset>.json records what moved;
4. `dbt build --target postgres --select source:ciq_publish+` builds and tests the publish
   layer over the moved tables: keys, accepted values, ranges, row-count parity with DuckDB.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import psycopg

from loaders.contract import Contract
from loaders.errors import BuildError, PublishError
from loaders.postgres import resolve
from loaders.postgres_dbt import require_postgres_target, run_dbt_on_postgres
from loaders.publish_manifest import manifest_document, write_manifest
from loaders.publish_move import TableResult, describe_source, move_tables
from loaders.publish_settings import (
    DEFAULT_TARGET,
    LOG_TABLE,
    SCHEMA_VAR,
    SOURCE,
    manifest_path,
    publish_schema,
)
from loaders.publish_tables import published_models
from loaders.settings import Paths


@dataclass(frozen=True)
class PublishReport:
    """What `ciq publish` did, for people."""

    dataset: str
    schema: str
    mode: str
    server: str
    tables: list[TableResult]
    manifest: Path
    dbt_nodes: int

    def summary(self) -> str:
        lines = [f"{self.dataset}: published to PostgreSQL {self.server}, schema {self.schema}"]
        for table in self.tables:
            lines.append(
                f"  {table.name:<24} {table.action:<9} {table.postgres_rows:>10} rows "
                f"(DuckDB {table.duckdb_rows})"
            )
        if self.dbt_nodes:
            lines.append(
                f"  publish layer: scored_units, diagnostics_summary and {self.dbt_nodes} dbt "
                "nodes passed on PostgreSQL"
            )
        lines.append(f"  manifest: {self.manifest}")
        lines.append(
            f'  check:    psql "$(ciq postgres uri)" -c \'select table_name, postgres_rows, '
            f"published_at from {self.schema}.{LOG_TABLE}'"
        )
        return "\n".join(lines)


def publish(
    contract: Contract,
    paths: Paths,
    *,
    mode: str = "replace",
    schema: str | None = None,
    target: str = DEFAULT_TARGET,
    build: bool = True,
) -> PublishReport:
    """Build, move, record and test; PublishError or BuildError on failure."""
    from loaders.dbt_build import build as build_on_duckdb
    from loaders.dbt_codegen import generate

    dataset = contract.dataset
    schema = publish_schema(dataset, schema)
    require_postgres_target(paths, target)
    settings = resolve(paths)
    with settings.connect(autocommit=True) as pg:
        if build:
            build_on_duckdb(contract, paths)
        else:
            generate(contract, paths)
        tables = published_models(paths, dataset)
        results = _move(contract, paths, pg, schema, tables, mode)
        document = manifest_document(
            dataset=dataset,
            schema=schema,
            mode=mode,
            server=server_name(pg),
            duckdb_file=paths.warehouse,
            contract_sha256=contract.sha256,
            tables=results,
        )
        manifest = write_manifest(manifest_path(paths, dataset), document)
        try:
            nodes = run_dbt_on_postgres(
                paths,
                pg,
                "build",
                "--select",
                f"source:{SOURCE}+",
                target=target,
                variables={SCHEMA_VAR: schema},
                what=f"the publish layer of {dataset} (the tables are published)",
            )
        except BuildError as exc:
            document["dbt"] = {"status": "failed", "detail": str(exc)}
            write_manifest(manifest, document)
            raise
        document["dbt"] = {"status": "passed", "target": target, "nodes": nodes}
        write_manifest(manifest, document)
        server = server_name(pg)
    return PublishReport(dataset, schema, mode, server, results, manifest, nodes)


def _move(
    contract: Contract,
    paths: Paths,
    pg: psycopg.Connection,
    schema: str,
    tables: list[str],
    mode: str,
) -> list[TableResult]:
    if not paths.warehouse.is_file():
        raise PublishError(
            f"{paths.warehouse}: no warehouse yet: run `ciq build {contract.dataset}`"
        )
    try:
        # the same configuration as dbt-duckdb's connection, which stays open in this process
        duck = duckdb.connect(str(paths.warehouse))
    except duckdb.Error as exc:
        raise PublishError(
            f"{paths.warehouse}: cannot open the DuckDB warehouse ({exc}); run "
            f"`ciq build {contract.dataset}` first, and wait for any running build to finish"
        ) from None
    with duck:
        sources = [describe_source(duck, contract.dataset, name, contract) for name in tables]
        return move_tables(
            duck,
            sources,
            pg,
            schema,
            contract,
            mode=mode,
            source_label=str(paths.warehouse),
        )


def server_name(pg: psycopg.Connection) -> str:
    """user@host:port/dbname of a connection (never its password)."""
    info = pg.info
    return f"{info.user}@{info.host}:{info.port}/{info.dbname}"

"""Move DuckDB tables into PostgreSQL in one transaction: readers see the old set or the new.

`--mode replace` (default): each changed table is COPYed into a new table, its row count is
checked against DuckDB's, its primary key and statistics are built, and only then, at the end of
the same transaction, the old table is swapped out by renames (its grants carried over). A
killed process or a dropped connection aborts the transaction: the previous tables, and the log
table `ciq_published_tables`, stay exactly as they were, and no half-built table is left.

`--mode upsert`: tables keyed by the contract's primary key are COPYed into a temporary table
(duplicate keys: the last row of the DuckDB table wins) and merged with
`INSERT ... ON CONFLICT (key) DO UPDATE`; columns the DuckDB table gained are added first.
Tables without that key (the one-row summaries) are replaced.

A table whose content checksum (computed in DuckDB) matches the last one published is left
untouched: publishing the same build twice changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import duckdb
import psycopg

from loaders.contract import Contract
from loaders.errors import PublishError
from loaders.postgres_copy import copy_batches
from loaders.postgres_types import PgColumn, pg_columns
from loaders.publish_settings import LOG_TABLE
from loaders.sql import quote_ident

MODES = ("replace", "upsert")
DEFAULT_BATCH_ROWS = 131_072
DEFAULT_LOCK_TIMEOUT_SECONDS = 60.0
MAX_IDENTIFIER = 63  # PostgreSQL's NAMEDATALEN - 1

LOG_DDL = """
create table if not exists {log} (
    table_name text primary key,
    mode text not null,
    duckdb_rows bigint not null,
    postgres_rows bigint not null,
    content_checksum text not null,
    columns jsonb not null,
    primary_key jsonb not null,
    contract_sha256 text not null,
    source text not null,
    publish_id text not null,
    relation_oid bigint not null,
    published_at timestamptz not null default now()
)
"""


@dataclass(frozen=True)
class SourceTable:
    """A DuckDB table to publish: its columns as PostgreSQL sees them, size and checksum."""

    schema: str
    name: str
    columns: list[PgColumn]
    key: tuple[str, ...]
    rows: int
    checksum: str

    @property
    def relation(self) -> str:
        return f"{quote_ident(self.schema)}.{quote_ident(self.name)}"


@dataclass(frozen=True)
class TableResult:
    """What publishing did to one table."""

    name: str
    action: str  # replaced | created | upserted | unchanged
    duckdb_rows: int
    postgres_rows: int
    checksum: str
    key: tuple[str, ...]
    columns: dict[str, str] = field(default_factory=dict)


def describe_source(
    duck: duckdb.DuckDBPyConnection, schema: str, table: str, contract: Contract
) -> SourceTable:
    """Columns, row count and content checksum of a DuckDB table (PublishError if missing)."""
    found = duck.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_schema = ? and table_name = ? order by ordinal_position",
        [schema, table],
    ).fetchall()
    if not found:
        raise PublishError(f"DuckDB has no table {schema}.{table}: run `ciq build {schema}` first")
    columns = pg_columns(table, found, contract)
    names = {column.name for column in columns}
    key = contract.primary_key if set(contract.primary_key) <= names else ()
    values = ", ".join(quote_ident(column.name) for column in columns)
    relation = f"{quote_ident(schema)}.{quote_ident(table)}"
    ((rows, total),) = duck.execute(
        f"select count(*), coalesce(sum(hash({values})::hugeint), 0) from {relation}"
    ).fetchall()
    signature = ";".join(f"{c.name}:{c.duckdb_type}:{c.pg_type}" for c in columns)
    digest = hashlib.sha256(f"{rows}|{total}|{signature}|{duckdb.__version__}".encode())
    return SourceTable(schema, table, columns, key, int(rows), digest.hexdigest()[:32])


def move_tables(
    duck: duckdb.DuckDBPyConnection,
    sources: Sequence[SourceTable],
    pg: psycopg.Connection,
    target_schema: str,
    contract: Contract,
    *,
    mode: str = "replace",
    source_label: str = "duckdb",
    batch_rows: int = DEFAULT_BATCH_ROWS,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT_SECONDS,
) -> list[TableResult]:
    """Publish `sources` into `target_schema` in a single transaction; PublishError on failure."""
    if mode not in MODES:
        raise PublishError(f"unknown publish mode {mode!r}; use one of {', '.join(MODES)}")
    mover = _Mover(duck, pg, target_schema, contract, mode, source_label, batch_rows)
    stage = "starting"
    try:
        with pg.transaction():
            stage = "locking"
            mover.prepare(lock_timeout)
            results = []
            for source in sources:
                stage = f"copying {source.name}"
                results.append(mover.publish(source))
            stage = "swapping"
            mover.swap()
            mover.log(sources, results)
            stage = "committing"
        return results
    except duckdb.Error as exc:
        raise PublishError(
            f"reading DuckDB failed while {stage}: {exc}; nothing was changed in PostgreSQL"
        ) from None
    except psycopg.errors.LockNotAvailable:
        raise PublishError(
            f"{target_schema}: readers held locks on the published tables for more than "
            f"{lock_timeout:g} s; nothing was changed (the previous tables are intact)"
        ) from None
    except psycopg.Error as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        outcome = (
            f"it may or may not have been committed: check {target_schema}.{LOG_TABLE}"
            if stage == "committing"
            else "nothing was changed (the previous tables are intact)"
        )
        raise PublishError(
            f"publishing to PostgreSQL schema {target_schema} failed while {stage}: {reason}; "
            f"{outcome}"
        ) from None


class _Mover:
    """The steps of one publish transaction."""

    def __init__(
        self,
        duck: duckdb.DuckDBPyConnection,
        pg: psycopg.Connection,
        schema: str,
        contract: Contract,
        mode: str,
        source_label: str,
        batch_rows: int,
    ) -> None:
        self.duck = duck
        self.pg = pg
        self.schema = schema
        self.contract = contract
        self.mode = mode
        self.source_label = source_label
        self.batch_rows = batch_rows
        self.publish_id = uuid.uuid4().hex
        self.previous: dict[str, tuple[str, int, int]] = {}
        self.existing: dict[str, str] = {}
        self.oids: dict[str, int] = {}
        self.staged: list[tuple[SourceTable, str]] = []

    def qualified(self, name: str) -> str:
        return f"{quote_ident(self.schema)}.{quote_ident(name)}"

    def prepare(self, lock_timeout: float) -> None:
        lock = int.from_bytes(hashlib.sha256(f"ciq publish {self.schema}".encode()).digest()[:8])
        self.pg.execute("select pg_advisory_xact_lock(%s)", [lock - (1 << 63)])
        self.pg.execute(f"set local lock_timeout = '{int(lock_timeout * 1000)}ms'")
        self.pg.execute(f"create schema if not exists {quote_ident(self.schema)}")
        self.pg.execute(LOG_DDL.format(log=self.qualified(LOG_TABLE)))
        rows = self.pg.execute(
            "select table_name, content_checksum, postgres_rows, relation_oid "
            f"from {self.qualified(LOG_TABLE)}"
        ).fetchall()
        self.previous = {name: (checksum, count, oid) for name, checksum, count, oid in rows}
        relations = self.pg.execute(
            "select c.relname, c.relkind, c.oid from pg_class c join pg_namespace n "
            "on n.oid = c.relnamespace where n.nspname = %s",
            [self.schema],
        ).fetchall()
        self.existing = {name: str(kind) for name, kind, _ in relations}
        self.oids = {name: int(oid) for name, _, oid in relations}

    def publish(self, source: SourceTable) -> TableResult:
        kind = self.existing.get(source.name)
        if kind is not None and kind not in ("r", "p"):
            raise PublishError(
                f"{self.schema}.{source.name} exists in PostgreSQL but is not a table "
                f"(relkind {kind}); drop it or publish to another schema with --schema"
            )
        if self.unchanged(source):
            return self.result(source, "unchanged", self.previous[source.name][1])
        if self.mode == "upsert" and source.key and kind is not None:
            return self.upsert(source)
        if kind is not None:
            self.refuse_dependents(source.name)
        staged = _identifier(source.name, "__ciq_new")
        self.pg.execute(f"create table {self.qualified(staged)} ({_ddl(source.columns)})")
        copied = self.copy(source, self.qualified(staged))
        self.check_count(source, copied, source.rows)
        if source.key:
            self.pg.execute(
                f"alter table {self.qualified(staged)} add constraint "
                f"{quote_ident(_identifier(staged, '_pkey'))} primary key ({_names(source.key)})"
            )
        self.pg.execute(f"analyze {self.qualified(staged)}")
        self.staged.append((source, staged))
        return self.result(source, "replaced" if kind else "created", copied)

    def unchanged(self, source: SourceTable) -> bool:
        """Same DuckDB content as last published, and the same PostgreSQL table, still whole."""
        previous = self.previous.get(source.name)
        if previous is None or source.name not in self.existing:
            return False
        checksum, rows, oid = previous
        if checksum != source.checksum or oid != self.oids[source.name]:
            return False
        count = self.pg.execute(f"select count(*) from {self.qualified(source.name)}").fetchone()
        return bool(count[0] == rows)

    def upsert(self, source: SourceTable) -> TableResult:
        target = self.qualified(source.name)
        self.require_key(source)
        current = dict(
            self.pg.execute(
                "select a.attname, format_type(a.atttypid, a.atttypmod) from pg_attribute a "
                "where a.attrelid = %s::regclass and a.attnum > 0 and not a.attisdropped",
                [target],
            ).fetchall()
        )
        for column in source.columns:
            if column.name not in current:
                self.pg.execute(f"alter table {target} add column {column.ddl}")
            elif current[column.name] != column.formatted_type:
                raise PublishError(
                    f"{self.schema}.{source.name}.{column.name} is {current[column.name]} in "
                    f"PostgreSQL but {column.pg_type} in DuckDB: upsert cannot change a type; "
                    "publish with --mode replace"
                )
        temporary = quote_ident(_identifier(f"ciq_upsert_{source.name}", ""))
        self.pg.execute(
            f"create temporary table {temporary} ({_ddl(source.columns)}) on commit drop"
        )
        latest = _latest_per_key(source)
        ((expected,),) = self.duck.execute(f"select count(*) from ({latest})").fetchall()
        copied = self.copy(source, temporary, latest)
        self.check_count(source, copied, expected)
        names = _names(column.name for column in source.columns)
        updates = ", ".join(
            f"{quote_ident(c.name)} = excluded.{quote_ident(c.name)}"
            for c in source.columns
            if c.name not in source.key
        )
        action = f"do update set {updates}" if updates else "do nothing"
        self.pg.execute(
            f"insert into {target} ({names}) select {names} from {temporary} "
            f"on conflict ({_names(source.key)}) {action}"
        )
        total = self.pg.execute(f"select count(*) from {target}").fetchone()[0]
        return self.result(source, "upserted", int(total))

    def copy(self, source: SourceTable, table: str, query: str | None = None) -> int:
        """COPY the DuckDB table (or `query` over it) into `table`, created in this transaction."""
        select = ", ".join(column.select for column in source.columns)
        relation = f"({query})" if query else source.relation
        query = self.duck.cursor().sql(f"select {select} from {relation}")
        reader = query.to_arrow_reader(self.batch_rows)
        return copy_batches(self.pg.cursor(), table, source.columns, reader, freeze=True)

    def check_count(self, source: SourceTable, copied: int, expected: int) -> None:
        if copied != expected:
            raise PublishError(
                f"{source.schema}.{source.name}: PostgreSQL took {copied} rows but DuckDB has "
                f"{expected}; nothing was changed"
            )

    def require_key(self, source: SourceTable) -> None:
        found = self.pg.execute(
            "select 1 from pg_index i where i.indrelid = %s::regclass and i.indisunique "
            "and (select array_agg(a.attname::text order by a.attname) from pg_attribute a "
            "where a.attrelid = i.indrelid and a.attnum = any(i.indkey)) = %s::text[]",
            [self.qualified(source.name), sorted(source.key)],
        ).fetchone()
        if found is None:
            raise PublishError(
                f"{self.schema}.{source.name} has no unique key on ({', '.join(source.key)}) in "
                "PostgreSQL, so rows cannot be upserted; publish it once with --mode replace"
            )

    def refuse_dependents(self, name: str) -> None:
        dependents = self.pg.execute(
            "select distinct format('%%I.%%I', n.nspname, c.relname) from pg_depend d "
            "join pg_rewrite r on r.oid = d.objid join pg_class c on c.oid = r.ev_class "
            "join pg_namespace n on n.oid = c.relnamespace "
            "where d.refobjid = %s::regclass and c.oid <> d.refobjid "
            "union select conrelid::regclass::text from pg_constraint "
            "where confrelid = %s::regclass and contype = 'f' order by 1",
            [self.qualified(name)] * 2,
        ).fetchall()
        if dependents:
            listing = ", ".join(row[0] for row in dependents)
            raise PublishError(
                f"{self.schema}.{name} cannot be swapped: {listing} depend(s) on it. Publishing "
                "replaces the table, so drop them, rebuild them as dbt models in "
                "dbt_project/models/publish/ (rebuilt after each publish), or use --mode upsert, "
                "which updates rows in place; nothing was changed"
            )

    def swap(self) -> None:
        """Put every staged table in place of the old one (same transaction, a few renames)."""
        for source, staged in self.staged:
            target = self.qualified(source.name)
            if source.name in self.existing:
                retired = _identifier(source.name, "__ciq_old")
                self.copy_grants(target, self.qualified(staged))
                self.pg.execute(f"alter table {target} rename to {quote_ident(retired)}")
                self.pg.execute(
                    f"alter table {self.qualified(staged)} rename to {quote_ident(source.name)}"
                )
                self.pg.execute(f"drop table {self.qualified(retired)}")
            else:
                self.pg.execute(
                    f"alter table {self.qualified(staged)} rename to {quote_ident(source.name)}"
                )
            if source.key:
                self.pg.execute(
                    f"alter index {self.qualified(_identifier(staged, '_pkey'))} rename to "
                    f"{quote_ident(_identifier(source.name, '_pkey'))}"
                )
            self.annotate(source)

    def copy_grants(self, old: str, new: str) -> None:
        grants = self.pg.execute(
            "select case when a.grantee = 0 then 'public' else quote_ident("
            "pg_get_userbyid(a.grantee)) end, a.privilege_type, a.is_grantable "
            "from pg_class c, aclexplode(c.relacl) a "
            "where c.oid = %s::regclass and a.grantee <> c.relowner",
            [old],
        ).fetchall()
        for grantee, privilege, grantable in grants:
            option = " with grant option" if grantable else ""
            self.pg.execute(f"grant {privilege} on {new} to {grantee}{option}")

    def annotate(self, source: SourceTable) -> None:
        target = self.qualified(source.name)
        note = (
            f"Published by ciq from {self.source_label}: {source.schema}.{source.name} "
            f"({source.rows} rows, checksum {source.checksum}, publish {self.publish_id})."
        )
        self.pg.execute(f"comment on table {target} is {_literal(note)}")
        for column in source.columns:
            try:
                text = self.contract.column(column.name).description
            except KeyError:
                continue
            if text:
                self.pg.execute(
                    f"comment on column {target}.{quote_ident(column.name)} is {_literal(text)}"
                )

    def log(self, sources: Sequence[SourceTable], results: Sequence[TableResult]) -> None:
        by_name = {source.name: source for source in sources}
        for result in results:
            if result.action == "unchanged":
                continue
            source = by_name[result.name]
            self.pg.execute(
                f"insert into {self.qualified(LOG_TABLE)} (table_name, mode, duckdb_rows, "
                "postgres_rows, content_checksum, columns, primary_key, contract_sha256, source, "
                "publish_id, relation_oid, published_at) "
                "values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::regclass::oid::bigint, now()) "
                "on conflict (table_name) do update set mode = excluded.mode, "
                "duckdb_rows = excluded.duckdb_rows, postgres_rows = excluded.postgres_rows, "
                "content_checksum = excluded.content_checksum, columns = excluded.columns, "
                "primary_key = excluded.primary_key, contract_sha256 = excluded.contract_sha256, "
                "source = excluded.source, publish_id = excluded.publish_id, "
                "relation_oid = excluded.relation_oid, published_at = excluded.published_at",
                [
                    result.name,
                    "upsert" if result.action == "upserted" else "replace",
                    result.duckdb_rows,
                    result.postgres_rows,
                    result.checksum,
                    json.dumps(result.columns),
                    json.dumps(list(result.key)),
                    self.contract.sha256,
                    f"{self.source_label}: {source.schema}.{source.name}",
                    self.publish_id,
                    self.qualified(result.name),
                ],
            )

    def result(self, source: SourceTable, action: str, postgres_rows: int) -> TableResult:
        return TableResult(
            name=source.name,
            action=action,
            duckdb_rows=source.rows,
            postgres_rows=postgres_rows,
            checksum=source.checksum,
            key=source.key,
            columns={column.name: column.pg_type for column in source.columns},
        )


def _latest_per_key(source: SourceTable) -> str:
    """One row per key of a DuckDB table: the last one in table order wins."""
    return (
        f"select * from {source.relation} qualify row_number() over "
        f"(partition by {_names(source.key)} order by rowid desc) = 1"
    )


def _ddl(columns: Sequence[PgColumn]) -> str:
    return ", ".join(column.ddl for column in columns)


def _names(names: Iterable[str]) -> str:
    return ", ".join(quote_ident(name) for name in names)


def _identifier(name: str, suffix: str) -> str:
    """`name + suffix`, shortened with a hash to fit PostgreSQL's 63-byte identifiers."""
    if len((name + suffix).encode()) <= MAX_IDENTIFIER:
        return name + suffix
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    room = MAX_IDENTIFIER - len(suffix.encode()) - len(digest) - 1
    return f"{name.encode()[:room].decode(errors='ignore')}_{digest}{suffix}"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"

"""Moving DuckDB tables into a real PostgreSQL: types, atomic swaps, upserts, real failures."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

import duckdb
import numpy as np
import psycopg
import pytest

from loaders.contract import Contract, load_contract
from loaders.errors import PublishError
from loaders.publish_move import TableResult, describe_source, move_tables

REPO = Path(__file__).resolve().parents[1]
SCHEMA = "events"
WAIT_SECONDS = 60  # upper bound of every polling loop below

TYPES_CONTRACT = """\
id_col: id
time_col: at
treatment_col: treated
outcome_col: y
covariate_cols: [small, medium, big, ratio, flag, label, kind, day]
primary_key: [id]
types:
  id: int64
  at: datetime
  treated: int8
  y: float64
  small: int16
  medium: int32
  big: int64
  ratio: float32
  flag: bool
  label: string
  kind: category
  day: date
  note: string
"""

# Every contract type, DuckDB-only types, NULLs in every column and awkward values.
TYPES_TABLE = (
    "create type feeling as enum ('happy', 'sad')",
    """
    create table src.wide (
        id bigint, "at" timestamp, treated tinyint, y double, small smallint, medium integer,
        big bigint, ratio float, flag boolean, label varchar, kind varchar, day date,
        note varchar, price decimal(10, 2), huge hugeint, tiny utinyint, ns timestamp_ns,
        tz timestamptz, clock time, raw blob, mood feeling
    )
    """,
    r"""
    insert into src.wide values
    (1, '2024-02-29 23:59:59.123456', -128, 1.5, -32768, -2147483648, -9223372036854775807,
     3.25, true, 'plain', 'A', '1999-12-31', 'new column', 12345678.91,
     170141183460469231731687, 255, '2024-01-01 00:00:00.123456', '2024-06-01 12:00:00+02',
     '23:59:59.999999', '\x00\xFF'::blob, 'happy'),
    (2, '1970-01-01 00:00:00', 127, 'nan', 32767, 2147483647, 9223372036854775807, 'inf',
     false, '', 'b', '2000-01-01',
     'quote " comma , newline' || chr(10) || 'tab' || chr(9) || 'back\slash', -0.01, -1, 0,
     '1900-01-01 00:00:00', '1969-12-31 23:59:59+00', '00:00:00', ''::blob, 'sad'),
    (3, '1901-12-13 20:45:52.000001', 0, '-0.0', 0, 0, 0, '-inf', true, 'ünïcödé ✓ 日本', 'C',
     '1900-02-28', null, 0, 0, 1, null, null, null, null, null),
    (4, null, null, null, null, null, null, null, null, null, null, null, null, null, null,
     null, null, null, null, null, null)
    """,
    """
    insert into src.wide
    select
        i, timestamp '2020-01-01' + to_microseconds(i * 1000003), i % 2, i / 7,
        case when i % 3 = 0 then null else i end, i * 1000, i * 100000000000, i / 3,
        case when i % 5 = 0 then null else i % 2 = 0 end, repeat('x', (i % 17)::integer),
        case when i % 4 = 0 then null else 'k' || i % 3 end, date '2000-01-01' + i::integer,
        case when i % 2 = 0 then 'n' || i end, i / 100, i, i % 256,
        null, null, null, null, null
    from range(5, 300) as r(i)
    """,
)


def contract_of(folder: Path, text: str, dataset: str = "wide") -> Contract:
    path = folder / f"{dataset}.yml"
    path.write_text(text)
    return load_contract(path)


def events_contract() -> Contract:
    return load_contract(REPO / "contracts" / "events.yml")


def events_sql(rows: int, version: int, table: str = "causal_ready") -> str:
    """An events-shaped causal_ready with `rows` rows whose outcome tells the version."""
    return f"""
        create or replace table {SCHEMA}.{table} as
        select
            i::bigint as customer_id,
            timestamp '2024-01-01' + to_seconds(i) as event_time,
            (i % 2)::tinyint as treated,
            {version} * 1000.0 + i as y,
            case when i % 7 = 0 then null else (i % 90)::smallint end as age,
            ['M', 'F', 'U'][i % 3 + 1] as gender,
            (i % 1000)::float as rfm_score,
            (i % 50)::float as prior_7d_spend,
            (i % 20)::smallint as web_session_cnt
        from range({rows}) as r(i)
    """


def make_duckdb(path: Path, *statements: str, schema: str = SCHEMA) -> Path:
    with duckdb.connect(str(path)) as con:
        con.execute(f"create schema if not exists {schema}")
        for statement in statements:
            con.execute(statement)
    return path


def publish(
    warehouse: Path,
    dsn: str,
    contract: Contract,
    tables: tuple[str, ...] = ("causal_ready",),
    *,
    source_schema: str = SCHEMA,
    connection: psycopg.Connection | None = None,
    **options: object,
) -> list[TableResult]:
    with duckdb.connect(str(warehouse), read_only=True) as duck:
        sources = [describe_source(duck, source_schema, name, contract) for name in tables]
        if connection is not None:
            return move_tables(duck, sources, connection, SCHEMA, contract, **options)
        with psycopg.connect(dsn, autocommit=True) as pg:
            return move_tables(duck, sources, pg, SCHEMA, contract, **options)


def query(dsn: str, sql: str, *params: object) -> list[tuple]:
    """Rows of a query (none for a statement), on a connection of its own."""
    with psycopg.connect(dsn, autocommit=True) as pg:
        cursor = pg.execute(sql, params or None)
        return cursor.fetchall() if cursor.description else []


def leftovers(dsn: str) -> list[str]:
    """Half-built or retired tables a publish could have left behind."""
    rows = query(
        dsn,
        "select relname from pg_class where relname like '%%\\_\\_ciq\\_%%' "
        "or relname like 'ciq\\_upsert\\_%%'",
    )
    return [row[0] for row in rows]


def state(dsn: str, table: str = "causal_ready") -> tuple:
    """What readers see: rows, the outcome total (the version), the table oid, its log row."""
    rows, total, oid = query(
        dsn,
        f"select count(*), sum(y), '{SCHEMA}.{table}'::regclass::oid from {SCHEMA}.{table}",
    )[0]
    log = query(
        dsn,
        f"select content_checksum, postgres_rows, publish_id from {SCHEMA}.ciq_published_tables "
        "where table_name = %s",
        table,
    )
    return rows, total, oid, log


def wait_for(condition: Callable[[], object], what: str) -> object:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def test_every_type_round_trips_through_binary_copy(tmp_path: Path, postgres: str) -> None:
    contract = contract_of(tmp_path, TYPES_CONTRACT)
    warehouse = make_duckdb(tmp_path / "w.duckdb", *TYPES_TABLE, schema="src")
    (result,) = publish(
        warehouse, postgres, contract, ("wide",), source_schema="src", batch_rows=64
    )
    assert result.action == "created" and result.duckdb_rows == result.postgres_rows == 299
    types = dict(
        query(
            postgres,
            "select column_name, format_type(atttypid, atttypmod) from information_schema.columns "
            "join pg_attribute on attrelid = 'events.wide'::regclass and attname = column_name "
            "where table_schema = 'events' and table_name = 'wide'",
        )
    )
    assert types == {
        "id": "bigint",
        "at": "timestamp without time zone",
        "treated": "smallint",
        "y": "double precision",
        "small": "smallint",
        "medium": "integer",
        "big": "bigint",
        "ratio": "real",
        "flag": "boolean",
        "label": "text",
        "kind": "text",
        "day": "date",
        "note": "text",
        "price": "numeric(10,2)",
        "huge": "numeric(38,0)",
        "tiny": "smallint",
        "ns": "timestamp without time zone",
        "tz": "timestamp with time zone",
        "clock": "time without time zone",
        "raw": "bytea",
        "mood": "text",
    }
    columns = ", ".join(f'"{name}"' for name in types)
    readable = columns.replace('"ns"', "ns::timestamp").replace('"mood"', "mood::varchar")
    with duckdb.connect(str(warehouse), read_only=True) as con:
        expected = con.execute(f"select {readable} from src.wide order by id").fetchall()
    actual = query(postgres, f"select {columns} from events.wide order by id")
    assert len(actual) == len(expected) == 299
    for want, got in zip(expected, actual, strict=True):
        for name, a, b in zip(types, want, got, strict=True):
            if isinstance(a, float) and math.isnan(a):
                assert isinstance(b, float) and math.isnan(b), name
            elif name == "huge" and a is not None:
                assert int(b) == a, name
            elif name == "ratio" and a is not None:  # real: the same 32-bit float
                assert np.float32(b) == np.float32(a), (name, a, b)
            else:
                assert b == a, (name, a, b)
    # empty string and NULL stay apart; -0.0 keeps its sign; unicode is intact
    assert query(postgres, "select label = '', label is null from events.wide where id = 2")[0] == (
        True,
        False,
    )
    assert query(postgres, "select label from events.wide where id = 3")[0][0] == "ünïcödé ✓ 日本"
    assert math.copysign(1, query(postgres, "select y from events.wide where id = 3")[0][0]) == -1


def test_infinite_dates_and_times_stay_infinite(tmp_path: Path, postgres: str) -> None:
    contract = contract_of(tmp_path, TYPES_CONTRACT)
    table = """
        create table src.wide as select 1::bigint as id, 'infinity'::timestamp as "at",
        '-infinity'::date as day, 0::tinyint as treated, 0.0::double as y
        union all select 2, '-infinity'::timestamp, 'infinity'::date, 1, 1.0
    """
    warehouse = make_duckdb(tmp_path / "w.duckdb", table, schema="src")
    publish(warehouse, postgres, contract, ("wide",), source_schema="src")
    assert query(postgres, "select id, at::text, day::text from events.wide order by id") == [
        (1, "infinity", "-infinity"),
        (2, "-infinity", "infinity"),
    ]


def test_replace_swaps_in_one_transaction_and_keeps_key_comments_and_grants(
    tmp_path: Path, postgres: str
) -> None:
    contract = events_contract()
    warehouse = make_duckdb(tmp_path / "w.duckdb", events_sql(500, 1))
    publish(warehouse, postgres, contract)
    role = f"ciq_reader_{uuid.uuid4().hex[:8]}"
    query(postgres, f"create role {role}")
    try:
        query(postgres, f"grant usage on schema events to {role}")
        query(postgres, f"grant select on events.causal_ready to {role}")
        make_duckdb(warehouse, events_sql(800, 2))
        (result,) = publish(warehouse, postgres, contract)
        assert (result.action, result.duckdb_rows, result.postgres_rows) == ("replaced", 800, 800)
        rows, total, _, log = state(postgres)
        assert rows == 800 and total == sum(2000.0 + i for i in range(800))
        assert log[0][1] == 800
        assert query(
            postgres, f"select has_table_privilege('{role}', 'events.causal_ready', 'select')"
        )[0][0]
    finally:
        query(postgres, f"drop owned by {role}")
        query(postgres, f"drop role {role}")
    key = query(
        postgres,
        "select conname, pg_get_constraintdef(oid) from pg_constraint "
        "where conrelid = 'events.causal_ready'::regclass",
    )
    assert key == [("causal_ready_pkey", "PRIMARY KEY (customer_id, event_time)")]
    comment = query(postgres, "select col_description('events.causal_ready'::regclass, 1)")[0][0]
    assert comment == contract.column("customer_id").description
    assert leftovers(postgres) == []


def test_publishing_the_same_content_twice_changes_nothing(tmp_path: Path, postgres: str) -> None:
    contract = events_contract()
    warehouse = make_duckdb(tmp_path / "w.duckdb", events_sql(300, 1))
    publish(warehouse, postgres, contract)
    before = state(postgres)
    xmin = query(postgres, "select xmin::text from events.ciq_published_tables")
    (again,) = publish(warehouse, postgres, contract)
    assert again.action == "unchanged"
    assert state(postgres) == before  # same rows, same table (oid), same log row and publish id
    assert query(postgres, "select xmin::text from events.ciq_published_tables") == xmin
    # a table replaced behind ciq's back (another oid) is published again
    query(postgres, "create table events.other as select * from events.causal_ready")
    query(postgres, "drop table events.causal_ready")
    query(postgres, "alter table events.other rename to causal_ready")
    (repaired,) = publish(warehouse, postgres, contract)
    assert repaired.action == "replaced"


UPSERT_CONTRACT = """\
id_col: id
treatment_col: treated
outcome_col: y
covariate_cols: [score]
types:
  id: int64
  treated: int8
  y: float64
  score: float64
  note: string
"""


def test_upsert_merges_by_key_last_row_wins_and_adds_columns(tmp_path: Path, postgres: str) -> None:
    contract = contract_of(tmp_path, UPSERT_CONTRACT, "upserts")
    first = f"""
        create table {SCHEMA}.causal_ready as select i::bigint as id, (i % 2)::tinyint as treated,
        i::double as y, i * 10::double as score from range(1, 6) as r(i)
    """
    summary = f"create or replace table {SCHEMA}.summary as select 1 as n_rows"
    warehouse = make_duckdb(tmp_path / "w.duckdb", first, summary)
    publish(warehouse, postgres, contract, ("causal_ready", "summary"))
    second = f"""
        create or replace table {SCHEMA}.causal_ready as
        select * from (values
            (3::bigint, 1::tinyint, 30.0::double, 300.0::double, 'updated'),
            (4, 0, 40.0, 400.0, 'updated'),
            (7, 1, 70.0, 700.0, 'first of two'),
            (5, 1, 50.0, 500.0, null),
            (6, 0, 60.0, 600.0, 'new'),
            (7, 0, 77.0, 770.0, 'last of two wins')
        ) as t(id, treated, y, score, note)
    """
    make_duckdb(
        warehouse, second, f"create or replace table {SCHEMA}.summary as select 2 as n_rows"
    )
    ready, totals = publish(
        warehouse, postgres, contract, ("causal_ready", "summary"), mode="upsert"
    )
    assert (ready.action, ready.duckdb_rows, ready.postgres_rows) == ("upserted", 6, 7)
    assert totals.action == "replaced"  # no contract key: summaries are replaced
    rows = query(
        postgres, "select id, treated, y, score, note from events.causal_ready order by id"
    )
    assert rows == [
        (1, 1, 1.0, 10.0, None),
        (2, 0, 2.0, 20.0, None),
        (3, 1, 30.0, 300.0, "updated"),
        (4, 0, 40.0, 400.0, "updated"),
        (5, 1, 50.0, 500.0, None),
        (6, 0, 60.0, 600.0, "new"),
        (7, 0, 77.0, 770.0, "last of two wins"),
    ]
    assert query(postgres, "select n_rows from events.summary") == [(2,)]
    log = dict(query(postgres, "select table_name, mode from events.ciq_published_tables"))
    assert log == {"causal_ready": "upsert", "summary": "replace"}
    (again, _) = publish(warehouse, postgres, contract, ("causal_ready", "summary"), mode="upsert")
    assert again.action == "unchanged"
    assert leftovers(postgres) == []


def test_upsert_refuses_to_change_a_column_type(tmp_path: Path, postgres: str) -> None:
    contract = contract_of(tmp_path, UPSERT_CONTRACT, "upserts")
    table = f"""
        create or replace table {SCHEMA}.causal_ready as select i::bigint as id,
        0::tinyint as treated, 1::double as y, {{score}} as score from range(3) as r(i)
    """
    warehouse = make_duckdb(tmp_path / "w.duckdb", table.format(score="1.0::double"))
    publish(warehouse, postgres, contract)
    make_duckdb(warehouse, table.format(score="'text'"))
    with pytest.raises(PublishError, match=r"score is double precision in PostgreSQL but text"):
        publish(warehouse, postgres, contract, mode="upsert")
    assert query(postgres, "select count(*), sum(score) from events.causal_ready") == [(3, 3.0)]


def test_a_dependent_view_stops_the_swap_and_changes_nothing(tmp_path: Path, postgres: str) -> None:
    contract = events_contract()
    warehouse = make_duckdb(tmp_path / "w.duckdb", events_sql(100, 1))
    publish(warehouse, postgres, contract)
    query(postgres, "create view public.treated_units as select * from events.causal_ready")
    before = state(postgres)
    make_duckdb(warehouse, events_sql(200, 2))
    with pytest.raises(PublishError) as error:
        publish(warehouse, postgres, contract)
    assert "public.treated_units depend(s) on it" in str(error.value)
    assert "--mode upsert" in str(error.value)
    assert state(postgres) == before and leftovers(postgres) == []
    (upserted,) = publish(warehouse, postgres, contract, mode="upsert")  # updates in place
    assert upserted.postgres_rows == 200
    assert query(postgres, "select count(*) from public.treated_units") == [(200,)]


KILL_SCRIPT = """
import sys, duckdb, psycopg
from pathlib import Path
from loaders.contract import load_contract
from loaders.publish_move import describe_source, move_tables
warehouse, dsn, contract = sys.argv[1], sys.argv[2], load_contract(Path(sys.argv[3]))
with duckdb.connect(warehouse, read_only=True) as duck, psycopg.connect(dsn, autocommit=True) as pg:
    sources = [describe_source(duck, "events", "causal_ready", contract)]
    move_tables(duck, sources, pg, "events", contract, batch_rows=5000)
"""


def test_a_publisher_killed_mid_copy_leaves_the_previous_version(
    tmp_path: Path, postgres: str
) -> None:
    contract = events_contract()
    warehouse = make_duckdb(tmp_path / "w.duckdb", events_sql(1000, 1))
    publish(warehouse, postgres, contract)
    before = state(postgres)
    make_duckdb(warehouse, events_sql(2_000_000, 2))
    process = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, str(warehouse), postgres, str(contract.path)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        progress = "select pid, tuples_processed from pg_stat_progress_copy where relid <> 0"
        pid, _ = wait_for(
            lambda: [row for row in query(postgres, progress) if row[1] > 0], "the COPY to start"
        )[0]
        os.kill(process.pid, signal.SIGSTOP)
        copying = query(postgres, progress)
        assert copying and 0 < copying[0][1] < 2_000_000  # frozen in the middle of the COPY
        # readers meanwhile see the previous version, in full
        assert state(postgres) == before
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    wait_for(
        lambda: not query(postgres, "select 1 from pg_stat_activity where pid = %s", pid),
        "PostgreSQL to end the killed publisher's session",
    )
    assert state(postgres) == before
    assert leftovers(postgres) == []


def test_a_connection_dropped_during_the_swap_leaves_the_previous_version(
    tmp_path: Path, postgres: str
) -> None:
    contract = events_contract()
    warehouse = make_duckdb(tmp_path / "w.duckdb", events_sql(1000, 1))
    publish(warehouse, postgres, contract)
    before = state(postgres)
    make_duckdb(warehouse, events_sql(3000, 2))
    errors: list[BaseException] = []
    with psycopg.connect(postgres) as reader, psycopg.connect(postgres, autocommit=True) as pg:
        # a reader inside a transaction holds its lock: the publisher copies, then waits
        assert reader.execute("select count(*) from events.causal_ready").fetchone() == (1000,)

        def run() -> None:
            try:
                publish(warehouse, postgres, contract, connection=pg)
            except BaseException as exc:
                errors.append(exc)

        publisher = threading.Thread(target=run)
        publisher.start()
        backend = pg.info.backend_pid
        waiting = "select wait_event_type from pg_stat_activity where pid = %s"
        wait_for(lambda: query(postgres, waiting, backend) == [("Lock",)], "the swap to wait")
        assert query(postgres, "select pg_terminate_backend(%s)", backend) == [(True,)]
        publisher.join(WAIT_SECONDS)
        assert reader.execute("select count(*) from events.causal_ready").fetchone() == (1000,)
        reader.commit()
    assert len(errors) == 1 and isinstance(errors[0], PublishError)
    assert "nothing was changed" in str(errors[0])
    assert state(postgres) == before and leftovers(postgres) == []
    (result,) = publish(warehouse, postgres, contract)  # the next publish simply works
    assert result.postgres_rows == 3000


def test_readers_holding_locks_make_the_publish_give_up_cleanly(
    tmp_path: Path, postgres: str
) -> None:
    contract = events_contract()
    warehouse = make_duckdb(tmp_path / "w.duckdb", events_sql(100, 1))
    publish(warehouse, postgres, contract)
    before = state(postgres)
    make_duckdb(warehouse, events_sql(150, 2))
    with psycopg.connect(postgres) as reader:
        reader.execute("select count(*) from events.causal_ready").fetchall()
        with pytest.raises(PublishError, match=r"readers held locks .* for more than 0\.2 s"):
            publish(warehouse, postgres, contract, lock_timeout=0.2)
    assert state(postgres) == before and leftovers(postgres) == []


def test_a_duckdb_type_without_mapping_is_named(tmp_path: Path, postgres: str) -> None:
    contract = events_contract()
    table = f"create table {SCHEMA}.causal_ready as select 1 as id, [1, 2] as numbers"
    warehouse = make_duckdb(tmp_path / "w.duckdb", table)
    with pytest.raises(PublishError, match=r"causal_ready.numbers: DuckDB type INTEGER\[\]"):
        publish(warehouse, postgres, contract)


def test_dates_before_and_after_the_postgres_epoch(tmp_path: Path, postgres: str) -> None:
    contract = contract_of(tmp_path, TYPES_CONTRACT)
    table = """
        create table src.wide as select i::bigint as id, 0::tinyint as treated, 0.0 as y,
        date '1999-12-30' + i::integer as day,
        timestamp '1999-12-31 23:59:59' + to_microseconds(i) as "at"
        from range(4) as r(i)
    """
    warehouse = make_duckdb(tmp_path / "w.duckdb", table, schema="src")
    publish(warehouse, postgres, contract, ("wide",), source_schema="src")
    rows = query(postgres, "select day, at from events.wide order by id")
    assert rows[0] == (date(1999, 12, 30), datetime(1999, 12, 31, 23, 59, 59))
    assert rows[3] == (date(2000, 1, 2), datetime(1999, 12, 31, 23, 59, 59, 3))

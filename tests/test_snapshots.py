"""Snapshots of the built tables and their restore: dated Parquet, atomic, lossless."""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from loaders.errors import CiqError
from loaders.settings import Paths
from loaders.snapshots import restore, schema_tables, snapshot


def tables_of(paths: Paths) -> dict[str, list[tuple]]:
    """`describe` of every base table of schema events."""
    with duckdb.connect(str(paths.warehouse)) as con:
        return {
            t: con.execute(f"describe events.{t}").fetchall() for t in schema_tables(con, "events")
        }


def copy_tables(paths: Paths) -> None:
    """Keep a copy of every table of schema events in schema kept, to compare with later."""
    with duckdb.connect(str(paths.warehouse)) as con:
        con.execute("create schema kept")
        for table in schema_tables(con, "events"):
            con.execute(f"create table kept.{table} as select * from events.{table}")


def differences(paths: Paths, table: str) -> int:
    """Rows in one of events.<table> and kept.<table> but not the other, duplicates counted."""
    with duckdb.connect(str(paths.warehouse)) as con:
        query = (
            f"select count(*) from ((select * from events.{table} except all "
            f"select * from kept.{table}) union all (select * from kept.{table} except all "
            f"select * from events.{table}))"
        )
        return con.execute(query).fetchone()[0]


def test_snapshot_then_restore_is_lossless(project: Paths, ciq) -> None:
    assert ciq("init", "events")[0] == 0
    assert ciq("load", "events", "--quiet")[0] == 0
    code, _, err = ciq("build", "events")
    assert code == 0, err
    before = tables_of(project)
    assert {"cur_records", "causal_ready", "covariate_balance"} <= set(before)
    assert "stg_loader__records" not in before  # a view, not a table
    copy_tables(project)

    code, out, _ = ciq("snapshot", "events")
    assert code == 0
    day = dt.date.today().strftime("%Y%m%d")
    folder = project.data / "snapshots" / day / "events"
    assert sorted(p.stem for p in folder.glob("*.parquet")) == sorted(before)
    assert f"snapshot {len(before)} table(s) of events" in out

    with duckdb.connect(str(project.warehouse)) as con:
        con.execute("drop table events.causal_ready")
        con.execute("delete from events.cur_records where customer_id % 2 = 0")
        con.execute("alter table events.covariate_balance alter smd type varchar")
        con.execute("update events.overlap_diagnostics set n_rows = -1")

    code, out, err = ciq("restore", day, "events")
    assert code == 0, err
    assert tables_of(project) == before  # same tables, column names, types and nullability
    for table in before:
        assert differences(project, table) == 0, table


def test_a_second_snapshot_the_same_day_replaces_the_first(project: Paths) -> None:
    project.warehouse.parent.mkdir(parents=True)
    with duckdb.connect(str(project.warehouse)) as con:
        con.execute("create schema events")
        con.execute("create table events.a as select 1 as x")
        con.execute("create table events.b as select 2 as y")
        con.execute("create view events.v as select * from events.a")
    day = dt.date(2024, 1, 5)
    first = snapshot(project, "events", today=day)
    assert first.rows == {"a": 1, "b": 1}
    with duckdb.connect(str(project.warehouse)) as con:
        con.execute("drop table events.b")
        con.execute("insert into events.a values (3)")
    second = snapshot(project, "events", today=day)
    assert second.folder == first.folder
    assert sorted(p.name for p in second.folder.iterdir()) == ["_snapshot.json", "a.parquet"]
    assert [p.name for p in second.folder.parent.iterdir()] == ["events"]  # no leftovers
    assert restore(project, "events", "20240105").rows == {"a": 2}


def test_a_missing_date_lists_the_available_ones(project: Paths, ciq) -> None:
    project.warehouse.parent.mkdir(parents=True)
    with duckdb.connect(str(project.warehouse)) as con:
        con.execute("create schema events")
        con.execute("create table events.a as select 1 as x")
    snapshot(project, "events", today=dt.date(2024, 1, 5))
    snapshot(project, "events", today=dt.date(2024, 1, 7))
    code, _, err = ciq("restore", "20240106", "events")
    assert code == 2
    assert "no snapshot of events for 20240106" in err
    assert "available: 20240105, 20240107" in err
    with pytest.raises(CiqError, match="must be YYYYMMDD"):
        restore(project, "events", "../x")


def test_snapshot_without_tables_is_an_error(project: Paths, ciq) -> None:
    code, _, err = ciq("snapshot", "events")
    assert code == 2 and "no warehouse yet" in err
    project.warehouse.parent.mkdir(parents=True)
    duckdb.connect(str(project.warehouse)).close()
    code, _, err = ciq("snapshot", "events")
    assert code == 2 and "schema events has no tables" in err
    assert not list((project.data / "snapshots").glob("*/.*"))  # no temporary folder left

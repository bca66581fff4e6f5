"""`ciq publish` and `ciq build --target postgres` end to end: real dbt, DuckDB and PostgreSQL."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import duckdb
import psycopg
import pytest

from loaders.cli import main
from loaders.contract import contract_for
from loaders.dbt_build import build
from loaders.errors import BuildError
from loaders.postgres_dbt import run_dbt_on_postgres
from loaders.postgres_types import POSTGRES_TYPES
from loaders.publish_settings import manifest_path
from loaders.publish_tables import published_models
from loaders.settings import Paths
from loaders.staging import load_dataset
from tests.conftest import GENERATED

REPO = Path(__file__).resolve().parents[1]
SKIPPED = {"target", "logs", "generated", "__pycache__", *GENERATED}


def _ignore(folder: str, names: list[str]) -> set[str]:
    return {name for name in names if name in SKIPPED}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Paths]:
    """The bundled sample loaded and built on DuckDB once for this module."""
    root = tmp_path_factory.mktemp("publish") / "project"
    root.mkdir()
    for name in ("dbt_project", "macros", "contracts"):
        shutil.copytree(REPO / name, root / name, ignore=_ignore)
    shutil.copy(REPO / "profiles.yml", root / "profiles.yml")
    shutil.copytree(REPO / "data" / "samples" / "events", root / "data" / "raw" / "events")
    paths = Paths(root)
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("CIQ_WAREHOUSE", raising=False)
        patch.delenv("CIQ_TARGET", raising=False)
        contract = contract_for("events", paths.contracts)
        load_dataset(contract, paths, quiet=True)
        build(contract, paths)
    yield paths


@pytest.fixture
def project(built: Paths, monkeypatch: pytest.MonkeyPatch) -> Paths:
    """The built project as the working directory and CIQ_HOME of the `ciq` command line."""
    monkeypatch.setenv("CIQ_HOME", str(built.root))
    monkeypatch.delenv("CIQ_WAREHOUSE", raising=False)
    monkeypatch.delenv("CIQ_TARGET", raising=False)
    monkeypatch.chdir(built.root)
    return built


def ciq(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def actions(out: str) -> dict[str, str]:
    """What the publish summary says it did to each table."""
    lines = re.findall(r"^  (\w+) +(created|replaced|upserted|unchanged) ", out, re.MULTILINE)
    return dict(lines)


def pg_rows(dsn: str, sql: str) -> list[tuple]:
    with psycopg.connect(dsn) as pg:
        return pg.execute(sql).fetchall()


def duck_rows(paths: Paths, sql: str) -> list[tuple]:
    with duckdb.connect(str(paths.warehouse)) as con:
        return con.execute(sql).fetchall()


def test_publish_moves_the_causal_layer_and_builds_the_publish_layer(
    project: Paths, postgres: str, capsys: pytest.CaptureFixture[str]
) -> None:
    contract = contract_for("events", project.contracts)
    code, out, err = ciq(capsys, "publish", "events")  # the one command: build, move, test
    assert code == 0, err
    assert "overlap  PASS" in out  # the DuckDB build ran first, gates included
    published = published_models(project, "events")
    assert actions(out) == dict.fromkeys(published, "created")
    assert {"causal_ready", "propensity_scores", "overlap_diagnostics", "covariate_balance"} <= set(
        published
    )
    for name in published:  # every causal-layer table, with DuckDB's row count
        (duckdb_count,) = duck_rows(project, f"select count(*) from events.{name}")[0]
        assert pg_rows(postgres, f"select count(*) from events.{name}") == [(duckdb_count,)]
    types = dict(
        pg_rows(
            postgres,
            "select column_name, data_type from information_schema.columns "
            "where table_schema = 'events' and table_name = 'causal_ready'",
        )
    )
    expected = {
        name: POSTGRES_TYPES[contract.column(name).type].replace(
            "timestamp", "timestamp without time zone"
        )
        for name in contract.causal_columns
    }
    assert types == expected
    log = pg_rows(
        postgres,
        "select table_name, mode, duckdb_rows = postgres_rows from events.ciq_published_tables",
    )
    assert sorted(log) == sorted((name, "replace", True) for name in published)
    (ready,) = duck_rows(project, "select count(*) from events.causal_ready")[0]
    assert pg_rows(
        postgres, "select count(*), count(propensity_score) from events.scored_units"
    ) == [(ready, ready)]
    assert pg_rows(postgres, "select is_usable, n_rows from events.diagnostics_summary") == [
        (True, ready)
    ]
    manifest = json.loads(manifest_path(project, "events").read_text())
    assert manifest["dbt"]["status"] == "passed" and manifest["mode"] == "replace"
    assert [table["name"] for table in manifest["tables"]] == published
    assert all(t["duckdb_rows"] == t["postgres_rows"] for t in manifest["tables"])
    # dbt-postgres runs no Python model; docs link DuckDB's causal models to the publish
    on_postgres = json.loads((project.dbt_project / "target/postgres/manifest.json").read_text())
    assert not [n for n in on_postgres["nodes"].values() if n.get("language") == "python"]
    assert set(on_postgres["exposures"]) == {"exposure.ciq.postgres_readers"}
    on_duckdb = json.loads((project.dbt_project / "target/manifest.json").read_text())
    exposure = on_duckdb["exposures"]["exposure.ciq.postgres_publish"]
    assert {f"model.ciq.{name}" for name in published} <= set(exposure["depends_on"]["nodes"])

    # the same build again changes nothing: same tables (oids), same log rows
    before = pg_rows(
        postgres, "select table_name, relation_oid, publish_id from events.ciq_published_tables"
    )
    code, out, err = ciq(capsys, "publish", "events", "--no-build")
    assert code == 0, err
    assert actions(out) == dict.fromkeys(published, "unchanged")
    after = pg_rows(
        postgres, "select table_name, relation_oid, publish_id from events.ciq_published_tables"
    )
    assert sorted(after) == sorted(before)
    oids = pg_rows(postgres, "select relname, oid from pg_class where relname = 'causal_ready'")
    assert oids[0][1] == dict((row[0], row[1]) for row in before)["causal_ready"]


def test_the_parity_test_catches_a_table_changed_after_publishing(
    project: Paths, postgres: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert ciq(capsys, "publish", "events", "--no-build")[0] == 0
    with psycopg.connect(postgres, autocommit=True) as pg:
        pg.execute(
            "delete from events.propensity_scores where ctid in "
            "(select ctid from events.propensity_scores limit 3)"
        )
        with pytest.raises(BuildError) as error:
            run_dbt_on_postgres(
                project,
                pg,
                "test",
                "--select",
                "source:ciq_publish.propensity_scores,test_name:ciq_publish_parity",
                target="postgres",
                variables={"ciq_publish_schema": "events"},  # as ciq publish: partial parsing
                what="the parity test",
            )
    assert "ciq_publish_parity" in str(error.value)


def test_build_on_postgres_matches_duckdb_layer_by_layer(
    project: Paths, postgres: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = ciq(capsys, "build", "events", "--target", "postgres")
    assert code == 0, err
    contract = contract_for("events", project.contracts)
    for model in ("stg_loader__records", "cur_records", "causal_ready"):
        sql = f"select count(*) from events.{model}"
        assert pg_rows(postgres, sql) == duck_rows(project, sql), model
    (ready,) = duck_rows(project, "select count(*) from events.causal_ready")[0]
    assert f"events: {ready} rows in events.causal_ready on PostgreSQL" in out
    # a checksum per column: non-null count, then a digest (text), bounds (time) or sum (numbers)
    for name in contract.causal_columns:
        column, quoted = contract.column(name), f'"{name}"'
        exact = True
        if column.is_categorical:
            duck = f"md5(string_agg({quoted}, '|' order by {quoted}))"
            pg = f"md5(string_agg({quoted}, '|' order by {quoted} collate \"C\"))"
        elif column.type in ("date", "datetime"):
            duck = pg = f"min({quoted}), max({quoted})"
        else:
            duck, pg = f"sum(cast({quoted} as double))", f"sum({quoted}::float8)"
            exact = False  # sums of floats may differ in the last bits with the order
        on_duckdb = duck_rows(project, f"select count({quoted}), {duck} from events.causal_ready")
        on_postgres = pg_rows(postgres, f"select count({quoted}), {pg} from events.causal_ready")
        expected = on_duckdb[0] if exact else pytest.approx(on_duckdb[0], rel=1e-12)
        assert on_postgres == [expected], name
    # and row by row, in key order (binary results: reals come back as the same 32-bit floats)
    order = ", ".join(f'"{name}"' for name in contract.primary_key)
    expected = duck_rows(project, f"select * from events.causal_ready order by {order}")
    with psycopg.connect(postgres) as pg:
        cursor = pg.cursor(binary=True)
        actual = cursor.execute(f"select * from events.causal_ready order by {order}").fetchall()
    assert actual == expected


def test_publish_errors_are_one_line_without_traceback(
    project: Paths, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CIQ_POSTGRES_DSN", "host=/nonexistent/ciq port=1 dbname=x")
    code, _, err = ciq(capsys, "publish", "events", "--no-build")
    assert code == 2
    assert err.startswith("ciq: error: cannot connect to PostgreSQL (CIQ_POSTGRES_DSN:")
    assert "Traceback" not in err
    monkeypatch.setenv("CIQ_POSTGRES_DSN", "not a = valid = dsn")
    code, _, err = ciq(capsys, "publish", "events")
    assert code == 2 and "CIQ_POSTGRES_DSN: not a valid PostgreSQL connection string" in err
    code, _, err = ciq(capsys, "publish", "events", "--schema", "bad-name")
    assert code == 2 and "publish schema 'bad-name'" in err
    code, _, err = ciq(capsys, "publish", "events", "--target", "dev")
    assert code == 2 and "dbt target 'dev' must be a postgres output (type duckdb)" in err


def test_without_configuration_the_bundled_server_is_used(
    project: Paths, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("CIQ_POSTGRES_DSN", "PGHOST", "PGHOSTADDR", "PGSERVICE"):
        monkeypatch.delenv(name, raising=False)
    try:
        code, out, err = ciq(capsys, "postgres", "uri")
        assert code == 0, err
        uri = out.strip()
        assert str(project.warehouse.parent / "postgres") in uri
        assert pg_rows(uri, "select 1") == [(1,)]
    finally:
        code, out, _ = ciq(capsys, "postgres", "stop")
    assert code == 0 and out.startswith("stopped the bundled PostgreSQL server")
    assert ciq(capsys, "postgres", "stop")[1].startswith("the bundled server is not running")

"""The CSV loader: every rule rejects with its reason, counts add up, writes are atomic."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import duckdb
import pytest

from loaders.contract import contract_for
from loaders.errors import LoadError, RejectsExceeded
from loaders.settings import Paths
from loaders.staging import load_dataset
from tests.conftest import write_csv

HEADER = "customer_id,event_time,treated,y,age,gender,rfm_score,prior_7d_spend,web_session_cnt"
GOOD = [
    "1,2024-01-01 10:00:00,1,3.5,34,M,100,,3",
    "2,2024-01-02 10:00:00,0,2.5,-1,f,200.5,10,0",
    "3,2024-01-03 10:00:00,0,1.0,,X,0,0,10000",
]
BAD = {
    "not_null": "4,,1,1.0,30,M,1,1,1",
    "type": "5,2024-01-03 10:00:00,0,1.0,30,M,lots,1,1",
    "range": "6,2024-01-03 10:00:00,0,1.0,111,M,1,1,1",
    "treatment_binary": "7,2024-01-03 10:00:00,2,1.0,30,M,1,1,1",
}


def rows(path: Path) -> list[tuple]:
    return duckdb.sql(f"select * from read_parquet('{path}') order by all").fetchall()


def raw_of(project: Paths, name: str) -> Path:
    return project.raw("events") / name


def test_every_rule_rejects_with_file_record_column_rule_and_value(project: Paths) -> None:
    source = write_csv(raw_of(project, "batch.csv"), HEADER, *GOOD, *BAD.values())
    result = load_dataset(contract_for("events", project.contracts), project, quiet=True)
    assert (result.rows_read, result.rows_staged, result.rows_rejected) == (7, 3, 4)
    assert result.rows_read == result.rows_staged + result.rows_rejected
    assert result.rejects_by_rule() == {r: 1 for r in BAD}
    rejects = duckdb.sql(
        f"select source_file, record, line, column_name, rule, raw_value "
        f"from '{project.rejects_raw('events')}/batch.rejects.parquet' order by record"
    ).fetchall()
    assert rejects == [
        ("batch.csv", 4, 5, "event_time", "not_null", None),
        ("batch.csv", 5, 6, "rfm_score", "type", "lots"),
        ("batch.csv", 6, 7, "age", "range", "111"),
        ("batch.csv", 7, 8, "treated", "treatment_binary", "2"),
    ]
    staged = duckdb.sql(
        f"select customer_id, age, gender, prior_7d_spend, _source_file, _source_row "
        f"from '{project.staged_raw('events')}/batch.parquet' order by _source_row"
    ).fetchall()
    # staging keeps raw values typed: the sentinel -1, lower-case and unknown gender, nulls
    assert staged == [
        (1, 34, "M", None, "batch.csv", 1),
        (2, -1, "f", 10.0, "batch.csv", 2),
        (3, None, "X", 0.0, "batch.csv", 3),
    ]
    assert source.read_text().count("\n") == 8


def test_staged_types_follow_the_contract(project: Paths) -> None:
    write_csv(raw_of(project, "a.csv"), HEADER, *GOOD)
    load_dataset(contract_for("events", project.contracts), project, quiet=True)
    types = dict(
        duckdb.sql(f"describe select * from '{project.staged_raw('events')}/a.parquet'")
        .project("column_name, column_type")
        .fetchall()
    )
    assert types["customer_id"] == "BIGINT"
    assert types["event_time"] == "TIMESTAMP"
    assert types["treated"] == "TINYINT"
    assert types["rfm_score"] == "FLOAT"
    assert types["web_session_cnt"] == "SMALLINT"
    assert types["_source_row"] == "BIGINT"


def test_category_rule_applies_after_normalisation(project: Paths) -> None:
    contract_path = project.contract_file("events")
    text = contract_path.read_text().replace(
        'gender: {case: upper, fallback: "U"}', "gender: {case: upper}"
    )
    contract_path.write_text(text)
    write_csv(raw_of(project, "a.csv"), HEADER, *GOOD)
    result = load_dataset(contract_for("events", project.contracts), project, quiet=True)
    # " f" -> "F" passes; "X" is outside M/F/U once there is no fallback level
    assert result.rejects_by_rule() == {"category": 1}
    assert rows(project.rejects_raw("events") / "a.rejects.parquet")[0][3:6] == (
        "gender",
        "category",
        "X",
    )


def test_gzip_input_and_empty_fields_are_nulls(project: Paths) -> None:
    path = raw_of(project, "a.csv.gz")
    path.parent.mkdir(parents=True)
    with gzip.open(path, "wt") as handle:
        handle.write(HEADER + "\n" + "\n".join(GOOD) + "\n")
    result = load_dataset(contract_for("events", project.contracts), project, quiet=True)
    assert result.rows_staged == 3
    nulls = duckdb.sql(
        f"select count(*) from '{project.staged_raw('events')}/a.parquet' "
        "where prior_7d_spend is null"
    ).fetchall()
    assert nulls == [(1,)]


def test_tolerance_exceeded_keeps_last_good_state(project: Paths) -> None:
    contract = contract_for("events", project.contracts)
    write_csv(raw_of(project, "a.csv"), HEADER, *GOOD)
    load_dataset(contract, project, quiet=True)
    before = rows(project.staged_raw("events") / "a.parquet")
    bad_rows = [BAD["range"].replace("6,", f"{100 + i},", 1) for i in range(26)]
    write_csv(raw_of(project, "a.csv"), HEADER, *GOOD, *bad_rows)
    with pytest.raises(RejectsExceeded) as error:
        load_dataset(contract, project, quiet=True)
    message = str(error.value)
    assert "29 rows read -> 3 staged, 26 rejected (range: 26)" in message
    assert "exceed the tolerance (rejects: max_rows 25)" in message
    assert rows(project.staged_raw("events") / "a.parquet") == before
    assert len(rows(project.rejects_raw("events") / "a.rejects.parquet")) == 26


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (
            HEADER + ",future_spend",
            "column 'future_spend' matches the leakage deny-list pattern 'future_*'",
        ),
        (HEADER + ",y_post", "matches the leakage deny-list pattern '*_post'"),
        (HEADER + ",coupon", "column(s) 'coupon' are not in events.yml"),
        (HEADER.replace(",age", ""), "missing column(s) 'age'"),
        (HEADER.replace("gender", "age"), "header names age more than once"),
    ],
)
def test_bad_headers_stop_the_load(project: Paths, header: str, message: str) -> None:
    extra = header.count(",") - HEADER.count(",")
    row = GOOD[0] + ",1" * max(extra, 0)
    source = write_csv(raw_of(project, "a.csv"), header, row)
    with pytest.raises(LoadError) as error:
        load_dataset(contract_for("events", project.contracts), project, quiet=True)
    assert message in str(error.value)
    assert str(source) in str(error.value)
    assert not project.staged_raw("events").exists()


def test_ragged_row_names_the_file(project: Paths) -> None:
    source = write_csv(raw_of(project, "a.csv"), HEADER, GOOD[0], "1,2,3")
    with pytest.raises(LoadError, match=str(source)):
        load_dataset(contract_for("events", project.contracts), project, quiet=True)


def test_unsupported_file_type_is_refused(project: Paths) -> None:
    write_csv(raw_of(project, "a.csv"), HEADER, *GOOD)
    (project.raw("events") / "notes.txt").write_text("hello")
    with pytest.raises(LoadError, match=r"'notes\.txt' is not an accepted file type"):
        load_dataset(contract_for("events", project.contracts), project, quiet=True)


def test_rerun_is_idempotent_and_raw_files_are_untouched(project: Paths) -> None:
    contract = contract_for("events", project.contracts)
    first = write_csv(raw_of(project, "a.csv"), HEADER, *GOOD, BAD["type"])
    write_csv(raw_of(project, "b.csv"), HEADER, GOOD[0].replace("1,", "9,", 1))
    digest = hashlib.sha256(first.read_bytes()).hexdigest()
    load_dataset(contract, project, quiet=True)
    snapshot = {p.name: rows(p) for p in sorted(project.staged_raw("events").glob("*.parquet"))}
    load_dataset(contract, project, quiet=True)
    again = {p.name: rows(p) for p in sorted(project.staged_raw("events").glob("*.parquet"))}
    assert snapshot == again
    assert sorted(snapshot) == ["a.parquet", "b.parquet"]
    assert hashlib.sha256(first.read_bytes()).hexdigest() == digest
    # a raw file that leaves the folder leaves the staged data on the next full load
    (project.raw("events") / "b.csv").unlink()
    load_dataset(contract, project, quiet=True)
    assert sorted(p.name for p in project.staged_raw("events").glob("*.parquet")) == ["a.parquet"]
    leftovers = [p.name for p in (project.data / "staged").rglob(".*")]
    assert leftovers == []


def test_loading_named_files_replaces_only_those(project: Paths) -> None:
    contract = contract_for("events", project.contracts)
    write_csv(raw_of(project, "a.csv"), HEADER, *GOOD)
    load_dataset(contract, project, quiet=True)
    extra = write_csv(project.root / "inbox" / "b.csv", HEADER, GOOD[0].replace("1,", "8,", 1))
    result = load_dataset(contract, project, [extra], quiet=True)
    assert result.rows_staged == 1
    assert sorted(p.name for p in project.staged_raw("events").glob("*.parquet")) == [
        "a.parquet",
        "b.parquet",
    ]


def test_cli_prints_errors_without_traceback(project: Paths, ciq) -> None:
    write_csv(raw_of(project, "a.csv"), HEADER + ",future_spend", GOOD[0] + ",1")
    code, _, err = ciq("load", "events")
    assert code == 2
    assert err.startswith("ciq: error: ")
    assert "Traceback" not in err
    code, _, err = ciq("load", "nosuch")
    assert code == 2
    assert "no contract for dataset 'nosuch' (known: events)" in err


def test_cli_exit_code_when_rejects_exceed_tolerance(project: Paths, ciq) -> None:
    bad = [BAD["type"].replace("5,", f"{100 + i},", 1) for i in range(30)]
    write_csv(raw_of(project, "a.csv"), HEADER, *GOOD, *bad)
    code, _, err = ciq("load", "events", "--quiet")
    assert code == 1
    assert "30 rejected (type: 30)" in err

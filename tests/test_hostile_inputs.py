"""Hostile input never crashes: each case is a clear LoadError or well-accounted rejects."""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import string

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loaders.contract import contract_for
from loaders.errors import LoadError
from loaders.settings import Paths
from loaders.staging import LoadResult, load_dataset

HEADER = "customer_id,event_time,treated,y,age,gender,rfm_score,prior_7d_spend,web_session_cnt"
ROW = "1,2024-01-01 10:00:00,1,3.5,34,M,100,1,3"


def load(project: Paths, name: str, data: bytes) -> LoadResult:
    path = project.root / "inbox" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    return load_dataset(contract_for("events", project.contracts), project, [path], quiet=True)


def rejects(project: Paths, stem: str) -> list[tuple]:
    return duckdb.sql(
        f"select record, column_name, rule from "
        f"'{project.rejects_raw('events')}/{stem}.rejects.parquet' order by all"
    ).fetchall()


def test_header_only_loads_zero_rows(project: Paths) -> None:
    result = load(project, "a.csv", (HEADER + "\n").encode())
    assert (result.rows_read, result.rows_staged, result.rows_rejected) == (0, 0, 0)


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("a.csv", b"", "the file is empty"),
        (
            "a.csv.gz",
            gzip.compress(((HEADER + "\n" + ROW + "\n") * 2000).encode())[:300],
            "damaged or truncated",
        ),
        (
            "a.csv.bz2",
            bz2.compress((HEADER + "\n" + ROW + "\n").encode() * 2000)[:200],
            "damaged or truncated",
        ),
        ("a.csv", (HEADER + "\n" + ROW + "\n1,2,3\n").encode(), "a.csv"),
        ("a.csv", (HEADER.replace("age", "") + "\n").encode(), "header column(s) 5 have no name"),
        ("a.csv", (HEADER + ",age\n").encode(), "header names age more than once"),
        (
            "a.csv",
            (HEADER + ',"x""; drop table t; --"\n' + ROW + ",1\n").encode(),
            "are not in events.yml",
        ),
        (
            "a.csv",
            (HEADER + ",../../etc/passwd\n" + ROW + ",1\n").encode(),
            "'../../etc/passwd' are not in",
        ),
    ],
)
def test_broken_files_are_clear_errors(
    project: Paths, name: str, data: bytes, message: str
) -> None:
    with pytest.raises(LoadError) as error:
        load(project, name, data)
    assert message in str(error.value)
    assert "inbox" in str(error.value)  # names the file


def test_quoted_newlines_mixed_line_endings_and_nul_bytes(project: Paths) -> None:
    data = (
        HEADER.encode()
        + b"\r\n"
        + ROW.replace(",M,", ',"M",').encode()
        + b"\n"
        + b'2,2024-01-01 10:00:00,0,1.5,30,"M\nF",1,1,1\r\n'
        + b"3,2024-01-01 10:00:00,0,1.5,30,M\x00,1,1,1\n"
        + b"4,2024-01-01 10:00:00,0,1.5,30,F,1,1,1\r\n"
    )
    result = load(project, "a.csv", data)
    assert (result.rows_read, result.rows_staged, result.rows_rejected) == (4, 3, 1)
    assert rejects(project, "a") == [(3, "gender", "nul_byte")]
    genders = duckdb.sql(
        f"select gender from '{project.staged_raw('events')}/a.parquet' order by _source_row"
    ).fetchall()
    assert genders == [("M",), ("M\nF",), ("F",)]  # quoted newline kept inside the value


def test_very_long_fields_and_lines(project: Paths) -> None:
    path = project.contract_file("events")
    path.write_text(path.read_text() + "limits: {max_field_length: 50}\n")
    long_gender = "M" * 60
    result = load(
        project, "a.csv", f"{HEADER}\n{ROW.replace(',M,', f',{long_gender},')}\n{ROW}\n".encode()
    )
    assert rejects(project, "a") == [(1, "gender", "max_field_length")]
    assert result.rows_staged == 1
    huge = "9" * 3_000_000
    with pytest.raises(LoadError) as error:
        load(project, "a.csv", f"{HEADER}\n{ROW.replace('3.5', huge)}\n".encode())
    assert "Maximum line size of 2000000 bytes exceeded" in str(error.value)
    assert "CSV Error on Line: 2" in str(error.value)
    assert len(str(error.value)) < 1000  # the offending line is not echoed whole


def test_file_and_column_limits_refuse(project: Paths) -> None:
    path = project.contract_file("events")
    base = path.read_text()
    path.write_text(base + "limits: {max_file_bytes: 100}\n")
    with pytest.raises(LoadError, match=r"exceed limits\.max_file_bytes \(100\)"):
        load(project, "a.csv", f"{HEADER}\n{ROW}\n".encode())
    path.write_text(base + "limits: {max_columns: 5}\n")
    with pytest.raises(LoadError, match=r"9 columns exceed limits\.max_columns \(5\)"):
        load(project, "a.csv", f"{HEADER}\n{ROW}\n".encode())


def test_fractional_integers_are_type_errors_not_rounded(project: Paths) -> None:
    rows = [
        ROW,
        ROW.replace("1,", "2,", 1).replace(",34,", ",34.5,"),
        ROW.replace("1,", "3,", 1).replace(",34,", ",35.0,"),
    ]
    result = load(project, "a.csv", ("\n".join([HEADER, *rows]) + "\n").encode())
    assert rejects(project, "a") == [(2, "age", "type")]
    ages = duckdb.sql(
        f"select age from '{project.staged_raw('events')}/a.parquet' order by 1"
    ).fetchall()
    assert ages == [(34,), (35,)]
    assert result.rows_rejected == 1


# --- property-based: messy text in every delimited format, checked against the clean input ---

MESSY = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r"),
    max_size=12,
)
NOT_A_NUMBER = st.text(alphabet=string.ascii_letters + ' ,;"\n\t', min_size=1, max_size=8).filter(
    lambda text: any(char.isalpha() for char in text)
)
AMOUNT = st.one_of(st.just(""), st.integers(-(10**12), 10**12).map(str), NOT_A_NUMBER)
ROWS = st.lists(st.tuples(MESSY, AMOUNT), max_size=25)
PROPERTY_CONTRACT = """\
id_col: row_id
treatment_col: treated
outcome_col: y
covariate_cols: [label, amount]
types: {row_id: int64, treated: int8, y: float64, label: string, amount: int64}
constraints: {not_null: [row_id]}
leakage_forbidden_cols: []
rejects: {max_rows: 1000}
"""


def render(file_format: str, rows: list[tuple[str, str]]) -> bytes:
    header = ["row_id", "treated", "y", "label", "amount"]
    records = [[str(i + 1), "1", "0.5", label, amount] for i, (label, amount) in enumerate(rows)]
    if file_format == "jsonl":
        lines = [json.dumps(dict(zip(header, r, strict=True))) for r in records]
        return "".join(line + "\n" for line in lines).encode()
    buffer = io.StringIO()
    writer = csv.writer(
        buffer, delimiter="\t" if file_format == "tsv" else ",", lineterminator="\n"
    )
    writer.writerow(header)
    writer.writerows(records)
    return buffer.getvalue().encode()


@pytest.mark.parametrize("file_format", ["csv", "tsv", "jsonl"])
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=ROWS)
def test_messy_text_never_crashes_counts_add_up_and_values_survive(
    project: Paths, file_format: str, rows: list[tuple[str, str]]
) -> None:
    (project.contracts / "prop.yml").write_text(PROPERTY_CONTRACT)
    contract = contract_for("prop", project.contracts)
    path = project.root / "inbox" / f"p.{file_format}"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(render(file_format, rows))
    if file_format == "jsonl" and not rows:  # a JSON Lines file with no line is an empty file
        with pytest.raises(LoadError, match="the file is empty"):
            load_dataset(contract, project, [path], quiet=True)
        return
    result = load_dataset(contract, project, [path], quiet=True)
    assert result.rows_read == len(rows) == result.rows_staged + result.rows_rejected
    # in CSV an empty field is NULL; in JSON "" is a string, and not a number
    blank_is_text = file_format == "jsonl"
    valid = [
        (i + 1, label, amount)
        for i, (label, amount) in enumerate(rows)
        if not _word(amount) and not (blank_is_text and amount == "")
    ]
    assert result.rows_rejected == len(rows) - len(valid)
    staged = duckdb.sql(
        f"""
        select coalesce(_source_row, file_row_number + 1), label, amount
        from read_parquet('{project.staged_raw("prop")}/p.parquet', file_row_number = true)
        order by 1
        """
    ).fetchall()
    # CSV/TSV cannot tell an empty field from a missing one: both are NULL; JSON keeps ""
    empty = "" if file_format == "jsonl" else None
    assert staged == [
        (record, label if label != "" else empty, int(amount) if amount else None)
        for record, label, amount in valid
    ]


def _word(amount: str) -> bool:
    return any(char.isalpha() for char in amount)

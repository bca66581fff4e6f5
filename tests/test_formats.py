"""Every whitelisted format and compression loads the same rows; anything else is refused."""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import duckdb
import openpyxl
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest

from loaders.contract import contract_for
from loaders.errors import LoadError
from loaders.settings import Paths
from loaders.staging import LoadResult, load_dataset

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "samples" / "events" / "events_2024_01.csv"
Rows = list[dict[str, str | None]]


def sample_rows() -> tuple[list[str], Rows]:
    """The tracked sample's first file as text rows (blank fields -> None)."""
    with SAMPLE.open(newline="") as handle:
        reader = csv.DictReader(handle)
        rows = [{k: (v if v != "" else None) for k, v in row.items()} for row in reader]
    return list(reader.fieldnames or []), rows


def delimited(header: list[str], rows: Rows, delimiter: str) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([[row[name] or "" for name in header] for row in rows])
    return buffer.getvalue().encode()


def jsonl(header: list[str], rows: Rows) -> bytes:
    lines = [json.dumps({k: v for k, v in row.items() if v is not None}) for row in rows]
    return ("\n".join(lines) + "\n").encode()


def text_table(header: list[str], rows: Rows) -> pa.Table:
    return pa.table({name: pa.array([row[name] for row in rows], pa.string()) for name in header})


def xlsx(header: list[str], rows: Rows) -> bytes:
    """A workbook as a person would save it: numbers as numbers, times as dates."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(header)
    for row in rows:
        sheet.append([_cell(name, row[name]) for name in header])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _cell(name: str, value: str | None) -> object:
    if value is None:
        return None
    if name == "event_time":
        from datetime import datetime

        return datetime.fromisoformat(value)
    try:
        number = float(value)
    except ValueError:
        return value
    return int(number) if re.fullmatch(r"-?\d+", value) else number


def columnar(write: Callable[[pa.Table, io.BytesIO], None]) -> Callable[[list[str], Rows], bytes]:
    def render(header: list[str], rows: Rows) -> bytes:
        buffer = io.BytesIO()
        write(text_table(header, rows), buffer)
        return buffer.getvalue()

    return render


RENDERERS: dict[str, Callable[[list[str], Rows], bytes]] = {
    "csv": lambda h, r: delimited(h, r, ","),
    "tsv": lambda h, r: delimited(h, r, "\t"),
    "jsonl": jsonl,
    "xlsx": xlsx,
    "parquet": columnar(lambda t, b: pq.write_table(t, b)),
    "feather": columnar(lambda t, b: feather.write_feather(t, b)),
}
COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "": lambda data: data,
    ".gz": gzip.compress,
    ".bz2": bz2.compress,
}


def load(project: Paths, path: Path) -> LoadResult:
    return load_dataset(contract_for("events", project.contracts), project, [path], quiet=True)


def staged(project: Paths, stem: str) -> list[tuple]:
    """Staged rows as dbt's staging model reads them (record number resolved), in file order."""
    path = project.staged_raw("events") / f"{stem}.parquet"
    return duckdb.sql(
        f"""
        select * exclude (_source_file, _source_row, _stage_id, file_row_number),
            coalesce(_source_row, file_row_number + 1) as record
        from read_parquet('{path}', file_row_number = true)
        order by record
        """
    ).fetchall()


def rejects(project: Paths, stem: str) -> list[tuple]:
    return duckdb.sql(
        f"select record, column_name, rule, raw_value "
        f"from '{project.rejects_raw('events')}/{stem}.rejects.parquet' order by all"
    ).fetchall()


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[tuple], list[tuple]]:
    """The staged rows and rejects of the sample CSV, the reference every format must match."""
    root = tmp_path_factory.mktemp("reference")
    (root / "contracts").mkdir()
    (root / "contracts" / "events.yml").write_text(
        (SAMPLE.parents[3] / "contracts" / "events.yml").read_text()
    )
    paths = Paths(root)
    result = load(paths, SAMPLE)
    assert result.rows_rejected > 0  # the sample carries rule breakers: rejects are compared too
    return staged(paths, SAMPLE.stem), rejects(paths, SAMPLE.stem)


@pytest.mark.parametrize("compression", list(COMPRESSORS))
@pytest.mark.parametrize("file_format", list(RENDERERS))
def test_every_format_and_compression_stages_identical_rows(
    project: Paths, reference: tuple[list[tuple], list[tuple]], file_format: str, compression: str
) -> None:
    header, rows = sample_rows()
    data = COMPRESSORS[compression](RENDERERS[file_format](header, rows))
    path = project.root / "inbox" / f"events.{file_format}{compression}"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    result = load(project, path)
    assert result.rows_read == len(rows) == result.rows_staged + result.rows_rejected
    expected_rows, expected_rejects = reference
    assert staged(project, "events") == expected_rows
    assert rejects(project, "events") == expected_rejects
    assert path.read_bytes() == data  # raw files are only read


def test_typed_parquet_matches_its_csv(project: Paths) -> None:
    """A Parquet file with real types (not text) stages the same values as its CSV export."""
    source = project.root / "inbox" / "typed.csv"
    source.parent.mkdir()
    source.write_text(
        "customer_id,event_time,treated,y,age,gender,rfm_score,prior_7d_spend,web_session_cnt\n"
        "1,2024-01-01 10:00:00,1,52.71,41,F,537.71,0.5,4\n"
        "2,2024-01-02 11:30:00,0,0.1,,M,1000,,0\n"
    )
    load(project, source)
    table = duckdb.sql(
        "select customer_id::bigint customer_id, event_time::timestamp event_time, "
        "treated::tinyint treated, y::double y, age::smallint age, gender, "
        "rfm_score::float rfm_score, prior_7d_spend::float prior_7d_spend, "
        f"web_session_cnt::smallint web_session_cnt from read_csv('{source}')"
    ).to_arrow_table()
    pq.write_table(table, project.root / "inbox" / "typed2.parquet")
    load(project, project.root / "inbox" / "typed2.parquet")
    assert staged(project, "typed2") == staged(project, "typed")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("a.csv", zipfile.ZipFile.__name__, "the name says csv but the content is a zip archive"),
        ("a.parquet", "text", "the name says parquet but the content is text"),
        ("a.csv.gz", "text", "the name says gzip but the content is text"),
        ("a.csv.bz2", "gzip", "the name says bzip2 but the content is gzip data"),
        ("a.xlsx", "text", "the name says xlsx but the content is text"),
        ("a.feather", "parquet", "the name says feather but the content is Parquet"),
        ("a.jsonl", "text", "the name says jsonl but the content is text"),
        ("a.xlsx", "zip", "the name says xlsx but the content is a zip archive without"),
        ("a.csv", "empty", "the file is empty"),
        ("a.xls", "text", "'a.xls' is not an accepted file type"),
        ("a.csv.zst", "text", "'a.csv.zst' is not an accepted file type"),
    ],
)
def test_content_must_match_the_name(project: Paths, name: str, content: str, message: str) -> None:
    path = project.root / "inbox" / name
    path.parent.mkdir()
    if content == "text":
        path.write_text("customer_id,y\n1,2\n")
    elif content in ("zip", zipfile.ZipFile.__name__):
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("hello.txt", "hi")
    elif content == "gzip":
        path.write_bytes(gzip.compress(b"customer_id\n1\n"))
    elif content == "parquet":
        pq.write_table(pa.table({"a": [1]}), path)
    else:
        path.write_bytes(b"")
    with pytest.raises(LoadError) as error:
        load(project, path)
    assert message in str(error.value)
    assert str(path) in str(error.value)


JAPANESE = (
    "customer_id,event_time,treated,y,age,gender,rfm_score,prior_7d_spend,web_session_cnt\n"
    "1,2024-01-01 10:00:00,1,52.71,41,F,537.71,0.5,4\n"
)


def with_contract(project: Paths, **lines: str) -> None:
    """Append top-level keys to the events contract."""
    path = project.contract_file("events")
    extra = "".join(f"{key}: {value}\n" for key, value in lines.items())
    path.write_text(path.read_text() + extra)


@pytest.mark.parametrize("encoding", ["shift_jis", "cp932"])
@pytest.mark.parametrize("compression", ["", ".gz", ".bz2"])
def test_japanese_encodings_are_transcoded(project: Paths, encoding: str, compression: str) -> None:
    contract_path = project.contract_file("events")
    text = contract_path.read_text().replace('gender: ["M", "F", "U"]', 'gender: ["男", "女", "U"]')
    text = text.replace('fallback: "U"', 'fallback: "U"}\n  __unused: {case: none')
    contract_path.write_text(text.replace("\n  __unused: {case: none}", ""))
    with_contract(project, encoding=encoding)
    body = JAPANESE.replace(",F,", ",女,") + "2,2024-01-02 10:00:00,0,1.5,30,男,1,0,1\n"
    data = COMPRESSORS[compression](body.encode(encoding))
    path = project.root / "inbox" / f"jp.csv{compression}"
    path.parent.mkdir()
    path.write_bytes(data)
    result = load(project, path)
    assert result.rows_staged == 2
    genders = duckdb.sql(
        f"select gender from '{project.staged_raw('events')}/jp.parquet'"
    ).fetchall()
    assert genders == [("女",), ("男",)]


def test_utf8_bom_is_stripped(project: Paths) -> None:
    path = project.root / "inbox" / "bom.csv"
    path.parent.mkdir()
    path.write_bytes(b"\xef\xbb\xbf" + JAPANESE.encode())
    assert load(project, path).rows_staged == 1
    with_contract(project, encoding="shift_jis")
    assert load(project, path).rows_staged == 1  # a BOM is stripped whatever the declaration


def test_wrong_encoding_names_line_offset_and_suggests(project: Paths) -> None:
    path = project.root / "inbox" / "sjis.csv"
    path.parent.mkdir()
    body = JAPANESE + "2,2024-01-02 10:00:00,0,1.5,30,男,1,0,1\n"
    path.write_bytes(body.encode("shift_jis"))
    with pytest.raises(LoadError) as error:
        load(project, path)
    message = str(error.value)
    offset = body.encode("shift_jis").index("男".encode("shift_jis"))
    assert f"line 3, byte offset {offset}" in message
    assert "not valid utf-8" in message
    assert "looks like cp932" in message


def test_xlsx_keeps_cached_formula_values_and_plain_formula_text(project: Paths) -> None:
    header, rows = sample_rows()
    rows = [row for row in rows[:3]]
    data = xlsx(header, rows)
    book = openpyxl.load_workbook(io.BytesIO(data))
    sheet = book.active
    sheet["F2"] = "=cmd|' /C calc'!A0"
    sheet["F2"].data_type = "s"  # a string that looks like a formula: plain data
    sheet["H3"] = "=1+1"  # a real formula
    buffer = io.BytesIO()
    book.save(buffer)
    patched = _with_cached_value(buffer.getvalue(), "H3", "42.5")
    path = project.root / "inbox" / "formulas.xlsx"
    path.parent.mkdir()
    path.write_bytes(patched)
    result = load(project, path)
    assert (result.rows_read, result.rows_rejected) == (3, 0)
    rows = staged(project, "formulas")
    names = ["customer_id", "event_time", "treated", "y", "age", "gender", "rfm_score"]
    gender, spend = names.index("gender"), names.index("rfm_score") + 1
    assert rows[1][spend] == 42.5  # the cached value, not evaluated, not the formula text
    assert rows[0][gender] == "=cmd|' /C calc'!A0"  # formula-looking text stays plain data


def _with_cached_value(data: bytes, cell: str, value: str) -> bytes:
    source, target = io.BytesIO(data), io.BytesIO()
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for item in old.infolist():
            content = old.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                content = re.sub(
                    rf'(<c r="{cell}"[^>]*><f>[^<]*</f>)(<v\s*/>|<v></v>)?'.encode(),
                    rb"\1<v>" + value.encode() + b"</v>",
                    content,
                )
            new.writestr(item, content)
    return target.getvalue()


def test_xlsx_sheet_and_skip_rows_options(project: Paths) -> None:
    header, rows = sample_rows()
    book = openpyxl.Workbook()
    book.active.title = "notes"
    book.active.append(["nothing here"])
    data_sheet = book.create_sheet("data")
    data_sheet.append(["exported by the back office"])
    data_sheet.append(header)
    for row in rows[:5]:
        data_sheet.append([_cell(n, row[n]) for n in header])
    path = project.root / "inbox" / "sheets.xlsx"
    path.parent.mkdir()
    book.save(path)
    with_contract(project, xlsx="{sheet: data, skip_rows: 1}")
    assert load(project, path).rows_read == 5
    with_contract(project, **{})
    text = project.contract_file("events").read_text().replace("sheet: data", "sheet: nope")
    project.contract_file("events").write_text(text)
    with pytest.raises(LoadError, match=r"cannot open worksheet 'nope'.*sheets: 'notes', 'data'"):
        load(project, path)


def test_jsonl_paths_nested_values_varying_types_and_bad_lines(project: Paths) -> None:
    with_contract(project, jsonl="{paths: {age: '$.profile.age', gender: '$.profile.gender'}}")
    base = {"customer_id": 1, "event_time": "2024-01-01 10:00:00", "treated": 1, "y": 2.5}
    rest = {"rfm_score": 10, "prior_7d_spend": 0, "web_session_cnt": 3}
    lines = [
        {**base, "profile": {"age": 30, "gender": "f"}, **rest},
        {**base, "customer_id": 2, "profile": {"age": "old", "gender": "M"}, **rest},
        {**base, "customer_id": 3, "profile": {"age": 40}, **rest, "rfm_score": {"v": 1}},
        "not json at all",
        "",
        {**base, "customer_id": 6, "profile": {"age": 50, "gender": "M"}, **rest},
    ]
    path = project.root / "inbox" / "api.ndjson.gz"
    path.parent.mkdir()
    text = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines)
    path.write_bytes(gzip.compress((text + "\n").encode()))
    result = load(project, path)
    assert (result.rows_read, result.rows_staged, result.rows_rejected) == (6, 2, 4)
    found = rejects(project, "api")
    assert (2, "age", "type", "old") in found
    assert (3, "rfm_score", "nested", '{"v":1}') in found
    assert (4, "(record)", "json", "not json at all") in found
    assert (5, "(record)", "json", None) in found
    ages = duckdb.sql(
        f"select customer_id, age, gender "
        f"from '{project.staged_raw('events')}/api.parquet' order by 1"
    ).fetchall()
    assert ages == [(1, 30, "f"), (6, 50, "M")]


def test_jsonl_leakage_and_unknown_keys_stop_the_load(project: Paths) -> None:
    path = project.root / "inbox" / "leak.jsonl"
    path.parent.mkdir()
    path.write_text(json.dumps({"customer_id": 1, "future_spend": 3}) + "\n")
    with pytest.raises(LoadError, match="'future_spend' matches the leakage deny-list"):
        load(project, path)
    path.write_text(json.dumps({"customer_id": 1, "coupon": 3}) + "\n")
    with pytest.raises(LoadError, match=r"'coupon' are not in events\.yml"):
        load(project, path)

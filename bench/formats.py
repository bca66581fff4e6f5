"""Formats benchmark: every accepted format and compression through `ciq load`, rows/s and RSS.

References run in the same process tree on the same data: csv.gz against DuckDB COPY of the same
csv.gz, Shift_JIS CSV against DuckDB COPY of the equivalent UTF-8 CSV. The large-file checks load
a 10M-row csv.gz and a 2M-row jsonl.bz2 and report peak RSS (target <= 1 GB).
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.feather as feather
import pyarrow.parquet as pq

from loaders.sample_data import generate_events

REPO = Path(__file__).resolve().parents[1]
CHUNK = 1 << 20
JAPANESE_GENDER = {"M": "男性", "F": "女性"}


def _project(work: Path) -> Path:
    root = work / "formats-project"
    (root / "contracts").mkdir(parents=True, exist_ok=True)
    contract = (REPO / "contracts" / "events.yml").read_text()
    (root / "contracts" / "events.yml").write_text(
        contract.replace("max_rows: 25", "max_rows: 0\n  max_share: 1")
    )
    (root / "contracts" / "events_sjis.yml").write_text(
        contract.replace("max_rows: 25", "max_rows: 0\n  max_share: 1") + "encoding: shift_jis\n"
    )
    return root


def _compress(source: Path, target: Path, opener: Callable[..., io.BufferedIOBase]) -> Path:
    with source.open("rb") as raw, opener(target, "wb") as sink:
        shutil.copyfileobj(raw, sink, CHUNK)
    return target


def _table(csv: Path) -> pa.Table:
    return duckdb.sql(f"select * from read_csv('{csv}', all_varchar = true)").to_arrow_table()


def _jsonl(csv: Path, target: Path, opener: Callable[..., io.BufferedIOBase] = open) -> Path:
    reader = duckdb.sql(f"select * from read_csv('{csv}', all_varchar = true)").to_arrow_reader(
        100_000
    )
    with opener(target, "wb") as sink:
        for batch in reader:
            for row in batch.to_pylist():
                line = json.dumps({k: v for k, v in row.items() if v is not None})
                sink.write(line.encode() + b"\n")
    return target


def _xlsx(csv: Path, target: Path, rows: int) -> Path:
    import openpyxl

    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet()
    table = duckdb.sql(f"select * from read_csv('{csv}', all_varchar = true) limit {rows}")
    sheet.append(table.columns)
    for row in table.fetchall():
        sheet.append(list(row))
    book.save(target)
    return target


def _japanese(csv: Path, utf8: Path, sjis: Path) -> None:
    text = csv.read_text()
    for latin, kanji in JAPANESE_GENDER.items():
        text = text.replace(f",{latin},", f",{kanji},")
    utf8.write_text(text, encoding="utf-8")
    sjis.write_bytes(text.encode("shift_jis"))


def build_inputs(work: Path, rows: int, xlsx_rows: int) -> dict[str, Path]:
    """The same logical rows in every format and compression."""
    data = work / "formats"
    data.mkdir(exist_ok=True)
    csv = data / "events.csv"
    generate_events(csv, rows, seed=5, messy=False)
    table = _table(csv)
    files = {"csv": csv}
    files["csv.gz"] = _compress(csv, data / "events.csv.gz", gzip.open)
    files["csv.bz2"] = _compress(csv, data / "events.csv.bz2", bz2.open)
    tsv = data / "events.tsv"
    pacsv.write_csv(table, tsv, pacsv.WriteOptions(delimiter="\t", quoting_style="none"))
    files["tsv"] = tsv
    files["jsonl"] = _jsonl(csv, data / "events.jsonl")
    files["jsonl.gz"] = _compress(files["jsonl"], data / "events.jsonl.gz", gzip.open)
    files["jsonl.bz2"] = _compress(files["jsonl"], data / "events.jsonl.bz2", bz2.open)
    pq.write_table(table, data / "events.parquet")
    files["parquet"] = data / "events.parquet"
    feather.write_feather(table, data / "events.feather")
    files["feather"] = data / "events.feather"
    files[f"xlsx ({xlsx_rows:,} rows)"] = _xlsx(csv, data / "events.xlsx", xlsx_rows)
    _japanese(csv, data / "events_utf8_jp.csv", data / "events_sjis.csv")
    files["csv shift_jis"] = data / "events_sjis.csv"
    files["csv utf-8 (same text)"] = data / "events_utf8_jp.csv"
    return files


LOAD = """
from pathlib import Path
from loaders.contract import load_contract
from loaders.settings import Paths
from loaders.staging import load_dataset
root = Path('{root}')
contract = load_contract(root / 'contracts' / '{dataset}.yml')
# -- work --
result = load_dataset(contract, Paths(root), [Path('{path}')], quiet=True)
assert result.rows_read == result.rows_staged + result.rows_rejected
print("ROWS", result.rows_read)
"""

COPY = """
import duckdb
con = duckdb.connect()
# -- work --
con.execute("copy (select * from read_csv('{path}')) to '{out}' (format parquet)")
"""


def bench_formats(work: Path, rows: int, xlsx_rows: int, measure: Callable[[str], dict]) -> None:
    """Print a table of load time, rows/s and peak RSS per format, then the reference ratios."""
    root = _project(work)
    files = build_inputs(work, rows, xlsx_rows)
    print(f"formats: {rows:,} rows each (xlsx {xlsx_rows:,}); time, rows/s, peak RSS")
    results: dict[str, dict] = {}
    for label, path in files.items():
        dataset = "events_sjis" if "shift_jis" in label else "events"
        result = measure(LOAD.format(root=root, dataset=dataset, path=path))
        results[label] = result
        count = xlsx_rows if label.startswith("xlsx") else rows
        speed = count / result["seconds"] / 1e6
        print(
            f"  {label:<24} {result['seconds']:6.2f} s  {speed:5.2f} M rows/s"
            f"  {result['peak_rss_mb']:6.0f} MB"
        )
    out = work / "copy.parquet"
    copy_gz = measure(COPY.format(path=files["csv.gz"], out=out))
    copy_utf8 = measure(COPY.format(path=files["csv utf-8 (same text)"], out=out))
    print(
        f"  csv.gz    vs DuckDB COPY of the same csv.gz: "
        f"{results['csv.gz']['seconds'] / copy_gz['seconds']:.2f}x (target <= 1.3x)"
    )
    print(
        f"  shift_jis vs DuckDB COPY of the UTF-8 csv:   "
        f"{results['csv shift_jis']['seconds'] / copy_utf8['seconds']:.2f}x (target <= 2x)"
    )


def bench_large(work: Path, measure: Callable[[str], dict], csv_rows: int, jsonl_rows: int) -> None:
    """Peak RSS of a large csv.gz and jsonl.bz2 load (target <= 1 GB each)."""
    root = _project(work)
    data = work / "large"
    data.mkdir(exist_ok=True)
    big_gz = data / "big.csv.gz"
    generate_events(big_gz, csv_rows, seed=9, messy=False)
    jsonl_csv = data / "for_jsonl.csv"
    generate_events(jsonl_csv, jsonl_rows, seed=10, messy=False)
    big_bz2 = _jsonl(jsonl_csv, data / "big.jsonl.bz2", bz2.open)
    jsonl_csv.unlink()
    print("large files (peak RSS target <= 1024 MB):")
    for label, path, count in (
        (f"{csv_rows:,}-row csv.gz", big_gz, csv_rows),
        (f"{jsonl_rows:,}-row jsonl.bz2", big_bz2, jsonl_rows),
    ):
        result = measure(LOAD.format(root=root, dataset="events", path=path))
        speed = count / result["seconds"] / 1e6
        print(
            f"  {label:<24} {result['seconds']:6.1f} s  {speed:5.2f} M rows/s"
            f"  peak RSS {result['peak_rss_mb']:6.0f} MB"
        )

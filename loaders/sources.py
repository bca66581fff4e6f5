"""Every accepted format as one shape: a DuckDB relation of text columns, in file order.

A `Source` tells the loader which columns a file has (to check them against the contract), the
SQL that reads them as text, the same numbered from 1 in file order (to explain rejects), and any
record-level checks the format needs (JSON validity, nested values).
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from loaders.checks import RuleCheck
from loaders.contract import IDENTIFIER, Contract, CsvOptions
from loaders.convert import feather_to_parquet, xlsx_to_parquet
from loaders.decode import decode_error
from loaders.errors import LoadError
from loaders.headers import check_header
from loaders.sniff import FileKind
from loaders.sql import literal, quote_ident

RECORD = "__ciq_record"
JSON_VALID = "__ciq_json_valid"
RAW_LINE = "__ciq_line"
JSON_KINDS = "__ciq_json_kinds"
IS_OBJECT = "(case when json_valid(line) then json_type(line) = 'OBJECT' else false end)"
LINE_DELIMITER = "\\x1f"  # a control character that valid JSON never holds unescaped
Ref = Callable[[str], str]


@dataclass(frozen=True)
class Source:
    """A raw file as DuckDB reads it."""

    kind: FileKind
    columns: list[str]
    relation: str
    numbered: str
    line_offset: int | None  # line = record + offset, where lines mean something
    carried: list[str] = field(default_factory=list)
    record_checks: Callable[[Ref], list[RuleCheck]] = lambda ref: []


def open_source(
    kind: FileKind,
    readable: Path,
    contract: Contract,
    con: duckdb.DuckDBPyConnection,
    scratch: Path,
) -> Source:
    """The Source of a raw file, given the path DuckDB can read (see decode.materialise)."""
    if kind.format in ("csv", "tsv"):
        options = contract.csv if kind.format == "csv" else contract.tsv
        return _delimited(kind, readable, options, contract.encoding)
    if kind.format == "jsonl":
        return _jsonl(kind, readable, contract, con)
    if kind.format == "feather":
        converted = scratch / f"{kind.stem}.feather.parquet"
        feather_to_parquet(readable, converted, kind.path)
        return _parquet(kind, converted, con)
    if kind.format == "xlsx":
        converted = scratch / f"{kind.stem}.xlsx.parquet"
        header = xlsx_to_parquet(readable, contract.xlsx, converted, kind.path)
        source = _parquet(kind, converted, con)
        return Source(kind, header, source.relation, source.numbered, contract.xlsx.skip_rows + 1)
    return _parquet(kind, readable, con)


def _delimited(kind: FileKind, readable: Path, options: CsvOptions, encoding: str) -> Source:
    header = _read_header(kind.path, readable, options, lambda _: decode_error(kind, encoding))
    check_header(kind.path, header)
    columns = "{" + ", ".join(f"{literal(name)}: 'VARCHAR'" for name in header) + "}"
    reader = (
        f"read_csv({literal(str(readable))}, header = true, auto_detect = false, "
        f"columns = {columns}, delim = {literal(options.delimiter)}, "
        f"quote = {literal(options.quote)}, escape = {literal(options.escape)}, "
        f"skip = {options.skip_rows}, strict_mode = false, null_padding = false)"
    )
    numbered = (
        f"(select ordinality as {RECORD}, * exclude (ordinality) from {reader} with ordinality)"
    )
    return Source(kind, header, reader, numbered, options.skip_rows + 1)


def _read_header(
    path: Path, readable: Path, options: CsvOptions, undecodable: Callable[[Path], LoadError]
) -> list[str]:
    opener = gzip.open if readable.name.lower().endswith(".gz") else open
    try:
        with opener(readable, "rb") as binary:
            text = io.TextIOWrapper(binary, encoding="utf-8-sig", errors="replace", newline="")
            for _ in range(options.skip_rows):
                text.readline()
            reader = csv.reader(text, delimiter=options.delimiter, quotechar=options.quote)
            header = next(reader, None)
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
        raise LoadError(f"{path}: cannot read the header line: {exc}") from None
    if not header:
        raise LoadError(f"{path}: no header line (the file is empty)")
    if any("\ufffd" in name for name in header):
        raise undecodable(path)
    return [name.strip() for name in header]


def _parquet(kind: FileKind, readable: Path, con: duckdb.DuckDBPyConnection) -> Source:
    scan = f"read_parquet({literal(str(readable))}, file_row_number = true)"
    try:
        described = con.execute(
            f"describe select * exclude (file_row_number) from {scan}"
        ).fetchall()
    except duckdb.Error as exc:
        raise LoadError(f"{kind.path}: not a readable {kind.format} file: {exc}") from None
    header = [str(row[0]) for row in described]
    check_header(kind.path, header)
    text = ", ".join(f"cast({quote_ident(n)} as varchar) as {quote_ident(n)}" for n in header)
    relation = f"(select {text} from {scan})"
    numbered = f"(select file_row_number + 1 as {RECORD}, {text} from {scan})"
    return Source(kind, header, relation, numbered, None)


def _jsonl(
    kind: FileKind, readable: Path, contract: Contract, con: duckdb.DuckDBPyConnection
) -> Source:
    lines = (
        f"read_csv({literal(str(readable))}, header = false, auto_detect = false, "
        f"columns = {{'line': 'VARCHAR'}}, delim = '{LINE_DELIMITER}', quote = '', escape = '', "
        "strict_mode = false)"
    )
    try:
        keys = con.execute(
            f"select distinct unnest(json_keys(line)) from {lines} where {IS_OBJECT}"
        ).fetchall()
    except duckdb.Error as exc:
        raise LoadError(f"{kind.path}: cannot read JSON lines: {exc}") from None
    paths = {name: contract.jsonl_paths.get(name, f"$.{name}") for name in contract.column_names}
    top_level = {path[2:].split(".")[0].split("[")[0]: name for name, path in paths.items()}
    found = sorted(str(key) for (key,) in keys)
    columns = [top_level.get(key, key) for key in found]
    columns += [name for name in contract.column_names if name not in columns]
    if contract.on_new_columns == "append":  # new keys are read too, as text
        new_keys = [key for key in found if key not in top_level and key not in paths]
        paths.update({key: f"$.{key}" for key in new_keys if IDENTIFIER.match(key)})
    names = list(paths)
    path_list = "[" + ", ".join(literal(paths[name]) for name in names) + "]"
    picks = ", ".join(
        f"values[{index}] as {quote_ident(name)}" for index, name in enumerate(names, start=1)
    )

    def parsed(numbered: bool) -> str:
        """Each line parsed once: validity, every declared path's text and JSON type."""
        keep = f"{RECORD}, {RAW_LINE}, " if numbered else ""
        if numbered:
            scan = f"(select ordinality as {RECORD}, line as {RAW_LINE}, line, {IS_OBJECT} as "
            scan += f"{JSON_VALID} from {lines} with ordinality)"
        else:
            scan = f"(select line, {IS_OBJECT} as {JSON_VALID} from {lines})"
        return (
            f"(select {keep}{JSON_VALID}, "
            f"case when {JSON_VALID} then json_type(line, {path_list}) end as {JSON_KINDS}, "
            f"case when {JSON_VALID} then json_extract_string(line, {path_list}) end as values "
            f"from {scan})"
        )

    relation = f"(select {JSON_VALID}, {JSON_KINDS}, {picks} from {parsed(False)})"
    numbered = (
        f"(select {RECORD}, {RAW_LINE}, {JSON_VALID}, {JSON_KINDS}, {picks} from {parsed(True)})"
    )

    def record_checks(ref: Ref) -> list[RuleCheck]:
        checks = [
            RuleCheck("(record)", "json", f"not {ref(JSON_VALID)}", "not a JSON object on one line")
        ]
        for index, name in enumerate(names, start=1):
            if name not in contract.column_names:
                continue  # an appended new key is kept as its JSON text
            checks.append(
                RuleCheck(
                    name,
                    "nested",
                    f"{ref(JSON_KINDS)}[{index}] in ('OBJECT', 'ARRAY')",
                    f"nested value at {paths[name]}: declare jsonl.paths for it",
                )
            )
        return checks

    return Source(
        kind,
        columns,
        relation,
        numbered,
        0,
        carried=[JSON_VALID, JSON_KINDS],
        record_checks=record_checks,
    )

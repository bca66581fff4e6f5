"""`ciq load`: raw CSV files -> contract-checked, typed Parquet plus rejects, written atomically.

Per file, one ordered DuckDB COPY reads the CSV as text, casts every column and evaluates every
contract rule at once, writing the staged layout directly. Only a file with rejects takes two more
passes: its valid rows are rewritten with their record numbers, and its failing records are read
again from the CSV to explain each broken rule with its raw value.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb

from loaders import atomic
from loaders.batch_state import STAGED, BatchState, write_state
from loaders.checks import all_checks, row_failures, row_is_valid, typed
from loaders.contract import Contract
from loaders.decode import decode_error, materialise
from loaders.errors import LoadError, RejectsExceeded
from loaders.progress import ByteProgress, interactive
from loaders.settings import RAW_BATCH, RAW_RUN_DATE, Paths
from loaders.sniff import FileKind, kind_of, verify, whitelist
from loaders.sources import RAW_LINE, RECORD, Source, open_source
from loaders.sql import literal, quote_ident

MANIFEST = "_load_manifest.json"


@dataclass
class FileResult:
    """What loading one raw file produced."""

    source: str
    rows_read: int
    rows_staged: int
    rows_rejected: int
    rejects_by_rule: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class LoadResult:
    """What a whole `ciq load` produced."""

    dataset: str
    files: list[FileResult]
    staged_dir: Path
    rejects_dir: Path

    @property
    def rows_read(self) -> int:
        return sum(f.rows_read for f in self.files)

    @property
    def rows_staged(self) -> int:
        return sum(f.rows_staged for f in self.files)

    @property
    def rows_rejected(self) -> int:
        return sum(f.rows_rejected for f in self.files)

    def rejects_by_rule(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for result in self.files:
            total.update(result.rejects_by_rule)
        return total

    def summary(self) -> str:
        rules = ", ".join(f"{rule}: {n}" for rule, n in sorted(self.rejects_by_rule().items()))
        lines = [
            f"{self.dataset}: {len(self.files)} file(s), {self.rows_read} rows read -> "
            f"{self.rows_staged} staged, {self.rows_rejected} rejected"
            + (f" ({rules})" if rules else ""),
            f"  staged:  {self.staged_dir}",
        ]
        if self.rows_rejected:
            lines.append(f"  rejects: {self.rejects_dir}")
        return "\n".join(lines)


def check_columns(source: Source, contract: Contract) -> None:
    """Refuse a file with a leakage column, a column the contract lacks, or a missing column."""
    path, header = source.kind.path, source.columns
    if len(header) > contract.limits.max_columns:
        raise LoadError(
            f"{path}: {len(header)} columns exceed limits.max_columns "
            f"({contract.limits.max_columns})"
        )
    for name in header:
        pattern = contract.leakage_pattern(name)
        if pattern is not None:
            raise LoadError(
                f"{path}: column {name!r} matches the leakage deny-list pattern {pattern!r} "
                f"of {contract.path.name}; remove it from the file (it could leak the outcome)"
            )
    unknown = new_columns(header, contract)
    if unknown and contract.on_new_columns == "fail":
        raise LoadError(
            f"{path}: column(s) {', '.join(map(repr, unknown))} are not in {contract.path.name}; "
            "declare them in the contract's 'types', remove them from the file, or set "
            "on_new_columns: ignore | append"
        )
    missing = [name for name in contract.column_names if name not in header]
    if missing:
        raise LoadError(f"{path}: missing column(s) {', '.join(map(repr, missing))}")


def new_columns(header: list[str], contract: Contract) -> list[str]:
    """Columns of a file that the contract does not declare."""
    return [name for name in header if name not in contract.column_names]


def check_size(kind: FileKind, contract: Contract) -> None:
    """Refuse a file larger than the contract's limits.max_file_bytes."""
    limit = contract.limits.max_file_bytes
    size = kind.path.stat().st_size
    if limit is not None and size > limit:
        raise LoadError(
            f"{kind.path}: {size} bytes exceed limits.max_file_bytes ({limit}) "
            f"of {contract.path.name}"
        )


class FileLoader:
    """Loads one raw file of a dataset into a staged and a rejects Parquet file."""

    def __init__(self, connection: duckdb.DuckDBPyConnection, contract: Contract) -> None:
        self.con = connection
        self.contract = contract

    def stage_id(self, path: Path) -> str:
        """Names one staging of a file: the same file under the same contract, the same id."""
        stat = path.stat()
        text = f"{path.name}|{stat.st_size}|{stat.st_mtime_ns}|{self.contract.sha256}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def load(self, path: Path, staged: Path, rejects: Path, scratch: Path) -> FileResult:
        started = time.perf_counter()
        kind = kind_of(path)
        check_size(kind, self.contract)
        verify(kind)
        progress = ByteProgress(path.name, path.stat().st_size, enabled=interactive())
        checked = scratch / f"{kind.stem}.checked.parquet"
        try:
            readable = materialise(kind, self.contract.encoding, scratch, progress)
            source = open_source(kind, readable, self.contract, self.con, scratch)
            check_columns(source, self.contract)
            appended = self.appended(source)
            self.check(source, checked, appended)
            result = self.split(source, checked, staged, rejects, appended)
        except duckdb.Error as exc:
            raise self.explain(kind, exc) from None
        finally:
            progress.close()
            checked.unlink(missing_ok=True)
        result.seconds = time.perf_counter() - started
        return result

    def explain(self, kind: FileKind, exc: duckdb.Error) -> LoadError:
        """A DuckDB error as a LoadError naming the file (and the bad bytes for encodings)."""
        message = str(exc)
        if "unicode" in message.lower() or "utf-8" in message.lower():
            return decode_error(kind, self.contract.encoding)
        lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
        useful = [
            line if len(line) <= 160 else line[:160] + "…"
            for line in lines[:4]
            if not line.startswith(("Possible Solution", "file ="))
        ]
        return LoadError(f"{kind.path}: {'; '.join(useful) or type(exc).__name__}")

    def rules(self, source: Source, raw_of: dict[str, str], value_of: dict[str, str]) -> list:
        """Every rule of the contract plus the format's record-level checks."""
        carried = {name: raw_of.get(name, f"source.{quote_ident(name)}") for name in source.carried}
        return [
            *all_checks(self.contract, raw_of, value_of),
            *source.record_checks(lambda name: carried[name]),
        ]

    def appended(self, source: Source) -> list[str]:
        """New columns staged as text when the contract says `on_new_columns: append`."""
        if self.contract.on_new_columns != "append":
            return []
        return new_columns(source.columns, self.contract)

    def check(self, source: Source, target: Path, appended: list[str]) -> None:
        """Pass 1: cast and check every row, in file order, straight into the staged layout.

        `_source_file` is NULL on rows that break a rule; `_source_row` is NULL, meaning "the
        row's position in the file", which holds as long as no row is removed; `_stage_id`
        tells the incremental curated model which rows are new.
        """
        names = self.contract.column_names
        casts = ", ".join(
            f"{typed(f'source.{quote_ident(c.name)}', c)} as {quote_ident(c.name)}"
            for c in self.contract.columns
        )
        carried = [*names, *source.carried]
        raw_of = {name: f"typed.{quote_ident('__raw_' + name)}" for name in carried}
        value_of = {name: f"typed.{quote_ident(name)}" for name in names}
        raws = ", ".join(f"source.{quote_ident(n)} as {quote_ident('__raw_' + n)}" for n in carried)
        is_valid = row_is_valid(self.rules(source, raw_of, value_of))
        casts += "".join(
            f", cast(source.{quote_ident(n)} as varchar) as {quote_ident(n)}" for n in appended
        )
        columns = ", ".join(f"typed.{quote_ident(name)}" for name in [*names, *appended])
        self.con.execute(
            f"""
            copy (
                with typed as (
                    select {casts}, {raws}
                    from {source.relation} as source
                )
                select {columns},
                    case when {is_valid} then {literal(source.kind.path.name)} end as _source_file,
                    cast(null as bigint) as _source_row,
                    {literal(self.stage_id(source.kind.path))} as _stage_id
                from typed
            ) to {literal(str(target))} (format parquet)
            """
        )

    def split(
        self, source: Source, checked: Path, staged: Path, rejects: Path, appended: list[str]
    ) -> FileResult:
        """A file without rejects is staged as checked; otherwise its valid rows are rewritten
        with their record numbers (pass 2) and the rejects explained (pass 3)."""
        scan = f"read_parquet({literal(str(checked))}, file_row_number = true)"
        rows_read, rejected = self.con.execute(
            f"select count(*), count(*) filter (where _source_file is null) from {scan}"
        ).fetchone()
        name = source.kind.path.name
        result = FileResult(name, int(rows_read), int(rows_read) - int(rejected), int(rejected))
        if not rejected:
            os.replace(checked, staged)
            return result
        columns = ", ".join(quote_ident(n) for n in [*self.contract.column_names, *appended])
        self.con.execute(
            f"""
            copy (
                select {columns}, _source_file, file_row_number + 1 as _source_row, _stage_id
                from {scan} where _source_file is not null
            ) to {literal(str(staged))} (format parquet)
            """
        )
        result.rejects_by_rule, explained = self.write_rejects(source, scan, rejects)
        if explained != result.rows_rejected:
            raise LoadError(
                f"{source.kind.path}: internal error: {result.rows_rejected} rows failed the "
                f"checks but {explained} could be explained; please report this file"
            )
        return result

    def write_rejects(self, source: Source, scan: str, target: Path) -> tuple[dict[str, int], int]:
        """One reject row per broken rule: file, record, line, column, rule, raw value, detail.

        The raw text of the failing records is read again from the file, numbered in file order.
        """
        names = [*self.contract.column_names, *source.carried]
        raw_of = {name: f"source.{quote_ident(name)}" for name in names}
        raw_of["(record)"] = f"source.{quote_ident(RAW_LINE)}" if source.carried else "null"
        value_of = {c.name: typed(raw_of[c.name], c) for c in self.contract.columns}
        failures = row_failures(self.rules(source, raw_of, value_of), raw_of)
        line = "null" if source.line_offset is None else f"record + {source.line_offset}"
        self.con.execute(
            f"""
            copy (
                with failing as (
                    select file_row_number + 1 as record from {scan} where _source_file is null
                ),
                failed as (
                    select source.{RECORD} as record, unnest({failures}) as failure
                    from {source.numbered} as source
                    where source.{RECORD} in (select record from failing)
                )
                select {literal(source.kind.path.name)} as source_file, record,
                    cast({line} as bigint) as line, failure.column_name as column_name,
                    failure.rule as rule, failure.raw_value as raw_value,
                    failure.detail as detail
                from failed order by record, column_name, rule
            ) to {literal(str(target))} (format parquet)
            """
        )
        written = f"read_parquet({literal(str(target))})"
        counts = self.con.execute(
            f"select rule, count(distinct record) from {written} group by rule order by rule"
        ).fetchall()
        records = self.con.execute(f"select count(distinct record) from {written}").fetchone()[0]
        return {str(rule): int(n) for rule, n in counts}, int(records)


def discover(folder: Path) -> list[Path]:
    """Every file of a raw folder, in name order; a file off the whitelist is refused."""
    if not folder.is_dir():
        raise LoadError(f"{folder}: no such folder (put the dataset's raw files there)")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise LoadError(f"{folder}: no files to load (accepted: {whitelist()})")
    for path in files:
        kind_of(path)
    return files


def tolerance_error(contract: Contract, result: LoadResult) -> RejectsExceeded | None:
    """The error to raise when the load rejected more rows than the contract tolerates."""
    rejected, read = result.rows_rejected, max(result.rows_read, 1)
    too_many = rejected > contract.max_rejected_rows
    if contract.max_rejected_share is not None:
        too_many = too_many and rejected / read > contract.max_rejected_share
    if not too_many:
        return None
    limit = f"max_rows {contract.max_rejected_rows}"
    if contract.max_rejected_share is not None:
        limit += f" or max_share {contract.max_rejected_share:g}"
    return RejectsExceeded(
        f"{result.summary()}\n{contract.path}: {rejected} rejected rows exceed the tolerance "
        f"(rejects: {limit}); staged data was left unchanged. "
        f"Inspect the rejects in {result.rejects_dir}"
    )


def swap_dir(new: Path, final: Path) -> None:
    """Replace `final` by `new` with two renames; the old version is removed afterwards."""
    final.parent.mkdir(parents=True, exist_ok=True)
    old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
    if final.exists():
        final.rename(old)
    new.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def load_dataset(
    contract: Contract, paths: Paths, files: list[Path] | None = None, *, quiet: bool = False
) -> LoadResult:
    """Load the given files (default: all of data/raw/<dataset>/) and publish them atomically.

    Loading every file rebuilds the staged and rejects folders and swaps them in, so files that
    left the raw folder leave the staged data too; loading named files replaces just those.
    """
    full_load = files is None
    sources = discover(paths.raw(contract.dataset)) if files is None else files
    for source in sources:
        if not source.is_file():
            raise LoadError(f"{source}: no such file")
    stems = [kind_of(source).stem for source in sources]
    clashes = sorted({s for s in stems if stems.count(s) > 1})
    if clashes:
        raise LoadError(f"two input files would both be staged as {clashes[0]}.parquet")

    staged_dir, rejects_dir = (
        paths.staged_raw(contract.dataset),
        paths.rejects_raw(contract.dataset),
    )
    token = uuid.uuid4().hex[:8]
    work = paths.staged(contract.dataset).parent / f".{contract.dataset}.load-{token}"
    new_staged, new_rejects, scratch = work / "staged", work / "rejects", work / "scratch"
    for folder in (new_staged, new_rejects, scratch):
        folder.mkdir(parents=True)
    try:
        result = load_files(contract, sources, new_staged, new_rejects, scratch, quiet=quiet)
        result.staged_dir, result.rejects_dir = staged_dir, rejects_dir
        _publish_rejects(new_rejects, rejects_dir, [s.name for s in sources], full_load)
        error = tolerance_error(contract, result)
        if error is not None:
            raise error
        write_manifest(new_staged, contract, result, sources)
        _publish_staged(new_staged, staged_dir, full_load)
        _record_state(staged_dir, contract)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return result


def load_files(
    contract: Contract,
    sources: list[Path],
    staged: Path,
    rejects: Path,
    scratch: Path,
    *,
    quiet: bool,
) -> LoadResult:
    """Load each file into `staged`/`rejects` (one Parquet file each) with one DuckDB session."""
    connection = duckdb.connect(config={"temp_directory": str(scratch / "duckdb_tmp")})
    connection.execute(f"set enable_progress_bar = {str(interactive() and not quiet).lower()}")
    loader = FileLoader(connection, contract)
    results: list[FileResult] = []
    try:
        for index, source in enumerate(sources, start=1):
            name = kind_of(source).stem
            result = loader.load(
                source,
                staged / f"{name}.parquet",
                rejects / f"{name}.rejects.parquet",
                scratch,
            )
            results.append(result)
            if not quiet:
                print(
                    f"[{index}/{len(sources)}] {source.name}: {result.rows_read} read, "
                    f"{result.rows_staged} staged, {result.rows_rejected} rejected "
                    f"({result.seconds:.1f}s)",
                    file=sys.stderr,
                )
    finally:
        connection.close()
    return LoadResult(contract.dataset, results, staged, rejects)


def _publish_rejects(new: Path, final: Path, source_names: list[str], full_load: bool) -> None:
    """Rejects are kept even when the load fails, so the user can see why."""
    if full_load:
        final.parent.mkdir(parents=True, exist_ok=True)
        swap_dir(new, final)
        return
    final.mkdir(parents=True, exist_ok=True)
    for name in source_names:
        stale = final / f"{kind_of(Path(name)).stem}.rejects.parquet"
        stale.unlink(missing_ok=True)
    for produced in new.iterdir():
        os.replace(produced, final / produced.name)


def _publish_staged(new: Path, final: Path, full_load: bool) -> None:
    if full_load or not final.exists():
        final.parent.mkdir(parents=True, exist_ok=True)
        swap_dir(new, final)
        return
    manifest = json.loads((new / MANIFEST).read_text())
    previous = final / MANIFEST
    if previous.exists():
        kept = json.loads(previous.read_text())["files"]
        merged = {entry["source"]: entry for entry in kept}
        merged.update({entry["source"]: entry for entry in manifest["files"]})
        manifest["files"] = [merged[name] for name in sorted(merged)]
    for produced in new.glob("*.parquet"):
        os.replace(produced, final / produced.name)
    atomic.write_text(final / MANIFEST, json.dumps(manifest, indent=2))


def _record_state(folder: Path, contract: Contract) -> None:
    """The raw batch's `_state.json`, so `ciq status` and the schema gate see it too."""
    files = json.loads((folder / MANIFEST).read_text())["files"]
    state = BatchState(
        RAW_RUN_DATE,
        RAW_BATCH,
        STAGED,
        rows=sum(entry["rows_staged"] for entry in files),
        rejects=sum(entry["rows_rejected"] for entry in files),
        contract_sha256=contract.sha256,
    )
    state.describe_schema(folder)
    write_state(folder, state)


def write_manifest(
    folder: Path, contract: Contract, result: LoadResult, sources: list[Path]
) -> None:
    """`_load_manifest.json`: per raw file, its counts, rejects by rule, size and mtime."""
    by_name = {source.name: source for source in sources}
    entries = []
    for file_result in result.files:
        stat = by_name[file_result.source].stat()
        entry = asdict(file_result)
        entry.pop("seconds")
        entry.update(bytes=stat.st_size, mtime_ns=stat.st_mtime_ns)
        entries.append(entry)
    manifest = {"dataset": contract.dataset, "contract_sha256": contract.sha256, "files": entries}
    atomic.write_text(folder / MANIFEST, json.dumps(manifest, indent=2))

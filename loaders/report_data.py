"""Gather what the diagnostics report shows: load counts, leakage, the diagnostics tables, dbt.

Everything is read back from what the pipeline left behind: the loader's `_load_manifest.json`
and rejects Parquet, the warehouse tables of the dataset and dbt's `target/run_results.json`.
Missing optional pieces become notes in the report; missing diagnostics are a ReportError.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from loaders.contract import Contract
from loaders.errors import ReportError
from loaders.settings import Paths
from loaders.sql import quote_ident

MANIFEST = "_load_manifest.json"
BATCH_FILES = "run_date=*/batch_id=*/*.parquet"  # every staged batch, the raw folder's included
REQUIRED_TABLES = ("causal_ready", "propensity_scores", "overlap_diagnostics", "covariate_balance")
OPTIONAL_TABLES = ("variance_ratios", "ks_statistics", "weight_diagnostics", "trimming_bounds")
DIAGNOSTIC_MODELS = (*REQUIRED_TABLES[1:], *OPTIONAL_TABLES)
REJECT_EXAMPLES = 10
EXECUTING_COMMANDS = ("build", "test", "run")


@dataclass(frozen=True)
class FileCounts:
    """Rows of one raw file as the loader counted them."""

    source: str
    rows_read: int
    rows_staged: int
    rows_rejected: int
    rejects_by_rule: dict[str, int]


@dataclass(frozen=True)
class LoadSummary:
    """What `ciq load` did: per-file counts, rejects by rule and column, a few examples."""

    files: tuple[FileCounts, ...]
    rejects_by_rule_and_column: pd.DataFrame
    reject_examples: pd.DataFrame
    notes: tuple[str, ...] = ()

    def rejects_by_rule(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for counts in self.files:
            for rule, n in counts.rejects_by_rule.items():
                totals[rule] = totals.get(rule, 0) + n
        return dict(sorted(totals.items()))


@dataclass(frozen=True)
class LeakageCheck:
    """The contract's deny-list and every column name it was checked against."""

    patterns: tuple[str, ...]
    checked: dict[str, tuple[str, ...]]  # where -> column names
    matches: tuple[tuple[str, str, str], ...]  # (where, column, pattern)

    @property
    def passed(self) -> bool:
        return not self.matches


@dataclass(frozen=True)
class DbtResult:
    """One node of dbt's last run."""

    name: str
    resource_type: str
    status: str
    on: str
    message: str
    failures: int | None


@dataclass(frozen=True)
class DbtRun:
    """dbt's last invocation as `target/run_results.json` records it."""

    command: str
    generated_at: str
    results: tuple[DbtResult, ...]
    notes: tuple[str, ...] = ()

    def tests(self) -> list[DbtResult]:
        return [result for result in self.results if result.resource_type == "test"]

    def model_status(self, name: str) -> str | None:
        for result in self.results:
            if result.resource_type == "model" and result.name == name:
                return result.status
        return None


@dataclass(frozen=True)
class ReportData:
    """Everything one report shows."""

    contract: Contract
    warehouse: Path
    n_ready: int
    load: LoadSummary
    leakage: LeakageCheck
    tables: dict[str, pd.DataFrame]
    scores: pd.DataFrame  # treatment, propensity_score, ipw_weight
    dbt: DbtRun
    stale: tuple[str, ...] = field(default=())

    def table(self, name: str) -> pd.DataFrame | None:
        return self.tables.get(name)


def collect(contract: Contract, paths: Paths) -> ReportData:
    """Read everything the report needs; ReportError when the dataset has not been built."""
    warehouse = _read_warehouse(contract, paths)
    checked = {"causal_ready": warehouse.ready_columns, "contract": contract.column_names}
    staged_columns = _staged_columns(paths.staged(contract.dataset))
    if staged_columns:
        checked["staged Parquet"] = staged_columns
    dbt = dbt_run(paths, contract.dataset)
    stale = tuple(
        name
        for name in DIAGNOSTIC_MODELS
        if (status := dbt.model_status(name)) is not None and status != "success"
    )
    return ReportData(
        contract=contract,
        warehouse=paths.warehouse,
        n_ready=warehouse.n_ready,
        load=load_summary(contract, paths),
        leakage=leakage_check(contract, checked),
        tables=warehouse.tables,
        scores=warehouse.scores,
        dbt=dbt,
        stale=stale,
    )


def diagnostics_exist(contract: Contract, paths: Paths) -> bool:
    """True when the warehouse holds the dataset's required diagnostics tables."""
    if not paths.warehouse.exists():
        return False
    try:
        with duckdb.connect(str(paths.warehouse)) as con:
            present = _present_tables(con, contract.dataset)
    except duckdb.Error:
        return False
    return set(REQUIRED_TABLES) <= present


def _present_tables(con: duckdb.DuckDBPyConnection, schema: str) -> set[str]:
    rows = con.execute(
        "select table_name from information_schema.tables where table_schema = ?", [schema]
    ).fetchall()
    return {row[0] for row in rows}


@dataclass(frozen=True)
class _Warehouse:
    """The dataset's tables as read from the warehouse."""

    tables: dict[str, pd.DataFrame]
    scores: pd.DataFrame
    n_ready: int
    ready_columns: tuple[str, ...]


def _read_warehouse(contract: Contract, paths: Paths) -> _Warehouse:
    if not paths.warehouse.exists():
        raise ReportError(f"{paths.warehouse}: no warehouse yet; run `make all` or `ciq build`")
    schema = quote_ident(contract.dataset)
    treatment = quote_ident(contract.treatment_col)
    try:
        with duckdb.connect(str(paths.warehouse)) as con:
            present = _present_tables(con, contract.dataset)
            missing = [name for name in REQUIRED_TABLES if name not in present]
            if missing:
                raise ReportError(
                    f"{paths.warehouse}: dataset {contract.dataset} has no "
                    f"{', '.join(missing)} yet; run `ciq build {contract.dataset}` first"
                )
            tables = {
                name: con.execute(f"select * from {schema}.{quote_ident(name)}").fetchdf()
                for name in ("overlap_diagnostics", "covariate_balance", *OPTIONAL_TABLES)
                if name in present
            }
            scores = con.execute(
                f"select {treatment} as treated, propensity_score, ipw_weight "
                f"from {schema}.propensity_scores"
            ).fetchdf()
            count = con.execute(f"select count(*) from {schema}.causal_ready").fetchone()
            described = con.execute(f"describe {schema}.causal_ready").fetchall()
    except duckdb.Error as exc:
        raise ReportError(f"{paths.warehouse}: cannot read the warehouse: {exc}") from None
    return _Warehouse(
        tables=tables,
        scores=scores,
        n_ready=int(count[0]) if count else 0,
        ready_columns=tuple(row[0] for row in described),
    )


def _staged_columns(staged: Path) -> tuple[str, ...]:
    files = sorted(staged.glob(BATCH_FILES))
    if not files:
        return ()
    relation = duckdb.read_parquet(
        [str(f) for f in files], union_by_name=True, hive_partitioning=False
    )
    return tuple(relation.columns)


def load_summary(contract: Contract, paths: Paths) -> LoadSummary:
    """Per-file counts from the loader's manifest and the rejects by rule and column."""
    notes: list[str] = []
    staged = paths.staged(contract.dataset)
    manifests = sorted(staged.glob(f"run_date=*/batch_id=*/{MANIFEST}"))
    files: list[FileCounts] = []
    for manifest_path in manifests:
        try:
            manifest = json.loads(manifest_path.read_text())
            files += [_file_counts(entry) for entry in manifest.get("files", [])]
        except (ValueError, KeyError, TypeError) as exc:
            notes.append(f"{manifest_path} could not be read ({exc}); counts are not shown.")
    if not manifests:
        notes.append(
            f"No load manifest under {staged}: run `ciq load {contract.dataset}` "
            f"or `ciq stage {contract.dataset}`."
        )
    by_rule, examples = _rejects(paths.rejects(contract.dataset))
    return LoadSummary(tuple(files), by_rule, examples, tuple(notes))


def _file_counts(entry: dict[str, Any]) -> FileCounts:
    return FileCounts(
        source=str(entry["source"]),
        rows_read=int(entry["rows_read"]),
        rows_staged=int(entry["rows_staged"]),
        rows_rejected=int(entry["rows_rejected"]),
        rejects_by_rule={str(k): int(v) for k, v in (entry.get("rejects_by_rule") or {}).items()},
    )


def _rejects(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    files = sorted(folder.glob("run_date=*/batch_id=*/*.rejects.parquet"))
    if not files:
        return pd.DataFrame(), pd.DataFrame()
    con = duckdb.connect()
    try:
        con.read_parquet(
            [str(f) for f in files], union_by_name=True, hive_partitioning=False
        ).create_view("rejects")
        columns = set(con.execute("select * from rejects limit 0").fetchdf().columns)
        by_rule = (
            con.execute(
                "select rule, column_name, count(*) as n_rows from rejects "
                "group by all order by n_rows desc, rule, column_name"
            ).fetchdf()
            if {"rule", "column_name"} <= columns
            else pd.DataFrame()
        )
        examples = con.execute(f"select * from rejects limit {REJECT_EXAMPLES}").fetchdf()
    finally:
        con.close()
    return by_rule, examples


def leakage_check(contract: Contract, checked: dict[str, tuple[str, ...]]) -> LeakageCheck:
    """Every checked column name against the contract's leakage deny-list."""
    matches = []
    for where, names in checked.items():
        for name in names:
            pattern = contract.leakage_pattern(name)
            if pattern is not None:
                matches.append((where, name, pattern))
    return LeakageCheck(contract.leakage_patterns, checked, tuple(matches))


def dbt_run(paths: Paths, dataset: str) -> DbtRun:
    """dbt's last run of this project, or an empty run with a note saying why there is none."""
    target = paths.dbt_project / "target"
    path = target / "run_results.json"
    if not path.is_file():
        return DbtRun("", "", (), (f"No dbt run results at {path}.",))
    try:
        raw = json.loads(path.read_text())
        results = raw["results"]
        command = str(raw.get("args", {}).get("which", ""))
        generated_at = str(raw.get("metadata", {}).get("generated_at", ""))
    except (ValueError, KeyError, TypeError) as exc:
        return DbtRun("", "", (), (f"{path} could not be read ({exc}).",))
    if command not in EXECUTING_COMMANDS:
        note = (
            f"The last dbt command was `{command}`, which runs no tests; "
            f"`ciq build {dataset}` runs them."
        )
        return DbtRun(command, generated_at, (), (note,))
    schemas = {
        _schema_of(result["relation_name"])
        for result in results
        if result.get("relation_name") and result["unique_id"].startswith("model.")
    }
    if schemas and dataset not in schemas:
        note = f"The last dbt run ({command}) was for {', '.join(sorted(schemas))}, not {dataset}."
        return DbtRun(command, generated_at, (), (note,))
    attached = _attached_nodes(target / "manifest.json")
    return DbtRun(
        command,
        generated_at,
        tuple(_dbt_result(result, attached) for result in results),
    )


def _schema_of(relation_name: str) -> str:
    parts = [part.strip('"') for part in relation_name.split(".")]
    return parts[-2] if len(parts) >= 2 else ""


def _attached_nodes(manifest_path: Path) -> dict[str, str]:
    """Test unique_id -> name of the model or source it tests (empty if no manifest)."""
    try:
        nodes = json.loads(manifest_path.read_text())["nodes"]
    except (OSError, ValueError, KeyError):
        return {}
    attached = {}
    for unique_id, node in nodes.items():
        target = node.get("attached_node") or next(
            iter(node.get("depends_on", {}).get("nodes", [])), ""
        )
        if unique_id.startswith("test.") and target:
            attached[unique_id] = target.split(".")[-1]
    return attached


def _dbt_result(result: dict[str, Any], attached: dict[str, str]) -> DbtResult:
    unique_id = str(result["unique_id"])
    parts = unique_id.split(".")
    failures = result.get("failures")
    return DbtResult(
        name=parts[2] if len(parts) > 2 else unique_id,
        resource_type=parts[0],
        status=str(result.get("status", "")),
        on=attached.get(unique_id, ""),
        message=" ".join(str(result.get("message") or "").split()),
        failures=int(failures) if failures is not None else None,
    )

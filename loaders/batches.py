"""`ciq stage` and `ciq status`: landed batches -> staged Parquet partitions, with a schema gate.

Each batch is staged into data/staged/<dataset>/run_date=<d>/batch_id=<id>/ with a `_state.json`
(state, rows, rejects, schema hash, the part checksums and the contract hash it was staged with).
A batch already staged from the same bytes under the same contract is skipped unless forced.
Staging writes into a hidden folder and renames it into place, so a crash never leaves a
partial batch visible; the next run simply stages it again.
"""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loaders.batch_state import (
    FAILED_CONTRACT,
    FAILED_SCHEMA,
    STAGED,
    BatchState,
    contract_schema,
    read_state,
    schema_hash,
    write_state,
)
from loaders.contract import Contract
from loaders.errors import CiqError, LoadError, RejectsExceeded
from loaders.landing import (
    LATEST,
    MANIFEST,
    check_run_date,
    landed_sha256,
    run_dir,
    table_dir,
)
from loaders.settings import Paths
from loaders.staging import load_files, swap_dir, tolerance_error, write_manifest


class SchemaGateError(CiqError):
    """Staged batches disagree with the contract's schema: the build must not run."""

    exit_code = 1


@dataclass(frozen=True)
class Batch:
    """A landed batch of a dataset."""

    run_date: str
    batch_id: str
    folder: Path

    @property
    def manifest(self) -> dict[str, Any]:
        return json.loads((self.folder / MANIFEST).read_text())


def landed_batches(paths: Paths, contract: Contract, namespace: str) -> list[Batch]:
    """Every landed batch of the dataset, oldest run date and batch first."""
    found = []
    for manifest in sorted(
        table_dir(paths.data, namespace, contract.dataset).glob(f"run_date=*/batch_id=*/{MANIFEST}")
    ):
        folder = manifest.parent
        run_date = folder.parent.name.removeprefix("run_date=")
        found.append(Batch(run_date, folder.name.removeprefix("batch_id="), folder))
    return found


def select_batches(
    paths: Paths, contract: Contract, namespace: str, run_date: str | None, which: str
) -> list[Batch]:
    """The batches a `ciq stage` call names: latest of a run date, one id, or all."""
    batches = landed_batches(paths, contract, namespace)
    hint = f"run `ciq status {contract.dataset}` to list what exists"
    if not batches:
        raise LoadError(
            f"no landed batches for {contract.dataset} in namespace {namespace}; {hint}"
        )
    if run_date is not None:
        check_run_date(run_date)
        batches = [b for b in batches if b.run_date == run_date]
        if not batches:
            raise LoadError(f"no batch landed for run date {run_date}; {hint}")
    if which == "all":
        return batches
    if which == "latest":
        dates = sorted({b.run_date for b in batches}) if run_date is None else [run_date]
        chosen = []
        for date in dates:
            pointer = run_dir(paths.data, namespace, contract.dataset, date) / LATEST
            latest = pointer.read_text().strip() if pointer.exists() else None
            chosen += [b for b in batches if b.run_date == date and b.batch_id == latest]
        return chosen
    picked = [b for b in batches if b.batch_id == which]
    if not picked:
        raise LoadError(f"no batch {which!r}; {hint}")
    return picked


def staged_dir(paths: Paths, contract: Contract, batch: Batch) -> Path:
    return paths.staged_batch(contract.dataset, batch.run_date, batch.batch_id)


def stage_batch(
    contract: Contract, paths: Paths, batch: Batch, *, force: bool = False, quiet: bool = True
) -> tuple[BatchState, bool]:
    """Stage one batch; returns its state and whether it was (re)staged now."""
    target = staged_dir(paths, contract, batch)
    manifest = batch.manifest
    digests = [landed_sha256(part) for part in manifest["parts"]]
    previous = read_state(target)
    unchanged = (
        previous is not None
        and previous.state == STAGED
        and previous.parts_sha256 == digests
        and previous.contract_sha256 == contract.sha256
    )
    if unchanged and not force:
        return previous, False
    state = BatchState(
        batch.run_date,
        batch.batch_id,
        STAGED,
        parts_sha256=digests,
        contract_sha256=contract.sha256,
    )
    work = target.parent / f".{target.name}.stage-{uuid.uuid4().hex[:8]}"
    staged, rejects, scratch = work / "staged", work / "rejects", work / "scratch"
    for folder in (staged, rejects, scratch):
        folder.mkdir(parents=True)
    try:
        parts = [batch.folder / "parts" / part["name"] for part in manifest["parts"]]
        try:
            result = load_files(contract, parts, staged, rejects, scratch, quiet=quiet)
        except LoadError as exc:
            state.state = FAILED_SCHEMA if _is_schema_problem(str(exc)) else FAILED_CONTRACT
            state.issues = [str(exc)]
        else:
            state.rows, state.rejects = result.rows_staged, result.rows_rejected
            error = tolerance_error(contract, result)
            if isinstance(error, RejectsExceeded):
                state.state, state.issues = FAILED_CONTRACT, [str(error).splitlines()[-1]]
            state.describe_schema(staged)
            write_manifest(staged, contract, result, parts)
        write_state(staged, state)
        swap_dir(staged, target)
        rejects_target = paths.rejects_batch(contract.dataset, batch.run_date, batch.batch_id)
        swap_dir(rejects, rejects_target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if state.state != STAGED:
        _drop_parquet(target)  # a failed batch keeps its state, never rows dbt could read
    return state, True


def _is_schema_problem(message: str) -> bool:
    return any(text in message for text in ("are not in", "missing column", "more than once"))


def _drop_parquet(folder: Path) -> None:
    for path in folder.glob("*.parquet"):
        path.unlink()


def staged_states(paths: Paths, contract: Contract) -> list[BatchState]:
    """The state of every staged batch of the dataset, oldest first."""
    root = paths.staged(contract.dataset)
    return [
        state
        for folder in sorted(root.glob("run_date=*/batch_id=*"))
        if (state := read_state(folder)) is not None
    ]


def schema_issues(state: BatchState, contract: Contract) -> list[str]:
    """Missing/extra columns and type changes of a staged batch against the contract."""
    expected = dict(contract_schema(contract))
    actual = {name: dtype for name, dtype in state.columns}
    issues = [f"missing column {name}" for name in expected if name not in actual]
    issues += [
        f"new column {name} (appended)"
        if contract.on_new_columns == "append"
        else f"extra column {name}"
        for name in actual
        if name not in expected
    ]
    issues += [
        f"{name}: {actual[name]} instead of {dtype}"
        for name, dtype in expected.items()
        if name in actual and actual[name] != dtype
    ]
    return issues


def schema_matches(state: BatchState, contract: Contract) -> bool:
    """The batch carries the contract's schema hash (appended new columns aside, when allowed)."""
    columns = [(name, dtype) for name, dtype in state.columns]
    if contract.on_new_columns == "append":
        columns = [(name, dtype) for name, dtype in columns if name in contract.column_names]
    return state.state == STAGED and schema_hash(columns) == schema_hash(contract_schema(contract))


def schema_gate(paths: Paths, contract: Contract) -> None:
    """Refuse to build while any staged batch is failed or disagrees with the contract."""
    expected = schema_hash(contract_schema(contract))
    problems = []
    for state in staged_states(paths, contract):
        where = f"run_date={state.run_date} batch_id={state.batch_id}"
        if state.state != STAGED:
            problems.append(f"{where}: {state.state}: {'; '.join(state.issues)}")
        elif not schema_matches(state, contract):
            issues = "; ".join(schema_issues(state, contract)) or "column order differs"
            problems.append(f"{where}: schema {state.schema_hash} != contract {expected}: {issues}")
    if problems:
        listing = "\n".join(f"  - {problem}" for problem in problems)
        raise SchemaGateError(
            f"schema gate: {len(problems)} staged batch(es) of {contract.dataset} disagree with "
            f"{contract.path.name}; restage them (`ciq stage {contract.dataset} --batch all "
            f"--force`) or fix the files:\n{listing}"
        )


def status_rows(paths: Paths, contract: Contract) -> list[dict[str, Any]]:
    """One row per staged batch: batch, run date, rows, rejects, state, schema ok, issues."""
    rows = []
    for state in staged_states(paths, contract):
        schema_ok = schema_matches(state, contract)
        issues = state.issues or schema_issues(state, contract)
        rows.append(
            {
                "batch_id": state.batch_id,
                "run_date": state.run_date,
                "rows": state.rows,
                "rejects": state.rejects,
                "state": state.state,
                "schema_ok": schema_ok,
                "schema_hash": state.schema_hash,
                "issues": issues,
            }
        )
    return rows


def status_table(rows: list[dict[str, Any]]) -> str:
    """A fixed-width table for people; `ciq status --json` prints the rows themselves."""
    header = (
        f"{'batch':<30} {'run_date':<9} {'rows':>9} {'rejects':>8} {'state':<23} schema  issues"
    )
    lines = [header]
    for row in rows:
        mark = "✓" if row["schema_ok"] else "✗"
        lines.append(
            f"{row['batch_id']:<30} {row['run_date']:<9} {row['rows']:>9} {row['rejects']:>8} "
            f"{row['state']:<23} {mark:<7} {'; '.join(row['issues'])[:120]}"
        )
    if not rows:
        lines.append("(no staged batches: `ciq land` then `ciq stage`)")
    return "\n".join(lines)

"""`ciq build`: generate the dbt files of a dataset and run `dbt build` in-process."""

from __future__ import annotations

import os
from collections.abc import Sequence

import duckdb
from dbt.cli.main import dbtRunner

from loaders.batches import schema_gate
from loaders.contract import Contract
from loaders.dbt_codegen import generate, sources_yaml
from loaders.errors import BuildError
from loaders.results import summary
from loaders.settings import Paths
from loaders.sql import quote_ident

FAILED = {"error", "fail", "runtime error"}


def dbt_args(paths: Paths, command: str, *extra: str) -> list[str]:
    """Arguments for a dbt command on this project and its root profiles.yml."""
    return [
        command,
        "--project-dir",
        str(paths.dbt_project),
        "--profiles-dir",
        str(paths.root),
        *extra,
    ]


def run_dbt(paths: Paths, args: Sequence[str]) -> object:
    """Run dbt in-process with the warehouse path resolved against the project root."""
    paths.warehouse.parent.mkdir(parents=True, exist_ok=True)
    previous = os.environ.get("CIQ_WAREHOUSE")
    os.environ["CIQ_WAREHOUSE"] = str(paths.warehouse)
    try:
        return dbtRunner().invoke(list(args))
    finally:
        if previous is None:
            os.environ.pop("CIQ_WAREHOUSE", None)
        else:
            os.environ["CIQ_WAREHOUSE"] = previous


def build(contract: Contract, paths: Paths, *, target: str | None = None) -> None:
    """Schema gate, generate, `dbt build`, print where the results are; BuildError on failure."""
    schema_gate(paths, contract)
    generate(contract, paths)
    extra = ["--target", target] if target else []
    if target in (None, "dev", "ci") and stagings_removed(contract, paths):
        extra.append("--full-refresh")  # rows of removed stagings must leave cur_records
    outcome = run_dbt(paths, dbt_args(paths, "build", *extra))
    failures = _failures(outcome)
    if failures or not getattr(outcome, "success", False):
        detail = "\n".join(f"  - {line}" for line in failures) or f"  - {outcome.exception}"
        raise BuildError(f"dbt build failed for dataset {contract.dataset}:\n{detail}")
    if target in (None, "dev", "ci"):
        print(summary(contract, paths))


def stagings_removed(contract: Contract, paths: Paths) -> bool:
    """Whether cur_records holds rows of stagings no longer staged (a removed raw file or batch).

    New stagings are merged incrementally; a removal can only be undone by a full refresh.
    """
    if not paths.warehouse.exists():
        return False
    relation = sources_yaml(contract, paths)["sources"][0]["meta"]["external_location"]
    table = f"{quote_ident(contract.dataset)}.cur_records"
    stage = "_run_date, _batch_id, _stage_id"
    try:
        with duckdb.connect(str(paths.warehouse)) as con:
            removed = con.execute(
                f"select count(*) from (select distinct {stage} from {table} "
                f"except select distinct {stage} from {relation})"
            ).fetchall()
    except duckdb.CatalogException:
        return False  # first build: nothing to refresh
    except duckdb.Error:
        return True  # an older layout of cur_records: rebuild it
    return removed[0][0] > 0


def _failures(outcome: object) -> list[str]:
    results = getattr(getattr(outcome, "result", None), "results", None) or []
    lines = []
    for result in results:
        status = str(getattr(result.status, "value", result.status)).lower()
        if status in FAILED:
            message = (result.message or status).strip().splitlines()
            lines.append(f"{result.node.name}: {' '.join(m.strip() for m in message)}")
    return lines

"""`ciq build`: generate the dbt files of a dataset and run `dbt build` in-process."""

from __future__ import annotations

import os
from collections.abc import Sequence

from dbt.cli.main import dbtRunner

from loaders.batches import schema_gate
from loaders.contract import Contract
from loaders.dbt_codegen import generate
from loaders.errors import BuildError
from loaders.results import summary
from loaders.settings import Paths

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
    outcome = run_dbt(paths, dbt_args(paths, "build", *extra))
    failures = _failures(outcome)
    if failures or not getattr(outcome, "success", False):
        detail = "\n".join(f"  - {line}" for line in failures) or f"  - {outcome.exception}"
        raise BuildError(f"dbt build failed for dataset {contract.dataset}:\n{detail}")
    if target in (None, "dev", "ci"):
        print(summary(contract, paths))


def _failures(outcome: object) -> list[str]:
    results = getattr(getattr(outcome, "result", None), "results", None) or []
    lines = []
    for result in results:
        status = str(getattr(result.status, "value", result.status)).lower()
        if status in FAILED:
            message = (result.message or status).strip().splitlines()
            lines.append(f"{result.node.name}: {' '.join(m.strip() for m in message)}")
    return lines

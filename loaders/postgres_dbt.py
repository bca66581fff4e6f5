"""Run dbt on a PostgreSQL target of profiles.yml, against the server ciq is connected to."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import psycopg
import yaml

from loaders.dbt_build import _failures, dbt_args, run_dbt
from loaders.errors import BuildError, PublishError
from loaders.postgres import dbt_environment
from loaders.settings import Paths

# dbt's artifacts of PostgreSQL runs, apart from DuckDB's (target/manifest.json says which tables
# `ciq publish` moves, and `dbt docs` of the DuckDB project must not be overwritten).
TARGET_PATH = "target/postgres"


def profile_target_type(paths: Paths, target: str | None) -> str | None:
    """The adapter type (`duckdb`, `postgres`, ...) of a profiles.yml output, if declared."""
    if target is None:
        return None
    profiles = paths.root / "profiles.yml"
    try:
        document = yaml.safe_load(profiles.read_text())
    except (OSError, yaml.YAMLError):
        return None
    outputs = (document or {}).get("ciq", {}).get("outputs", {})
    output = outputs.get(target)
    return str(output.get("type")) if isinstance(output, Mapping) else None


def require_postgres_target(paths: Paths, target: str) -> None:
    """PublishError unless `target` is a postgres output of profiles.yml."""
    kind = profile_target_type(paths, target)
    if kind != "postgres":
        found = f"type {kind}" if kind else "not declared"
        raise PublishError(
            f"{paths.root / 'profiles.yml'}: dbt target {target!r} must be a postgres output "
            f"({found}); see the `postgres` output there"
        )


def run_dbt_on_postgres(
    paths: Paths,
    connection: psycopg.Connection,
    command: str,
    *extra: str,
    target: str,
    variables: Mapping[str, Any] | None = None,
    what: str,
) -> int:
    """Run a dbt command on `target`; returns the number of nodes run, BuildError on failure."""
    require_postgres_target(paths, target)
    options = ["--target", target, "--target-path", TARGET_PATH, *extra]
    if variables:
        options += ["--vars", json.dumps(dict(variables))]
    with dbt_environment(connection):
        outcome = run_dbt(paths, dbt_args(paths, command, *options))
    failures = _failures(outcome)
    if failures or not getattr(outcome, "success", False):
        detail = "\n".join(f"  - {line}" for line in failures) or f"  - {outcome.exception}"
        raise BuildError(f"{what} failed on dbt target {target}:\n{detail}")
    results = getattr(getattr(outcome, "result", None), "results", None) or []
    return len(results)

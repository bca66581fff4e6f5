"""`ciq generate`, publish part: the dbt YAML of the PostgreSQL publish layer.

Written next to the other generated files (git-ignored), from the contract and the causal
layer's generated YAML, so nothing here names a column by hand:
- `models/publish/_ciq_publish__sources.yml`: the tables `ciq publish` moved to PostgreSQL as
  the source `ciq_publish`, each with the causal model's portable tests (keys unique and not
  null, accepted values, ranges) and a row-count parity test against the publish log;
- `models/publish/_publish__models.yml`: the publish models (`scored_units`,
  `diagnostics_summary`) and two exposures, one per engine, linking the DuckDB models to the
  PostgreSQL publish in `dbt docs`.
Python models are disabled on the postgres target (dbt-postgres runs none): they run on
DuckDB and their tables are published.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from loaders.contract import Contract
from loaders.postgres_types import POSTGRES_TYPES
from loaders.publish_settings import LOG_TABLE, SCHEMA_VAR, SOURCE
from loaders.settings import Paths

ON_POSTGRES = "{{ target.type == 'postgres' }}"
OFF_POSTGRES = "{{ target.type != 'postgres' }}"
# Generic tests whose SQL runs on PostgreSQL as well as on DuckDB (the gates are DuckDB-only).
PORTABLE_TESTS = frozenset(
    {"not_null", "unique", "accepted_values", "ciq_unique_combination", "ciq_between"}
)
SCORE_COLUMNS = {
    "propensity_score": "Estimated P(treated | covariates), from propensity_scores.",
    "ipw_weight": "Inverse-probability weight for the estimand, from propensity_scores.",
}
SUMMARY_COLUMNS: dict[str, tuple[str, str]] = {
    "dataset": ("text", "Dataset (contract) name."),
    "n_rows": ("bigint", "Rows scored (overlap_diagnostics)."),
    "n_treated": ("bigint", "Rows in the treated arm."),
    "n_control": ("bigint", "Rows in the control arm."),
    "share_inside_bounds": ("double precision", "Share of scores inside the overlap bounds."),
    "min_overlap_share": ("double precision", "Minimum share for the overlap gate."),
    "is_overlap_sufficient": ("boolean", "True when the overlap gate passes."),
    "n_balance_terms": ("bigint", "Covariate terms in covariate_balance."),
    "n_balanced_terms": ("bigint", "Terms with weighted |SMD| within the maximum."),
    "max_abs_smd_weighted": ("double precision", "Largest weighted |SMD|."),
    "max_abs_smd": ("double precision", "Maximum |SMD| for the balance gate."),
    "is_balanced": ("boolean", "True when every term is balanced."),
    "is_usable": ("boolean", "True when both the overlap and the balance gates pass."),
    "published_at": ("timestamp with time zone", "When the tables were last published."),
}
LOG_COLUMNS = {
    "table_name": "Published table (in this schema).",
    "mode": "replace or upsert.",
    "duckdb_rows": "Rows of the DuckDB table when it was published.",
    "postgres_rows": "Rows of the PostgreSQL table right after publishing.",
    "content_checksum": "Checksum of the DuckDB content: an equal one is not published again.",
    "columns": "Column name -> PostgreSQL type.",
    "primary_key": "Key columns (from the contract), empty for summary tables.",
    "contract_sha256": "SHA-256 of the contract file the data was built with.",
    "source": "DuckDB file and table the rows came from.",
    "publish_id": "Identifier of the publish run (also in the publish manifest JSON).",
    "relation_oid": "OID of the PostgreSQL table: another table under that name is republished.",
    "published_at": "When the table was last changed by ciq publish.",
}


def publish_documents(contract: Contract, paths: Paths, causal: dict[str, Any]) -> dict[Path, Any]:
    """The generated YAML documents of models/publish/, from the causal layer's document."""
    folder = paths.dbt_project / "models" / "publish"
    return {
        folder / "_ciq_publish__sources.yml": sources_yaml(contract, causal),
        folder / "_publish__models.yml": models_yaml(contract, causal),
    }


def disable_python_models_on_postgres(documents: Iterable[Any], paths: Paths) -> None:
    """Give every Python model in `documents` `enabled: false` on the postgres target."""
    models = paths.dbt_project / "models"
    python = {path.stem for path in models.rglob("*.py")}
    for document in documents:
        for model in document.get("models", []):
            if model["name"] in python:
                model["config"] = {**model.get("config", {}), "enabled": OFF_POSTGRES}


def sources_yaml(contract: Contract, causal: dict[str, Any]) -> dict[str, Any]:
    dataset = contract.dataset
    log = f"source('{SOURCE}', '{LOG_TABLE}')"
    tables = []
    for model in causal["models"]:
        name = model["name"]
        tests = _portable(model.get("data_tests", []))
        tests.append({"ciq_publish_parity": {"arguments": {"log": log}}})
        tables.append(
            {
                "name": name,
                "description": (
                    f"PostgreSQL copy of the DuckDB model `{name}` ({dataset}.{name} in the DuckDB "
                    f"warehouse), moved by `ciq publish {dataset}`."
                ),
                "meta": {"duckdb_model": name, "duckdb_relation": f"{dataset}.{name}"},
                "columns": [_source_column(column, contract) for column in model["columns"]],
                "data_tests": tests,
            }
        )
    tables.append(
        {
            "name": LOG_TABLE,
            "description": (
                "One row per published table: rows in DuckDB and PostgreSQL, content checksum, "
                "mode and time. Written in the same transaction as the tables."
            ),
            "columns": [
                {"name": name, "description": text, **_log_tests(name)}
                for name, text in LOG_COLUMNS.items()
            ],
        }
    )
    return {
        "version": 2,
        "sources": [
            {
                "name": SOURCE,
                "description": (
                    f"The {dataset} tables `ciq publish` copied from DuckDB into PostgreSQL "
                    f"(schema var {SCHEMA_VAR}, default {dataset}), atomically: readers see the "
                    "previous set or the new one."
                ),
                "schema": f"{{{{ var('{SCHEMA_VAR}', '{dataset}') }}}}",
                "tables": tables,
            }
        ],
    }


def models_yaml(contract: Contract, causal: dict[str, Any]) -> dict[str, Any]:
    key = list(contract.primary_key)
    key_test = {"ciq_unique_combination": {"arguments": {"columns": key}}}
    ready = {model["name"]: model for model in causal["models"]}["causal_ready"]
    unit_columns = [
        {
            **_source_column(column, contract),
            "data_type": POSTGRES_TYPES[contract.column(column["name"]).type],
        }
        for column in ready["columns"]
    ]
    score_tests: dict[str, list[Any]] = {
        "propensity_score": [
            "not_null",
            {"ciq_between": {"arguments": {"min_value": 0, "max_value": 1}}},
        ],
        "ipw_weight": ["not_null"],
    }
    for name, text in SCORE_COLUMNS.items():
        unit_columns.append(
            {
                "name": name,
                "description": text,
                "data_type": "double precision",
                "data_tests": score_tests[name],
            }
        )
    scored = {
        "name": "scored_units",
        "description": (
            "One row per unit of causal_ready with its propensity score and IPW weight: what "
            "dashboards and APIs read. Built on PostgreSQL from the published tables."
        ),
        "config": {"contract": {"enforced": True}},
        "data_tests": [
            key_test,
            {
                "ciq_same_row_count": {
                    "arguments": {"compare": f"source('{SOURCE}', 'causal_ready')"}
                }
            },
        ],
        "columns": unit_columns,
    }
    summary = {
        "name": "diagnostics_summary",
        "description": (
            "One row: can this dataset support a causal estimate? The overlap and balance "
            "verdicts of the published diagnostics and when they were published."
        ),
        "config": {"contract": {"enforced": True}},
        "data_tests": [{"ciq_row_count": {"arguments": {"expected": 1}}}],
        "columns": [
            {"name": name, "description": text, "data_type": data_type, "data_tests": ["not_null"]}
            for name, (data_type, text) in SUMMARY_COLUMNS.items()
        ],
    }
    return {
        "version": 2,
        "models": [scored, summary],
        "exposures": _exposures(contract, causal),
    }


def _exposures(contract: Contract, causal: dict[str, Any]) -> list[dict[str, Any]]:
    dataset = contract.dataset
    published = [model["name"] for model in causal["models"]]
    where = f"PostgreSQL schema {dataset} (var {SCHEMA_VAR})"
    return [
        {
            "name": "postgres_publish",
            "label": "PostgreSQL publish (ciq publish)",
            "type": "application",
            "maturity": "medium",
            "description": (
                f"`ciq publish {dataset}` copies these DuckDB tables into {where} in one "
                f"transaction, logs them in {LOG_TABLE}, then builds and tests the publish "
                "layer there (source ciq_publish, models scored_units and diagnostics_summary; "
                "`dbt docs generate --target postgres` shows it)."
            ),
            "owner": {"name": "ciq"},
            "depends_on": [f"ref('{name}')" for name in published],
            "config": {"enabled": OFF_POSTGRES},
        },
        {
            "name": "postgres_readers",
            "label": "Dashboards and APIs on PostgreSQL",
            "type": "application",
            "maturity": "medium",
            "description": (
                f"What readers query in {where}: the published DuckDB tables (copies of the "
                "DuckDB models named in each source's meta.duckdb_model) and the publish layer."
            ),
            "owner": {"name": "ciq"},
            "depends_on": [
                "ref('scored_units')",
                "ref('diagnostics_summary')",
                *[f"source('{SOURCE}', '{name}')" for name in published],
            ],
            "config": {"enabled": ON_POSTGRES},
        },
    ]


def _source_column(column: dict[str, Any], contract: Contract) -> dict[str, Any]:
    doc: dict[str, Any] = {"name": column["name"], "description": column.get("description", "")}
    if column["name"] in contract.column_names:
        doc["data_type"] = POSTGRES_TYPES[contract.column(column["name"]).type]
    tests = _portable(column.get("data_tests", []))
    if tests:
        doc["data_tests"] = tests
    return doc


def _portable(tests: list[Any]) -> list[Any]:
    """The tests that run on PostgreSQL, with custom names prefixed to stay unique."""
    kept = []
    for test in tests:
        name = test if isinstance(test, str) else next(iter(test))
        if name not in PORTABLE_TESTS:
            continue
        test = copy.deepcopy(test)
        if isinstance(test, dict) and "name" in test[name]:
            test[name]["name"] = f"{SOURCE}_{test[name]['name']}"
        kept.append(test)
    return kept


def _log_tests(name: str) -> dict[str, Any]:
    if name == "table_name":
        return {"data_tests": ["unique", "not_null"]}
    if name == "mode":
        return {
            "data_tests": [{"accepted_values": {"arguments": {"values": ["replace", "upsert"]}}}]
        }
    return {}

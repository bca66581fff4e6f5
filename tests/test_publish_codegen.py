"""The generated publish YAML and the type mappings derive from the contract (no dbt run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from loaders.contract import DUCKDB_TYPES, load_contract
from loaders.dbt_codegen import causal_yaml
from loaders.errors import PublishError
from loaders.postgres_types import POSTGRES_TYPES, dbt_data_type, pg_column
from loaders.publish_codegen import (
    PORTABLE_TESTS,
    disable_python_models_on_postgres,
    models_yaml,
    sources_yaml,
)
from loaders.publish_settings import publish_schema
from loaders.settings import Paths

REPO = Path(__file__).resolve().parents[1]


def name_of(test: Any) -> str:
    return test if isinstance(test, str) else next(iter(test))


def test_the_publish_source_mirrors_every_causal_model_with_portable_tests() -> None:
    contract = load_contract(REPO / "contracts" / "events.yml")
    causal = causal_yaml(contract)
    source = sources_yaml(contract, causal)["sources"][0]
    tables = {table["name"]: table for table in source["tables"]}
    assert set(tables) == {model["name"] for model in causal["models"]} | {"ciq_published_tables"}
    ready = tables["causal_ready"]
    assert [column["name"] for column in ready["columns"]] == list(contract.causal_columns)
    for column in ready["columns"]:
        declared = contract.column(column["name"])
        assert column["data_type"] == POSTGRES_TYPES[declared.type]
        if declared.not_null:
            assert "not_null" in column["data_tests"]
    gender = {c["name"]: c for c in ready["columns"]}["gender"]["data_tests"]
    assert {"accepted_values": {"arguments": {"values": ["M", "F", "U"]}}} in gender
    key = {"ciq_unique_combination": {"arguments": {"columns": list(contract.primary_key)}}}
    assert key in ready["data_tests"]
    for table in source["tables"][:-1]:
        names = [name_of(test) for test in table["data_tests"]]
        assert "ciq_publish_parity" in names  # every moved table: row-count parity
        for column in table["columns"]:
            assert {name_of(test) for test in column.get("data_tests", [])} <= PORTABLE_TESTS
        assert set(names) <= PORTABLE_TESTS | {"ciq_publish_parity"}  # no DuckDB-only gates
    assert source["schema"] == "{{ var('ciq_publish_schema', 'events') }}"


def test_the_publish_models_take_their_columns_and_types_from_the_contract(
    tmp_path: Path,
) -> None:
    contract_file = tmp_path / "stores.yml"
    contract_file.write_text(
        "id_col: store_code\ntreatment_col: has_loyalty\noutcome_col: weekly_sales\n"
        "covariate_cols: [region, staff]\nprimary_key: [store_code, region]\n"
        "types: {store_code: string, region: category, has_loyalty: int8, "
        "weekly_sales: float64, staff: int32}\n"
    )
    contract = load_contract(contract_file)
    document = models_yaml(contract, causal_yaml(contract))
    scored = document["models"][0]
    columns = {column["name"]: column["data_type"] for column in scored["columns"]}
    assert columns == {
        "store_code": "text",
        "region": "text",
        "has_loyalty": "smallint",
        "weekly_sales": "double precision",
        "staff": "integer",
        "propensity_score": "double precision",
        "ipw_weight": "double precision",
    }
    key = {"ciq_unique_combination": {"arguments": {"columns": ["store_code", "region"]}}}
    assert key in scored["data_tests"]
    exposures = {exposure["name"]: exposure for exposure in document["exposures"]}
    assert exposures["postgres_publish"]["config"] == {"enabled": "{{ target.type != 'postgres' }}"}
    assert "ref('propensity_scores')" in exposures["postgres_publish"]["depends_on"]


def test_python_models_are_disabled_on_postgres_and_sql_models_are_not() -> None:
    contract = load_contract(REPO / "contracts" / "events.yml")
    document = causal_yaml(contract)
    disable_python_models_on_postgres([document], Paths(REPO))
    enabled = {m["name"]: m.get("config", {}).get("enabled") for m in document["models"]}
    python = {path.stem for path in (REPO / "dbt_project" / "models").rglob("*.py")}
    assert python and python <= set(enabled)
    for name, value in enabled.items():
        expected = "{{ target.type != 'postgres' }}" if name in python else None
        assert value == expected, name


@pytest.mark.parametrize("contract_type", sorted(DUCKDB_TYPES))
def test_contract_and_duckdb_type_mappings_agree(contract_type: str) -> None:
    contract = load_contract(REPO / "contracts" / "events.yml")
    duckdb_type = DUCKDB_TYPES[contract_type]
    from_duckdb = pg_column("t", "not_in_contract", duckdb_type, contract)
    assert from_duckdb.pg_type == POSTGRES_TYPES[contract_type]
    rendered = dbt_data_type(contract_type)
    if duckdb_type.lower() == POSTGRES_TYPES[contract_type]:
        assert rendered == duckdb_type.lower()
    else:
        assert rendered == (
            f"{{{{ '{duckdb_type.lower()}' if target.type == 'duckdb' "
            f"else '{POSTGRES_TYPES[contract_type]}' }}}}"
        )


def test_publish_schema_names_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CIQ_PUBLISH_SCHEMA", raising=False)
    assert publish_schema("events", None) == "events"
    assert publish_schema("events", "api") == "api"
    monkeypatch.setenv("CIQ_PUBLISH_SCHEMA", "reporting")
    assert publish_schema("events", None) == "reporting"
    with pytest.raises(PublishError, match="publish schema 'drop table'"):
        publish_schema("events", "drop table")

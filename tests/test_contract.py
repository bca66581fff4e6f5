"""Contract parsing and validation: the team's example loads as is; mistakes are clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from loaders.contract import load_contract
from loaders.errors import ContractError

TEAM_EXAMPLE = """\
id_col: customer_id
time_col: event_time          # optional for cross-sectional data
treatment_col: treated        # 0/1
outcome_col: y
covariate_cols: [age, gender, rfm_score, prior_7d_spend, web_session_cnt]
types:
  customer_id: int64
  event_time: datetime
  treated: int8
  y: float64
  age: int16
  gender: category
  rfm_score: float32
  prior_7d_spend: float32
  web_session_cnt: int16
constraints:
  not_null: [customer_id, event_time, treated]
  categories:
    gender: ["M", "F", "U"]
  ranges:
    age: [0, 110]
    rfm_score: [0.0, 1000.0]
    prior_7d_spend: [0.0, 1.0e6]
    web_session_cnt: [0, 10000]
leakage_forbidden_cols: ["future_*", "*_post"]
"""


def write(tmp_path: Path, text: str, name: str = "shop.yml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_team_example_loads_as_is(tmp_path: Path) -> None:
    contract = load_contract(write(tmp_path, TEAM_EXAMPLE))
    assert contract.dataset == "shop"
    assert contract.primary_key == ("customer_id", "event_time")
    assert contract.estimand == "ate"
    assert contract.column("prior_7d_spend").value_range == (0.0, 1_000_000.0)
    assert contract.column("gender").categories == ("M", "F", "U")
    assert contract.column("treated").role == "treatment"
    assert contract.column("customer_id").not_null
    assert not contract.column("age").not_null
    assert contract.causal_columns[:4] == ("customer_id", "event_time", "treated", "y")
    assert contract.thresholds.min_overlap_share == 0.6
    assert contract.max_rejected_rows == 0


def test_bundled_contract_has_ciq_additions() -> None:
    contract = load_contract(Path(__file__).parents[1] / "contracts" / "events.yml")
    age = contract.column("age")
    assert age.sentinels == (-1,)
    assert contract.column("gender").normalisation.fallback == "U"
    assert contract.column("prior_7d_spend").fill == 0
    assert contract.max_rejected_rows == 25


def test_time_col_is_optional_and_key_defaults_to_id(tmp_path: Path) -> None:
    text = TEAM_EXAMPLE.replace("time_col: event_time", "time_col:")
    contract = load_contract(write(tmp_path, text))
    assert contract.time_col is None
    assert contract.primary_key == ("customer_id",)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("treatment_col: treated", "treatmnt_col: treated"), "unknown key 'treatmnt_col'"),
        (
            ("treatment_col: treated", "treatment_col: treated\nestimnd: att"),
            "did you mean 'estimand'",
        ),
        (("outcome_col: y", "outcome_col: revenue"), "outcome_col names column 'revenue'"),
        (("[age, gender,", "[age, income, gender,"), "covariate_cols names column 'income'"),
        (("age: int16", "age: integer"), "unknown type 'integer'"),
        (('gender: ["M", "F", "U"]', 'sex: ["M"]'), "constraints.categories names column 'sex'"),
        (("age: [0, 110]", "age: [110, 0]"), "low 110.0 above high 0.0"),
        (
            ("  y: float64", "  y: float64\n  y_post: float64"),
            "matches the leakage pattern '*_post'",
        ),
        (("treated: int8", "treated: string"), "must be an integer (0/1) or bool"),
        (("[age, gender,", "[treated, gender,"), "covariate 'treated' is also"),
    ],
)
def test_contract_mistakes_are_clear_errors(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    old, new = change
    assert old in TEAM_EXAMPLE
    path = write(tmp_path, TEAM_EXAMPLE.replace(old, new, 1))
    with pytest.raises(ContractError) as error:
        load_contract(path)
    assert message in str(error.value)
    assert str(path) in str(error.value)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("estimand: atc\n", "estimand must be one of ate, att"),
        ("thresholds: {overlap_bounds: [0.9, 0.1]}\n", "0 < low < high < 1"),
        ("primary_key: [customer_id, nope]\n", "primary_key names column 'nope'"),
        ("rejects: {max_rows: -1}\n", "rejects.max_rows must be a whole number"),
        ("normalise: {gender: {case: title}}\n", "case must be upper, lower or none"),
        ("columns: {ghost: {description: x}}\n", "unknown key 'ghost' in columns"),
    ],
)
def test_ciq_keys_are_validated(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(ContractError, match=message.replace("(", r"\(").replace("[", r"\[")):
        load_contract(write(tmp_path, TEAM_EXAMPLE + extra))


def test_dataset_name_must_be_a_schema_name(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match="must be lower-case"):
        load_contract(write(tmp_path, TEAM_EXAMPLE, name="My-Data.yml"))


def test_not_a_mapping_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match="not valid YAML"):
        load_contract(write(tmp_path, "id_col: [unclosed\n"))
    with pytest.raises(ContractError, match="a contract is a YAML mapping"):
        load_contract(write(tmp_path, "- just a list\n"))

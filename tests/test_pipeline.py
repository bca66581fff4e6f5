"""End to end with real dbt on a real DuckDB file: the sample, the gates, a second dataset."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from loaders.contract import contract_for
from loaders.dbt_build import build, dbt_args, run_dbt
from loaders.errors import BuildError
from loaders.sample_data import generate_events
from loaders.settings import Paths
from loaders.staging import load_dataset


def query(paths: Paths, sql: str) -> pd.DataFrame:
    with duckdb.connect(str(paths.warehouse)) as con:
        return con.execute(sql).fetchdf()


def load_and_build(paths: Paths, dataset: str = "events") -> None:
    contract = contract_for(dataset, paths.contracts)
    load_dataset(contract, paths, quiet=True)
    build(contract, paths)


def test_sample_builds_cleans_dedupes_and_passes_the_gates(project: Paths, ciq) -> None:
    assert ciq("init", "events")[0] == 0
    code, out, _ = ciq("load", "events", "--quiet")
    assert code == 0, out
    code, out, _ = ciq("build", "events")
    assert code == 0
    assert "overlap  PASS" in out
    ready = query(project, "select * from events.causal_ready")
    contract = contract_for("events", project.contracts)
    assert tuple(ready.columns) == contract.causal_columns
    assert not ready.duplicated(["customer_id", "event_time"]).any()
    assert ready["age"].isna().any() and (ready["age"].dropna() >= 0).all()  # -1 -> null
    assert set(ready["gender"]) <= {"M", "F", "U"}
    assert ready["prior_7d_spend"].notna().all()
    staged = query(
        project,
        f"select * from read_parquet('{project.staged_raw('events')}/*.parquet')",
    )
    assert len(ready) < len(staged)  # duplicate keys across files were merged
    latest = staged.sort_values(["_source_file", "_source_row"]).drop_duplicates(
        ["customer_id", "event_time"], keep="last"
    )
    merged = ready.merge(latest, on=["customer_id", "event_time"], suffixes=("", "_staged"))
    assert len(merged) == len(ready)
    assert np.allclose(merged["y"], merged["y_staged"])  # the later file's correction wins
    overlap = query(project, "select * from events.overlap_diagnostics")
    assert bool(overlap.loc[0, "is_overlap_sufficient"])
    balance = query(project, "select * from events.covariate_balance")
    assert balance["is_balanced"].all()


def independent_scores(ready: pd.DataFrame) -> np.ndarray:
    """Propensity scores from statsmodels on a design built here, independently of ciq."""
    numeric = ["age", "rfm_score", "prior_7d_spend", "web_session_cnt"]
    columns = []
    for name in numeric:
        values = ready[name].astype(float)
        values = values.fillna(values.median())
        columns.append((values - values.mean()) / values.std(ddof=0))
    dummies = pd.get_dummies(ready["gender"].astype(str), drop_first=True, dtype=float)
    design = pd.concat([*columns, dummies], axis=1).to_numpy()
    fit = sm.Logit(ready["treated"].astype(float).to_numpy(), sm.add_constant(design)).fit(disp=0)
    return fit.predict(sm.add_constant(design))


def independent_smd(x: np.ndarray, t: np.ndarray, w: np.ndarray, estimand: str) -> float:
    keep = ~np.isnan(x)
    x, t, w = x[keep], t[keep], w[keep]
    treated, control = t == 1, t == 0
    if estimand == "ate":
        sd = np.sqrt((np.var(x[treated], ddof=1) + np.var(x[control], ddof=1)) / 2)
    else:
        sd = np.std(x[treated], ddof=1)
    diff = np.average(x[treated], weights=w[treated]) - np.average(x[control], weights=w[control])
    return float(diff / sd)


@pytest.mark.parametrize("estimand", ["ate", "att"])
def test_models_match_an_independent_computation(project: Paths, ciq, estimand: str) -> None:
    ciq("init", "events")
    contract = contract_for("events", project.contracts)
    load_dataset(contract, project, quiet=True)
    from loaders.dbt_codegen import generate

    generate(contract, project)
    outcome = run_dbt(
        project, dbt_args(project, "build", "--vars", f"{{ciq_estimand: {estimand}}}")
    )
    assert outcome.success
    ready = query(project, "select * from events.causal_ready order by customer_id, event_time")
    scores = query(
        project, "select * from events.propensity_scores order by customer_id, event_time"
    )
    expected = independent_scores(ready)
    assert np.allclose(scores["propensity_score"], expected, atol=1e-6, rtol=0)
    t = ready["treated"].to_numpy(float)
    if estimand == "ate":
        weights = t / expected + (1 - t) / (1 - expected)
    else:
        weights = t + (1 - t) * expected / (1 - expected)
    assert np.allclose(scores["ipw_weight"], weights, rtol=1e-6)
    balance = query(project, "select * from events.covariate_balance").set_index(
        ["covariate", "level"]
    )
    assert set(balance["estimand"]) == {estimand}
    for name in ["age", "rfm_score", "prior_7d_spend", "web_session_cnt"]:
        x = ready[name].to_numpy(float)
        row = (
            balance.loc[(name, None)] if (name, None) in balance.index else balance.xs(name).iloc[0]
        )
        assert row["smd"] == pytest.approx(
            independent_smd(x, t, np.ones_like(t), estimand), abs=1e-6
        )
        assert row["smd_weighted"] == pytest.approx(
            independent_smd(x, t, weights, estimand), abs=1e-6
        )
    for level in ["F", "M", "U"]:
        share = (ready["gender"] == level).to_numpy(float)
        treated = t == 1
        weighted = np.average(share[treated], weights=weights[treated]) - np.average(
            share[~treated], weights=weights[~treated]
        )
        assert balance.loc[("gender", level), "smd_weighted"] == pytest.approx(weighted, abs=1e-6)


def test_poor_overlap_fails_the_build_with_metric_value_and_threshold(project: Paths, ciq) -> None:
    generate_events(project.raw("events") / "poor.csv", 3000, scenario="poor_overlap", messy=False)
    assert ciq("load", "events", "--quiet")[0] == 0
    code, _, err = ciq("build", "events")
    assert code == 1
    assert "overlap_gate" in err
    assert "share_inside_bounds = 0." in err
    assert "is below the minimum 0.6" in err
    overlap = query(project, "select * from events.overlap_diagnostics")
    assert overlap.loc[0, "share_inside_bounds"] < 0.6


def test_residual_imbalance_fails_the_balance_gate(project: Paths) -> None:
    generate_events(project.raw("events") / "skewed.csv", 20000, scenario="imbalanced", messy=False)
    with pytest.raises(BuildError) as error:
        load_and_build(project)
    message = str(error.value)
    assert "balance_gate" in message
    assert "abs_smd_weighted exceeds the maximum 0.1" in message
    assert "overlap_gate" not in message
    worst = query(
        project,
        "select covariate from events.covariate_balance order by abs_smd_weighted desc limit 1",
    )
    assert worst.loc[0, "covariate"] in message


STORES_CONTRACT = """\
id_col: store_code
treatment_col: has_loyalty
outcome_col: weekly_sales
covariate_cols: [region, floor_area, staff]
primary_key: [store_code, region]
estimand: att
types:
  store_code: string
  region: category
  has_loyalty: int8
  weekly_sales: float64
  floor_area: float64
  staff: int32
constraints:
  not_null: [store_code, region, has_loyalty]
  categories:
    region: [north, south, east, west]
  ranges:
    staff: [0, 500]
leakage_forbidden_cols: ["*_after"]
normalise:
  region: {case: lower}
"""


def write_stores(folder: Path, seed: int, n: int, first: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    area = rng.gamma(4.0, 250.0, n)
    staff = rng.integers(3, 80, n)
    region = rng.choice(["north", "South", "EAST", "west"], n)
    logit = -0.5 + 0.001 * (area - 1000) + 0.01 * (staff - 40)
    treated = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    frame = pd.DataFrame(
        {
            "store_code": [f"S-{first + i:05d}" for i in range(n)],
            "region": region,
            "has_loyalty": treated,
            "weekly_sales": 1000 + 0.5 * area + 200 * treated + rng.normal(0, 50, n),
            "floor_area": area.round(1),
            "staff": staff,
        }
    )
    folder.mkdir(parents=True, exist_ok=True)
    return frame


def test_a_new_dataset_needs_only_a_contract_and_files(project: Paths, ciq) -> None:
    (project.contracts / "stores.yml").write_text(STORES_CONTRACT)
    raw = project.raw("stores")
    first = write_stores(raw, seed=1, n=1500)
    first.to_csv(raw / "stores_1.csv", index=False)
    correction = first.iloc[:10].copy()
    correction["weekly_sales"] = -1.0
    correction.to_csv(raw / "stores_2.csv", index=False)
    assert ciq("load", "stores", "--quiet")[0] == 0
    code, out, err = ciq("build", "stores")
    assert code == 0, err
    assert "stores: 1500 rows in stores.causal_ready" in out
    ready = query(project, "select * from stores.causal_ready")
    assert list(ready.columns) == [
        "store_code",
        "region",
        "has_loyalty",
        "weekly_sales",
        "floor_area",
        "staff",
    ]
    assert set(ready["region"]) == {"north", "south", "east", "west"}
    assert (
        ready.set_index("store_code").loc[correction["store_code"], "weekly_sales"] == -1.0
    ).all()
    balance = query(project, "select distinct estimand from stores.covariate_balance")
    assert balance["estimand"].tolist() == ["att"]
    tables = query(
        project,
        "select table_name from information_schema.tables where table_schema = 'stores' order by 1",
    )["table_name"].tolist()
    assert {"causal_ready", "covariate_balance", "overlap_diagnostics", "propensity_scores"} <= set(
        tables
    )

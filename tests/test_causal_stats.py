"""Tests for loaders.causal_stats against independent computations."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from loaders.causal_stats import (
    Covariate,
    covariate_balance,
    design_matrix,
    fit_propensity,
    ipw_weights,
    overlap_summary,
)

TOL = 1e-6
BALANCE_COLUMNS = [
    "covariate",
    "level",
    "kind",
    "mean_treated",
    "mean_control",
    "mean_treated_weighted",
    "mean_control_weighted",
    "sd_denominator",
    "smd",
    "smd_weighted",
    "abs_smd_weighted",
    "max_abs_smd",
    "is_balanced",
    "estimand",
]
NUMERIC_BALANCE_COLUMNS = BALANCE_COLUMNS[3:12]
SEGMENT_EFFECT = {"retail": 0.0, "smb": 0.6, "enterprise": -0.7}
SIM_COVARIATES = [
    Covariate("age", categorical=False),
    Covariate("spend", categorical=False),
    Covariate("tenure", categorical=False),
    Covariate("score", categorical=False),
    Covariate("segment", categorical=True),
]


def simulate(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Confounded data whose true propensity is logistic-linear in the raw covariates."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.normal(40.0, 10.0, n),
            "spend": rng.gamma(2.0, 50.0, n),
            "tenure": rng.exponential(3.0, n),
            "score": rng.uniform(0.0, 1.0, n),
            "segment": rng.choice(list(SEGMENT_EFFECT), size=n, p=[0.5, 0.3, 0.2]),
        }
    )
    linear = (
        -0.3
        + 0.05 * (frame["age"] - 40.0)
        + 0.008 * (frame["spend"] - 100.0)
        - 0.15 * frame["tenure"]
        + 1.0 * frame["score"]
        + frame["segment"].map(SEGMENT_EFFECT)
    ).to_numpy()
    treatment = (rng.random(n) < 1.0 / (1.0 + np.exp(-linear))).astype(np.int64)
    return frame, treatment


# --------------------------------------------------------------------------- fit_propensity


def test_fit_propensity_matches_statsmodels_logit() -> None:
    frame, treatment = simulate(5000, seed=11)
    features, names = design_matrix(frame, SIM_COVARIATES)
    assert names == ["age", "spend", "tenure", "score", "segment=retail", "segment=smb"]

    ps = fit_propensity(features, treatment)

    reference = sm.Logit(treatment, sm.add_constant(features)).fit(disp=0)
    expected = reference.predict(sm.add_constant(features))
    assert ps.dtype == np.float64
    assert ps.shape == (5000,)
    np.testing.assert_allclose(ps, expected, rtol=0, atol=TOL)
    # score equations of the (nearly unpenalised) MLE: residuals orthogonal to the design
    np.testing.assert_allclose(sm.add_constant(features).T @ (treatment - ps), 0.0, atol=1e-4)


def test_fit_propensity_without_features_is_the_treated_share() -> None:
    treatment = np.array([1, 0, 0, 1, 1, 0, 0, 0])
    ps = fit_propensity(np.empty((8, 0)), treatment)
    np.testing.assert_allclose(ps, np.full(8, 3 / 8), rtol=0, atol=TOL)


def test_fit_propensity_stays_finite_under_perfect_separation() -> None:
    x = np.linspace(-2.0, 2.0, 200)
    treatment = (x > 0).astype(int)
    ps = fit_propensity(x[:, None], treatment)
    assert np.all(np.isfinite(ps))
    assert np.all((ps > 0.0) & (ps < 1.0))
    assert ps[treatment == 1].min() > 0.9
    assert ps[treatment == 0].max() < 0.1
    assert np.all(np.diff(ps) >= 0)
    np.testing.assert_allclose(ps + ps[::-1], 1.0, atol=TOL)  # symmetric design, zero intercept


def test_fit_propensity_rejects_non_binary_treatment() -> None:
    with pytest.raises(ValueError, match="0/1"):
        fit_propensity(np.zeros((3, 1)), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="rows"):
        fit_propensity(np.zeros((3, 1)), np.array([0, 1]))


# --------------------------------------------------------------------------- design_matrix


def test_design_matrix_imputes_standardises_and_one_hot_encodes() -> None:
    frame = pd.DataFrame(
        {
            "age": [20.0, np.nan, 40.0, 90.0],
            "constant": [5.0, 5.0, 5.0, 5.0],
            "empty": [np.nan, np.nan, np.nan, np.nan],
            "color": ["b", "a", None, "b"],
            "code": [10, 9, 2, 10],
        }
    )
    covariates = [
        Covariate("age", categorical=False),
        Covariate("constant", categorical=False),
        Covariate("empty", categorical=False),
        Covariate("color", categorical=True),
        Covariate("code", categorical=True),
    ]

    matrix, names = design_matrix(frame, covariates)

    # age: median of (20, 40, 90) is 40 (the mean would be 50); then mean 47.5 and ddof=0 sd
    imputed_age = np.array([20.0, 40.0, 40.0, 90.0])
    sd_age = math.sqrt(((-27.5) ** 2 + 2 * (-7.5) ** 2 + 42.5**2) / 4)
    # levels sorted as strings: color "<NA>" < "a" < "b"; code "10" < "2" < "9"; first dropped
    expected = np.column_stack(
        [
            (imputed_age - 47.5) / sd_age,
            np.zeros(4),
            np.zeros(4),
            [0.0, 1.0, 0.0, 0.0],
            [1.0, 0.0, 0.0, 1.0],
            [0.0, 0.0, 1.0, 0.0],
            [0.0, 1.0, 0.0, 0.0],
        ]
    )
    assert names == ["age", "constant", "empty", "color=a", "color=b", "code=2", "code=9"]
    assert matrix.shape == (4, 7)
    np.testing.assert_allclose(matrix, expected, rtol=0, atol=TOL)
    assert matrix[:, 0].mean() == pytest.approx(0.0, abs=TOL)
    assert matrix[:, 0].std(ddof=0) == pytest.approx(1.0, abs=TOL)


def test_design_matrix_rejects_text_declared_numeric() -> None:
    frame = pd.DataFrame({"city": ["Oslo", "Rome"]})
    with pytest.raises(ValueError, match="categorical"):
        design_matrix(frame, [Covariate("city", categorical=False)])


# --------------------------------------------------------------------------- ipw_weights


def test_ipw_weights_follow_the_formulas() -> None:
    t = np.array([1, 1, 0, 0, 1, 0])
    ps = np.array([0.2, 0.8, 0.3, 0.9, 0.5, 0.05])
    ate = ipw_weights(t, ps, "ate")
    att = ipw_weights(t, ps, "att")
    np.testing.assert_allclose(ate, t / ps + (1 - t) / (1 - ps), rtol=TOL)
    np.testing.assert_allclose(att, t + (1 - t) * ps / (1 - ps), rtol=TOL)
    np.testing.assert_allclose(ate, [5.0, 1.25, 1 / 0.7, 10.0, 2.0, 1 / 0.95], rtol=TOL)
    np.testing.assert_allclose(att, [1.0, 1.0, 0.3 / 0.7, 9.0, 1.0, 0.05 / 0.95], rtol=TOL)


@pytest.mark.parametrize("estimand", ["atc", "ATE", "ato", ""])
def test_ipw_weights_reject_unknown_estimand(estimand: str) -> None:
    with pytest.raises(ValueError, match="estimand"):
        ipw_weights(np.array([1, 0]), np.array([0.5, 0.5]), estimand)


# --------------------------------------------------------------------------- overlap_summary

OVERLAP_KEYS = [
    "n_rows",
    "n_treated",
    "n_control",
    "overlap_lower",
    "overlap_upper",
    "share_inside_bounds",
    "mass_below_0_01",
    "mass_above_0_99",
    "min_ps_treated",
    "max_ps_treated",
    "min_ps_control",
    "max_ps_control",
    "min_overlap_share",
    "is_overlap_sufficient",
]


def test_overlap_summary_on_hand_made_scores() -> None:
    t = np.array([1, 1, 1, 0, 0, 0, 0, 0])
    # 0.1 and 0.9 sit exactly on the bounds and are NOT inside
    ps = np.array([0.1, 0.5, 0.995, 0.005, 0.9, 0.3, 0.2, 0.6])

    summary = overlap_summary(t, ps, lower=0.1, upper=0.9, min_share=0.5)

    assert list(summary) == OVERLAP_KEYS
    assert summary["n_rows"] == 8
    assert summary["n_treated"] == 3
    assert summary["n_control"] == 5
    assert summary["overlap_lower"] == 0.1
    assert summary["overlap_upper"] == 0.9
    assert summary["share_inside_bounds"] == pytest.approx(4 / 8)
    assert summary["mass_below_0_01"] == pytest.approx(1 / 8)
    assert summary["mass_above_0_99"] == pytest.approx(1 / 8)
    assert summary["min_ps_treated"] == pytest.approx(0.1)
    assert summary["max_ps_treated"] == pytest.approx(0.995)
    assert summary["min_ps_control"] == pytest.approx(0.005)
    assert summary["max_ps_control"] == pytest.approx(0.9)
    assert summary["min_overlap_share"] == 0.5
    assert summary["is_overlap_sufficient"] is True

    stricter = overlap_summary(t, ps, lower=0.1, upper=0.9, min_share=0.51)
    assert stricter["is_overlap_sufficient"] is False


def test_overlap_summary_with_an_empty_arm() -> None:
    t = np.array([1, 1, 1])
    ps = np.array([0.4, 0.5, 0.6])

    summary = overlap_summary(t, ps, lower=0.1, upper=0.9, min_share=0.5)

    assert list(summary) == OVERLAP_KEYS
    assert (summary["n_rows"], summary["n_treated"], summary["n_control"]) == (3, 3, 0)
    assert summary["share_inside_bounds"] == pytest.approx(1.0)
    assert summary["min_ps_treated"] == pytest.approx(0.4)
    assert summary["max_ps_treated"] == pytest.approx(0.6)
    assert math.isnan(summary["min_ps_control"])
    assert math.isnan(summary["max_ps_control"])
    assert summary["is_overlap_sufficient"] is False


# --------------------------------------------------------------------------- covariate_balance


def reference_balance(
    frame: pd.DataFrame,
    covariates: list[Covariate],
    t: np.ndarray,
    w: np.ndarray,
    estimand: str,
    threshold: float,
) -> pd.DataFrame:
    """Straightforward cobalt-style balance table written independently of the module."""
    treated = t == 1
    control = ~treated

    def arm_means(x: np.ndarray, in_t: np.ndarray, in_c: np.ndarray) -> dict[str, float]:
        return {
            "mean_treated": x[in_t].mean(),
            "mean_control": x[in_c].mean(),
            "mean_treated_weighted": np.average(x[in_t], weights=w[in_t]),
            "mean_control_weighted": np.average(x[in_c], weights=w[in_c]),
        }

    def proportion_row(name: str, level: str | None, kind: str, stats: dict) -> dict:
        return {
            "covariate": name,
            "level": level,
            "kind": kind,
            **stats,
            "sd_denominator": np.nan,
            "smd": stats["mean_treated"] - stats["mean_control"],
            "smd_weighted": stats["mean_treated_weighted"] - stats["mean_control_weighted"],
        }

    rows = []
    for cov in covariates:
        column = frame[cov.name]
        if cov.categorical:
            labels = np.array(["<NA>" if pd.isna(v) else str(v) for v in column], dtype=object)
            for level in sorted(set(labels)):
                indicator = (labels == level).astype(float)
                stats = arm_means(indicator, treated, control)
                rows.append(proportion_row(cov.name, level, "category", stats))
            continue
        x = column.to_numpy(dtype=float)
        observed = ~np.isnan(x)
        stats = arm_means(x, treated & observed, control & observed)
        if set(np.unique(x[observed]).tolist()) == {0.0, 1.0}:
            rows.append(proportion_row(cov.name, None, "binary", stats))
        else:
            var_t = np.var(x[treated & observed], ddof=1)
            var_c = np.var(x[control & observed], ddof=1)
            sd = np.sqrt((var_t + var_c) / 2) if estimand == "ate" else np.sqrt(var_t)
            rows.append(
                {
                    "covariate": cov.name,
                    "level": None,
                    "kind": "continuous",
                    **stats,
                    "sd_denominator": sd,
                    "smd": (stats["mean_treated"] - stats["mean_control"]) / sd,
                    "smd_weighted": (
                        stats["mean_treated_weighted"] - stats["mean_control_weighted"]
                    )
                    / sd,
                }
            )
        if not observed.all():
            indicator = (~observed).astype(float)
            stats = arm_means(indicator, treated, control)
            rows.append(proportion_row(cov.name, "<NA>", "missing", stats))
    for row in rows:
        row["abs_smd_weighted"] = abs(row["smd_weighted"])
        row["max_abs_smd"] = threshold
        row["is_balanced"] = row["abs_smd_weighted"] <= threshold
        row["estimand"] = estimand
    return with_levels(pd.DataFrame(rows), [row["level"] for row in rows])


def with_levels(table: pd.DataFrame, levels: list[str | None]) -> pd.DataFrame:
    """Set the level column keeping None (pandas turns None into NaN when building frames)."""
    table["level"] = pd.Series(levels, index=table.index, dtype=object)
    return table


def assert_balance_equal(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(actual.columns) == BALANCE_COLUMNS
    assert len(actual) == len(expected)
    for column in ("covariate", "level", "kind", "estimand"):
        assert actual[column].tolist() == expected[column].tolist(), column
    assert actual["is_balanced"].tolist() == expected["is_balanced"].tolist()
    for column in NUMERIC_BALANCE_COLUMNS:
        np.testing.assert_allclose(
            actual[column].to_numpy(dtype=float),
            expected[column].to_numpy(dtype=float),
            rtol=TOL,
            atol=TOL,
            err_msg=column,
        )


def balance_frame(n: int, seed: int) -> tuple[pd.DataFrame, list[Covariate], np.ndarray]:
    rng = np.random.default_rng(seed)
    t = (rng.random(n) < 0.35).astype(int)
    spend = rng.gamma(2.0, 40.0, n) + 15.0 * t
    spend[rng.random(n) < np.where(t == 1, 0.05, 0.15)] = np.nan
    region = rng.choice(np.array(["north", "south", None], dtype=object), size=n)
    frame = pd.DataFrame(
        {
            "age": rng.normal(40.0, 8.0, n) + 3.0 * t,
            "churned": (rng.random(n) < np.where(t == 1, 0.3, 0.2)).astype(int),
            "segment": rng.choice(["retail", "smb", "enterprise"], size=n),
            "spend": spend,
            "region": region,
        }
    )
    covariates = [
        Covariate("age", categorical=False),
        Covariate("churned", categorical=False),
        Covariate("segment", categorical=True),
        Covariate("spend", categorical=False),
        Covariate("region", categorical=True),
    ]
    return frame, covariates, t


@pytest.mark.parametrize("estimand", ["ate", "att"])
def test_covariate_balance_matches_reference_implementation(estimand: str) -> None:
    frame, covariates, t = balance_frame(3000, seed=5)
    weights = np.random.default_rng(6).gamma(2.0, 1.0, len(frame))

    actual = covariate_balance(frame, covariates, t, weights, estimand=estimand, max_abs_smd=0.1)
    expected = reference_balance(frame, covariates, t, weights, estimand, 0.1)

    assert actual["kind"].tolist() == [
        "continuous",
        "binary",
        "category",
        "category",
        "category",
        "continuous",
        "missing",
        "category",
        "category",
        "category",
    ]
    assert actual["level"].tolist()[:3] == [None, None, "enterprise"]
    assert actual["level"].tolist()[6:] == ["<NA>", "<NA>", "north", "south"]
    assert_balance_equal(actual, expected)


SIX_ROWS = pd.DataFrame(
    {
        "x": [1.0, 3.0, 2.0, 4.0, 6.0, 8.0],
        "b": [1, 0, 1, 1, 0, 0],
        "m": [1.0, 5.0, np.nan, 4.0, 6.0, np.nan],
        "g": ["a", "b", "a", "c", "c", "b"],
    }
)
SIX_T = np.array([1, 1, 0, 0, 0, 0])
SIX_W = np.array([1.0, 3.0, 1.0, 1.0, 1.0, 2.0])
SIX_COVARIATES = [
    Covariate("x", categorical=False),
    Covariate("b", categorical=False),
    Covariate("m", categorical=False),
    Covariate("g", categorical=True),
]


@pytest.mark.parametrize(
    ("estimand", "sd_x", "sd_m"),
    [
        # ATE: pooled sqrt((var_t + var_c) / 2) with ddof=1 -> x: (2 + 20/3)/2, m: (8 + 2)/2
        ("ate", math.sqrt(13 / 3), math.sqrt(5.0)),
        # ATT: treated-group sd with ddof=1 -> x: var 2, m: var 8
        ("att", math.sqrt(2.0), math.sqrt(8.0)),
    ],
)
def test_covariate_balance_hand_computed_six_rows(estimand: str, sd_x: float, sd_m: float) -> None:
    table = covariate_balance(
        SIX_ROWS, SIX_COVARIATES, SIX_T, SIX_W, estimand=estimand, max_abs_smd=0.1
    )

    # treated rows 0-1 (weights 1, 3); control rows 2-5 (weights 1, 1, 1, 2)
    levels = [None, None, None, "<NA>", "a", "b", "c"]
    expected = pd.DataFrame(
        [
            ("x", None, "continuous", 2.0, 5.0, 10 / 4, 28 / 5, sd_x, -3 / sd_x, -3.1 / sd_x),
            ("b", None, "binary", 0.5, 0.5, 1 / 4, 2 / 5, np.nan, 0.0, -0.15),
            ("m", None, "continuous", 3.0, 5.0, 16 / 4, 10 / 2, sd_m, -2 / sd_m, -1 / sd_m),
            ("m", "<NA>", "missing", 0.0, 0.5, 0.0, 3 / 5, np.nan, -0.5, -0.6),
            ("g", "a", "category", 0.5, 0.25, 1 / 4, 1 / 5, np.nan, 0.25, 0.05),
            ("g", "b", "category", 0.5, 0.25, 3 / 4, 2 / 5, np.nan, 0.25, 0.35),
            ("g", "c", "category", 0.0, 0.5, 0.0, 2 / 5, np.nan, -0.5, -0.4),
        ],
        columns=BALANCE_COLUMNS[:10],
    )
    expected = with_levels(expected, levels)
    expected["abs_smd_weighted"] = expected["smd_weighted"].abs()
    expected["max_abs_smd"] = 0.1
    expected["is_balanced"] = [False, False, False, False, True, False, False]
    expected["estimand"] = estimand

    assert_balance_equal(table, expected)
    assert table["is_balanced"].dtype == bool


def test_covariate_balance_zero_sd_denominator() -> None:
    frame = pd.DataFrame({"same": [4.0, 4.0, 4.0, 4.0], "split": [3.0, 3.0, 2.0, 2.0]})
    covariates = [Covariate("same", categorical=False), Covariate("split", categorical=False)]
    table = covariate_balance(
        frame, covariates, np.array([1, 1, 0, 0]), np.ones(4), estimand="ate", max_abs_smd=0.1
    )
    assert table["sd_denominator"].tolist() == [0.0, 0.0]
    assert table["smd"].tolist() == [0.0, math.inf]
    assert table["smd_weighted"].tolist() == [0.0, math.inf]
    assert table["is_balanced"].tolist() == [True, False]


def test_covariate_balance_rejects_unknown_estimand() -> None:
    with pytest.raises(ValueError, match="estimand"):
        covariate_balance(SIX_ROWS, SIX_COVARIATES, SIX_T, SIX_W, estimand="atc", max_abs_smd=0.1)


# --------------------------------------------------------------------------- end to end


@pytest.mark.parametrize("estimand", ["ate", "att"])
def test_ipw_from_well_specified_model_removes_imbalance(estimand: str) -> None:
    frame, treatment = simulate(40_000, seed=3)
    features, _ = design_matrix(frame, SIM_COVARIATES)
    ps = fit_propensity(features, treatment)
    weights = ipw_weights(treatment, ps, estimand)

    table = covariate_balance(
        frame, SIM_COVARIATES, treatment, weights, estimand=estimand, max_abs_smd=0.05
    )

    assert table["smd"].abs().max() > 0.2
    assert table["abs_smd_weighted"].max() < 0.05
    assert table["is_balanced"].all()

"""Variance ratios, KS statistics, weights and Crump trimming against independent computations.

Every expected value is computed here with numpy/scipy from its textbook definition, never by
calling the code under test.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

from loaders.balance_stats import ks_statistics, variance_ratios, weighted_ks, weighted_variance
from loaders.causal_stats import Covariate
from loaders.dbt_python import DiagnosticThresholds
from loaders.dbt_python import ks_statistics as ks_model
from loaders.dbt_python import trimming_bounds as trimming_model
from loaders.dbt_python import variance_ratios as variance_model
from loaders.dbt_python import weight_diagnostics as weights_model
from loaders.diagnostics_yaml import DIAGNOSTIC_DEFAULTS
from loaders.weights_stats import crump_alpha, kish_ess, top_share, trimming_summary, weight_summary

COVARIATES = (
    Covariate("age", False),
    Covariate("income", False),
    Covariate("is_member", False),
    Covariate("region", True),
)


@pytest.fixture(scope="module")
def sample() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """A frame with continuous (one with missing values), binary and categorical covariates."""
    rng = np.random.default_rng(11)
    n = 600
    age = rng.normal(45, 12, n).round()
    income = rng.lognormal(10, 0.6, n)
    member = rng.integers(0, 2, n).astype(float)
    region = rng.choice(["north", "south", "east"], n, p=[0.5, 0.3, 0.2])
    logit = -0.3 + 0.04 * (age - 45) + 0.5 * member + 0.4 * (region == "east")
    treated = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    age[rng.random(n) < 0.08] = np.nan
    frame = pd.DataFrame({"age": age, "income": income, "is_member": member, "region": region})
    weights = rng.gamma(2.0, 1.0, n) + 0.1
    return frame, treated, weights


def cobalt_weighted_variance(x: np.ndarray, w: np.ndarray) -> float:
    """numpy's reliability-weighted covariance with ddof=1 is cobalt's unbiased weighted var."""
    return float(np.cov(x, aweights=w, ddof=1))


def brute_force_ks(x: np.ndarray, t: np.ndarray, w: np.ndarray) -> float:
    """Weighted ECDFs of both arms evaluated at every observed value."""
    grid = np.unique(x)
    treated, control = t == 1, t == 0
    below = x[None, :] <= grid[:, None]
    f_t = (below[:, treated] * w[treated]).sum(axis=1) / w[treated].sum()
    f_c = (below[:, control] * w[control]).sum(axis=1) / w[control].sum()
    return float(np.abs(f_t - f_c).max())


def test_weighted_variance_is_cobalts_and_unweighted_is_ddof_1() -> None:
    rng = np.random.default_rng(3)
    x, w = rng.normal(size=50), rng.uniform(0.2, 3.0, 50)
    assert weighted_variance(x, w) == pytest.approx(cobalt_weighted_variance(x, w), rel=1e-12)
    assert weighted_variance(x, np.ones(50)) == pytest.approx(np.var(x, ddof=1), rel=1e-12)
    assert math.isnan(weighted_variance(x[:1], w[:1]))


def test_variance_ratios_match_numpy(sample) -> None:
    frame, treated, weights = sample
    table = variance_ratios(frame, COVARIATES, treated, weights, lower=0.5, upper=2.0)
    assert table["covariate"].tolist() == ["age", "income"]  # binary and categorical: no ratio
    for row in table.itertuples(index=False):
        x = frame[row.covariate].to_numpy(float)
        keep = ~np.isnan(x)
        t, c = keep & (treated == 1), keep & (treated == 0)
        expected = np.var(x[t], ddof=1) / np.var(x[c], ddof=1)
        expected_w = cobalt_weighted_variance(x[t], weights[t]) / cobalt_weighted_variance(
            x[c], weights[c]
        )
        assert row.n_treated == t.sum() and row.n_control == c.sum()
        assert row.variance_ratio == pytest.approx(expected, rel=1e-10)
        assert row.variance_ratio_weighted == pytest.approx(expected_w, rel=1e-10)
        assert row.is_within_bounds == (0.5 <= expected_w <= 2.0)
        assert row.is_within_bounds_unweighted == (0.5 <= expected <= 2.0)


def test_variance_ratio_flags_outside_bounds() -> None:
    rng = np.random.default_rng(5)
    treated = np.repeat([1.0, 0.0], 200)
    x = np.concatenate([rng.normal(0, 3, 200), rng.normal(0, 1, 200)])  # ratio about 9
    table = variance_ratios(pd.DataFrame({"x": x}), [Covariate("x", False)], treated, np.ones(400))
    assert table.loc[0, "variance_ratio"] > 2
    assert not table.loc[0, "is_within_bounds"]
    assert not table.loc[0, "is_within_bounds_unweighted"]


def test_unweighted_ks_matches_scipy_and_weighted_matches_brute_force(sample) -> None:
    frame, treated, weights = sample
    table = ks_statistics(frame, COVARIATES, treated, weights, max_ks=0.1)
    terms = list(zip(table["covariate"], table["level"], table["kind"], strict=True))
    assert terms == [
        ("age", None, "continuous"),
        ("age", "<NA>", "missing"),
        ("income", None, "continuous"),
        ("is_member", None, "binary"),
        ("region", "east", "category"),
        ("region", "north", "category"),
        ("region", "south", "category"),
    ]
    for name in ("age", "income", "is_member"):
        x = frame[name].to_numpy(float)
        keep = ~np.isnan(x)
        xs, ts, ws = x[keep], treated[keep], weights[keep]
        row = table[(table["covariate"] == name) & table["level"].isna()].iloc[0]
        unweighted = stats.ks_2samp(xs[ts == 1], xs[ts == 0]).statistic
        assert row["ks_statistic"] == pytest.approx(unweighted, abs=1e-12)
        assert row["ks_statistic_weighted"] == pytest.approx(brute_force_ks(xs, ts, ws), abs=1e-12)
    for level in ("east", "north", "south"):
        share = (frame["region"] == level).to_numpy(float)
        t = treated == 1
        diff = np.average(share[t], weights=weights[t]) - np.average(share[~t], weights=weights[~t])
        row = table[(table["covariate"] == "region") & (table["level"] == level)].iloc[0]
        assert row["ks_statistic_weighted"] == pytest.approx(abs(diff), abs=1e-12)
        assert row["is_within_threshold"] == (abs(diff) <= 0.1)
    missing = np.isnan(frame["age"].to_numpy(float)).astype(float)
    row = table[(table["covariate"] == "age") & (table["level"] == "<NA>")].iloc[0]
    assert row["ks_statistic"] == pytest.approx(
        abs(missing[treated == 1].mean() - missing[treated == 0].mean()), abs=1e-12
    )


def test_weighted_ks_is_nan_without_weight_in_an_arm() -> None:
    assert math.isnan(weighted_ks(np.array([1.0, 2.0]), np.array([True, True]), np.ones(2)))


def test_kish_ess_and_top_share_match_their_definitions() -> None:
    rng = np.random.default_rng(8)
    w = rng.pareto(2.5, 1234) + 1.0
    p = w / w.sum()
    assert kish_ess(w) == pytest.approx(1.0 / np.sum(p**2), rel=1e-12)
    assert kish_ess(np.ones(10)) == pytest.approx(10.0)
    k, share = top_share(w)
    assert k == 13  # ceil(12.34)
    assert share == pytest.approx(np.sort(w)[::-1][:13].sum() / w.sum(), rel=1e-12)
    assert top_share(np.ones(100)) == (1, pytest.approx(0.01))


def test_weight_summary_per_arm(sample) -> None:
    _, treated, weights = sample
    table = weight_summary(treated, weights).set_index("arm")
    for arm, member in (("treated", treated == 1), ("control", treated == 0)):
        w = weights[member]
        row = table.loc[arm]
        assert row["n_units"] == member.sum()
        assert row["effective_sample_size"] == pytest.approx(w.sum() ** 2 / (w**2).sum())
        assert row["design_effect"] == pytest.approx(member.sum() * (w**2).sum() / w.sum() ** 2)
        assert row["weight_max"] == pytest.approx(w.max())
        k = math.ceil(0.01 * member.sum())
        assert row["top_1pct_weight_share"] == pytest.approx(np.sort(w)[-k:].sum() / w.sum())


def crump_uniform_alpha() -> float:
    """Population alpha for ps ~ Uniform(0, 1): E[g | alpha <= ps <= 1-alpha] has a closed form,
    2 log((1-a)/a) / (1-2a), so alpha solves 1/(a(1-a)) = 4 log((1-a)/a) / (1-2a)."""

    def equation(a: float) -> float:
        return 1 / (a * (1 - a)) - 4 * math.log((1 - a) / a) / (1 - 2 * a)

    return optimize.brentq(equation, 1e-6, 0.499)


def test_crump_alpha_matches_the_population_solution_for_uniform_scores() -> None:
    n = 200_000
    ps = (np.arange(n) + 0.5) / n  # the Uniform(0,1) quantiles
    assert crump_alpha(ps) == pytest.approx(crump_uniform_alpha(), abs=2e-4)


def test_crump_alpha_solves_the_fixed_point_and_is_the_smallest_solution() -> None:
    rng = np.random.default_rng(21)
    ps = 1 / (1 + np.exp(-rng.normal(0, 2.0, 3000)))
    alpha = crump_alpha(ps)
    gamma = 1 / (alpha * (1 - alpha))
    g = 1 / (ps * (1 - ps))
    assert gamma == pytest.approx(2 * g[g <= gamma].mean(), rel=1e-9)
    # every gamma' below it has gamma' < 2 E[g | g <= gamma'] (scan all sample cut points)
    for cut in np.sort(g):
        if cut >= gamma:
            break
        assert cut < 2 * g[g <= cut].mean()
    kept = (ps >= alpha) & (ps <= 1 - alpha)
    assert np.array_equal(kept, g <= gamma * (1 + 1e-12))


def test_crump_alpha_is_zero_when_scores_are_well_inside() -> None:
    rng = np.random.default_rng(2)
    ps = rng.uniform(0.3, 0.7, 500)
    g = 1 / (ps * (1 - ps))
    assert g.max() <= 2 * g.mean()
    assert crump_alpha(ps) == 0.0


def test_trimming_summary_counts_rows_outside_the_bounds_per_arm() -> None:
    rng = np.random.default_rng(4)
    ps = 1 / (1 + np.exp(-rng.normal(0, 2.5, 2000)))
    treated = (rng.random(2000) < ps).astype(float)
    table = trimming_summary(treated, ps, fixed_lower=0.1, fixed_upper=0.9).set_index("rule")
    alpha = table.loc["crump_optimal", "lower_bound"]
    for rule, low, high in (("crump_optimal", alpha, 1 - alpha), ("fixed", 0.1, 0.9)):
        outside = (ps < low) | (ps > high)
        row = table.loc[rule]
        assert row["n_removed_treated"] == (outside & (treated == 1)).sum()
        assert row["n_removed_control"] == (outside & (treated == 0)).sum()
        assert row["share_removed"] == pytest.approx(outside.mean())
    assert 0 < alpha < 0.5


def test_dbt_functions_check_their_output_and_read_the_var_thresholds(sample) -> None:
    frame, treated, weights = sample
    ready = frame.assign(unit_id=np.arange(len(frame)), treated=treated)
    ps = np.clip(1 / weights, 0.05, 0.95)
    scores = pd.DataFrame(
        {"unit_id": ready["unit_id"], "treated": treated, "propensity_score": ps}
    ).assign(ipw_weight=weights)
    settings = {
        "primary_key": ["unit_id"],
        "treatment_col": "treated",
        "covariates": [{"name": c.name, "categorical": c.categorical} for c in COVARIATES],
        "estimand": "ate",
        "overlap_lower": 0.05,
        "overlap_upper": 0.95,
        "min_overlap_share": 0.6,
        "max_abs_smd": 0.1,
        **{name: str(value) for name, value in DIAGNOSTIC_DEFAULTS.items()},
        "max_ks": "0.02",
    }
    shuffled = ready.sample(frac=1.0, random_state=1)  # matched on the key, not on the order
    ks = ks_model(shuffled, scores, settings)
    assert set(ks["max_ks"]) == {0.02}
    expected = ks_statistics(frame, COVARIATES, treated, weights, max_ks=0.02)
    assert np.allclose(ks["ks_statistic_weighted"], expected["ks_statistic_weighted"])
    assert len(variance_model(shuffled, scores, settings)) == 2
    assert weights_model(scores, settings)["arm"].tolist() == ["treated", "control"]
    assert trimming_model(scores, settings)["rule"].tolist() == ["crump_optimal", "fixed"]
    with pytest.raises(ValueError, match="does not cover every row"):
        variance_model(ready, scores.iloc[1:], settings)
    with pytest.raises(ValueError, match="ciq_trim_lower/upper"):
        DiagnosticThresholds.parse({**settings, "trim_lower": "0.6"})

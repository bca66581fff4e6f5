"""Deeper covariate balance: variance ratios and Kolmogorov-Smirnov statistics (R cobalt rules).

The balance terms are the ones of ``causal_stats.covariate_balance``: a numeric covariate is one
term on its non-missing rows (``continuous`` or ``binary``) plus a ``missing`` indicator term when
values are missing; a categorical covariate is one 0/1 indicator term per level. So the tables
here join that one on (covariate, level).

- Variance ratio (continuous terms only): variance treated / variance control, unweighted
  (ddof=1) and weighted with cobalt's unbiased weighted variance
  ``sum(w (x - xbar_w)^2) * sum(w) / ((sum w)^2 - sum w^2)`` (equal weights give ddof=1).
- KS statistic: ``max_x |F_treated(x) - F_control(x)|`` with (weighted) empirical CDFs; for a 0/1
  term it equals the absolute difference in proportions, as in cobalt.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from loaders.causal_stats import (
    NA_LEVEL,
    Covariate,
    _as_treatment,
    _as_vector,
    _is_binary,
    _level_codes,
    _numeric_values,
)

VARIANCE_RATIO_COLUMNS = (
    "covariate",
    "n_treated",
    "n_control",
    "variance_treated",
    "variance_control",
    "variance_ratio",
    "variance_treated_weighted",
    "variance_control_weighted",
    "variance_ratio_weighted",
    "ratio_lower",
    "ratio_upper",
    "is_within_bounds_unweighted",
    "is_within_bounds",
)
KS_COLUMNS = (
    "covariate",
    "level",
    "kind",
    "ks_statistic",
    "ks_statistic_weighted",
    "max_ks",
    "is_within_threshold",
)


@dataclass(frozen=True)
class BalanceTerm:
    """One balance term: its values and the rows it is summarised on."""

    covariate: str
    level: str | None
    kind: str  # continuous | binary | category | missing
    values: np.ndarray
    rows: np.ndarray  # boolean: the rows the term is defined on


def balance_terms(frame: pd.DataFrame, covariates: Sequence[Covariate]) -> Iterator[BalanceTerm]:
    """The balance terms of ``covariates`` in the order of ``covariate_balance``."""
    everyone = np.ones(len(frame), dtype=bool)
    for covariate in covariates:
        if covariate.categorical:
            codes, levels = _level_codes(frame[covariate.name])
            for j, level in enumerate(levels):
                indicator = (codes == j).astype(np.float64)
                yield BalanceTerm(covariate.name, level, "category", indicator, everyone)
            continue
        values = _numeric_values(frame, covariate.name)
        missing = np.isnan(values)
        observed = ~missing
        kind = "binary" if _is_binary(values[observed]) else "continuous"
        yield BalanceTerm(covariate.name, None, kind, np.where(missing, 0.0, values), observed)
        if missing.any():
            indicator = missing.astype(np.float64)
            yield BalanceTerm(covariate.name, NA_LEVEL, "missing", indicator, everyone)


def weighted_variance(values: np.ndarray, weights: np.ndarray) -> float:
    """cobalt's unbiased weighted variance; NaN when it is undefined (fewer than two units)."""
    x = np.asarray(values, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    total = float(w.sum())
    denominator = total * total - float(np.dot(w, w))
    if x.size < 2 or total <= 0 or denominator <= 0:
        return math.nan
    centred = x - float(np.dot(w, x)) / total
    return float(np.dot(w, centred * centred)) * total / denominator


def weighted_ks(values: np.ndarray, treated: np.ndarray, weights: np.ndarray) -> float:
    """``max_x |F_treated,w(x) - F_control,w(x)|``; NaN when an arm has no weight."""
    x = np.asarray(values, dtype=np.float64)
    is_treated = np.asarray(treated, dtype=bool)
    w = np.asarray(weights, dtype=np.float64)
    uniques, position = np.unique(x, return_inverse=True)
    mass_t = np.bincount(position, weights=np.where(is_treated, w, 0.0), minlength=uniques.size)
    mass_c = np.bincount(position, weights=np.where(is_treated, 0.0, w), minlength=uniques.size)
    total_t, total_c = float(mass_t.sum()), float(mass_c.sum())
    if total_t <= 0 or total_c <= 0:
        return math.nan
    return float(np.max(np.abs(np.cumsum(mass_t) / total_t - np.cumsum(mass_c) / total_c)))


def _ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator; 0/0 is NaN and x/0 is inf."""
    if math.isnan(numerator) or math.isnan(denominator):
        return math.nan
    if denominator == 0:
        return math.nan if numerator == 0 else math.inf
    return numerator / denominator


def _within(value: float, lower: float, upper: float) -> bool:
    return bool(lower <= value <= upper)  # NaN compares False


def variance_ratios(
    frame: pd.DataFrame,
    covariates: Sequence[Covariate],
    treatment: np.ndarray,
    weights: np.ndarray,
    *,
    lower: float = 0.5,
    upper: float = 2.0,
) -> pd.DataFrame:
    """Variance ratio treated/control per continuous covariate, before and after weighting.

    Flags (``is_within_bounds``: weighted, ``is_within_bounds_unweighted``) are True when the
    ratio lies in [lower, upper] (cobalt's ``v.threshold``; default [0.5, 2]).
    """
    n = len(frame)
    is_treated = _as_treatment(treatment, n)
    w = _as_vector(weights, n, "weights")
    rows = []
    for term in balance_terms(frame, covariates):
        if term.kind != "continuous":
            continue
        arm_t, arm_c = term.rows & is_treated, term.rows & ~is_treated
        x_t, x_c = term.values[arm_t], term.values[arm_c]
        var_t = weighted_variance(x_t, np.ones_like(x_t))
        var_c = weighted_variance(x_c, np.ones_like(x_c))
        var_tw = weighted_variance(x_t, w[arm_t])
        var_cw = weighted_variance(x_c, w[arm_c])
        ratio, ratio_w = _ratio(var_t, var_c), _ratio(var_tw, var_cw)
        rows.append(
            {
                "covariate": term.covariate,
                "n_treated": int(arm_t.sum()),
                "n_control": int(arm_c.sum()),
                "variance_treated": var_t,
                "variance_control": var_c,
                "variance_ratio": ratio,
                "variance_treated_weighted": var_tw,
                "variance_control_weighted": var_cw,
                "variance_ratio_weighted": ratio_w,
                "ratio_lower": float(lower),
                "ratio_upper": float(upper),
                "is_within_bounds_unweighted": _within(ratio, lower, upper),
                "is_within_bounds": _within(ratio_w, lower, upper),
            }
        )
    return _typed(pd.DataFrame(rows, columns=list(VARIANCE_RATIO_COLUMNS)), text=("covariate",))


def ks_statistics(
    frame: pd.DataFrame,
    covariates: Sequence[Covariate],
    treatment: np.ndarray,
    weights: np.ndarray,
    *,
    max_ks: float = 0.1,
) -> pd.DataFrame:
    """KS statistic per balance term before and after weighting; flagged above ``max_ks``."""
    n = len(frame)
    is_treated = _as_treatment(treatment, n)
    w = _as_vector(weights, n, "weights")
    rows = []
    for term in balance_terms(frame, covariates):
        x, t = term.values[term.rows], is_treated[term.rows]
        ks = weighted_ks(x, t, np.ones_like(x))
        ks_weighted = weighted_ks(x, t, w[term.rows])
        rows.append(
            {
                "covariate": term.covariate,
                "level": term.level,
                "kind": term.kind,
                "ks_statistic": ks,
                "ks_statistic_weighted": ks_weighted,
                "max_ks": float(max_ks),
                "is_within_threshold": bool(ks_weighted <= max_ks),
            }
        )
    table = pd.DataFrame(rows, columns=list(KS_COLUMNS))
    table["level"] = pd.Series([row["level"] for row in rows], index=table.index, dtype=object)
    return _typed(table, text=("covariate", "kind"))


def _typed(table: pd.DataFrame, *, text: tuple[str, ...]) -> pd.DataFrame:
    """Give an empty or object-typed table its proper column types (text, ints, floats, flags)."""
    types: dict[str, type | str] = {}
    for name in table.columns:
        if name in text:
            types[name] = str
        elif name.startswith("n_"):
            types[name] = "int64"
        elif name.startswith("is_"):
            types[name] = "bool"
        elif name != "level":
            types[name] = "float64"
    return table.astype(types)

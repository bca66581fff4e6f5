"""Propensity scores, overlap diagnostics and covariate balance (numpy/pandas only).

Balance statistics follow R cobalt's ``bal.tab`` defaults: continuous covariates get a standardised
mean difference over an unweighted standard deviation (pooled for the ATE, treated-group for the
ATT); binary covariates, categorical levels and missingness indicators get raw differences in
proportions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

NA_LEVEL = "<NA>"
ESTIMANDS = ("ate", "att")
BALANCE_COLUMNS = (
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
)
_ETA_BOUND = 35.0
_MAX_HALVINGS = 30
_CHUNK_ROWS = 4096


@dataclass(frozen=True)
class Covariate:
    """A covariate column; ``categorical`` selects one-hot / per-level treatment."""

    name: str
    categorical: bool


# --------------------------------------------------------------------------- validation helpers


def _check_estimand(estimand: str) -> str:
    """Return ``estimand`` if supported, else raise ``ValueError``."""
    if estimand not in ESTIMANDS:
        raise ValueError(f"estimand must be one of {ESTIMANDS}, got {estimand!r}")
    return estimand


def _as_treatment(treatment: np.ndarray, n: int | None = None) -> np.ndarray:
    """Validate a 0/1 treatment vector and return it as a boolean array."""
    values = np.asarray(treatment)
    if values.ndim != 1:
        raise ValueError("treatment must be one-dimensional")
    if n is not None and values.shape[0] != n:
        raise ValueError(f"treatment has {values.shape[0]} rows, expected {n}")
    if values.dtype == np.bool_:
        return values
    try:
        numeric = values.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError("treatment must contain only 0/1 values") from exc
    is_one = numeric == 1.0
    if not np.all(is_one | (numeric == 0.0)):
        raise ValueError("treatment must contain only 0/1 values")
    return is_one


def _as_vector(values: np.ndarray, n: int, what: str) -> np.ndarray:
    """Return ``values`` as a float64 vector of length ``n``."""
    vector = np.asarray(values, dtype=np.float64)
    if vector.ndim != 1 or vector.shape[0] != n:
        raise ValueError(f"{what} must be a vector of length {n}, got shape {vector.shape}")
    return vector


# --------------------------------------------------------------------------- column encodings


def _numeric_values(frame: pd.DataFrame, name: str) -> np.ndarray:
    """Column ``name`` as float64 with missing values as NaN."""
    try:
        numeric = pd.to_numeric(frame[name])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"covariate {name!r} is not numeric; declare it categorical") from exc
    return numeric.to_numpy(dtype=np.float64, na_value=np.nan)


def _level_codes(series: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Encode ``series`` as codes into its observed levels, sorted as strings (missing: "<NA>")."""
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    labels = [str(value) for value in uniques]
    missing = codes < 0
    if missing.any():
        labels.append(NA_LEVEL)
        codes = np.where(missing, len(labels) - 1, codes)
    levels = sorted(set(labels))
    position = {level: i for i, level in enumerate(levels)}
    remap = np.array([position[label] for label in labels], dtype=np.intp)
    return remap[codes], levels


def _impute_median(values: np.ndarray) -> np.ndarray:
    """Replace NaN by the median of the non-missing values (0 if all are missing)."""
    missing = np.isnan(values)
    if not missing.any():
        return values
    fill = float(np.median(values[~missing])) if not missing.all() else 0.0
    return np.where(missing, fill, values)


def _standardise(values: np.ndarray) -> np.ndarray:
    """Centre to mean 0 and scale to sd 1 (ddof=0); constant columns become all zeros."""
    if values.size == 0 or values.min() == values.max():
        return np.zeros_like(values)
    centred = values - values.mean()
    return centred / np.sqrt(np.mean(centred * centred))


def design_matrix(
    frame: pd.DataFrame, covariates: Sequence[Covariate]
) -> tuple[np.ndarray, list[str]]:
    """Numeric covariates: median-impute missing values (median of non-missing; 0 if all missing),
    then standardise to mean 0 / sd 1 (sd computed with ddof=0; a constant column stays 0 after
    centring). Categorical: one-hot encode the levels (missing -> its own level "<NA>"), levels
    sorted as strings, first level dropped. Returns the matrix WITHOUT intercept column and the
    feature names ("age", "gender=M", ...)."""
    columns: list[np.ndarray] = []
    names: list[str] = []
    for covariate in covariates:
        if covariate.categorical:
            codes, levels = _level_codes(frame[covariate.name])
            for j, level in enumerate(levels[1:], start=1):
                columns.append((codes == j).astype(np.float64))
                names.append(f"{covariate.name}={level}")
        else:
            values = _numeric_values(frame, covariate.name)
            columns.append(_standardise(_impute_median(values)))
            names.append(covariate.name)
    matrix = np.empty((len(frame), len(columns)), dtype=np.float64)
    for j, column in enumerate(columns):
        matrix[:, j] = column
    return matrix, names


# --------------------------------------------------------------------------- propensity model


def _expit(eta: np.ndarray) -> np.ndarray:
    """Logistic function of the linear predictor clipped to [-35, 35]."""
    return 1.0 / (1.0 + np.exp(-np.clip(eta, -_ETA_BOUND, _ETA_BOUND)))


def _evaluate(
    x: np.ndarray, t: np.ndarray, beta: np.ndarray, penalty: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray]:
    """Penalised log-likelihood, its gradient and the negative Hessian at ``beta``.

    ``beta[0]`` is the intercept. Rows are processed in cache-sized chunks, which is about twice
    as fast as one pass over the full matrix and avoids materialising an intercept column.
    """
    k = x.shape[1]
    loglik = 0.0
    gradient = np.zeros(k + 1)
    hessian = np.zeros((k + 1, k + 1))
    for start in range(0, x.shape[0], _CHUNK_ROWS):
        xc = x[start : start + _CHUNK_ROWS]
        tc = t[start : start + _CHUNK_ROWS]
        eta = np.clip(xc @ beta[1:] + beta[0], -_ETA_BOUND, _ETA_BOUND)
        exp_eta = np.exp(eta)
        loglik += float(np.dot(tc, eta) - np.log1p(exp_eta).sum())
        p = exp_eta / (1.0 + exp_eta)
        residual = tc - p
        w = p * (1.0 - p)
        gradient[0] += residual.sum()
        gradient[1:] += residual @ xc
        hessian[0, 0] += w.sum()
        hessian[0, 1:] += w @ xc
        hessian[1:, 1:] += xc.T @ (xc * w[:, None])
    hessian[1:, 0] = hessian[0, 1:]
    gradient -= penalty * beta
    hessian[np.diag_indices_from(hessian)] += penalty
    return loglik - 0.5 * float(np.dot(penalty, beta * beta)), gradient, hessian


def _newton_step(hessian: np.ndarray, gradient: np.ndarray) -> np.ndarray:
    """Solve ``hessian @ step = gradient``, falling back to least squares when singular."""
    try:
        return np.linalg.solve(hessian, gradient)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(hessian, gradient, rcond=None)[0]


def fit_propensity(
    features: np.ndarray,
    treatment: np.ndarray,
    *,
    max_iter: int = 100,
    tol: float = 1e-10,
    ridge: float = 1e-8,
) -> np.ndarray:
    """Logistic regression of treatment (0/1) on features plus an intercept, fitted by
    Newton-Raphson / IRLS with a tiny L2 penalty ``ridge * n`` on the non-intercept coefficients
    (keeps it finite under separation). Returns P(T=1|X) as a float64 array. Step-halving if the
    penalised log-likelihood decreases; the linear predictor is clipped to [-35, 35]."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError("features must be a 2-D array")
    x = np.ascontiguousarray(x)
    n, k = x.shape
    t = _as_treatment(treatment, n).astype(np.float64)
    if n == 0:
        return np.empty(0, dtype=np.float64)
    if not np.isfinite(x).all():
        raise ValueError("features must be finite")
    penalty = np.full(k + 1, ridge * n)
    penalty[0] = 0.0
    beta = np.zeros(k + 1)
    rate = min(max(float(t.mean()), 1e-12), 1.0 - 1e-12)
    beta[0] = np.clip(math.log(rate / (1.0 - rate)), -_ETA_BOUND, _ETA_BOUND)
    objective, gradient, hessian = _evaluate(x, t, beta, penalty)
    for _ in range(max_iter):
        step = _newton_step(hessian, gradient)
        scale = 1.0 + np.max(np.abs(beta))
        if np.max(np.abs(step)) <= math.sqrt(tol) * scale:
            # quadratic convergence: after this step the error is of order tol, no check needed
            beta = beta + step
            break
        slack = 1e-12 * (1.0 + abs(objective))
        for halving in range(_MAX_HALVINGS + 1):
            candidate = beta + step * 0.5**halving
            evaluated = _evaluate(x, t, candidate, penalty)
            if evaluated[0] >= objective - slack:
                break
        else:
            break  # no ascent left at floating-point precision
        gain = evaluated[0] - objective
        beta = candidate
        objective, gradient, hessian = evaluated
        if halving == 0 and gain <= tol * (1.0 + abs(objective)):
            break
    return _expit(x @ beta[1:] + beta[0])


def ipw_weights(treatment: np.ndarray, ps: np.ndarray, estimand: str) -> np.ndarray:
    """ate: t/ps + (1-t)/(1-ps); att: t + (1-t)*ps/(1-ps). Any other estimand -> ValueError."""
    _check_estimand(estimand)
    treated = _as_treatment(treatment)
    scores = _as_vector(ps, treated.shape[0], "ps")
    with np.errstate(divide="ignore", invalid="ignore"):
        if estimand == "ate":
            return np.where(treated, 1.0 / scores, 1.0 / (1.0 - scores))
        return np.where(treated, 1.0, scores / (1.0 - scores))


# --------------------------------------------------------------------------- overlap


def _min_max(values: np.ndarray) -> tuple[float, float]:
    """Minimum and maximum of ``values``; NaN for an empty array."""
    if values.size == 0:
        return math.nan, math.nan
    return float(values.min()), float(values.max())


def overlap_summary(
    treatment: np.ndarray, ps: np.ndarray, *, lower: float, upper: float, min_share: float
) -> dict[str, float | int | bool]:
    """One row of overlap diagnostics: arm counts, share of ALL rows with lower < ps < upper
    (strict), masses below 0.01 / above 0.99, per-arm ps ranges (NaN for an empty arm) and whether
    the inside share reaches ``min_share`` (always False if an arm is empty)."""
    treated = _as_treatment(treatment)
    scores = _as_vector(ps, treated.shape[0], "ps")
    n_rows = int(scores.shape[0])
    n_treated = int(treated.sum())
    n_control = n_rows - n_treated

    def share(mask: np.ndarray) -> float:
        return float(mask.sum() / n_rows) if n_rows else math.nan

    inside = share((scores > lower) & (scores < upper))
    min_t, max_t = _min_max(scores[treated])
    min_c, max_c = _min_max(scores[~treated])
    return {
        "n_rows": n_rows,
        "n_treated": n_treated,
        "n_control": n_control,
        "overlap_lower": float(lower),
        "overlap_upper": float(upper),
        "share_inside_bounds": inside,
        "mass_below_0_01": share(scores < 0.01),
        "mass_above_0_99": share(scores > 0.99),
        "min_ps_treated": min_t,
        "max_ps_treated": max_t,
        "min_ps_control": min_c,
        "max_ps_control": max_c,
        "min_overlap_share": float(min_share),
        "is_overlap_sufficient": bool(n_treated > 0 and n_control > 0 and inside >= min_share),
    }


# --------------------------------------------------------------------------- balance


def _ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, NaN when the denominator is zero."""
    return float(numerator / denominator) if denominator != 0 else math.nan


@dataclass(frozen=True)
class _Arm:
    """One treatment arm: 0/1 row indicators and the balance weights (0 outside the arm)."""

    rows: np.ndarray
    weights: np.ndarray

    @classmethod
    def of(cls, member: np.ndarray, weights: np.ndarray) -> _Arm:
        """Arm made of the rows where ``member`` is True."""
        return cls(member.astype(np.float64), np.where(member, weights, 0.0))

    def restrict(self, keep: np.ndarray) -> _Arm:
        """The arm limited to the rows where ``keep`` is True."""
        return _Arm(self.rows * keep, np.where(keep, self.weights, 0.0))

    def means(self, values: np.ndarray) -> tuple[float, float]:
        """Unweighted and weighted mean of ``values`` (which must be finite on every row)."""
        return (
            _ratio(np.dot(self.rows, values), self.rows.sum()),
            _ratio(np.dot(self.weights, values), self.weights.sum()),
        )

    def variance(self, values: np.ndarray) -> float:
        """Unweighted variance with ddof=1 (NaN with fewer than two rows)."""
        n = float(self.rows.sum())
        if n < 2:
            return math.nan
        centred = values - np.dot(self.rows, values) / n
        return float(np.dot(self.rows, centred * centred) / (n - 1.0))


def _standardised_difference(difference: float, denominator: float) -> float:
    """difference / denominator; a zero denominator gives 0 (equal means) or signed inf."""
    if math.isnan(difference) or math.isnan(denominator):
        return math.nan
    if denominator == 0:
        return 0.0 if difference == 0 else math.copysign(math.inf, difference)
    return difference / denominator


def _balance_row(
    covariate: str,
    level: str | None,
    kind: str,
    means: tuple[float, ...],
    denominator: float,
) -> dict[str, object]:
    """Assemble one balance row from the four arm means and the SD denominator."""
    mean_t, mean_c, mean_tw, mean_cw = means
    if kind == "continuous":
        smd = _standardised_difference(mean_t - mean_c, denominator)
        smd_weighted = _standardised_difference(mean_tw - mean_cw, denominator)
    else:
        smd, smd_weighted = mean_t - mean_c, mean_tw - mean_cw
    return {
        "covariate": covariate,
        "level": level,
        "kind": kind,
        "mean_treated": mean_t,
        "mean_control": mean_c,
        "mean_treated_weighted": mean_tw,
        "mean_control_weighted": mean_cw,
        "sd_denominator": denominator,
        "smd": smd,
        "smd_weighted": smd_weighted,
        "abs_smd_weighted": abs(smd_weighted),
    }


def _arm_means(values: np.ndarray, treated: _Arm, control: _Arm) -> tuple[float, ...]:
    """Unweighted treated/control means followed by the weighted ones."""
    mean_t, mean_tw = treated.means(values)
    mean_c, mean_cw = control.means(values)
    return mean_t, mean_c, mean_tw, mean_cw


def _is_binary(values: np.ndarray) -> bool:
    """True if the values are a subset of {0, 1} with both present."""
    zeros = int(np.count_nonzero(values == 0))
    ones = int(np.count_nonzero(values == 1))
    return zeros > 0 and ones > 0 and zeros + ones == values.size


def _numeric_rows(
    name: str, values: np.ndarray, treated: _Arm, control: _Arm, estimand: str
) -> list[dict]:
    """Continuous/binary row for a numeric covariate, plus its missingness row if needed."""
    missing = np.isnan(values)
    has_missing = bool(missing.any())
    if has_missing:
        observed = ~missing
        filled = np.where(missing, 0.0, values)
        obs_treated, obs_control = treated.restrict(observed), control.restrict(observed)
    else:
        filled, obs_treated, obs_control = values, treated, control
    means = _arm_means(filled, obs_treated, obs_control)
    if _is_binary(values[~missing] if has_missing else values):
        rows = [_balance_row(name, None, "binary", means, math.nan)]
    else:
        var_t = obs_treated.variance(filled)
        var_c = obs_control.variance(filled)
        denominator = math.sqrt((var_t + var_c) / 2.0) if estimand == "ate" else math.sqrt(var_t)
        rows = [_balance_row(name, None, "continuous", means, denominator)]
    if has_missing:
        indicator = _arm_means(missing.astype(np.float64), treated, control)
        rows.append(_balance_row(name, NA_LEVEL, "missing", indicator, math.nan))
    return rows


def _level_shares(codes: np.ndarray, n_levels: int, arm_weights: np.ndarray) -> np.ndarray:
    """Share of each level among the rows of an arm, weighted by ``arm_weights``."""
    totals = np.bincount(codes, weights=arm_weights, minlength=n_levels)
    total = float(arm_weights.sum())
    return totals / total if total != 0 else np.full(n_levels, math.nan)


def _category_rows(name: str, series: pd.Series, treated: _Arm, control: _Arm) -> list[dict]:
    """One row per level of a categorical covariate (difference in level proportions)."""
    codes, levels = _level_codes(series)
    shares = [
        _level_shares(codes, len(levels), arm_weights)
        for arm_weights in (treated.rows, control.rows, treated.weights, control.weights)
    ]
    return [
        _balance_row(name, level, "category", tuple(float(s[j]) for s in shares), math.nan)
        for j, level in enumerate(levels)
    ]


def covariate_balance(
    frame: pd.DataFrame,
    covariates: Sequence[Covariate],
    treatment: np.ndarray,
    weights: np.ndarray,
    *,
    estimand: str,
    max_abs_smd: float,
) -> pd.DataFrame:
    """Balance table, one row per balance term, following cobalt's ``bal.tab`` defaults.

    Continuous SMDs divide by the unweighted SD (ddof=1; pooled for ATE, treated for ATT); binary
    covariates, categorical levels and missingness indicators use raw proportion differences.
    Numeric covariates are summarised on their non-missing rows, followed by a "missing" row when
    any value is missing. Rows follow the order of ``covariates``.
    """
    _check_estimand(estimand)
    n = len(frame)
    treated = _as_treatment(treatment, n)
    w = _as_vector(weights, n, "weights")
    treated_arm, control_arm = _Arm.of(treated, w), _Arm.of(~treated, w)
    rows: list[dict] = []
    for covariate in covariates:
        if covariate.categorical:
            series = frame[covariate.name]
            rows.extend(_category_rows(covariate.name, series, treated_arm, control_arm))
        else:
            values = _numeric_values(frame, covariate.name)
            rows.extend(_numeric_rows(covariate.name, values, treated_arm, control_arm, estimand))
    for row in rows:
        row["max_abs_smd"] = float(max_abs_smd)
        row["is_balanced"] = bool(row["abs_smd_weighted"] <= max_abs_smd)
        row["estimand"] = estimand
    table = pd.DataFrame(rows, columns=list(BALANCE_COLUMNS))
    table["level"] = pd.Series([row["level"] for row in rows], index=table.index, dtype=object)
    return table.astype({"is_balanced": bool})

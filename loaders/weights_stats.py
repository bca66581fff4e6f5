"""The weights and the support of the propensity score: Kish ESS, weight summaries, trimming.

- Kish effective sample size of an arm: ``(sum w)^2 / sum w^2``; the design effect is n / ESS.
- Share of the top 1%: the weight carried by the ceil(1% of n) largest weights of an arm, as a
  share of the arm's total weight.
- Crump, Hotz, Imbens and Mitnik (2009) optimal trimming: with ``g = 1 / (ps (1 - ps))``, alpha = 0
  when ``max g <= 2 mean g``; otherwise gamma solves ``gamma = 2 E[g | g <= gamma]`` and
  ``alpha = 1/2 - sqrt(1/4 - 1/gamma)`` (so that ``1 / (alpha (1 - alpha)) = gamma``). Units with
  ps in [alpha, 1 - alpha] are kept.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from loaders.causal_stats import _as_treatment, _as_vector

WEIGHT_COLUMNS = (
    "arm",
    "n_units",
    "weight_sum",
    "weight_mean",
    "weight_min",
    "weight_max",
    "effective_sample_size",
    "ess_share",
    "design_effect",
    "n_top_1pct",
    "top_1pct_weight_share",
)
TRIMMING_COLUMNS = (
    "rule",
    "lower_bound",
    "upper_bound",
    "n_treated",
    "n_control",
    "n_removed_treated",
    "n_removed_control",
    "n_removed",
    "share_removed",
)
ARMS = ("treated", "control")
TOP_SHARE = 0.01


def kish_ess(weights: np.ndarray) -> float:
    """Kish's effective sample size ``(sum w)^2 / sum w^2`` (NaN without positive weight)."""
    w = np.asarray(weights, dtype=np.float64)
    squares = float(np.dot(w, w))
    return float(w.sum()) ** 2 / squares if squares > 0 else math.nan


def top_share(weights: np.ndarray, share: float = TOP_SHARE) -> tuple[int, float]:
    """How many units make the top ``share`` (ceil, at least one) and their share of the weight."""
    w = np.asarray(weights, dtype=np.float64)
    if w.size == 0:
        return 0, math.nan
    k = max(1, math.ceil(share * w.size - 1e-9))
    total = float(w.sum())
    largest = np.partition(w, w.size - k)[w.size - k :]
    return k, float(largest.sum()) / total if total > 0 else math.nan


def _arm_row(arm: str, w: np.ndarray) -> dict[str, object]:
    n = int(w.size)
    ess = kish_ess(w)
    k, share = top_share(w)
    empty = n == 0
    return {
        "arm": arm,
        "n_units": n,
        "weight_sum": float(w.sum()),
        "weight_mean": math.nan if empty else float(w.mean()),
        "weight_min": math.nan if empty else float(w.min()),
        "weight_max": math.nan if empty else float(w.max()),
        "effective_sample_size": ess,
        "ess_share": ess / n if n else math.nan,
        "design_effect": n / ess if n and ess > 0 else math.nan,
        "n_top_1pct": k,
        "top_1pct_weight_share": share,
    }


def weight_summary(treatment: np.ndarray, weights: np.ndarray) -> pd.DataFrame:
    """One row per arm (treated, control): ESS, weight range and concentration."""
    is_treated = _as_treatment(treatment)
    w = _as_vector(weights, is_treated.shape[0], "weights")
    rows = [_arm_row("treated", w[is_treated]), _arm_row("control", w[~is_treated])]
    return pd.DataFrame(rows, columns=list(WEIGHT_COLUMNS))


def crump_alpha(ps: np.ndarray) -> float:
    """The Crump et al. (2009) optimal trimming threshold alpha (0 when no trimming is needed).

    On the sorted ``g = 1/(ps(1-ps))`` with running means ``m_k``, gamma is ``2 m_k`` for the
    first k with ``g_(k+1) > 2 m_k``: the smallest gamma with ``gamma = 2 mean(g | g <= gamma)``.
    """
    scores = np.asarray(ps, dtype=np.float64)
    if scores.size == 0:
        return math.nan
    if not np.all((scores > 0) & (scores < 1)):
        raise ValueError("propensity scores must lie strictly between 0 and 1")
    g = np.sort(1.0 / (scores * (1.0 - scores)))
    if g[-1] <= 2.0 * g.mean():
        return 0.0
    running = 2.0 * np.cumsum(g) / np.arange(1, g.size + 1)
    k = int(np.argmax(g[1:] > running[:-1]))  # exists: g_(n) > 2 m_n >= 2 m_(n-1) otherwise
    gamma = float(running[k])
    return 0.5 - math.sqrt(0.25 - 1.0 / gamma)


def _trimming_row(
    rule: str, lower: float, upper: float, is_treated: np.ndarray, scores: np.ndarray
) -> dict[str, object]:
    removed = (scores < lower) | (scores > upper)
    n_removed = int(removed.sum())
    return {
        "rule": rule,
        "lower_bound": float(lower),
        "upper_bound": float(upper),
        "n_treated": int(is_treated.sum()),
        "n_control": int((~is_treated).sum()),
        "n_removed_treated": int((removed & is_treated).sum()),
        "n_removed_control": int((removed & ~is_treated).sum()),
        "n_removed": n_removed,
        "share_removed": n_removed / scores.size if scores.size else math.nan,
    }


def trimming_summary(
    treatment: np.ndarray, ps: np.ndarray, *, fixed_lower: float = 0.1, fixed_upper: float = 0.9
) -> pd.DataFrame:
    """Rows removed per arm when keeping ps in [alpha, 1 - alpha] (Crump) or in the fixed bounds."""
    is_treated = _as_treatment(treatment)
    scores = _as_vector(ps, is_treated.shape[0], "ps")
    alpha = crump_alpha(scores)
    rows = [
        _trimming_row("crump_optimal", alpha, 1.0 - alpha, is_treated, scores),
        _trimming_row("fixed", fixed_lower, fixed_upper, is_treated, scores),
    ]
    return pd.DataFrame(rows, columns=list(TRIMMING_COLUMNS))

"""The functions behind the dbt Python models: settings in, checked DataFrames out.

The dbt models stay thin (`def model(dbt, session)` wires refs to these); the statistics live in
`loaders.causal_stats`; pandera checks every DataFrame before dbt writes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa

from loaders.balance_stats import ks_statistics as ks_table
from loaders.balance_stats import variance_ratios as variance_ratio_table
from loaders.causal_stats import (
    Covariate,
    design_matrix,
    fit_propensity,
    ipw_weights,
    overlap_summary,
)
from loaders.causal_stats import (
    covariate_balance as balance_table,
)
from loaders.weights_stats import trimming_summary, weight_summary


@dataclass(frozen=True)
class ModelSettings:
    """The `meta.ciq` block `ciq generate` writes for the Python models (vars already rendered)."""

    primary_key: tuple[str, ...]
    treatment_col: str
    covariates: tuple[Covariate, ...]
    estimand: str
    overlap_lower: float
    overlap_upper: float
    min_overlap_share: float
    max_abs_smd: float

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> ModelSettings:
        estimand = str(raw["estimand"]).strip().lower()
        if estimand not in ("ate", "att"):
            raise ValueError(f"ciq_estimand must be ate or att, not {estimand!r}")
        return cls(
            primary_key=tuple(raw["primary_key"]),
            treatment_col=raw["treatment_col"],
            covariates=tuple(
                Covariate(c["name"], bool(c["categorical"])) for c in raw["covariates"]
            ),
            estimand=estimand,
            overlap_lower=float(raw["overlap_lower"]),
            overlap_upper=float(raw["overlap_upper"]),
            min_overlap_share=float(raw["min_overlap_share"]),
            max_abs_smd=float(raw["max_abs_smd"]),
        )


def propensity_scores(ready: pd.DataFrame, raw_settings: dict[str, Any]) -> pd.DataFrame:
    """Primary key, treatment, propensity score and IPW weight per row of causal_ready."""
    settings = ModelSettings.parse(raw_settings)
    treatment = ready[settings.treatment_col].to_numpy(dtype=np.float64)
    features, _ = design_matrix(ready, settings.covariates)
    scores = fit_propensity(features, treatment)
    result = ready[[*settings.primary_key, settings.treatment_col]].copy()
    result["propensity_score"] = scores
    result["ipw_weight"] = ipw_weights(treatment, scores, settings.estimand)
    return _scores_schema(settings).validate(result)


def overlap_diagnostics(scores: pd.DataFrame, raw_settings: dict[str, Any]) -> pd.DataFrame:
    """One row of overlap diagnostics of the propensity scores."""
    settings = ModelSettings.parse(raw_settings)
    row = overlap_summary(
        scores[settings.treatment_col].to_numpy(dtype=np.float64),
        scores["propensity_score"].to_numpy(dtype=np.float64),
        lower=settings.overlap_lower,
        upper=settings.overlap_upper,
        min_share=settings.min_overlap_share,
    )
    return OVERLAP_SCHEMA.validate(pd.DataFrame([row]))


def covariate_balance(
    ready: pd.DataFrame, scores: pd.DataFrame, raw_settings: dict[str, Any]
) -> pd.DataFrame:
    """Balance per covariate term before and after weighting, matched on the primary key."""
    settings = ModelSettings.parse(raw_settings)
    key = list(settings.primary_key)
    merged = ready.merge(scores[[*key, "ipw_weight"]], on=key, how="inner", validate="one_to_one")
    if len(merged) != len(ready):
        raise ValueError("propensity_scores does not cover every row of causal_ready")
    table = balance_table(
        merged,
        settings.covariates,
        merged[settings.treatment_col].to_numpy(dtype=np.float64),
        merged["ipw_weight"].to_numpy(dtype=np.float64),
        estimand=settings.estimand,
        max_abs_smd=settings.max_abs_smd,
    )
    return BALANCE_SCHEMA.validate(table)


def _scores_schema(settings: ModelSettings) -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        {
            settings.treatment_col: pa.Column(checks=pa.Check.isin([0, 1])),
            "propensity_score": pa.Column(float, pa.Check.in_range(0.0, 1.0)),
            "ipw_weight": pa.Column(float, pa.Check.gt(0.0)),
        },
        unique=list(settings.primary_key),
    )


OVERLAP_SCHEMA = pa.DataFrameSchema(
    {
        "n_rows": pa.Column(int, pa.Check.ge(0)),
        "n_treated": pa.Column(int, pa.Check.ge(0)),
        "n_control": pa.Column(int, pa.Check.ge(0)),
        "share_inside_bounds": pa.Column(float, pa.Check.in_range(0.0, 1.0)),
        "mass_below_0_01": pa.Column(float, pa.Check.in_range(0.0, 1.0)),
        "mass_above_0_99": pa.Column(float, pa.Check.in_range(0.0, 1.0)),
        "is_overlap_sufficient": pa.Column(bool),
    },
    checks=pa.Check(lambda frame: len(frame) == 1, error="exactly one row"),
)

BALANCE_SCHEMA = pa.DataFrameSchema(
    {
        "covariate": pa.Column(str),
        "kind": pa.Column(str, pa.Check.isin(["continuous", "binary", "category", "missing"])),
        "smd": pa.Column(float, nullable=True),
        "smd_weighted": pa.Column(float, nullable=True),
        "abs_smd_weighted": pa.Column(float, pa.Check.ge(0.0), nullable=True),
        "is_balanced": pa.Column(bool),
        "estimand": pa.Column(str, pa.Check.isin(["ate", "att"])),
    },
    checks=pa.Check(lambda frame: len(frame) >= 1, error="at least one balance term"),
)


# --------------------------------------------------------------------------- deeper diagnostics


@dataclass(frozen=True)
class DiagnosticThresholds:
    """Flags of the deeper diagnostics (dbt vars; `loaders.diagnostics_yaml` sets the defaults)."""

    variance_ratio_lower: float
    variance_ratio_upper: float
    max_ks: float
    trim_lower: float
    trim_upper: float

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> DiagnosticThresholds:
        thresholds = cls(
            variance_ratio_lower=float(raw["variance_ratio_lower"]),
            variance_ratio_upper=float(raw["variance_ratio_upper"]),
            max_ks=float(raw["max_ks"]),
            trim_lower=float(raw["trim_lower"]),
            trim_upper=float(raw["trim_upper"]),
        )
        if not 0 < thresholds.variance_ratio_lower <= 1 <= thresholds.variance_ratio_upper:
            raise ValueError(
                "ciq_variance_ratio_lower/upper must satisfy 0 < lower <= 1 <= upper, got "
                f"{thresholds.variance_ratio_lower} and {thresholds.variance_ratio_upper}"
            )
        if not 0 <= thresholds.trim_lower < 0.5 < thresholds.trim_upper <= 1:
            raise ValueError(
                "ciq_trim_lower/upper must satisfy 0 <= lower < 0.5 < upper <= 1, got "
                f"{thresholds.trim_lower} and {thresholds.trim_upper}"
            )
        return thresholds


def _weighted_ready(
    ready: pd.DataFrame, scores: pd.DataFrame, settings: ModelSettings
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """causal_ready with each row's IPW weight (matched on the key), its treatment and weights."""
    key = list(settings.primary_key)
    merged = ready.merge(scores[[*key, "ipw_weight"]], on=key, how="inner", validate="one_to_one")
    if len(merged) != len(ready):
        raise ValueError("propensity_scores does not cover every row of causal_ready")
    treatment = merged[settings.treatment_col].to_numpy(dtype=np.float64)
    return merged, treatment, merged["ipw_weight"].to_numpy(dtype=np.float64)


def variance_ratios(
    ready: pd.DataFrame, scores: pd.DataFrame, raw_settings: dict[str, Any]
) -> pd.DataFrame:
    """Variance ratios treated/control of the continuous covariates, before and after weighting."""
    settings = ModelSettings.parse(raw_settings)
    thresholds = DiagnosticThresholds.parse(raw_settings)
    merged, treatment, weights = _weighted_ready(ready, scores, settings)
    table = variance_ratio_table(
        merged,
        settings.covariates,
        treatment,
        weights,
        lower=thresholds.variance_ratio_lower,
        upper=thresholds.variance_ratio_upper,
    )
    return VARIANCE_RATIO_SCHEMA.validate(table)


def ks_statistics(
    ready: pd.DataFrame, scores: pd.DataFrame, raw_settings: dict[str, Any]
) -> pd.DataFrame:
    """Kolmogorov-Smirnov statistic per balance term, before and after weighting."""
    settings = ModelSettings.parse(raw_settings)
    thresholds = DiagnosticThresholds.parse(raw_settings)
    merged, treatment, weights = _weighted_ready(ready, scores, settings)
    table = ks_table(merged, settings.covariates, treatment, weights, max_ks=thresholds.max_ks)
    return KS_SCHEMA.validate(table)


def weight_diagnostics(scores: pd.DataFrame, raw_settings: dict[str, Any]) -> pd.DataFrame:
    """Kish effective sample size and weight summaries per arm."""
    settings = ModelSettings.parse(raw_settings)
    table = weight_summary(
        scores[settings.treatment_col].to_numpy(dtype=np.float64),
        scores["ipw_weight"].to_numpy(dtype=np.float64),
    )
    return WEIGHT_SCHEMA.validate(table)


def trimming_bounds(scores: pd.DataFrame, raw_settings: dict[str, Any]) -> pd.DataFrame:
    """Crump et al. (2009) optimal trimming bounds and a fixed rule, with the rows each removes."""
    settings = ModelSettings.parse(raw_settings)
    thresholds = DiagnosticThresholds.parse(raw_settings)
    table = trimming_summary(
        scores[settings.treatment_col].to_numpy(dtype=np.float64),
        scores["propensity_score"].to_numpy(dtype=np.float64),
        fixed_lower=thresholds.trim_lower,
        fixed_upper=thresholds.trim_upper,
    )
    return TRIMMING_SCHEMA.validate(table)


_SHARE = pa.Check.in_range(0.0, 1.0)

VARIANCE_RATIO_SCHEMA = pa.DataFrameSchema(
    {
        "covariate": pa.Column(str, unique=True),
        "n_treated": pa.Column(int, pa.Check.ge(0)),
        "n_control": pa.Column(int, pa.Check.ge(0)),
        "variance_ratio": pa.Column(float, pa.Check.ge(0.0), nullable=True),
        "variance_ratio_weighted": pa.Column(float, pa.Check.ge(0.0), nullable=True),
        "is_within_bounds_unweighted": pa.Column(bool),
        "is_within_bounds": pa.Column(bool),
    }
)

KS_SCHEMA = pa.DataFrameSchema(
    {
        "covariate": pa.Column(str),
        "kind": pa.Column(str, pa.Check.isin(["continuous", "binary", "category", "missing"])),
        "ks_statistic": pa.Column(float, _SHARE, nullable=True),
        "ks_statistic_weighted": pa.Column(float, _SHARE, nullable=True),
        "is_within_threshold": pa.Column(bool),
    },
    checks=pa.Check(lambda frame: len(frame) >= 1, error="at least one balance term"),
)

WEIGHT_SCHEMA = pa.DataFrameSchema(
    {
        "arm": pa.Column(str, pa.Check.isin(["treated", "control"]), unique=True),
        "n_units": pa.Column(int, pa.Check.ge(0)),
        "effective_sample_size": pa.Column(float, pa.Check.ge(0.0), nullable=True),
        "ess_share": pa.Column(float, _SHARE, nullable=True),
        "top_1pct_weight_share": pa.Column(float, _SHARE, nullable=True),
    },
    checks=pa.Check(lambda frame: len(frame) == 2, error="one row per arm"),
)

TRIMMING_SCHEMA = pa.DataFrameSchema(
    {
        "rule": pa.Column(str, pa.Check.isin(["crump_optimal", "fixed"]), unique=True),
        "lower_bound": pa.Column(float, pa.Check.in_range(0.0, 0.5), nullable=True),
        "upper_bound": pa.Column(float, pa.Check.in_range(0.5, 1.0), nullable=True),
        "n_removed_treated": pa.Column(int, pa.Check.ge(0)),
        "n_removed_control": pa.Column(int, pa.Check.ge(0)),
        "share_removed": pa.Column(float, _SHARE, nullable=True),
    },
    checks=pa.Check(lambda frame: len(frame) == 2, error="one row per rule"),
)

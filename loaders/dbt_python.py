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

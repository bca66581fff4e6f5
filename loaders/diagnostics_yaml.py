"""The generated dbt YAML of the deeper diagnostics models (called by `loaders.dbt_codegen`).

variance_ratios, ks_statistics, weight_diagnostics and trimming_bounds read the same `meta.ciq`
settings as the other Python models plus the thresholds below, which are dbt vars with these
defaults (cobalt's variance-ratio threshold [0.5, 2]; a KS threshold of 0.1; the common 0.1/0.9
trimming rule). Their flags are warnings (severity warn), not gates: they never fail the build,
and they show up in dbt's run results and in the report.
"""

from __future__ import annotations

from typing import Any

from loaders.sql import literal

VAR_PREFIX = "ciq_"
DIAGNOSTIC_DEFAULTS: dict[str, float] = {
    "variance_ratio_lower": 0.5,
    "variance_ratio_upper": 2.0,
    "max_ks": 0.1,
    "trim_lower": 0.1,
    "trim_upper": 0.9,
}
DIAGNOSTIC_MODELS = ("variance_ratios", "ks_statistics", "weight_diagnostics", "trimming_bounds")

VARIANCE_RATIO_COLUMNS = {
    "covariate": "Continuous covariate (binary and categorical covariates have no variance ratio).",
    "n_treated": "Treated rows with a value of the covariate.",
    "n_control": "Control rows with a value of the covariate.",
    "variance_treated": "Unweighted variance (ddof=1) among the treated.",
    "variance_control": "Unweighted variance (ddof=1) among the controls.",
    "variance_ratio": "variance_treated / variance_control, before weighting.",
    "variance_treated_weighted": "IPW-weighted variance among the treated (cobalt's formula).",
    "variance_control_weighted": "IPW-weighted variance among the controls (cobalt's formula).",
    "variance_ratio_weighted": "Weighted variance ratio treated / control.",
    "ratio_lower": "Lower bound of an acceptable ratio (var ciq_variance_ratio_lower).",
    "ratio_upper": "Upper bound of an acceptable ratio (var ciq_variance_ratio_upper).",
    "is_within_bounds_unweighted": "True when variance_ratio lies within the bounds.",
    "is_within_bounds": "True when variance_ratio_weighted lies within the bounds.",
}
KS_COLUMNS = {
    "covariate": "Covariate name.",
    "level": "Category level (category and missing-indicator terms), else null.",
    "kind": "continuous, binary, category or missing.",
    "ks_statistic": "max |F_treated(x) - F_control(x)| of the empirical CDFs, before weighting.",
    "ks_statistic_weighted": "The same with IPW-weighted empirical CDFs.",
    "max_ks": "Largest acceptable weighted KS statistic (var ciq_max_ks).",
    "is_within_threshold": "True when ks_statistic_weighted <= max_ks.",
}
WEIGHT_COLUMNS = {
    "arm": "treated or control.",
    "n_units": "Rows in the arm.",
    "weight_sum": "Sum of the arm's IPW weights.",
    "weight_mean": "Mean IPW weight in the arm.",
    "weight_min": "Smallest IPW weight in the arm.",
    "weight_max": "Largest IPW weight in the arm.",
    "effective_sample_size": "Kish effective sample size (sum w)^2 / sum w^2.",
    "ess_share": "effective_sample_size / n_units.",
    "design_effect": "n_units / effective_sample_size (Kish design effect).",
    "n_top_1pct": "Units in the top 1% of the arm's weights (at least one).",
    "top_1pct_weight_share": "Share of the arm's total weight carried by its top 1% of units.",
}
TRIMMING_COLUMNS = {
    "rule": "crump_optimal (Crump et al. 2009) or fixed (vars ciq_trim_lower / ciq_trim_upper).",
    "lower_bound": "Keep rows with a propensity score >= this (alpha for crump_optimal).",
    "upper_bound": "Keep rows with a propensity score <= this (1 - alpha for crump_optimal).",
    "n_treated": "Treated rows before trimming.",
    "n_control": "Control rows before trimming.",
    "n_removed_treated": "Treated rows outside the bounds.",
    "n_removed_control": "Control rows outside the bounds.",
    "n_removed": "All rows outside the bounds.",
    "share_removed": "n_removed / all rows.",
}


def diagnostic_settings() -> dict[str, str]:
    """The thresholds as dbt var references with their defaults."""
    return {
        name: f"{{{{ var('{VAR_PREFIX}{name}', {literal(default)}) }}}}"
        for name, default in DIAGNOSTIC_DEFAULTS.items()
    }


def _between(low: float, high: float) -> dict[str, Any]:
    return {"ciq_between": {"arguments": {"min_value": low, "max_value": high}}}


def _flag(name: str) -> dict[str, Any]:
    """A warning (not a gate) with one failing row per flagged term."""
    return {"ciq_diagnostic_flag": {"name": name, "config": {"severity": "warn"}}}


def _unique(*columns: str) -> dict[str, Any]:
    return {"ciq_unique_combination": {"arguments": {"columns": list(columns)}}}


def _columns(docs: dict[str, str], tests: dict[str, list[Any]]) -> list[dict[str, Any]]:
    columns = []
    for name, text in docs.items():
        column: dict[str, Any] = {"name": name, "description": text}
        if name in tests:
            column["data_tests"] = tests[name]
        columns.append(column)
    return columns


def diagnostics_models(model_settings: dict[str, Any]) -> list[dict[str, Any]]:
    """YAML of the four diagnostics models, given the other Python models' `meta.ciq` settings."""
    config = {"meta": {"ciq": {**model_settings, **diagnostic_settings()}}}

    def model(name: str, columns: list[dict[str, Any]], tests: list[Any]) -> dict[str, Any]:
        return {
            "name": name,
            "description": f"{{{{ doc('{name}') }}}}",
            "config": config,
            "data_tests": tests,
            "columns": columns,
        }

    share = [_between(0, 1)]
    return [
        model(
            "variance_ratios",
            _columns(
                VARIANCE_RATIO_COLUMNS,
                {"covariate": ["not_null"], "is_within_bounds": [_flag("variance_ratio_flags")]},
            ),
            [_unique("covariate")],
        ),
        model(
            "ks_statistics",
            _columns(
                KS_COLUMNS,
                {
                    "covariate": ["not_null"],
                    "ks_statistic": share,
                    "ks_statistic_weighted": share,
                    "is_within_threshold": [_flag("ks_flags")],
                },
            ),
            [_unique("covariate", "level")],
        ),
        model(
            "weight_diagnostics",
            _columns(
                WEIGHT_COLUMNS,
                {
                    "arm": [
                        "not_null",
                        {"accepted_values": {"arguments": {"values": ["treated", "control"]}}},
                    ],
                    "ess_share": share,
                    "top_1pct_weight_share": share,
                },
            ),
            [_unique("arm")],
        ),
        model(
            "trimming_bounds",
            _columns(
                TRIMMING_COLUMNS,
                {
                    "rule": [
                        "not_null",
                        {"accepted_values": {"arguments": {"values": ["crump_optimal", "fixed"]}}},
                    ],
                    "lower_bound": ["not_null", _between(0, 0.5)],
                    "upper_bound": ["not_null", _between(0.5, 1)],
                    "share_removed": share,
                },
            ),
            [_unique("rule")],
        ),
    ]

"""Variance ratios treated/control of the continuous covariates, before and after IPW weighting."""

from loaders.dbt_python import variance_ratios


def model(dbt, session):
    dbt.config(materialized="table")
    settings = dbt.config.get("meta")["ciq"]
    return variance_ratios(
        dbt.ref("causal_ready").df(), dbt.ref("propensity_scores").df(), settings
    )

"""Kolmogorov-Smirnov statistics per balance term, before and after IPW weighting."""

from loaders.dbt_python import ks_statistics


def model(dbt, session):
    dbt.config(materialized="table")
    settings = dbt.config.get("meta")["ciq"]
    return ks_statistics(dbt.ref("causal_ready").df(), dbt.ref("propensity_scores").df(), settings)

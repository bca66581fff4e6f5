"""Propensity scores: logistic regression of the treatment on the contract's covariates."""

from loaders.dbt_python import propensity_scores


def model(dbt, session):
    dbt.config(materialized="table")
    settings = dbt.config.get("meta")["ciq"]
    return propensity_scores(dbt.ref("causal_ready").df(), settings)

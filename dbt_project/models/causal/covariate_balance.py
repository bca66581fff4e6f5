"""Covariate balance: standardised mean differences before and after IPW weighting."""

from loaders.dbt_python import covariate_balance


def model(dbt, session):
    dbt.config(materialized="table")
    settings = dbt.config.get("meta")["ciq"]
    return covariate_balance(
        dbt.ref("causal_ready").df(), dbt.ref("propensity_scores").df(), settings
    )

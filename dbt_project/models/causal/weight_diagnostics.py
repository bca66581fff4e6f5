"""IPW weights per arm: Kish effective sample size, range and concentration in the top 1%."""

from loaders.dbt_python import weight_diagnostics


def model(dbt, session):
    dbt.config(materialized="table")
    settings = dbt.config.get("meta")["ciq"]
    return weight_diagnostics(dbt.ref("propensity_scores").df(), settings)

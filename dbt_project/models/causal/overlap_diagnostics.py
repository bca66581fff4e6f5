"""Overlap / positivity: one row summarising where the propensity scores lie per arm."""

from loaders.dbt_python import overlap_diagnostics


def model(dbt, session):
    dbt.config(materialized="table")
    settings = dbt.config.get("meta")["ciq"]
    return overlap_diagnostics(dbt.ref("propensity_scores").df(), settings)

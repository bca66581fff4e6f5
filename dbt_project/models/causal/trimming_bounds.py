"""Crump et al. (2009) optimal trimming bounds and a fixed rule, with the rows each would remove."""

from loaders.dbt_python import trimming_bounds


def model(dbt, session):
    dbt.config(materialized="table")
    settings = dbt.config.get("meta")["ciq"]
    return trimming_bounds(dbt.ref("propensity_scores").df(), settings)

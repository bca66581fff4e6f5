"""Read the diagnostics of the last build back from the warehouse for people to look at."""

from __future__ import annotations

import duckdb

from loaders.contract import Contract
from loaders.errors import CiqError
from loaders.settings import Paths
from loaders.sql import quote_ident


def summary(contract: Contract, paths: Paths) -> str:
    """Where the results are, the overlap verdict and the balance table."""
    if not paths.warehouse.exists():
        raise CiqError(f"{paths.warehouse}: no warehouse yet; run `make all` or `ciq build`")
    schema = quote_ident(contract.dataset)
    with duckdb.connect(str(paths.warehouse)) as con:
        try:
            overlap = con.execute(f"select * from {schema}.overlap_diagnostics").fetchdf()
            balance = con.execute(
                f"select covariate, level, smd, smd_weighted, is_balanced "
                f"from {schema}.covariate_balance"
            ).fetchdf()
            n_ready = con.execute(f"select count(*) from {schema}.causal_ready").fetchone()[0]
        except duckdb.CatalogException:
            raise CiqError(
                f"{paths.warehouse}: dataset {contract.dataset} has not been built yet"
            ) from None
    row = overlap.iloc[0]
    verdict = "PASS" if bool(row["is_overlap_sufficient"]) else "FAIL"
    balanced = int(balance["is_balanced"].sum())
    lines = [
        f"{contract.dataset}: {n_ready} rows in {contract.dataset}.causal_ready "
        f"({paths.warehouse})",
        f"  overlap  {verdict}: {row['share_inside_bounds']:.3f} of scores inside "
        f"({row['overlap_lower']:g}, {row['overlap_upper']:g}), minimum "
        f"{row['min_overlap_share']:g}; mass <0.01 {row['mass_below_0_01']:.3f}, "
        f">0.99 {row['mass_above_0_99']:.3f}",
        f"  balance  {balanced}/{len(balance)} terms with weighted |SMD| within the maximum",
        balance.to_string(index=False, float_format=lambda v: f"{v:.4f}"),
        f"  tables: {contract.dataset}.causal_ready, .propensity_scores, "
        ".overlap_diagnostics, .covariate_balance",
    ]
    return "\n".join(lines)

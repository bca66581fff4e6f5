"""The sample built as `make all` builds it: the report, the diagnostics tables, the dbt docs.

The tables are checked against numpy/scipy computations written here from the definitions.
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import re
import struct

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from loaders.contract import Contract, contract_for
from loaders.report_data import dbt_run
from loaders.settings import Paths
from tests.report_sample import BUILD_LOG, built_sample

PICTURES = ("propensity.png", "love_plot.png", "weights.png")
DIAGNOSTICS = (
    "propensity_scores",
    "overlap_diagnostics",
    "covariate_balance",
    "variance_ratios",
    "ks_statistics",
    "weight_diagnostics",
    "trimming_bounds",
)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Paths:
    return built_sample(tmp_path_factory)


@pytest.fixture(scope="module")
def contract(sample: Paths) -> Contract:
    return contract_for("events", sample.contracts)


def query(paths: Paths, sql: str) -> pd.DataFrame:
    with duckdb.connect(str(paths.warehouse)) as con:
        return con.execute(sql).fetchdf()


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_make_all_writes_a_self_contained_report_with_the_three_pictures(sample: Paths) -> None:
    folder = sample.artifacts("events")
    assert "report: " in (sample.root / BUILD_LOG).read_text()
    page = (folder / "report.html").read_text()
    embedded = re.findall(
        r'src="data:image/png;base64,([^"]+)" alt="[^"]*" data-name="([^"]+)"', page
    )
    assert sorted(name for _, name in embedded) == sorted(PICTURES)
    for data, name in embedded:
        png = (folder / name).read_bytes()
        assert base64.b64decode(data) == png
        width, height = png_size(png)
        assert width >= 600 and height >= 300
    # offline: nothing to fetch (no scripts, stylesheets, fonts or remote images)
    assert not re.search(r'(src|href)="(?!data:|#)', page)
    assert "<script" not in page and "<link" not in page and "url(" not in page
    assert 'name="viewport"' in page
    markdown = (folder / "report.md").read_text()
    for name in PICTURES:
        assert f"]({name})" in markdown


def test_report_shows_load_counts_leakage_gates_and_dbt_results(
    sample: Paths, contract: Contract
) -> None:
    markdown = (sample.artifacts("events") / "report.md").read_text()
    manifest = json.loads((sample.staged_raw("events") / "_load_manifest.json").read_text())
    for entry in manifest["files"]:
        assert re.search(
            rf"\| {re.escape(entry['source'])} \| {entry['rows_read']:,} \| "
            rf"{entry['rows_staged']:,} \| {entry['rows_rejected']:,} \|",
            markdown,
        )
    rejects = query(
        sample,
        f"select rule, count(*) as n from read_parquet('{sample.rejects_raw('events')}/*.parquet') "
        "group by rule",
    )
    for rule, n in zip(rejects["rule"], rejects["n"], strict=True):
        assert re.search(rf"total \|.*{rule}: {n}", markdown)
    for pattern in contract.leakage_patterns:
        assert f"`{pattern}`" in markdown
    assert "## Leakage checks (PASS)" in markdown
    assert "| causal_ready | 9 | none | PASS |" in markdown
    overlap = query(sample, "select * from events.overlap_diagnostics").iloc[0]
    assert "## Overlap (PASS)" in markdown
    assert f"| {overlap['share_inside_bounds']:.4f} | PASS |" in markdown
    assert "## Covariate balance (PASS)" in markdown
    balance = query(sample, "select covariate, level from events.covariate_balance")
    for covariate, level in zip(balance["covariate"], balance["level"], strict=True):
        term = covariate if pd.isna(level) else f"{covariate}={level}"
        assert f"| {term} |" in markdown
    for test in ("overlap_gate", "balance_gate", "ks_flags", "variance_ratio_flags"):
        assert re.search(rf"\| {test} \| \w+ \| pass \|", markdown), test
    assert re.search(r"\[dbt tests of the last run\]\(#dbt\): \d+ ran, 0 failed", markdown)


def test_after_dbt_docs_the_report_says_the_last_dbt_command_ran_no_tests(sample: Paths) -> None:
    # the shared sample ends with `dbt docs generate`, which replaces run_results.json
    run = dbt_run(sample, "events")
    assert run.command == "generate"
    assert run.tests() == []
    assert run.notes == ("The last dbt command was `generate`, which runs no tests; "
                         "`ciq build events` runs them.",)  # fmt: skip


def weighted_ecdf_distance(x: np.ndarray, t: np.ndarray, w: np.ndarray) -> float:
    """max over the observed values of |F_treated,w - F_control,w| (sorted cumulative sums)."""
    grid = np.unique(x)

    def ecdf(member: np.ndarray) -> np.ndarray:
        order = np.argsort(x[member])
        values, cumulative = x[member][order], np.cumsum(w[member][order])
        at_or_below = np.searchsorted(values, grid, side="right")
        mass = np.where(at_or_below > 0, cumulative[np.maximum(at_or_below - 1, 0)], 0.0)
        return mass / cumulative[-1]

    return float(np.abs(ecdf(t == 1) - ecdf(t == 0)).max())


def test_diagnostics_tables_match_independent_computations(
    sample: Paths, contract: Contract
) -> None:
    key = ", ".join(contract.primary_key)
    ready = query(sample, f"select * from events.causal_ready order by {key}")
    scores = query(sample, f"select * from events.propensity_scores order by {key}")
    t = ready[contract.treatment_col].to_numpy(float)
    w = scores["ipw_weight"].to_numpy(float)
    ps = scores["propensity_score"].to_numpy(float)

    ratios = query(sample, "select * from events.variance_ratios").set_index("covariate")
    ks = query(sample, "select * from events.ks_statistics")
    numeric = [c for c in contract.covariate_cols if not contract.column(c).is_categorical]
    for name in numeric:
        x = ready[name].to_numpy(float)
        keep = ~np.isnan(x)
        xt, xc = x[keep & (t == 1)], x[keep & (t == 0)]
        wt, wc = w[keep & (t == 1)], w[keep & (t == 0)]
        row = ratios.loc[name]
        assert row["variance_ratio"] == pytest.approx(np.var(xt, ddof=1) / np.var(xc, ddof=1))
        weighted = float(np.cov(xt, aweights=wt, ddof=1) / np.cov(xc, aweights=wc, ddof=1))
        assert row["variance_ratio_weighted"] == pytest.approx(weighted, rel=1e-9)
        assert bool(row["is_within_bounds"]) == (0.5 <= weighted <= 2.0)
        term = ks[(ks["covariate"] == name) & ks["level"].isna()].iloc[0]
        assert term["ks_statistic"] == pytest.approx(stats.ks_2samp(xt, xc).statistic, abs=1e-12)
        expected = weighted_ecdf_distance(x[keep], t[keep], w[keep])
        assert term["ks_statistic_weighted"] == pytest.approx(expected, abs=1e-12)
    for name in contract.covariate_cols:
        if not contract.column(name).is_categorical:
            continue
        for level in ready[name].dropna().unique():
            share = (ready[name] == level).to_numpy(float)
            diff = np.average(share[t == 1], weights=w[t == 1]) - np.average(
                share[t == 0], weights=w[t == 0]
            )
            term = ks[(ks["covariate"] == name) & (ks["level"] == level)].iloc[0]
            assert term["ks_statistic_weighted"] == pytest.approx(abs(diff), abs=1e-12)

    weights = query(sample, "select * from events.weight_diagnostics").set_index("arm")
    for arm, member in (("treated", t == 1), ("control", t == 0)):
        wa = w[member]
        assert weights.loc[arm, "effective_sample_size"] == pytest.approx(
            wa.sum() ** 2 / np.sum(wa**2)
        )
        assert weights.loc[arm, "weight_max"] == pytest.approx(wa.max())
        top = math.ceil(0.01 * wa.size)
        assert weights.loc[arm, "top_1pct_weight_share"] == pytest.approx(
            np.sort(wa)[-top:].sum() / wa.sum()
        )

    trimming = query(sample, "select * from events.trimming_bounds").set_index("rule")
    alpha = float(trimming.loc["crump_optimal", "lower_bound"])
    g = 1 / (ps * (1 - ps))
    if alpha > 0:  # gamma = 1/(alpha(1-alpha)) solves gamma = 2 E[g | g <= gamma]
        gamma = 1 / (alpha * (1 - alpha))
        assert gamma == pytest.approx(2 * g[g <= gamma].mean(), rel=1e-9)
    else:
        assert g.max() <= 2 * g.mean()
    for rule, low, high in (("crump_optimal", alpha, 1 - alpha), ("fixed", 0.1, 0.9)):
        outside = (ps < low) | (ps > high)
        assert trimming.loc[rule, "n_removed_treated"] == np.sum(outside & (t == 1))
        assert trimming.loc[rule, "n_removed_control"] == np.sum(outside & (t == 0))


def test_docs_describe_every_source_model_column_and_the_report_exposure(sample: Paths) -> None:
    target = sample.dbt_project / "target"
    manifest = json.loads((target / "manifest.json").read_text())
    catalog = json.loads((target / "catalog.json").read_text())
    models = {
        uid: node
        for uid, node in manifest["nodes"].items()
        if node["resource_type"] == "model" and node["package_name"] == "ciq"
    }
    assert {f"model.ciq.{name}" for name in DIAGNOSTICS} <= set(models)
    for uid, node in [*models.items(), *manifest["sources"].items()]:
        assert node["description"].strip(), uid
        for name, column in node["columns"].items():
            assert column["description"].strip(), f"{uid}.{name}"
    for uid, table in catalog["nodes"].items():  # every column that exists is documented
        documented = {name.lower() for name in manifest["nodes"][uid]["columns"]}
        assert {name.lower() for name in table["columns"]} <= documented, uid
    report = manifest["exposures"]["exposure.ciq.diagnostics_report"]
    assert report["description"].strip()
    assert {f"model.ciq.{name}" for name in DIAGNOSTICS} <= set(report["depends_on"]["nodes"])
    for uid, exposure in manifest["exposures"].items():
        assert exposure["description"].strip(), uid
    # the lineage: raw-file source -> staging -> curated -> causal_ready -> diagnostics -> report
    parents = manifest["parent_map"]
    chain = [
        "exposure.ciq.diagnostics_report",
        "model.ciq.trimming_bounds",
        "model.ciq.propensity_scores",
        "model.ciq.causal_ready",
        "model.ciq.cur_records",
        "model.ciq.stg_loader__records",
        "source.ciq.loader.records",
    ]
    for child, parent in itertools.pairwise(chain):
        assert parent in parents[child], (child, parent)
    assert (
        "data/raw/events/" in manifest["sources"]["source.ciq.loader.records"]["source_description"]
    )

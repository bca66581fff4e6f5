"""The report when it matters most: a gate fails, or the diagnostics flags warn."""

from __future__ import annotations

import json
import re

import pytest

from loaders.contract import contract_for
from loaders.dbt_build import dbt_args, run_dbt
from loaders.report import write_report
from loaders.sample_data import generate_events
from loaders.settings import Paths
from tests.report_sample import copy_project, run_ciq


@pytest.fixture(scope="module")
def failed_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Paths, int, str, str, str]:
    """Poorly overlapping data built with `ciq build --report` (as `make all` does): the paths,
    exit code, output, errors and the report written then (read before any test changes it)."""
    paths = copy_project(tmp_path_factory.getbasetemp() / "poor_overlap")
    generate_events(paths.raw("events") / "poor.csv", 3000, scenario="poor_overlap", messy=False)
    assert run_ciq(paths, "load", "events", "--quiet")[0] == 0
    code, out, err = run_ciq(paths, "build", "events", "--report")
    markdown = (paths.artifacts("events") / "report.md").read_text()
    return paths, code, out, err, markdown


def test_a_failing_gate_still_writes_the_report_and_the_report_says_why(failed_build) -> None:
    paths, code, out, err, markdown = failed_build
    assert code == 1
    assert "overlap_gate" in err and "is below the minimum 0.6" in err
    assert "report.html" in out
    assert (paths.artifacts("events") / "report.html").stat().st_size > 50_000
    assert "- [Overlap](#overlap): **FAIL**" in markdown
    assert "## Overlap (**FAIL**)" in markdown
    assert re.search(
        r"\| overlap_gate \| overlap_diagnostics \| \*\*error\*\* \| [^|]+ \| .*is below",
        markdown,
    )
    assert re.search(r"\[dbt tests of the last run\]\(#dbt\): \*\*[1-9]\d* failed\*\*", markdown)
    for picture in ("propensity.png", "love_plot.png", "weights.png"):
        assert (paths.artifacts("events") / picture).stat().st_size > 10_000


def test_ciq_report_writes_the_report_of_the_last_build(failed_build) -> None:
    paths = failed_build[0]
    code, out, err = run_ciq(paths, "report", "events")
    assert code == 0, err
    assert f"report: {paths.artifacts('events') / 'report.html'}" in out
    assert "self-contained" in out
    markdown = (paths.artifacts("events") / "report.md").read_text()
    assert "- [Overlap](#overlap): **FAIL**" in markdown


def test_diagnostic_flags_warn_without_failing_and_show_in_the_report(failed_build) -> None:
    paths = failed_build[0]
    contract = contract_for("events", paths.contracts)
    strict = (
        "{ciq_max_ks: 0.0001, ciq_variance_ratio_lower: 0.9999, ciq_variance_ratio_upper: 1.0001}"
    )
    outcome = run_dbt(
        paths,
        dbt_args(paths, "build", "--select", "variance_ratios ks_statistics", "--vars", strict),
    )
    assert outcome.success  # warnings are not gates
    results = json.loads((paths.dbt_project / "target" / "run_results.json").read_text())
    status = {r["unique_id"].split(".")[2]: r["status"] for r in results["results"]}
    assert status["ks_flags"] == "warn"
    assert status["variance_ratio_flags"] == "warn"
    write_report(contract, paths)
    markdown = (paths.artifacts("events") / "report.md").read_text()
    assert re.search(r"\| ks_flags \| ks_statistics \| warn \| [1-9]\d* \| ", markdown)
    assert re.search(
        r"\| variance_ratio_flags \| variance_ratios \| warn \| [1-9]\d* \| ", markdown
    )
    assert "| **flag** |" in markdown  # the balance table marks the flagged terms
    assert "KS flagged above 0.0001" in markdown


def test_a_diagnostics_table_dbt_skipped_is_named_as_possibly_stale(failed_build) -> None:
    paths = failed_build[0]
    contract = contract_for("events", paths.contracts)
    run_results = paths.dbt_project / "target" / "run_results.json"
    results = json.loads(run_results.read_text())
    skipped = {  # as dbt records a model below a failed test
        "unique_id": "model.ciq.trimming_bounds",
        "status": "skipped",
        "relation_name": '"ciq"."events"."trimming_bounds"',
        "message": None,
        "failures": None,
    }
    others = [r for r in results["results"] if r["unique_id"] != skipped["unique_id"]]
    results["results"] = [*others, skipped]
    run_results.write_text(json.dumps(results))
    write_report(contract, paths)
    page = (paths.artifacts("events") / "report.html").read_text()
    assert "trimming_bounds was not rebuilt by the last dbt run (status skipped)" in page

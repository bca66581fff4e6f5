"""What the diagnostics report says: sections of paragraphs, tables and pictures with verdicts.

The content is built once, as plain data, and rendered twice (HTML and Markdown) by
`loaders.report_render`, so both files always say the same thing.
"""

from __future__ import annotations

import math
import numbers
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd

from loaders.report_data import DbtResult, ReportData

PROPENSITY_PNG = "propensity.png"
LOVE_PNG = "love_plot.png"
WEIGHTS_PNG = "weights.png"
MISSING = "\u2013"  # an en dash: no value
FAILED_STATUSES = {"fail", "error", "runtime error"}


@dataclass(frozen=True)
class Verdict:
    """PASS (True), FAIL (False) or a neutral note (None) with its text."""

    passed: bool | None
    text: str


Cell = str | Verdict


@dataclass(frozen=True)
class Paragraph:
    text: str  # plain text; `code` spans are kept


@dataclass(frozen=True)
class Table:
    headers: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]


@dataclass(frozen=True)
class Picture:
    name: str  # file name next to the report
    alt: str


Block = Paragraph | Table | Picture


@dataclass(frozen=True)
class Section:
    anchor: str
    title: str
    verdict: Verdict | None
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class Report:
    title: str
    subtitle: str
    summary: tuple[tuple[str, Verdict], ...]
    notes: tuple[str, ...]
    sections: tuple[Section, ...]


def number(value: object, digits: int = 4) -> str:
    """A table cell for a number: ints with separators, floats rounded, missing as a dash."""
    if value is None or value is pd.NA:
        return MISSING
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    try:
        numeric = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(numeric):
        return MISSING
    if math.isinf(numeric):
        return "∞" if numeric > 0 else "-∞"
    if abs(numeric) >= 1000:
        return f"{numeric:,.1f}"
    return f"{numeric:.{digits}f}"


def _plain(value: object) -> str:
    """A raw value as it was (no rounding or separators); missing as a dash."""
    return MISSING if value is None or pd.isna(value) else str(value)  # type: ignore[arg-type]


def _count(value: object) -> str:
    return MISSING if value is None or pd.isna(value) else f"{int(value):,}"  # type: ignore[arg-type]


def _pass(ok: bool, yes: str = "PASS", no: str = "FAIL") -> Verdict:
    return Verdict(bool(ok), yes if ok else no)


def _term(covariate: str, level: object) -> str:
    return covariate if level is None or pd.isna(level) else f"{covariate}={level}"


def build_report(data: ReportData, *, generated_at: datetime | None = None) -> Report:
    """The report's content for the collected data."""
    moment = (generated_at or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    contract = data.contract
    sections = (
        _rows_section(data),
        _leakage_section(data),
        _overlap_section(data),
        _balance_section(data),
        _weights_section(data),
        _dbt_section(data),
    )
    summary = tuple(
        (section.title, section.verdict) for section in sections if section.verdict is not None
    )
    notes = tuple(
        f"{name} was not rebuilt by the last dbt run (status "
        f"{data.dbt.model_status(name)}): its table may be from an earlier build."
        for name in data.stale
    )
    return Report(
        title=f"ciq diagnostics: {contract.dataset}",
        subtitle=(
            f"{data.n_ready:,} rows in {contract.dataset}.causal_ready · estimand "
            f"{contract.estimand.upper()} · warehouse {data.warehouse} · generated {moment}"
        ),
        summary=summary,
        notes=notes,
        sections=sections,
    )


def _rows_section(data: ReportData) -> Section:
    load = data.load
    blocks: list[Block] = [Paragraph(note) for note in load.notes]
    if load.files:
        rows = [
            (
                f.source,
                _count(f.rows_read),
                _count(f.rows_staged),
                _count(f.rows_rejected),
                ", ".join(f"{rule}: {n}" for rule, n in sorted(f.rejects_by_rule.items()))
                or MISSING,
            )
            for f in load.files
        ]
        totals = load.rejects_by_rule()
        rows.append(
            (
                "total",
                _count(sum(f.rows_read for f in load.files)),
                _count(sum(f.rows_staged for f in load.files)),
                _count(sum(f.rows_rejected for f in load.files)),
                ", ".join(f"{rule}: {n}" for rule, n in totals.items()) or MISSING,
            )
        )
        blocks.append(
            Table(("file", "read", "staged", "rejected", "rejected by rule"), tuple(rows))
        )
        staged = sum(f.rows_staged for f in load.files)
        blocks.append(
            Paragraph(
                f"{data.n_ready:,} of the {staged:,} staged rows reach causal_ready: duplicates "
                f"on the primary key ({', '.join(data.contract.primary_key)}) keep the latest."
            )
        )
    if not load.rejects_by_rule_and_column.empty:
        by_rule = load.rejects_by_rule_and_column
        blocks.append(Paragraph("Rejected rows by rule and column (data/rejects/):"))
        blocks.append(
            Table(
                ("rule", "column", "rows"),
                tuple(
                    (str(r.rule), str(r.column_name), _count(r.n_rows))
                    for r in by_rule.itertuples(index=False)
                ),
            )
        )
    if not load.reject_examples.empty:
        examples = load.reject_examples
        blocks.append(Paragraph(f"The first {len(examples)} rejected rows:"))
        blocks.append(
            Table(
                tuple(str(c) for c in examples.columns),
                tuple(tuple(_plain(v) for v in row) for row in examples.itertuples(index=False)),
            )
        )
    return Section("rows", "Rows read, staged and rejected", None, tuple(blocks))


def _leakage_section(data: ReportData) -> Section:
    leakage = data.leakage
    if not leakage.patterns:
        text = "The contract declares no leakage deny-list (leakage_forbidden_cols)."
        return Section(
            "leakage", "Leakage checks", Verdict(None, "no deny-list"), (Paragraph(text),)
        )
    patterns = ", ".join(f"`{p}`" for p in leakage.patterns)
    rows = []
    for where, names in leakage.checked.items():
        hits = [f"{column} ~ {pattern}" for w, column, pattern in leakage.matches if w == where]
        rows.append(
            (
                where,
                _count(len(names)),
                ", ".join(hits) or "none",
                _pass(not hits),
            )
        )
    blocks: tuple[Block, ...] = (
        Paragraph(f"Deny-list of the contract: {patterns}. No column may match it."),
        Table(("columns of", "checked", "matching the deny-list", "result"), tuple(rows)),
    )
    return Section("leakage", "Leakage checks", _pass(leakage.passed), blocks)


def _overlap_section(data: ReportData) -> Section:
    overlap = data.tables["overlap_diagnostics"].iloc[0]
    ok = bool(overlap["is_overlap_sufficient"])
    lower, upper = float(overlap["overlap_lower"]), float(overlap["overlap_upper"])
    metrics = (
        ("rows (treated / control)", f"{_count(overlap['n_treated'])} / "
         f"{_count(overlap['n_control'])}", None),
        (f"share of scores inside ({lower:g}, {upper:g})", number(overlap["share_inside_bounds"]),
         _pass(ok)),
        ("minimum share for the gate", number(overlap["min_overlap_share"]), None),
        ("mass below 0.01 / above 0.99",
         f"{number(overlap['mass_below_0_01'])} / {number(overlap['mass_above_0_99'])}", None),
        ("score range, treated",
         f"{number(overlap['min_ps_treated'])} to {number(overlap['max_ps_treated'])}", None),
        ("score range, control",
         f"{number(overlap['min_ps_control'])} to {number(overlap['max_ps_control'])}", None),
    )  # fmt: skip
    blocks: list[Block] = [
        Table(
            ("metric", "value", "result"),
            tuple((name, value, verdict or "") for name, value, verdict in metrics),
        ),
        Picture(PROPENSITY_PNG, "Mirrored histograms of the propensity score by arm"),
    ]
    trimming = data.table("trimming_bounds")
    if trimming is not None:
        blocks.append(
            Paragraph(
                "Trimming (not applied): Crump et al. (2009) optimal bounds and the fixed rule, "
                "with the rows each would remove."
            )
        )
        blocks.append(
            Table(
                ("rule", "keep scores in", "removed treated", "removed control", "share removed"),
                tuple(
                    (
                        str(r.rule),
                        f"[{number(r.lower_bound)}, {number(r.upper_bound)}]",
                        f"{_count(r.n_removed_treated)} of {_count(r.n_treated)}",
                        f"{_count(r.n_removed_control)} of {_count(r.n_control)}",
                        number(r.share_removed),
                    )
                    for r in trimming.itertuples(index=False)
                ),
            )
        )
    return Section("overlap", "Overlap", _pass(ok), tuple(blocks))


def _balance_section(data: ReportData) -> Section:
    balance = data.tables["covariate_balance"].copy()
    balance["term"] = [
        _term(c, lv) for c, lv in zip(balance["covariate"], balance["level"], strict=True)
    ]
    ks = data.table("ks_statistics")
    ratios = data.table("variance_ratios")
    ks_by_term = (
        {} if ks is None else {_term(r.covariate, r.level): r for r in ks.itertuples(index=False)}
    )
    ratio_by_covariate = (
        {} if ratios is None else {r.covariate: r for r in ratios.itertuples(index=False)}
    )
    max_smd = float(balance["max_abs_smd"].iloc[0]) if len(balance) else math.nan
    rows = []
    for r in balance.itertuples(index=False):
        k = ks_by_term.get(r.term)
        v = ratio_by_covariate.get(r.covariate) if r.kind == "continuous" else None
        rows.append(
            (
                r.term,
                str(r.kind),
                number(r.smd),
                number(r.smd_weighted),
                _pass(bool(r.is_balanced), "ok", "too large"),
                number(k.ks_statistic) if k else MISSING,
                number(k.ks_statistic_weighted) if k else MISSING,
                _pass(bool(k.is_within_threshold), "ok", "flag") if k else MISSING,
                number(v.variance_ratio) if v else MISSING,
                number(v.variance_ratio_weighted) if v else MISSING,
                _pass(bool(v.is_within_bounds), "ok", "flag") if v else MISSING,
            )
        )
    ok = bool(balance["is_balanced"].all())
    blocks: list[Block] = [
        Paragraph(
            f"Gate: every weighted |SMD| ≤ {max_smd:g} (R cobalt conventions: continuous SMDs "
            "over the unweighted SD, binary and category terms as differences in proportions). "
            + _flag_text(ks, ratios)
            + " (w) = after IPW weighting."
        ),
        Table(
            (
                "term",
                "kind",
                "SMD",
                "SMD (w)",
                "|SMD| gate",
                "KS",
                "KS (w)",
                "KS flag",
                "var. ratio",
                "var. ratio (w)",
                "ratio flag",
            ),
            tuple(rows),
        ),
        Picture(LOVE_PNG, "Love plot: |SMD| per balance term before and after weighting"),
    ]
    return Section("balance", "Covariate balance", _pass(ok), tuple(blocks))


def _flag_text(ks: pd.DataFrame | None, ratios: pd.DataFrame | None) -> str:
    parts = []
    if ks is not None and len(ks):
        parts.append(f"KS flagged above {float(ks['max_ks'].iloc[0]):g}")
    if ratios is not None and len(ratios):
        low, high = float(ratios["ratio_lower"].iloc[0]), float(ratios["ratio_upper"].iloc[0])
        parts.append(f"variance ratios flagged outside [{low:g}, {high:g}]")
    if not parts:
        return ""
    return "Warnings, not gates: " + "; ".join(parts) + "."


def _weights_section(data: ReportData) -> Section:
    weights = data.table("weight_diagnostics")
    blocks: list[Block] = []
    if weights is not None:
        blocks.append(
            Table(
                (
                    "arm",
                    "rows",
                    "Kish ESS",
                    "ESS / rows",
                    "weight min",
                    "weight mean",
                    "weight max",
                    "top 1% share of weight",
                ),
                tuple(
                    (
                        str(r.arm),
                        _count(r.n_units),
                        number(r.effective_sample_size, 1),
                        number(r.ess_share, 3),
                        number(r.weight_min, 3),
                        number(r.weight_mean, 3),
                        number(r.weight_max, 3),
                        number(r.top_1pct_weight_share, 3),
                    )
                    for r in weights.itertuples(index=False)
                ),
            )
        )
    else:
        blocks.append(Paragraph("weight_diagnostics has not been built for this dataset."))
    blocks.append(Picture(WEIGHTS_PNG, "Histograms of the IPW weights per arm"))
    return Section("weights", "Weights", None, tuple(blocks))


def _dbt_section(data: ReportData) -> Section:
    run = data.dbt
    blocks: list[Block] = [Paragraph(note) for note in run.notes]
    tests = run.tests()
    if not tests:
        blocks.append(Paragraph("No dbt test results in the last run."))
        return Section("dbt", "dbt tests of the last run", Verdict(None, "none"), tuple(blocks))
    counts = Counter(result.status for result in tests)
    failed = sum(n for status, n in counts.items() if status in FAILED_STATUSES)
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    blocks.append(
        Paragraph(f"`dbt {run.command}` at {run.generated_at}: {len(tests)} tests, {summary}.")
    )
    blocks.append(
        Table(
            ("test", "on", "status", "failing rows", "message"),
            tuple(_test_row(result) for result in sorted(tests, key=_test_order)),
        )
    )
    verdict = Verdict(failed == 0, f"{failed} failed" if failed else f"{len(tests)} ran, 0 failed")
    return Section("dbt", "dbt tests of the last run", verdict, tuple(blocks))


def _test_order(result: DbtResult) -> tuple[int, str]:
    rank = {"error": 0, "fail": 0, "runtime error": 0, "warn": 1, "skipped": 2}
    return rank.get(result.status, 3), result.name


def _test_row(result: DbtResult) -> tuple[Cell, ...]:
    status: Cell
    if result.status in FAILED_STATUSES:
        status = Verdict(False, result.status)
    elif result.status == "pass":
        status = Verdict(True, "pass")
    else:
        status = Verdict(None, result.status)
    failures = MISSING if result.failures is None else f"{result.failures:,}"
    message = result.message if result.status != "pass" else ""
    return result.name, result.on, status, failures, message

"""`ciq report`: write artifacts/<dataset>/report.html, report.md and the three PNG pictures."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from loaders import atomic
from loaders.contract import Contract
from loaders.plots import BalancePoint, love_plot, propensity_plot, weights_plot
from loaders.report_content import LOVE_PNG, PROPENSITY_PNG, WEIGHTS_PNG, build_report
from loaders.report_data import ReportData, collect
from loaders.report_render import render_html, render_markdown
from loaders.settings import Paths


@dataclass(frozen=True)
class ReportFiles:
    """The files one report consists of."""

    html: Path
    markdown: Path
    pictures: tuple[Path, ...]

    def summary(self) -> str:
        size = self.html.stat().st_size
        return (
            f"report: {self.html} ({size / 1024:.0f} KiB, self-contained)\n"
            f"        {self.markdown} and {len(self.pictures)} pictures in {self.html.parent}"
        )


def draw_pictures(data: ReportData) -> dict[str, bytes]:
    """The propensity, love and weight plots of the collected data, as PNG bytes by file name."""
    treated = data.scores["treated"].to_numpy(dtype=np.float64) == 1.0
    overlap = data.tables["overlap_diagnostics"].iloc[0]
    trimming = data.table("trimming_bounds")
    crump = None
    if trimming is not None:
        row = trimming.loc[trimming["rule"] == "crump_optimal"]
        if len(row):
            crump = (float(row["lower_bound"].iloc[0]), float(row["upper_bound"].iloc[0]))
    balance = data.tables["covariate_balance"]
    points = [
        BalancePoint(
            r.covariate if r.level is None or pd.isna(r.level) else f"{r.covariate}={r.level}",
            float(r.smd),
            float(r.smd_weighted),
        )
        for r in balance.itertuples(index=False)
    ]
    threshold = float(balance["max_abs_smd"].iloc[0]) if len(balance) else 0.1
    return {
        PROPENSITY_PNG: propensity_plot(
            data.scores["propensity_score"].to_numpy(dtype=np.float64),
            treated,
            overlap_bounds=(float(overlap["overlap_lower"]), float(overlap["overlap_upper"])),
            trimming_bounds=crump,
        ),
        LOVE_PNG: love_plot(points, threshold=threshold),
        WEIGHTS_PNG: weights_plot(data.scores["ipw_weight"].to_numpy(dtype=np.float64), treated),
    }


def write_report(
    contract: Contract, paths: Paths, *, generated_at: datetime | None = None
) -> ReportFiles:
    """Collect, draw and write the report of a built dataset (ReportError if it is not built)."""
    data = collect(contract, paths)
    report = build_report(data, generated_at=generated_at)
    images = draw_pictures(data)
    folder = paths.artifacts(contract.dataset)
    folder.mkdir(parents=True, exist_ok=True)
    pictures = []
    for name, png in images.items():
        pictures.append(atomic.write_bytes(folder / name, png))
    markdown = atomic.write_bytes(folder / "report.md", render_markdown(report).encode("utf-8"))
    page = atomic.write_bytes(folder / "report.html", render_html(report, images).encode("utf-8"))
    return ReportFiles(page, markdown, tuple(pictures))

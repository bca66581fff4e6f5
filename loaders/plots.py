"""The report's pictures as PNG bytes: propensity overlap, love plot, weight distribution.

matplotlib's object API with the Agg canvas (no pyplot, no display, no global state), so the
pictures render the same on a laptop, a server and CI.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

TREATED_COLOUR = "#d95f02"
CONTROL_COLOUR = "#1b9e77"
UNWEIGHTED_COLOUR = "#7570b3"
WEIGHTED_COLOUR = "#e7298a"
DPI = 110


@dataclass(frozen=True)
class BalancePoint:
    """One love-plot row: a balance term's label and its SMDs."""

    label: str
    smd: float
    smd_weighted: float


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def propensity_plot(
    scores: np.ndarray,
    treated: np.ndarray,
    *,
    overlap_bounds: tuple[float, float],
    trimming_bounds: tuple[float, float] | None = None,
    bins: int = 40,
) -> bytes:
    """Mirrored histograms of the propensity score (treated up, control down, share of each arm)
    with the overlap bounds (solid) and the Crump trimming bounds (dashed) drawn."""
    ps = np.asarray(scores, dtype=np.float64)
    is_treated = np.asarray(treated, dtype=bool)
    edges = np.linspace(0.0, 1.0, bins + 1)
    figure = Figure(figsize=(7.5, 4.2), layout="constrained")
    axes = figure.add_subplot()
    for arm, sign, colour, label in (
        (is_treated, 1.0, TREATED_COLOUR, "treated"),
        (~is_treated, -1.0, CONTROL_COLOUR, "control"),
    ):
        counts, _ = np.histogram(ps[arm], bins=edges)
        share = counts / max(int(arm.sum()), 1)
        axes.bar(
            edges[:-1],
            sign * share,
            width=np.diff(edges),
            align="edge",
            color=colour,
            alpha=0.8,
            label=f"{label} (n={int(arm.sum())})",
        )
    axes.axhline(0.0, color="black", linewidth=0.8)
    for bound in overlap_bounds:
        axes.axvline(bound, color="#444444", linewidth=1.4)
    axes.plot([], [], color="#444444", linewidth=1.4, label="overlap bounds")
    if trimming_bounds is not None and trimming_bounds[0] > 0:
        for bound in trimming_bounds:
            axes.axvline(bound, color="#444444", linestyle="--", linewidth=1.2)
        axes.plot([], [], color="#444444", linestyle="--", label="Crump trimming bounds")
    axes.set_xlim(0.0, 1.0)
    limit = max(abs(value) for value in axes.get_ylim())
    axes.set_ylim(-limit, limit)
    axes.yaxis.set_major_formatter(lambda value, _: f"{abs(value):.2f}")
    axes.set_xlabel("propensity score")
    axes.set_ylabel("share of the arm (treated up, control down)")
    axes.set_title("Propensity score distribution by arm")
    figure.legend(loc="outside lower center", ncols=4, fontsize=8, frameon=False)
    return _png(figure)


def love_plot(points: Sequence[BalancePoint], *, threshold: float) -> bytes:
    """|SMD| before (open circle) and after (filled) weighting per balance term, threshold line."""
    labels = [point.label for point in points][::-1]
    before = np.abs([point.smd for point in points][::-1])
    after = np.abs([point.smd_weighted for point in points][::-1])
    rows = np.arange(len(labels))
    figure = Figure(figsize=(7.5, 1.5 + 0.34 * max(len(labels), 1)), layout="constrained")
    axes = figure.add_subplot()
    axes.hlines(rows, 0.0, np.fmax(before, after), color="#dddddd", linewidth=1.0, zorder=1)
    axes.scatter(
        before,
        rows,
        facecolors="white",
        edgecolors=UNWEIGHTED_COLOUR,
        s=42,
        linewidths=1.6,
        label="unweighted",
        zorder=3,
    )
    axes.scatter(after, rows, color=WEIGHTED_COLOUR, s=42, label="IPW-weighted", zorder=4)
    axes.axvline(threshold, color="#444444", linestyle="--", linewidth=1.2)
    axes.plot([], [], color="#444444", linestyle="--", label=f"threshold {threshold:g}")
    axes.set_yticks(rows, labels, fontsize=8)
    finite = np.concatenate([before[np.isfinite(before)], after[np.isfinite(after)]])
    axes.set_xlim(0.0, 1.08 * max(float(finite.max()) if finite.size else 0.0, threshold))
    axes.set_ylim(-0.7, len(labels) - 0.3)
    axes.set_xlabel("|SMD| (absolute difference in proportions for binary terms)")
    axes.set_title("Covariate balance (love plot)")
    figure.legend(loc="outside lower center", ncols=3, fontsize=8, frameon=False)
    return _png(figure)


def weights_plot(weights: np.ndarray, treated: np.ndarray, *, bins: int = 40) -> bytes:
    """Histogram of the IPW weights per arm, with each arm's largest weight and Kish ESS."""
    w = np.asarray(weights, dtype=np.float64)
    is_treated = np.asarray(treated, dtype=bool)
    figure = Figure(figsize=(7.5, 3.6), layout="constrained")
    panels = figure.subplots(1, 2)
    for axes, arm, colour, label in (
        (panels[0], is_treated, TREATED_COLOUR, "treated"),
        (panels[1], ~is_treated, CONTROL_COLOUR, "control"),
    ):
        values = w[arm]
        if values.size:
            axes.hist(values, bins=bins, color=colour, alpha=0.85)
            ess = float(values.sum()) ** 2 / float(np.dot(values, values))
            axes.axvline(float(values.max()), color="#444444", linestyle="--", linewidth=1.0)
            axes.set_title(
                f"{label}: n={values.size}, ESS={ess:.0f}, max={values.max():.2f}", fontsize=9
            )
        else:
            axes.set_title(f"{label}: no rows", fontsize=9)
        axes.set_xlabel("IPW weight")
        axes.set_ylabel("rows")
    figure.suptitle("Distribution of the IPW weights")
    return _png(figure)

"""The benchmark chart: service-level AC@1/AC@3/AC@5 per method and fault type.

Drawn on matplotlib's Agg canvas through the object API (no pyplot), so it needs no
display and touches no global figure state.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tracehound.bench.metrics import LevelScores, MethodSummary

#: The cut-offs drawn, one bar each.
CHART_K = (1, 3, 5)
#: The group of all cases, drawn before the fault types.
ALL_CASES = "all"


def chart_groups(summary: MethodSummary) -> list[tuple[str, LevelScores]]:
    """The bar groups of one method's panel: all cases, then each fault type."""
    groups = [(ALL_CASES, summary.overall.service)]
    groups += [(name, scores.service) for name, scores in summary.by_fault_type.items()]
    return groups


def accuracy_chart(summaries: Sequence[MethodSummary], path: Path) -> Path:
    """Write a grouped bar chart to `path` (PNG): one panel per method, stacked, one bar
    group per fault type, one bar per AC@k. Groups without a service label show no bars."""
    if not summaries:
        raise ValueError("nothing to draw: no method summaries")
    most_groups = max(len(chart_groups(s)) for s in summaries)
    size = (max(5.0, 1.5 + 0.9 * most_groups), 0.6 + 2.6 * len(summaries))
    figure = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(summaries), 1, sharey=True, squeeze=False)[:, 0]
    bar = 0.8 / len(CHART_K)
    for ax, summary in zip(axes, summaries, strict=True):
        groups = chart_groups(summary)
        x = np.arange(len(groups))
        for j, k in enumerate(CHART_K):
            values = [scores.ac_at(k) or 0.0 for _, scores in groups]
            ax.bar(x + (j - (len(CHART_K) - 1) / 2) * bar, values, bar, label=f"AC@{k}")
        ax.set_xticks(x, [f"{name}\nn={scores.n}" for name, scores in groups], fontsize=8)
        ax.set_title(summary.label)
        ax.set_ylim(0.0, 1.0)
        ax.grid(axis="y", alpha=0.3)
        ax.set_ylabel("service AC@k")
    handles, labels = axes[0].get_legend_handles_labels()
    figure.suptitle(f"tracehound bench: {summaries[0].dataset}", fontsize=10)
    figure.legend(handles, labels, loc="outside lower center", fontsize=8, ncols=len(CHART_K))
    figure.savefig(path, dpi=110)
    return path

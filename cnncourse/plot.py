"""Figures for the book: learning curves and benchmark bars.

Every function returns a `matplotlib.figure.Figure` built without pyplot: no global state, no
window, and a notebook shows it once (as the cell's value), not twice.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from matplotlib.figure import Figure

if TYPE_CHECKING:
    from cnncourse.bench import BenchResult
    from cnncourse.train.history import History

__all__ = ["plot_history", "plot_bench"]


def plot_history(history: History, title: str | None = None) -> Figure:
    """Loss (left) and accuracy (right) per epoch, training and validation.

    A training curve that keeps falling while validation turns up is overfitting; both flat and
    high is underfitting (or a learning rate too low); a jagged climb, a learning rate too high.
    """
    fig = Figure(figsize=(9, 3.4), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    for ax, metric, label in ((ax_loss, "loss", "loss"), (ax_acc, "acc", "accuracy")):
        for split, style in (("train", "-o"), ("val", "--s")):
            values = getattr(history, f"{split}_{metric}")
            if any(not math.isnan(v) for v in values):
                ax.plot(history.epoch, values, style, ms=3, label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
    ax_acc.yaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    if title:
        fig.suptitle(title)
    return fig


def plot_bench(results: Sequence[BenchResult], metric: str = "images_per_s") -> Figure:
    """Horizontal bars of `metric` per variant, one panel per model, speed-up vs the first.

    The first variant of each model (the textbook loop) is the reference: each bar is labelled
    with its value and its ratio to it.
    """
    models = list(dict.fromkeys(r.model for r in results))
    fig = Figure(figsize=(8, 0.45 * len(results) + 1.2 * len(models)), layout="constrained")
    axes = fig.subplots(len(models), 1, squeeze=False)[:, 0]
    for ax, model in zip(axes, models, strict=True):
        rows = [r for r in results if r.model == model]
        values = [getattr(r, metric) for r in rows]
        names = [r.variant for r in rows]
        colors = ["tab:gray" if i == 0 else "tab:blue" for i in range(len(rows))]
        ax.barh(names, values, color=colors)
        ax.invert_yaxis()  # first variant on top
        for i, v in enumerate(values):
            ax.text(v, i, f" {v:,.0f}  ({v / values[0]:.2f}x)", va="center", fontsize=8)
        ax.set_title(f"{model} ({rows[0].device})", fontsize=10, loc="left")
        ax.set_xlim(0, max(values) * 1.35)
        ax.grid(axis="x", alpha=0.3)
    axes[-1].set_xlabel(metric.replace("_per_s", "/s").replace("_", " "))
    return fig

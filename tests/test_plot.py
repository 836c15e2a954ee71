"""`cnncourse.plot`: learning curves from a `History` (the benchmark's bars: test_bench)."""

from __future__ import annotations

import math

from matplotlib.figure import Figure

from cnncourse.plot import plot_history
from cnncourse.train import History


def test_learning_curves_plot_what_was_recorded() -> None:
    history = History()
    for epoch, (loss, acc) in enumerate([(2.0, 0.3), (1.5, 0.5), (1.2, 0.6)], start=1):
        history.append(
            epoch=epoch,
            train_loss=loss,
            train_acc=acc,
            val_loss=math.nan if epoch == 1 else loss + 0.1,  # not validated in epoch 1
            val_acc=math.nan if epoch == 1 else acc - 0.1,
            lr=0.1,
            seconds=1.0,
        )
    fig = plot_history(history, title="run")
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    loss_ax, acc_ax = fig.axes
    for ax, metric in ((loss_ax, "loss"), (acc_ax, "acc")):
        lines = {line.get_label(): line for line in ax.get_lines()}
        assert set(lines) == {"train", "val"}
        assert list(lines["train"].get_ydata()) == getattr(history, f"train_{metric}")
        assert list(lines["val"].get_xdata()) == history.epoch
    assert fig._suptitle.get_text() == "run"

"""`History`: what `fit` measured, one row per epoch, ready to print and checkpoint (and to plot:
`cnncourse.plot.plot_history`, which reads it; this module does not know about figures)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

__all__ = ["History"]


def _col() -> list:
    return field(default_factory=list)


@dataclass
class History:
    """Per-epoch metrics of a training run, as parallel lists (one entry per epoch).

    Losses are means over the epoch's samples; accuracies are fractions in [0, 1] (of images for
    classification, of pixels for segmentation). ``val_*`` is NaN for an epoch without validation
    data. ``lr`` is the learning rate at the end of the epoch, ``seconds`` its wall-clock time
    (training and validation).

    >>> h = History()
    >>> h.append(epoch=1, train_loss=2.0, train_acc=0.3, val_loss=1.9, val_acc=0.35, lr=0.1,
    ...          seconds=4.2)
    >>> h.val_acc[-1], len(h)
    (0.35, 1)
    """

    epoch: list[int] = _col()
    train_loss: list[float] = _col()
    train_acc: list[float] = _col()
    val_loss: list[float] = _col()
    val_acc: list[float] = _col()
    lr: list[float] = _col()
    seconds: list[float] = _col()

    def append(self, **row: float) -> None:
        """Add one epoch; every column must be given, so the lists stay aligned."""
        names = {f.name for f in fields(self)}
        if set(row) != names:
            raise ValueError(f"History.append needs exactly {sorted(names)}, got {sorted(row)}")
        for name, value in row.items():
            getattr(self, name).append(value)

    def __len__(self) -> int:
        return len(self.epoch)

    def to_dict(self) -> dict[str, list]:
        """Plain lists of numbers: safe to `torch.save` and to load with ``weights_only=True``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, state: dict[str, list]) -> History:
        return cls(**{k: list(v) for k, v in state.items()})

    def best(self, metric: str = "val_acc") -> dict[str, float]:
        """The row (as a dict) of the epoch with the highest `metric` (lowest for a loss)."""
        values = [v for v in getattr(self, metric) if not math.isnan(v)]
        if not values:
            raise ValueError(f"no {metric} recorded yet")
        pick = min if "loss" in metric else max
        i = getattr(self, metric).index(pick(values))
        return {f.name: getattr(self, f.name)[i] for f in fields(self)}

    def __str__(self) -> str:
        return "\n".join(format_row(self, i) for i in range(len(self)))


def format_row(h: History, i: int, epochs: int | None = None) -> str:
    """One log line: ``epoch 3/10  loss 0.512 acc 81.2%  val_loss 0.601 val_acc 78.0% ...``."""
    of = f"/{epochs}" if epochs else ""
    text = f"epoch {h.epoch[i]}{of}  loss {h.train_loss[i]:.4f} acc {h.train_acc[i]:.1%}"
    if not math.isnan(h.val_loss[i]):
        text += f"  val_loss {h.val_loss[i]:.4f} val_acc {h.val_acc[i]:.1%}"
    return text + f"  lr {h.lr[i]:.3g}  {h.seconds[i]:.1f}s"

"""`evaluate`: a model's mean loss and accuracy over a dataset, in eval mode (also under DDP).

`cnncourse.train.loop.fit` calls it after every epoch; it is also the function to call on a
trained model. Metrics are summed on the device and read once, at the end (`Meter`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn

from cnncourse.meta import training_mode
from cnncourse.train.device import autocast
from cnncourse.train.distributed import Dist, current, split_by_sampler
from cnncourse.train.step import Meter, to_batch

__all__ = ["evaluate", "Batches"]

#: What `fit` and `evaluate` iterate over: (inputs, targets) batches, with a length.
Batches = Iterable[tuple[Tensor, Tensor]]


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: Batches,
    loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
    device: str | torch.device | None = None,
    amp: str | None = None,
    channels_last: bool = False,
) -> dict[str, float]:
    """Mean loss and accuracy of `model` over `data`, in eval mode: ``{"loss": ., "acc": .}``.

    `device`: where to run (default: where the model's parameters are). Under DDP each process
    evaluates its slice of every batch (or, with a `DistributedSampler`, its own batches) and
    the sums are added up over processes. What accuracy means for soft targets and ignored
    pixels: `cnncourse.train.step.Meter`.
    """
    device = torch.device(device) if device else next(model.parameters()).device
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    d, meter = current(), _meter(device, loss_fn)
    slices = _slices(data, d)
    # eval mode: batch norm uses its running statistics, dropout is off; every submodule's own
    # mode comes back afterwards (a frozen batch norm stays in eval mode)
    with training_mode(model, False):
        for x, y in data:
            if len(x) < slices.world_size:  # too small to give every process a sample
                continue
            x, y = to_batch(x, y, device, channels_last, slices)
            with autocast(device, amp):
                out = model(x)
                loss = loss_fn(out, y)
            meter.add(loss, out, y)
    loss, acc = meter.read(d)
    return {"loss": loss, "acc": acc}


def _meter(device: torch.device, loss_fn: Callable[[Tensor, Tensor], Tensor]) -> Meter:
    """A `Meter` that leaves out the targets the loss ignores (``nn.CrossEntropyLoss``'s
    ``ignore_index``, -100 by default); a loss without one counts every target."""
    return Meter(device, getattr(loss_fn, "ignore_index", None))


def _slices(data: Batches, d: Dist) -> Dist:
    """The `Dist` that `to_batch` slices `data`'s batches by: `d` (each process takes its slice
    of every batch), or one process (no slicing) when a `DistributedSampler` already gave each
    process batches of its own."""
    return Dist() if split_by_sampler(data) else d

"""One optimisation step, and the bookkeeping around it that must not slow it down.

`make_step` is shared by `cnncourse.train.fit` and `cnncourse.bench`, so the benchmark times
exactly the step that training runs. `Meter` keeps the running loss and accuracy as tensors on
the device: adding to them queues a kernel, reading them (`Meter.read`) waits for the GPU, so
the loop reads only now and then.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from cnncourse.train.device import autocast
from cnncourse.train.distributed import Dist, all_sum, shard

__all__ = ["SCHEDULERS", "Step", "make_step", "Meter", "to_batch"]

Step = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]

#: Learning-rate schedules by name, built for `total` optimizer steps (stepped after each).
SCHEDULERS: dict[str, Callable[[torch.optim.Optimizer, int], object]] = {
    "onecycle": lambda opt, total: torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=[g["lr"] for g in opt.param_groups], total_steps=total
    ),
    "cosine": lambda opt, total: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total),
}


def make_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    device: torch.device,
    amp: str | None = None,
    scaler: torch.amp.GradScaler | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
) -> Step:
    """One optimisation step, ``step(x, y) -> (loss, outputs)``, both detached.

    `fit` and `cnncourse.bench` share it, so the benchmark times exactly the training step.
    The step is the textbook one; mixed precision only changes how its lines run: under
    autocast, the forward and the loss run in bf16/fp16 where it is safe, and with fp16 a
    `GradScaler` scales the loss so that small gradients do not underflow to 0.
    """
    if scaler is None:
        backward, update = Tensor.backward, optimizer.step
    else:  # fp16

        def backward(loss: Tensor) -> None:
            scaler.scale(loss).backward()

        def update() -> None:
            scaler.step(optimizer)  # unscales; skips the step if a gradient is inf/NaN
            scaler.update()

    def step(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        with autocast(device, amp):
            out = model(x)  # 1. forward
            loss = loss_fn(out, y)  # 2. loss
        optimizer.zero_grad(set_to_none=True)  # free the old grads rather than fill them with 0
        backward(loss)  # 3. backward: a gradient for every parameter
        update()  # 4. optimizer step
        if scheduler is not None:
            scheduler.step()  # the learning rate of the next step
        return loss.detach(), out.detach()

    return step


class Meter:
    """Running loss and accuracy, summed on the device; `read` syncs (and all-reduces under DDP).

    Accuracy is the fraction of targets whose class the model scores highest (argmax over the
    class dim, dim 1), for every kind of target `fit` meets:

    - class labels (N,) or masks (N, H, W): a target equal to `ignore_index` is not counted,
      as the loss does not count it (give the loss's, e.g. 255 for unlabelled pixels with
      ``nn.CrossEntropyLoss(ignore_index=255)``);
    - soft targets, float class probabilities of the outputs' shape (label smoothing, mixup):
      the target's class is its most probable one, ``y.argmax(1)``;
    - any other targets (e.g. regression values): accuracy means nothing and reads NaN.
    """

    def __init__(self, device: torch.device, ignore_index: int | None = None) -> None:
        dtype = torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64
        self.sums = torch.zeros(3, device=device, dtype=dtype)  # [loss * n, correct, counted]
        self.samples = 0  # host-side count: known without a sync
        self.ignore_index = ignore_index

    def add(self, loss: Tensor, out: Tensor, y: Tensor) -> None:
        self.sums[0] += loss.to(self.sums.dtype) * len(y)
        self.samples += len(y)
        if not y.is_floating_point():  # class labels or masks
            right = out.argmax(1) == y
            if self.ignore_index is not None:
                counted = y != self.ignore_index
                right &= counted
                self.sums[2] += counted.sum()
            else:
                self.sums[2] += y.numel()
        elif y.shape == out.shape:  # class probabilities
            right = out.argmax(1) == y.argmax(1)
            self.sums[2] += right.numel()
        else:
            return
        self.sums[1] += right.sum()

    def read(self, d: Dist) -> tuple[float, float]:
        """(mean loss per sample, accuracy or NaN if no target counted), over every process."""
        samples = torch.tensor([self.samples], device=self.sums.device, dtype=self.sums.dtype)
        loss_sum, correct, counted, samples = all_sum(torch.cat([self.sums, samples]), d).tolist()
        return loss_sum / max(samples, 1), correct / counted if counted else math.nan


def to_batch(
    x: Tensor, y: Tensor, device: torch.device, channels_last: bool, d: Dist
) -> tuple[Tensor, Tensor]:
    """This process's part of a batch, on `device`, in the memory format the model expects."""
    x, y = shard(x, d).to(device, non_blocking=True), shard(y, d).to(device, non_blocking=True)
    if channels_last and x.ndim == 4:
        x = x.contiguous(memory_format=torch.channels_last)  # NHWC in memory, still (N, C, H, W)
    return x, y

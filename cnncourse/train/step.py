"""One optimisation step, and the bookkeeping around it that must not slow it down.

`make_step` is shared by `cnncourse.train.fit` and `cnncourse.bench`, so the benchmark times
exactly the step that training runs. `Meter` keeps the running loss and accuracy as tensors on
the device: adding to them queues a kernel, reading them (`Meter.read`) waits for the GPU, so
the loop reads only now and then.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from cnncourse.train.device import autocast
from cnncourse.train.distributed import Dist, all_sum, shard

__all__ = ["SCHEDULERS", "make_step", "Meter", "to_batch"]

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
    """

    def step(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        with autocast(device, amp):  # forward and loss in bf16/fp16 where it is safe
            out = model(x)
            loss = loss_fn(out, y)
        optimizer.zero_grad(set_to_none=True)  # free the grads rather than fill them with 0
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:  # fp16: scale the loss so small gradients do not underflow to 0
            scaler.scale(loss).backward()
            scaler.step(optimizer)  # unscales; skips the step if a gradient is inf/NaN
            scaler.update()
        if scheduler is not None:
            scheduler.step()
        return loss.detach(), out.detach()

    return step


class Meter:
    """Loss and accuracy sums kept on the device; `read` syncs (and all-reduces under DDP)."""

    def __init__(self, device: torch.device) -> None:
        dtype = torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64
        self.sums = torch.zeros(2, device=device, dtype=dtype)  # [sum of loss * n, correct]
        self.samples = self.targets = 0  # host-side counts: known without a sync

    def add(self, loss: Tensor, out: Tensor, y: Tensor) -> None:
        self.sums[0] += loss.to(self.sums.dtype) * len(y)
        if not y.is_floating_point():  # class labels or masks: argmax over the class dim
            self.sums[1] += (out.argmax(1) == y).sum()
        self.samples += len(y)
        self.targets += y.numel()

    def read(self, d: Dist) -> tuple[float, float]:
        counts = torch.tensor([self.samples, self.targets], device=self.sums.device)
        total = all_sum(torch.cat([self.sums, counts.to(self.sums.dtype)]), d).tolist()
        loss_sum, correct, samples, targets = total
        return loss_sum / max(samples, 1), correct / max(targets, 1)


def to_batch(
    x: Tensor, y: Tensor, device: torch.device, channels_last: bool, d: Dist
) -> tuple[Tensor, Tensor]:
    """This process's part of a batch, on `device`, in the memory format the model expects."""
    x, y = shard(x, d).to(device, non_blocking=True), shard(y, d).to(device, non_blocking=True)
    if channels_last and x.ndim == 4:
        x = x.contiguous(memory_format=torch.channels_last)  # NHWC in memory, still (N, C, H, W)
    return x, y

"""`FitConfig`: how `fit` trains, every option with its default, in one place.

>>> FitConfig(epochs=5, scheduler="onecycle").lr
0.1
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["FitConfig"]


@dataclass(frozen=True)
class FitConfig:
    """The options of `cnncourse.train.fit`.

    epochs: passes over the training data.
    lr: the (peak) learning rate of the default optimizer and of the "onecycle" schedule.
    optimizer: default SGD(lr, momentum 0.9, Nesterov, weight decay 5e-4), fused on CUDA.
    scheduler: "onecycle", "cosine", an LR scheduler of `optimizer`, or None (constant lr);
        stepped after every optimizer step.
    loss_fn: default cross-entropy (per pixel for masks).
    device: "cuda", "mps", "cpu" or None for the best available (`pick_device`).
    amp: "bf16" or "fp16" autocast (fp16 with loss scaling), None for fp32.
    channels_last: NHWC memory layout for model and inputs (faster convs on tensor cores).
    compile: `torch.compile` the model (True), or the name of a compile backend.
    checkpoint: file written (atomically) after every epoch. A file already there is never
        overwritten by a new run: without `resume` it is a ValueError (choose another path, or
        delete the file yourself to start over).
    resume: continue the run saved in `checkpoint` (weights, optimizer, scheduler, RNG states,
        epoch and history), or start it if the file does not exist yet, so the same call
        works before and after an interruption. Needs `checkpoint`.
    seed: seeds every generator first (None: leave them); on the CPU, the same seed gives the
        same weights, bit for bit. So a second `fit` with the same seed (the default 0), e.g.
        to train a model further, replays the first one's dropout masks and `DataLoader`
        shuffles: pass another seed. A `DeviceLoader` draws its shuffle and augmentation from
        its own seed and the epoch, which `fit` starts again at 0: give it another seed too.
    progress: progress bars (None: in notebooks and terminals only) and one line per epoch
        (False: print nothing).
    check_every: steps between reads of the running loss (progress bar, NaN check).
    """

    epochs: int = 1
    lr: float = 0.1
    optimizer: torch.optim.Optimizer | None = None
    scheduler: str | torch.optim.lr_scheduler.LRScheduler | None = None
    loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None
    device: str | torch.device | None = None
    amp: str | None = None
    channels_last: bool = False
    compile: bool | str = False
    checkpoint: str | os.PathLike | None = None
    resume: bool = False
    seed: int | None = 0
    progress: bool | None = None
    check_every: int = 50

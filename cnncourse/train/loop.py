"""`fit` and `evaluate`: one training loop for classification and segmentation.

One step is the textbook one (forward, loss, backward, optimizer step); everything else is
opt-in and leaves it unchanged: bf16/fp16 autocast, channels_last, torch.compile, DDP under
torchrun, checkpoints. Metrics are summed on the device and read (one GPU sync) only every
`check_every` steps, so the loop never waits for the GPU after each step.

The same code trains a segmentation net: logits (N, C, H, W) against masks (N, H, W) give
`F.cross_entropy` per pixel, and "accuracy" is the fraction of pixels right (pixels the loss
ignores, its ``ignore_index``, left out; see `cnncourse.train.step.Meter`). Pass
`cnncourse.losses.BorderWeightedCrossEntropy()` as `loss_fn` for U-Net's border weights.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from cnncourse.train.checkpoint import checkpoint_path, restore, rng_state, save_checkpoint
from cnncourse.train.checks import check_at_least, check_loader
from cnncourse.train.device import autocast, pick_device, seed_everything
from cnncourse.train.distributed import Dist, current, set_epoch, setup, split_by_sampler
from cnncourse.train.history import History, format_row
from cnncourse.train.step import SCHEDULERS, Meter, make_step, to_batch

__all__ = ["fit", "evaluate", "NonFiniteLossError"]

Batches = Iterable[tuple[Tensor, Tensor]]


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; `history` holds the epochs completed before."""

    def __init__(self, message: str, history: History) -> None:
        super().__init__(message)
        self.history = history


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
    d, meter, was_training = current(), _meter(device, loss_fn), model.training
    slices = _slices(data, d)
    model.eval()  # batch norm uses its running statistics, dropout is off
    try:
        for x, y in data:
            if len(x) < slices.world_size:  # too small to give every process a sample
                continue
            x, y = to_batch(x, y, device, channels_last, slices)
            with autocast(device, amp):
                out = model(x)
                loss = loss_fn(out, y)
            meter.add(loss, out, y)
    finally:
        model.train(was_training)
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


def _show_bars(progress: bool | None) -> bool:
    """Bars in notebooks and terminals; none in logs (not a tty) or on CI."""
    if progress is not None:
        return progress
    if os.environ.get("CI"):
        return False
    return "ipykernel" in sys.modules or sys.stderr.isatty()


def fit(
    model: nn.Module,
    train_data: Batches,
    val_data: Batches | None = None,
    *,
    epochs: int = 1,
    lr: float = 0.1,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: str | torch.optim.lr_scheduler.LRScheduler | None = None,
    loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
    device: str | torch.device | None = None,
    amp: str | None = None,
    channels_last: bool = False,
    compile: bool | str = False,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    seed: int | None = 0,
    progress: bool | None = None,
    check_every: int = 50,
) -> History:
    """Train `model` on `train_data` for `epochs` epochs; validate on `val_data` after each.

    train_data, val_data: iterables of (images, targets) batches with a length, e.g. a
        `cnncourse.data.DeviceLoader` or a torch `DataLoader`.
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

    Returns the `History`. A NaN or infinite loss raises `NonFiniteLossError` before the epoch's
    checkpoint is written, so the last good checkpoint stays as it was. Bad arguments (epochs=0,
    an unknown device, a model that cannot take the data...) raise ValueError before training.
    """
    check_at_least(1, epochs=epochs, check_every=check_every)
    path = checkpoint_path(checkpoint, resume)
    device = pick_device(device)
    d = setup(device)
    if seed is not None:
        seed_everything(seed)
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    check_loader(model, train_data)
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    if optimizer is None:
        fused = True if device.type == "cuda" else None  # one kernel for all the parameters
        optimizer = torch.optim.SGD(
            model.parameters(), lr, momentum=0.9, nesterov=True, weight_decay=5e-4, fused=fused
        )
    if isinstance(scheduler, str):
        if scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler must be one of {list(SCHEDULERS)}, got {scheduler!r}")
        scheduler = SCHEDULERS[scheduler](optimizer, epochs * len(train_data))
    scaler = torch.amp.GradScaler(device.type) if amp == "fp16" else None
    history, start = History(), 0
    say = print if progress is not False and d.is_main else lambda *a: None

    if resume and path is not None and path.exists():
        start, done = restore(path, epochs, model, optimizer, scheduler, scaler)
        history = History.from_dict(done)
        say(f"resumed from {path} after epoch {start} of {epochs}")
    elif resume and path is not None:
        say(f"no checkpoint at {path} yet: starting from scratch")

    net = model
    if d.enabled:  # gradients averaged over processes during backward
        net = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    if compile:
        net = torch.compile(net, **({"backend": compile} if isinstance(compile, str) else {}))
    step = make_step(net, optimizer, loss_fn, device, amp, scaler, scheduler)
    slices = _slices(train_data, d)

    for epoch in range(start, epochs):
        t0 = time.perf_counter()
        set_epoch(train_data, epoch)  # the shuffle of *this* epoch, also after a resume
        net.train()
        meter = _meter(device, loss_fn)
        bar = tqdm(
            total=len(train_data),
            desc=f"epoch {epoch + 1}/{epochs}",
            leave=False,
            disable=not (_show_bars(progress) and d.is_main),
        )
        for i, (x, y) in enumerate(train_data):
            if len(x) < slices.world_size:
                continue
            x, y = to_batch(x, y, device, channels_last, slices)
            loss, out = step(x, y)
            meter.add(loss, out, y)
            bar.update()
            if (i + 1) % check_every == 0:
                train_loss, train_acc = meter.read(d)
                _stop_if_not_finite(train_loss, epoch, i, path, history)
                bar.set_postfix(loss=f"{train_loss:.4f}", acc=f"{train_acc:.1%}")
        bar.close()
        train_loss, train_acc = meter.read(d)
        _stop_if_not_finite(train_loss, epoch, None, path, history)
        val = {"loss": math.nan, "acc": math.nan}
        if val_data is not None:
            val = evaluate(net, val_data, loss_fn, device, amp, channels_last)
        history.append(
            epoch=epoch + 1,
            train_loss=train_loss,
            train_acc=train_acc,
            val_loss=val["loss"],
            val_acc=val["acc"],
            lr=optimizer.param_groups[0]["lr"],
            seconds=time.perf_counter() - t0,
        )
        say(format_row(history, -1, epochs))
        if path is not None and d.is_main:
            state = {
                "model": model.state_dict(),  # the plain module's: no DDP/compile prefixes
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "scaler": scaler.state_dict() if scaler is not None else None,
                "rng": rng_state(),
                "epoch": epoch + 1,
                "epochs": epochs,  # the schedule's length
                "history": history.to_dict(),
            }
            save_checkpoint(path, state)
    return history


def _stop_if_not_finite(
    loss: float, epoch: int, step: int | None, path: Path | None, history: History
) -> None:
    if math.isfinite(loss):
        return
    where = f"epoch {epoch + 1}" + (f", step {step + 1}" if step is not None else "")
    if path is not None and path.exists():
        kept = f"The last good checkpoint, {path} (after epoch {len(history)}), is untouched."
    else:
        kept = "No checkpoint was written."
    raise NonFiniteLossError(
        f"the training loss became {loss} in {where}: training stopped. {kept} Usual causes: "
        "a learning rate too high, fp16 without loss scaling, NaN or inf in the data.",
        history,
    )

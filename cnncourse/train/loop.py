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
import warnings
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from cnncourse.train.checkpoint import checkpoint_path, restore, rng_state, save_checkpoint
from cnncourse.train.checks import check_at_least, check_loader
from cnncourse.train.config import FitConfig
from cnncourse.train.device import pick_device, seed_everything
from cnncourse.train.distributed import Dist, set_epoch, setup
from cnncourse.train.evaluate import Batches, _meter, _slices, evaluate
from cnncourse.train.history import History, format_row
from cnncourse.train.step import SCHEDULERS, Step, make_step, to_batch

__all__ = ["fit", "evaluate", "FitConfig", "NonFiniteLossError"]


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; `history` holds the epochs completed before."""

    def __init__(self, message: str, history: History) -> None:
        super().__init__(message)
        self.history = history


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
    config: FitConfig | None = None,
    **options: Any,
) -> History:
    """Train `model` on `train_data` for ``config.epochs`` epochs; validate on `val_data` after
    each. Each step is `make_step`'s: forward, loss, backward, optimizer step.

    train_data, val_data: iterables of (images, targets) batches with a length, e.g. a
        `cnncourse.data.DeviceLoader` or a torch `DataLoader`.
    config: how to train (`FitConfig`: epochs, lr, scheduler, amp, checkpoint, ...).
    options: `FitConfig`'s fields as keyword arguments, ``fit(model, data, epochs=5)``; they
        override `config`'s. Deprecated (a DeprecationWarning): pass a `FitConfig`.

    Returns the `History`. A NaN or infinite loss raises `NonFiniteLossError` before the epoch's
    checkpoint is written, so the last good checkpoint stays as it was. Bad arguments (epochs=0,
    an unknown device, a model that cannot take the data...) raise ValueError before training.
    """
    cfg = _config(config, options)
    run = _prepare(model, train_data, cfg)
    for epoch in range(run.start, cfg.epochs):
        t0 = time.perf_counter()
        train_loss, train_acc = _train_epoch(run, train_data, epoch, cfg)
        val = {"loss": math.nan, "acc": math.nan}
        if val_data is not None:
            val = evaluate(run.net, val_data, run.loss_fn, run.device, cfg.amp, cfg.channels_last)
        run.history.append(
            epoch=epoch + 1,
            train_loss=train_loss,
            train_acc=train_acc,
            val_loss=val["loss"],
            val_acc=val["acc"],
            lr=run.optimizer.param_groups[0]["lr"],
            seconds=time.perf_counter() - t0,
        )
        run.say(format_row(run.history, -1, cfg.epochs))
        if run.path is not None and run.d.is_main:
            save_checkpoint(run.path, _checkpoint_state(run, epoch + 1, cfg.epochs))
    return run.history


def _config(config: FitConfig | None, options: dict[str, Any]) -> FitConfig:
    """`config` with the keyword `options` applied (deprecated), each checked by name."""
    config = config or FitConfig()
    if not options:
        return config
    known = {f.name for f in fields(FitConfig)}
    for name in options:
        if name not in known:
            raise TypeError(f"fit() got an unexpected keyword argument {name!r}")
    warnings.warn(
        "fit(..., epochs=..., lr=...) keywords are deprecated: pass "
        f"fit(model, train, val, config=FitConfig({', '.join(f'{k}=...' for k in options)}))",
        DeprecationWarning,
        stacklevel=3,
    )
    return replace(config, **options)


@dataclass
class _Run:
    """What `fit` sets up once and each epoch uses."""

    model: nn.Module  # the plain module: its state_dict is checkpointed
    net: nn.Module  # what runs: the model, maybe wrapped in DDP and compiled
    step: Step
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    scaler: torch.amp.GradScaler | None
    loss_fn: Callable[[Tensor, Tensor], Tensor]
    device: torch.device
    d: Dist
    path: Path | None
    history: History
    start: int  # the first epoch to run (after a resume, the one after the last saved)
    say: Callable[..., None]


def _prepare(model: nn.Module, train_data: Batches, cfg: FitConfig) -> _Run:
    """Check the arguments, pick the device, build the optimizer, schedule and step, resume."""
    check_at_least(1, epochs=cfg.epochs, check_every=cfg.check_every)
    path = checkpoint_path(cfg.checkpoint, cfg.resume)
    device = pick_device(cfg.device)
    d = setup(device)
    if cfg.seed is not None:
        seed_everything(cfg.seed)
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    check_loader(model, train_data)
    loss_fn = cfg.loss_fn or nn.CrossEntropyLoss()
    optimizer = cfg.optimizer
    if optimizer is None:
        fused = True if device.type == "cuda" else None  # one kernel for all the parameters
        optimizer = torch.optim.SGD(
            model.parameters(), cfg.lr, momentum=0.9, nesterov=True, weight_decay=5e-4, fused=fused
        )
    scheduler = cfg.scheduler
    if isinstance(scheduler, str):
        if scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler must be one of {list(SCHEDULERS)}, got {scheduler!r}")
        scheduler = SCHEDULERS[scheduler](optimizer, cfg.epochs * len(train_data))
    scaler = torch.amp.GradScaler(device.type) if cfg.amp == "fp16" else None
    history, start = History(), 0
    say = print if cfg.progress is not False and d.is_main else lambda *a: None

    if cfg.resume and path is not None and path.exists():
        start, done = restore(path, cfg.epochs, model, optimizer, scheduler, scaler)
        history = History.from_dict(done)
        say(f"resumed from {path} after epoch {start} of {cfg.epochs}")
    elif cfg.resume and path is not None:
        say(f"no checkpoint at {path} yet: starting from scratch")

    net = model
    if d.enabled:  # gradients averaged over processes during backward
        net = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    if cfg.compile:
        backend = {"backend": cfg.compile} if isinstance(cfg.compile, str) else {}
        net = torch.compile(net, **backend)
    step = make_step(net, optimizer, loss_fn, device, cfg.amp, scaler, scheduler)
    return _Run(
        model,
        net,
        step,
        optimizer,
        scheduler,
        scaler,
        loss_fn,
        device,
        d,
        path,
        history,
        start,
        say,
    )


def _train_epoch(run: _Run, train_data: Batches, epoch: int, cfg: FitConfig) -> tuple[float, float]:
    """One pass over `train_data`, a `run.step` per batch; the mean loss and accuracy."""
    set_epoch(train_data, epoch)  # the shuffle of *this* epoch, also after a resume
    slices = _slices(train_data, run.d)
    run.net.train()
    meter = _meter(run.device, run.loss_fn)
    bar = tqdm(
        total=len(train_data),
        desc=f"epoch {epoch + 1}/{cfg.epochs}",
        leave=False,
        disable=not (_show_bars(cfg.progress) and run.d.is_main),
    )
    for i, (x, y) in enumerate(train_data):
        if len(x) < slices.world_size:
            continue
        x, y = to_batch(x, y, run.device, cfg.channels_last, slices)
        loss, out = run.step(x, y)
        meter.add(loss, out, y)
        bar.update()
        if (i + 1) % cfg.check_every == 0:
            train_loss, train_acc = meter.read(run.d)
            _stop_if_not_finite(train_loss, epoch, i, run.path, run.history)
            bar.set_postfix(loss=f"{train_loss:.4f}", acc=f"{train_acc:.1%}")
    bar.close()
    train_loss, train_acc = meter.read(run.d)
    _stop_if_not_finite(train_loss, epoch, None, run.path, run.history)
    return train_loss, train_acc


def _checkpoint_state(run: _Run, epochs_done: int, epochs: int) -> dict[str, Any]:
    return {
        "model": run.model.state_dict(),  # the plain module's: no DDP/compile prefixes
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict() if run.scheduler is not None else None,
        "scaler": run.scaler.state_dict() if run.scaler is not None else None,
        "rng": rng_state(),
        "epoch": epochs_done,
        "epochs": epochs,  # the schedule's length
        "history": run.history.to_dict(),
    }


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

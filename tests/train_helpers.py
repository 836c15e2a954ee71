"""Helpers of the training tests: a small dataset, a tiny CNN, a short run, DDP processes."""

from __future__ import annotations

import os
import time

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from cnncourse.data import DeviceLoader, get_dataset, to_tensors
from cnncourse.train import FitConfig, History, fit


def shapes(n: int, split: str = "train", batch_size: int = 32, **kw) -> DeviceLoader:
    x, y = to_tensors(get_dataset("shapes", split, n=n))
    return DeviceLoader(x, y, batch_size, shuffle=split == "train", **kw)


def tiny_cnn(dropout: float = 0.2, batch_norm: bool = True) -> nn.Module:
    """Batch norm (buffers), dropout (the global RNG) and momentum: all state a resume needs."""
    norm = nn.BatchNorm2d(8) if batch_norm else nn.Identity()
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        norm,
        nn.ReLU(),
        nn.MaxPool2d(4),  # (N, 8, 8, 8)
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(16, 10),
    )


def same_weights(a: nn.Module | dict, b: nn.Module | dict) -> bool:
    sa = a if isinstance(a, dict) else a.state_dict()
    sb = b if isinstance(b, dict) else b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def without_time(h: History) -> dict:
    return {k: v for k, v in h.to_dict().items() if k != "seconds"}


def run(seed: int = 0, epochs: int = 3, **kw) -> tuple[nn.Module, History]:
    torch.manual_seed(seed)
    model = tiny_cnn()
    kw = {"scheduler": "onecycle", "progress": False, "seed": seed, **kw}
    train = kw.pop("train", None) or shapes(256, augment=True, seed=seed)
    history = fit(
        model, train, shapes(128, "test", batch_size=64), config=FitConfig(epochs=epochs, **kw)
    )
    return model, history


class CrashingLoader:
    """A loader that raises in the middle of epoch `crash_epoch` (0-based), like a killed job."""

    def __init__(self, loader: DeviceLoader, crash_epoch: int) -> None:
        self.loader, self.crash_epoch, self.epoch = loader, crash_epoch, 0
        self.images, self.targets = loader.images, loader.targets

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.loader.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for i, batch in enumerate(self.loader):
            if self.epoch == self.crash_epoch and i == 3:
                raise KeyboardInterrupt("simulated crash")
            yield batch


def _torchrun_env(rank: int, world_size: int, port: int) -> None:
    """What ``torchrun`` sets in each process it starts."""
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world_size),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(worker, *args: object, nprocs: int = 2, timeout: float = 180) -> None:
    """`mp.spawn` `worker(rank, nprocs, *args)`, failing the test (not hanging it) if the
    processes wait for each other forever."""
    context = mp.spawn(worker, args=(nprocs, *args), nprocs=nprocs, join=False)
    deadline = time.monotonic() + timeout
    while not context.join(timeout=5):  # raises if a worker raised
        if time.monotonic() > deadline:
            for p in context.processes:
                p.kill()
            pytest.fail(f"the {nprocs} processes did not finish in {timeout} s: deadlock?")

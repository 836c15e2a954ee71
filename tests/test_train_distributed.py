"""`cnncourse.train.distributed`: DDP on two CPU processes (gloo) matches one process."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset
from train_helpers import _free_port, _spawn, _torchrun_env, same_weights, shapes, tiny_cnn

from cnncourse.train import FitConfig, History, fit

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


def _ddp_worker(rank: int, world_size: int, port: int, out: str) -> None:
    _torchrun_env(rank, world_size, port)
    model, history, seen = _ddp_run()
    state = {"model": model.state_dict(), "history": history.to_dict(), "seen": seen}
    torch.save(state, f"{out}/{rank}.pt")
    torch.distributed.destroy_process_group()


def _ddp_run() -> tuple[nn.Module, History, int]:
    """No batch norm, no dropout: then 2 processes x half a batch is exactly one full batch."""
    torch.manual_seed(0)
    model = tiny_cnn(dropout=0.0, batch_norm=False)
    train = shapes(128, batch_size=32, augment=True)
    seen = 0

    def loss_fn(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        nonlocal seen
        seen += len(y)
        return nn.functional.cross_entropy(out, y)

    history = fit(
        model,
        train,
        config=FitConfig(epochs=2, device="cpu", progress=False, lr=0.05, loss_fn=loss_fn),
    )
    return model, history, seen


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_matches_one_process(tmp_path: Path) -> None:
    _spawn(_ddp_worker, _free_port(), str(tmp_path))
    r0, r1 = (torch.load(tmp_path / f"{r}.pt") for r in (0, 1))
    assert same_weights(r0["model"], r1["model"])  # DDP kept the replicas identical
    assert r0["history"]["train_loss"] == r1["history"]["train_loss"]  # all-reduced metrics

    single, history, seen = _ddp_run()
    assert seen == 2 * 128 and r0["seen"] == r1["seen"] == 128  # each process: half of each batch
    for k, v in single.state_dict().items():
        torch.testing.assert_close(r0["model"][k], v, rtol=1e-4, atol=1e-5)
    assert r0["history"]["train_loss"] == pytest.approx(history.train_loss, rel=1e-4)


def _sampler_worker(rank: int, world_size: int, port: int, out: str) -> None:
    """`fit` with torch DataLoaders whose DistributedSamplers give each process its own samples;
    the targets are the samples' ids, and the loss records which ones each process sees."""
    _torchrun_env(rank, world_size, port)
    ids = torch.arange(128)
    x = torch.randn(128, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    data = TensorDataset(x, ids)
    train = DataLoader(data, 16, sampler=DistributedSampler(data, world_size, rank, seed=0))
    val = DataLoader(data, 16, sampler=DistributedSampler(data, world_size, rank, shuffle=False))
    seen: dict[str, list[int]] = {"train": [], "val": []}

    def loss_fn(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        seen["train" if torch.is_grad_enabled() else "val"] += y.tolist()
        return nn.functional.cross_entropy(out, y)

    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 128))  # a class per sample id
    fit(
        model, train, val, config=FitConfig(epochs=2, device="cpu", loss_fn=loss_fn, progress=False)
    )
    torch.save(seen, f"{out}/{rank}.pt")
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_ddp_with_a_distributed_sampler_neither_reslices_nor_repeats_epochs(tmp_path) -> None:
    _spawn(_sampler_worker, _free_port(), str(tmp_path))
    seen = [torch.load(tmp_path / f"{r}.pt") for r in (0, 1)]
    for kind in ("train", "val"):
        for epoch in (0, 1):
            # Each process: its whole half of the data (64 ids), not half of it again.
            mine = [s[kind][64 * epoch : 64 * (epoch + 1)] for s in seen]
            assert [len(m) for m in mine] == [64, 64] and [len(s[kind]) for s in seen] == [128] * 2
            assert sorted(mine[0] + mine[1]) == list(range(128))  # together: every sample once
    for s in seen:  # sampler.set_epoch(1) was called: the second epoch is shuffled anew
        assert s["train"][:64] != s["train"][64:]


@pytest.mark.parametrize("module", ["distributed"])
def test_docstring_examples(module: str) -> None:
    result = doctest.testmod(importlib.import_module(f"cnncourse.train.{module}"))
    assert result.failed == 0 and result.attempted > 0

"""Data-parallel training with PyTorch's own DDP, when launched by ``torchrun``.

    torchrun --nproc_per_node 4 -m cnncourse.cli train resnet20 --data shapes --batch-size 512

``torchrun`` starts one process per GPU and sets RANK, WORLD_SIZE and LOCAL_RANK (and the
rendezvous address) in each one's environment. `setup` reads them and joins the process group;
without them (a plain ``python`` or a notebook) training is a single process and nothing changes.

How the work is split, and why this way: every process iterates the *same* loader, seeded
identically, so all see the same batches in the same order; process r keeps slice r of each
batch (`shard`). With W processes and a batch of B, each one runs B/W samples, and DDP averages
the gradients, so one step is the same step as a single process with the same batch of B:
``--batch-size`` and the learning rate mean the same on 1 GPU or 8. The cost is that every
process indexes the whole batch before slicing it, which is free for GPU-resident data
(`cnncourse.data.DeviceLoader`) and wasteful for a loader that decodes images on the CPU. Give
such a loader a `DistributedSampler` instead: each process then loads only its own samples, and
`fit` sees it (`split_by_sampler`): it does not slice those batches again, and it calls the
sampler's ``set_epoch`` so that every epoch has a new shuffle. The loader's batch size is then
the batch of *one* process, as usual with a `DistributedSampler`. Batch norm still normalises
over each process's own samples (use `nn.SyncBatchNorm.convert_sync_batchnorm` for statistics
over the whole batch).

Set-up work that must happen once, such as a download, runs on rank 0 first (`main_first`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler

__all__ = [
    "Dist",
    "setup",
    "current",
    "all_sum",
    "shard",
    "main_first",
    "split_by_sampler",
    "set_epoch",
]


@dataclass(frozen=True)
class Dist:
    """This process's place in the job: rank r of `world_size` (one process: 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 prints, draws progress bars and writes checkpoints."""
        return self.rank == 0


def setup(device: torch.device) -> Dist:
    """Join the process group that ``torchrun`` describes in the environment, if any.

    NCCL for GPUs, gloo for the CPU. Does nothing when WORLD_SIZE is unset or 1, or when the
    group already exists (a second `fit` in the same job).
    """
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    if world_size <= 1:
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    return Dist(dist.get_rank(), dist.get_world_size(), local_rank)


def current() -> Dist:
    """This process's place in the process group that exists (one process if none)."""
    if dist.is_available() and dist.is_initialized():
        return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    return Dist()


def all_sum(tensor: torch.Tensor, d: Dist) -> torch.Tensor:
    """Sum `tensor` over all processes, in place (no-op for one process)."""
    if d.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def shard(x: torch.Tensor, d: Dist) -> torch.Tensor:
    """This process's slice of a batch: block `rank` of `world_size` contiguous blocks of rows.

    A batch of 10 rows on 4 processes gives rows 0-2, 3-5, 6-7 and 8-9 (`Tensor.tensor_split`:
    the first ``10 % 4`` blocks get one row more):

    >>> [shard(torch.arange(10), Dist(rank, 4)).tolist() for rank in range(4)]
    [[0, 1, 2], [3, 4, 5], [6, 7], [8, 9]]
    """
    return x.tensor_split(d.world_size)[d.rank] if d.enabled else x


@contextmanager
def main_first(d: Dist) -> Iterator[None]:
    """Run the ``with`` block on rank 0 first, then on the other ranks together.

    For work that must happen once, such as downloading a dataset: rank 0 downloads it, and the
    others, which wait at a barrier meanwhile, then find the files there. Rank 0 passes its
    barrier even when its block fails, so that the others do not wait forever (they then try
    the block themselves, and usually fail with the same error).
    """
    if d.enabled and not d.is_main:
        dist.barrier()  # wait for rank 0's block
    try:
        yield
    finally:
        if d.enabled and d.is_main:
            dist.barrier()  # rank 0 is done: release the others


def _sampler(data: object) -> object:
    """The sampler that decides which samples `data` (a torch `DataLoader`?) loads, if any."""
    batch_sampler = getattr(data, "batch_sampler", None)
    return getattr(batch_sampler, "sampler", None) or getattr(data, "sampler", None)


def split_by_sampler(data: object) -> bool:
    """True when `data` loads with a `DistributedSampler`: every process gets its own samples
    already, so its batches must not be `shard`-ed again."""
    return isinstance(_sampler(data), DistributedSampler)


def set_epoch(data: object, epoch: int) -> None:
    """Tell `data` which epoch starts, for that epoch's shuffle (also after a resume).

    A `DistributedSampler` shuffles with (seed, epoch): without ``set_epoch`` every epoch would
    repeat the first one's order. A `cnncourse.data.DeviceLoader` has ``set_epoch`` itself.
    """
    sampler = _sampler(data)
    if isinstance(sampler, DistributedSampler):
        sampler.set_epoch(epoch)
    if hasattr(data, "set_epoch"):
        data.set_epoch(epoch)

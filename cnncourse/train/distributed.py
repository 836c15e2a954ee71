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
(`cnncourse.data.DeviceLoader`) and wasteful for a loader that decodes images on the CPU (use a
`DistributedSampler` there). Batch norm still normalises over each process's B/W samples (use
`nn.SyncBatchNorm.convert_sync_batchnorm` for statistics over the whole batch).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["Dist", "setup", "current", "all_sum", "shard"]


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
    """This process's slice of a batch: rows ``rank::world_size`` in one contiguous block."""
    return x.tensor_split(d.world_size)[d.rank] if d.enabled else x

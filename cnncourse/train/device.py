"""Where and how a model runs: device choice, mixed precision, seeding.

>>> pick_device("cpu")
device(type='cpu')
>>> amp_dtype("bf16")
torch.bfloat16
"""

from __future__ import annotations

import contextlib
import os
import random

import numpy as np
import torch

__all__ = ["pick_device", "synchronize", "amp_dtype", "autocast", "seed_everything", "AMP_DTYPES"]

#: Names accepted by ``amp=``: autocast's lower-precision dtype, or None for plain fp32.
AMP_DTYPES: dict[str | None, torch.dtype | None] = {
    None: None,
    "none": None,
    "fp32": None,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}


def pick_device(
    device: str | torch.device | None = None, local_rank: int | None = None
) -> torch.device:
    """The device to train on: `device` if given ("auto" or None: the best one available).

    Preference: CUDA, then Apple's MPS, then the CPU. Under ``torchrun`` each process takes
    its own GPU, ``cuda:LOCAL_RANK`` (`local_rank`, default from the environment). A name
    torch does not know ("gpu"), or a device this machine lacks, is a ValueError naming it.
    """
    if local_rank is None:
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if device not in (None, "auto"):
        chosen = _known_device(device)
        if chosen.type == "cuda" and chosen.index is None:
            chosen = torch.device("cuda", local_rank)
    elif torch.cuda.is_available():
        chosen = torch.device("cuda", local_rank)
    elif torch.backends.mps.is_available():
        chosen = torch.device("mps")
    else:
        chosen = torch.device("cpu")
    if chosen.type == "cuda":
        torch.cuda.set_device(chosen)  # so that NCCL and `torch.cuda.*` calls use this GPU
    return chosen


def _known_device(device: str | torch.device) -> torch.device:
    """`device` as a torch.device, if torch knows the name and this machine has it."""
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError):  # torch: "Expected one of cpu, cuda, ... device type"
        raise ValueError(
            f"device must be 'auto', 'cuda', 'mps' or 'cpu' (or e.g. 'cuda:1'), got {device!r}"
        ) from None
    available = {"cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if not available.get(chosen.type, True):
        raise ValueError(f"device={device!r}, but this machine has no {chosen.type} device")
    return chosen


def synchronize(device: torch.device) -> None:
    """Wait until `device` has done all the work queued on it (GPU calls return before the work
    is done, so a clock read without this measures only the queueing). No-op on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def amp_dtype(amp: str | None) -> torch.dtype | None:
    """``"bf16"`` -> torch.bfloat16, ``"fp16"`` -> torch.float16, None/"fp32" -> None."""
    if amp not in AMP_DTYPES:
        raise ValueError(f"amp must be one of {[k for k in AMP_DTYPES if k]} or None, got {amp!r}")
    return AMP_DTYPES[amp]


def autocast(device: torch.device, amp: str | None) -> contextlib.AbstractContextManager:
    """Mixed precision for the forward pass and the loss: matmuls and convs run in bf16/fp16,
    reductions and the loss stay in fp32 (autocast's op lists); the weights stay fp32.

    bf16 has fp32's range, so it needs no loss scaling; fp16 does (`torch.amp.GradScaler`).
    """
    dtype = amp_dtype(amp)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's generators (the CPU's and every GPU's)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds CUDA and MPS

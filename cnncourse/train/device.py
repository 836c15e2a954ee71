"""Where and how a model runs: device choice, mixed precision, seeding.

>>> pick_device("cpu")
device(type='cpu')
>>> amp_dtype("bf16")
torch.bfloat16
>>> math_mode(torch.device("cpu"), None), math_mode(torch.device("cpu"), "bf16")
('fp32', 'bf16 autocast')
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator

import numpy as np
import torch

__all__ = [
    "pick_device",
    "synchronize",
    "amp_dtype",
    "autocast",
    "math_mode",
    "cudnn_benchmark",
    "seed_everything",
    "AMP_DTYPES",
]

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


def math_mode(device: torch.device, amp: str | None) -> str:
    """What a step's convolutions and matrix products compute in under ``amp=``: a label.

    "bf16 autocast" or "fp16 autocast"; without autocast "fp32", or, where PyTorch lets a faster
    format stand in for fp32, which one and for what. "fp32 (TF32 convs)" is PyTorch's default
    on NVIDIA GPUs since Ampere (A100, H100): cuDNN runs fp32 convolutions on the tensor cores
    in TF32 (fp32's 8-bit exponent, fp16's 10-bit mantissa; ``torch.backends.cudnn.allow_tf32``
    is True), while fp32 matmuls stay fp32 (``torch.get_float32_matmul_precision()`` is
    "highest"; "high" adds "TF32 matmuls"). Older GPUs have no TF32. On a CPU, "medium" lets
    oneDNN compute matmuls in bf16, where the CPU has bf16 instructions ("bf16 matmuls").

    The flags are read by their per-operation names (``torch.backends.cudnn.conv.fp32_precision``,
    ``torch.backends.cuda.matmul.fp32_precision``): the older getters raise once one of these
    has been set.
    """
    if amp_dtype(amp) is not None:
        return f"{amp} autocast"
    if device.type == "cuda":
        flags = {"convs": torch.backends.cudnn.conv, "matmuls": torch.backends.cuda.matmul}
        has_tf32 = torch.cuda.get_device_capability(device) >= (8, 0)
    elif device.type == "cpu":
        flags = {"convs": torch.backends.mkldnn.conv, "matmuls": torch.backends.mkldnn.matmul}
        has_tf32 = False  # the flag exists; x86 CPUs have no TF32 arithmetic
    else:
        return "fp32"
    names = {"tf32": "TF32", "bf16": "bf16"} if has_tf32 else {"bf16": "bf16"}
    used = [
        f"{names[f.fp32_precision]} {op}" for op, f in flags.items() if f.fp32_precision in names
    ]
    return f"fp32 ({', '.join(used)})" if used else "fp32"


@contextlib.contextmanager
def cudnn_benchmark(on: bool) -> Iterator[None]:
    """``torch.backends.cudnn.benchmark = on`` inside the block, the caller's setting after.

    On, cuDNN times its convolution algorithms for each new input shape and keeps the fastest:
    slower first steps, faster ones after, as long as the shapes do not change. No effect on a
    CPU (no cuDNN there).
    """
    previous = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = on
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = previous


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's generators (the CPU's and every GPU's)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds CUDA and MPS

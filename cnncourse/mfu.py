"""Model FLOPs utilisation (MFU): the work a training step must do, and the GPU's ceiling.

MFU = achieved FLOP/s / peak FLOP/s, where the achieved rate counts only the model's own
arithmetic (`train_step_flops`), not recomputation or overheads, so it compares setups fairly:
a faster loop that does the same model work has a higher MFU. The peak is the GPU's dense bf16
tensor-core rate from its datasheet (`GPU_PEAK_TFLOPS`), looked up by device name.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cnncourse.meta import meta_forward, meta_state, training_mode
from cnncourse.models import get_spec, model_for_data

__all__ = ["GPU_PEAK_TFLOPS", "peak_tflops", "train_step_flops", "model_step_flops"]

#: Dense (no sparsity) bf16 tensor-core peak in TFLOP/s, from NVIDIA's datasheets. Matched in
#: order: every token of the key must be a word of `torch.cuda.get_device_name()`.
#: T4 and V100 have no bf16: their fp16 peak is given, and bf16 falls back to fp16 there.
GPU_PEAK_TFLOPS: dict[tuple[str, ...], float] = {
    ("H100", "PCIe"): 756.0,
    ("H100", "NVL"): 835.0,
    ("H100",): 989.0,  # SXM5, named "NVIDIA H100 80GB HBM3"
    ("H200", "NVL"): 835.0,
    ("H200",): 989.0,
    ("GH200",): 989.0,
    ("A100",): 312.0,  # SXM4 and PCIe alike
    ("L40S",): 362.0,
    ("L4",): 121.0,
    ("A10",): 125.0,
    ("T4",): 65.0,  # fp16
    ("V100", "PCIe"): 112.0,  # fp16; "Tesla V100-PCIE-32GB": lower clocks than the SXM2 board
    ("V100S",): 130.0,  # fp16; "Tesla V100S-PCIE-32GB"
    ("V100",): 125.0,  # fp16; SXM2 ("Tesla V100-SXM2-16GB") and SXM3
}


def peak_tflops(device_name: str) -> float | None:
    """Dense bf16 peak of the GPU called `device_name`, or None if it is not in the table.

    >>> peak_tflops("NVIDIA H100 80GB HBM3"), peak_tflops("NVIDIA A100-SXM4-80GB")
    (989.0, 312.0)
    >>> peak_tflops("NVIDIA L40S"), peak_tflops("Tesla T4"), peak_tflops("Apple M2") is None
    (362.0, 65.0, True)
    >>> peak_tflops("Tesla V100-SXM2-16GB"), peak_tflops("Tesla V100-PCIE-32GB")
    (125.0, 112.0)
    """
    words = set(device_name.upper().replace("-", " ").split())
    for key, tflops in GPU_PEAK_TFLOPS.items():
        if all(k.upper() in words for k in key):
            return tflops
    return None


def train_step_flops(model: nn.Module, input_size: tuple[int, ...]) -> int:
    """FLOPs of one training step per input of shape `input_size`: 3 x the training forward's.

    The forward runs once on the meta device (no data, no time; `model` is left unchanged) in
    training mode, under `FlopCounterMode`, which counts every convolution and matrix product,
    auxiliary heads included. The backward is not counted but taken as 2 forwards, the usual
    definition of model FLOPs: PyTorch's counter overcounts the backward of grouped
    convolutions (of depthwise ones, MobileNet's and Xception's, many times over), and the real
    backward does slightly less (the first layer needs no gradient for its input).

    >>> train_step_flops(nn.Linear(784, 100), (784,))  # 3 passes x 2 FLOPs x 784 x 100 MACs
    470400
    """
    state = meta_state(model)
    x = torch.empty((2, *input_size), device="meta")  # 2: batch norm refuses 1 when training
    with training_mode(model, True), torch.no_grad(), FlopCounterMode(display=False) as counter:
        torch.func.functional_call(model, state, (x,))
    return 3 * counter.get_total_flops() // 2


def model_step_flops(name: str, input_size: tuple[int, ...], num_classes: int = 10) -> int:
    """`train_step_flops` of the course model `name` built for the data (`num_classes`, and
    ``input_size[0]`` channels where it takes them), all on the meta device: no weights are
    allocated or initialised, so a large model costs no more than a small one.

    A ValueError naming `input_size` if the model cannot take such inputs (e.g. 1 channel for
    an RGB-only model), or naming `name` if there is no such model.
    """
    spec = get_spec(name)
    if not spec.in_channels and input_size[0] != spec.input_size[0]:
        raise ValueError(
            f"input_size={tuple(input_size)} does not suit {name!r}: it takes "
            f"{spec.input_size[0]} input channels, not {input_size[0]}"
        )
    with torch.device("meta"):
        model = model_for_data(name, input_size[0], num_classes)
    try:
        meta_forward(model, tuple(input_size))
    except ValueError as e:
        raise ValueError(f"input_size={tuple(input_size)} does not suit {name!r}: {e}") from None
    return train_step_flops(model, input_size)

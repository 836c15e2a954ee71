"""`cnncourse.mfu`: GPU peaks by name, training-step FLOPs against measured ones."""

from __future__ import annotations

import doctest

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import cnncourse.bench
from cnncourse.bench import TEXTBOOK, run_benchmark
from cnncourse.mfu import peak_tflops, train_step_flops
from cnncourse.models import get_model
from cnncourse.profile import count_macs

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


@pytest.mark.parametrize(
    "name, tflops",
    [
        ("NVIDIA H100 80GB HBM3", 989.0),  # SXM
        ("NVIDIA H100 PCIe", 756.0),
        ("NVIDIA H100 NVL", 835.0),
        ("NVIDIA H200", 989.0),
        ("NVIDIA A100-SXM4-80GB", 312.0),
        ("NVIDIA A100-PCIE-40GB", 312.0),
        ("NVIDIA A10", 125.0),  # not A100's
        ("NVIDIA L4", 121.0),
        ("NVIDIA L40S", 362.0),  # not L4's
        ("Tesla T4", 65.0),
        ("Tesla V100-SXM2-16GB", 125.0),  # fp16, as T4's
        ("Tesla V100-PCIE-32GB", 112.0),  # lower clocks than the SXM2 board
        ("Tesla V100S-PCIE-32GB", 130.0),
        ("NVIDIA GeForce RTX 4090", None),  # unknown: no MFU rather than a wrong one
    ],
)
def test_gpu_peaks_by_name(name: str, tflops: float | None) -> None:
    assert peak_tflops(name) == tflops


def measured_step_flops(name: str, batch_size: int) -> int:
    """FLOPs of one real training step (forward, loss, backward) of model `name` on the CPU,
    as PyTorch's FlopCounterMode sees every convolution and matrix product run."""
    torch.manual_seed(0)
    model = get_model(name).train()
    x, y = torch.randn(batch_size, 3, 32, 32), torch.randint(0, 10, (batch_size,))
    with FlopCounterMode(display=False) as counter:
        nn.functional.cross_entropy(model(x), y).backward()
    return counter.get_total_flops()


def test_flops_per_step_match_a_measured_training_step() -> None:
    measured = measured_step_flops("resnet20", batch_size=2)
    forward = 2 * count_macs(get_model("resnet20"), (3, 32, 32)) * 2  # 2 FLOPs per MAC, B = 2
    assert measured / forward == pytest.approx(3, abs=0.05)  # backward = 2 forwards
    (r,) = run_benchmark(
        ["resnet20"], batch_size=2, steps=1, warmup=1, device="cpu", variants=[TEXTBOOK]
    )
    assert r.flops_per_step == pytest.approx(measured, rel=0.03)
    assert r.tflops == pytest.approx(r.flops_per_step / (r.step_ms / 1e3) / 1e12)


def test_flops_count_what_only_training_runs() -> None:
    """GoogLeNet's auxiliary heads run in training mode only: an eval-mode count misses them."""
    with torch.device("meta"):
        with_aux, without = get_model("googlenet"), get_model("googlenet", aux_logits=False)
    size = (3, 224, 224)
    assert count_macs(with_aux, size) == count_macs(without, size)  # eval mode: no heads
    assert train_step_flops(without, size) == 6 * count_macs(without, size)
    # The heads on their own: on (4a)'s and (4d)'s outputs, 14 x 14 for a 224 x 224 input.
    heads = count_macs(with_aux.aux1, (512, 14, 14)) + count_macs(with_aux.aux2, (528, 14, 14))
    assert heads > 0
    assert train_step_flops(with_aux, size) == 6 * (count_macs(without, size) + heads)
    assert with_aux.training  # the model is left as it was


def test_docstring_examples() -> None:
    result = doctest.testmod(cnncourse.mfu)
    assert result.failed == 0 and result.attempted > 0

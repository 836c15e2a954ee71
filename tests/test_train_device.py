"""`cnncourse.train.device`: the device choice, math modes (TF32), its docstring examples."""

from __future__ import annotations

import doctest
import importlib
from collections.abc import Iterator

import pytest
import torch
from train_helpers import shapes, tiny_cnn

from cnncourse.train import FitConfig, fit, pick_device
from cnncourse.train.device import math_mode

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


def pretend_machine(monkeypatch: pytest.MonkeyPatch, cuda: bool, mps: bool) -> list:
    """Make torch see (or not) a GPU and Apple's MPS; returns the devices passed to
    `torch.cuda.set_device`, recorded instead of set."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    monkeypatch.delenv("LOCAL_RANK", raising=False)  # not under torchrun
    set_device: list = []
    monkeypatch.setattr(torch.cuda, "set_device", set_device.append)
    return set_device


@pytest.mark.parametrize(
    ("cuda", "mps", "best"),
    [(True, True, "cuda:0"), (True, False, "cuda:0"), (False, True, "mps"), (False, False, "cpu")],
)
def test_the_best_available_device_is_chosen(monkeypatch, cuda: bool, mps: bool, best: str) -> None:
    set_device = pretend_machine(monkeypatch, cuda, mps)
    assert pick_device() == pick_device("auto") == torch.device(best)
    assert pick_device("cpu") == torch.device("cpu")  # asked for: always there
    assert set_device == ([torch.device(best)] * 2 if cuda else [])  # later calls use that GPU
    if cuda:  # under torchrun, each process takes the GPU of its LOCAL_RANK
        monkeypatch.setenv("LOCAL_RANK", "1")
        assert pick_device() == pick_device("cuda") == torch.device("cuda", 1)
        assert pick_device("cuda:0") == torch.device("cuda", 0)  # an explicit index wins


@pytest.mark.parametrize(
    ("cuda", "mps", "asked"),
    [(False, False, "cuda"), (False, True, "cuda:1"), (False, False, "mps"), (True, False, "mps")],
)
def test_a_missing_device_is_a_value_error_naming_it(monkeypatch, cuda, mps, asked) -> None:
    set_device = pretend_machine(monkeypatch, cuda, mps)
    kind = asked.split(":")[0]
    with pytest.raises(ValueError, match=rf"device='{asked}', but this machine has no {kind} "):
        pick_device(asked)
    with pytest.raises(ValueError, match=rf"device='{asked}'"):
        fit(tiny_cnn(), shapes(64), config=FitConfig(device=asked, progress=False))
    assert set_device == []


@pytest.fixture
def float32_flags() -> Iterator[None]:
    """Give back PyTorch's fp32 precision flags, whatever the test set (the legacy setters set
    every operation's flag: mixed per-operation flags make the legacy getters raise)."""
    matmul, tf32 = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    yield
    torch.set_float32_matmul_precision(matmul)
    torch.backends.cudnn.allow_tf32 = tf32


@pytest.mark.usefixtures("float32_flags")
def test_math_mode_says_when_fp32_runs_in_tf32(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a (pretended) H100, PyTorch's defaults give TF32 convolutions and fp32 matmuls."""
    gpu = torch.device("cuda", 0)
    capability = (9, 0)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert torch.backends.cudnn.allow_tf32 and torch.get_float32_matmul_precision() == "highest"
    assert math_mode(gpu, None) == "fp32 (TF32 convs)"
    assert math_mode(gpu, "bf16") == "bf16 autocast" and math_mode(gpu, "fp16") == "fp16 autocast"
    torch.set_float32_matmul_precision("high")  # TF32 for matmuls too
    assert math_mode(gpu, None) == "fp32 (TF32 convs, TF32 matmuls)"
    torch.set_float32_matmul_precision("highest")
    torch.backends.cudnn.allow_tf32 = False  # the legacy switch: true fp32
    assert math_mode(gpu, "fp32") == "fp32"
    torch.backends.cudnn.conv.fp32_precision = "tf32"  # the per-operation one
    assert math_mode(gpu, None) == "fp32 (TF32 convs)"
    capability = (7, 0)  # a V100: no TF32, whatever the flags say
    assert math_mode(gpu, None) == "fp32"
    torch.set_float32_matmul_precision("medium")  # on a CPU: oneDNN may compute in bf16
    assert math_mode(torch.device("cpu"), None) == "fp32 (bf16 matmuls)"


@pytest.mark.parametrize("module", ["device"])
def test_docstring_examples(module: str) -> None:
    result = doctest.testmod(importlib.import_module(f"cnncourse.train.{module}"))
    assert result.failed == 0 and result.attempted > 0

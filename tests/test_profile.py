"""`cnncourse.profile` against torchvision's published numbers and FlopCounterMode."""

from __future__ import annotations

import doctest
import math
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
import torchvision.models as tvm
from hypothesis import given, settings
from hypothesis import strategies as st
from models_helpers import flop_counter_macs, meta_model
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from cnncourse import counting, profile
from cnncourse.profile import (
    LayerRow,
    Summary,
    count_macs,
    count_params,
    summarize,
)

# --- torchvision's published numbers -------------------------------------------------------------

# googlenet's published weights drop the auxiliary classifiers; inception_v3's keep them.
TORCHVISION = {
    "alexnet": {},
    "vgg16": {},
    "resnet18": {},
    "resnet50": {},
    "densenet121": {},
    "googlenet": {"aux_logits": False, "init_weights": False},
    "inception_v3": {"init_weights": False},
    "squeezenet1_0": {},
    "mobilenet_v2": {},
    "mobilenet_v3_large": {},
    "shufflenet_v2_x1_0": {},
    "efficientnet_b0": {},
    "convnext_tiny": {},
}


@pytest.mark.parametrize("name", TORCHVISION)
def test_matches_torchvision_published_ops_and_params(name):
    weights = tvm.get_model_weights(name).DEFAULT
    (crop,) = weights.transforms().crop_size  # 224, or 299 for inception_v3
    model = meta_model(name, **TORCHVISION[name])
    # torchvision's "_ops" are GFLOPS in its docs but multiply-adds: our GMACs, to 3 decimals.
    assert round(count_macs(model, (3, crop, crop)) / 1e9, 3) == weights.meta["_ops"]
    assert count_params(model) == weights.meta["num_params"]


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "densenet121", "googlenet"])
def test_whole_model_matches_flop_counter(name):
    model = meta_model(name, **TORCHVISION[name])
    assert count_macs(model, (3, 96, 128)) == flop_counter_macs(model, (3, 96, 128))


def test_functional_ops_are_not_counted():
    # ViT's attention multiplies queries and keys with functional calls inside
    # nn.MultiheadAttention, not with modules: count_macs misses them (documented), while
    # FlopCounterMode, which sees every op, reproduces torchvision's published 17.564.
    model = meta_model("vit_b_16")
    published = tvm.ViT_B_16_Weights.DEFAULT.meta["_ops"]
    assert round(flop_counter_macs(model, (3, 224, 224)) / 1e9, 3) == published
    assert count_macs(model, (3, 224, 224)) < 0.7 * published * 1e9

    class Functional(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.zeros(8, 3, 3, 3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.conv2d(x, self.weight)

    model = Functional()
    assert count_macs(model, (3, 10, 10)) == 0
    assert flop_counter_macs(model, (3, 10, 10)) > 0
    assert count_params(model) == 8 * 3 * 3 * 3  # parameters are counted all the same


# --- layers, against FlopCounterMode --------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    groups=st.integers(1, 3),
    widths=st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3)),
    k=st.integers(1, 4),
    stride=st.integers(1, 3),
    dilation=st.integers(1, 2),
    depthwise=st.booleans(),
    hw=st.tuples(st.integers(8, 24), st.integers(8, 24)),
    bias=st.booleans(),
)
def test_layers_match_flop_counter(groups, widths, k, stride, dilation, depthwise, hw, bias):
    c0, c1, c2 = (groups * w for w in widths)
    with torch.device("meta"):  # built and counted on meta: shapes only, no arithmetic
        model = nn.Sequential(
            nn.Conv2d(c0, c1, k, stride, k // 2, dilation, groups=groups, bias=bias),
            nn.BatchNorm2d(c1),
            nn.ReLU(),
            nn.Conv2d(c1, c1, 3, padding=1, groups=c1 if depthwise else 1, bias=bias),
            nn.ConvTranspose2d(c1, c2, k, stride, 0, stride - 1, groups=groups, bias=bias),
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),
            nn.Linear(c2 * 4, 5, bias=bias),
        )
    size = (c0, *hw)
    assert count_macs(model, size) == flop_counter_macs(model, size)


@pytest.mark.parametrize("input_size", [(7, 16), (3, 5, 16), (16,)])
def test_linear_on_extra_dims(input_size):
    # A linear layer acts on the last dim, at every position of the others (tokens, pixels).
    model = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 4))
    assert count_macs(model, input_size) == flop_counter_macs(model, input_size)


def test_conv1d_and_conv3d():
    for model, size in [
        (nn.Conv1d(4, 8, 3, stride=2, groups=2), (4, 50)),
        (nn.Conv3d(2, 6, (3, 3, 1)), (2, 9, 9, 4)),
        (nn.ConvTranspose1d(4, 8, 4, stride=2, groups=4), (4, 10)),
    ]:
        assert count_macs(model, size) == flop_counter_macs(model, size)


def test_layer_called_with_keyword_input():
    class Up(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.up = nn.ConvTranspose2d(4, 2, 2, stride=2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.up(input=x)

    assert count_macs(Up(), (4, 5, 5)) == flop_counter_macs(Up(), (4, 5, 5))


# --- sharing, modes, memory -----------------------------------------------------------------------


class Twice(nn.Module):
    """The same conv applied twice: two calls, one set of weights."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4, 4)
        self.head = nn.Linear(4, 4)
        self.head.weight = self.fc.weight  # tied weights across two modules

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(self.conv(x)).mean((2, 3))
        return self.head(self.fc(x))


def test_shared_module_counts_macs_per_call_and_params_once():
    model = Twice()
    one_conv = nn.Conv2d(4, 4, 3, padding=1)
    assert count_macs(model, (4, 6, 6)) == 2 * count_macs(one_conv, (4, 6, 6)) + 2 * 4 * 4
    assert count_macs(model, (4, 6, 6)) == flop_counter_macs(model, (4, 6, 6))
    s = summarize(model, (4, 6, 6))
    assert [r.name for r in s.rows] == ["conv", "conv", "fc", "head"]
    assert [r.params for r in s.rows] == [4 * 4 * 9 + 4, 0, 4 * 4 + 4, 4]  # head: its bias only
    assert s.total_params == count_params(model) == sum(r.params for r in s.rows)
    assert count_params(model) == sum(p.numel() for p in set(model.parameters()))


def test_eval_mode_and_model_untouched():
    model = tvm.resnet18(weights=None)  # real weights on the CPU
    model.train()
    before = {n: (t, t.clone()) for n, t in model.state_dict(keep_vars=True).items()}
    assert count_macs(model, (3, 64, 64)) == flop_counter_macs(meta_model("resnet18"), (3, 64, 64))
    assert all(m.training for m in model.modules())  # the training flags are restored
    after = model.state_dict(keep_vars=True)
    for n, (tensor, copy) in before.items():
        assert after[n] is tensor and after[n].device.type == "cpu"
        assert torch.equal(tensor, copy), n  # running stats included: nothing was updated
    assert not any(m._forward_hooks for m in model.modules())  # no hook left behind


class DeviceLog(TorchDispatchMode):
    """Records the device of every tensor that any aten op produces."""

    def __init__(self) -> None:
        super().__init__()
        self.devices: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        outs = out if isinstance(out, tuple | list) else (out,)
        self.devices += [o.device.type for o in outs if isinstance(o, torch.Tensor)]
        return out


def test_every_op_runs_on_meta():
    model = tvm.resnet18(weights=None)
    with DeviceLog() as log:
        summarize(model, (3, 2048, 1024))
    assert len(log.devices) > 100
    assert set(log.devices) == {"meta"}


@pytest.mark.slow
def test_large_input_costs_no_memory():
    # In a fresh process, so that the peak RSS (ru_maxrss) measures this count only. A real
    # forward of resnet50 at 3x2048x1024 would need gigabytes: conv1's output alone is 134 MB.
    code = textwrap.dedent(
        """
        import resource, time, torchvision
        from cnncourse.profile import count_macs
        model = torchvision.models.resnet50(weights=None)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        macs = count_macs(model, (3, 2048, 1024))
        seconds = time.perf_counter() - start
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak
        print(macs, seconds, grown)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    macs, seconds, grown_kib = out.stdout.split()
    assert int(macs) == flop_counter_macs(meta_model("resnet50"), (3, 2048, 1024))
    # Memory is the proof (a real forward would hold GiBs of activations); wall-clock time on a
    # shared CI machine is not, so it is only printed.
    print(f"count_macs at 3x2048x1024 took {float(seconds):.2f} s")
    assert int(grown_kib) < 64 * 1024  # less than 64 MiB


def test_dtype_follows_the_model():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(8 * 6 * 6, 2)).half()
    assert count_macs(model, (3, 8, 8)) == 8 * 27 * 36 + 8 * 36 * 2


# --- summary --------------------------------------------------------------------------------------


def test_summary_rows_match_a_real_forward():
    model = tvm.resnet18(weights=None).eval()
    real: list[tuple[str, tuple[int, ...]]] = []
    hooks = [
        m.register_forward_hook(lambda m, a, y, n=n: real.append((n, tuple(y.shape[1:]))))
        for n, m in model.named_modules()
        if not list(m.children())
    ]
    with torch.no_grad():
        model(torch.zeros(1, 3, 64, 48))
    for h in hooks:
        h.remove()
    s = summarize(model, (3, 64, 48))
    assert [(r.name, r.output_shape) for r in s.rows] == real
    assert isinstance(s, Summary) and all(isinstance(r, LayerRow) for r in s.rows)
    assert {r.type for r in s.rows} >= {"Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "Linear"}
    # Each row's MACs from the layer itself and the real output shape, by the closed forms:
    # a conv does C_in/groups * k_h * k_w MACs per output value, a linear layer in * out.
    modules = dict(model.named_modules())
    for row, (_, shape) in zip(s.rows, real, strict=True):
        m = modules[row.name]
        if isinstance(m, nn.Conv2d):
            expected = m.in_channels // m.groups * math.prod(m.kernel_size) * math.prod(shape)
        elif isinstance(m, nn.Linear):
            expected = m.in_features * m.out_features
        else:
            expected = 0  # BN, ReLU, pooling: outside the default scope
        assert row.macs == expected, row.name
    assert s.total_macs == flop_counter_macs(model, (3, 64, 48))  # PyTorch's own count
    real_params = sum(p.numel() for p in model.parameters())
    assert s.total_params == real_params == sum(r.params for r in s.rows)
    assert s.input_size == (3, 64, 48)


def test_summary_text_and_html():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 30 * 30, 10))
    s = summarize(model, (3, 32, 32))
    text = str(s)
    assert text == s.to_text()
    lines = text.splitlines()
    table = lines[: lines.index(lines[1], 2) + 1]  # header, rule, rows, rule
    assert len({len(line) for line in table}) == 1, "columns are aligned"
    assert len(table) == 2 + len(s.rows) + 1
    assert f"{s.total_params:,}" in text and f"{s.total_macs:,}" in text
    assert "FLOPs = 2 x MACs" in text
    html = s._repr_html_()
    assert html.count("<tr>") == 1 + len(s.rows) and "FLOPs = 2 x MACs" in html
    footer = str(summarize(meta_model("resnet18"), (3, 224, 224))).splitlines()[-1]
    published = tvm.ResNet18_Weights.DEFAULT.meta["_ops"]
    assert f"({published:.3f} GMACs)" in footer and f"{2 * published:.3f} GFLOPs" in footer


def test_unused_layers_are_reported():
    model = meta_model("googlenet", aux_logits=True, init_weights=False)  # aux heads: training only
    s = summarize(model, (3, 224, 224))
    assert s.total_params > sum(r.params for r in s.rows)
    assert "did not run" in str(s)


def test_modules_with_own_parameters_get_a_row():
    # ConvNeXt's CNBlock holds a layer_scale Parameter besides its child layers.
    s = summarize(meta_model("convnext_tiny"), (3, 64, 64))
    assert "CNBlock" in {r.type for r in s.rows}
    assert s.total_params == sum(r.params for r in s.rows)


def test_trainable_only():
    model = tvm.resnet18(weights=None)
    model.requires_grad_(False)
    model.fc.requires_grad_(True)
    assert count_params(model, trainable_only=True) == sum(p.numel() for p in model.fc.parameters())
    assert count_params(model) == tvm.ResNet18_Weights.DEFAULT.meta["num_params"]


@pytest.mark.parametrize(
    "bad", [(), (3, 0, 4), (3, -1), (3.0, 4), (True, 8), "abc", 224, None, [3, 2.5]]
)
def test_input_size_is_validated(bad):
    with pytest.raises(ValueError, match="input_size"):
        count_macs(nn.Linear(4, 4), bad)


def test_input_the_model_refuses_is_named_with_the_failing_layer():
    # AlexNet on 32 x 32, by the formulas: conv1 11/4 pad 2 -> 7, pool 3/2 -> 3, conv2 keeps 3,
    # pool -> 1, conv3..5 keep 1; the last 3x3 pool (features.12) cannot fit in 1 x 1.
    side = counting.conv_output_size(32, 11, stride=4, padding=2)
    side = counting.pool_output_size(side, 3, 2)
    side = counting.pool_output_size(side, 3, 2)
    assert side == 1
    with pytest.raises(ValueError, match="kernel_size=3 .* does not fit"):
        counting.pool_output_size(side, 3, 2)
    model = tvm.alexnet(weights=None).train()
    before = {n: t.clone() for n, t in model.state_dict().items()}
    with pytest.raises(ValueError) as error:
        summarize(model, (3, 32, 32))
    message = str(error.value)
    assert message.startswith("input_size (3, 32, 32) does not fit AlexNet: layer 'features.12' ")
    assert f"got an input of shape (256, {side}, {side}): " in message
    assert isinstance(error.value.__cause__, RuntimeError)  # PyTorch's own error, chained
    assert all(m.training for m in model.modules())  # flags restored, hooks removed, no change
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    assert all(torch.equal(t, before[n]) for n, t in model.state_dict().items())


def test_doctests():
    result = doctest.testmod(profile)
    assert result.attempted > 0
    assert result.failed == 0

"""Exercise 8, depthwise-separable convolutions: the compute answers (a standard layer against
its depthwise + pointwise version, the ratio 1/d + 1/k^2, MobileNet v1 under its width and
resolution multipliers), a depthwise convolution from scratch (function tasks, checked against
``F.conv2d(..., groups=C)`` with PyTorch's convolutions forbidden) and the module tasks
(MobileNet v1's block, judged against `cnncourse.layers.DepthwiseSeparableConv`).

Conventions of the answers, as the chapter's: weights without biases, MACs of the convolutions
and the fully connected layer only, "same" padding (odd k, stride 1: the output grid is n x n).
References are `cnncourse.counting`'s formulas, or cnncourse's MobileNet counted on the meta
device (`cnncourse.profile`).
"""

from __future__ import annotations

import random
from functools import partial
from typing import Any

from cnncourse import counting
from cnncourse.grading.modules import answer, module_task, on_meta
from cnncourse.grading.tasks import CONV_OPS, Task, _decode, _t

__all__ = ["EX08", "SLIDES_LAYER"]

# the slides' example: a 100x100x3 input, 128 maps, 3x3 filters
SLIDES_LAYER = {"n": 100, "p": 3, "d": 128, "k": 3}
ODD = (1, 3, 5, 7)  # kernel sides with a "same" padding


# --- compute answers -----------------------------------------------------------------------------


def _layer_case(size: bool, r: random.Random) -> dict:
    """A random layer: p input channels, d maps, an odd k (and n: the side of its grid)."""
    case = {"p": r.randint(1, 512), "d": r.randint(1, 512), "k": r.choice(ODD)}
    return {"n": r.randint(1, 128), **case} if size else case


def _separable_params(a: dict) -> list[int]:
    """[depthwise, pointwise] weights: p filters of k x k x 1, d filters of 1 x 1 x p."""
    p, d, k = a["p"], a["d"], a["k"]
    depthwise = counting.conv_params(p, p, k, groups=p, bias=False)
    return [depthwise, counting.conv_params(p, d, 1, bias=False)]


def _separable_macs(a: dict) -> list[int]:
    """[depthwise, pointwise] MACs on the n x n grid."""
    p, d, k, n = a["p"], a["d"], a["k"], a["n"]
    return [counting.conv_macs(p, p, k, n, groups=p), counting.conv_macs(p, d, 1, n)]


def _ratio(a: dict) -> float:
    """The separable layer's MACs over the standard layer's (any p and grid: one of each)."""
    separable = sum(_separable_macs({**a, "p": 1, "n": 1}))
    return separable / counting.conv_macs(1, a["d"], a["k"], 1)


def _mobilenet(alpha: float, num_classes: int = 1000) -> Any:
    from cnncourse.models.mobilenet import mobilenet_v1

    return on_meta(mobilenet_v1, num_classes, width_mult=alpha)


def _alpha(r: random.Random) -> float:
    """A width multiplier, a multiple of 1/8 from 0.25 to 1.5: alpha * channels is an integer
    for every layer (32 to 1024 channels), so no rounding convention matters."""
    return r.randint(2, 12) / 8


def _mobilenet_params(a: dict) -> int:
    from cnncourse.profile import count_params

    return count_params(_mobilenet(a["alpha"], a["num_classes"]))


def _mobilenet_macs(a: dict) -> int:
    from cnncourse.profile import count_macs

    return count_macs(_mobilenet(a["alpha"]), (3, a["n"], a["n"]))


_NPDK = dict(SLIDES_LAYER)
_PDK = {g: SLIDES_LAYER[g] for g in ("p", "d", "k")}
ANSWERS: dict[str, Task] = {
    "standard_params": answer(
        "standard_params",
        _PDK,
        partial(_layer_case, False),
        lambda a: counting.conv_params(a["p"], a["d"], a["k"], bias=False),
    ),
    "standard_macs": answer(
        "standard_macs",
        _NPDK,
        partial(_layer_case, True),
        lambda a: counting.conv_macs(a["p"], a["d"], a["k"], a["n"]),
    ),
    "separable_params": answer(
        "separable_params", _PDK, partial(_layer_case, False), _separable_params
    ),
    "separable_macs": answer("separable_macs", _NPDK, partial(_layer_case, True), _separable_macs),
    "cost_ratio": answer(
        "cost_ratio",
        {"d": 128, "k": 3},
        lambda r: {"d": r.randint(1, 1024), "k": r.randint(1, 7)},
        _ratio,
    ),
    "mobilenet_params": answer(
        "mobilenet_params",
        {"alpha": 1.0, "num_classes": 1000},
        lambda r: {"alpha": _alpha(r), "num_classes": r.randint(1, 2000)},
        _mobilenet_params,
    ),
    "mobilenet_macs": answer(
        "mobilenet_macs",
        {"alpha": 1.0, "n": 224},
        lambda r: {"alpha": _alpha(r), "n": r.randint(32, 320)},
        _mobilenet_macs,
    ),
}


# --- a depthwise convolution from scratch --------------------------------------------------------


def _depthwise_case(r: random.Random, strided: bool = False) -> dict:
    """A random depthwise convolution: C channels, one kh x kw filter each, a bias 7 times in 10."""
    n, c = r.randint(1, 2), r.randint(1, 4)
    kh = r.randint(1, 4)
    kw = kh if r.random() < 0.6 else r.randint(1, 4)
    s, p = (r.randint(1, 3), r.randint(0, 2)) if strided else (1, 0)
    h, w = r.randint(max(kh - 2 * p, 1), 8), r.randint(max(kw - 2 * p, 1), 8)
    case = {"x": _t(r, n, c, h, w), "weight": _t(r, c, 1, kh, kw)}
    case["bias"] = _t(r, c) if r.random() < 0.7 else None
    return {**case, "stride": s, "padding": p} if strided else case


def _depthwise(case: dict) -> Any:
    """PyTorch's own depthwise convolution: groups = channels."""
    import torch
    import torch.nn.functional as F

    a = _decode(case, torch.float64)
    channels = a["x"].shape[1]
    stride, padding = a.get("stride", 1), a.get("padding", 0)
    return F.conv2d(a["x"], a["weight"], a["bias"], stride, padding, groups=channels)


_SCRATCH = {"visible": 4, "hidden": 12}  # guarded: every tensor operation is slower
FUNCTIONS: dict[str, Task] = {
    "depthwise_conv2d.basic": Task(
        "depthwise_conv2d", _depthwise_case, _depthwise, CONV_OPS, **_SCRATCH
    ),
    "depthwise_conv2d.stride_padding": Task(
        "depthwise_conv2d",
        partial(_depthwise_case, strided=True),
        _depthwise,
        CONV_OPS,
        **_SCRATCH,
    ),
}


# --- module tasks: MobileNet v1's block ----------------------------------------------------------


def _block(in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1) -> Any:
    from cnncourse.layers import DepthwiseSeparableConv

    return DepthwiseSeparableConv(in_channels, out_channels, kernel_size, stride)


def _block_config(stride: int, r: random.Random) -> dict:
    """Small channels, a 3x3 depthwise filter most of the time (else 1x1 or 5x5)."""
    return {
        "in_channels": r.randint(1, 6),
        "out_channels": r.randint(1, 8),
        "kernel_size": r.choice([3, 3, 3, 1, 5]) if stride == 1 else r.choice([3, 3, 5]),
        "stride": stride,
    }


def _input(a: dict, r: random.Random) -> tuple[int, ...]:
    """2 or 3 images (batch statistics need more than one value), sides 3 to 8 (odd and even)."""
    return (r.randint(2, 3), a["in_channels"], r.randint(3, 8), r.randint(3, 8))


def _module(stride: int) -> Task:
    first = {"in_channels": 4, "out_channels": 6, "kernel_size": 3, "stride": stride}
    return module_task(
        "DepthwiseSeparableConv",
        _block,
        partial(_block_config, stride),
        _input,
        fixed=({**first, "mode": "eval"}, {**first, "mode": "train"}),
        train=0.3,
    )


MODULES: dict[str, Task] = {
    "separable_block.stride1": _module(1),
    "separable_block.stride2": _module(2),
}
EX08: dict[str, Task] = {
    f"ex08.{name}": task for name, task in {**ANSWERS, **FUNCTIONS, **MODULES}.items()
}

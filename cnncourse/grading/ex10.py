"""Exercise 10, comparing architectures: the compute answers (a network's parameters and MACs
from its per-layer summary, peak activation memory, accuracy gained per GMAC, throughput and
achieved TFLOP/s from a measured time) and the function tasks (`count_macs` with forward hooks,
over any sequential model; `pareto_front` of accuracy against MACs).

A model travels to the kernel as plain data: a list of layers, each ``[name, *args]`` for
``getattr(nn, name)(*args)`` (`build`); the test cell wraps the student's ``count_macs(model,
input_size)`` with `on_model`, which builds the model in the kernel and refuses the course's and
torch's own counters while the student's function runs. References: `cnncourse.profile`'s
counts (on the meta device), and sums over the rows written here.
"""

from __future__ import annotations

import math
import random
import sys
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from cnncourse.grading.modules import answer
from cnncourse.grading.tasks import Task

__all__ = ["EX10", "build", "on_model", "summary_rows", "FAMILIES"]

_setprofile, _getprofile = sys.setprofile, sys.getprofile  # taken at import, before student code

#: The layers a model of this exercise may hold (``[name, *args]`` -> ``getattr(nn, name)(*args)``).
LAYERS = ("Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "AdaptiveAvgPool2d", "Flatten", "Linear")
#: The ImageNet families of the course that torchvision publishes weights for (one model each).
FAMILIES = (
    "alexnet",
    "vgg16",
    "googlenet",
    "inception_v3",
    "resnet18",
    "resnet50",
    "resnet152",
    "densenet121",
    "mobilenet_v2",
)
# Counters that do the student's work: the course's own, torch's, and the usual packages'.
_COUNTERS = (
    "cnncourse.profile",
    "cnncourse.meta",
    "cnncourse.counting",
    "cnncourse.models",
    "torch.utils.flop_counter",
    "torch.profiler",
    "torch.autograd.profiler",
    "thop",
    "ptflops",
    "fvcore",
    "torchinfo",
    "torchprofile",
    "torchstat",
)

# LeNet-5 with max pooling and ReLU, on 1 x 28 x 28 (padding 2 on the first conv): no groups
LENET = [
    ["Conv2d", 1, 6, 5, 1, 2, 1, 1, True],
    ["ReLU"],
    ["MaxPool2d", 2, 2],
    ["Conv2d", 6, 16, 5, 1, 0, 1, 1, True],
    ["ReLU"],
    ["MaxPool2d", 2, 2],
    ["Flatten"],
    ["Linear", 400, 120, True],
    ["ReLU"],
    ["Linear", 120, 84, True],
    ["ReLU"],
    ["Linear", 84, 10, True],
]
# A small depthwise-separable CIFAR net on 3 x 32 x 32: a conv, a depthwise 3x3 with stride 2, a
# pointwise 1x1 (each with batch norm, no bias), global average pooling and a classifier
SMALL_NET = [
    ["Conv2d", 3, 16, 3, 1, 1, 1, 1, False],
    ["BatchNorm2d", 16],
    ["ReLU"],
    ["Conv2d", 16, 16, 3, 2, 1, 1, 16, False],
    ["BatchNorm2d", 16],
    ["ReLU"],
    ["Conv2d", 16, 32, 1, 1, 0, 1, 1, False],
    ["BatchNorm2d", 32],
    ["ReLU"],
    ["AdaptiveAvgPool2d", 1],
    ["Flatten"],
    ["Linear", 32, 10, True],
]
# SMALL_NET's summary on 3 x 32 x 32 (`summary_rows`): [layer, output shape, weight shape, bias]
SMALL_SUMMARY = [
    ["Conv2d", [16, 32, 32], [16, 3, 3, 3], False],
    ["BatchNorm2d", [16, 32, 32], [16], True],
    ["ReLU", [16, 32, 32], None, False],
    ["Conv2d", [16, 16, 16], [16, 1, 3, 3], False],
    ["BatchNorm2d", [16, 16, 16], [16], True],
    ["ReLU", [16, 16, 16], None, False],
    ["Conv2d", [32, 16, 16], [32, 16, 1, 1], False],
    ["BatchNorm2d", [32, 16, 16], [32], True],
    ["ReLU", [32, 16, 16], None, False],
    ["AdaptiveAvgPool2d", [32, 1, 1], None, False],
    ["Flatten", [32], None, False],
    ["Linear", [10], [10, 32], True],
]
# AlexNet's features (torchvision's) on 3 x 224 x 224: the input, then each layer's output
ALEXNET_SHAPES = [
    [3, 224, 224],
    [64, 55, 55],
    [64, 55, 55],
    [64, 27, 27],
    [192, 27, 27],
    [192, 27, 27],
    [192, 13, 13],
    [384, 13, 13],
    [384, 13, 13],
    [256, 13, 13],
    [256, 13, 13],
    [256, 13, 13],
    [256, 13, 13],
    [256, 6, 6],
]
# ResNet-18 and ResNet-50 (torchvision's IMAGENET1K_V1): top-1 accuracy (%) and GMACs
RESNETS = {"top1_a": 69.758, "gmacs_a": 1.814, "top1_b": 76.13, "gmacs_b": 4.089}


# --- models as plain data ------------------------------------------------------------------------


def build(layers: list) -> Any:
    """The ``nn.Sequential`` of `layers`, each ``[name, *args]``: ``getattr(nn, name)(*args)``.

    >>> build([["Conv2d", 3, 8, 3, 1, 1, 1, 1, False], ["ReLU"]])
    Sequential(
      (0): Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)
      (1): ReLU()
    )
    """
    from torch import nn

    for name, *_ in layers:
        if name not in LAYERS:
            raise ValueError(f"unknown layer {name!r}: one of {', '.join(LAYERS)}")
    return nn.Sequential(*(getattr(nn, name)(*args) for name, *args in layers))


def summary_rows(layers: list, input_size: list[int]) -> list:
    """The per-layer summary of `layers` on one input of `input_size`: for each layer, [its
    name, its output shape (no batch dim), its weight's shape (None without one), its bias]."""
    import torch

    with torch.device("meta"):
        model = build(layers).eval()
        x = torch.empty(1, *input_size)
    rows = []
    for module in model:
        x = module(x)
        weight = getattr(module, "weight", None)
        shape = list(weight.shape) if isinstance(weight, torch.Tensor) else None
        bias = isinstance(getattr(module, "bias", None), torch.Tensor)
        rows.append([type(module).__name__, list(x.shape[1:]), shape, bias])
    return rows


def _net(r: random.Random, grouped: bool) -> dict:
    """A random sequential net and its input size: 2 to 6 feature layers with at least one conv
    (grouped: at least one conv with groups > 1, depthwise ones too), then often a classifier."""
    while True:
        c, side = r.randint(2, 6) if grouped else r.randint(1, 4), r.randint(6, 14)
        input_size, layers, convs, groups = [c, side, side], [], 0, 0
        for _ in range(r.randint(2, 6)):
            kind = r.choice(["conv", "conv", "conv", "bn", "relu", "pool"])
            if kind == "conv":
                k, stride = r.choice([1, 3, 3, 5]), r.choice([1, 1, 2])
                padding = r.randint(0, k // 2)
                if k > side + 2 * padding:
                    continue
                g = 1
                if grouped and r.random() < 0.6:
                    g = r.choice([d for d in range(2, c + 1) if c % d == 0] or [1])
                out = g * r.randint(1, 3) if g > 1 else r.randint(1, 8)
                layers.append(["Conv2d", c, out, k, stride, padding, 1, g, r.random() < 0.5])
                c, side = out, (side + 2 * padding - k) // stride + 1
                convs, groups = convs + 1, groups + (g > 1)
            elif kind == "bn" and side > 1:
                layers.append(["BatchNorm2d", c])
            elif kind == "relu":
                layers.append(["ReLU"])
            elif kind == "pool" and side >= 2:
                k = r.randint(2, min(3, side))
                layers.append(["MaxPool2d", k, r.choice([k, 1, 2])])
                side = (side - k) // layers[-1][2] + 1
        if r.random() < 0.7:
            units = r.randint(2, 12)
            layers += [
                ["AdaptiveAvgPool2d", 1],
                ["Flatten"],
                ["Linear", c, units, r.random() < 0.5],
            ]
            if r.random() < 0.5:
                layers += [["ReLU"], ["Linear", units, r.randint(2, 10), r.random() < 0.5]]
        if convs and (groups or not grouped):
            return {"layers": layers, "input_size": input_size}


def _macs(case: dict) -> int:
    from cnncourse.profile import count_macs

    return count_macs(build(case["layers"]), tuple(case["input_size"]))


def on_model(count_macs: Callable[..., Any]) -> Callable[..., Any]:
    """The student's ``count_macs(model, input_size)`` as the checks call it: on `layers`, built
    here into a model (in eval mode), with the course's and torch's counters refused."""

    def count_macs_on(layers: list, input_size: list[int]) -> Any:
        model = build(layers).eval()
        seen: list[str] = []

        def profile(frame: Any, event: str, arg: Any) -> None:
            if event == "call" and not seen:
                module = frame.f_globals.get("__name__", "")
                if module.startswith(_COUNTERS):
                    seen.append(module)

        previous = _getprofile()
        _setprofile(profile)
        try:
            out = count_macs(model, tuple(input_size))
        finally:
            watched = _getprofile() is profile
            _setprofile(previous)
        if seen:
            raise RuntimeError(f"{seen[0]} counts for you: count with forward hooks of your own")
        if not watched:
            raise RuntimeError("sys.setprofile was changed: the check cannot see what counted")
        return out

    return count_macs_on


# --- Pareto front ------------------------------------------------------------------------------


def _front(case: dict) -> list[str]:
    """The names of the models that no other model dominates (at most the MACs and at least the
    accuracy, better in one), by MACs (then by name)."""
    points = case["points"]
    front = [
        (macs, name)
        for name, macs, top1 in points
        if not any(
            m <= macs and t >= top1 and (m < macs or t > top1) for n, m, t in points if n != name
        )
    ]
    return [name for _, name in sorted(front)]


class _Families:
    """The visible first case of `pareto_front`: the course's families, from torchvision's
    published metadata (GMACs, top-1 %), read when the judge first asks (not at import)."""

    def __len__(self) -> int:
        return 1

    def __iter__(self) -> Any:
        from torchvision.models import get_model_weights

        points = []
        for name in FAMILIES:
            meta = get_model_weights(name).IMAGENET1K_V1.meta
            points.append([name, meta["_ops"], meta["_metrics"]["ImageNet-1K"]["acc@1"]])
        return iter([{"points": points}])


def _points(r: random.Random) -> dict:
    """3 to 10 models with distinct GMACs and accuracies (no ties), in a random order."""
    n = r.randint(3, 10)
    macs, top1 = r.sample(range(100, 20000), n), r.sample(range(40000, 90000), n)
    names = r.sample([f"net{i}" for i in range(1, 21)], n)
    return {"points": [[a, m / 1000, t / 1000] for a, m, t in zip(names, macs, top1, strict=True)]}


# --- compute answers ---------------------------------------------------------------------------


def _summary_case(r: random.Random) -> dict:
    net = _net(r, grouped=r.random() < 0.5)
    return {"layers": summary_rows(net["layers"], net["input_size"])}


def _summary_params(a: dict) -> int:
    """Every weight, and a bias of one value per output channel (batch norm: its shift)."""
    return sum(math.prod(w) + (w[0] if bias else 0) for _, _, w, bias in a["layers"] if w)


def _summary_macs(a: dict) -> int:
    """Conv and linear layers: one MAC per weight per output position (bias excluded)."""
    kinds = ("Conv2d", "Linear")
    return sum(math.prod(w) * math.prod(out[1:]) for k, out, w, _ in a["layers"] if k in kinds)


def _peak(a: dict) -> int:
    """float32 bytes, chapter 10's peak for a chain of layers that each make a new tensor: while
    layer i runs, the network's input (its caller holds it), layer i's input and its output are
    live, each counted once (the first layer's input is the network's input)."""
    sizes = [math.prod(s) for s in a["shapes"]]
    live = [sizes[0] + (sizes[i - 1] if i > 1 else 0) + sizes[i] for i in range(1, len(sizes))]
    return 4 * a["batch"] * max(live)


def _shapes_case(r: random.Random) -> dict:
    shapes = []
    for _ in range(r.randint(2, 8)):
        side = r.randint(1, 224)
        shapes.append([r.randint(1, 512), side, side] if r.random() < 0.8 else [r.randint(1, 4096)])
    return {"shapes": shapes, "batch": r.randint(1, 256)}


def _safe(value: Fraction) -> bool:
    """Whether `value` is far from a tie of rounding to 4 decimals (where float errors decide)."""
    return abs((value * 10**4) % 1 - Fraction(1, 2)) > Fraction(1, 10**5)


def _exact(x: float) -> Fraction:
    """A given as the decimal it is written as (0.1 is 1/10, not the float nearest to it)."""
    return Fraction(repr(x))


def _gain(a: dict) -> Fraction:
    top1 = _exact(a["top1_b"]) - _exact(a["top1_a"])
    return top1 / (_exact(a["gmacs_b"]) - _exact(a["gmacs_a"]))


def _throughput(a: dict) -> Fraction:
    return a["batch"] / _exact(a["seconds"])


def _tflops(a: dict) -> Fraction:
    """2 FLOPs per MAC; GMACs x 1e9 / 1e12 = / 1000."""
    return 2 * _exact(a["gmacs"]) * a["batch"] / _exact(a["seconds"]) / 1000


def _draw_safe(draw: Callable[[random.Random], dict], value: Callable[[dict], Fraction]) -> Any:
    def cases(r: random.Random) -> dict:
        while True:
            case = draw(r)
            if _safe(value(case)):
                return case

    return cases


def _gain_case(r: random.Random) -> dict:
    ga, gb = (g / 1000 for g in r.sample(range(100, 20000), 2))
    return {"top1_a": r.randint(40000, 90000) / 1000, "gmacs_a": ga,
            "top1_b": r.randint(40000, 90000) / 1000, "gmacs_b": gb}  # fmt: skip


def _time_case(r: random.Random, gmacs: bool = False) -> dict:
    case = {"batch": r.randint(1, 512), "seconds": r.randint(1, 5000) / 10000}
    return {"gmacs": r.randint(100, 20000) / 1000, **case} if gmacs else case


def _float(value: Callable[[dict], Fraction]) -> Callable[[dict], float]:
    return lambda a: float(value(a))


ANSWERS: dict[str, Task] = {
    "summary_params": answer(
        "summary_params", {"layers": SMALL_SUMMARY}, _summary_case, _summary_params
    ),
    "summary_macs": answer("summary_macs", {"layers": SMALL_SUMMARY}, _summary_case, _summary_macs),
    "peak_memory": answer(
        "peak_memory", {"shapes": ALEXNET_SHAPES, "batch": 64}, _shapes_case, _peak
    ),
    "gain_per_gmac": answer(
        "gain_per_gmac", dict(RESNETS), _draw_safe(_gain_case, _gain), _float(_gain)
    ),
    "throughput": answer(
        "throughput",
        {"batch": 64, "seconds": 0.0815},
        _draw_safe(_time_case, _throughput),
        _float(_throughput),
    ),
    "achieved_tflops": answer(
        "achieved_tflops",
        {"gmacs": RESNETS["gmacs_b"], "batch": 64, "seconds": 0.0815},
        _draw_safe(lambda r: _time_case(r, gmacs=True), _tflops),
        _float(_tflops),
    ),
}

# --- function tasks ------------------------------------------------------------------------------

FUNCTIONS: dict[str, Task] = {
    "count_macs.plain": Task(
        "count_macs",
        lambda r: _net(r, grouped=False),
        _macs,
        fixed=({"layers": LENET, "input_size": [1, 28, 28]},),
        visible=4,
        hidden=10,
    ),
    "count_macs.grouped": Task(
        "count_macs",
        lambda r: _net(r, grouped=True),
        _macs,
        fixed=({"layers": SMALL_NET, "input_size": [3, 32, 32]},),
        visible=4,
        hidden=10,
    ),
    "pareto_front": Task(
        "pareto_front",
        _points,
        _front,
        fixed=_Families(),  # type: ignore[arg-type] (a lazy tuple of one case)
        visible=6,
        hidden=12,
    ),
}

#: This exercise's tasks by name.
EX10: dict[str, Task] = {f"ex10.{name}": task for name, task in {**ANSWERS, **FUNCTIONS}.items()}

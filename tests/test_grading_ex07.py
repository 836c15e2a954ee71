"""Exercise 7's tasks (`cnncourse.grading.ex07`), without nbgrader: the checks run in this process
and talk to a real judge.

Dense layers, dense blocks and transitions written here from torch.nn, and torchvision's own,
pass the visible and hidden cases; typical mistakes (post-activation order, no padding, the input
returned with the new maps, a block that does not grow or concatenates in the wrong order, max
pooling in the transition) fail with a message that says what is wrong first; cnncourse's own
modules fail as such. The answers' references agree with torchvision's DenseNet modules,
`FlopCounterMode` on the meta device and sums written here; the givens are DenseNet-121's.
End-to-end grading of the notebook is in `test_grading.py`.
"""

from __future__ import annotations

import json
import math
import random
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models import densenet as tv

from cnncourse import grading
from cnncourse.grading import kernel

pytestmark = pytest.mark.usefixtures("one_thread")

TASKS = {n: t for n, t in grading.TASKS.items() if n.startswith("ex07.")}
ANSWERS = {n: t for n, t in TASKS.items() if t.answer}
MODULE_TASKS = {n: t for n, t in TASKS.items() if t.compare is not None}
META = torch.device("meta")


def fails(task: str, build, hidden: bool = False) -> str:
    """The message of a failing check."""
    with pytest.raises(grading.CheckFailed) as failure:
        if task in MODULE_TASKS:
            grading.check_module(task, build, hidden=hidden)
        else:
            grading.check_answer(task, build, hidden=hidden)
    return str(failure.value)


def problem(message: str) -> str:
    return re.search(r"problem: (.*)", message).group(1)


# --- student modules, written from torch.nn ------------------------------------------------------


class DenseLayer(nn.Module):
    def __init__(self, in_channels, growth_rate, bn_size=4):
        super().__init__()
        width = bn_size * growth_rate
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, growth_rate, 3, padding=1, bias=False)

    def forward(self, x):
        return self.conv2(F.relu(self.norm2(self.conv1(F.relu(self.norm1(x))))))


class DenseBlock(nn.Module):
    def __init__(self, num_layers, in_channels, growth_rate, bn_size=4):
        super().__init__()
        for i in range(num_layers):
            layer = DenseLayer(in_channels + i * growth_rate, growth_rate, bn_size)
            self.add_module(f"denselayer{i + 1}", layer)

    def forward(self, x):
        maps = [x]
        for layer in self.children():
            maps.append(layer(torch.cat(maps, 1)))
        return torch.cat(maps, 1)


def transition(in_channels, out_channels):
    from collections import OrderedDict

    return nn.Sequential(
        OrderedDict(
            norm=nn.BatchNorm2d(in_channels),
            relu=nn.ReLU(),
            conv=nn.Conv2d(in_channels, out_channels, 1, bias=False),
            pool=nn.AvgPool2d(2),
        )
    )


class PoolFirst(nn.Module):
    """Average pooling before the 1x1 conv: both are linear per pixel, so the output is the same
    (and 4 times cheaper): a right answer."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.norm = nn.BatchNorm2d(in_channels)
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x):
        return self.conv(F.avg_pool2d(F.relu(self.norm(x)), 2))


RIGHT = {
    "ex07.dense_layer": [
        DenseLayer,
        lambda in_channels, growth_rate, bn_size=4: tv._DenseLayer(
            in_channels, growth_rate, bn_size, 0.0
        ),
    ],
    "ex07.dense_block": [
        DenseBlock,
        lambda num_layers, in_channels, growth_rate, bn_size=4: tv._DenseBlock(
            num_layers, in_channels, bn_size, growth_rate, 0.0
        ),
    ],
    "ex07.transition": [
        transition,
        lambda in_channels, out_channels: tv._Transition(in_channels, out_channels),
        PoolFirst,
    ],
}


# typical mistakes


class PostActivation(DenseLayer):
    """Conv-BN-ReLU, ResNet's order: the first batch norm sits after the 1x1 conv."""

    def __init__(self, in_channels, growth_rate, bn_size=4):
        super().__init__(in_channels, growth_rate, bn_size)
        self.norm1 = nn.BatchNorm2d(bn_size * growth_rate)
        self.norm2 = nn.BatchNorm2d(growth_rate)

    def forward(self, x):
        return F.relu(self.norm2(self.conv2(F.relu(self.norm1(self.conv1(x))))))


class ReluFirst(DenseLayer):
    def forward(self, x):
        return self.conv2(self.norm2(F.relu(self.conv1(self.norm1(F.relu(x))))))


class NoPadding(DenseLayer):
    def __init__(self, in_channels, growth_rate, bn_size=4):
        super().__init__(in_channels, growth_rate, bn_size)
        self.conv2.padding = (0, 0)


class WithInput(DenseLayer):
    """Returns [x, new maps]: the block's concatenation done inside the layer."""

    def forward(self, x):
        return torch.cat([x, super().forward(x)], 1)


class NarrowBottleneck(DenseLayer):
    """The 1x1 conv to k maps instead of bn_size * k."""

    def __init__(self, in_channels, growth_rate, bn_size=4):
        super().__init__(in_channels, growth_rate, 1)


class WithBias(DenseLayer):
    def __init__(self, in_channels, growth_rate, bn_size=4):
        super().__init__(in_channels, growth_rate, bn_size)
        self.conv1 = nn.Conv2d(in_channels, bn_size * growth_rate, 1)


class NoGrowth(DenseBlock):
    """Every layer built for the block's input: a plain chain, as in a ResNet stage."""

    def __init__(self, num_layers, in_channels, growth_rate, bn_size=4):
        nn.Module.__init__(self)
        for i in range(num_layers):
            self.add_module(f"denselayer{i + 1}", DenseLayer(in_channels, growth_rate, bn_size))


class NewMapsOnly(DenseBlock):
    def forward(self, x):
        maps = [x]
        for layer in self.children():
            maps.append(layer(torch.cat(maps, 1)))
        return torch.cat(maps[1:], 1)


class NewestFirst(DenseBlock):
    """Each layer's maps put before the earlier ones: the same shapes, another order."""

    def forward(self, x):
        maps = [x]
        for layer in self.children():
            maps.insert(0, layer(torch.cat(maps, 1)))
        return torch.cat(maps, 1)


class InAList(DenseBlock):
    def __init__(self, num_layers, in_channels, growth_rate, bn_size=4):
        nn.Module.__init__(self)
        self.layers = nn.ModuleList(
            DenseLayer(in_channels + i * growth_rate, growth_rate, bn_size)
            for i in range(num_layers)
        )


def transition_max_pool(in_channels, out_channels):
    t = transition(in_channels, out_channels)
    t.pool = nn.MaxPool2d(2)
    return t


def transition_no_relu(in_channels, out_channels):
    t = transition(in_channels, out_channels)
    t.relu = nn.Identity()
    return t


def transition_strided(in_channels, out_channels):
    """A stride-2 1x1 conv instead of the pooling: it keeps one pixel of four."""
    t = transition(in_channels, out_channels)
    t.conv.stride, t.pool = (2, 2), nn.Identity()
    return t


WRONG = [
    ("ex07.dense_layer", PostActivation, "its `norm1.weight` has shape ("),
    ("ex07.dense_layer", ReluFirst, "output values are wrong"),
    ("ex07.dense_layer", NoPadding, ("its output has shape", "Kernel size can't be greater")),
    ("ex07.dense_layer", WithInput, "its output has shape"),
    ("ex07.dense_layer", NarrowBottleneck, "its `conv1.weight` has shape ("),
    ("ex07.dense_layer", WithBias, "its state_dict has `conv1.bias`, which the reference lacks"),
    ("ex07.dense_block", NoGrowth, "its `denselayer2.norm1.weight` has shape ("),
    ("ex07.dense_block", NewMapsOnly, "its output has shape"),
    ("ex07.dense_block", NewestFirst, "output values are wrong"),
    (
        "ex07.dense_block",
        InAList,
        "names differ from the stub's: no `denselayer1.norm1.weight` (and ",
    ),
    ("ex07.transition", transition_max_pool, "output values are wrong"),
    ("ex07.transition", transition_no_relu, "output values are wrong"),
    ("ex07.transition", transition_strided, ("output values are wrong", "its output has shape")),
]


# --- module tasks --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "i"), [(t, i) for t in sorted(RIGHT) for i in range(len(RIGHT[t]))]
)
def test_a_right_module_passes_visible_and_hidden_cases(task: str, i: int) -> None:
    grading.check_module(task, RIGHT[task][i])
    grading.check_module(task, RIGHT[task][i], hidden=True)


def test_every_module_task_has_right_and_wrong_modules_here() -> None:
    assert set(MODULE_TASKS) == set(RIGHT)
    for task in MODULE_TASKS:
        assert sum(t == task for t, _, _ in WRONG) >= 3, task


def test_module_cases_cover_both_modes_and_fresh_configurations() -> None:
    for name, task in MODULE_TASKS.items():
        visible = list(task.fixed)
        assert {c["mode"] for c in visible} == {"eval", "train"}, name
        drawn = [task.cases(random.Random(seed)) for seed in range(12)]
        assert {c["mode"] for c in drawn} == {"eval", "train"}, name
        for case in visible + drawn:
            assert json.loads(json.dumps(case)) == case, name
        configs = {json.dumps({k: v for k, v in c.items() if k not in grading.modules.RESERVED})
                   for c in drawn}  # fmt: skip
        assert len(configs) > 6, name


def test_hidden_cases_are_fresh_per_draw() -> None:
    for name in TASKS:
        first, again = (kernel._ask({"op": "cases", "task": name, "hidden": True}) for _ in "ab")
        assert first["cases"] != again["cases"], name
        visible = [kernel._ask({"op": "show", "task": name})["cases"] for _ in "ab"]
        assert visible[0] == visible[1], name


@pytest.mark.parametrize(("task", "build", "message"), WRONG)
def test_a_wrong_module_fails_saying_what_is_wrong_first(task: str, build, message) -> None:
    for hidden in (False, True):
        text = fails(task, build, hidden)
        assert text.startswith(f"{grading.TASKS[task].function}: "), text
        assert any(m in problem(text) for m in
                   (message if isinstance(message, tuple) else [message])), text  # fmt: skip


def test_cnncourse_own_modules_do_not_pass() -> None:
    from cnncourse.models import densenet

    def returns(num_layers, in_channels, growth_rate, bn_size=4):
        return densenet.DenseBlock(num_layers, in_channels, growth_rate, bn_size)

    class Holds(DenseBlock):  # its own block, built from cnncourse's layers
        def __init__(self, num_layers, in_channels, growth_rate, bn_size=4):
            nn.Module.__init__(self)
            for i in range(num_layers):
                layer = densenet.DenseLayer(in_channels + i * growth_rate, growth_rate, bn_size)
                self.add_module(f"denselayer{i + 1}", layer)

    for build in (returns, Holds, densenet.DenseBlock):
        text = fails("ex07.dense_block", build, hidden=True)
        assert "it uses cnncourse's own `cnncourse.models.densenet." in problem(text), text
    text = fails("ex07.transition", densenet.Transition)
    assert "it uses cnncourse's own `cnncourse.models.densenet.Transition`" in problem(text)


def test_the_stub_is_not_answered_yet() -> None:
    class Stub(nn.Module):
        def __init__(self, in_channels, growth_rate, bn_size=4):
            super().__init__()
            raise NotImplementedError()

    with pytest.raises(NotImplementedError, match="DenseLayer is not answered yet"):
        grading.check_module("ex07.dense_layer", Stub, hidden=True)


# --- compute answers: torchvision's modules, FlopCounterMode, sums written here -----------------


def macs(model: nn.Module, x: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() // 2


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def final_channels(c0: int, layers: list[int], k: int, theta: float) -> int:
    c = c0
    for i, n in enumerate(layers):
        c += n * k
        if i < len(layers) - 1:
            c = math.floor(theta * c)
    return c


def closed_form(name: str, a: dict) -> int:
    """Each ex07 answer from torchvision's DenseNet modules or a sum written here."""
    key = name.split(".")[1]
    if key == "final_channels":
        return final_channels(**a)
    if key == "concat_memory":  # layer l (from 1) receives c0 + (l - 1) k maps of n x n
        return sum((a["c0"] + i * a["k"]) * a["n"] ** 2 for i in range(a["n_layers"]))
    with META:
        if key.startswith("layer_"):
            module, c = tv._DenseLayer(a["c_in"], a["k"], a["bn_size"], 0.0), a["c_in"]
        else:
            bn = a.get("bn_size", 4)
            module, c = tv._DenseBlock(a["n_layers"], a["c0"], bn, a["k"], 0.0), a["c0"]
    if key.endswith("_params"):
        return n_params(module)
    x = torch.empty(1, c, a.get("n", 1), a.get("n", 1), device=META)
    if key == "block_channels":
        return module.eval()(x).shape[1]
    return macs(module.eval(), x)


@pytest.mark.parametrize("name", sorted(ANSWERS))
def test_answer_references_agree_with_independent_references(name: str) -> None:
    task, r = ANSWERS[name], random.Random(name)
    for case in [*task.fixed, *(task.cases(r) for _ in range(6))]:
        assert json.loads(json.dumps(case)) == case
        assert task.reference(case) == closed_form(name, case), case


def test_the_givens_are_densenet121s() -> None:
    """The first block, its layers and the channels into the classifier of torchvision's
    DenseNet-121; the concatenations' closed form of the chapter, n k0 + k n(n-1)/2 maps."""
    with META:
        net = tv.densenet121()
    block, fixed = net.features.denseblock1, {n: t.fixed[0] for n, t in ANSWERS.items()}
    ref = {n: t.reference(fixed[n]) for n, t in ANSWERS.items()}
    assert ref["ex07.block_channels"] == net.features.transition1.norm.num_features
    assert ref["ex07.final_channels"] == net.classifier.in_features
    assert ref["ex07.block_params"] == n_params(block)
    side = fixed["ex07.block_macs"]["n"]
    assert side == 224 // 4  # the first block's maps: after the stem's conv and max pool
    assert ref["ex07.block_macs"] == macs(block, torch.empty(1, 64, side, side, device=META))
    layer = net.features.denseblock2.denselayer1  # 128 channels in, on 28 x 28
    assert ref["ex07.layer_params"] == n_params(layer)
    assert ref["ex07.layer_macs"] == macs(layer, torch.empty(1, 128, 28, 28, device=META))
    n, k0, k = 6, 64, 32
    assert ref["ex07.concat_memory"] == (n * k0 + k * n * (n - 1) // 2) * side * side


# typical mistakes in the compute answers: each fails with the call and what it returned
def _bn4(c_in, k, bn_size):  # running mean and variance counted as parameters
    return 4 * c_in + c_in * bn_size * k + 4 * bn_size * k + 9 * bn_size * k * k


def _no_bn(c_in, k, bn_size):
    return c_in * bn_size * k + 9 * bn_size * k * k


def _no_bottleneck(c_in, k, bn_size):  # the 3x3 conv on the whole input
    return 2 * c_in + 9 * c_in * k


def _rounded(c0, layers, k, theta):  # round() instead of floor
    c = c0
    for i, n in enumerate(layers):
        c += n * k
        c = round(theta * c) if i < len(layers) - 1 else c
    return c


def _block_params_same_input(c0, n_layers, k, bn_size):  # no growth inside the block
    c, w = c0, bn_size * k
    return n_layers * (2 * c + c * w + 2 * w + 9 * w * k)


def _layer_macs_no_3x3(n, c_in, k, bn_size):
    return n * n * c_in * bn_size * k


def _distinct_maps(n, c0, n_layers, k):  # the distinct maps, not the concatenations
    return (c0 + n_layers * k) * n * n


def _block_macs_one_layer(n, c0, n_layers, k, bn_size):  # every layer as wide as the first
    return n_layers * n * n * (c0 * bn_size * k + 9 * bn_size * k * k)


MISTAKES = [
    ("ex07.layer_params", _bn4),
    ("ex07.layer_params", _no_bn),
    ("ex07.layer_params", _no_bottleneck),
    ("ex07.final_channels", _rounded),
    ("ex07.final_channels", lambda c0, layers, k, theta: c0 + sum(layers) * k),
    ("ex07.block_channels", lambda c0, n_layers, k: n_layers * k),
    ("ex07.block_params", _block_params_same_input),
    ("ex07.layer_macs", _layer_macs_no_3x3),
    ("ex07.block_macs", _block_macs_one_layer),
    ("ex07.concat_memory", _distinct_maps),
]


@pytest.mark.parametrize(("name", "func"), MISTAKES)
def test_a_typical_mistake_fails_with_the_call_and_what_it_returned(name: str, func) -> None:
    if name == "ex07.final_channels" and func is _rounded:  # DenseNet-121 rounds alike: hidden
        grading.check_answer(name, func)
    else:
        text = fails(name, func)
        assert re.fullmatch(rf"{name[5:]}\(.*\) returned \d+, expected a different value", text)
        assert str(ANSWERS[name].reference(ANSWERS[name].fixed[0])) not in text
    text = fails(name, func, hidden=True)
    first, count = text.splitlines()
    assert first.startswith(f"{name[5:]}(") and "expected a different value" in first
    assert re.fullmatch(r"  \d+ of 20 hidden cases \(fresh givens\) fail", count)

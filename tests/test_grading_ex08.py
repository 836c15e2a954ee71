"""Exercise 8's tasks (`cnncourse.grading.ex08`), without nbgrader: the checks run in this process
and talk to a real judge.

The answers' references agree with PyTorch's layers (their parameters, `FlopCounterMode` on the
meta device), with the closed form 1/d + 1/k^2, and with a MobileNet v1 written here from
torch.nn and the paper's table 1; the givens are the slides' layer and the paper's network.
Honest working passes visible and hidden cases; constants and the slides' slips fail. A
depthwise convolution from scratch passes, PyTorch's own fails, and so do the usual mistakes;
MobileNet's block from torch.nn passes in eval and train mode, wrong ones fail saying what is
wrong first. Hidden cases are fresh at every draw. End-to-end grading is in `test_grading.py`.
"""

from __future__ import annotations

import json
import random
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cnncourse import grading
from cnncourse.grading.ex08 import EX08, SLIDES_LAYER
from cnncourse.grading.judge import Judge

pytestmark = pytest.mark.usefixtures("one_thread")

ANSWERS = {n: t for n, t in EX08.items() if t.answer}
META = torch.device("meta")
# MobileNet v1, the paper's table 1: (output channels, stride) of each separable block after the
# first 3x3 conv (32 maps, stride 2); the second-to-last stride is 1 (7x7 in, 7x7 out), not the
# table's "s2"
TABLE1 = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), *[(512, 1)] * 5]
TABLE1 += [(1024, 2), (1024, 1)]


# --- independent references ----------------------------------------------------------------------


def macs(model: nn.Module, x: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() // 2


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def torch_mobilenet(alpha: float, num_classes: int = 1000) -> nn.Module:
    """MobileNet v1 from torch.nn layers: conv-BN-ReLU, 13 separable blocks, pool, FC."""

    def conv_bn_relu(c_in: int, c_out: int, k: int, stride: int, groups: int) -> list:
        conv = nn.Conv2d(c_in, c_out, k, stride, k // 2, groups=groups, bias=False)
        return [conv, nn.BatchNorm2d(c_out), nn.ReLU()]

    c = int(32 * alpha)
    layers = conv_bn_relu(3, c, 3, 2, 1)
    for out, stride in TABLE1:
        layers += conv_bn_relu(c, c, 3, stride, c) + conv_bn_relu(c, int(out * alpha), 1, 1, 1)
        c = int(out * alpha)
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes))


def closed_form(name: str, a: dict) -> object:
    key = name.split(".")[1]
    with META:
        standard = nn.Conv2d(a.get("p", 1), a.get("d", 1), a.get("k", 1), bias=False)
        depthwise = nn.Conv2d(a.get("p", 1), a.get("p", 1), a.get("k", 1), groups=a.get("p", 1))
        pointwise = nn.Conv2d(a.get("p", 1), a.get("d", 1), 1, bias=False)
        if "n" in a and "p" in a:  # "same" padding: an input of n + k - 1 without padding
            side = a["n"] + a["k"] - 1
            x, x1 = torch.empty(1, a["p"], side, side), torch.empty(1, a["p"], a["n"], a["n"])
        if key == "standard_params":
            return n_params(standard)
        if key == "standard_macs":
            return macs(standard, x)
        if key == "separable_params":
            return [depthwise.weight.numel(), n_params(pointwise)]
        if key == "separable_macs":
            return [macs(depthwise, x), macs(pointwise, x1)]
        if key == "cost_ratio":  # 2 channels, a 5x5 output grid (no padding): n and p cancel
            x = torch.empty(1, 2, 4 + a["k"], 4 + a["k"])
            std = macs(nn.Conv2d(2, a["d"], a["k"]), x)
            dw = macs(nn.Conv2d(2, 2, a["k"], groups=2), x)
            pw = macs(nn.Conv2d(2, a["d"], 1), torch.empty(1, 2, 5, 5))
            return (dw + pw) / std  # int / int, correctly rounded: the reference's exact float
        if key == "mobilenet_params":
            return n_params(torch_mobilenet(a["alpha"], a["num_classes"]))
        if key == "mobilenet_macs":
            return macs(torch_mobilenet(a["alpha"]), torch.empty(1, 3, a["n"], a["n"]))
    raise KeyError(name)


@pytest.mark.parametrize("name", sorted(ANSWERS))
def test_answer_references_agree_with_independent_references(name: str) -> None:
    task, r = ANSWERS[name], random.Random(name)
    for case in [*task.fixed, *(task.cases(r) for _ in range(6))]:
        assert json.loads(json.dumps(case)) == case
        assert task.reference(case) == closed_form(name, case), case


def test_the_ratio_is_one_over_d_plus_one_over_k_squared() -> None:
    task, r = ANSWERS["ex08.cost_ratio"], random.Random(0)
    for a in [*task.fixed, *(task.cases(r) for _ in range(20))]:
        assert task.reference(a) == pytest.approx(1 / a["d"] + 1 / a["k"] ** 2, rel=1e-12)


def test_the_givens_are_the_slides_layer_and_the_papers_mobilenet() -> None:
    """The slides' 100x100x3 -> 128, 3x3 layer, in the sums the chapter writes out, and
    MobileNet v1's 569M mult-adds and 4.2M parameters (the paper's table 8)."""
    t = {name.split(".")[1]: task for name, task in ANSWERS.items()}
    assert SLIDES_LAYER == {"n": 100, "p": 3, "d": 128, "k": 3}
    for name in ("standard_params", "standard_macs", "separable_params", "separable_macs"):
        assert t[name].fixed[0] == {g: SLIDES_LAYER[g] for g in t[name].fixed[0]}, name
    n, p, d, k = 100, 3, 128, 3
    assert t["standard_macs"].reference(t["standard_macs"].fixed[0]) == n * n * d * k * k * p
    assert t["separable_macs"].reference(t["separable_macs"].fixed[0]) == [
        n * n * p * k * k,
        n * n * d * p,
    ]
    assert t["cost_ratio"].fixed[0] == {"d": d, "k": k}
    assert round(t["mobilenet_macs"].reference(t["mobilenet_macs"].fixed[0]) / 1e6) == 569
    assert round(t["mobilenet_params"].reference(t["mobilenet_params"].fixed[0]) / 1e6, 1) == 4.2


def test_hidden_width_multipliers_give_whole_channels() -> None:
    for name in ("ex08.mobilenet_params", "ex08.mobilenet_macs"):
        r = random.Random(name)
        alphas = {EX08[name].cases(r)["alpha"] for _ in range(50)}
        assert len(alphas) > 3 and min(alphas) >= 0.25
        assert all((c * a).is_integer() for a in alphas for c, _ in [(32, 0), *TABLE1])


# --- compute answers: honest working passes, constants and slips fail ----------------------------


def standard_params(p=3, d=128, k=3):
    return k * k * p * d


def standard_macs(n=100, p=3, d=128, k=3):
    return n * n * d * (k * k * p)


def separable_params(p=3, d=128, k=3):
    return [p * k * k, p * d]


def separable_macs(n=100, p=3, d=128, k=3):
    return [n * n * p * k * k, n * n * d * p]


def cost_ratio(d=128, k=3):
    return (k * k + d) / (k * k * d)


def mobilenet_params(alpha=1.0, num_classes=1000, table=TABLE1):
    c = int(32 * alpha)
    params = 27 * c + 2 * c  # the first conv and its batch norm
    for out, _ in table:
        out = int(out * alpha)
        params += 9 * c + 2 * c + c * out + 2 * out
        c = out
    return params + (c + 1) * num_classes


def mobilenet_macs(alpha=1.0, n=224, table=TABLE1):
    c, side = int(32 * alpha), (n - 1) // 2 + 1
    total = side * side * c * 27
    for out, stride in table:
        out, side = int(out * alpha), (side - 1) // stride + 1
        total += side * side * (9 * c + c * out)
        c = out
    return total + c * 1000


HONEST = {f"ex08.{f.__name__}": f for f in (standard_params, standard_macs, separable_params,
                                            separable_macs, cost_ratio, mobilenet_params,
                                            mobilenet_macs)}  # fmt: skip


def test_every_answer_has_honest_working_here() -> None:
    assert set(HONEST) == set(ANSWERS)


@pytest.mark.parametrize("name", sorted(HONEST))
def test_honest_working_passes_visible_and_hidden_cases(name: str) -> None:
    grading.check_answer(name, HONEST[name])
    grading.check_answer(name, HONEST[name], hidden=True)


def slides_depthwise(p=3, d=128, k=3):
    return [k * k, p * d]  # one k x k filter, where the depthwise step has p of them


def with_bias(p=3, d=128, k=3):
    return k * k * p * d + d


def ratio_saving(d=128, k=3):
    return 1 / cost_ratio(d, k)  # the saving (standard / separable), not the ratio asked


def ratio_one_term(d=128, k=3):
    return 1 / k**2  # right in the limit of many maps only


def with_the_papers_stride(alpha=1.0, n=224):
    table = [*TABLE1[:-1], (1024, 2)]  # table 1's "s2": a 4x4 grid at the end
    return mobilenet_macs(alpha, n, table)


def first_conv_not_thinned(alpha=1.0, num_classes=1000):
    c = 32  # alpha forgotten in the first layer
    params = 27 * c + 2 * c
    for out, _ in TABLE1:
        out = int(out * alpha)
        params += 9 * c + 2 * c + c * out + 2 * out
        c = out
    return params + (c + 1) * num_classes


def no_batch_norm(alpha=1.0, num_classes=1000):
    c, params = int(32 * alpha), 27 * int(32 * alpha)
    for out, _ in TABLE1:
        params += 9 * c + c * int(out * alpha)
        c = int(out * alpha)
    return params + (c + 1) * num_classes


@pytest.mark.parametrize(
    ("name", "func", "hidden", "message"),
    [
        ("separable_params", slides_depthwise, False, f"returned {slides_depthwise()}, expe"),
        ("standard_params", with_bias, False, f"returned {with_bias()}, expected a different"),
        ("cost_ratio", ratio_saving, False, f"cost_ratio(d=128, k=3) returned {ratio_saving()!r}"),
        ("cost_ratio", ratio_one_term, False, f"returned {ratio_one_term()!r}, expected a diff"),
        ("mobilenet_macs", with_the_papers_stride, False, "mobilenet_macs(alpha=1.0, n=224) re"),
        ("mobilenet_params", first_conv_not_thinned, True, "hidden cases (fresh givens) fail"),
        ("mobilenet_params", no_batch_norm, False, f"returned {no_batch_norm()}, expected a"),
    ],
)
def test_typical_mistakes_fail_saying_what_was_returned(name, func, hidden, message) -> None:
    with pytest.raises(grading.CheckFailed) as failure:
        grading.check_answer(f"ex08.{name}", func)
        if hidden:
            grading.check_answer(f"ex08.{name}", func, hidden=True)
    text = str(failure.value)
    assert message in text and text.startswith(f"{name}("), text
    expected = closed_form(f"ex08.{name}", ANSWERS[f"ex08.{name}"].fixed[0])
    assert str(expected) not in text  # a compute answer's message never shows the value


# --- a depthwise convolution from scratch --------------------------------------------------------


def depthwise_conv2d(x, weight, bias=None, stride=1, padding=0):
    """Each channel c slides its own filter weight[c, 0]: one multiply-add per filter tap."""
    padded = F.pad(x, (padding,) * 4)
    kh, kw = weight.shape[2:]
    h_out = (padded.shape[2] - kh) // stride + 1
    w_out = (padded.shape[3] - kw) // stride + 1
    out = x.new_zeros(x.shape[0], x.shape[1], h_out, w_out)
    for u in range(kh):
        for v in range(kw):
            taps = padded[:, :, u::stride, v::stride][:, :, :h_out, :w_out]
            out += taps * weight[:, 0, u, v].view(1, -1, 1, 1)
    return out if bias is None else out + bias.view(1, -1, 1, 1)


def torch_groups(x, weight, bias=None, stride=1, padding=0):
    return F.conv2d(x, weight, bias, stride, padding, groups=x.shape[1])


def per_channel_torch(x, weight, bias=None, stride=1, padding=0):
    """A loop over channels, each one PyTorch's convolution: still PyTorch's."""
    outs = [F.conv2d(x[:, [c]], weight[[c]], None, stride, padding) for c in range(x.shape[1])]
    out = torch.cat(outs, 1)
    return out if bias is None else out + bias.view(1, -1, 1, 1)


def by_unfold(x, weight, bias=None, stride=1, padding=0):
    n, c, h, w = x.shape
    kh, kw = weight.shape[2:]
    cols = F.unfold(x, (kh, kw), padding=padding, stride=stride).view(n, c, kh * kw, -1)
    out = (cols * weight.view(1, c, kh * kw, 1)).sum(2)
    h_out, w_out = (h + 2 * padding - kh) // stride + 1, (w + 2 * padding - kw) // stride + 1
    out = out.view(n, c, h_out, w_out)
    return out if bias is None else out + bias.view(1, -1, 1, 1)


def no_bias(x, weight, bias=None, stride=1, padding=0):
    return depthwise_conv2d(x, weight, None, stride, padding)


def no_stride(x, weight, bias=None, stride=1, padding=0):
    return depthwise_conv2d(x, weight, bias, 1, padding)


def no_padding(x, weight, bias=None, stride=1, padding=0):
    return depthwise_conv2d(x, weight, bias, stride, 0)


def flipped(x, weight, bias=None, stride=1, padding=0):
    """A true convolution (the filter flipped), not PyTorch's cross-correlation."""
    return depthwise_conv2d(x, weight.flip(2, 3), bias, stride, padding)


def channels_mixed(x, weight, bias=None, stride=1, padding=0):
    """Every output channel sums all input channels, each through its own filter."""
    out = depthwise_conv2d(x, weight, None, stride, padding).sum(1, keepdim=True)
    out = out.expand(-1, x.shape[1], -1, -1)
    return out if bias is None else out + bias.view(1, -1, 1, 1)


@pytest.mark.parametrize("task", ["basic", "stride_padding"])
def test_a_depthwise_convolution_from_scratch_passes(task: str) -> None:
    grading.check_function(f"ex08.depthwise_conv2d.{task}", depthwise_conv2d)
    grading.check_function(f"ex08.depthwise_conv2d.{task}", depthwise_conv2d, hidden=True)


def function_fails(task: str, func, hidden: bool = False) -> str:
    with pytest.raises(grading.CheckFailed) as failure:
        grading.check_function(task, func, hidden=hidden)
    return str(failure.value)


def problem(message: str) -> str:
    return re.search(r"problem: (.*)", message).group(1)


@pytest.mark.parametrize(
    ("task", "func", "message"),
    [
        ("basic", torch_groups, "it uses torch's own `aten.conv"),
        ("stride_padding", per_channel_torch, "it uses torch's own `aten.conv"),
        ("basic", by_unfold, "it uses torch's own `aten.im2col`"),
        ("basic", no_bias, "values are wrong"),
        ("basic", flipped, "values are wrong"),
        ("basic", channels_mixed, "values are wrong"),
        ("stride_padding", no_stride, "its output has shape"),
        # a drawn filter larger than the unpadded input cannot slide at all: an error
        ("stride_padding", no_padding, ("its output has shape", "negative dimension")),
    ],
)
def test_a_wrong_depthwise_convolution_fails_saying_what_is_wrong(task, func, message) -> None:
    for hidden in (False, True):
        text = function_fails(f"ex08.depthwise_conv2d.{task}", func, hidden)
        said = (message,) if isinstance(message, str) else message
        assert text.startswith("depthwise_conv2d: "), text
        assert any(m in problem(text) for m in said), text
        assert ("cnncourse.grading.cases(" in text) != hidden, text


# --- MobileNet v1's block ------------------------------------------------------------------------


def stage(c_in: int, c_out: int, k: int, stride: int, groups: int, bias: bool = False) -> list:
    conv = nn.Conv2d(c_in, c_out, k, stride, k // 2, groups=groups, bias=bias)
    return [conv, nn.BatchNorm2d(c_out), nn.ReLU()]


class DepthwiseSeparableConv(nn.Sequential):
    """depthwise (0): conv, BN, ReLU; pointwise (1): conv, BN, ReLU: torch.nn only."""

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1):
        c, k = in_channels, kernel_size
        super().__init__(
            nn.Sequential(*stage(c, c, k, stride, c)),
            nn.Sequential(*stage(c, out_channels, 1, 1, 1)),
        )


class NoGroups(nn.Sequential):
    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1):
        c, k = in_channels, kernel_size
        super().__init__(
            nn.Sequential(*stage(c, c, k, stride, 1)),
            nn.Sequential(*stage(c, out_channels, 1, 1, 1)),
        )


class StrideInPointwise(nn.Sequential):
    """The stride in the 1x1 conv: the same values in eval mode, not in train mode."""

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1):
        c, k = in_channels, kernel_size
        super().__init__(
            nn.Sequential(*stage(c, c, k, 1, c)),
            nn.Sequential(*stage(c, out_channels, 1, stride, 1)),
        )


class NoLastReLU(DepthwiseSeparableConv):
    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1):
        super().__init__(in_channels, out_channels, kernel_size, stride)
        self[1][2] = nn.Identity()


class Flat(nn.Sequential):
    """Six layers in one Sequential: the names 0, 1, 3, 4 instead of 0.0, 0.1, 1.0, 1.1."""

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1):
        c, k = in_channels, kernel_size
        super().__init__(*stage(c, c, k, stride, c), *stage(c, out_channels, 1, 1, 1))


class Named(nn.Module):
    """The chapter's hand-built block: right, but its own attribute names."""

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1):
        super().__init__()
        c = in_channels
        self.depthwise = nn.Conv2d(c, c, kernel_size, stride, kernel_size // 2, groups=c)
        self.bn1 = nn.BatchNorm2d(c)
        self.pointwise = nn.Conv2d(c, out_channels, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x):
        return F.relu(self.bn2(self.pointwise(F.relu(self.bn1(self.depthwise(x))))))


class WithBias(nn.Sequential):
    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1):
        c, k = in_channels, kernel_size
        super().__init__(
            nn.Sequential(*stage(c, c, k, stride, c, bias=True)),
            nn.Sequential(*stage(c, out_channels, 1, 1, 1)),
        )


class NoPadding(nn.Sequential):
    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1):
        c, k = in_channels, kernel_size
        conv = nn.Conv2d(c, c, k, stride, groups=c, bias=False)
        super().__init__(
            nn.Sequential(conv, nn.BatchNorm2d(c), nn.ReLU()),
            nn.Sequential(*stage(c, out_channels, 1, 1, 1)),
        )


def package_block(in_channels, out_channels, kernel_size=3, stride=1):
    from cnncourse.layers import DepthwiseSeparableConv as Ours

    return Ours(in_channels, out_channels, kernel_size, stride)


BLOCKS = ("ex08.separable_block.stride1", "ex08.separable_block.stride2")


def test_the_module_tasks_are_the_two_strides() -> None:
    assert {n for n, t in EX08.items() if t.compare is not None} == set(BLOCKS)


@pytest.mark.parametrize("task", BLOCKS)
def test_the_block_from_torch_nn_passes_visible_and_hidden_cases(task: str) -> None:
    grading.check_module(task, DepthwiseSeparableConv)
    grading.check_module(task, DepthwiseSeparableConv, hidden=True)


def module_fails(task: str, build, hidden: bool = False) -> str:
    with pytest.raises(grading.CheckFailed) as failure:
        grading.check_module(task, build, hidden=hidden)
    return str(failure.value)


@pytest.mark.parametrize(
    ("task", "build", "message"),
    [
        ("stride1", NoGroups, "its `0.0.weight` has shape (4, 4, 3, 3), expected (4, 1, 3, 3)"),
        ("stride2", StrideInPointwise, "(in train mode: batch norm normalises with the batch"),
        ("stride1", NoLastReLU, "output values are wrong"),
        ("stride1", Flat, "names differ from the stub's: no `0.0.weight` (and 11 more), but `0"),
        ("stride2", Named, "no `0.0.weight` (and 11 more), but `depthwise.weight` (and 12 more)"),
        ("stride1", WithBias, "its state_dict has `0.0.bias`, which the reference lacks"),
        ("stride2", NoPadding, "its output has shape"),
        ("stride1", package_block, "it uses cnncourse's own `cnncourse.layers.DepthwiseSepar"),
        ("stride1", lambda **kw: [DepthwiseSeparableConv(**kw)], "it built a list, not a torch"),
    ],
)
def test_a_wrong_block_fails_saying_what_is_wrong_first(task, build, message) -> None:
    text = module_fails(f"ex08.separable_block.{task}", build)
    assert text.startswith("DepthwiseSeparableConv: ") and message in problem(text), text


def test_the_stride_in_the_pointwise_conv_passes_in_eval_mode_only() -> None:
    """Subsampling after a 1x1 conv picks the same positions as a strided depthwise conv, so
    only the batch statistics of train mode tell the two apart."""
    eval_cases = [c for c in grading.modules.module_cases(BLOCKS[1]) if c[3] == "eval"]
    for kwargs, state, x, _ in eval_cases:
        right, wrong = DepthwiseSeparableConv(**kwargs), StrideInPointwise(**kwargs)
        for block in (right, wrong):
            block.load_state_dict(state, strict=True)
            block.eval()
        with torch.no_grad():
            torch.testing.assert_close(wrong(x), right(x))
    text = module_fails(BLOCKS[1], StrideInPointwise)
    assert "mode='train'" in text


def test_the_stub_is_not_answered_yet() -> None:
    class Stub(nn.Sequential):
        def __init__(self, in_channels, out_channels, kernel_size=3, stride=1):
            raise NotImplementedError()

    with pytest.raises(NotImplementedError, match="DepthwiseSeparableConv is not answered yet"):
        grading.check_module(BLOCKS[0], Stub, hidden=True)


def test_module_cases_cover_both_modes_and_load_into_the_block() -> None:
    for task in BLOCKS:
        cases = grading.modules.module_cases(task)
        assert {mode for *_, mode in cases} == {"eval", "train"}
        for kwargs, state, x, mode in cases:
            block = DepthwiseSeparableConv(**kwargs)
            block.load_state_dict(state, strict=True)
            block.train(mode == "train")
            assert block(x).shape[:2] == (x.shape[0], kwargs["out_channels"])


# --- hidden cases are fresh at every draw --------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EX08))
def test_hidden_cases_are_fresh_at_every_draw(name: str) -> None:
    judge = Judge()
    draws = [judge.handle({"op": "cases", "task": name, "hidden": True}) for _ in range(2)]
    first, second = (json.dumps(d["cases"]) for d in draws)
    assert first != second, name
    visible = [judge.handle({"op": "show", "task": name})["cases"] for _ in range(2)]
    assert visible[0] == visible[1], name

"""Module tasks and the compute answers of exercises 4-6 (`cnncourse.grading.modules`, `ex04`,
`ex05`, `ex06`), without nbgrader: the checks run in this process and talk to a real judge.

Student modules written here from torch.nn layers pass the visible and hidden cases; wrong ones
(a shortcut left out, a batch norm missing, the stride in the wrong conv, misnamed or extra
layers, batch norm that ignores the batch in train mode) fail with a message that says what is
wrong first; cnncourse's own modules, returned, subclassed, held or called, fail as such. The
answers' references agree with torchvision's modules, `FlopCounterMode` on the meta device, and
sums written here. End-to-end grading of the notebooks is in `test_grading.py`.
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
from cnncourse.grading import modules

pytestmark = pytest.mark.usefixtures("one_thread")

LATER = ("ex04.", "ex05.", "ex06.")  # exercises 7-10: tests/test_grading_exNN.py
MODULE_TASKS = {
    n: t for n, t in grading.TASKS.items() if t.compare is not None and n.startswith(LATER)
}
ANSWERS = {n: t for n, t in grading.TASKS.items() if t.answer and n.startswith(LATER)}


def fails(task: str, build, hidden: bool = False) -> str:
    """The message of a failing module check."""
    with pytest.raises(grading.CheckFailed) as failure:
        grading.check_module(task, build, hidden=hidden)
    return str(failure.value)


def problem(message: str) -> str:
    return re.search(r"problem: (.*)", message).group(1)


# --- student modules, written from torch.nn -------------------------------------------------------


def projection(c_in: int, c_out: int, stride: int) -> nn.Module | None:
    if stride == 1 and c_in == c_out:
        return None
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))


class BasicBlock(nn.Module):
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample = projection(in_channels, out_channels, stride)

    def residual(self, x):
        return self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))

    def forward(self, x):
        return F.relu(self.residual(x) + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(nn.Module):
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        w = out_channels // 4
        self.conv1, self.bn1 = nn.Conv2d(in_channels, w, 1, bias=False), nn.BatchNorm2d(w)
        self.conv2, self.bn2 = nn.Conv2d(w, w, 3, stride, 1, bias=False), nn.BatchNorm2d(w)
        self.conv3 = nn.Conv2d(w, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.downsample = projection(in_channels, out_channels, stride)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn3(self.conv3(F.relu(self.bn2(self.conv2(out)))))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class NoShortcut(BasicBlock):
    def forward(self, x):
        return F.relu(self.residual(x))


class SwappedStride(BasicBlock):
    """The stride in the second conv instead of the first: same shapes, other values."""

    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__(in_channels, out_channels, stride)
        self.conv1.stride, self.conv2.stride = (1, 1), (stride, stride)


class NoBatchNorm1(BasicBlock):
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__(in_channels, out_channels, stride)
        del self.bn1
        self.bn1 = nn.Identity()


class AlwaysProjection(BasicBlock):
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__(in_channels, out_channels, stride)
        self.downsample = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
            nn.BatchNorm2d(out_channels),
        )


class Renamed(BasicBlock):
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__(in_channels, out_channels, stride)
        self.shortcut, self.downsample = self.downsample, None

    def forward(self, x):
        return F.relu(self.residual(x) + (x if self.shortcut is None else self.shortcut(x)))


class WrongKernel(BasicBlock):
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__(in_channels, out_channels, stride)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 1, stride, bias=False)


class RunningStatsOnly(BasicBlock):
    """Batch norm with the running statistics always, even in train mode."""

    def forward(self, x):
        def bn(m, y):
            return F.batch_norm(y, m.running_mean, m.running_var, m.weight, m.bias, False)

        out = bn(self.bn2, self.conv2(F.relu(bn(self.bn1, self.conv1(x)))))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


def vgg_block(in_channels, out_channels, num_convs):
    layers = []
    for i in range(num_convs):
        layers += [nn.Conv2d(out_channels if i else in_channels, out_channels, 3, padding=1)]
        layers += [nn.ReLU()]
    return nn.Sequential(*layers, nn.MaxPool2d(2))


def make_features(cfg, in_channels=3, batch_norm=False):
    """torchvision's own builder of a VGG's features: an independent reference."""
    from torchvision.models.vgg import make_layers

    layers = make_layers(cfg, batch_norm)
    first = next(i for i, m in enumerate(layers) if isinstance(m, nn.Conv2d))
    width = layers[first].out_channels  # torchvision starts from 3 channels: swap the first conv
    layers[first] = nn.Conv2d(in_channels, width, 3, padding=1)
    return layers


def vgg_block_no_relu(in_channels, out_channels, num_convs):
    """The ReLUs left out: every layer after the first conv sits one place early."""
    return nn.Sequential(*[m for m in vgg_block(in_channels, out_channels, num_convs)
                           if not isinstance(m, nn.ReLU)])  # fmt: skip


def vgg_block_avg_pool(in_channels, out_channels, num_convs):
    return nn.Sequential(*list(vgg_block(in_channels, out_channels, num_convs))[:-1],
                         nn.AvgPool2d(2))  # fmt: skip


def features_bn_after_relu(cfg, in_channels=3, batch_norm=False):
    layers = list(make_features(cfg, in_channels, batch_norm))
    for i, m in enumerate(layers[:-1]):
        if isinstance(m, nn.BatchNorm2d):
            layers[i], layers[i + 1] = layers[i + 1], m
    return nn.Sequential(*layers)


class ConvReLU(nn.Module):
    def __init__(self, c_in, c_out, k):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, padding=k // 2)

    def forward(self, x):
        return F.relu(self.conv(x))


class NaiveInception(nn.Module):
    def __init__(self, in_channels, ch1x1, ch3x3, ch5x5):
        super().__init__()
        self.branch1 = ConvReLU(in_channels, ch1x1, 1)
        self.branch2 = ConvReLU(in_channels, ch3x3, 3)
        self.branch3 = ConvReLU(in_channels, ch5x5, 5)
        self.branch4 = nn.MaxPool2d(3, 1, 1)

    def forward(self, x):
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class Inception(NaiveInception):
    def __init__(self, in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj):
        nn.Module.__init__(self)
        self.branch1 = ConvReLU(in_channels, ch1x1, 1)
        self.branch2 = nn.Sequential(
            ConvReLU(in_channels, ch3x3red, 1), ConvReLU(ch3x3red, ch3x3, 3)
        )
        self.branch3 = nn.Sequential(
            ConvReLU(in_channels, ch5x5red, 1), ConvReLU(ch5x5red, ch5x5, 5)
        )
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, 1), ConvReLU(in_channels, pool_proj, 1))


class AvgPoolInception(NaiveInception):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.branch4 = nn.AvgPool2d(3, 1, 1)


class NoPoolBranch(NaiveInception):
    def forward(self, x):
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x)], 1)


class SwappedBranches(Inception):
    def forward(self, x):
        return torch.cat([self.branch2(x), self.branch1(x), self.branch3(x), self.branch4(x)], 1)


# --- module tasks --------------------------------------------------------------------------------


RIGHT = {
    "ex05.naive_inception": NaiveInception,
    "ex05.inception": Inception,
    "ex04.vgg_block": vgg_block,
    "ex04.make_features": make_features,
    "ex04.make_features_bn": make_features,
    "ex06.basic_block.identity": BasicBlock,
    "ex06.basic_block.projection": BasicBlock,
    "ex06.bottleneck.identity": Bottleneck,
    "ex06.bottleneck.projection": Bottleneck,
}


@pytest.mark.parametrize("task", sorted(RIGHT))
def test_a_module_from_torch_nn_passes_visible_and_hidden_cases(task: str) -> None:
    grading.check_module(task, RIGHT[task])
    grading.check_module(task, RIGHT[task], hidden=True)


def test_every_module_task_has_a_right_module_here() -> None:
    assert set(MODULE_TASKS) == set(RIGHT)


def test_module_cases_are_plain_data_and_cover_both_modes() -> None:
    """Cases travel as JSON; the visible cases of each task with batch norm include a train-mode
    one (batch norm's batch statistics); hidden ones draw fresh configurations."""
    for name, task in MODULE_TASKS.items():
        visible = list(task.fixed)
        norms = any("running_var" in " ".join(c["state_dict"]["names"]) for c in visible)
        assert any(c["mode"] == "train" for c in visible) == norms, name
        assert any(c["mode"] == "eval" for c in visible), name
        drawn = [task.cases(random.Random(seed)) for seed in range(8)]
        for case in visible + drawn:
            assert json.loads(json.dumps(case)) == case, name
            state = case["state_dict"]
            assert len(state["values"]) == sum(torch.Size(s).numel() for s in state["shapes"]), name
        configs = {
            json.dumps({k: v for k, v in c.items() if k not in modules.RESERVED}) for c in drawn
        }
        assert len(configs) > 1, name


@pytest.mark.parametrize(
    ("task", "build", "message"),
    [
        ("ex06.basic_block.identity", NoShortcut, "output values are wrong"),
        ("ex06.basic_block.projection", SwappedStride, "output values are wrong"),
        ("ex06.basic_block.identity", NoBatchNorm1, "its state_dict lacks `bn1.weight`"),
        (
            "ex06.basic_block.identity",
            AlwaysProjection,
            "has `downsample.0.weight` (and 5 more), which the reference lacks",
        ),
        (
            "ex06.basic_block.projection",
            Renamed,
            "names differ from the stub's: no `downsample.0.weight` (and 5 more), "
            "but `shortcut.0.weight`",
        ),
        (  # with one conv, the names agree and the output shows it
            "ex04.vgg_block",
            vgg_block_no_relu,
            ("names differ from the stub's: no `", "output values are wrong"),
        ),
        ("ex04.vgg_block", vgg_block_avg_pool, "output values are wrong"),
        ("ex04.make_features_bn", features_bn_after_relu, "names differ from the stub's: no `"),
        ("ex04.make_features", lambda **kw: list(make_features(**kw)), "it built a list, not a"),
        ("ex05.naive_inception", AvgPoolInception, "output values are wrong"),
        ("ex05.naive_inception", NoPoolBranch, "its output has shape"),
        ("ex05.inception", SwappedBranches, "output values are wrong"),
        ("ex05.inception", NaiveInception, "it raised TypeError"),
        (
            "ex06.basic_block.projection",
            WrongKernel,
            "its `conv1.weight` has shape (",
        ),
    ],
)
def test_a_wrong_module_fails_saying_what_is_wrong_first(task: str, build, message: str) -> None:
    for hidden in (False, True):
        text = fails(task, build, hidden)
        assert any(
            m in problem(text) for m in (message if isinstance(message, tuple) else [message])
        ), text
        assert text.startswith(f"{grading.TASKS[task].function}: ")


def test_batch_norm_must_use_the_batch_statistics_in_train_mode() -> None:
    text = fails("ex06.basic_block.identity", RunningStatsOnly)
    assert "mode='train'" in text and "in train mode: batch norm normalises" in text


def test_visible_messages_show_the_expected_value_hidden_ones_do_not() -> None:
    visible = problem(fails("ex06.basic_block.identity", NoShortcut))
    hidden = problem(fails("ex06.basic_block.identity", NoShortcut, hidden=True))
    assert ", expected " in visible and ", expected " not in hidden


def test_the_stub_is_not_answered_yet() -> None:
    class Stub(nn.Module):
        def __init__(self, in_channels, out_channels, stride=1):
            super().__init__()
            raise NotImplementedError()

    with pytest.raises(NotImplementedError, match="BasicBlock is not answered yet"):
        grading.check_module("ex06.basic_block.identity", Stub, hidden=True)


def _cnncourse_modules():
    from cnncourse.models import resnet_blocks as rb

    def shortcut(c_in, c_out, stride):
        return rb.make_shortcut("B", c_in, c_out, stride)

    class Subclass(rb.BasicBlock):
        def __init__(self, in_channels, out_channels, stride=1):
            super().__init__(
                in_channels, out_channels, stride, shortcut(in_channels, out_channels, stride)
            )

    class Holds(nn.Module):
        def __init__(self, in_channels, out_channels, stride=1):
            super().__init__()
            self.inner = rb.BasicBlock(in_channels, out_channels, stride)

    def returns(in_channels, out_channels, stride=1):
        return rb.BasicBlock(
            in_channels, out_channels, stride, shortcut(in_channels, out_channels, stride)
        )

    class Calls(BasicBlock):  # a torch.nn module whose forward runs cnncourse's code
        def __init__(self, in_channels, out_channels, stride=1):
            super().__init__(in_channels, out_channels, stride)
            self.relu, self.residual = nn.ReLU(), True  # what cnncourse's forward reads

        def forward(self, x):
            return rb.BasicBlock.forward(self, x)

    class BuildsWith(BasicBlock):  # cnncourse's helpers make its layers (plain torch classes)
        def __init__(self, in_channels, out_channels, stride=1):
            super().__init__(in_channels, out_channels, stride)
            self.conv1 = rb.conv3x3(in_channels, out_channels, stride)

    return {"Subclass": Subclass, "Holds": Holds, "returns": returns, "Calls": Calls,
            "BuildsWith": BuildsWith}  # fmt: skip


@pytest.mark.parametrize("kind", ["Subclass", "Holds", "returns", "Calls", "BuildsWith"])
def test_cnncourse_own_modules_do_not_pass(kind: str) -> None:
    build = _cnncourse_modules()[kind]  # Calls has the right layers: its forward gives it away
    text = fails("ex06.basic_block.identity", build, hidden=True)
    assert "it uses cnncourse's own `cnncourse.models.resnet_blocks." in problem(text), text


def test_the_forward_pre_hook_flags_a_cnncourse_module_run_in_the_forward() -> None:
    from cnncourse.models.resnet_blocks import ZeroPadShortcut

    seen: list[str] = []
    pad = ZeroPadShortcut(2, 4, 2)
    with modules._watch(seen):
        seen.clear()  # its construction ran cnncourse code; look at the forward only
        torch.nn.Module.__call__(pad, torch.zeros(1, 2, 4, 4))
    assert seen and seen[0].startswith("cnncourse.models.resnet_blocks")
    seen.clear()
    with modules._watch(seen):
        nn.Conv2d(1, 1, 1)(torch.zeros(1, 1, 2, 2))
    assert seen == []


def test_module_cases_give_a_loadable_state_dict() -> None:
    for kwargs, state, x, mode in modules.module_cases("ex06.bottleneck.projection"):
        block = Bottleneck(**kwargs)
        block.load_state_dict(state, strict=True)
        block.train(mode == "train")
        assert block(x).shape[1] == kwargs["out_channels"]


# --- compute answers: against torchvision, FlopCounterMode and sums written here ----------------


def macs(model: nn.Module, x: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() // 2


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def tv_block(kind: str, c_in: int, c_out: int, stride: int) -> nn.Module:
    """torchvision's residual block (its Bottleneck takes the width; expansion 4)."""
    from torchvision.models import resnet as tv

    down = projection(c_in, c_out, stride)
    if kind == "basic":
        return tv.BasicBlock(c_in, c_out, stride, down)
    return tv.Bottleneck(c_in, c_out // 4, stride, down)


def tv_resnet(layers: list[int], bottleneck: bool, num_classes: int = 1000) -> nn.Module:
    from torchvision.models import resnet as tv

    block = tv.Bottleneck if bottleneck else tv.BasicBlock
    return tv.ResNet(block, layers, num_classes)


def stage_sides(n: int) -> list[int]:
    net, sides = tv_resnet([1, 1, 1, 1], False), []
    x = torch.empty(1, 3, n, n, device="meta")
    with torch.device("meta"):
        net = net.to("meta")
    x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    for layer in (net.layer1, net.layer2, net.layer3, net.layer4):
        x = layer(x)
        sides.append(x.shape[-1])
    return sides


def vgg_conv_part(cfg: list, in_channels: int) -> nn.Sequential:
    """A VGG's conv part written out here: 3x3 convs (bias) and ReLUs, 2x2 max pools."""
    layers, c = [], in_channels
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU()]
            c = v
    return nn.Sequential(*layers)


def closed_form(name: str, a: dict) -> object:
    meta = torch.device("meta")
    key = name.split(".")[1]
    if name.startswith("ex04."):
        return closed_form_ex04(key, a)
    if name.startswith("ex05."):
        return closed_form_ex05(key, a)
    if key.startswith(("basic_", "bottleneck_")):
        kind = key.split("_")[0]
        with meta:
            block = tv_block(kind, a["c_in"], a["c_out"], a["stride"])
        if key.endswith("params"):
            return n_params(block)
        return macs(block, torch.empty(1, a["c_in"], a["n"], a["n"], device=meta))
    if key == "stage_sides":
        return stage_sides(a["n"])
    if key == "resnet_params":
        with meta:
            return n_params(tv_resnet(a["layers"], a["bottleneck"], a["num_classes"]))
    if key == "resnet_macs":
        with meta:
            net = tv_resnet(a["layers"], a["bottleneck"])
        return macs(net, torch.empty(1, 3, a["n"], a["n"], device=meta))
    raise KeyError(name)


def closed_form_ex04(key: str, a: dict) -> object:
    meta = torch.device("meta")
    if key == "size_conv1":
        x = torch.empty(1, 1, a["n"], a["n"], device=meta)
        return nn.Conv2d(1, 1, a["k"], a["s"], a["p"], device=meta)(x).shape[-1]
    if key == "params_conv1":
        return n_params(nn.Conv2d(a["p"], a["d"], a["k"], device=meta))
    if key == "macs_conv1":  # n is the output side: an input of n + k - 1, no padding
        conv = nn.Conv2d(a["p"], a["d"], a["k"], device=meta)
        side = a["n"] + a["k"] - 1
        return macs(conv, torch.empty(1, a["p"], side, side, device=meta))
    if key == "fc6_params":
        return n_params(nn.Linear(a["c"] * a["side"] ** 2, a["units"], device=meta))
    if key in ("stack_weights", "big_weights"):
        c, n = a["c"], a["n_layers"]
        if key == "stack_weights":
            convs = [nn.Conv2d(c, c, 3, bias=False, device=meta) for _ in range(n)]
            return n_params(nn.Sequential(*convs))
        big = nn.Conv2d(c, c, 1 + 2 * n, bias=False, device=meta)  # field of n 3x3: 1 + 2n
        return n_params(big)
    with meta:
        if key == "features_params":
            return n_params(vgg_conv_part(a["cfg"], a["in_channels"]))
        if key == "features_macs":
            x = torch.empty(1, a["in_channels"], a["n"], a["n"])
            return macs(vgg_conv_part(a["cfg"], a["in_channels"]), x)
        if key == "vgg_params":
            from torchvision.models.vgg import VGG

            features = vgg_conv_part(a["cfg"], 3)
            last = [v for v in a["cfg"] if v != "M"][-1]
            if last != 512:  # torchvision's classifier assumes 512 channels: swap its first layer
                net = VGG(features, a["num_classes"], init_weights=False)
                net.classifier[0] = nn.Linear(last * 7 * 7, 4096)
                return n_params(net)
            return n_params(VGG(features, a["num_classes"], init_weights=False))
    raise KeyError(key)


def closed_form_ex05(key: str, a: dict) -> object:
    """Inception modules written here: naive (1x1, 3x3, 5x5, pool) and with 1x1 reductions."""
    meta = torch.device("meta")
    with meta:
        if key in ("direct_5x5_macs", "reduced_5x5_macs"):
            if "r" in a:  # a 1x1 conv to r channels first
                convs = [
                    nn.Conv2d(a["c_in"], a["r"], 1),
                    nn.Conv2d(a["r"], a["c_out"], 5, padding=2),
                ]
            else:
                convs = [nn.Conv2d(a["c_in"], a["c_out"], 5, padding=2)]
            return macs(nn.Sequential(*convs), torch.empty(1, a["c_in"], a["n"], a["n"]))
        if key.startswith("naive"):
            module = NaiveInception(a["c_in"], a["c1"], a["c3"], a["c5"])
        else:
            givens = {"c_in": 1, "r3": 1, "r5": 1, **a}
            module = Inception(
                *(givens[g] for g in ("c_in", "c1", "r3", "c3", "r5", "c5", "pool_proj"))
            )
        if key.endswith("params"):
            return n_params(module)
        x = torch.empty(1, module.branch1.conv.in_channels, a.get("n", 1), a.get("n", 1))
        if key.endswith("channels"):
            return module(x).shape[1]
        return macs(module, x)


def test_the_givens_of_exercise_5_are_the_slides_examples() -> None:
    """The slides' 28x28x256 naive module (672 channels, 854M multiplications) and 5x5 example
    (120M and 12.4M), in the sums the slides write out."""
    tasks, n = grading.TASKS, 28
    naive = tasks["ex05.naive_macs"]
    assert naive.reference(naive.fixed[0]) == n * n * 256 * (128 * 1 + 192 * 9 + 96 * 25)
    channels = tasks["ex05.naive_channels"]
    assert channels.reference(channels.fixed[0]) == 128 + 192 + 96 + 256
    direct, reduced = tasks["ex05.direct_5x5_macs"], tasks["ex05.reduced_5x5_macs"]
    assert direct.reference(direct.fixed[0]) == (n * n * 32) * (5 * 5 * 192)
    assert reduced.reference(reduced.fixed[0]) == (n * n * 16) * 192 + (n * n * 32) * (5 * 5 * 16)


def test_the_givens_of_exercise_4_are_alexnet_and_vgg16() -> None:
    """AlexNet's conv1 (torchvision's, whose 64 filters we swap for the paper's 96) and VGG-16's
    totals against torchvision's published parameter count."""
    from torchvision.models import VGG16_Weights

    tasks = grading.TASKS
    vgg = tasks["ex04.vgg_params"]
    assert vgg.reference(vgg.fixed[0]) == VGG16_Weights.DEFAULT.meta["num_params"]
    size = tasks["ex04.size_conv1"]
    conv1 = nn.Conv2d(3, 96, 11, stride=4)
    assert size.reference(size.fixed[0]) == conv1(torch.zeros(1, 3, 227, 227)).shape[-1]


@pytest.mark.parametrize("name", sorted(ANSWERS))
def test_answer_references_agree_with_independent_references(name: str) -> None:
    task, r = ANSWERS[name], random.Random(name)
    for case in [*task.fixed, *(task.cases(r) for _ in range(5))]:
        assert json.loads(json.dumps(case)) == case
        assert task.reference(case) == closed_form(name, case), case


def test_the_givens_are_the_papers_networks() -> None:
    """ResNet-18's parameters and ResNet-50's MACs: torchvision's published figures."""
    from torchvision.models import ResNet18_Weights, ResNet50_Weights

    tasks = grading.TASKS
    params = tasks["ex06.resnet_params"]
    assert params.reference(params.fixed[0]) == ResNet18_Weights.DEFAULT.meta["num_params"]
    ops = tasks["ex06.resnet_macs"]
    gmacs = ResNet50_Weights.DEFAULT.meta["_ops"]
    assert round(ops.reference(ops.fixed[0]) / 1e9, 3) == gmacs


# every compute answer of exercises 4 to 10
ALL_LATER = {n: t for n, t in grading.TASKS.items() if t.answer and n[:2] == "ex" and n > "ex04"}


@pytest.mark.parametrize("name", sorted(ALL_LATER))
def test_a_constant_answer_fails_the_hidden_cases(name: str) -> None:
    task = ALL_LATER[name]
    value = task.reference(task.fixed[0])

    def constant(value=value, **givens):
        return value

    grading.check_answer(name, constant)
    wrong = "expected a different value|hidden cases \\(fresh givens\\) fail"
    with pytest.raises(grading.CheckFailed, match=wrong):
        grading.check_answer(name, constant, hidden=True)

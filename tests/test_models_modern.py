"""Modern families: GoogLeNet/Inception, DenseNet, MobileNet, Xception, FCN, U-Net.

Every expected value comes from outside our code: torchvision's models (random weights loaded
into ours with ``strict=True``, then the same outputs) and its published metadata (``num_params``,
``_ops``), the papers' tables (typed in below, with the table they come from), or a recomputation
from the papers' layer descriptions with `cnncourse.counting`. Where a printed figure is wrong
the test pins the exact value *and* checks the reason given in the model's docstring.

Cost: counts run on the meta device; forwards use small inputs (64x64, 32x32 for DenseNet and
CIFAR, 75x75 for Inception v3).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cnncourse import counting
from cnncourse.layers import ConvBNReLU
from cnncourse.models import densenet, fcn, googlenet, inception_v3, mobilenet, unet, xception
from cnncourse.profile import count_macs, count_params, summarize

tvm = torchvision.models


@pytest.fixture(autouse=True)
def _native_cpu_kernels():
    """oneDNN compiles a kernel for each new conv shape; these tests run hundreds of shapes once
    each (every DenseNet layer has its own), on tiny inputs: native kernels are several times
    faster here. Both sides of every comparison run on the same kernels."""
    previous = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    yield
    torch.backends.mkldnn.enabled = previous


def calibrate_bn(model: nn.Module, x: torch.Tensor, seed: int = 0) -> nn.Module:
    """Give every BN non-trivial statistics and affine terms, so that eval mode is really tested.

    The statistics are those of the BN's actual input for ``x``, perturbed at random, so that
    activations keep a sane scale through deep networks (random weights and random statistics
    would overflow). Leaves the model in eval mode.
    """
    g = torch.Generator().manual_seed(seed)

    def hook(m: nn.BatchNorm2d, args: tuple[torch.Tensor]) -> None:
        c, inp = m.num_features, args[0]
        mean, var = inp.mean((0, 2, 3)), inp.var((0, 2, 3)) + 1e-3
        m.running_mean.copy_(mean + 0.1 * var.sqrt() * torch.randn(c, generator=g))
        m.running_var.copy_(var * (0.5 + torch.rand(c, generator=g)))
        m.weight.copy_(0.5 + torch.rand(c, generator=g))
        m.bias.copy_(0.1 * torch.randn(c, generator=g))

    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    handles = [m.register_forward_pre_hook(hook) for m in bns]
    with torch.no_grad():
        model.eval()(x)
    for h in handles:
        h.remove()
    return model


def assert_all_grads(model: nn.Module) -> None:
    """Every trainable parameter received a gradient of its shape; unless on the meta device
    (shapes only), a finite one that is not all zero."""
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        assert p.grad is not None and p.grad.shape == p.shape, f"{name} got no gradient"
        if p.device.type != "meta":
            assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"
            assert p.grad.abs().sum() > 0, f"{name} has an all-zero gradient"


def on_meta(factory: Callable[..., nn.Module], **kwargs: object) -> nn.Module:
    with torch.device("meta"):
        return factory(**kwargs)


# --- torchvision compatibility ------------------------------------------------------------------

# name: (our factory, torchvision builder, weights enum, standard input, small test input)
TORCHVISION = {
    "googlenet": (
        googlenet.googlenet,
        lambda: tvm.googlenet(weights=None, aux_logits=True, init_weights=True),
        tvm.GoogLeNet_Weights.IMAGENET1K_V1,
        224,
        64,
    ),
    "inception_v3": (
        inception_v3.inception_v3,
        lambda: tvm.inception_v3(weights=None, aux_logits=True, init_weights=True),
        tvm.Inception_V3_Weights.IMAGENET1K_V1,
        299,
        75,
    ),
    **{
        name: (getattr(densenet, name), getattr(tvm, name), weights, 224, 32)
        for name, weights in [
            ("densenet121", tvm.DenseNet121_Weights.IMAGENET1K_V1),
            ("densenet161", tvm.DenseNet161_Weights.IMAGENET1K_V1),
            ("densenet169", tvm.DenseNet169_Weights.IMAGENET1K_V1),
            ("densenet201", tvm.DenseNet201_Weights.IMAGENET1K_V1),
        ]
    },
    "mobilenet_v2": (
        mobilenet.mobilenet_v2,
        lambda: tvm.mobilenet_v2(weights=None),
        tvm.MobileNet_V2_Weights.IMAGENET1K_V1,
        224,
        64,
    ),
}


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_state_dict_and_outputs(name: str) -> None:
    ours_factory, tv_factory, _, _, size = TORCHVISION[name]
    torch.manual_seed(0)
    # a batch of 8: enough samples for the statistics of the last, 1x1, maps
    reference = calibrate_bn(tv_factory(), torch.randn(8, 3, size, size))
    ours = ours_factory()
    ours.load_state_dict(reference.state_dict(), strict=True)
    ours.eval()
    x = torch.randn(8, 3, size, size)
    with torch.no_grad():
        expected = reference(x)
        assert expected.std() > 0.01 and expected.abs().max() < 1e4  # a meaningful comparison
        torch.testing.assert_close(ours(x), expected)
    assert count_params(ours) == count_params(reference)


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_published_params_and_macs(name: str) -> None:
    """torchvision's metadata: parameters of the released model, GMACs at the standard size.

    torchvision releases GoogLeNet without its auxiliary heads (and Inception v3 with them).
    """
    factory, _, weights, size, _ = TORCHVISION[name]
    kwargs = {"aux_logits": False} if name == "googlenet" else {}
    model = on_meta(factory, **kwargs)
    assert count_params(model) == weights.meta["num_params"]
    assert round(count_macs(model, (3, size, size)) / 1e9, 3) == weights.meta["_ops"]


def test_googlenet_training_outputs_match_torchvision() -> None:
    """Training mode: (logits, aux2, aux1), with BN on batch statistics and the same dropout."""
    torch.manual_seed(0)
    reference = tvm.googlenet(
        weights=None, aux_logits=True, init_weights=True, transform_input=True
    )
    ours = googlenet.googlenet(transform_input=True)
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    torch.manual_seed(1)
    expected = reference(x)
    torch.manual_seed(1)
    got = ours(x)
    assert isinstance(got, googlenet.GoogLeNetOutputs)
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b)


def test_inception_v3_aux_head_matches_torchvision() -> None:
    """The auxiliary head runs only in training mode, on a 17x17 grid (a 299 input)."""
    torch.manual_seed(0)
    reference = tvm.inception_v3(weights=None, init_weights=True)
    x = torch.randn(2, 768, 17, 17)
    calibrate_bn(reference.AuxLogits, x)
    ours = inception_v3.inception_v3().eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(ours.AuxLogits(x), reference.AuxLogits(x))


# --- GoogLeNet: Szegedy et al. 2015, table 1 ------------------------------------------------------

# Typed from the paper's table 1: output H (= W) and C, #1x1, #3x3 reduce, #3x3, #5x5 reduce,
# #5x5, pool proj, params (K), ops (M). conv2's "#3x3 reduce" and "#3x3" are its two convs.
TABLE1 = {
    "conv1": (112, 64, None, None, None, None, None, None, 2.7, 34),
    "conv2": (56, 192, None, 64, 192, None, None, None, 112, 360),
    "3a": (28, 256, 64, 96, 128, 16, 32, 32, 159, 128),
    "3b": (28, 480, 128, 128, 192, 32, 96, 64, 380, 304),
    "4a": (14, 512, 192, 96, 208, 16, 48, 64, 364, 73),
    "4b": (14, 512, 160, 112, 224, 24, 64, 64, 437, 88),
    "4c": (14, 512, 128, 128, 256, 24, 64, 64, 463, 100),
    "4d": (14, 528, 112, 144, 288, 32, 64, 64, 580, 119),
    "4e": (14, 832, 256, 160, 320, 32, 128, 128, 840, 170),
    "5a": (7, 832, 256, 160, 320, 32, 128, 128, 1072, 54),
    "5b": (7, 1024, 384, 192, 384, 48, 128, 128, 1388, 71),
    "linear": (1, 1000, None, None, None, None, None, None, 1000, 1),
}
TABLE1_DEPTH = [1, 2] + [2] * 9 + [1]  # the "depth" column: 22 layers with parameters
ERRATA_PARAMS = {"conv1", "4c", "5a"}  # the printed params that the docstring explains
ERRATA_OPS = {"conv1", "5a"}
MODULES = {"conv1": ["conv1"], "conv2": ["conv2", "conv3"], "linear": ["fc"]}
MODULES |= {row: [f"inception{row}"] for row in TABLE1 if row not in MODULES}


def table1_exact() -> dict[str, tuple[int, int]]:
    """(weights, MACs) of each row, from the row's own columns and the previous row's output."""
    exact, c_in = {}, 3
    for row, (hw, c_out, n1, r3, n3, r5, n5, pp, _, _) in TABLE1.items():
        if row == "conv1":
            convs = [(3, 64, 7)]
        elif row == "conv2":
            convs = [(c_in, r3, 1), (r3, n3, 3)]
        elif row == "linear":
            convs = [(c_in, c_out, 1)]  # a linear layer is a 1x1 conv at one position
        else:
            assert n1 + n3 + n5 + pp == c_out  # the table's own columns agree with its output
            convs = [(c_in, n1, 1), (c_in, r3, 1), (r3, n3, 3), (c_in, r5, 1), (r5, n5, 5)]
            convs.append((c_in, pp, 1))
        weights = sum(counting.conv_params(a, b, k, bias=False) for a, b, k in convs)
        macs = sum(counting.conv_macs(a, b, k, hw) for a, b, k in convs)
        exact[row], c_in = (weights, macs), c_out
    return exact


@pytest.fixture(scope="module")
def paper_googlenet() -> googlenet.GoogLeNet:
    return on_meta(googlenet.googlenet_paper, aux_logits=False)


def test_googlenet_table1_rows_exact(paper_googlenet: nn.Module) -> None:
    """Our paper GoogLeNet has, row by row, exactly the weights and MACs of table 1's columns,
    and each row's output has the printed H x W x C."""
    summary = summarize(paper_googlenet, (3, 224, 224))
    exact = table1_exact()
    modules = dict(paper_googlenet.named_modules())
    shapes = {}
    hooks = [
        modules[MODULES[row][-1]].register_forward_hook(
            lambda m, i, o, row=row: shapes.__setitem__(row, tuple(o.shape[1:]))
        )
        for row in TABLE1
    ]
    with torch.no_grad():
        paper_googlenet(torch.empty(1, 3, 224, 224, device="meta"))
    for h in hooks:
        h.remove()
    for row, (hw, c_out, *_) in TABLE1.items():
        names = MODULES[row]
        layers = [
            m for n in names for m in modules[n].modules() if isinstance(m, nn.Conv2d | nn.Linear)
        ]
        weights = sum(m.weight.numel() for m in layers)
        macs = sum(
            r.macs for r in summary.rows for n in names if (r.name + ".").startswith(n + ".")
        )
        assert (weights, macs) == exact[row], row
        assert shapes[row] == ((c_out,) if row == "linear" else (c_out, hw, hw)), row
    # Depth: 1 per conv row, per linear, and the longest branch of each inception module.
    depth = [1, 2] + [
        max(sum(isinstance(m, nn.Conv2d) for m in b.modules()) for b in module.children())
        for name, module in paper_googlenet.named_children()
        if name.startswith("inception")
    ]
    assert depth + [1] == TABLE1_DEPTH and sum(TABLE1_DEPTH) == 22


@pytest.mark.parametrize("row", TABLE1)
def test_googlenet_table1_printed_figures(row: str) -> None:
    """Printed params (K = 1024 weights) and ops (M = 10^6 MACs) agree with the exact counts,
    within 2% or the printed rounding (linear: 1.024M ops printed as 1M), except the errata
    explained in `cnncourse.models.googlenet`."""
    hw, *_, params_k, ops_m = TABLE1[row]
    weights, macs = table1_exact()[row]
    params_ok = abs(weights / 1024 - params_k) <= max(0.02 * params_k, 0.5)
    ops_ok = abs(macs / 1e6 - ops_m) <= max(0.02 * ops_m, 0.5)
    assert params_ok == (row not in ERRATA_PARAMS)
    assert ops_ok == (row not in ERRATA_OPS)
    printed_self_consistent = abs(params_k * 1024 * hw * hw / 1e6 / ops_m - 1) < 0.03
    if row in ("conv1", "5a"):  # (a), (c): the printed pair agrees with itself, not the layer
        assert printed_self_consistent
    if row == "4c":  # (b): the printed params contradict the printed (and exact) ops
        assert not printed_self_consistent


def test_googlenet_paper_totals(paper_googlenet: nn.Module) -> None:
    exact = table1_exact()
    total_macs = sum(m for _, m in exact.values())
    assert count_macs(paper_googlenet, (3, 224, 224)) == total_macs
    assert sum(ops for *_, ops in TABLE1.values()) == 1502  # the printed column: "1.5 billion"
    assert round(total_macs / 1e9, 2) == 1.58  # exact; conv1 accounts for +84M
    layers = [m for m in paper_googlenet.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    biases = sum(m.bias.numel() for m in layers)  # the paper's convs have biases, no BN
    assert count_params(paper_googlenet) == sum(w for w, _ in exact.values()) + biases
    # "12 times fewer parameters than AlexNet" (60M), i.e. ~5M: the table's network has ~7.0M
    assert count_params(paper_googlenet) > 60e6 / 12 * 1.3


def test_inception_slide_examples() -> None:
    """The slides' cost examples, each one a branch of a real module of the network."""
    model = on_meta(googlenet.googlenet_paper)
    # seeds/000: 28x28x192 -> 5x5 conv, 32 filters: 120M; with a 1x1 reduction to 16: 12.4M
    assert round(counting.conv_macs(192, 32, 5, 28) / 1e6) == 120
    assert round(count_macs(model.inception3a.branch3, (192, 28, 28)) / 1e5) == 124
    # seeds/004: 14x14x480 -> 5x5 conv, 48 filters: 112.9M; 1x1 to 16 then 5x5: 1.5M + 3.8M
    assert round(counting.conv_macs(480, 48, 5, 14) / 1e5) == 1129
    assert round(count_macs(model.inception4a.branch3[0], (480, 14, 14)) / 1e5) == 15
    assert round(count_macs(model.inception4a.branch3[1], (16, 14, 14)) / 1e5) == 38
    # seeds/002: naive module on 28x28x256 with 128 1x1, 192 3x3, 96 5x5: 854M, 28x28x672
    naive = googlenet.NaiveInceptionModule(256, 128, 192, 96)
    assert round(count_macs(naive, (256, 28, 28)) / 1e6) == 854
    assert naive(torch.randn(1, 256, 28, 28)).shape == (1, 672, 28, 28)
    # seeds/002 then claims 358M for the module with 1x1 reductions; its own six terms sum to
    # 271M (an erratum in the slides, recomputed here with the same module)
    reduced = googlenet.InceptionModule(256, 128, 64, 192, 64, 96, 64)
    assert round(count_macs(reduced, (256, 28, 28)) / 1e6) == 271


def test_inception_v3_factorisation() -> None:
    """Figure 6: 1x7 + 7x1 has 14/49 of the weights of a 7x7, with the same 7x7 field."""
    c = 64
    full = counting.conv_params(c, c, 7, bias=False)
    fact = inception_v3.factorized_conv(c, c, c, 7)
    convs = [m for m in fact.modules() if isinstance(m, nn.Conv2d)]
    assert sum(m.weight.numel() for m in convs) * 49 == full * 14
    assert [m.kernel_size for m in convs] == [(1, 7), (7, 1)]
    assert fact(torch.randn(1, c, 9, 11)).shape == (1, c, 9, 11)


# --- DenseNet: Huang et al. 2017, table 2 ---------------------------------------------------------

# (L, k, bottleneck and compression): params in millions, as printed in table 2
DENSENET_TABLE2 = {(40, 12, False): 1.0, (100, 12, False): 7.0, (100, 24, False): 27.2}
DENSENET_TABLE2 |= {(100, 12, True): 0.8, (250, 24, True): 15.3, (190, 40, True): 25.6}


@pytest.mark.parametrize("config", DENSENET_TABLE2)
def test_densenet_cifar_table2(config: tuple[int, int, bool]) -> None:
    depth, k, bc = config
    model = on_meta(densenet.densenet_cifar, depth=depth, growth_rate=k, bc=bc, num_classes=10)
    assert round(count_params(model) / 1e6, 1) == DENSENET_TABLE2[config]
    # L counts the layers with weights: stem, dense convs, transitions, classifier
    assert sum(isinstance(m, nn.Conv2d | nn.Linear) for m in model.modules()) == depth
    for block in (m for m in model.modules() if isinstance(m, densenet.DenseBlock)):
        k0 = block["denselayer1"].norm1.num_features
        for i, layer in enumerate(block.values()):  # layer i sees k0 + i*k channels, adds k
            convs = [m for m in layer.modules() if isinstance(m, nn.Conv2d)]
            assert (convs[0].in_channels, convs[-1].out_channels) == (k0 + i * k, k)
            assert len(convs) == (2 if bc else 1)
    if bc:  # compression 0.5 in every transition
        for t in (m for m in model.modules() if isinstance(m, densenet.Transition)):
            assert t.conv.out_channels == t.conv.in_channels // 2


# --- MobileNet: Howard et al. 2017 (v1), Sandler et al. 2018 (v2) ---------------------------------

# Table 1 of the v1 paper, with stride 1 for the second-to-last dw layer (the erratum):
# ("conv" | "dw" | "pw", stride, C_in, C_out, input size)
V1_TABLE1 = [("conv", 2, 3, 32, 224), ("dw", 1, 32, 32, 112), ("pw", 1, 32, 64, 112)]
V1_TABLE1 += [("dw", 2, 64, 64, 112), ("pw", 1, 64, 128, 56), ("dw", 1, 128, 128, 56)]
V1_TABLE1 += [("pw", 1, 128, 128, 56), ("dw", 2, 128, 128, 56), ("pw", 1, 128, 256, 28)]
V1_TABLE1 += [("dw", 1, 256, 256, 28), ("pw", 1, 256, 256, 28), ("dw", 2, 256, 256, 28)]
V1_TABLE1 += [("pw", 1, 256, 512, 14)] + [("dw", 1, 512, 512, 14), ("pw", 1, 512, 512, 14)] * 5
V1_TABLE1 += [("dw", 2, 512, 512, 14), ("pw", 1, 512, 1024, 7), ("dw", 1, 1024, 1024, 7)]
V1_TABLE1 += [("pw", 1, 1024, 1024, 7)]


def test_mobilenet_v1_table1_exact() -> None:
    macs = weights = 0
    for kind, s, c_in, c_out, size in V1_TABLE1:
        k, groups = (1, 1) if kind == "pw" else (3, c_in if kind == "dw" else 1)
        out = counting.conv_output_size(size, k, s, padding=k // 2)
        macs += counting.conv_macs(c_in, c_out, k, out, groups)
        weights += counting.conv_params(c_in, c_out, k, groups, bias=False)
    macs += counting.linear_macs(1024, 1000)  # avg pool 7x7 then FC 1000
    weights += counting.linear_params(1024, 1000, bias=False)
    model = on_meta(mobilenet.mobilenet_v1)
    assert count_macs(model, (3, 224, 224)) == macs
    layers = [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    assert sum(m.weight.numel() for m in layers) == weights


# Table 6 (width multiplier at 224) and table 7 (resolution at alpha=1): M mult-adds, M params
V1_TABLES_6_7 = {(1.0, 224): (569, 4.2), (0.75, 224): (325, 2.6), (0.5, 224): (149, 1.3)}
V1_TABLES_6_7 |= {(0.25, 224): (41, 0.5), (1.0, 192): (418, 4.2), (1.0, 160): (290, 4.2)}
V1_TABLES_6_7 |= {(1.0, 128): (186, 4.2)}


@pytest.mark.parametrize("alpha,size", V1_TABLES_6_7)
def test_mobilenet_v1_width_and_resolution(alpha: float, size: int) -> None:
    macs_m, params_m = V1_TABLES_6_7[(alpha, size)]
    model = on_meta(mobilenet.mobilenet_v1, width_mult=alpha)
    assert abs(count_macs(model, (3, size, size)) / 1e6 - macs_m) < 1
    assert round(count_params(model) / 1e6, 1) == params_m


def test_mobilenet_v1_table2_shares() -> None:
    """Table 2: share of mult-adds and parameters (weights) by layer type; 3x3 conv erratum."""
    printed = {"1x1": (94.86, 74.59), "dw": (3.06, 1.06), "3x3": (1.19, 0.02), "fc": (0.18, 24.33)}
    model = on_meta(mobilenet.mobilenet_v1)
    modules = dict(model.named_modules())
    macs = dict.fromkeys(printed, 0)
    weights = dict.fromkeys(printed, 0)
    for r in summarize(model, (3, 224, 224)).rows:
        m = modules[r.name]
        if isinstance(m, nn.Linear):
            kind = "fc"
        elif isinstance(m, nn.Conv2d):
            kind = "1x1" if m.kernel_size == (1, 1) else "dw" if m.groups > 1 else "3x3"
        else:
            continue
        macs[kind] += r.macs
        weights[kind] += m.weight.numel()
    for kind, (p_macs, p_weights) in printed.items():
        assert abs(100 * weights[kind] / sum(weights.values()) - p_weights) < 0.01, kind
        share = 100 * macs[kind] / sum(macs.values())
        assert (abs(share - p_macs) < 0.01) == (kind != "3x3"), kind
    assert abs(100 * macs["3x3"] / sum(macs.values()) - 1.91) < 0.01  # 1.19 with digits swapped
    assert round(sum(p for p, _ in printed.values()), 2) == 99.29  # the printed column


def test_mobilenet_v2_paper_table4() -> None:
    """300M mult-adds (agrees); 3.4M params printed, 3,504,872 exact (torchvision's meta)."""
    model = on_meta(mobilenet.mobilenet_v2)
    assert abs(count_macs(model, (3, 224, 224)) / 1e6 - 300) < 1
    assert round(count_params(model) / 1e6, 1) == 3.5  # not 3.4: see the module docstring


def test_mobilenet_v2_init_draws_what_torchvision_draws() -> None:
    # torchvision's kaiming_normal_(mode="fan_out") default gain, leaky_relu with a = 0, is
    # ReLU's sqrt(2): `init_conv_bn` draws the same numbers from the same seed.
    torch.manual_seed(0)
    reference = tvm.mobilenet_v2().state_dict()
    torch.manual_seed(0)
    ours = mobilenet.mobilenet_v2().state_dict()
    assert ours.keys() == reference.keys()
    assert all(torch.equal(value, reference[key]) for key, value in ours.items())


@pytest.mark.parametrize(
    "activation",
    [nn.ReLU, nn.ReLU6, nn.Hardswish, nn.SiLU, functools.partial(nn.LeakyReLU, 0.2)]
    + [nn.GELU, nn.Sigmoid, nn.Tanh, functools.partial(nn.GELU, approximate="tanh")],
)
def test_conv_bn_activation_takes_any_activation(activation: Callable[..., nn.Module]) -> None:
    # In place where the activation has the option (as torchvision's Conv2dNormActivation);
    # GELU, Sigmoid and Tanh have none, and inplace=True would raise TypeError.
    torch.manual_seed(0)
    block = ConvBNReLU(3, 8, activation=activation).eval()
    reference = activation()
    assert type(block[2]) is type(reference)
    assert getattr(block[2], "inplace", None) == (True if hasattr(reference, "inplace") else None)
    x = torch.randn(2, 3, 9, 9)
    with torch.no_grad():
        torch.testing.assert_close(block(x), reference(block[1](block[0](x))))
    assert len(ConvBNReLU(3, 8, activation=None)) == 2  # conv and BN only


# --- Xception: Chollet 2017 -----------------------------------------------------------------------


def test_xception_paper_params_and_grid() -> None:
    """Table 3: 22,855,952 parameters; figure 5: 19x19x728 in the middle flow for 299x299."""
    model = on_meta(xception.xception)
    assert count_params(model) == 22_855_952
    rows = {r.name: r for r in summarize(model, (3, 299, 299)).rows}
    assert rows["middle_flow.7.residual.8"].output_shape == (728, 19, 19)
    assert rows["exit_flow.6"].output_shape == (2048, 10, 10)
    sep = xception.SeparableConv2d(728, 728)  # depthwise 3x3 + pointwise, no bias
    assert count_params(sep) == 9 * 728 + 728 * 728


# --- FCN: Long et al. 2015 ------------------------------------------------------------------------


def _kernel_stride_padding(m: nn.Module) -> tuple[int, int, int]:
    return tuple(v if isinstance(v, int) else v[0] for v in (m.kernel_size, m.stride, m.padding))


def _coordinate_offsets(model: fcn.FCN) -> dict[str, float]:
    """The crop offsets, derived from the layers' kernels, strides and paddings.

    Index j of a map sits at input coordinate x = S*j + O (S: its stride, O: its offset). A conv
    or pool (k, s, p) maps O -> O + S*((k-1)/2 - p) and S -> S*s; a transposed conv (2f, f)
    maps S -> S/f and O -> O - S/f*(f - 1/2). A map is cropped where it meets the other's index 0.
    """
    offset, stride, taps = 0.0, 1, {}
    for i, m in enumerate([*model.features, *model.classifier]):
        if isinstance(m, nn.Conv2d | nn.MaxPool2d):
            k, s, p = _kernel_stride_padding(m)
            offset, stride = offset + stride * ((k - 1) / 2 - p), stride * s
        if i in (fcn._POOL3, fcn._POOL4):
            taps[i] = offset

    def up(o: float, s: float, f: int) -> tuple[float, float]:
        return o - s / f * (f - 0.5), s / f

    s16, s8 = up(offset, stride, 2), up(*up(offset, stride, 2), 2)
    return {
        "32s": -up(offset, stride, 32)[0],
        "pool4": (s16[0] - taps[fcn._POOL4]) / 16,
        "16s": -up(*s16, 16)[0],
        "pool3": (s8[0] - taps[fcn._POOL3]) / 8,
        "8s": -up(*s8, 8)[0],
    }


def test_fcn_crop_offsets_follow_from_geometry() -> None:
    offsets = _coordinate_offsets(on_meta(fcn.fcn8s))
    # what Caffe's coord_map computes for the reference nets' crop layers (voc-fcn*s/net.py);
    # the PyTorch ports (e.g. wkentaro/pytorch-fcn) hard-code the same numbers
    assert offsets == {"32s": 19, "pool4": 5, "16s": 27, "pool3": 9, "8s": 31}
    assert (offsets["pool4"], offsets["pool3"]) == (fcn._OFFSET_POOL4, fcn._OFFSET_POOL3)
    assert {32: offsets["32s"], 16: offsets["16s"], 8: offsets["8s"]} == fcn._OFFSET_FINAL


def test_fcn_table1_vgg16() -> None:
    """Table 1, FCN-VGG16: 16 conv layers, rf size 404, max stride 32, 134M parameters."""
    model = on_meta(fcn.fcn32s, num_classes=21)  # PASCAL VOC: 20 classes + background
    convs = [m for m in [*model.features, *model.classifier] if isinstance(m, nn.Conv2d)]
    assert len(convs) == 16
    windows = [
        m for m in [*model.features, *model.classifier] if isinstance(m, nn.Conv2d | nn.MaxPool2d)
    ]
    layers = [_kernel_stride_padding(m)[:2] for m in windows]
    assert counting.receptive_field_steps(layers)[-1] == (404, 32)
    assert round(count_params(model, trainable_only=True) / 1e6) == 134
    assert count_params(model) - count_params(model, trainable_only=True) == 21 * 21 * 64 * 64


def test_fcn_bilinear_upsampling_is_bilinear_interpolation() -> None:
    """The transposed conv's initial kernel is F.interpolate's bilinear away from the borders."""
    x = torch.randn(1, 3, 6, 7)
    up = nn.ConvTranspose2d(3, 3, 4, stride=2, padding=1, bias=False)
    with torch.no_grad():
        up.weight.copy_(fcn.bilinear_kernel(3, 4))
        got = up(x)
    expected = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    torch.testing.assert_close(got[..., 1:-1, 1:-1], expected[..., 1:-1, 1:-1])


def test_fcn_convolutionalized_vgg16_matches_torchvision_classifier() -> None:
    torch.manual_seed(0)
    vgg = tvm.vgg16(weights=None).eval()
    model = fcn.fcn8s().eval()
    missing, unexpected = model.load_state_dict(
        fcn.convolutionalize_vgg16(vgg.state_dict()), strict=False
    )
    assert not unexpected
    assert {k.split(".")[0] for k in missing} == {
        "classifier",
        "score_pool4",
        "score_pool3",
        "upscore2",
        "upscore_pool4",
        "upscore",
    }
    assert all(k.startswith("classifier.6") for k in missing if k.startswith("classifier"))
    pool5 = torch.randn(2, 512, 7, 7)  # one 7x7 window: fc6 as a conv = fc6 as a linear layer
    with torch.no_grad():
        torch.testing.assert_close(
            model.classifier[:5](pool5).flatten(1), vgg.classifier[:5](pool5.flatten(1))
        )


@pytest.mark.parametrize("size", [(1, 1), (17, 23), (64, 64), (101, 77)])
@pytest.mark.parametrize("factory", [fcn.fcn32s, fcn.fcn16s, fcn.fcn8s])
def test_fcn_keeps_input_size(factory: Callable[..., nn.Module], size: tuple[int, int]) -> None:
    model = on_meta(factory, num_classes=5)
    with torch.no_grad():
        assert model(torch.empty(2, 3, *size, device="meta")).shape == (2, 5, *size)


# --- U-Net: Ronneberger et al. 2015 ---------------------------------------------------------------


def test_unet_figure1_sizes() -> None:
    """Figure 1: 572x572 -> 388x388 with valid convs; the sizes of every level on the way."""
    model = on_meta(unet.unet)
    sizes = []
    modules = [model.inc, *model.downs, *model.ups, model.outc]
    hooks = [
        m.register_forward_hook(lambda m, i, o: sizes.append(tuple(o.shape[1:]))) for m in modules
    ]
    with torch.no_grad():
        out = model(torch.empty(1, 1, 572, 572, device="meta"))
    for h in hooks:
        h.remove()
    assert out.shape == (1, 2, 388, 388)
    expected = [(64, 568), (128, 280), (256, 136), (512, 64), (1024, 28)]
    expected += [(512, 52), (256, 100), (128, 196), (64, 388), (2, 388)]
    assert sizes == [(c, s, s) for c, s in expected]
    assert model.output_size(572) == 388
    # Parameters from figure 1's description: 2 convs per level, up-convs halve the channels
    params = counting.conv_params(1, 64, 3) + counting.conv_params(64, 64, 3)
    for c in (64, 128, 256, 512):
        params += counting.conv_params(c, 2 * c, 3) + counting.conv_params(2 * c, 2 * c, 3)
        params += counting.conv_params(2 * c, c, 2)  # the 2x2 up-convolution
        params += counting.conv_params(2 * c, c, 3) + counting.conv_params(c, c, 3)
    assert count_params(model) == params + counting.conv_params(64, 2, 1)


def run_by_hand(model: unet.UNet, size: int) -> tuple[list[int], int | None]:
    """The U-Net's layers run one by one on a size x size meta input, without `UNet.forward`'s
    check: the size of the map entering each max pool, and the output size (None when a layer
    finds its input too small).
    """
    x = torch.empty(1, 1, size, size, device="meta")
    pooled: list[int] = []
    try:
        skips = [model.inc(x)]
        for down in model.downs:
            pooled.append(skips[-1].shape[-1])
            skips.append(down(skips[-1]))
        x = skips.pop()
        for up in model.ups:
            x = up(x, skips.pop())
    except RuntimeError:  # e.g. "Kernel size can't be greater than actual input size"
        return pooled, None
    return pooled, model.outc(x).shape[-1]


@pytest.mark.parametrize(("depth", "sizes"), [(4, range(150, 600)), (2, range(1, 80))])
def test_unet_valid_tile_sizes(depth: int, sizes: range) -> None:
    """The paper's tiles: every pooled map even. Other sizes are refused, naming the nearest."""
    model = on_meta(unet.unet, base_channels=4, depth=depth)
    step = 2**depth  # the pools halve `depth` times: tiles should come every `step` pixels
    valid = {}  # size -> output size, for the sizes where the layers run and every pool is even
    for size in range(sizes.start, sizes.stop + step):  # one more step: the next valid one
        pooled, out = run_by_hand(model, size)
        if out is not None and all(p % 2 == 0 for p in pooled):
            valid[size] = out
    assert list(valid) == [s for s in range(min(valid), sizes.stop + step, step)]
    if depth == 4:
        assert min(valid) == 188 and valid[572] == 388  # the paper's figure 1
    for size in sizes:
        if size in valid:
            assert model.output_size(size) == valid[size]
            continue
        below = [s for s in valid if s < size]
        above = min(s for s in valid if s > size)
        nearest = f"sizes are {max(below)} and {above}" if below else f"size is {above}"
        with pytest.raises(ValueError, match=f"input size {size} .* valid tile {nearest} "):
            model.output_size(size)


@pytest.mark.parametrize("up_mode", ["transpose", "bilinear", "nearest"])
def test_unet_sizes(up_mode: str) -> None:
    valid = on_meta(unet.unet, up_mode=up_mode)
    padded = on_meta(unet.unet_padded, up_mode=up_mode)
    reference = on_meta(unet.unet)  # same weights whatever the up-convolution
    assert count_params(valid) == count_params(padded) == count_params(reference)
    for size in [188, 204, 220, 572]:  # valid tiles: the output has the size of a hand-run
        with torch.no_grad():
            got = valid(torch.empty(1, 1, size, size + 32, device="meta")).shape
        assert got == (1, 2, run_by_hand(reference, size)[1], run_by_hand(reference, size + 32)[1])
    for height, width, bad in [(570, 572, 570), (572, 570, 570), (188, 189, 189), (172, 188, 172)]:
        with pytest.raises(ValueError, match=f"input size {bad} does not suit"):  # H or W
            valid(torch.empty(1, 1, height, width, device="meta"))
    with pytest.raises(ValueError, match="too small"):
        valid.output_size(172)  # every pool even, but the expanding path runs out of pixels
    for size in [16, 17, 31, 33, 65, 100]:  # odd sizes included: the padded U-Net keeps H, W
        with torch.no_grad():
            assert padded(torch.empty(1, 1, size, size + 3, device="meta")).shape[-2:] == (
                size,
                size + 3,
            )


# --- every model: summarize, FlopCounterMode, forward and backward --------------------------------

# name: (factory and kwargs, input shape (C, H, W) for the counts, small input for a real pass)
EVERY = {
    "googlenet": (googlenet.googlenet, {}, (3, 224, 224), (2, 3, 64, 64)),
    # no BN: a batch of one; the paper's auxiliary heads need a 224 input
    "googlenet_paper": (googlenet.googlenet_paper, {}, (3, 224, 224), (1, 3, 224, 224)),
    "inception_v3": (
        inception_v3.inception_v3,
        {"aux_logits": False},
        (3, 299, 299),
        (2, 3, 75, 75),
    ),
    **{
        n: (getattr(densenet, n), {}, (3, 224, 224), (2, 3, 32, 32))
        for n in ["densenet121", "densenet161", "densenet169", "densenet201"]
    },
    "densenet_bc_100_12": (densenet.densenet_bc_100_12, {}, (3, 32, 32), (2, 3, 8, 8)),
    "densenet_bc_250_24": (densenet.densenet_bc_250_24, {}, (3, 32, 32), (2, 3, 8, 8)),
    "mobilenet_v1": (mobilenet.mobilenet_v1, {}, (3, 224, 224), (2, 3, 64, 64)),
    "mobilenet_v2": (mobilenet.mobilenet_v2, {}, (3, 224, 224), (2, 3, 64, 64)),
    "xception": (xception.xception, {}, (3, 299, 299), (2, 3, 64, 64)),
    "fcn32s": (fcn.fcn32s, {}, (3, 224, 224), (1, 3, 9, 11)),
    "fcn16s": (fcn.fcn16s, {}, (3, 224, 224), (1, 3, 9, 11)),
    "fcn8s": (fcn.fcn8s, {}, (3, 224, 224), (1, 3, 9, 11)),
    # small widths for the real pass of the U-Nets: the valid one needs a tile of 188, 204, ...
    "unet": (unet.unet, {}, (1, 572, 572), (1, 1, 188, 204)),
    "unet_padded": (unet.unet_padded, {}, (1, 64, 64), (1, 1, 33, 35)),
}
SEGMENTATION = {"fcn32s", "fcn16s", "fcn8s", "unet", "unet_padded"}
# A real pass of an FCN costs a VGG-16 on a 200x200 input (the 100-pixel padding), whatever the
# input: FCN-8s, whose layers include those of the others, runs for real, FCN-32s and FCN-16s on
# the meta device (autograd there checks that every parameter is in the graph, with its shape).
META_ONLY = {"fcn32s", "fcn16s"}


def test_every_family_model_is_covered() -> None:
    registered = {}
    for module in (densenet, fcn, googlenet, inception_v3, mobilenet, unet, xception):
        registered |= module.MODELS
    assert set(registered) == set(EVERY)
    assert all(registered[n] is EVERY[n][0] for n in EVERY)


@pytest.mark.parametrize("name", EVERY)
def test_summarize_and_flop_counter(name: str) -> None:
    factory, kwargs, size, _ = EVERY[name]
    model = on_meta(factory, **kwargs).eval()
    summary = summarize(model, size)
    assert summary.total_params == count_params(model)
    assert "Total MACs" in str(summary)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        out = model(torch.empty(1, *size, device="meta"))
    assert summary.total_macs == counter.get_total_flops() // 2  # FLOPs = 2 x MACs
    if name in SEGMENTATION:
        hw = size[1:] if name != "unet" else (388, 388)
        assert tuple(out.shape) == (1, 21 if name.startswith("fcn") else 2, *hw)
    else:
        assert tuple(out.shape) == (1, 10 if "bc" in name else 1000)


@pytest.mark.parametrize("name", EVERY)
def test_forward_backward(name: str) -> None:
    factory, kwargs, _, shape = EVERY[name]
    torch.manual_seed(0)
    if name in ("unet", "unet_padded"):
        kwargs = {**kwargs, "base_channels": 8}
    with torch.device("meta" if name in META_ONLY else "cpu"):
        model = factory(num_classes=3, **kwargs).train()
        if name.startswith("fcn"):  # zero-initialised scores would give zero gradients below
            for m in model.modules():
                if isinstance(m, nn.Conv2d) and m.out_channels == 3:
                    nn.init.normal_(m.weight, std=0.01)
        out = model(torch.randn(*shape))
    outputs = list(out) if isinstance(out, tuple) else [out]
    n = shape[0]
    if name in SEGMENTATION:
        hw = shape[2:] if name != "unet" else (4, 20)  # a valid tile loses 184 (572 -> 388)
        assert outputs[0].shape == (n, 3, *hw)
    else:
        assert all(o.shape == (n, 3) for o in outputs)
    if name.startswith("googlenet"):
        assert len(outputs) == 3  # training mode: logits and the two auxiliary heads
    sum(o.square().mean() for o in outputs).backward()
    assert_all_grads(model)
    if name.startswith("fcn"):
        assert model.upscore.weight.grad is None  # the fixed bilinear upsampling
    if name == "inception_v3":  # the aux head needs a 17x17 grid (299 input): test it alone
        aux = inception_v3.InceptionAux(768, 3).train()
        aux(torch.randn(2, 768, 17, 17)).sum().backward()
        assert_all_grads(aux)

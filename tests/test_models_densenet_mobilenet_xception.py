"""DenseNet (Huang et al. 2017), MobileNet v1/v2 (Howard et al. 2017, Sandler et al. 2018) and
Xception (Chollet 2017) against their papers' tables, exact counts written from the papers'
definitions with `cnncourse.counting`, and torchvision's initialisation.

Helpers come from ``test_models_modern.py``; the models' torchvision state_dict, published counts,
`summarize`, `FlopCounterMode` and forward/backward checks are there too.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import pytest
import torch
from test_models_modern import (
    native_cpu_kernels,  # noqa: F401 (autouse: applies here too)
    on_meta,
    tvm,
)
from torch import nn

from cnncourse import counting
from cnncourse.layers import ConvBNReLU
from cnncourse.models import densenet, mobilenet, resnet_cifar, xception
from cnncourse.profile import count_macs, count_params, summarize

# --- DenseNet: Huang et al. 2017, table 2 ---------------------------------------------------------

# (L, k, bottleneck and compression): params in millions, as printed in table 2
DENSENET_TABLE2 = {(40, 12, False): 1.0, (100, 12, False): 7.0, (100, 24, False): 27.2}
DENSENET_TABLE2 |= {(100, 12, True): 0.8, (250, 24, True): 15.3, (190, 40, True): 25.6}


def densenet_cifar_params(depth: int, k: int, bc: bool, num_classes: int = 10) -> int:
    """Section 3 of the paper, summed from its text, for 32x32 inputs: a 3x3 conv (16 maps, or
    2k for DenseNet-BC); 3 dense blocks of n layers, layer H_l = BN-ReLU-3x3 conv (k maps) or,
    with bottleneck, BN-ReLU-1x1 conv (4k) then BN-ReLU-3x3 conv (k); between blocks a
    transition BN-ReLU-1x1 conv to floor(theta * m) maps (theta = 0.5 for BC, 1 otherwise) and
    2x2 average pooling; after the last block BN-ReLU, global average pooling and a linear
    classifier. Convs without bias (each is preceded, not followed, by a BN)."""
    n = (depth - 4) // (6 if bc else 3)
    c = 2 * k if bc else 16
    total = counting.conv_params(3, c, 3, bias=False)
    for block in range(3):
        for _ in range(n):
            if bc:
                total += counting.batchnorm_params(c)
                total += counting.conv_params(c, 4 * k, 1, bias=False)
                total += counting.batchnorm_params(4 * k)
                total += counting.conv_params(4 * k, k, 3, bias=False)
            else:
                total += counting.batchnorm_params(c) + counting.conv_params(c, k, 3, bias=False)
            c += k  # the layer's k maps join the concatenation
        if block < 2:
            out = c // 2 if bc else c
            total += counting.batchnorm_params(c) + counting.conv_params(c, out, 1, bias=False)
            c = out
    return total + counting.batchnorm_params(c) + counting.linear_params(c, num_classes)


@pytest.mark.parametrize("config", DENSENET_TABLE2)
def test_densenet_cifar_table2(config: tuple[int, int, bool]) -> None:
    depth, k, bc = config
    model = on_meta(densenet.densenet_cifar, depth=depth, growth_rate=k, bc=bc, num_classes=10)
    exact = densenet_cifar_params(depth, k, bc)  # DenseNet-BC (L=100, k=12): 769,162
    assert count_params(model) == exact
    assert f"{exact:,}" in densenet.__doc__  # the module docstring's exact counts
    assert round(exact / 1e6, 1) == DENSENET_TABLE2[config]
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


def test_densenet_table2_is_for_10_classes() -> None:
    """The docstring's CIFAR-100 count: 90 more classes, 90 x (C + 1) more classifier weights."""
    exact = densenet_cifar_params(40, 12, bc=False, num_classes=100)
    model = on_meta(densenet.densenet_cifar, depth=40, growth_rate=12, bc=False, num_classes=100)
    assert count_params(model) == exact and f"{exact:,}" in densenet.__doc__
    assert round(exact / 1e6, 1) == 1.1 != DENSENET_TABLE2[(40, 12, False)]


def test_densenet_bc_100_has_under_half_the_parameters_of_resnet_110() -> None:
    """Chapter 7 (seeds/001): DenseNet-BC (L=100, k=12) 0.8M vs ResNet-110 1.7M parameters on
    CIFAR, with a lower error in the DenseNet paper's table 2 (4.51% vs 6.41% on C10+)."""
    dense_bc = count_params(on_meta(densenet.densenet_bc_100_12))
    res = count_params(on_meta(resnet_cifar.resnet110))
    assert dense_bc == densenet_cifar_params(100, 12, bc=True)  # ResNet-110: test_models_classic
    assert (round(dense_bc / 1e6, 1), round(res / 1e6, 1)) == (0.8, 1.7)
    assert 2 * dense_bc < res


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

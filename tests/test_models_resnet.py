"""ResNet (He et al. 2015): `resnet` (ImageNet, v1 and v1.5, plain twins), `resnet_blocks` and
`resnet_cifar`, against the paper's tables and closed-form sums of `cnncourse.counting`; the
published torchvision figures and initialisation.

The registry-wide checks (torchvision state_dict and outputs, FlopCounterMode, a real training
step) are in ``test_models.py``; counts run on the meta device.
"""

from __future__ import annotations

import math

import pytest
import torch
import torchvision
from models_helpers import (
    flop_counter_macs,
    native_cpu_kernels,  # noqa: F401 (autouse: applies here too)
    on_meta,
    output_shapes,
)
from torch import nn
from torch.testing import assert_close
from torch.utils.flop_counter import FlopCounterMode

from cnncourse.counting import (
    batchnorm_params,
    conv_macs,
    conv_params,
    linear_params,
)
from cnncourse.models import (
    resnet,
    resnet_blocks,
    resnet_cifar,
)
from cnncourse.profile import count_macs, count_params

tvm = torchvision.models
IMAGENET = (3, 224, 224)
pytestmark = pytest.mark.usefixtures("one_thread")


# --- ResNet, He et al. 2015 ----------------------------------------------------------------------

# Table 1, last row: "FLOPs" (multiply-adds) at 224 x 224, of the paper's v1 networks.
RESNET_PAPER_GMACS = {18: 1.8, 34: 3.6, 50: 3.8, 101: 7.6, 152: 11.3}
# Erratum: 34 (3.664) and 50 (3.858) are printed truncated; the others are rounded.
RESNET_TRUNCATED = {34, 50}


@pytest.mark.parametrize("depth", sorted(RESNET_PAPER_GMACS))
def test_resnet_v1_macs_are_paper_table_1(depth: int) -> None:
    v1 = on_meta(resnet.MODELS[f"resnet{depth}"], version="v1")
    macs = count_macs(v1, IMAGENET)
    # Exact: PyTorch's counter on the same v1 network, and the figure in the module's table.
    assert macs == flop_counter_macs(v1, IMAGENET)
    assert f"{macs:,}" in resnet.__doc__.split("ours v1")[1]
    # Rounded: the paper's table 1.
    gmacs = macs / 1e9
    paper = RESNET_PAPER_GMACS[depth]
    assert abs(gmacs - paper) < 0.1
    if depth in RESNET_TRUNCATED:
        assert math.floor(gmacs * 10) / 10 == paper != round(gmacs, 1)
    else:
        assert round(gmacs, 1) == paper


@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
def test_resnet_v1_and_v15_differ_by_the_strided_1x1_convs(depth: int) -> None:
    build = resnet.MODELS[f"resnet{depth}"]
    v1, v15 = on_meta(build, version="v1"), on_meta(build)
    assert count_params(v1) == count_params(v15)
    extra = count_macs(v15, IMAGENET) - count_macs(v1, IMAGENET)
    if depth < 50:  # basic blocks have no 1x1 conv: the two versions are the same network
        assert extra == 0
        return
    # The first block of layer2..4: v1.5's 1x1 conv1 (C_in -> width) runs on the input grid H x H,
    # v1's (stride 2) on H/2 x H/2.
    expected = sum(
        conv_macs(cin, width, 1, h) - conv_macs(cin, width, 1, h // 2)
        for cin, width, h in [(256, 128, 56), (512, 256, 28), (1024, 512, 14)]
    )
    assert extra == expected == 231_211_008
    assert v1.layer2[0].conv1.stride == (2, 2) and v1.layer2[0].conv2.stride == (1, 1)
    assert v15.layer2[0].conv1.stride == (1, 1) and v15.layer2[0].conv2.stride == (2, 2)


@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
def test_resnet_layout_is_paper_table_1(depth: int) -> None:
    model = on_meta(resnet.MODELS[f"resnet{depth}"])
    names = ["conv1", "maxpool", "layer1", "layer2", "layer3", "layer4", "fc"]
    shapes = output_shapes(model, IMAGENET, names)
    e = 1 if depth < 50 else 4
    assert shapes == [
        (64, 112, 112),  # conv1: 7x7, 64, stride 2
        (64, 56, 56),
        (64 * e, 56, 56),  # conv2_x
        (128 * e, 28, 28),  # conv3_x
        (256 * e, 14, 14),  # conv4_x
        (512 * e, 7, 7),  # conv5_x
        (1000,),
    ]
    # "depth" counts weighted layers on the main path: convs (not the projections) and the fc.
    weighted = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    assert len([n for n in weighted if "downsample" not in n]) == depth


def test_plain_twins_have_no_shortcuts() -> None:
    res, plain = on_meta(resnet.resnet34), on_meta(resnet.plain34)
    projections = [m for n, m in res.named_modules() if n.endswith("downsample")]
    assert len(projections) == 3  # option B: one projection where each stage starts
    assert all(
        m.downsample is None and not m.residual for m in plain.modules() if hasattr(m, "residual")
    )
    # The projections are the only difference: 3 x (1x1 conv + BN).
    diff = sum(
        conv_params(c, 2 * c, 1, bias=False) + batchnorm_params(2 * c) for c in (64, 128, 256)
    )
    assert count_params(res) - count_params(plain) == diff


def test_cifar_stem_keeps_the_32x32_grid_for_layer1() -> None:
    names = ["conv1", "maxpool", "layer1", "layer2", "layer3", "layer4"]
    imagenet = output_shapes(on_meta(resnet.resnet18), (3, 32, 32), names)
    assert [s[1:] for s in imagenet] == [(16, 16), (8, 8), (8, 8), (4, 4), (2, 2), (1, 1)]
    cifar = on_meta(resnet.resnet18, stem="cifar")
    assert [s[1:] for s in output_shapes(cifar, (3, 32, 32), names)] == [
        (32, 32),
        (32, 32),
        (32, 32),
        (16, 16),
        (8, 8),
        (4, 4),
    ]
    assert cifar.conv1.kernel_size == (3, 3) and isinstance(cifar.maxpool, nn.Identity)
    with pytest.raises(ValueError, match="stem must be 'imagenet' or 'cifar', got 'tiny'"):
        resnet.resnet18(stem="tiny")


def test_zero_init_residual_makes_blocks_identities() -> None:
    torch.manual_seed(0)
    block = resnet_cifar.resnet20(zero_init_residual=True).eval().layer1[0]
    x = torch.rand(2, 16, 8, 8)  # non-negative: relu(0 + x) = x
    with torch.no_grad():
        assert_close(block(x), x)
        block.residual = False  # the plain block then outputs relu(0) = 0
        assert block(x).abs().max() == 0


def test_resnet18_cifar_is_resnet18_with_a_small_stem() -> None:
    ours = resnet_cifar.resnet18_cifar()
    reference = torchvision.models.resnet18(num_classes=10)
    stem_saving = (7 * 7 - 3 * 3) * 3 * 64  # a 3x3 instead of a 7x7 first conv, 64 filters
    assert count_params(ours) == count_params(reference) - stem_saving
    # No 4x downsampling in the stem: every later layer sees 16x more positions than at 32/4.
    with torch.device("meta"):
        flops = FlopCounterMode(display=False)
        with flops:
            ours.to("meta")(torch.empty(1, 3, 32, 32))
    assert count_macs(resnet_cifar.resnet18_cifar(), (3, 32, 32)) * 2 == flops.get_total_flops()
    out = resnet_cifar.resnet18_cifar()(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)


# --- CIFAR ResNets, He et al. 2015 sec. 4.2 ------------------------------------------------------

# Table 6, "# params", with option A shortcuts.
CIFAR_PAPER_PARAMS_M = {20: 0.27, 32: 0.46, 44: 0.66, 56: 0.85, 110: 1.7, 1202: 19.4}


def cifar_resnet_params(depth: int, num_classes: int = 10) -> int:
    """Sec. 4.2, summed from its text: a 3x3 conv (16 filters), then 3 stages of n = (depth-2)/6
    blocks of two 3x3 convs with 16, 32, 64 filters, BN after every conv, parameter-free option A
    shortcuts, global average pooling and a 10-way fc."""
    n = (depth - 2) // 6
    total = conv_params(3, 16, 3, bias=False) + batchnorm_params(16)
    c_in = 16
    for width in (16, 32, 64):
        for _ in range(n):
            total += conv_params(c_in, width, 3, bias=False) + batchnorm_params(width)
            total += conv_params(width, width, 3, bias=False) + batchnorm_params(width)
            c_in = width
    return total + linear_params(64, num_classes)


@pytest.mark.parametrize("depth", sorted(CIFAR_PAPER_PARAMS_M))
def test_cifar_resnet_params_are_paper_table_6(depth: int) -> None:
    paper = CIFAR_PAPER_PARAMS_M[depth]
    res = on_meta(resnet_cifar.MODELS[f"resnet{depth}"])
    exact = cifar_resnet_params(depth)  # ResNet-110: 1,727,962
    assert count_params(res) == exact
    assert f"{exact:,}" in resnet_cifar.__doc__  # the module's table is the exact count
    assert round(exact / 1e6, 2 if paper < 1 else 1) == paper
    # sec. 4.2: 6n + 2 weighted layers; option A adds no parameter over the plain net.
    weighted = [m for m in res.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    assert len(weighted) == depth
    assert count_params(on_meta(resnet_cifar.resnet_cifar, depth=depth, residual=False)) == (
        count_params(res)
    )
    # Option B: two projections (16 -> 32 and 32 -> 64, 1x1 conv + BN).
    option_b = count_params(on_meta(resnet_cifar.resnet_cifar, depth=depth, shortcut="B"))
    extra = sum(conv_params(c, 2 * c, 1, bias=False) + batchnorm_params(2 * c) for c in (16, 32))
    assert option_b - count_params(res) == extra


def test_cifar_resnet_maps_are_32_16_8() -> None:
    names = ["conv1", "layer1", "layer2", "layer3", "fc"]
    shapes = output_shapes(on_meta(resnet_cifar.resnet56), (3, 32, 32), names)
    assert shapes == [(16, 32, 32), (16, 32, 32), (32, 16, 16), (64, 8, 8), (10,)]


def test_option_a_shortcut_subsamples_and_pads_with_zeros() -> None:
    x = torch.randn(2, 16, 7, 7)
    y = resnet_blocks.ZeroPadShortcut(16, 32, stride=2)(x)
    conv = nn.Conv2d(16, 32, 3, stride=2, padding=1)  # the residual branch it is added to
    assert y.shape == conv(x).shape == (2, 32, 4, 4)
    assert torch.equal(y[:, :16], x[:, :, ::2, ::2]) and not y[:, 16:].any()
    assert sum(p.numel() for p in resnet_blocks.ZeroPadShortcut(16, 32, 2).parameters()) == 0
    assert resnet.ZeroPadShortcut is resnet_blocks.ZeroPadShortcut  # re-exported where it was


@pytest.mark.parametrize("bad", [19, 21, 2, 1201])
def test_cifar_depth_must_be_6n_plus_2(bad: int) -> None:
    with pytest.raises(ValueError, match="6n"):
        resnet_cifar.resnet_cifar(bad)

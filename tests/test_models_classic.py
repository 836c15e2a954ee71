"""LeNet-5, AlexNet, VGG and ResNet against independent references.

- torchvision: our models load its randomly initialised ``state_dict`` with ``strict=True`` and
  give the same outputs; parameter counts and MACs equal the figures torchvision publishes in its
  weights' metadata (``num_params``, ``_ops`` in GMACs).
- the papers: each figure below is quoted with the table or section it comes from, and compared
  with our exact count. Where a paper's figure is not the exact count rounded, the test says so
  and pins both (the book's errata).
- PyTorch's `FlopCounterMode` (2 FLOPs per MAC) agrees with `count_macs` on every model, and
  closed-form sums of `cnncourse.counting` formulas, written here from the papers' definitions,
  give the exact parameter counts that the papers print rounded.
- every model runs forward and backward, gives the documented output shape, and every parameter
  receives a gradient; `summarize` works on each.

Counts run on the meta device (no memory, no time); forwards use tiny inputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.testing import assert_close
from torch.utils.flop_counter import FlopCounterMode

from cnncourse.counting import (
    batchnorm_params,
    conv_macs,
    conv_params,
    linear_macs,
    linear_params,
)
from cnncourse.models import alexnet, lenet, resnet, resnet_blocks, resnet_cifar, vgg
from cnncourse.profile import count_macs, count_params, summarize

FAMILIES = [lenet.MODELS, alexnet.MODELS, vgg.MODELS, resnet.MODELS, resnet_cifar.MODELS]
ALL: dict[str, Callable[..., nn.Module]] = {k: v for f in FAMILIES for k, v in f.items()}
TORCHVISION = ["alexnet", *(f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn"))]
TORCHVISION += [f"resnet{d}" for d in (18, 34, 50, 101, 152)]
IMAGENET = (3, 224, 224)
# Tiny inputs gain nothing from intra-op threads (conftest.one_thread says why).
pytestmark = pytest.mark.usefixtures("one_thread")


def on_meta(build: Callable[..., nn.Module], **kwargs) -> nn.Module:
    """The model with shape-only parameters: counting needs no memory and no initialisation."""
    with torch.device("meta"):
        return build(**kwargs)


def output_shapes(model: nn.Module, input_size: tuple[int, ...], names: list[str]) -> list:
    """Output shapes (no batch dim) of the named submodules, from one forward on meta."""
    shapes: dict[str, tuple[int, ...]] = {}
    modules = dict(model.named_modules())
    hooks = [
        modules[n].register_forward_hook(lambda m, i, o, n=n: shapes.__setitem__(n, o.shape[1:]))
        for n in names
    ]
    with torch.no_grad():
        model.eval()(torch.empty(1, *input_size, device="meta"))
    for h in hooks:
        h.remove()
    return [tuple(shapes[n]) for n in names]


def test_registries_are_disjoint() -> None:
    assert len(ALL) == sum(len(f) for f in FAMILIES)  # the lead merges them into one MODELS


def native_input(name: str) -> tuple[int, int, int]:
    """The input size a model was designed for (documented in its module)."""
    if name.startswith("lenet"):
        return (1, 32, 32)
    if name == "alexnet_paper":
        return (3, 227, 227)
    if name in resnet_cifar.MODELS or name.endswith("_cifar"):
        return (3, 32, 32)
    return IMAGENET


def small_batch(name: str) -> tuple[int, int, int, int]:
    """A cheap input batch that leaves every layer at least one position (and BN 2+ values)."""
    if name.startswith("vgg"):
        return (1, 3, 32, 32)  # 5 pools take 32 to 1; the last BN sees a 2 x 2 map
    if name == "resnet1202":
        return (2, 3, 8, 8)  # 1202 layers: keep it short
    if name in resnet_cifar.MODELS:
        return (2, 3, 16, 16)
    if name == "alexnet_paper":
        return (2, 3, 67, 67)  # the smallest its unpadded 11x11/4 conv and 3 pools allow
    if name == "alexnet":
        return (2, 3, 64, 64)  # torchvision's min_size is 63
    return (2, *native_input(name)[:1], 32, 32)  # LeNet; ImageNet ResNets end at 1 x 1


def flop_counter_macs(model: nn.Module, input_size: tuple[int, int, int]) -> int:
    """MACs by PyTorch's own counter (every conv and matmul dispatched, bias excluded), on meta."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()(torch.empty(1, *input_size, device="meta"))
    flops = counter.get_total_flops()
    assert flops % 2 == 0  # FLOPs = 2 x MACs
    return flops // 2


def check_trains(model: nn.Module, x: torch.Tensor, num_classes: int) -> None:
    """Train-mode forward and backward: (N, num_classes) logits, a gradient for every parameter."""
    model.train()
    y = model(x)
    assert y.shape == (x.shape[0], num_classes)
    y.square().mean().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname


# --- torchvision: same state_dict, same outputs, same published counts ---------------------------


def randomise_batchnorm(model: nn.Module) -> None:
    """Non-trivial BN statistics, so that a misplaced BN layer changes eval-mode outputs."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 2.0)
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.normal_(m.bias, 0, 0.1)


@pytest.mark.parametrize("name", TORCHVISION)
def test_loads_torchvision_state_dict_gives_its_outputs_and_trains(name: str) -> None:
    torch.manual_seed(0)
    reference = torchvision.models.get_model(name, weights=None).eval()
    with torch.no_grad():
        randomise_batchnorm(reference)
    ours = on_meta(ALL[name]).to_empty(device="cpu").eval()  # no init: every value is loaded
    ours.load_state_dict(reference.state_dict(), strict=True)
    # x10: the nets without BN (AlexNet, VGG) start with small logits (their fc weights are
    # ~0.01); the guard below wants outputs well clear of assert_close's atol (1e-5)
    x = 10 * torch.randn(*small_batch(name))
    with torch.no_grad():
        expected = reference(x)
        assert torch.isfinite(expected).all() and expected.std() > 0.01  # a meaningful comparison
        assert_close(ours(x), expected)
    check_trains(ours, x, 1000)  # one model build serves both checks (VGG's are 0.5 GB)


@pytest.mark.parametrize("name", TORCHVISION)
def test_params_and_macs_are_torchvision_published_figures(name: str) -> None:
    meta = torchvision.models.get_model_weights(name).IMAGENET1K_V1.meta
    model = on_meta(ALL[name])
    assert count_params(model) == meta["num_params"]
    assert round(count_macs(model, IMAGENET) / 1e9, 3) == meta["_ops"]  # GMACs, 3 decimals


@pytest.mark.parametrize("name", ["vgg11_bn", "resnet18", "resnet50"])
def test_init_draws_what_torchvision_draws(name: str) -> None:
    # `init_conv_bn` visits the layers in torchvision's order with torchvision's distributions
    # (VGG: with N(0, 0.01) linear layers; ResNet: fc left at PyTorch's default): same seed,
    # same numbers.
    torch.manual_seed(0)
    reference = torchvision.models.get_model(name, weights=None).state_dict()
    torch.manual_seed(0)
    ours = ALL[name]().state_dict()
    assert ours.keys() == reference.keys()
    for key, value in ours.items():
        assert torch.equal(value, reference[key]), key


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


# --- VGG, Simonyan and Zisserman 2014 ------------------------------------------------------------

# Table 2: "Number of parameters (in millions)" for configurations A, B, D, E.
VGG_PAPER_PARAMS_M = {11: 133, 13: 133, 16: 138, 19: 144}


@pytest.mark.parametrize("depth", sorted(VGG_PAPER_PARAMS_M))
def test_vgg_params_are_paper_table_2(depth: int) -> None:
    model = on_meta(vgg.MODELS[f"vgg{depth}"])
    assert round(count_params(model) / 1e6) == VGG_PAPER_PARAMS_M[depth]
    weighted = [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    assert len(weighted) == depth  # VGG-16 has 16 weight layers


def split_macs(model: nn.Module) -> tuple[int, int]:
    """(conv MACs, fc MACs) at 224 x 224."""
    rows = summarize(model, IMAGENET).rows
    return (
        sum(r.macs for r in rows if r.type == "Conv2d"),
        sum(r.macs for r in rows if r.type == "Linear"),
    )


def test_vgg_macs_and_the_resnet_papers_15_3_and_19_6() -> None:
    # He et al. 2015, sec. 4.1: "VGG-16/19 nets (15.3/19.6 billion FLOPs)" (multiply-adds).
    conv16, fc16 = split_macs(on_meta(vgg.vgg16))
    conv19, fc19 = split_macs(on_meta(vgg.vgg19))
    fc = linear_macs(512 * 7 * 7, 4096) + linear_macs(4096, 4096) + linear_macs(4096, 1000)
    assert fc16 == fc19 == fc  # 123.6M: three fc layers, one position each
    assert round(conv16 / 1e9, 1) == 15.3  # VGG-16's figure counts only the convs ...
    assert round((conv16 + fc16) / 1e9, 1) == 15.5  # (the total usually quoted: 15.47 G)
    assert round((conv19 + fc19) / 1e9, 1) == 19.6  # ... VGG-19's counts every layer.
    assert round(conv19 / 1e9, 1) == 19.5  # Erratum: the consistent pairs are 15.3/19.5, 15.5/19.6.
    # Two stacked 3x3 convs see 5x5 with 18 weights per channel pair, not 25 (slides, ch. 4).
    assert 2 * conv_params(1, 1, 3, bias=False) == 18 < conv_params(1, 1, 5, bias=False) == 25


def test_vgg_cifar_maps_end_at_1x1_and_keep_the_convs() -> None:
    for depth in (11, 13, 16, 19):
        small, big = on_meta(vgg.MODELS[f"vgg{depth}_cifar"]), on_meta(vgg.MODELS[f"vgg{depth}_bn"])
        shapes = output_shapes(small, (3, 32, 32), ["features", "classifier"])
        assert shapes == [(512, 1, 1), (10,)]
        conv_and_bn = [nn.Conv2d, nn.BatchNorm2d]
        assert [type(m) for m in small.features if type(m) in conv_and_bn] == [
            type(m) for m in big.features if type(m) in conv_and_bn
        ]
        assert small.features.state_dict().keys() == big.features.state_dict().keys()


# --- AlexNet, Krizhevsky et al. 2012 -------------------------------------------------------------


def alexnet_paper_params(groups: int) -> int:
    """Sec. 3.5 of the paper, read off its text: kernel sizes and depths per GPU (groups=2)."""
    g = groups
    return (
        conv_params(3, 96, 11)  # "96 kernels of size 11x11x3"
        + conv_params(96, 256, 5, groups=g)  # "256 kernels of size 5x5x48"
        + conv_params(256, 384, 3)  # "384 kernels of size 3x3x256"
        + conv_params(384, 384, 3, groups=g)  # "384 kernels of size 3x3x192"
        + conv_params(384, 256, 3, groups=g)  # "256 kernels of size 3x3x192"
        + linear_params(256 * 6 * 6, 4096)  # "The fully-connected layers have 4096 neurons each"
        + linear_params(4096, 4096)
        + linear_params(4096, 1000)
    )


def test_alexnet_paper_has_60_million_parameters() -> None:
    two_gpus = count_params(on_meta(alexnet.alexnet_paper))
    assert two_gpus == alexnet_paper_params(groups=2)
    assert 60e6 <= two_gpus < 61e6  # sec. 4: "60 million parameters" (60,965,224)
    assert count_params(on_meta(alexnet.alexnet_paper, groups=1)) == alexnet_paper_params(1)
    # torchvision's single tower (64-192-384-256-256) has 61.1M: its model card's figure.
    assert round(count_params(on_meta(alexnet.alexnet)) / 1e6, 1) == 61.1


def test_alexnet_paper_neurons_per_layer() -> None:
    # Sec. 3.5: "253,440-186,624-64,896-64,896-43,264-4096-4096-1000" (for a 227 x 227 input).
    model = on_meta(alexnet.alexnet_paper)
    convs_and_fcs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    sizes = [math.prod(s) for s in output_shapes(model, (3, 227, 227), convs_and_fcs)]
    assert sizes[1:] == [186_624, 64_896, 64_896, 43_264, 4096, 4096, 1000]
    assert sizes[0] == 55 * 55 * 96 == 290_400 != 253_440  # erratum in the paper's first figure


def test_alexnet_lrn_is_the_papers_formula() -> None:
    # Sec. 3.3: b_i = a_i / (k + alpha * sum of a_j^2 over the n maps around i)^beta,
    # k = 2, n = 5, alpha = 1e-4, beta = 0.75 (the sum is clipped at the first and last maps).
    torch.manual_seed(0)
    a = torch.randn(2, 96, 5, 5) * 30
    sq = F.pad(a.square(), (0, 0, 0, 0, 2, 2))  # zero maps beyond both ends
    window = sum(sq[:, j : j + 96] for j in range(5))
    expected = a / (2 + 1e-4 * window) ** 0.75
    lrn = next(m for m in alexnet.alexnet_paper().features if isinstance(m, nn.LocalResponseNorm))
    assert_close(lrn(a), expected)


# --- LeNet-5, LeCun et al. 1998 ------------------------------------------------------------------

# Table I, as printed: row i = S2 map i, column j = C3 map j, "X" where they are connected.
PAPER_TABLE_1 = """
X   XXX  XXXX XX
XX   XXX  XXXX X
XXX   XXX  X XXX
 XXX  XXXX  X XX
  XXX  XXXX XX X
   XXX  XXXX XXX
"""


def test_c3_connections_are_paper_table_1() -> None:
    rows = PAPER_TABLE_1.strip("\n").split("\n")
    printed = [tuple(i for i in range(6) if rows[i][j] == "X") for j in range(16)]
    assert list(lenet.C3_TABLE) == printed


def test_partial_conv_uses_only_the_connected_maps() -> None:
    torch.manual_seed(0)
    c3 = lenet.PartialConv(lenet.C3_TABLE)
    x = torch.randn(1, 6, 14, 14, requires_grad=True)
    y = c3(x)
    assert y.shape == (1, 16, 10, 10)
    for j, maps in enumerate(lenet.C3_TABLE):
        (grad,) = torch.autograd.grad(y[:, j].sum(), x, retain_graph=True)
        seen = tuple(i for i in range(6) if grad[:, i].abs().sum() > 0)
        assert seen == maps


def test_lenet5_paper_parameters_and_connections() -> None:
    # Sec. II.B: trainable parameters and connections of each layer; "60,000 trainable parameters".
    paper = {  # layer: (parameters, connections)
        "c1": (156, 122_304),
        "s2": (12, 5_880),
        "c3": (1_516, 151_600),
        "s4": (32, 2_000),
        "c5": (48_120, 48_120),
        "f6": (10_164, 10_164),
    }
    model = lenet.lenet5_paper()
    assert count_params(model) == sum(p for p, _ in paper.values()) == 60_000
    rows = summarize(model, (1, 32, 32)).rows
    for layer, (params, connections) in paper.items():
        mine = [r for r in rows if r.name.split(".")[1] == layer and r.type != "AvgPool2d"]
        assert sum(r.params for r in mine) == params, layer
        outputs = sum(math.prod(r.output_shape) for r in mine)  # C3: 16 convs of 1 map each
        # a connection is a multiply (MACs), or the bias; an S unit has 4 inputs and a bias
        macs = sum(r.macs for r in mine)
        assert (macs + outputs if macs else 5 * outputs) == connections, layer


def test_lenet5_modern_is_the_61706_parameter_net() -> None:
    expected = (
        conv_params(1, 6, 5)
        + conv_params(6, 16, 5)  # full connectivity in C3
        + conv_params(16, 120, 5)
        + linear_params(120, 84)
        + linear_params(84, 10)  # an fc output instead of the fixed RBF units
    )
    assert count_params(lenet.lenet5()) == expected == 61_706


def test_rbf_output_picks_the_nearest_code() -> None:
    rbf = lenet.RBFOutput(84, 10)
    assert set(rbf.codes.unique().tolist()) == {-1.0, 1.0} and not list(rbf.parameters())
    y = rbf(rbf.codes)  # each code is at distance 0 from itself
    assert torch.equal(y.argmax(1), torch.arange(10)) and torch.equal(y.diagonal(), torch.zeros(10))


# --- every model: forward, backward, shapes, summarize ------------------------------------------


@pytest.mark.parametrize("name", sorted(set(ALL) - set(TORCHVISION)))
def test_forward_backward_and_every_parameter_learns(name: str) -> None:
    torch.manual_seed(0)
    check_trains(ALL[name](num_classes=7), torch.randn(*small_batch(name)), 7)


@pytest.mark.parametrize("name", sorted(ALL))
def test_summarize_runs_on_every_model(name: str) -> None:
    model = on_meta(ALL[name], num_classes=7)
    summary = summarize(model, native_input(name))
    assert summary.total_params == count_params(model) == sum(r.params for r in summary.rows)
    assert summary.total_macs > 0 and "Total MACs" in str(summary)
    assert summary.rows[-1].output_shape == (7,)  # (num_classes,)


@pytest.mark.parametrize("name", sorted(set(ALL) - {"resnet1202"}))
def test_macs_agree_with_flop_counter_mode(name: str) -> None:
    # PyTorch's own counter (2 FLOPs per MAC, every conv and matmul it dispatches, bias
    # excluded) is the independent reference: exact for every model, where torchvision's
    # published `_ops` (above) only has 3 decimals of GMACs.
    model = on_meta(ALL[name])
    assert count_macs(model, native_input(name)) == flop_counter_macs(model, native_input(name))

"""Chapter 7 (DenseNet): the values the page glued, against independent references.

The page's numbers come from the book build (``book.glued``); each test recomputes them another
way: closed-form sums over the paper's architecture description (section 3 and table 1 of Huang
et al. 2017; section 4.2 of He et al. 2016 for the CIFAR ResNets, their "Identity mappings" paper
for ResNet-1001), real ``nn.Conv2d`` modules, ``torch.utils.flop_counter.FlopCounterMode`` on the
meta device (it counts 2 FLOPs per MAC), torchvision's published weights metadata, and the
figures the slides print, where the page quotes them.
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from book_build import BookBuild
from cnncourse.models import get_model
from conftest import ROOT

PAGE = "book/07_densenet"
K = 12  # DenseNet-BC (L=100, k=12)
SLIDE = {"r110": 1.7, "r1001": 10.2, "bc100": 0.8, "bc250": 15.3}  # seeds/001, millions


@pytest.fixture(scope="module")
def g(book: BookBuild) -> dict[str, object]:
    return book.glued(PAGE)


def flop_macs(model: nn.Module, size: tuple[int, ...]) -> int:
    """MACs of one forward pass, by PyTorch's own FLOP counter, on the meta device."""
    x = torch.empty(1, *size, device="meta")
    with FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() // 2


def on_meta(name: str, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return get_model(name, **kwargs).eval()


def bn(c: int) -> int:
    return 2 * c  # a batch norm's scale and shift


def dense_cifar(depth: int, k: int, bottleneck: bool, theta: float) -> dict[str, int]:
    """DenseNet for CIFAR from the paper's section 3, summed here: the stem conv (2k maps with
    a bottleneck, else 16), three blocks on 32, 16, 8 pixels, transitions keeping
    floor(theta * m) maps, final BN and a 10-class classifier. Convs without bias."""
    n = (depth - 4) // (6 if bottleneck else 3)
    c = 2 * k if bottleneck else 16
    params = weights = 9 * 3 * c
    macs = 9 * 3 * c * 32 * 32
    concat = distinct = 0
    layer_params = []
    for block, side in enumerate((32, 16, 8)):
        hw = side * side
        for _ in range(n):
            concat += c * hw  # the concatenated input of this layer
            if bottleneck:
                w = c * 4 * k + 9 * 4 * k * k
                p = w + bn(c) + bn(4 * k)
                macs += w * hw
            else:
                w = 9 * c * k
                p = w + bn(c)
                macs += w * hw
            weights += w
            params += p
            layer_params.append(p)
            c += k
        distinct += c * hw  # the block's output: every distinct map once
        if block < 2:
            out = int(theta * c)
            weights += c * out
            params += bn(c) + c * out
            macs += c * out * hw
            c = out
    params += bn(c) + c * 10 + 10
    weights += c * 10 + 10
    macs += c * 10
    return dict(
        params=params,
        weights=weights,
        macs=macs,
        concat=concat,
        distinct=distinct,
        final=c,
        layer_min=min(layer_params),
        layer_max=max(layer_params),
    )


def resnet_cifar_counts(depth: int) -> dict[str, int]:
    """ResNet-6n+2 for CIFAR (option A shortcuts: no parameters), summed here."""
    n = (depth - 2) // 6
    params, macs, c_in = 9 * 3 * 16 + bn(16), 9 * 3 * 16 * 32 * 32, 16
    for c, side in ((16, 32), (32, 16), (64, 8)):
        for _ in range(n):
            params += 9 * c_in * c + 9 * c * c + bn(c) + bn(c)
            macs += (9 * c_in * c + 9 * c * c) * side * side
            c_in = c
    return dict(params=params + 64 * 10 + 10, macs=macs + 64 * 10)


def resnet1001_counts() -> dict[str, int]:
    """Pre-activation ResNet-1001 (He et al., Identity mappings, CIFAR): n = 111 bottleneck
    units per stage, widths 16/32/64 (outputs 64/128/256), a 1x1 projection where the shape
    changes; BN before each of a unit's convs and once after the last unit."""
    weights, bns, post_bns, c_in = 9 * 3 * 16, 0, bn(16), 16
    for w in (16, 32, 64):
        for i in range(111):
            weights += c_in * w + 9 * w * w + w * 4 * w
            bns += bn(c_in) + bn(w) + bn(w)
            post_bns += bn(w) + bn(w) + bn(4 * w)
            if i == 0:  # the projection shortcut
                weights += c_in * 4 * w
                post_bns += bn(4 * w)
            c_in = 4 * w
    bns += bn(c_in)
    weights += c_in * 10 + 10
    return dict(weights=weights, bn=bns, params=weights + bns, postact=weights + post_bns)


# ---------------------------------------------------------------------------------------------
# Dense connectivity


def test_channel_growth(g) -> None:
    n = (100 - 4) // 6
    assert g["k"] == K and g["bc100_n"] == n == 16
    assert g["bc100_k0"] == 2 * K
    assert g["bc100_last_in"] == 2 * K + (n - 1) * K
    assert g["bc100_block1_out"] == 2 * K + n * K == 216
    assert g["bc100_trans1_out"] == (2 * K + n * K) // 2
    assert g["bc100_final_channels"] == dense_cifar(100, K, True, 0.5)["final"] == 342
    assert g["bc100_layers"] == 3 * n
    assert g["bc100_depth"] == 1 + 3 * n * 2 + 2 + 1 == 100


@pytest.mark.parametrize("m", [24, 48, 96, 192, 384])
def test_bottleneck_table(g, m: int) -> None:
    plain = nn.Conv2d(m, K, 3, padding=1, bias=False)
    reduce, conv = nn.Conv2d(m, 4 * K, 1, bias=False), nn.Conv2d(4 * K, K, 3, bias=False)
    assert g[f"plain_w_{m}"] == plain.weight.numel() == 9 * m * K
    assert g[f"bottle_w_{m}"] == reduce.weight.numel() + conv.weight.numel()


def test_bottleneck_crossover_and_width(g) -> None:
    # 9mk > 4km + 36k^2  <=>  m > 36k/5 = 86.4 for k = 12
    assert g["crossover"] == 36 * K // 5 + 1 == 87
    assert 9 * 87 * K > 87 * 4 * K + 36 * K * K and not 9 * 86 * K > 86 * 4 * K + 36 * K * K
    assert g["bn_width"] == 4 * K
    assert g["bottleneck_3x3"] == 9 * 4 * K * K
    # The page: below the crossover the bottleneck costs more (24 channels), above it less.
    assert g["bottle_w_24"] > g["plain_w_24"] and g["bottle_w_384"] < g["plain_w_384"]


@pytest.mark.parametrize(
    ("key", "bottleneck", "theta"), [("plain", False, 1.0), ("b", True, 1.0), ("bc", True, 0.5)]
)
def test_the_three_variants(g, key: str, bottleneck: bool, theta: float) -> None:
    ref = dense_cifar(100, K, bottleneck, theta)
    assert g[f"v_{key}_depth"] == 100
    assert g[f"v_{key}_params"] == ref["params"]
    assert g[f"v_{key}_macs"] == ref["macs"]


def test_variants_against_the_paper_and_flop_counter(g) -> None:
    assert round(g["v_plain_params"] / 1e6, 1) == 7.0  # table 2: DenseNet (L=100, k=12)
    assert round(g["v_bc_params"] / 1e6, 1) == 0.8  # table 2: DenseNet-BC (L=100, k=12)
    assert g["v_bc_macs"] == flop_macs(on_meta("densenet_bc_100_12"), (3, 32, 32))
    assert g["v_plain_over_bc"] == pytest.approx(g["v_plain_params"] / g["v_bc_params"])
    assert g["v_b_over_bc"] == pytest.approx(g["v_b_params"] / g["v_bc_params"])
    assert g["v_plain_params"] > g["v_b_params"] > g["v_bc_params"]


def test_hand_built_block_equals_the_package(g) -> None:
    assert g["hand_diff"] == 0.0
    assert g["hand_out_channels"] == 24 + 6 * K
    per_layer = [
        bn(24 + i * K) + (24 + i * K) * 4 * K + bn(4 * K) + 9 * 4 * K * K for i in range(6)
    ]
    assert g["hand_params"] == sum(per_layer)


# ---------------------------------------------------------------------------------------------
# O(l k k) against O(C C)


def test_weights_per_layer(g) -> None:
    assert g["dense_step"] == 4 * K * K  # k more inputs to the 1x1 conv's 4k filters
    assert g["dense_w_first"] == 2 * K * 4 * K + 9 * 4 * K * K
    last_in = dense_cifar(100, K, True, 0.5)["final"] - K  # the last layer of block 3
    assert g["dense_w_max"] == last_in * 4 * K + 9 * 4 * K * K
    assert (g["res_w_c_first"], g["res_w_c"]) == (16, 64)
    assert g["res_w_first"] == 2 * 9 * 16 * 16 and g["res_w_last"] == 2 * 9 * 64 * 64
    assert g["res_w_last"] == 16 * g["res_w_first"]  # two doublings of C, each 4x
    assert g["res_blocks"] == 3 * (110 - 2) // 6
    ref = dense_cifar(100, K, True, 0.5)
    transitions = 216 * 108 + 300 * 150
    assert g["dense_total_w"] == ref["weights"] - 9 * 3 * 24 - transitions - (342 * 10 + 10)
    res = 18 * (2 * 9 * 16 * 16) + (9 * 16 * 32 + 9 * 32 * 32) + 17 * (2 * 9 * 32 * 32)
    res += (9 * 32 * 64 + 9 * 64 * 64) + 17 * (2 * 9 * 64 * 64)
    assert g["res_total_w"] == res


def test_growth_figure_alt_text(g) -> None:
    """The alt text: ResNet-110's three levels, each four times the one before."""
    text = (ROOT / f"{PAGE}.ipynb").read_text()
    assert "three flat levels, each four times the one before" in text
    model = on_meta("resnet110")
    levels = []
    for stage in (model.layer1, model.layer2, model.layer3):
        per_block = {sum(p.numel() for p in blk.parameters() if p.dim() == 4) for blk in stage[1:]}
        assert len(per_block) == 1  # flat within a stage
        levels.append(per_block.pop())
    assert levels[1] == 4 * levels[0] and levels[2] == 4 * levels[1]
    assert (levels[0], levels[2]) == (g["res_w_first"], g["res_w_last"])


# ---------------------------------------------------------------------------------------------
# The CIFAR comparison


def test_cifar_counts(g) -> None:
    r110 = resnet_cifar_counts(110)
    assert g["c_r110_params"] == r110["params"] == 1_727_962
    assert g["c_r110_macs"] == r110["macs"] == flop_macs(on_meta("resnet110"), (3, 32, 32))
    bc100, bc250 = dense_cifar(100, K, True, 0.5), dense_cifar(250, 24, True, 0.5)
    assert g["c_bc100_params"] == bc100["params"] and g["c_bc100_macs"] == bc100["macs"]
    assert g["c_bc250_params"] == bc250["params"]
    assert g["c_bc250_weights"] == bc250["weights"]
    assert g["c_bc250_macs"] == flop_macs(on_meta("densenet_bc_250_24"), (3, 32, 32))
    r1001 = resnet1001_counts()
    assert g["c_r1001_params"] == r1001["params"]
    assert g["c_r1001_weights"] == r1001["weights"]
    assert g["r1001_bn"] == r1001["bn"]
    assert g["r1001_postact_params"] == r1001["postact"]
    depths = {"r110": 110, "r1001": 1001, "bc100": 100, "bc250": 250}
    for key, layers in depths.items():
        assert g[f"c_{key}_depth"] == layers
        assert g[f"c_{key}_params_m"] == pytest.approx(g[f"c_{key}_params"] / 1e6)
        assert g[f"c_{key}_weights_m"] == pytest.approx(g[f"c_{key}_weights"] / 1e6)


def test_the_slide_figures_and_the_errata(g) -> None:
    # Three of the slide's four figures are the exact counts rounded; ResNet-1001's is not.
    for key in ("r110", "bc100", "bc250"):
        assert round(g[f"c_{key}_params"] / 1e6, 1) == SLIDE[key]
    assert round(g["c_r1001_params"] / 1e6, 1) == 10.3 != SLIDE["r1001"]
    assert round(g["r1001_postact_params"] / 1e6, 1) == 10.3
    # ...which is the convolutions' and classifier's weights alone, without BN.
    assert round(g["c_r1001_weights"] / 1e6, 1) == SLIDE["r1001"]
    assert round(g["c_bc250_weights"] / 1e6, 1) != SLIDE["bc250"]  # DenseNet counts BN
    assert round(g["c_r110_weights"] / 1e6, 1) == round(g["c_r110_params"] / 1e6, 1) == 1.7
    # The slide's 100-layer "DenseNet" is DenseNet-BC: the plain one has 7.0M.
    assert round(g["v_plain_params"] / 1e6, 1) != SLIDE["bc100"]
    assert g["c_bc100_params"] == g["v_bc_params"]


def test_densenet_bc_against_resnet_110(g) -> None:
    ratio = g["c_bc100_params"] / g["c_r110_params"]
    assert g["bc_over_res_params"] == pytest.approx(ratio) and ratio < 0.5
    macs = g["c_bc100_macs"] / g["c_r110_macs"]
    assert g["bc_over_res_macs"] == pytest.approx(macs) and macs > 1
    # Where the MACs go: DenseNet's first block (32 x 32 maps), ResNet's three stages.
    block1 = sum(((2 * K + i * K) * 4 * K + 9 * 4 * K * K) * 32 * 32 for i in range(16))
    assert g["bc_block1_share"] == pytest.approx(block1 / g["c_bc100_macs"])
    stages = [18 * 2 * 9 * 16 * 16 * 32 * 32]
    stages.append((9 * 16 * 32 + 9 * 32 * 32 + 17 * 2 * 9 * 32 * 32) * 16 * 16)
    stages.append((9 * 32 * 64 + 9 * 64 * 64 + 17 * 2 * 9 * 64 * 64) * 8 * 8)
    shares = [s / g["c_r110_macs"] for s in stages]
    assert g["res_stage_share_min"] == pytest.approx(min(shares))
    assert g["res_stage_share_max"] == pytest.approx(max(shares))
    # The page: "evenly" (each stage within a point of a third), DenseNet's first block most.
    assert max(shares) - min(shares) < 0.01 and g["bc_block1_share"] > 0.5


# ---------------------------------------------------------------------------------------------
# Memory of the concatenations


def test_concatenation_memory(g) -> None:
    ref = dense_cifar(100, K, True, 0.5)
    params = ref["params"]
    assert g["mem_concat"] == ref["concat"]
    assert g["mem_distinct"] == ref["distinct"]
    assert g["mem_first_layer"] == 2 * K * 32 * 32
    assert g["mem_last_in_block1"] == (2 * K + 15 * K) * 32 * 32
    assert g["mem_concat_over_params"] == pytest.approx(ref["concat"] / params)
    assert g["mem_concat_over_distinct"] == pytest.approx(ref["concat"] / ref["distinct"])
    assert (g["mem_layer_params_min"], g["mem_layer_params_max"]) == (
        ref["layer_min"],
        ref["layer_max"],
    )
    b = g["mem_batch"]
    assert g["mem_concat_mib"] == pytest.approx(ref["concat"] * b * 4 / 2**20)
    assert g["mem_params_mib"] == pytest.approx(params * 4 / 2**20)
    # The figure and its alt text: naive concatenations above the parameters at a batch of
    # one; the distinct maps below at one image and above from a few (3).
    assert ref["concat"] > params and ref["distinct"] < params < 3 * ref["distinct"]
    # Block 1's inputs are far above each layer's parameters, block 3's of the same order.
    block3_inputs = [(150 + i * K) * 64 for i in range(16)]
    assert min(block3_inputs) > ref["layer_min"] / 2 and max(block3_inputs) < 2 * ref["layer_max"]
    assert 3 * ref["layer_min"] < 2 * K * 32 * 32


def test_concatenations_measured_on_a_real_forward(g) -> None:
    """The meta measurement against a real CPU forward of the package's model, one image."""
    model = get_model("densenet_bc_100_12").eval()
    sizes: list[int] = []
    handles = [
        m.register_forward_pre_hook(lambda _m, a: sizes.append(a[0][0].numel()))
        for m in model.modules()
        if type(m).__name__ == "DenseLayer"
    ]
    with torch.no_grad():
        model(torch.randn(1, 3, 32, 32))
    for h in handles:
        h.remove()
    assert g["mem_concat"] == sum(sizes)


# ---------------------------------------------------------------------------------------------
# ImageNet


@pytest.mark.parametrize("name", ["densenet121", "densenet169", "densenet201", "densenet161"])
def test_imagenet_models_against_torchvision_metadata(g, name: str) -> None:
    meta = torchvision.models.get_model_weights(name).IMAGENET1K_V1.meta
    assert g[f"in_{name}_params"] == meta["num_params"]
    assert round(g[f"in_{name}_gmacs"], 3) == meta["_ops"]


def test_the_slide_imagenet_errors_are_none_of_torchvisions(g) -> None:
    names = ["densenet121", "densenet169", "densenet201", "densenet161"]
    metrics = [
        torchvision.models.get_model_weights(n).IMAGENET1K_V1.meta["_metrics"]["ImageNet-1K"]
        for n in names
    ]
    assert g["in_best_top1_err"] == pytest.approx(100 - max(m["acc@1"] for m in metrics))
    top1 = {round(100 - m["acc@1"], 2) for m in metrics}
    top5 = {round(100 - m["acc@5"], 2) for m in metrics}
    assert 20.27 not in top1 and 5.17 not in top5 and min(top1) > 20.27  # the slide's


# ---------------------------------------------------------------------------------------------
# Questions


def test_question_values(g) -> None:
    assert (g["q_in"], g["q_k"]) == (64, 32)
    assert g["q_last_in"] == 64 + 5 * 32
    assert g["q_out"] == 64 + 6 * 32 == 256
    assert g["q_trans"] == 128
    tv = torchvision.models.densenet121()
    assert g["q_trans"] == tv.features.transition1.conv.out_channels
    assert g["q_out"] == tv.features.transition1.conv.in_channels
    assert g["q_res_conv"] == 9 * 64 * 64
    assert g["q_dense_conv"] == 9 * 4 * K * K

"""Chapter 4 (AlexNet and VGG): the values the page glued, against independent references.

The page's numbers come from the book build (``book.glued``); each test recomputes them another
way: networks written out here layer by layer in plain ``torch.nn``, torchvision's models and its
weights' published metadata (``num_params``, ``_ops``), FlopCounterMode on the meta device (it
counts 2 FLOPs per MAC), closed-form sums written in the test, and the figures the papers and the
slides print, where the page says it reproduces them.
"""

from __future__ import annotations

import ast
import re

import pytest
import torch
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from book_build import BookBuild
from conftest import ROOT

PAGE = "book/04_alexnet_vgg"
VGG16_WIDTHS = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M"]
VGG16_WIDTHS += [512, 512, 512, "M"]
VGG19_WIDTHS = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M"]
VGG19_WIDTHS += [512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]
DENSE_MACS = 25088 * 4096 + 4096 * 4096 + 4096 * 1000  # VGG's three dense layers


@pytest.fixture(scope="module")
def g(book: BookBuild) -> dict[str, object]:
    return book.glued(PAGE)


def params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def flop_macs(model: nn.Module, size: tuple[int, ...]) -> int:
    """MACs of one forward pass, by PyTorch's own FLOP counter, on the meta device."""
    x = torch.empty(1, *size, device="meta")
    with FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() // 2


def alexnet_2012(groups: int) -> nn.Sequential:
    """The paper's AlexNet written out (no LRN or dropout: they have no weights and no MACs)."""
    with torch.device("meta"):
        return nn.Sequential(
            nn.Conv2d(3, 96, 11, stride=4),
            nn.ReLU(),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(96, 256, 5, padding=2, groups=groups),
            nn.ReLU(),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(256, 384, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(384, 384, 3, padding=1, groups=groups),
            nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1, groups=groups),
            nn.ReLU(),
            nn.MaxPool2d(3, 2),
            nn.Flatten(),
            nn.Linear(9216, 4096),
            nn.ReLU(),
            nn.Linear(4096, 4096),
            nn.ReLU(),
            nn.Linear(4096, 1000),
        )


def tv(name: str) -> nn.Module:
    with torch.device("meta"):
        return getattr(torchvision.models, name)()


def conv_macs_closed_form(widths: list) -> int:
    """VGG's conv MACs: 9 * c_in * c_out per output pixel, the side halving at each "M"."""
    total, c_in, side = 0, 3, 224
    for w in widths:
        if w == "M":
            side //= 2
            continue
        total += 9 * c_in * w * side * side
        c_in = w
    return total


# ---------------------------------------------------------------------------------------------
# AlexNet


@pytest.mark.parametrize(("groups", "key"), [(2, "paper"), (1, "paper_g1")])
def test_alexnet_paper_layouts(g, groups: int, key: str) -> None:
    ref = alexnet_2012(groups)
    assert g[f"alex_{key}_params"] == params(ref)
    assert g[f"alex_{key}_macs"] == flop_macs(ref, (3, 227, 227))
    convs = [m for m in ref if isinstance(m, nn.Conv2d)]
    assert g[f"alex_{key}_conv_params"] == sum(params(c) for c in convs)
    assert g[f"alex_{key}_conv1"] == 96


def test_alexnet_paper_closed_form(g) -> None:
    conv = (11 * 11 * 3 * 96 + 96) + (5 * 5 * 48 * 256 + 256) + (3 * 3 * 256 * 384 + 384)
    conv += (3 * 3 * 192 * 384 + 384) + (3 * 3 * 192 * 256 + 256)
    dense = (9216 * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * 1000 + 1000)
    assert g["alex_paper_params"] == conv + dense
    # The paper: "60 million parameters"; the slides: "60 million trainable parameters".
    assert round(g["alex_paper_params"] / 1e6) == 61 and g["alex_paper_params"] // 10**6 == 60
    # Grouping halves the depth of convs 2, 4, 5: the saving is half their weights.
    half = (5 * 5 * 96 * 256 + 3 * 3 * 384 * 384 + 3 * 3 * 384 * 256) // 2
    assert g["alex_groups_saving"] == half


def test_alexnet_torchvision_against_published_metadata(g) -> None:
    meta = torchvision.models.AlexNet_Weights.IMAGENET1K_V1.meta
    assert g["alex_torchvision_params"] == meta["num_params"]
    assert round(g["alex_torchvision_macs"] / 1e9, 3) == meta["_ops"]
    model = tv("alexnet")
    assert g["alex_torchvision_macs"] == flop_macs(model, (3, 224, 224))
    assert g["alex_torchvision_conv1"] == model.features[0].out_channels == 64
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert g["alex_torchvision_conv_params"] == sum(params(c) for c in convs)
    assert g["alex_tv_params_m"] == pytest.approx(meta["num_params"] / 1e6)
    assert round(g["alex_tv_params_m"], 1) == 61.1


def test_alexnet_sizes_and_depths_read_against_the_paper(g) -> None:
    assert g["alex_conv1_side"] == (227 - 11) // 4 + 1 == 55  # the paper's 55 x 55
    assert g["alex_conv1_side_224"] == (224 - 11) // 4 + 1 != 55
    assert g["alex_conv1_neurons"] == 55 * 55 * 96 != 253_440  # the paper's slip
    assert (g["alex_conv2_depth"], g["alex_conv4_depth"]) == (48, 192)  # the paper's figure 2
    assert (g["alex_conv2_full_depth"], g["alex_conv4_full_depth"]) == (96, 384)  # the slides'
    # The paper's later neuron counts match the output sizes of the written-out network.
    ref, x = alexnet_2012(2), torch.empty(1, 3, 227, 227, device="meta")
    counts = []
    for layer in ref:
        x = layer(x)
        if isinstance(layer, nn.Conv2d):
            counts.append(x[0].numel())
    assert counts[1:] == [186_624, 64_896, 64_896, 43_264]


# ---------------------------------------------------------------------------------------------
# VGG


@pytest.mark.parametrize(
    ("name", "widths", "weights", "paper_millions"),
    [
        ("vgg16", VGG16_WIDTHS, torchvision.models.VGG16_Weights, 138),
        ("vgg19", VGG19_WIDTHS, torchvision.models.VGG19_Weights, 144),
    ],
)
def test_vgg_totals(g, name: str, widths: list, weights, paper_millions: int) -> None:
    meta = weights.IMAGENET1K_V1.meta
    assert g[f"{name}_params"] == meta["num_params"] == params(tv(name))
    assert round(g[f"{name}_params_m"]) == paper_millions  # the paper's table 2
    assert g[f"{name}_macs"] == flop_macs(tv(name), (3, 224, 224))
    assert g[f"{name}_macs"] / 1e9 == pytest.approx(meta["_ops"], abs=5e-4)
    assert g[f"{name}_conv_macs"] == conv_macs_closed_form(widths)
    assert g[f"{name}_macs"] == conv_macs_closed_form(widths) + DENSE_MACS
    assert g[f"{name}_fc_macs"] == DENSE_MACS
    assert g[f"{name}_gmacs"] == pytest.approx(g[f"{name}_macs"] / 1e9)
    assert g[f"{name}_conv_gmacs"] == pytest.approx(g[f"{name}_conv_macs"] / 1e9)


def test_the_erratum_on_15_3_and_19_6(g) -> None:
    # He et al.'s VGG-16 figure is the convolutions only, VGG-19's every layer.
    assert round(g["vgg16_conv_gmacs"], 1) == 15.3 != round(g["vgg16_gmacs"], 1)
    assert round(g["vgg19_gmacs"], 1) == 19.6 != round(g["vgg19_conv_gmacs"], 1)
    assert (round(g["vgg16_gmacs"], 1), round(g["vgg19_conv_gmacs"], 1)) == (15.5, 19.5)


def test_the_slides_vgg_list_is_vgg19(g) -> None:
    def n_convs(name: str) -> int:
        return sum(isinstance(m, nn.Conv2d) for m in tv(name).modules())

    assert g["slide_vgg_convs"] == 2 + 2 + 4 + 4 + 4 == n_convs("vgg19")
    assert g["vgg16_convs"] == n_convs("vgg16") == 13 and g["vgg19_convs"] == 16


def test_where_parameters_and_macs_live(g) -> None:
    for key, name in [("alex", "alexnet"), ("vgg16", "vgg16")]:
        model = tv(name)
        total_p, total_m = params(model), flop_macs(model, (3, 224, 224))
        dense = [m for m in model.modules() if isinstance(m, nn.Linear)]
        convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
        assert g[f"{key}_fc_param_share"] == pytest.approx(sum(map(params, dense)) / total_p)
        assert g[f"{key}_fc1_param_share"] == pytest.approx(params(dense[0]) / total_p)
        dense_macs = sum(m.in_features * m.out_features for m in dense)
        assert g[f"{key}_conv_mac_share"] == pytest.approx(1 - dense_macs / total_m)
        assert g[f"{key}_fc_param_share"] > 0.85 and g[f"{key}_conv_mac_share"] > 0.85
        assert len(convs) in (5, 13)
    # The page compares the two: VGG-16's dense share of parameters is smaller, its convs'
    # share of the MACs larger.
    assert g["vgg16_fc_param_share"] < g["alex_fc_param_share"]
    assert g["vgg16_conv_mac_share"] > g["alex_conv_mac_share"]
    first_blocks = conv_macs_closed_form(VGG16_WIDTHS[:6])  # 2 + 2 convs, 224 and 112 maps
    total = conv_macs_closed_form(VGG16_WIDTHS) + DENSE_MACS
    assert g["vgg16_first_blocks_mac_share"] == pytest.approx(first_blocks / total)
    block_params = (27 * 64 + 64) + (576 * 64 + 64) + (576 * 128 + 128) + (1152 * 128 + 128)
    share = block_params / params(tv("vgg16"))
    assert g["vgg16_first_blocks_param_share"] == pytest.approx(share)


# ---------------------------------------------------------------------------------------------
# Stacks of 3x3 convolutions


@pytest.mark.parametrize("n", range(1, 6))
def test_stack_weights_and_field(g, n: int) -> None:
    assert g[f"field_{n}"] == 2 * n + 1
    assert g[f"stack_weights_{n}"] == 9 * n
    assert g[f"single_weights_{n}"] == (2 * n + 1) ** 2
    stack = nn.Sequential(*[nn.Conv2d(1, 1, 3, bias=False) for _ in range(n)])
    assert g[f"stack_weights_{n}"] == params(stack)
    assert g[f"single_weights_{n}"] == params(nn.Conv2d(1, 1, 2 * n + 1, bias=False))


def test_the_slides_weight_counts(g) -> None:
    # Slides: "5x5 kernel: 25", "3x3 + 3x3: 18", "11x11: 121", "five 3x3: 45".
    assert (g["stack_weights_2"], g["single_weights_2"]) == (18, 25)
    assert (g["stack_weights_5"], g["single_weights_5"], g["field_5"]) == (45, 121, 11)


def test_gradient_field_of_the_stack(g) -> None:
    assert g["grad_field_side"] == g["single_field_side"] == 5
    assert g["stack_module_params"] == 2 * 9 and g["single_module_params"] == 25


def test_stack_figure_alt_text_states_the_glued_counts(g) -> None:
    text = (ROOT / f"{PAGE}.ipynb").read_text()
    alt = re.search(r":alt: Grouped bars[^\"]*", text).group(0)
    grow = re.findall(r"grow as ([\d, ]+)", alt)
    stack, single = ([int(v) for v in x.split(",") if v.strip()] for x in grow)
    assert stack == [g[f"stack_weights_{n}"] for n in range(1, 6)]
    assert single == [g[f"single_weights_{n}"] for n in range(1, 6)]


def test_tiny_networks(g) -> None:
    # One 5x5 per stage: 3 -> 16 -> 32, then a 32 -> 10 dense layer (biases included).
    five = (25 * 3 * 16 + 16) + (25 * 16 * 32 + 32) + (32 * 10 + 10)
    # Two 3x3 per stage, the first keeping the width: 3 -> 3 -> 16 -> 16 -> 32.
    three = (9 * 3 * 3 + 3) + (9 * 3 * 16 + 16) + (9 * 16 * 16 + 16) + (9 * 16 * 32 + 32)
    three += 32 * 10 + 10
    assert (g["tiny_5_params"], g["tiny_3_params"]) == (five, three)
    assert g["tiny_param_ratio"] == pytest.approx(three / five)
    # Both see 16 x 16: 5, 6 (pool), 6 + 4 * 2, 16 (pool); 3, 5, 6, 6 + 2 * 2 * 2, 16.
    assert g["tiny_field"] == 16
    spread = 0.0
    for key in ("3", "5"):
        accs = ast.literal_eval(g[f"tiny_{key}_accs"])
        assert len(accs) == g["tiny_seeds"]
        assert g[f"tiny_{key}_acc"] == pytest.approx(sum(accs) / len(accs), abs=1e-3)
        assert g[f"tiny_{key}_acc_min"] == pytest.approx(min(accs), abs=1e-4)
        assert g[f"tiny_{key}_acc_max"] == pytest.approx(max(accs), abs=1e-4)
        assert min(accs) > 0.2  # well above the 10% of chance: both learned
        spread = max(spread, max(accs) - min(accs))
    # The page: the runs of one design differ by more than the two means, and the stacks lose
    # no more accuracy than the spread between seeds.
    assert abs(g["tiny_3_acc"] - g["tiny_5_acc"]) < spread
    assert g["tiny_5_acc"] - g["tiny_3_acc"] < spread


def test_question_values(g) -> None:
    assert g["q_c"] == 256
    assert g["q_stack"] == 2 * 9 * 256 * 256
    assert g["q_single"] == 25 * 256 * 256
    assert g["q_fc6"] == 7 * 7 * 512 * 4096 + 4096 == params(tv("vgg16").classifier[0])
    assert g["q_side"] == 7
    assert g["q_field_3"] == 7


def test_vgg16_layer_costs_repeat_until_the_last_block(book: BookBuild) -> None:
    # The page: the MAC column repeats one figure in the first four blocks (except each block's
    # first conv, which doubles the channels), and the fifth block's convs cost a quarter of it.
    full = 9 * 64 * 64 * 224 * 224
    assert full == 9 * 128 * 128 * 112 * 112 == 9 * 256 * 256 * 56 * 56 == 9 * 512 * 512 * 28**2
    assert full == 9 * 512 * 512 * 14 * 14 * 4
    text = "".join(
        o.get("text", "")
        for c in book.notebook(PAGE).cells
        if c.cell_type == "code" and "layer_table(vgg16" in c.source
        for o in c.outputs
    )
    assert text.count(f"{full:,}") == 6 and text.count(f"{full // 4:,}") == 3

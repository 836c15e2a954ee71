"""Chapter 5 (Inception and GoogLeNet): the values the page glued, against independent references.

The page's numbers come from the book build (``book.glued``); each test recomputes them another
way: closed-form sums written here from the filter columns of the paper's table 1 (Szegedy et al.
2015) and from the slides' own products, modules written out in plain ``torch.nn``, PyTorch's
FlopCounterMode on the meta device (2 FLOPs per MAC), and torchvision's models and published
metadata. The slides' and the paper's printed figures are pinned where the page quotes them.
"""

from __future__ import annotations

import re

import pytest
import torch
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from book_build import BookBuild
from conftest import ROOT

PAGE = "book/05_inception"

# Table 1 of the paper: (input channels, #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj,
# output side), and its printed params (K) and ops (M), as the paper prints them.
TABLE1 = {
    "3a": (192, 64, 96, 128, 16, 32, 32, 28),
    "3b": (256, 128, 128, 192, 32, 96, 64, 28),
    "4a": (480, 192, 96, 208, 16, 48, 64, 14),
    "4b": (512, 160, 112, 224, 24, 64, 64, 14),
    "4c": (512, 128, 128, 256, 24, 64, 64, 14),
    "4d": (512, 112, 144, 288, 32, 64, 64, 14),
    "4e": (528, 256, 160, 320, 32, 128, 128, 14),
    "5a": (832, 256, 160, 320, 32, 128, 128, 7),
    "5b": (832, 384, 192, 384, 48, 128, 128, 7),
}
PRINTED = {
    "conv1": (2.7, 34),
    "conv2": (112, 360),
    "3a": (159, 128),
    "3b": (380, 304),
    "4a": (364, 73),
    "4b": (437, 88),
    "4c": (463, 100),
    "4d": (580, 119),
    "4e": (840, 170),
    "5a": (1072, 54),
    "5b": (1388, 71),
    "linear": (1000, 1),
}


@pytest.fixture(scope="module")
def g(book: BookBuild) -> dict[str, object]:
    return book.glued(PAGE)


def params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def flop_macs(model: nn.Module, size: tuple[int, ...]) -> int:
    """MACs of one forward pass, by PyTorch's own FLOP counter, on the meta device."""
    model = model.to("meta")
    with FlopCounterMode(display=False) as counter:
        model(torch.empty(1, *size, device="meta"))
    return counter.get_total_flops() // 2


def module_weights(c_in, n1, r3, n3, r5, n5, pp, k5: int = 5) -> int:
    """Weights (no biases) of an inception module with reductions, from its columns."""
    return c_in * (n1 + r3 + r5 + pp) + 9 * r3 * n3 + k5 * k5 * r5 * n5


def row_exact() -> dict[str, tuple[int, int, int]]:
    """(weights, biases, MACs) of each row of table 1, by closed forms."""
    rows = {"conv1": (7 * 7 * 3 * 64, 64, 7 * 7 * 3 * 64 * 112 * 112)}
    conv2 = 64 * 64 + 9 * 64 * 192
    rows["conv2"] = (conv2, 64 + 192, conv2 * 56 * 56)
    for name, (c_in, n1, r3, n3, r5, n5, pp, side) in TABLE1.items():
        w = module_weights(c_in, n1, r3, n3, r5, n5, pp)
        rows[name] = (w, n1 + r3 + n3 + r5 + n5 + pp, w * side * side)
    rows["linear"] = (1024 * 1000, 1000, 1024 * 1000)
    return rows


class PlainConv(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, k: int) -> None:
        super().__init__(nn.Conv2d(c_in, c_out, k, padding=k // 2), nn.ReLU())


class PlainInception(nn.Module):
    """The paper's figure 2b in plain torch.nn, independent of the page and the package."""

    def __init__(self, c_in, n1, r3, n3, r5, n5, pp) -> None:
        super().__init__()
        self.paths = nn.ModuleList(
            [
                PlainConv(c_in, n1, 1),
                nn.Sequential(PlainConv(c_in, r3, 1), PlainConv(r3, n3, 3)),
                nn.Sequential(PlainConv(c_in, r5, 1), PlainConv(r5, n5, 5)),
                nn.Sequential(nn.MaxPool2d(3, 1, 1), PlainConv(c_in, pp, 1)),
            ]
        )

    def forward(self, x):
        return torch.cat([p(x) for p in self.paths], 1)


# ---------------------------------------------------------------------------------------------
# The naive module and the bottlenecks (the slides' examples)


def test_naive_module_terms(g) -> None:
    terms = [28 * 28 * 128 * 1 * 1 * 256, 28 * 28 * 192 * 3 * 3 * 256, 28 * 28 * 96 * 5 * 5 * 256]
    assert [g["naive_1x1_macs"], g["naive_3x3_macs"], g["naive_5x5_macs"]] == terms
    assert g["naive_macs"] == sum(terms)
    convs = [
        nn.Conv2d(256, d, k, padding=k // 2, bias=False) for d, k in [(128, 1), (192, 3), (96, 5)]
    ]
    assert g["naive_macs"] == sum(flop_macs(c, (256, 28, 28)) for c in convs)
    assert g["naive_weights"] == 256 * (128 + 9 * 192 + 25 * 96)
    assert round(g["naive_macs"] / 1e6) == 854  # the slide's "854M"
    assert g["naive_macs_m"] == pytest.approx(g["naive_macs"] / 1e6)
    assert g["naive_5x5_share"] == pytest.approx(terms[2] / sum(terms))


def test_naive_depth_and_the_slides_sum(g) -> None:
    x = torch.zeros(1, 256, 28, 28)
    out = torch.cat(
        [nn.Conv2d(256, d, k, padding=k // 2)(x) for d, k in [(128, 1), (192, 3), (96, 5)]]
        + [nn.MaxPool2d(3, 1, 1)(x)],
        1,
    )
    assert g["naive_depth"] == out.shape[1] == 672  # the slide's total
    assert g["naive_side"] == out.shape[2] == 28
    assert g["slide_depth_as_written"] == 28 + 192 + 96 + 256 != 672  # the slide's first term
    assert g["naive_depth_terms"] == "128 + 192 + 96 + 256"


@pytest.mark.parametrize(
    ("key", "side", "c_in", "mid", "out", "slide"),
    [
        ("a", 28, 192, 16, 32, (120, 2.4, 10, 12.4)),
        ("b", 14, 480, 16, 48, (112.9, 1.5, 3.8, 5.3)),
    ],
)
def test_bottleneck_examples(g, key, side, c_in, mid, out, slide) -> None:
    direct = side * side * out * 5 * 5 * c_in
    reduce = side * side * mid * 1 * 1 * c_in
    conv = side * side * out * 5 * 5 * mid
    assert g[f"ex_{key}_direct_macs"] == direct
    assert g[f"ex_{key}_reduce_macs"] == reduce
    assert g[f"ex_{key}_conv_macs"] == conv
    assert g[f"ex_{key}_reduced_macs"] == reduce + conv
    seq = nn.Sequential(nn.Conv2d(c_in, mid, 1), nn.ReLU(), nn.Conv2d(mid, out, 5, padding=2))
    assert g[f"ex_{key}_reduced_macs"] == flop_macs(seq, (c_in, side, side))
    assert g[f"ex_{key}_mac_ratio"] == pytest.approx(direct / (reduce + conv))
    # The slide's four figures, each right once rounded as the slide rounds it.
    digits = [1 if isinstance(v, float) else 0 for v in slide]
    exact = [direct, reduce, conv, reduce + conv]
    assert [round(v / 1e6, d) for v, d in zip(exact, digits, strict=True)] == list(slide)
    # Parameters fall by the same factor as the MACs: both layers run on one grid.
    assert g[f"ex_{key}_direct_weights"] == 25 * c_in * out
    assert g[f"ex_{key}_reduced_weights"] == c_in * mid + 25 * mid * out
    assert g[f"ex_{key}_weight_ratio"] == pytest.approx(g[f"ex_{key}_mac_ratio"])
    assert g[f"ex_{key}_reduced_weights"] < g[f"ex_{key}_direct_weights"]  # the erratum


def test_bottleneck_module_and_the_358m_erratum(g) -> None:
    px = 28 * 28
    terms = {
        "b1": px * 128 * 256,
        "b3_reduce": px * 64 * 256,
        "b3": px * 192 * 9 * 64,
        "b5_reduce": px * 64 * 256,
        "b5": px * 96 * 25 * 64,
        "pool_proj": px * 64 * 256,
    }
    for name, v in terms.items():
        assert g[f"bn_{name}_macs"] == v
    total = sum(terms.values())
    assert g["bn_macs"] == total
    assert g["bn_macs"] == flop_macs(PlainInception(256, 128, 64, 192, 64, 96, 64), (256, 28, 28))
    assert round(total / 1e6) == 271 != 358
    # The slide's 358M: its 3x3 term on 128 input channels.
    on_128 = px * 192 * 9 * 128
    assert g["slide_b3_on_128"] == on_128
    assert g["slide_bn_sum"] == total - terms["b3"] + on_128
    assert round(g["slide_bn_sum"] / 1e6) == 358
    assert g["bn_depth"] == 128 + 192 + 96 + 64
    assert g["naive_bn_ratio"] == pytest.approx(g["naive_macs"] / total)
    # The figure's caption: the naive 5x5 branch alone costs more than the bottleneck module.
    assert g["naive_5x5_macs"] > total


def test_hand_built_module_equals_the_package(g) -> None:
    assert g["hand_diff"] == 0.0
    c_in, n1, r3, n3, r5, n5, pp, _ = TABLE1["3a"]
    w = module_weights(c_in, n1, r3, n3, r5, n5, pp)
    assert g["hand_params"] == w + (n1 + r3 + n3 + r5 + n5 + pp)
    assert g["hand_params"] == params(PlainInception(c_in, n1, r3, n3, r5, n5, pp))
    assert g["hand_depth"] == n1 + n3 + n5 + pp == 256


# ---------------------------------------------------------------------------------------------
# GoogLeNet's table 1


@pytest.mark.parametrize("row", list(PRINTED))
def test_table_rows(g, row: str) -> None:
    weights, _, macs = row_exact()[row]
    assert g[f"t_{row}_weights"] == weights
    assert g[f"t_{row}_macs"] == macs
    assert g[f"t_{row}_weights_k"] == pytest.approx(weights / 1024)
    assert g[f"t_{row}_macs_m"] == pytest.approx(macs / 1e6)
    assert (g[f"t_{row}_printed_k"], g[f"t_{row}_printed_m"]) == PRINTED[row]


def test_table_verdicts(g) -> None:
    exact = row_exact()
    differs = []
    for row, (pk, pm) in PRINTED.items():
        k, m = exact[row][0] / 1024, exact[row][2] / 1e6
        within = abs(k - pk) <= 0.02 * pk and (abs(m - pm) <= 0.02 * pm or round(m) == pm)
        if not within:
            differs.append(row)
    assert differs == ["conv1", "4c", "5a"]
    assert g["t_differs"] == "conv1, 4c, 5a"
    # Self-consistency of the printed rows: ops = weights x H x W.
    assert g["t_4c_implied_m"] == pytest.approx(463 * 1024 * 14 * 14 / 1e6)
    assert round(g["t_4c_implied_m"]) != 100 and round(g["t_4c_macs_m"]) == 100
    assert round(g["t_5a_implied_m"]) == 54 and round(g["t_5a_macs_m"]) != 54
    assert abs(g["t_conv1_implied_m"] - 34) < 1  # 2.7K is rounded: roughly consistent
    assert g["t_conv1_implied"] == pytest.approx(2.7 * 1024)
    assert g["conv1_shape"] == "7x7x3x64"


def test_table_units_depth_and_totals(g) -> None:
    exact = row_exact()
    assert g["t_conv2_weights"] == 112 * 1024  # the printed "112K", in units of 1024
    assert round(g["t_conv2_macs"] / 1e6) == 360  # ops are multiply-adds...
    assert g["conv2_flops_m"] == pytest.approx(2 * exact["conv2"][2] / 1e6)  # ...not FLOPs
    assert g["t_depth"] == 1 + 2 + 2 * len(TABLE1) + 1 == 22
    assert g["printed_ops_total"] == sum(m for _, m in PRINTED.values()) == 1502
    total = sum(m for _, _, m in exact.values())
    assert g["exact_macs_total"] == total
    model = torchvision.models.googlenet(aux_logits=False, init_weights=False)
    # torchvision's network differs only by its 3x3 "5x5" kernels (and BN: no MACs).
    tv_total = total - sum(
        16 * r5 * n5 * side * side for _, _, _, _, r5, n5, _, side in TABLE1.values()
    )
    assert g["tv_macs"] == tv_total == flop_macs(model, (3, 224, 224))
    meta = torchvision.models.GoogLeNet_Weights.IMAGENET1K_V1.meta
    assert g["tv_params"] == meta["num_params"] == params(model)
    assert round(g["tv_macs"] / 1e9, 3) == meta["_ops"] == round(g["tv_gmacs"], 3)
    assert g["conv1_undercount_m"] == pytest.approx(exact["conv1"][2] / 1e6 - 34)
    assert g["tv_saving_m"] == pytest.approx((total - tv_total) / 1e6)
    assert round(g["conv1_undercount_m"]) == pytest.approx(round(g["tv_saving_m"]), abs=2)
    # The erratum: the gap between the exact total and the printed column is mostly conv1.
    gap = total / 1e6 - g["printed_ops_total"]
    assert 0.5 * gap < g["conv1_undercount_m"] < 1.5 * gap


# ---------------------------------------------------------------------------------------------
# Global average pooling, the totals the slides quote, auxiliary classifiers


def alexnet_2012_params_and_macs() -> tuple[int, int]:
    layers = [  # (k, c_in per group, c_out, output side)
        (11, 3, 96, 55),
        (5, 48, 256, 27),
        (3, 256, 384, 13),
        (3, 192, 384, 13),
        (3, 192, 256, 13),
    ]
    p = sum(k * k * c * d + d for k, c, d, _ in layers)
    m = sum(k * k * c * d * s * s for k, c, d, s in layers)
    dense = [(9216, 4096), (4096, 4096), (4096, 1000)]
    return p + sum(i * o + o for i, o in dense), m + sum(i * o for i, o in dense)


def test_heads_and_totals(g) -> None:
    assert g["head_gap"] == 1024 * 1000 + 1000
    assert g["head_flat_inputs"] == 7 * 7 * 1024
    assert g["head_flat"] == 7 * 7 * 1024 * 1000 + 1000
    vgg_head = (50176 * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * 1000 + 1000)
    assert g["head_vgg"] == vgg_head
    assert g["head_ratio"] == pytest.approx(g["head_flat"] / g["head_gap"])
    g_params = sum(w + b for w, b, _ in row_exact().values())
    assert g["g_params"] == g_params
    assert g["head_vgg_ratio"] == pytest.approx(vgg_head / g_params)
    assert g["g_params_no_fc"] == g_params - g["head_gap"]
    assert g["fc_share"] == pytest.approx(g["head_gap"] / g_params)
    alex_p, alex_m = alexnet_2012_params_and_macs()
    assert (g["alex_params"], g["alex_macs"]) == (alex_p, alex_m)
    assert g["alex_ratio"] == pytest.approx(alex_p / g_params)
    assert g["alex_ratio_no_fc"] == pytest.approx(alex_p / (g_params - g["head_gap"]))
    # The slides: "~5M" params, "12x fewer" than AlexNet; no reading of the table gives them.
    assert round(g["g_params"] / 1e6) != 5 and round(g["g_params_no_fc"] / 1e6) != 5
    assert round(g["alex_ratio"]) != 12 and round(g["alex_ratio_no_fc"]) != 12
    # "2x more computation" than AlexNet holds.
    assert g["mac_ratio"] == pytest.approx(g["exact_macs_total"] / alex_m)
    assert round(g["mac_ratio"]) == 2


def test_auxiliary_classifiers(g) -> None:
    def aux(c_in: int) -> int:  # 1x1 conv 128, FC 2048 -> 1024, FC 1024 -> 1000
        return (c_in * 128 + 128) + (128 * 16 * 1024 + 1024) + (1024 * 1000 + 1000)

    assert g["aux1_params"] == aux(512) and g["aux2_params"] == aux(528)
    assert g["with_aux_params"] == g["g_params"] + aux(512) + aux(528)
    assert g["with_aux_ratio"] == pytest.approx(g["with_aux_params"] / g["g_params"])
    stem = 3  # conv1, the 1x1 and the 3x3 of row conv2
    assert (g["path_aux1"], g["path_aux2"], g["path_main"]) == (
        stem + 2 * 3 + 3,
        stem + 2 * 6 + 3,
        stem + 2 * 9 + 1,
    )
    assert g["path_main"] == g["t_depth"]


# ---------------------------------------------------------------------------------------------
# Factorisation (Inception v2/v3)


@pytest.mark.parametrize("n", [3, 5, 7])
def test_factorisation_per_pair(g, n: int) -> None:
    assert g[f"fact_{n}_full"] == params(nn.Conv2d(1, 1, n, bias=False)) == n * n
    split = nn.Sequential(nn.Conv2d(1, 1, (1, n), bias=False), nn.Conv2d(1, 1, (n, 1), bias=False))
    assert g[f"fact_{n}_split"] == params(split) == 2 * n
    assert g[f"fact_{n}_saving"] == pytest.approx(1 - 2 / n)


def test_factorisation_slides_and_fields(g) -> None:
    assert (g["fact_7_full"], g["fact_7_split"]) == (49, 14)  # the slide's "7x7=49, 7+7=14"
    assert (g["fact_33_weights"], g["fact_55_weights"]) == (18, 25)
    assert g["fact_33_saving"] == pytest.approx(7 / 25)
    assert g["fact_field"] == "7 x 7" and g["fact_field_pixels"] == 49


def test_factorisation_in_modules(g) -> None:
    assert g["v3_7x7_weights"] == 49 * 128 * 192
    assert g["v3_split_weights"] == 7 * 128 * 128 + 7 * 128 * 192
    assert g["v3_7x7_saving"] == pytest.approx(
        1 - (7 * 128 * 128 + 7 * 128 * 192) / (49 * 128 * 192)
    )
    assert g["v3_7x7_saving"] > g["fact_7_saving"]  # the page: larger than the per-pair figure
    c_in, n1, r3, n3, r5, n5, pp, _ = TABLE1["3a"]
    v1 = module_weights(c_in, n1, r3, n3, r5, n5, pp)
    fig5 = v1 - 25 * r5 * n5 + 9 * r5 * n5 + 9 * n5 * n5
    assert (g["v1_3a_weights"], g["fig5_3a_weights"]) == (v1, fig5)
    assert g["fig5_3a_weights"] > g["v1_3a_weights"]  # the page: not cheaper with 3a's columns
    assert (g["v1_3a_5x5_red"], g["v1_3a_5x5"]) == (r5, n5)


def test_inception_v3_against_torchvision(g) -> None:
    meta = torchvision.models.Inception_V3_Weights.IMAGENET1K_V1.meta
    model = torchvision.models.inception_v3(aux_logits=False, init_weights=False)
    assert g["v3_params"] == params(model) == meta["num_params"] - params_of_aux()
    assert g["v3_macs"] == flop_macs(model, (3, 299, 299))
    assert round(g["v3_gmacs"], 3) == meta["_ops"]
    assert g["v3_vs_googlenet"] == pytest.approx(g["v3_macs"] / g["tv_macs"])


def params_of_aux() -> int:
    model = torchvision.models.inception_v3(aux_logits=True, init_weights=False)
    return params(model.AuxLogits)


# ---------------------------------------------------------------------------------------------
# Questions, and the figure's alt text


def test_question_values(g) -> None:
    direct = 28 * 28 * 128 * 9 * 192
    reduced = 28 * 28 * 96 * 192 + 28 * 28 * 128 * 9 * 96
    assert (g["q_direct"], g["q_reduced"]) == (direct, reduced)
    assert g["q_saving"] == pytest.approx(1 - reduced / direct) and g["q_saving"] < 0.5
    assert g["q_naive_3a_depth"] == 64 + 128 + 32 + 192
    assert g["q_3a_depth"] == 256
    assert g["q_gap_out"] == 1


def test_table_figure_alt_text_matches_the_counts(g) -> None:
    text = (ROOT / f"{PAGE}.ipynb").read_text()
    alt = re.search(r":alt: Two bar charts[^\"]*", text).group(0)
    assert "over three times" in alt
    assert 3 < g["t_conv1_macs_m"] / 34 < 4 and 3 < g["t_conv1_weights_k"] / 2.7 < 4

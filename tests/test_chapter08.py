"""Chapter 8 (depthwise-separable convolutions): the values the page glued, against independent
references.

The page's numbers come from the book build (``book.glued``); each test recomputes them another
way: real ``torch.nn`` layers and PyTorch's own FLOP counter (2 FLOPs per MAC) on the meta
device, closed-form sums written out here from the papers' layer tables (Xception's figure 5,
MobileNet's table 1), the figures the slides and papers print (as givens, where the page says it
reproduces or corrects them), and the relations between measured times that the page states.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from book_build import BookBuild

PAGE = "book/08_separable"

# The slides' example, as printed: (weights, multiplications) of each step.
SLIDE = {
    "standard": (1638, 16_380_000),
    "depthwise": (9, 90_000),
    "pointwise": (384, 3_840_000),
    "separable": (9 + 384, 3_930_000),
}
# MobileNet v1, tables 6 and 7: (alpha, input side) -> (top-1 %, M mult-adds, M params).
MOBILENET_PAPER = {
    (1.0, 224): (70.6, 569, 4.2),
    (0.75, 224): (68.4, 325, 2.6),
    (0.5, 224): (63.7, 149, 1.3),
    (0.25, 224): (50.6, 41, 0.5),
    (1.0, 192): (69.1, 418, 4.2),
    (1.0, 160): (67.2, 290, 4.2),
    (1.0, 128): (64.4, 186, 4.2),
}
# MobileNet v1, table 2 as printed: (% mult-adds, % parameters).
TABLE2 = [(94.86, 74.59), (3.06, 1.06), (1.19, 0.02), (0.18, 24.33)]
# MobileNet v1, table 1 (stride 1 in the second-to-last depthwise layer): (out, stride).
V1_LAYERS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)]
V1_LAYERS += [(512, 1)] * 5 + [(1024, 2), (1024, 1)]


@pytest.fixture(scope="module")
def g(book: BookBuild) -> dict[str, object]:
    return book.glued(PAGE)


def flop_macs(model: nn.Module, size: tuple[int, ...]) -> int:
    """MACs of one forward pass by PyTorch's FLOP counter, on the meta device."""
    model = model.to("meta").eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.empty(1, *size, device="meta"))
    return counter.get_total_flops() // 2


def params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------------------------
# The block and groups


def test_groups_and_the_hand_built_block(g) -> None:
    assert g["groups_diff_dw"] < 1e-5 and g["groups_diff_pw"] < 1e-5
    # The page: the hand-built block equals the package's "to the last bit", in both modes.
    assert g["block_diff_eval"] == 0.0 and g["block_diff_train"] == 0.0
    assert g["block_params"] == 9 * 8 + 8 * 16 + 2 * (8 + 16)
    assert g["block_out_side"] == math.ceil(15 / 2)


def test_a_separable_kernel_has_rank_one(g) -> None:
    assert g["factored_diff"] < 1e-5
    assert g["factored_rank"] == 1 and g["random_rank"] == min(16, 9)


def test_imitation_stops_at_the_rank_one_floor(g) -> None:
    assert g["imitate_sep_error"] < 1e-3 and g["imitate_sep_floor"] < 1e-3
    floor = g["imitate_random_floor"]
    assert floor > 0.5  # "most of what the random kernel computes is out of its reach"
    # No separable kernel can beat the floor; training gets close to it.
    assert floor - 0.01 < g["imitate_random_error"] < floor + 0.02


def test_figure_costs_per_position(g) -> None:
    assert g["fig_std_per_position"] == 3 * 3 * 3 * 4
    assert g["fig_sep_per_position"] == 3 * 3 * 3 + 3 * 4


# ---------------------------------------------------------------------------------------------
# The slides' example


def test_the_slides_example_exact_counts(g) -> None:
    with torch.device("meta"):
        layers = {
            "standard": nn.Conv2d(3, 128, 3, padding=1, bias=False),
            "depthwise": nn.Conv2d(3, 3, 3, padding=1, groups=3, bias=False),
            "pointwise": nn.Conv2d(3, 128, 1, bias=False),
        }
    for name, layer in layers.items():
        assert g[f"ex_{name}_params"] == params(layer)
        assert g[f"ex_{name}_macs"] == flop_macs(layer, (3, 100, 100))
    assert g["ex_standard_params"] == 3 * 3 * 3 * 128 == 3456
    assert g["ex_standard_macs"] == 100 * 100 * 3456
    assert g["ex_depthwise_params"] == 3 * 3 * 3 and g["ex_dw_filters"] == 3
    assert g["ex_depthwise_macs"] == 100 * 100 * 27
    assert g["ex_pointwise_macs"] == 100 * 100 * 3 * 128
    assert g["ex_separable_params"] == 27 + 384
    assert g["ex_separable_macs"] == 100 * 100 * (27 + 384) == 4_110_000
    assert g["ex_positions"] == 100 * 100
    assert (g["ex_standard_biases"], g["ex_separable_biases"]) == (128, 3 + 128)


def test_the_slides_figures_and_the_erratum(g) -> None:
    for name, (weights, mults) in SLIDE.items():
        assert (g[f"sl_{name}_params"], g[f"sl_{name}_mults"]) == (weights, mults)
    # The slide's right step, and its two slips.
    assert g["ex_pointwise_params"] == SLIDE["pointwise"][0]
    assert g["ex_pointwise_macs"] == SLIDE["pointwise"][1]
    assert g["ex_depthwise_params"] == 3 * SLIDE["depthwise"][0]  # one filter of three
    assert g["ex_standard_params"] != SLIDE["standard"][0]
    ratio = (100 * 100 * (27 + 384)) / (100 * 100 * 3456)
    assert g["ex_ratio"] == pytest.approx(ratio) and g["ex_saving"] == pytest.approx(1 / ratio)
    assert g["sl_ratio"] == pytest.approx(3_930_000 / 16_380_000)
    assert g["sl_saving"] == pytest.approx(16_380_000 / 3_930_000)
    # The page: the true saving is about twice the slides'.
    assert 1.8 < g["ex_saving"] / g["sl_saving"] < 2.2


def test_the_general_ratio(g) -> None:
    assert g["gen_slide_formula"] == pytest.approx(1 / 128 + 1 / 9)
    assert g["gen_slide_counts"] == pytest.approx(4_110_000 / 34_560_000)
    assert g["gen_slide_counts"] == pytest.approx(g["gen_slide_formula"], rel=1e-12)
    assert g["gen_k3_d1"] == pytest.approx(1 + 1 / 9) and g["gen_k3_d1"] > 1
    assert g["gen_k3_limit"] == 9
    assert g["gen_k3_d512_saving"] == pytest.approx(1 / (1 / 512 + 1 / 9))
    assert g["gen_k3_d512_saving"] < 9


# ---------------------------------------------------------------------------------------------
# Xception, written out from the paper's figure 5


def sep(c_in: int, c_out: int, std: bool) -> int:
    """Weights of a 3x3 separable conv, or of the standard conv that replaces it."""
    return 9 * c_in * c_out if std else 9 * c_in + c_in * c_out


def xception_counts(std: bool = False) -> dict[str, tuple[int, int]]:
    """(params, MACs) of each part of Xception at 299x299, from the paper's figure 5."""
    bn = 2  # a scale and a shift per channel

    def block(c_in: int, widths: list[int], side: int, out: int | None) -> tuple[int, int]:
        p = m = 0
        c = c_in
        for w in widths:
            p += sep(c, w, std) + bn * w
            m += sep(c, w, std) * side * side
            c = w
        if out is not None:  # strided 1x1 conv + BN on the shortcut
            p += c_in * c + bn * c
            m += c_in * c * out * out
        return p, m

    parts = [
        (9 * 3 * 32 + bn * 32 + 9 * 32 * 64 + bn * 64, 9 * 3 * 32 * 149**2 + 9 * 32 * 64 * 147**2),
        block(64, [128, 128], 147, 74),
        block(128, [256, 256], 74, 37),
        block(256, [728, 728], 37, 19),
    ]
    entry = tuple(map(sum, zip(*parts, strict=True)))
    middle = tuple(8 * v for v in block(728, [728, 728, 728], 19, None))
    exit_parts = [
        block(728, [728, 1024], 19, 10),
        (sep(1024, 1536, std) + bn * 1536, sep(1024, 1536, std) * 100),
        (sep(1536, 2048, std) + bn * 2048, sep(1536, 2048, std) * 100),
    ]
    exit_ = tuple(map(sum, zip(*exit_parts, strict=True)))
    return {
        "entry_flow": entry,
        "middle_flow": middle,
        "exit_flow": exit_,
        "avgpool": (0, 0),
        "fc": (2048 * 1000 + 1000, 2048 * 1000),
    }


@pytest.mark.parametrize("std", [False, True])
def test_xception_flows(g, std: bool) -> None:
    counts = xception_counts(std)
    suffix = "_std" if std else ""
    for part, (p, m) in counts.items():
        assert g[f"xc_{part}_params{suffix}"] == p, part
        assert g[f"xc_{part}_macs{suffix}"] == m, part
    total_p = sum(p for p, _ in counts.values())
    total_m = sum(m for _, m in counts.values())
    assert g[f"xc_params{suffix}"] == total_p
    assert g[f"xc_gmacs{suffix}"] == pytest.approx(total_m / 1e9)


def test_xception_against_the_paper_and_pytorchs_counter(g) -> None:
    from cnncourse.models.xception import xception

    assert g["xc_params"] == 22_855_952  # the paper's table 3
    with torch.device("meta"):
        model = xception()
    assert g["xc_gmacs"] == pytest.approx(flop_macs(model, (3, 299, 299)) / 1e9)
    assert g["xc_separable_convs"] == 3 * 2 + 8 * 3 + 2 + 2
    ref, ref_std = xception_counts(), xception_counts(std=True)
    total = sum(m for _, m in ref.values())
    assert g["xc_middle_mac_share"] == pytest.approx(ref["middle_flow"][1] / total)
    p_std = sum(p for p, _ in ref_std.values())
    m_std = sum(m for _, m in ref_std.values())
    assert g["xc_param_saving"] == pytest.approx(p_std / 22_855_952)
    assert g["xc_mac_saving"] == pytest.approx(m_std / total)
    # The page: the middle flow holds most of the parameters.
    assert ref["middle_flow"][0] > 22_855_952 / 2


# ---------------------------------------------------------------------------------------------
# MobileNet v1, written out from the paper's table 1


def mobilenet_counts(alpha: float = 1.0, size: int = 224) -> dict[str, list[int]]:
    """[MACs, weights, BN params] of each kind of layer of MobileNet v1 (table 1)."""
    kinds = {k: [0, 0, 0] for k in ("1x1", "dw", "3x3", "fc")}
    c = int(32 * alpha)
    side = (size + 2 - 3) // 2 + 1
    kinds["3x3"] = [side * side * c * 27, 27 * c, 2 * c]
    for out, stride in V1_LAYERS:
        out = int(out * alpha)
        side = (side + 2 - 3) // stride + 1
        dw = [side**2 * 9 * c, 9 * c, 2 * c]
        pw = [side**2 * c * out, c * out, 2 * out]
        kinds["dw"] = [a + b for a, b in zip(kinds["dw"], dw, strict=True)]
        kinds["1x1"] = [a + b for a, b in zip(kinds["1x1"], pw, strict=True)]
        c = out
    kinds["fc"] = [c * 1000, c * 1000, 0]
    return kinds


def totals(kinds: dict[str, list[int]]) -> tuple[int, int]:
    """(params incl. BN and the FC's 1000 biases, MACs)."""
    p = sum(w + b for _, w, b in kinds.values()) + 1000
    return p, sum(m for m, _, _ in kinds.values())


def test_mobilenet_totals(g) -> None:
    from cnncourse.models.mobilenet import mobilenet_v1

    kinds = mobilenet_counts()
    p, m = totals(kinds)
    assert (g["mn_params"], g["mn_macs"]) == (p, m)
    with torch.device("meta"):
        model = mobilenet_v1()
    assert g["mn_macs"] == flop_macs(model, (3, 224, 224))
    assert round(g["mn_macs"] / 1e6) == 569 and round(g["mn_params"] / 1e6, 1) == 4.2
    assert g["mn_macs_m"] == pytest.approx(m / 1e6)
    assert g["mn_params_m"] == pytest.approx(p / 1e6)
    assert g["mn_weights"] == sum(w for _, w, _ in kinds.values())
    assert g["mn_bn_params"] == sum(b for _, _, b in kinds.values())
    assert g["mn_blocks"] == len(V1_LAYERS) == 13


def test_mobilenet_table2_and_its_erratum(g) -> None:
    kinds = mobilenet_counts()
    all_m = sum(m for m, _, _ in kinds.values())
    all_w = sum(w for _, w, _ in kinds.values())
    for i, key in enumerate(["1x1", "dw", "3x3", "fc"]):
        share_m, share_w = 100 * kinds[key][0] / all_m, 100 * kinds[key][1] / all_w
        assert g[f"mn_kind{i}_macs_share"] == pytest.approx(share_m)
        assert g[f"mn_kind{i}_weights_share"] == pytest.approx(share_w)
        assert (g[f"mn_kind{i}_paper_macs"], g[f"mn_kind{i}_paper_weights"]) == TABLE2[i]
        assert abs(share_w - TABLE2[i][1]) < 0.01
        # Every printed mult-add share agrees but the full conv's (the erratum).
        assert (abs(share_m - TABLE2[i][0]) < 0.01) == (key != "3x3")
    assert g["mn_full_side"] == 112 and g["mn_full_depth"] == 27
    assert g["mn_full_macs"] == 112 * 112 * 32 * 27
    assert round(g["mn_kind2_macs_share"], 2) == 1.91  # 1.19 with its digits swapped
    assert g["mn_paper_macs_sum"] == pytest.approx(99.29)


def test_mobilenet_multipliers(g) -> None:
    for i, ((alpha, size), (acc, paper_m, paper_p)) in enumerate(MOBILENET_PAPER.items()):
        p, m = totals(mobilenet_counts(alpha, size))
        assert (g[f"mn_row{i}_alpha"], g[f"mn_row{i}_size"]) == (alpha, size)
        assert g[f"mn_row{i}_macs_m"] == pytest.approx(m / 1e6)
        assert g[f"mn_row{i}_params_m"] == pytest.approx(p / 1e6)
        assert g[f"mn_row{i}_paper_macs"] == paper_m
        assert g[f"mn_row{i}_paper_params"] == paper_p
        assert g[f"mn_row{i}_paper_acc"] == acc
        assert round(p / 1e6, 1) == paper_p  # every parameter count agrees
        # Every MAC count rounds to the paper's but at 160 pixels, where it is cut off.
        assert (round(m / 1e6) == paper_m) == (size != 160)
        if size == 160:
            assert int(m / 1e6) == paper_m  # cut off rather than rounded
    assert g["mn_params_agree"] is True and g["mn_macs_off"] == 1
    m160 = totals(mobilenet_counts(1.0, 160))[1]
    assert g["mn_160_macs_m"] == pytest.approx(m160 / 1e6)
    assert g["mn_160_rounded"] == round(m160 / 1e6) == 291 and g["mn_160_paper"] == 290
    base_p, base_m = totals(mobilenet_counts())
    half_p, half_m = totals(mobilenet_counts(0.5))
    assert g["mn_half_width_macs"] == pytest.approx(half_m / base_m)
    assert g["mn_half_width_params"] == pytest.approx(half_p / base_p)
    assert g["mn_alpha_half_squared"] == 0.25
    # The page: MACs close to alpha^2 (above it), parameters further above it.
    assert 0.25 < half_m / base_m < 0.27 < half_p / base_p
    res_m = totals(mobilenet_counts(1.0, 128))[1]
    assert g["mn_res128_macs"] == pytest.approx(res_m / base_m)
    assert g["mn_rho128_squared"] == pytest.approx((128 / 224) ** 2)
    assert abs(res_m / base_m - (128 / 224) ** 2) < 0.005


def test_width_against_resolution_at_equal_macs(g) -> None:
    widths = sorted(
        (totals(mobilenet_counts(a, 224))[1], MOBILENET_PAPER[a, 224][0])
        for a in (1.0, 0.75, 0.5, 0.25)
    )
    gaps = []
    for size in (192, 160, 128):
        m = totals(mobilenet_counts(1.0, size))[1]
        (m0, a0), (m1, a1) = next(
            (lo, hi) for lo, hi in zip(widths, widths[1:], strict=False) if lo[0] <= m <= hi[0]
        )
        width_acc = a0 + math.log(m / m0) / math.log(m1 / m0) * (a1 - a0)
        gaps.append(width_acc - MOBILENET_PAPER[1.0, size][0])
    assert g["mn_gap_min"] == pytest.approx(min(gaps))
    assert g["mn_gap_max"] == pytest.approx(max(gaps))
    # The page: the thinner networks are slightly ahead, by less than a point.
    assert 0 < min(gaps) <= max(gaps) < 1


# ---------------------------------------------------------------------------------------------
# Measured time


def test_timing_is_what_the_page_says(g) -> None:
    macs_std, macs_dw, macs_sep = 34_560_000, 270_000, 4_110_000
    assert g["t_threads"] == 1 and g["t_repeats"] >= 3
    assert g["t_mac_ratio"] == pytest.approx(macs_std / macs_sep)
    assert g["t_speedup"] == pytest.approx(g["t_std_ms"] / g["t_sep_ms"])
    assert g["t_std_gmacs"] == pytest.approx(macs_std / (g["t_std_ms"] * 1e-3) / 1e9)
    assert g["t_sep_gmacs"] == pytest.approx(macs_sep / (g["t_sep_ms"] * 1e-3) / 1e9)
    assert g["t_dw_mac_share"] == pytest.approx(macs_dw / macs_sep)
    share = g["t_dw_ms"] / (g["t_dw_ms"] + g["t_pw_ms"])
    assert g["t_dw_time_share"] == pytest.approx(share)
    # What the page claims: fewer MACs, not proportionally faster; the depthwise step takes
    # a larger share of the time than of the MACs. The verdict sentence says what was measured.
    assert g["t_below"] is True and g["t_speedup"] < g["t_mac_ratio"]
    assert "falls short" in g["t_verdict"]
    assert g["t_sep_gmacs"] < g["t_std_gmacs"]
    assert g["t_dw_time_share"] > g["t_dw_mac_share"]


# ---------------------------------------------------------------------------------------------
# Questions


def test_question_values(g) -> None:
    assert g["q_macs_std"] == 56 * 56 * 128 * 9 * 64
    assert g["q_macs_sep"] == 56 * 56 * 64 * 9 + 56 * 56 * 64 * 128
    assert g["q_ratio"] == pytest.approx(1 / 128 + 1 / 9)
    assert g["q_formula"] == pytest.approx(1 / 128 + 1 / 9)
    assert g["q_limit_k5"] == 5 * 5

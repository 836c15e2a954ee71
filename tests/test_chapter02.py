"""Chapter 2 (parameter counts and cost): every number the page states and every claim it makes,
checked against computations that do not use the page's code: closed forms written here,
PyTorch's own modules and `torch.utils.flop_counter.FlopCounterMode` (which reports FLOPs =
2 x MACs), and torchvision's VGG-16.

The page's values come from the book build (`book.glued`), so the chapter runs once per test run.
"""

from __future__ import annotations

import html
import math
import re

import pytest
import torch
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from book_build import BookBuild
from conftest import ROOT

PAGE = "book/02_parameters_and_cost"
SLIDE_LAYERS = [(5, 8), (3, 16), (1, 32)]  # the slides' example: (k, d) on a 32x32x3 input
SLIDE_PARAMS = [608, 1168, 544]  # as printed on the slides
SLIDE_ERRATUM = (1638, 16_380_000)  # the slides' weights and multiplications, 128 3x3 filters


@pytest.fixture(scope="module")
def g(book: BookBuild) -> dict[str, object]:
    return book.glued(PAGE)


def torch_macs(module: nn.Module, shape: tuple[int, ...]) -> int:
    """MACs of one forward pass on a (1, *shape) input, from PyTorch's FLOP counter, on meta."""
    module = module.to("meta")
    with FlopCounterMode(display=False) as counter:
        module(torch.empty(1, *shape, device="meta"))
    flops = counter.get_total_flops()
    assert flops % 2 == 0
    return flops // 2


def n_params(module: nn.Module) -> int:
    return sum(t.numel() for t in module.parameters())


# --- the slides' three-layer example ---------------------------------------------------------


def test_three_layer_params_are_the_slides_figures(g: dict) -> None:
    p = 3
    for i, (k, d) in enumerate(SLIDE_LAYERS, start=1):
        closed_form = (k * k * p + 1) * d
        assert g[f"conv{i}_params"] == closed_form == n_params(nn.Conv2d(p, d, k))
        assert closed_form == SLIDE_PARAMS[i - 1]
        p = d
    assert g["slide_params_exact"] is True
    assert g["total_params"] == g["total_params_valid"] == sum(SLIDE_PARAMS)


@pytest.mark.parametrize("same", [True, False], ids=["same", "valid"])
def test_three_layer_macs_and_sizes_equal_pytorch(g: dict, same: bool) -> None:
    p, h, sizes, total = 3, 32, [32], 0
    suffix = "" if same else "_valid"
    for i, (k, d) in enumerate(SLIDE_LAYERS, start=1):
        conv = nn.Conv2d(p, d, k, padding=(k - 1) // 2 if same else 0)
        out = conv.to("meta")(torch.empty(1, p, h, h, device="meta"))
        macs = torch_macs(conv, (p, h, h))
        assert macs == out.shape[-1] * out.shape[-2] * d * k * k * p  # H' W' d k k p
        assert g[f"conv{i}_macs{suffix}"] == macs
        total += macs
        p, h = d, out.shape[-1]
        sizes.append(h)
    if same:
        assert g["total_macs"] == total
        assert g["total_flops"] == 2 * total  # FLOPs = 2 x MACs, labelled as such
    else:
        assert g["valid_sizes"] == " → ".join(map(str, sizes))  # the sizes in the prose


def test_same_padding_ranks_size_and_cost_alike(g: dict) -> None:
    """The page says: with same padding the two rankings coincide, each layer costing its
    weights times the 32 x 32 positions."""
    p, weights, macs = 3, [], []
    for k, d in SLIDE_LAYERS:
        weights.append(k * k * p * d)
        macs.append(32 * 32 * d * k * k * p)
        p = d
    assert g["positions"] == 32 * 32
    assert all(m == w * g["positions"] for w, m in zip(weights, macs, strict=True))
    by_size = " > ".join(f"conv{i + 1}" for i in sorted(range(3), key=lambda i: -weights[i]))
    assert g["rank_by_params"] == g["rank_by_macs"] == by_size


def test_bias_share(g: dict) -> None:
    additions = sum(32 * 32 * d for _, d in SLIDE_LAYERS)  # one addition per output value
    assert g["bias_share"] == pytest.approx(additions / g["total_macs"])
    assert g["bias_share"] < 0.05  # "changes little"


# --- a real network: VGG-16 -------------------------------------------------------------------


@pytest.fixture(scope="module")
def vgg16() -> list[tuple[str, str, int, int, tuple[int, ...]]]:
    """(name, type, params, MACs, output shape) of torchvision's VGG-16 layers for one
    224x224 image, named as in the paper (conv<block>_<i>, fc6..fc8), by hooks and closed forms."""
    with torch.device("meta"):
        model = torchvision.models.vgg16()
    names, block, index = {}, 1, 0
    for m in model.features:
        if isinstance(m, nn.MaxPool2d):
            block, index = block + 1, 0
        elif isinstance(m, nn.Conv2d):
            index += 1
            names[m] = f"conv{block}_{index}"
    linears = [m for m in model.classifier if isinstance(m, nn.Linear)]
    names.update({m: f"fc{6 + i}" for i, m in enumerate(linears)})
    rows = []

    def hook(m: nn.Module, _: object, out: torch.Tensor) -> None:
        if isinstance(m, nn.Conv2d):
            macs = out.numel() * m.in_channels * m.kernel_size[0] * m.kernel_size[1]
        else:
            macs = m.in_features * m.out_features
        weights = sum(t.numel() for t in m.parameters())
        rows.append((names[m], type(m).__name__, weights, macs, tuple(out.shape[1:])))

    handles = [m.register_forward_hook(hook) for m in names]
    model.eval()
    with FlopCounterMode(display=False) as counter:
        model(torch.empty(1, 3, 224, 224, device="meta"))
    for h in handles:
        h.remove()
    assert counter.get_total_flops() == 2 * sum(r[3] for r in rows)  # our MACs are PyTorch's
    assert sum(r[2] for r in rows) == n_params(model)
    return rows


def test_vgg16_totals(g: dict, vgg16: list) -> None:
    assert g["vgg_layers"] == len(vgg16) == 16
    assert g["vgg_convs"] == sum(r[1] == "Conv2d" for r in vgg16) == 13
    assert g["vgg_total_params"] == sum(r[2] for r in vgg16)
    assert g["vgg_total_macs"] == sum(r[3] for r in vgg16)


def test_vgg16_size_and_cost_rank_layers_differently(g: dict, vgg16: list) -> None:
    params, macs = sum(r[2] for r in vgg16), sum(r[3] for r in vgg16)
    conv_p = sum(r[2] for r in vgg16 if r[1] == "Conv2d") / params
    conv_m = sum(r[3] for r in vgg16 if r[1] == "Conv2d") / macs
    assert g["vgg_conv_param_share"] == pytest.approx(conv_p)
    assert g["vgg_conv_mac_share"] == pytest.approx(conv_m)
    assert g["vgg_fc_param_share"] == pytest.approx(1 - conv_p)
    assert g["vgg_fc_mac_share"] == pytest.approx(1 - conv_m)
    # The claim: the convolutions hold few of the parameters but do most of the work.
    assert conv_p < 0.5 < conv_m
    biggest = max(vgg16, key=lambda r: r[2])
    assert g["vgg_biggest_name"] == biggest[0] and biggest[1] == "Linear"
    assert g["vgg_biggest_params"] == biggest[2]
    assert g["vgg_biggest_param_share"] == pytest.approx(biggest[2] / params)
    assert g["vgg_biggest_mac_share"] == pytest.approx(biggest[3] / macs)
    dearer = sum(r[3] > biggest[3] for r in vgg16)
    assert g["vgg_dearer_than_biggest"] == dearer > len(vgg16) // 2  # "most layers cost more"
    top = max(r[3] for r in vgg16)
    costliest = next(r for r in vgg16 if r[3] == top)  # the first of the tied layers
    assert g["vgg_costliest_name"] == costliest[0]
    assert g["vgg_costliest_params"] == costliest[2]
    assert g["vgg_costliest_param_share"] == pytest.approx(costliest[2] / params)
    assert g["vgg_costliest_mac_share"] == pytest.approx(top / macs)
    assert g["vgg_costliest_positions"] == math.prod(costliest[4][1:])
    # a small layer that costs as much as any: the rankings differ
    assert costliest[2] < sorted(r[2] for r in vgg16)[len(vgg16) // 2]


def test_vgg16_activations_outgrow_parameters(g: dict, vgg16: list) -> None:
    act = {r[0]: math.prod(r[4]) for r in vgg16 if r[1] == "Conv2d"}
    total, params = sum(act.values()), sum(r[2] for r in vgg16)
    first = [n for n in act if n.startswith("conv1_")]
    assert g["vgg_act_millions"] == pytest.approx(total / 1e6)
    assert g["vgg_act_first_block_share"] == pytest.approx(sum(act[n] for n in first) / total)
    first_params = sum(r[2] for r in vgg16 if r[0] in first)
    assert g["vgg_first_block_param_share"] == pytest.approx(first_params / params)
    batch = g["vgg_batch_act_exceeds"]
    assert batch * total > params >= (batch - 1) * total  # the smallest such batch


# --- the slide with a slip (standard convolution, 100x100x3 input, 128 3x3 filters) -----------


def test_erratum_numbers(g: dict) -> None:
    conv = nn.Conv2d(3, 128, 3, padding=1, bias=False)
    weights = 3 * 3 * 3 * 128
    assert g["slip_weights"] == weights == n_params(conv)
    assert g["slip_params"] == weights + 128 == n_params(nn.Conv2d(3, 128, 3))
    assert g["slip_positions"] == 100 * 100
    assert g["slip_macs"] == 100 * 100 * weights == torch_macs(conv, (3, 100, 100))
    valid = nn.Conv2d(3, 128, 3, bias=False)
    assert g["slip_valid_side"] == 98
    assert g["slip_macs_valid"] == 98 * 98 * weights == torch_macs(valid, (3, 100, 100))
    slide_weights, slide_mults = SLIDE_ERRATUM
    assert (g["slip_slide_weights"], g["slip_slide_mults"]) == SLIDE_ERRATUM
    assert slide_weights != weights  # the slip: 3*3*3*128 is not 1638
    assert slide_mults == 100 * 100 * slide_weights  # ... but the method is right
    assert g["slip_method_right"] is True


# --- dense, locally connected and convolutional layers; linear and batch norm -------------------


def test_dense_versus_conv(g: dict) -> None:
    n_in, n_out = 32 * 32 * 3, 32 * 32 * 8
    conv_params, conv_macs = (5 * 5 * 3 + 1) * 8, 32 * 32 * 8 * 5 * 5 * 3
    dense = nn.Linear(n_in, n_out, device="meta")
    assert g["dense_params"] == (n_in + 1) * n_out == n_params(dense)
    assert torch_macs(dense, (n_in,)) == n_in * n_out
    assert g["dense_over_conv_params"] == pytest.approx((n_in + 1) * n_out / conv_params)
    assert g["dense_over_conv_macs"] == pytest.approx(n_in * n_out / conv_macs)
    assert g["dense_weights_millions"] == pytest.approx(n_in * n_out / 1e6)
    # sharing: parameters divided by the number of positions, MACs unchanged
    assert g["sharing_param_ratio"] == g["sharing_param_ratio_min"] == 32 * 32
    assert g["sharing_same_macs"] is True


def test_linear_and_batchnorm(g: dict) -> None:
    assert g["mlp_params"] == (28 * 28 + 1) * 100 == n_params(nn.Linear(784, 100)) == 78_500
    total = sum(SLIDE_PARAMS)
    assert g["mlp_over_convs"] == pytest.approx((28 * 28 + 1) * 100 / total)
    assert g["head_params"] == (32 * 32 * 32 + 1) * 10
    assert g["head_over_convs"] == pytest.approx((32 * 32 * 32 + 1) * 10 / total)
    assert g["bn16_params"] == 2 * 16 == n_params(nn.BatchNorm2d(16))
    block = nn.Sequential(nn.Conv2d(8, 16, 3, bias=False), nn.BatchNorm2d(16))
    assert g["conv_bn_params"] == 3 * 3 * 8 * 16 + 2 * 16 == n_params(block)


def test_activation_memory(g: dict) -> None:
    values = sum(32 * 32 * d for _, d in SLIDE_LAYERS)  # same padding: every map is 32x32
    assert g["activations_over_params"] == pytest.approx(values / sum(SLIDE_PARAMS))
    assert g["big_over_small"] == pytest.approx((224 * 224) / (32 * 32))
    assert g["bytes_per_value"] == torch.finfo(torch.float32).bits // 8


def test_answers_of_the_questions(g: dict) -> None:
    assert g["q1_params"] == (3 * 3 * 64 + 1) * 128 == n_params(nn.Conv2d(64, 128, 3))
    for size in (32, 64):
        conv = nn.Conv2d(64, 128, 3, padding=1)
        assert g[f"q1_macs_{size}"] == torch_macs(conv, (64, size, size))
    assert g["q1_mac_ratio"] == 4


# --- the chapter's general identities, over random settings, against PyTorch ------------------


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 40),
    k=st.integers(1, 7),
    s=st.integers(1, 4),
    pad=st.integers(0, 3),
    dil=st.integers(1, 3),
    p=st.integers(1, 6),
    d=st.integers(1, 6),
)
def test_output_size_and_macs_formulas(
    n: int, k: int, s: int, pad: int, dil: int, p: int, d: int
) -> None:
    """floor((n + 2P - D(k-1) - 1)/s) + 1 per dimension, and MACs = H' W' d k k p."""
    if dil * (k - 1) + 1 > n + 2 * pad:
        return  # the dilated filter does not fit
    conv = nn.Conv2d(p, d, k, stride=s, padding=pad, dilation=dil)
    out = conv.to("meta")(torch.empty(1, p, n, n, device="meta"))
    size = (n + 2 * pad - dil * (k - 1) - 1) // s + 1
    assert out.shape[-2:] == (size, size)
    assert torch_macs(conv, (p, n, n)) == size * size * d * k * k * p
    assert n_params(conv) == (k * k * p + 1) * d


@settings(max_examples=40, deadline=None)
@given(g=st.integers(1, 8), pg=st.integers(1, 4), dg=st.integers(1, 4), k=st.integers(1, 5))
def test_groups_divide_params_and_macs(g: int, pg: int, dg: int, k: int) -> None:
    p, d, shape = g * pg, g * dg, (g * pg, 12, 12)
    grouped = nn.Conv2d(p, d, k, groups=g, bias=False)
    full = nn.Conv2d(p, d, k, bias=False)
    assert g * n_params(grouped) == n_params(full)
    assert g * torch_macs(grouped, shape) == torch_macs(full, shape)


# --- the page reads well ----------------------------------------------------------------------


def test_page_layout(book: BookBuild) -> None:
    nb = book.notebook(PAGE)
    code = [c for c in nb.cells if c.cell_type == "code"]
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    # no stray values printed below a cell: the one rich output is the summary table
    results = [o for c in code for o in c.outputs if o.output_type == "execute_result"]
    assert all("text/html" in o.data for o in results), "a cell ends with a bare value"
    assert all(len(line) <= 84 for c in code for line in c.source.splitlines())
    # no number-pinning asserts left in the page (they live in this file)
    assert not re.search(r"assert [^\n]*==\s*\d", "\n".join(c.source for c in code))
    # every glued figure is placed with a caption and alt text, and the web page shows the
    # whole alt text (an option continued on a second line would be cut at the line's end)
    figures = dict(re.findall(r"```\{glue:figure\} (\w+)\n:alt: ([^\n]+)", text))
    assert {"fig_volume_filters", "fig_vgg_breakdown", "fig_dense_local_conv"} <= set(figures)
    page = html.unescape((book.html / f"{PAGE}.html").read_text())
    for alt in figures.values():
        assert f'alt="{alt}"' in page
    # chapters that do not exist yet are not promised by number
    for n in range(4, 11):
        if not list((ROOT / "book").glob(f"{n:02d}_*.ipynb")):
            assert not re.search(rf"[Cc]hapter {n}\b", text), f"points to chapter {n}"
    # 3 to 5 questions, each with a collapsed answer, then the exercise
    quiz = text.split("## Check your understanding", 1)[1]
    answers = quiz.count("```{admonition} Answer\n:class: dropdown")
    assert 3 <= answers <= 5
    assert quiz.index("ex02_parameters_and_cost.ipynb") > quiz.rindex(":class: dropdown")
    # every value cited in the prose was glued by the page
    cited = set(re.findall(r"\{glue:text\}`(\w+)", text))
    cited |= set(re.findall(r"\{glue:figure\} (\w+)", text))
    assert cited <= set(book.glued(PAGE)) | set(figures)

"""Chapter 3 (Pooling): the values the page glued, against independent references.

The page's numbers come from the book build (``book.glued``); each test recomputes them another
way: torch's own modules and autograd, FlopCounterMode, torchvision's models, closed forms written
here, and hypothesis over random settings for the two backward rules the page derives.
"""

from __future__ import annotations

import ast
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from book_build import BookBuild

PAGE = "book/03_pooling"


@pytest.fixture(scope="module")
def g(book: BookBuild) -> dict[str, object]:
    return book.glued(PAGE)


def as_tensor(text: object) -> torch.Tensor:
    """A tensor the page glued as the text of a nested list."""
    assert isinstance(text, str)
    return torch.tensor(ast.literal_eval(text))


def macs(module: nn.Module, x: torch.Tensor) -> int:
    """MACs of one forward pass, from PyTorch's own FLOP counter (which counts 2 per MAC)."""
    with FlopCounterMode(display=False) as counter:
        module(x)
    return counter.get_total_flops() // 2


# ---------------------------------------------------------------------------------------------
# The two backward rules, written here independently of the page, against autograd.


def routed_gradient(x: torch.Tensor, grad_out: torch.Tensor, k: int, s: int) -> torch.Tensor:
    """Max pooling's rule: each window's gradient goes to the (first) largest input."""
    grad = torch.zeros_like(x)
    for i in range(grad_out.shape[0]):
        for j in range(grad_out.shape[1]):
            best = max(
                ((i * s + a, j * s + b) for a in range(k) for b in range(k)),
                key=lambda p: x[p].item(),
            )
            grad[best] += grad_out[i, j]
    return grad


def spread_gradient(x: torch.Tensor, grad_out: torch.Tensor, k: int, s: int) -> torch.Tensor:
    """Average pooling's rule: each input of a window receives 1/k^2 of its gradient."""
    grad = torch.zeros_like(x)
    for i in range(grad_out.shape[0]):
        for j in range(grad_out.shape[1]):
            for a in range(k):
                for b in range(k):
                    grad[i * s + a, j * s + b] += grad_out[i, j] / (k * k)
    return grad


def autograd(pool, x: torch.Tensor, grad_out: torch.Tensor, k: int, s: int) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    pool(x[None, None], k, s)[0, 0].backward(grad_out)
    return x.grad


pool_settings = st.tuples(
    st.integers(1, 4),  # k
    st.integers(1, 4),  # s
    st.integers(0, 6),  # extra rows beyond one window
    st.integers(0, 6),  # extra columns
    st.integers(0, 2**31 - 1),  # seed
)


@settings(max_examples=60, deadline=None)
@given(pool_settings)
def test_max_pool_gradient_goes_to_each_windows_argmax(setting) -> None:
    k, s, extra_h, extra_w, seed = setting
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(k + extra_h, k + extra_w, generator=gen, dtype=torch.float64)
    h_out, w_out = extra_h // s + 1, extra_w // s + 1
    grad_out = torch.randn(h_out, w_out, generator=gen, dtype=torch.float64)
    expected = routed_gradient(x, grad_out, k, s)
    torch.testing.assert_close(autograd(F.max_pool2d, x, grad_out, k, s), expected)
    # Every window sends its whole gradient to one input: nothing is lost or created.
    torch.testing.assert_close(expected.sum(), grad_out.sum())


@settings(max_examples=60, deadline=None)
@given(pool_settings)
def test_avg_pool_gradient_spreads_one_over_k_squared(setting) -> None:
    k, s, extra_h, extra_w, seed = setting
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(k + extra_h, k + extra_w, generator=gen, dtype=torch.float64)
    h_out, w_out = extra_h // s + 1, extra_w // s + 1
    grad_out = torch.randn(h_out, w_out, generator=gen, dtype=torch.float64)
    expected = spread_gradient(x, grad_out, k, s)
    torch.testing.assert_close(autograd(F.avg_pool2d, x, grad_out, k, s), expected)


def test_example_gradients_on_the_page(g) -> None:
    x, grad_out = as_tensor(g["example_input"]), as_tensor(g["example_grad_out"])
    grad_max, grad_avg = as_tensor(g["example_grad_max"]), as_tensor(g["example_grad_avg"])
    torch.testing.assert_close(grad_max, autograd(F.max_pool2d, x, grad_out, 2, 2))
    torch.testing.assert_close(grad_avg, autograd(F.avg_pool2d, x, grad_out, 2, 2))
    # The prose: both sum to the output gradient; max pooling feeds one input per window.
    assert g["example_grad_max_sum"] == g["example_grad_avg_sum"] == grad_out.sum().item()
    assert g["example_grad_out_sum"] == grad_out.sum().item()
    assert g["example_grad_max_nonzero"] == grad_out.numel()
    assert g["backward_diff"] == 0.0


def test_kernel_learned_through_pooling(g) -> None:
    """The page learns a 3x3 kernel through 2x2 pooling: max pooling passes a gradient to one
    output in k^2 = 4 (the windows tile the 30x30 map), average pooling to all of them."""
    assert g["learn_share_max"] == 1 / 2**2
    assert g["learn_share_average"] == 1.0
    for name in ("max", "average"):
        assert g[f"learn_error_{name}"] < 1e-3  # every weight close to the true kernel's
        assert g[f"learn_loss_last_{name}"] < 1e-6 * g[f"learn_loss_first_{name}"]


def test_example_forward_on_the_page(g) -> None:
    x = as_tensor(g["example_input"])[None]
    assert torch.equal(as_tensor(g["example_max_out"]), F.max_pool2d(x, 2)[0])
    torch.testing.assert_close(as_tensor(g["example_avg_out"]), F.avg_pool2d(x, 2)[0])


# ---------------------------------------------------------------------------------------------
# Sizes, parameters, cost.


def test_pooling_has_no_parameters_and_no_macs(g) -> None:
    layer = nn.MaxPool2d(2, 2)
    assert g["pool_params"] == sum(p.numel() for p in layer.parameters()) == 0
    assert g["pool_macs"] == macs(layer, torch.zeros(1, 100, 40, 40)) == 0
    assert g["pooled_volume_shape"] == str((100, 20, 20))


def test_output_sizes(g) -> None:
    for k, s in [(3, 1), (3, 2), (2, 2)]:
        real = F.max_pool1d(torch.zeros(1, 1, 9), k, s).shape[-1]
        assert g[f"stride_outputs_k{k}_s{s}"] == real == (9 - k) // s + 1
    size = torch.zeros(1, 1, 224, 224, device="meta")
    chain = [224]
    for _ in range(5):
        size = F.max_pool2d(size, 2)
        chain.append(size.shape[-1])
    assert g["vgg_sizes"] == " -> ".join(map(str, chain))
    assert g["size_sweep_agree"] == g["size_sweep_checked"] > 1000
    n, k, s, padding, naive, formula = ast.literal_eval(g["size_rule_case"])
    x = torch.zeros(1, 1, n, n, device="meta")
    real = F.max_pool2d(x, k, s, padding=padding, ceil_mode=True).shape[-1]
    assert formula == real and naive == math.ceil((n + 2 * padding - k) / s) + 1 != real


def test_size_table_and_googlenet_claim(g) -> None:
    rows = ast.literal_eval(g["size_cases"])
    for n, k, s, ceil, formula, real in rows:
        x = torch.zeros(1, 1, n, n, device="meta")
        assert formula == real == F.max_pool2d(x, k, s, ceil_mode=ceil).shape[-1]
    # "3x3/2 pooling on 112x112 with ceil_mode, as in torchvision's GoogLeNet"
    torchvision = pytest.importorskip("torchvision")
    with torch.device("meta"):
        net = torchvision.models.googlenet(weights=None, init_weights=False, aux_logits=False)
        pool1_in = net.conv1(torch.empty(1, 3, 224, 224))
    pool = net.maxpool1
    assert (pool1_in.shape[-1], pool.kernel_size, pool.stride, pool.ceil_mode) == (112, 3, 2, True)
    assert (112, 3, 2, True, pool(pool1_in).shape[-1], pool(pool1_in).shape[-1]) in rows


def test_global_pooling_heads(g) -> None:
    assert g["gap_length"] == 100 and g["gap_diff"] == 0.0
    x = torch.zeros(1, 100, 40, 40)
    flat = nn.Sequential(nn.Flatten(), nn.Linear(160_000, 10))
    gap_dense = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(100, 10))
    conv_gap = nn.Sequential(nn.Conv2d(100, 10, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    assert g["head_params_flatten_dense"] == 40 * 40 * 100 * 10 + 10
    assert g["head_params_GAP_dense"] == g["head_params_1x1_conv_GAP"] == 100 * 10 + 10
    assert g["head_macs_flatten_dense"] == macs(flat, x) == 160_000 * 10
    assert g["head_macs_GAP_dense"] == macs(gap_dense, x) == 100 * 10
    assert g["head_macs_1x1_conv_GAP"] == macs(conv_gap, x) == 40 * 40 * 100 * 10
    assert g["flat_over_gap"] == pytest.approx((160_000 * 10 + 10) / (100 * 10 + 10))
    assert g["head_diff"] < 1e-5


def test_strided_conv_variants_and_the_prose_about_their_cost(g) -> None:
    p = d = 64
    x = torch.zeros(1, p, 32, 32)
    conv = (3 * 3 * p + 1) * d  # params of one 3x3 conv with bias
    a = nn.Sequential(nn.Conv2d(p, d, 3, padding=1), nn.MaxPool2d(2))
    b = nn.Conv2d(p, d, 3, stride=2, padding=1)
    c = nn.Sequential(nn.Conv2d(p, d, 3, padding=1), nn.Conv2d(d, d, 3, stride=2, padding=1))
    assert g["block_params_a"] == g["block_params_b"] == conv
    assert g["block_params_c"] == 2 * conv
    for name, block in {"a": a, "b": b, "c": c}.items():
        assert g[f"block_macs_{name}"] == macs(block, x)
        assert g[f"block_out_{name}"] == str((d, 16, 16))
    # "(b) is a quarter of (a); (c), the variant that matched max pooling, costs more than (a)."
    assert g["macs_b_over_a"] == 0.25
    assert g["macs_c_over_a"] == pytest.approx(1.25)
    assert g["macs_c_over_a"] > 1 and g["params_c_over_a"] == 2


def test_downsampling_inventory_against_torchvision(g) -> None:
    """The page counts its own models; torchvision's are built independently."""
    torchvision = pytest.importorskip("torchvision")

    def count(model: nn.Module, kind: type, k: int, s: int) -> int:
        return sum(
            isinstance(m, kind) and m.kernel_size in (k, (k, k)) and m.stride in (s, (s, s))
            for m in model.modules()
        )

    with torch.device("meta"):
        tv = {
            name: getattr(torchvision.models, name)(weights=None)
            for name in ("alexnet", "vgg16", "resnet18", "densenet121")
        }
    assert g["alexnet_max_3x3_s2"] == count(tv["alexnet"], nn.MaxPool2d, 3, 2) == 3
    assert g["vgg16_max_2x2_s2"] == count(tv["vgg16"], nn.MaxPool2d, 2, 2) == 5
    assert g["resnet18_max_3x3_s2"] == count(tv["resnet18"], nn.MaxPool2d, 3, 2) == 1
    assert g["resnet18_conv_3x3_s2"] == count(tv["resnet18"], nn.Conv2d, 3, 2)
    assert g["densenet121_avg_2x2_s2"] == count(tv["densenet121"], nn.AvgPool2d, 2, 2)
    # DenseNet-121 has four dense blocks, hence three transitions, each with one avg pool.
    assert g["densenet121_avg_2x2_s2"] == 3
    features = tv["densenet121"].features(torch.empty(1, 3, 224, 224, device="meta"))
    assert g["densenet_final_channels"] == features.shape[1] == g["densenet_classifier_in"]
    assert g["densenet_final_size"] == features.shape[-1]


# ---------------------------------------------------------------------------------------------
# Receptive fields: the recursion against closed forms and against autograd.


def measured_field_1d(layers: list[tuple[int, int]], n: int = 64) -> int:
    """Receptive field of one output of a 1-D stack, from the span of its input gradient.

    All weights 1 and average pooling, so every pixel of the field contributes."""
    modules = []
    for k, s in layers:
        if s == 1:
            conv = nn.Conv1d(1, 1, k, bias=False)
            nn.init.ones_(conv.weight)
            modules.append(conv)
        else:
            modules.append(nn.AvgPool1d(k, s))
    net = nn.Sequential(*modules)
    x = torch.zeros(1, 1, n, requires_grad=True)
    out = net(x)
    out[0, 0, out.shape[-1] // 2].backward()
    nonzero = torch.nonzero(x.grad[0, 0]).flatten()
    return int(nonzero.max() - nonzero.min() + 1)


def closed_form_field(layers: list[tuple[int, int]]) -> int:
    """r = 1 + sum over layers of (k_l - 1) times the product of the strides before l."""
    strides = [s for _, s in layers]
    return 1 + sum((k - 1) * math.prod(strides[:i]) for i, (k, _) in enumerate(layers))


CONV3, POOL2 = (3, 1), (2, 2)


def test_receptive_field_diagram(g) -> None:
    reach = ast.literal_eval(g["rf_reach"])
    assert reach == [measured_field_1d([CONV3] * n) for n in (1, 2, 3)] == [3, 5, 7]
    assert g["rf_three_convs_drawn"] == reach[-1]
    assert g["rf_conv_pool_conv_drawn"] == measured_field_1d([CONV3, POOL2, CONV3]) == 8


def test_receptive_field_growth(g) -> None:
    vgg_like = [CONV3, CONV3, POOL2] * 4
    steps = ast.literal_eval(g["vgg_like_steps"])
    for i, (r, j) in enumerate(steps, start=1):
        assert r == closed_form_field(vgg_like[:i])
        assert j == math.prod(s for _, s in vgg_like[:i])
    assert g["field_pooled_final"] == closed_form_field(vgg_like)
    assert g["field_convs_only_last"] == closed_form_field([CONV3] * 8) == 17
    # The summary: with pooling the field outgrows the plain stack, and the growth doubles
    # per block (exponential in the number of blocks).
    assert g["field_pooled_last"] == closed_form_field(vgg_like[:-1])
    assert g["field_pooled_last"] > 2 * g["field_convs_only_last"]
    assert ast.literal_eval(g["pooled_block_growth"]) == [2, 4, 8, 16]
    assert g["q_field"] == closed_form_field([CONV3, CONV3, POOL2, CONV3]) == 10
    assert g["q_pool_out"] == F.max_pool2d(torch.zeros(1, 27, 27), 3, 2).shape[-1]


def test_measured_field_of_the_probe(g) -> None:
    probe = [CONV3, CONV3, POOL2, CONV3, CONV3, POOL2]
    assert g["probe_predicted"] == closed_form_field(probe) == measured_field_1d(probe)
    assert g["probe_rows"] == g["probe_cols"] == g["probe_predicted"]
    assert g["probe_start_predicted"] == g["probe_start_rows"] == g["probe_start_cols"]
    # Effective field: holes with ReLU and max pooling, none outside; the centre dominates.
    assert g["erf_outside"] == 0.0
    assert 0 < g["erf_nonzero"] < g["erf_area"] == g["probe_predicted"] ** 2
    assert g["paths_corner"] == 1 < g["paths_centre"]


# ---------------------------------------------------------------------------------------------
# The photo: pooling and the one-pixel shift, recomputed here and compared with the prose.


@pytest.fixture(scope="module")
def edges() -> tuple[torch.Tensor, torch.Tensor]:
    """Edge maps of the sample photo and of the photo moved one pixel (own Sobel code)."""
    import matplotlib.pyplot as plt
    from matplotlib import cbook

    with cbook.get_sample_data("grace_hopper.jpg") as file:
        gray = torch.tensor(plt.imread(file), dtype=torch.float32).mean(dim=2) / 255
    sobel_x = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    kernels = torch.stack([sobel_x, sobel_x.T])[:, None]

    def edge(img: torch.Tensor) -> torch.Tensor:
        return F.conv2d(img[None, None], kernels).square().sum(1, keepdim=True).sqrt()

    return edge(gray[:, 1:]), edge(gray[:, :-1])


def test_photo_pooling(g, edges) -> None:
    e, _ = edges
    assert round(g["edges_over_pooled"]) == 16
    assert g["avg_never_above_max"] is True
    assert bool((F.avg_pool2d(e, 4) <= F.max_pool2d(e, 4)).all())


def test_shift_table_is_recomputed_and_the_prose_is_true_to_it(g, edges) -> None:
    e_orig, e_shift = edges
    for k in (1, 2, 4, 8):
        for kind, pool in (("max", F.max_pool2d), ("avg", F.avg_pool2d)):
            a, b = pool(e_orig, k), pool(e_shift, k)
            change = ((b - a).norm() / a.norm()).item()
            assert g[f"shift_{kind}_change_{k}"] == pytest.approx(change, rel=1e-4)
            assert g[f"shift_{kind}_same_{k}"] == pytest.approx((a == b).float().mean().item())
    keys = [(kind, k) for kind in ("max", "avg") for k in (1, 2, 4, 8)]
    change = {(kind, k): g[f"shift_{kind}_change_{k}"] for kind, k in keys}
    same = {(kind, k): g[f"shift_{kind}_same_{k}"] for kind, k in keys}
    # "Pooling reduces the change, more as the window grows, for both kinds."
    for kind in ("max", "avg"):
        values = [change[kind, k] for k in (1, 2, 4, 8)]
        assert values == sorted(values, reverse=True) and len(set(values)) == 4
    # "In relative change, average pooling changes less at 4x4 and 8x8; max only at 2x2."
    assert change["avg", 4] < change["max", 4] and change["avg", 8] < change["max", 8]
    assert change["max", 2] < change["avg", 2]
    # "In values left exactly as they were, max pooling wins at every size, and grows."
    assert all(same["max", k] > same["avg", k] for k in (2, 4, 8))
    assert same["max", 2] < same["max", 4] < same["max", 8]
    # "Average pooling changes nearly every value (at most ... stay the same)."
    assert g["avg_unchanged_most"] == max(same["avg", k] for k in (2, 4, 8)) < 0.01
    assert same["max", 1] < 0.01
    # "A shift by a whole stride simply shifts the pooled map."
    assert g["stride_shift_diff"] == 0.0


def test_from_scratch_pooling_matches_pytorch(g) -> None:
    assert g["scratch_diff"] < 1e-5


def test_sizes_quoted_in_the_prose(book: BookBuild) -> None:
    """Sizes the prose quotes (glued, not typed), against real PyTorch shapes."""
    g = book.glued(PAGE)
    maps = torch.zeros(1, 100, 40, 40)
    assert g["pooled_side"] == torch.nn.MaxPool2d(2)(maps).shape[-1]
    assert g["flat_length"] == torch.nn.Flatten()(maps).shape[1]
    assert g["positions"] == 40 * 40

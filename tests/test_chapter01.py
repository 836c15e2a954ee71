"""Chapter 1 (Convolution): the page's numbers and claims, checked against independent references.

The book build executes the chapter once; these tests read the values it glued (`book.glued`)
and recompute each claim here with PyTorch's own modules, autograd, `FlopCounterMode` or a closed
form. The identities the chapter states in general (the backward pass of a convolution, the 1x1
convolution as a dense layer) are checked again over random settings drawn by hypothesis, without
the book. The slides' inputs and filters below are the givens of their worked examples (what the
slides state), not values copied from the page's output.
"""

from __future__ import annotations

import json
import re

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from book_build import BookBuild
from cnncourse.data import SHAPE_NAMES

pytestmark = pytest.mark.usefixtures("one_thread")

PAGE = "book/01_convolution"
D = torch.float64

# The slides' 7x7 example: input and filter.
X7 = torch.tensor(
    [
        [2, 2, 2, 2, 3, 3, 3],
        [1, 0, 1, 1, 1, 1, 0],
        [1, 1, 3, 3, 0, 0, 0],
        [1, 1, 3, 2, 0, 0, 3],
        [1, 1, 3, 2, 0, 0, 3],
        [1, 3, 3, 2, 0, 0, 3],
        [3, 3, 3, 2, 0, 0, 3],
    ],
    dtype=D,
)
W = torch.tensor([[-1, 0.5, 1], [-1, 0, 0], [0, 0, 0.5]], dtype=D)
# The slides' RGB example: red is the 7x7 input's top-left corner; green and blue as printed.
X_RGB = torch.stack(
    [
        X7[:6, :6],
        torch.tensor(
            [
                [3, 3, 1, 1, 1, 1],
                [3, 0, 3, 1, 1, 1],
                [3, 3, 3, 3, 0, 0],
                [0, 0, 3, 2, 0, 0],
                [1, 2, 2, 2, 0, 0],
                [2, 2, 2, 2, 0, 0],
            ],
            dtype=D,
        ),
        torch.tensor(
            [
                [0, 3, 2, 2, 3, 2],
                [1, 1, 1, 1, 1, 1],
                [1, 2, 3, 3, 0, 0],
                [1, 2, 3, 1, 1, 1],
                [1, 3, 3, 2, 1, 1],
                [3, 3, 0, 2, 0, 2],
            ],
            dtype=D,
        ),
    ]
)
W_RGB = torch.stack(
    [
        W,
        torch.tensor([[1, 0, 1], [-1, 1, 0], [0, 0, -0.5]], dtype=D),
        torch.tensor([[1, 0, 1], [1, 0.5, -1], [0, 1, 0]], dtype=D),
    ]
)
# The output printed on the slide (stride 1, padding 1, no bias).
SLIDE_RGB = torch.tensor(
    [
        [1, -2.5, -1, -1, 0.5, 2],
        [11.5, 5.5, 16.5, 9.5, 8, 3],
        [4.5, 8, 7, 9, 2.5, 2.5],
        [5.5, 14, 22, 5, 0.5, 2.5],
        [5.5, 12.5, 9, 7, -0.5, 4.5],
        [4, 11, 6, 7, -0.5, 4.5],
    ],
    dtype=D,
)


@pytest.fixture(scope="module")
def g(book: BookBuild) -> dict[str, object]:
    return book.glued(PAGE)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def macs(module: nn.Module, *shape: int) -> int:
    """Multiply-accumulates of one forward pass, from PyTorch's own FLOP counter (2 per MAC)."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(torch.zeros(*shape))
    return counter.get_total_flops() // 2


def row_text(values: list[float]) -> str:
    return ", ".join(f"{v:g}" for v in values)


# ----------------------------------------------------------------------- why not a dense layer
def test_dense_layer_counts(g: dict) -> None:
    assert g["dense_params"] == n_params(nn.Linear(28 * 28, 100)) == 78_500  # the slides' figure
    assert g["dense_weights"] == 28 * 28 * 100
    assert g["imagenet_dense_params"] == n_params(nn.Linear(224 * 224 * 3, 100, device="meta"))
    assert g["scramble_diff"] < 1e-12  # scrambling pixels and weights together changes nothing


def test_conv_against_dense_table(g: dict) -> None:
    conv, dense = nn.Conv2d(1, 100, 3), nn.Linear(784, 100)
    assert g["conv_layer_params"] == n_params(conv)
    assert g["conv_outputs"] == conv(torch.zeros(1, 1, 28, 28)).numel()
    assert g["dense_outputs"] == 100
    assert g["conv_macs"] == macs(conv, 1, 1, 28, 28)
    assert g["dense_macs"] == macs(dense, 1, 784)
    assert g["conv_saving"] == pytest.approx(n_params(dense) / n_params(conv))
    assert g["dense_as_many_outputs"] == (784 + 1) * g["conv_outputs"]
    # The prose: fewer parameters, yet more outputs and more MACs than the dense layer.
    assert g["conv_saving"] > 1
    assert g["conv_outputs"] > g["dense_outputs"] and g["conv_macs"] > g["dense_macs"]


def test_convolution_as_a_matrix(g: dict) -> None:
    assert g["m_diff"] == 0.0
    assert g["w_nonzeros"] == int((W != 0).sum())
    assert json.loads(g["m_row_nonzeros"]) == [int((W != 0).sum())]  # every row: W's weights


# ------------------------------------------------------------------- the slides' worked examples
def test_loop_convolution_matches_torch(g: dict) -> None:
    assert g["loop_diff"] < 1e-12


def test_same_padding_first_row(g: dict) -> None:
    exact = F.conv2d(X7[None, None], W[None, None], padding=1)[0, 0]
    assert json.loads(g["same_row0"]) == exact[0].tolist()
    assert exact[0, :5].tolist() == [0, -1.5, -1.5, -1.5, -1.5]  # the slides' five cells
    assert g["same_row0_rest"] == " and ".join(f"{v:g}" for v in exact[0, 5:].tolist())
    assert g["inner_equal"] == 1
    assert torch.equal(exact[1:6, 1:6], F.conv2d(X7[None, None], W[None, None])[0, 0])


def test_rgb_erratum(g: dict) -> None:
    exact = F.conv2d(X_RGB[None], W_RGB[None], padding=1)[0, 0]
    agree = exact == SLIDE_RGB
    assert g["rgb_agree"] == int(agree.sum())
    rows = [r for r in range(6) if bool(agree[r].all())]
    assert g["rgb_rows_agree"] == f"{rows[0]} to {rows[-1]}" and rows == list(range(5))
    assert json.loads(g["rgb_row_differs"]) == [5] and not agree[5].any()
    assert g["slide_last_row"] == row_text(SLIDE_RGB[5].tolist())
    assert g["exact_last_row"] == row_text(exact[5].tolist())
    assert g["slide_row4_tail"] == row_text(SLIDE_RGB[4, 4:].tolist())
    assert torch.equal(SLIDE_RGB[5, 4:], SLIDE_RGB[4, 4:])  # "merely repeat the row above"
    assert g["rgb_exact_00"] == float(exact[0, 0]) == float(SLIDE_RGB[0, 0])
    # The worked value at (5, 0): one partial sum per channel, from the padded window.
    padded = F.pad(X_RGB, [1, 1, 1, 1])
    parts = [float((W_RGB[c] * padded[c, 5:8, 0:3]).sum()) for c in range(3)]
    assert [g[f"contrib_50_{n}"] for n in ("red", "green", "blue")] == parts
    assert g["exact_50"] == sum(parts) == float(exact[5, 0])
    assert g["slide_50"] == float(SLIDE_RGB[5, 0]) != g["exact_50"]


def test_every_slide_value_checked(g: dict) -> None:
    # 1 (7x7 valid) + 5 (padded first row) + 36 (RGB) + 1 (stride 2) values stated
    assert g["slide_values_checked"] == 1 + 5 + 36 + 1
    where = json.loads(g["slide_differing_where"])
    assert where == [["RGB stride 1", [5, c]] for c in range(6)]
    assert g["slide_values_differing"] == len(where)


def test_stride(g: dict) -> None:
    bias = torch.tensor([0.5], dtype=D)
    s2 = F.conv2d(X_RGB[None], W_RGB[None], bias, stride=2, padding=1)[0, 0]
    s1 = F.conv2d(X_RGB[None], W_RGB[None], bias, padding=1)[0, 0]
    assert float(s2[0, 0]) == 1.5  # the slide's only stated value
    assert g["stride_subsample"] == 1 and torch.equal(s2, s1[::2, ::2])
    assert g["stride_fraction"] == s2.numel() / s1.numel()


def test_output_size_remark(g: dict) -> None:
    starts = list(range(0, 8 - 3 + 1, 2))  # window corners along 8 pixels, k = 3, s = 2
    assert g["starts_8"] == ", ".join(map(str, starts))
    assert g["last_col_used_8"] == starts[-1] + 2 < 7  # the last input column is never used


# ---------------------------------------------------------------------------- feature maps
def test_laplacian_is_neighbours_minus_four_centres(g: dict) -> None:
    kernel = torch.tensor(json.loads(g["laplacian_kernel"]))
    x = torch.rand(1, 1, 9, 9, generator=torch.Generator().manual_seed(0))
    out = F.conv2d(x, kernel[None, None])[0, 0]  # (7, 7), centred on x[1:8, 1:8]
    c = x[0, 0]
    expected = c[:-2, 1:-1] + c[2:, 1:-1] + c[1:-1, :-2] + c[1:-1, 2:] - 4 * c[1:-1, 1:-1]
    torch.testing.assert_close(out, expected)
    assert float(kernel[1, 1]) < 0  # not "centre minus neighbours"
    assert g["laplacian_at_pixel"] == pytest.approx(g["laplacian_by_formula"], abs=1e-5)
    assert abs(g["laplacian_on_ramp"]) < 1e-5
    assert g["sobel_step"] > 0  # red (positive) where brightness increases to the right


def test_conv_layer_and_lenet(g: dict) -> None:
    assert g["layer_params"] == n_params(nn.Conv2d(3, 6, 5))
    assert g["layer_out_shape"].split(" × ")[0] == "6"
    assert g["layer_out_shape"].split(" × ")[1:] == g["layer_in_shape"].split(" × ")[1:]
    lenet = nn.Sequential(nn.Conv2d(1, 6, 5), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.MaxPool2d(2))
    s4 = lenet(torch.zeros(1, 1, 32, 32))
    assert g["lenet_s4_size"] == s4.shape[-1] == 5
    assert g["lenet_features"] == s4.numel()


# ------------------------------------------------------------------------ 1x1 convolution
def test_one_by_one_on_the_page(g: dict) -> None:
    assert g["one_by_one_diff"] < 1e-5
    assert g["params_1x1"] == g["params_linear"] == n_params(nn.Linear(6, 4)) == (6 + 1) * 4


@settings(max_examples=40, deadline=None)
@given(
    p=st.integers(1, 8),
    d=st.integers(1, 8),
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    seed=st.integers(0, 2**16),
)
def test_one_by_one_conv_is_linear_at_every_pixel(p: int, d: int, h: int, w: int, seed: int):
    torch.manual_seed(seed)
    conv, linear = nn.Conv2d(p, d, 1, dtype=D), nn.Linear(p, d, dtype=D)
    with torch.no_grad():
        linear.weight.copy_(conv.weight.view(d, p))
        linear.bias.copy_(conv.bias)
        x = torch.randn(2, p, h, w, dtype=D)
        torch.testing.assert_close(conv(x), linear(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2))


# ------------------------------------------------------------------------------ learning
def test_learned_kernel_is_sobel_within_the_stated_tolerance(g: dict) -> None:
    sobel_x = torch.outer(torch.tensor([1.0, 2.0, 1.0]), torch.tensor([-1.0, 0.0, 1.0]))
    learned = torch.tensor(json.loads(g["learned_kernel"]))
    error = float((learned - sobel_x).abs().max())
    assert error <= g["kernel_tol"] <= 1e-3
    assert g["kernel_error"] == pytest.approx(error, abs=1e-7)
    assert g["kernel_bias"] < g["kernel_tol"]
    assert g["kernel_loss_end"] < g["kernel_loss_start"] * 1e-6  # "by orders of magnitude"


def test_true_convolution_targets_teach_the_flipped_filter(g: dict) -> None:
    learned = torch.tensor(json.loads(g["flip_learned"]), dtype=D)
    assert float((learned - torch.rot90(W, 2)).abs().max()) <= g["flip_error"] + 1e-7
    assert g["flip_error"] < 1e-3
    assert float((learned - W).abs().max()) > 0.5  # and not the unflipped filter


def roughness(bank: torch.Tensor) -> float:
    dx = bank[..., :, 1:] - bank[..., :, :-1]
    dy = bank[..., 1:, :] - bank[..., :-1, :]
    return float((dx.pow(2).mean() + dy.pow(2).mean()) / 2 / bank.pow(2).mean())


def test_small_cnn_learns(g: dict) -> None:
    assert g["n_classes"] == len(SHAPE_NAMES)
    assert g["acc_chance"] == pytest.approx(1 / len(SHAPE_NAMES))
    assert g["acc_after"] > 5 * g["acc_chance"] and g["acc_after"] > g["acc_before"]
    # "about 2 for independent random weights", and the trained filters are smoother
    random_bank = torch.randn(500, 3, 5, 5, generator=torch.Generator().manual_seed(0))
    assert roughness(random_bank) == pytest.approx(2, abs=0.05)
    assert g["rough_before"] == pytest.approx(2, abs=0.3)
    assert g["rough_after"] < g["rough_before"]


# ------------------------------------------------------------------------- backward pass
def test_backward_pass_on_the_page(g: dict) -> None:
    assert g["backward_trials"] >= 20
    assert g["backward_err"] == max(g["backward_err_x"], g["backward_err_w"], g["backward_err_b"])
    assert g["backward_err"] < 1e-10
    assert g["mt_diff"] < 1e-12
    # dL/dx and dL/dW each cost one convolution of the forward pass's size (bias: no FLOPs)
    assert g["backward_cost_ratio"] == 2


@st.composite
def conv_settings(draw: st.DrawFn) -> tuple[int, ...]:
    k = draw(st.integers(1, 5))
    return (
        draw(st.integers(1, 3)),  # N
        draw(st.integers(1, 4)),  # p
        draw(st.integers(1, 4)),  # d
        k,
        draw(st.integers(1, 3)),  # stride
        draw(st.integers(0, k - 1)),  # padding
        draw(st.integers(k, 11)),  # H
        draw(st.integers(k, 11)),  # W
        draw(st.integers(0, 2**16)),  # seed
    )


@settings(max_examples=80, deadline=None)
@given(conv_settings())
def test_conv_backward_identities(setting: tuple[int, ...]) -> None:
    n, p, d, k, stride, padding, h, w_in, seed = setting
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, p, h, w_in, dtype=D, generator=gen, requires_grad=True)
    w = torch.randn(d, p, k, k, dtype=D, generator=gen, requires_grad=True)
    y = F.conv2d(x, w, stride=stride, padding=padding)
    grad_y = torch.randn(y.shape, dtype=D, generator=gen)
    auto_x, auto_w = torch.autograd.grad(y, (x, w), grad_y)

    # dL/dx: a transposed convolution of dL/dy with the same weights.
    extra = [(size + 2 * padding - k) % stride for size in (h, w_in)]
    dx = F.conv_transpose2d(grad_y, w, stride=stride, padding=padding, output_padding=extra)
    torch.testing.assert_close(dx, auto_x)

    # dL/dW: a correlation of the input with dL/dy (taps `stride` apart)...
    corr = F.conv2d(x.transpose(0, 1), grad_y.transpose(0, 1), padding=padding, dilation=stride)
    torch.testing.assert_close(corr.transpose(0, 1)[:, :, :k, :k], auto_w)
    # ...which is, written out, the sum over positions of dL/dy times the window it saw.
    windows = F.unfold(x.detach(), k, padding=padding, stride=stride)  # (N, p*k*k, L)
    by_sum = torch.einsum("ndl,nql->dq", grad_y.flatten(2), windows).view(d, p, k, k)
    torch.testing.assert_close(by_sum, auto_w)


# ------------------------------------------------------------------------ the page itself
def test_check_your_understanding_answers(g: dict) -> None:
    conv = nn.Conv2d(32, 64, 3, padding=1)
    assert g["q1_params"] == n_params(conv)
    assert g["q1_macs"] == macs(conv, 1, 32, 56, 56)
    assert g["q1_ratio"] == 56 * 56
    one = nn.Conv2d(256, 64, 1)
    assert g["q4_params"] == n_params(one)
    assert g["q4_size"] == one(torch.zeros(1, 256, 28, 28)).shape[-1]


def test_page_reads(book: BookBuild) -> None:
    nb = book.notebook(PAGE)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        assert all(len(line) <= 84 for line in cell.source.splitlines()), cell.source[:80]
        kinds = {o.output_type for o in cell.outputs}
        assert "execute_result" not in kinds and "error" not in kinds, cell.source[:80]
    assert not re.search(r"OCR|our reading", text)
    questions = text.split("## Check your understanding")[1]
    assert 3 <= questions.count(":class: dropdown") <= 5
    assert text.count("```{glue:figure}") == text.count(":alt:")


def test_sizes_quoted_in_the_prose(book: BookBuild) -> None:
    """Sizes the prose quotes (glued, not typed), against real PyTorch shapes."""
    g = book.glued(PAGE)
    assert g["conv_side"] == nn.Conv2d(1, 1, 3)(torch.zeros(1, 1, 28, 28)).shape[-1]
    # the dense matrix of a 3x3 convolution over 7x7: one row per output, one column per pixel
    assert (g["m_rows"], g["m_cols"]) == (5 * 5, 7 * 7)
    assert g["m_forced_zeros"] == 7 * 7 - 3 * 3
    assert (
        g["rgb_values"]
        == F.conv2d(torch.zeros(1, 3, 6, 6), torch.zeros(1, 3, 3, 3), padding=1).numel()
    )

"""Property tests: every formula in `cnncourse.counting` against real PyTorch modules.

Each test asks PyTorch for the answer (an output shape, a `numel`, a FlopCounterMode count, a
gradient) over many random settings drawn by hypothesis, so a wrong formula fails here.
"""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cnncourse import counting
from cnncourse.counting import (
    batchnorm_params,
    conv_macs,
    conv_output_size,
    conv_params,
    conv_transpose_macs,
    conv_transpose_output_size,
    linear_macs,
    linear_params,
    pool_output_size,
    receptive_field,
    receptive_field_steps,
)

SETTINGS = settings(max_examples=300, deadline=None)

sizes = st.integers(1, 12)
kernels = st.integers(1, 5)
strides = st.integers(1, 4)
paddings = st.integers(0, 3)
dilations = st.integers(1, 3)


def torch_shape(fn, *args, **kwargs) -> tuple[int, ...] | None:
    """The output spatial shape of a real PyTorch call, or None where PyTorch refuses."""
    try:
        with torch.no_grad():
            return tuple(fn(*args, **kwargs).shape[2:])
    except RuntimeError:
        return None


def ours(fn, *args, **kwargs) -> int | None:
    """Our formula's answer, or None where it raises ValueError."""
    try:
        return fn(*args, **kwargs)
    except ValueError:
        return None


# --- output sizes -------------------------------------------------------------------------------


@SETTINGS
@given(st.lists(st.tuples(sizes, kernels, strides, paddings, dilations), min_size=2, max_size=2))
def test_conv_output_size_matches_conv2d(dims):
    (h, kh, sh, ph, dh), (w, kw, sw, pw, dw) = dims
    conv = nn.Conv2d(1, 1, (kh, kw), (sh, sw), (ph, pw), (dh, dw), bias=False)
    expected = torch_shape(conv, torch.zeros(1, 1, h, w))
    got = (ours(conv_output_size, *dims[0]), ours(conv_output_size, *dims[1]))
    if expected is None:  # PyTorch refuses exactly when the dilated kernel exceeds a padded side
        assert None in got
    else:
        assert got == expected


@SETTINGS
@given(
    st.tuples(sizes, kernels, st.none() | strides, paddings, dilations, st.booleans()),
    st.sampled_from(["max", "avg"]),
)
def test_pool_output_size_matches_pooling(args, kind):
    n, k, s, p, d, ceil = args
    x = torch.zeros(1, 1, n, n)
    if kind == "max":
        pool = nn.MaxPool2d(k, s, p, d, ceil_mode=ceil)
    else:  # average pooling has no dilation
        d = 1
        pool = nn.AvgPool2d(k, s, p, ceil_mode=ceil)
    expected = torch_shape(pool, x)
    got = ours(pool_output_size, n, k, s, p, d, ceil)
    assert got == (None if expected is None else expected[0])


@SETTINGS
@given(kernels, dilations, paddings, st.sampled_from(["max", "avg"]))
def test_pool_padding_rule(k, d, p, kind):
    # PyTorch checks pad <= (effective kernel)/2 in pooling_output_shape and pad <= k/2 in
    # pool2d_shape_check (ATen/native/Pool.h); the second is stricter, for max and avg alike.
    x = torch.zeros(1, 1, 40, 40)
    call = F.max_pool2d if kind == "max" else F.avg_pool2d
    dilation = {"dilation": d} if kind == "max" else {}
    refused = torch_shape(call, x, k, 1, p, **dilation) is None
    assert refused == (p > k // 2)
    if refused:
        with pytest.raises(ValueError, match="padding"):
            pool_output_size(40, k, 1, p, d if kind == "max" else 1)


def test_pool_ceil_mode_partial_window():
    # A window that does not fit at all still gives one output in ceil mode: PyTorch's rule.
    assert F.max_pool2d(torch.zeros(1, 1, 2, 2), 3, 2, ceil_mode=True).shape[-1] == 1
    assert pool_output_size(2, 3, 2, ceil_mode=True) == 1
    with pytest.raises(ValueError, match="kernel_size"):
        pool_output_size(2, 3, 2)


@SETTINGS
@given(
    st.integers(1, 8),
    kernels,
    strides,
    paddings,
    st.integers(0, 3),
    dilations,
)
def test_conv_transpose_output_size_matches(n, k, s, p, op, d):
    # On the CPU: the meta device does not check output_padding < max(stride, dilation).
    up = nn.ConvTranspose2d(1, 1, k, s, p, op, dilation=d, bias=False)
    expected = torch_shape(up, torch.zeros(1, 1, n, n))
    got = ours(conv_transpose_output_size, n, k, s, p, op, d)
    if expected is None or expected[0] == 0:
        # PyTorch raises when the size would be negative but returns an *empty* output for 0;
        # we raise in both cases: a feature map without pixels is never what a layer is for.
        assert got is None
    else:
        assert got == expected[0]
    if op >= max(s, d):
        with pytest.raises(ValueError, match="output_padding"):
            conv_transpose_output_size(n, k, s, p, op, d)


# --- parameters ---------------------------------------------------------------------------------

kernel_args = kernels | st.tuples(kernels, kernels)


@SETTINGS
@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4), kernel_args, st.booleans())
def test_conv_params_matches_conv2d(groups, a, b, k, bias):
    conv = nn.Conv2d(groups * a, groups * b, k, groups=groups, bias=bias, device="meta")
    assert conv_params(groups * a, groups * b, k, groups, bias) == count(conv)
    # The same count holds for a transposed convolution.
    up = nn.ConvTranspose2d(groups * a, groups * b, k, groups=groups, bias=bias, device="meta")
    assert conv_params(groups * a, groups * b, k, groups, bias) == count(up)


@SETTINGS
@given(st.integers(1, 64), st.integers(1, 3), kernel_args, st.booleans())
def test_conv_params_depthwise(channels, multiplier, k, bias):
    out = channels * multiplier
    conv = nn.Conv2d(channels, out, k, groups=channels, bias=bias, device="meta")
    assert conv_params(channels, out, k, groups=channels, bias=bias) == count(conv)


@SETTINGS
@given(st.integers(1, 2000), st.integers(1, 2000), st.booleans())
def test_linear_params_matches_linear(i, o, bias):
    assert linear_params(i, o, bias) == count(nn.Linear(i, o, bias, device="meta"))


@SETTINGS
@given(st.integers(1, 2048), st.booleans())
def test_batchnorm_params_matches_batchnorm(c, affine):
    # parameters() leaves out the running statistics, which are buffers.
    assert batchnorm_params(c, affine) == count(nn.BatchNorm2d(c, affine=affine, device="meta"))


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --- MACs, against FlopCounterMode (which reports FLOPs = 2 x MACs) ----------------------------


def flop_count_macs(module: nn.Module, x: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(x)
    flops = counter.get_total_flops()
    assert flops % 2 == 0
    return flops // 2


@SETTINGS
@given(
    st.integers(1, 3),  # groups
    st.integers(1, 3),
    st.integers(1, 3),
    st.tuples(kernels, kernels),
    st.tuples(st.integers(5, 20), st.integers(5, 20)),
    strides,
    st.integers(1, 2),  # batch
    st.booleans(),
)
def test_conv_macs_matches_flop_counter(g, a, b, k, hw, s, batch, bias):
    conv = nn.Conv2d(g * a, g * b, k, s, groups=g, bias=bias, device="meta")
    x = torch.empty(batch, g * a, *hw, device="meta")
    out = tuple(conv_output_size(n, kk, s) for n, kk in zip(hw, k, strict=True))
    assert batch * conv_macs(g * a, g * b, k, out, groups=g) == flop_count_macs(conv, x)


@SETTINGS
@given(st.integers(1, 16), st.integers(1, 2), kernels, st.integers(3, 20), strides)
def test_depthwise_conv_macs_matches_flop_counter(c, multiplier, k, n, s):
    conv = nn.Conv2d(c, c * multiplier, k, s, padding=k // 2, groups=c, device="meta")
    out = conv_output_size(n, k, s, k // 2)
    x = torch.empty(1, c, n, n, device="meta")
    assert conv_macs(c, c * multiplier, k, out, groups=c) == flop_count_macs(conv, x)


@SETTINGS
@given(
    st.integers(1, 3),
    st.integers(1, 3),
    st.integers(1, 3),
    st.tuples(kernels, kernels),
    st.tuples(st.integers(1, 10), st.integers(1, 10)),
    strides,
    dilations,
    st.integers(1, 2),
)
def test_conv_transpose_macs_matches_flop_counter(g, a, b, k, hw, s, d, batch):
    # FlopCounterMode's conv_flop_count uses the *input* spatial shape when transposed=True and
    # the weight shape (C_in, C_out/g, kh, kw): 2 * H_in*W_in * kh*kw * C_in * C_out/g * batch,
    # the same convention as ours. Stride, padding and output_padding do not change the count.
    up = nn.ConvTranspose2d(
        g * a, g * b, k, s, output_padding=s - 1, groups=g, dilation=d, device="meta"
    )
    x = torch.empty(batch, g * a, *hw, device="meta")
    assert batch * conv_transpose_macs(g * a, g * b, k, hw, groups=g) == flop_count_macs(up, x)


@SETTINGS
@given(
    st.integers(1, 64),
    st.integers(1, 64),
    st.lists(st.integers(1, 5), max_size=2),
    st.integers(1, 3),
    st.booleans(),
)
def test_linear_macs_matches_flop_counter(i, o, extra_dims, batch, bias):
    # A linear layer applied at every position of extra dims (tokens, pixels) costs i*o each.
    layer = nn.Linear(i, o, bias, device="meta")
    x = torch.empty(batch, *extra_dims, i, device="meta")
    positions = batch * math.prod(extra_dims)
    assert linear_macs(i, o, positions) == flop_count_macs(layer, x)


# --- receptive field, measured with gradients --------------------------------------------------

layer_specs = st.tuples(kernels, st.integers(1, 3)) | st.tuples(
    kernels, st.integers(1, 3), dilations
)


def measured_field(layers) -> tuple[int, int]:
    """Receptive field and jump of a stack of all-ones convs, read off input gradients.

    With positive weights nothing cancels, so the gradient of one output value is nonzero on
    exactly the input pixels that it depends on (with gaps under dilation: we take the extent).
    """
    convs = []
    for spec in layers:
        k, s, d = (*spec, 1)[:3]
        # Real 2-D convs, acting along the height only, so the input can be a tall thin strip.
        conv = nn.Conv2d(1, 1, (k, 1), (s, 1), dilation=(d, 1), bias=False, dtype=torch.float64)
        nn.init.ones_(conv.weight)
        convs.append(conv)
    stack = nn.Sequential(*convs)
    n = 8  # grow the input until the stack gives at least 3 outputs (no formula used)
    while (shape := torch_shape(stack, torch.zeros(1, 1, n, 1, dtype=torch.float64))) is None or (
        shape[0] < 3
    ):
        n *= 2
        assert n < 10_000

    def extent(row: int) -> tuple[int, int]:
        x = torch.zeros(1, 1, n, 1, dtype=torch.float64, requires_grad=True)
        stack(x)[0, 0, row, 0].backward()
        nonzero = x.grad[0, 0, :, 0].nonzero().flatten()
        return int(nonzero.min()), int(nonzero.max())

    centre = shape[0] // 2
    lo, hi = extent(centre)
    next_lo, _ = extent(centre + 1)
    return hi - lo + 1, next_lo - lo


@settings(max_examples=150, deadline=None)  # each example runs up to 4 stacks, forward + back
@given(st.lists(layer_specs, min_size=1, max_size=4))
def test_receptive_field_matches_gradients(layers):
    steps = receptive_field_steps(layers)
    assert len(steps) == len(layers)
    for i in range(len(layers)):
        assert steps[i] == measured_field(layers[: i + 1])
    assert receptive_field(layers) == steps[-1][0]


def test_receptive_field_of_nothing_is_one_pixel():
    assert receptive_field([]) == 1


# --- validation: a ValueError that names the bad argument ---------------------------------------

# function, valid keyword arguments, {argument: smallest valid value}
SIGNATURES = [
    (
        conv_output_size,
        dict(size=9, kernel_size=3, stride=1, padding=1, dilation=1),
        dict(size=1, kernel_size=1, stride=1, padding=0, dilation=1),
    ),
    (
        pool_output_size,
        dict(size=9, kernel_size=3, stride=2, padding=1, dilation=1),
        dict(size=1, kernel_size=1, stride=1, padding=0, dilation=1),
    ),
    (
        conv_transpose_output_size,
        dict(size=9, kernel_size=3, stride=2, padding=1, output_padding=1, dilation=1),
        dict(size=1, kernel_size=1, stride=1, padding=0, output_padding=0, dilation=1),
    ),
    (
        conv_params,
        dict(in_channels=4, out_channels=8, kernel_size=3, groups=2),
        dict(in_channels=1, out_channels=1, kernel_size=1, groups=1),
    ),
    (linear_params, dict(in_features=4, out_features=8), dict(in_features=1, out_features=1)),
    (batchnorm_params, dict(num_features=4), dict(num_features=1)),
    (
        conv_macs,
        dict(in_channels=4, out_channels=8, kernel_size=3, output_size=5, groups=2),
        dict(in_channels=1, out_channels=1, kernel_size=1, output_size=1, groups=1),
    ),
    (
        conv_transpose_macs,
        dict(in_channels=4, out_channels=8, kernel_size=3, input_size=5, groups=2),
        dict(in_channels=1, out_channels=1, kernel_size=1, input_size=1, groups=1),
    ),
    (
        linear_macs,
        dict(in_features=4, out_features=8, positions=3),
        dict(in_features=1, out_features=1, positions=1),
    ),
]
CASES = [(fn, kwargs, arg, low) for fn, kwargs, lows in SIGNATURES for arg, low in lows.items()]


@pytest.mark.parametrize(
    ("fn", "kwargs", "arg", "low"), CASES, ids=[f"{c[0].__name__}-{c[2]}" for c in CASES]
)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_bad_argument_is_named(fn, kwargs, arg, low, data):
    assert fn(**kwargs) >= 0  # the valid call works
    bad = data.draw(
        st.integers(max_value=low - 1) | st.booleans() | st.floats() | st.text(max_size=2),
        label=arg,
    )
    # Anchored: the message starts with the argument's own name ("size", not "kernel_size").
    with pytest.raises(ValueError, match=rf"^{arg}\b"):
        fn(**{**kwargs, arg: bad})


@pytest.mark.parametrize(
    ("fn", "kwargs", "flag"),
    [
        (conv_params, dict(in_channels=3, out_channels=8, kernel_size=5), "bias"),
        (linear_params, dict(in_features=784, out_features=100), "bias"),
        (batchnorm_params, dict(num_features=4), "affine"),
        (pool_output_size, dict(size=5, kernel_size=2), "ceil_mode"),
    ],
)
@pytest.mark.parametrize("bad", ["no", None, 0, 1.0])
def test_flags_must_be_bools(fn, kwargs, flag, bad):
    # bias="no" is truthy: counting it as a bias would be a silently wrong number.
    with pytest.raises(ValueError, match=rf"^{flag} must be True or False"):
        fn(**kwargs, **{flag: bad})


def test_numpy_integers_are_accepted_and_give_python_ints():
    size = conv_output_size(np.int64(7), np.int32(3), padding=np.int64(1))
    params = conv_params(np.int64(3), np.int64(8), (np.int64(5), np.int64(5)))
    assert (size, params) == (conv_output_size(7, 3, padding=1), conv_params(3, 8, 5))
    assert type(size) is int and type(params) is int


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: conv_params(3, 6, 3, groups=2), "in_channels=3 is not divisible by groups"),
        (lambda: conv_params(4, 6, 3, groups=4), "out_channels=6 is not divisible by groups"),
        (lambda: conv_macs(6, 4, 3, 5, groups=4), "divisible by groups"),
        (lambda: conv_params(4, 4, (3, 3, 3)), "kernel_size"),
        (lambda: conv_params(4, 4, (3, 0)), r"kernel_size\[1\]"),
        (lambda: conv_macs(4, 4, 3, (5, -1)), r"output_size\[1\]"),
        (lambda: conv_output_size(3, 5), "kernel_size=5"),
        (lambda: conv_output_size(3, 2, dilation=3), "dilation=3"),
        (lambda: pool_output_size(9, 3, padding=2), "padding"),
        (lambda: pool_output_size(9, 3, ceil_mode=1), "ceil_mode"),
        (lambda: conv_transpose_output_size(4, 2, stride=2, output_padding=2), "output_padding"),
        (lambda: conv_transpose_output_size(1, 1, padding=1), "padding"),
        (lambda: receptive_field("33"), "layers"),
        (lambda: receptive_field(3), "layers"),
        (lambda: receptive_field([3]), r"layers\[0\]"),
        (lambda: receptive_field([(3, 1), (3,)]), r"layers\[1\]"),
        (lambda: receptive_field([(3, 1, 1, 1)]), r"layers\[0\]"),
        (lambda: receptive_field([(0, 1)]), r"layers\[0\] kernel_size"),
        (lambda: receptive_field([(3, 1), (3, 0)]), r"layers\[1\] stride"),
        (lambda: receptive_field([(3, 1, 0)]), r"layers\[0\] dilation"),
        (lambda: receptive_field([(3.0, 1)]), r"layers\[0\] kernel_size"),
        (lambda: receptive_field([(3, True)]), r"layers\[0\] stride"),
    ],
)
def test_specific_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_doctests():
    result = doctest.testmod(counting)
    assert result.attempted > 0
    assert result.failed == 0

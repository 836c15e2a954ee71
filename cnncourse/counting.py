"""Pure formulas for convolutional layers: output sizes, parameters, MACs and receptive fields.

Every function works on plain integers, so a student can check a layer on paper, and validates its
arguments: an impossible setting raises `ValueError` naming the bad argument instead of returning a
silently wrong number. `tests/test_counting.py` compares each formula with real `torch.nn` modules
over many random settings.

Counting convention (see the book's chapter 2): the unit of cost is the MAC, one
multiply-accumulate. FLOPs = 2 x MACs. Bias additions are not counted unless asked for, which
reproduces the "ops" that torchvision and the papers publish.

Symbols follow the slides: input ``m x n x p`` (height, width, channels), ``d`` filters of size
``k x k x p``, stride ``s``, zero padding ``P``, dilation ``D``.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

IntPair = int | tuple[int, int]

__all__ = [
    "conv_output_size",
    "pool_output_size",
    "conv_transpose_output_size",
    "conv_params",
    "linear_params",
    "batchnorm_params",
    "conv_macs",
    "conv_transpose_macs",
    "linear_macs",
    "receptive_field",
    "receptive_field_steps",
    "pair",
]


# --- validation helpers -------------------------------------------------------------------------


def _check_int(name: str, value: object, minimum: int) -> int:
    """Return `value` as an int if it is an integer >= `minimum`, else raise a ValueError naming
    `name`. NumPy integers are accepted (`operator.index`); floats and bools are not."""
    try:
        number = operator.index(value) if not isinstance(value, bool) else None  # type: ignore
    except TypeError:
        number = None
    if number is None:
        raise ValueError(f"{name} must be an int, got {value!r} ({type(value).__name__})")
    if number < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {number}")
    return number


def _check_bool(name: str, value: object) -> bool:
    """Return `value` if it is a bool: a flag like `bias="no"` must not silently count as True."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def pair(name: str, value: IntPair, minimum: int = 1) -> tuple[int, int]:
    """Normalise an int or an (h, w) pair to a validated (h, w) tuple, as `nn.Conv2d` does."""
    if isinstance(value, tuple | list):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair (h, w), got {value!r}")
        return tuple(_check_int(f"{name}[{i}]", v, minimum) for i, v in enumerate(value))
    return (_check_int(name, value, minimum),) * 2


# --- output sizes (one spatial dimension; apply once for H and once for W) ----------------------


def conv_output_size(
    size: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1
) -> int:
    """Output length of a convolution along one dimension: floor((n + 2P - D(k-1) - 1) / s) + 1.

    >>> conv_output_size(7, 3)  # the slides' 7x7 input, 3x3 filter, no padding
    5
    >>> conv_output_size(7, 3, padding=1)  # zero padding keeps the size
    7
    """
    size = _check_int("size", size, 1)
    kernel_size = _check_int("kernel_size", kernel_size, 1)
    stride = _check_int("stride", stride, 1)
    padding = _check_int("padding", padding, 0)
    dilation = _check_int("dilation", dilation, 1)
    span = dilation * (kernel_size - 1) + 1  # extent of the (dilated) kernel
    if span > size + 2 * padding:
        raise ValueError(
            f"kernel_size={kernel_size} (dilation={dilation}, span {span}) does not fit in "
            f"size={size} with padding={padding} (padded size {size + 2 * padding})"
        )
    return (size + 2 * padding - span) // stride + 1


def pool_output_size(
    size: int,
    kernel_size: int,
    stride: int | None = None,
    padding: int = 0,
    dilation: int = 1,
    ceil_mode: bool = False,
) -> int:
    """Output length of max/avg pooling along one dimension, by PyTorch's rules.

    `stride` defaults to `kernel_size`; `dilation` only exists for max pooling. PyTorch requires
    ``padding <= kernel_size // 2`` (for max pooling also at most half the dilated kernel, which
    is implied). With ``ceil_mode=True`` the division rounds up, so the last window may hang over
    the right edge of the padded input, even when no window fits entirely; but a window may not
    *start* in the right padding: it is dropped if it would begin at or beyond ``size + padding``.

    >>> pool_output_size(40, 2)  # 2x2 max pooling with stride 2 halves 40 -> 20
    20
    >>> pool_output_size(5, 2), pool_output_size(5, 2, ceil_mode=True)  # a partial last window
    (2, 3)
    """
    size = _check_int("size", size, 1)
    kernel_size = _check_int("kernel_size", kernel_size, 1)
    stride = kernel_size if stride is None else _check_int("stride", stride, 1)
    padding = _check_int("padding", padding, 0)
    dilation = _check_int("dilation", dilation, 1)
    _check_bool("ceil_mode", ceil_mode)
    if padding > kernel_size // 2:
        raise ValueError(f"padding={padding} must be at most half of kernel_size={kernel_size}")
    span = dilation * (kernel_size - 1) + 1
    room = size + 2 * padding - span  # negative when the window does not fit
    out = (-(-room // stride) if ceil_mode else room // stride) + 1  # // rounds towards -inf
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1  # the last window would start in the padding only
    if out < 1:
        raise ValueError(
            f"kernel_size={kernel_size} (dilation={dilation}, span {span}) does not fit in "
            f"size={size} with padding={padding} (padded size {size + 2 * padding})"
        )
    return out


def conv_transpose_output_size(
    size: int,
    kernel_size: int,
    stride: int = 1,
    padding: int = 0,
    output_padding: int = 0,
    dilation: int = 1,
) -> int:
    """Output length of a transposed convolution: (n-1)s - 2P + D(k-1) + output_padding + 1.

    >>> conv_transpose_output_size(14, 2, stride=2)  # the usual 2x upsampling
    28
    """
    size = _check_int("size", size, 1)
    kernel_size = _check_int("kernel_size", kernel_size, 1)
    stride = _check_int("stride", stride, 1)
    padding = _check_int("padding", padding, 0)
    output_padding = _check_int("output_padding", output_padding, 0)
    dilation = _check_int("dilation", dilation, 1)
    if output_padding >= max(stride, dilation):
        raise ValueError(
            f"output_padding={output_padding} must be smaller than stride={stride} or "
            f"dilation={dilation}"
        )
    out = (size - 1) * stride - 2 * padding + dilation * (kernel_size - 1) + output_padding + 1
    if out < 1:  # PyTorch returns an empty tensor for 0 (and raises below): we raise for both
        raise ValueError(f"padding={padding} is too large: the output size would be {out}")
    return out


# --- parameters ----------------------------------------------------------------------------------


def _check_groups(in_channels: int, out_channels: int, groups: int) -> tuple[int, int, int]:
    in_channels = _check_int("in_channels", in_channels, 1)
    out_channels = _check_int("out_channels", out_channels, 1)
    groups = _check_int("groups", groups, 1)
    if in_channels % groups:
        raise ValueError(f"in_channels={in_channels} is not divisible by groups={groups}")
    if out_channels % groups:
        raise ValueError(f"out_channels={out_channels} is not divisible by groups={groups}")
    return in_channels, out_channels, groups


def conv_params(
    in_channels: int, out_channels: int, kernel_size: IntPair, groups: int = 1, bias: bool = True
) -> int:
    """Learnable parameters of a 2-D convolution: [(k*k*p/groups) + 1] * d.

    Each of the d = `out_channels` filters sees p/groups input channels (all of them when
    groups=1, one when groups=p: a depthwise convolution). Same count for a transposed convolution.

    >>> conv_params(3, 8, 5)  # the slides' first layer: [(5*5*3) + 1] * 8
    608
    """
    in_channels, out_channels, groups = _check_groups(in_channels, out_channels, groups)
    kh, kw = pair("kernel_size", kernel_size)
    return out_channels * (kh * kw * (in_channels // groups) + int(_check_bool("bias", bias)))


def linear_params(in_features: int, out_features: int, bias: bool = True) -> int:
    """Parameters of a fully connected layer: (in + 1) * out.

    >>> linear_params(784, 100)  # a 28x28 image into 100 units
    78500
    """
    in_features = _check_int("in_features", in_features, 1)
    out_features = _check_int("out_features", out_features, 1)
    return (in_features + int(_check_bool("bias", bias))) * out_features


def batchnorm_params(num_features: int, affine: bool = True) -> int:
    """Learnable parameters of batch norm: a scale and a shift per channel (2C).

    The running mean and variance are buffers, updated by statistics, not by gradients.
    """
    num_features = _check_int("num_features", num_features, 1)
    return 2 * num_features if _check_bool("affine", affine) else 0


# --- multiply-accumulates ------------------------------------------------------------------------


def conv_macs(
    in_channels: int,
    out_channels: int,
    kernel_size: IntPair,
    output_size: IntPair,
    groups: int = 1,
) -> int:
    """MACs of a 2-D convolution for one image: H_out * W_out * d * (k*k*p/groups).

    Every output value is a dot product of length k*k*p/groups; bias additions are not counted.
    """
    in_channels, out_channels, groups = _check_groups(in_channels, out_channels, groups)
    kh, kw = pair("kernel_size", kernel_size)
    ho, wo = pair("output_size", output_size)
    return ho * wo * out_channels * kh * kw * (in_channels // groups)


def conv_transpose_macs(
    in_channels: int,
    out_channels: int,
    kernel_size: IntPair,
    input_size: IntPair,
    groups: int = 1,
) -> int:
    """MACs of a transposed convolution, counted on the *input* grid: C_in * (C_out/g) * k*k * H*W.

    Each input value is multiplied by a k x k x (C_out/g) slice of the weights and accumulated into
    the output, whatever the stride; counting on the output grid would count the zeros that a
    stride inserts between input values.
    """
    in_channels, out_channels, groups = _check_groups(in_channels, out_channels, groups)
    kh, kw = pair("kernel_size", kernel_size)
    hi, wi = pair("input_size", input_size)
    return hi * wi * in_channels * kh * kw * (out_channels // groups)


def linear_macs(in_features: int, out_features: int, positions: int = 1) -> int:
    """MACs of a fully connected layer applied at `positions` places (1 for a flat vector)."""
    in_features = _check_int("in_features", in_features, 1)
    out_features = _check_int("out_features", out_features, 1)
    positions = _check_int("positions", positions, 1)
    return in_features * out_features * positions


# --- receptive field -----------------------------------------------------------------------------


def _layer(i: int, layer: Sequence[int]) -> tuple[int, int, int]:
    if not isinstance(layer, Sequence) or len(layer) not in (2, 3):
        raise ValueError(f"layers[{i}] must be (kernel_size, stride[, dilation]), got {layer!r}")
    k = _check_int(f"layers[{i}] kernel_size", layer[0], 1)
    s = _check_int(f"layers[{i}] stride", layer[1], 1)
    d = _check_int(f"layers[{i}] dilation", layer[2], 1) if len(layer) == 3 else 1
    return k, s, d


def receptive_field_steps(layers: Sequence[Sequence[int]]) -> list[tuple[int, int]]:
    """(receptive field, jump) after each layer of a stack of (kernel_size, stride[, dilation]).

    The jump j is the distance, in input pixels, between neighbouring outputs of a layer. A layer
    with kernel k and dilation D widens the field by D(k-1) of its own input steps:
    r_l = r_{l-1} + D(k-1) * j_{l-1},  j_l = j_{l-1} * s,  starting from r_0 = j_0 = 1.
    """
    if isinstance(layers, str | bytes) or not isinstance(layers, Sequence):
        raise ValueError(
            f"layers must be a sequence of (kernel_size, stride) pairs, got {layers!r}"
        )
    r, j, steps = 1, 1, []
    for i, layer in enumerate(layers):
        k, s, d = _layer(i, layer)
        r, j = r + d * (k - 1) * j, j * s
        steps.append((r, j))
    return steps


def receptive_field(layers: Sequence[Sequence[int]]) -> int:
    """Side of the input region that one output value of the stack depends on.

    >>> receptive_field([(3, 1), (3, 1)])  # two stacked 3x3 convolutions see 5x5
    5
    >>> receptive_field([(3, 1), (2, 2), (3, 1)])  # conv, 2x2 pool, conv
    8
    """
    steps = receptive_field_steps(layers)
    return steps[-1][0] if steps else 1

"""The function tasks: one `Task` entry per task, in `FUNCTION_TASKS`.

An entry says everything about a task: the student's function's name, how to draw one random case,
how to compute the right result, the aten operators the function must not use, whether it may run
autograd, and how many cases a check draws. The judge reads the entry to draw and judge the cases;
the kernel is sent the cases and the limits and only calls the student's function.

A case is the keyword arguments of the student's function as plain data, with tensors as a shape
and a flat list of values (`_decode` makes them torch tensors). A new function task is one new entry
in `FUNCTION_TASKS` (and, usually, a case generator and a reference function above it). The
compute answers' tasks are in `cnncourse.grading.answers`; `cnncourse.grading.catalogue` holds
both, as `TASKS`, which is what the judge reads.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

__all__ = ["Task", "FUNCTION_TASKS", "SLIDES_X", "SLIDES_W", "first_wrong"]


def aten_ops(pattern: str) -> frozenset[str]:
    """Every aten operator of this PyTorch whose name matches `pattern` (a regular expression).

    Read from PyTorch's registry of operators (``torch._C._dispatch_get_all_op_names``), not
    typed here: every name of the same operation is caught, the back-end variants included
    (``mkldnn_convolution``, ``_slow_conv2d_forward``, ``cudnn_convolution``...), and those a
    later PyTorch adds.
    """
    import torch

    names = {n.split("::", 1)[1].split(".", 1)[0] for n in torch._C._dispatch_get_all_op_names()}
    return frozenset(n for n in names if re.search(pattern, n))


# Convolution by any name (1-D, 2-D, 3-D, transposed, depthwise, dilated, each back end's), the
# sliding window as an operator (im2col, Tensor.unfold) and the FFT (convolution by transform).
CONV_OPS = aten_ops(r"conv(?!ert)|im2col|col2im|^unfold|fft")
# Pooling by any name (max, average, adaptive, fractional, 1-D, 2-D, 3-D, each back end's).
POOL_OPS = CONV_OPS | aten_ops(r"pool")
# a gradient "from scratch" must not call the backward operators that autograd would call: the
# patterns above include them (convolution_backward, max_pool2d_with_indices_backward, ...)
CONV_GRAD_OPS = CONV_OPS
POOL_GRAD_OPS = POOL_OPS
# The slides' 7x7 input (row by row) and 3x3 filter: the first visible case of conv2d.basic.
SLIDES_X = [float(c) for c in "2222333101111011330001132003113200313320033332003"]
SLIDES_W = [-1.0, 0.5, 1.0, -1.0, 0.0, 0.0, 0.0, 0.0, 0.5]
SLIDES = {"x": {"shape": [1, 1, 7, 7], "values": SLIDES_X},
          "weight": {"shape": [1, 1, 3, 3], "values": SLIDES_W}}  # fmt: skip


@dataclass(frozen=True)
class Task:
    """One function task: the student's function, its cases, its reference and its limits."""

    function: str  # the name of the student's function (the messages use it)
    cases: Callable[[random.Random], dict]  # one random case: the function's keyword arguments
    reference: Callable[[dict], Any]  # the right result of one case (an int, a list, a tensor)
    forbidden: frozenset[str] = frozenset()  # aten operators the function must not call
    autograd: bool = True  # False: the function must not run a backward pass (a gradient task)
    fixed: tuple[dict, ...] = ()  # visible cases shown first, before the drawn ones
    visible: int = 6  # cases per visible check (a fixed seed: the same cases every time)
    hidden: int = 40  # cases per hidden check (a fresh seed each time)
    rtol: float = 1e-4  # a tensor value b is right within atol + rtol * |b|
    atol: float = 1e-4
    answer: bool = False  # a compute answer: its messages never show an expected value
    # a task's own comparison, where a tensor or a value is not the whole result (a module task's
    # outputs and parameter count): (result, reference, show) -> what is wrong in words, or None;
    # `show` says whether the message may show the expected value (a visible case of a function)
    compare: Callable[[dict, Any, bool], str | None] | None = None

    @property
    def guarded(self) -> bool:
        """Whether the kernel runs the function under the dispatch guard (slower: fewer cases)."""
        return bool(self.forbidden) or not self.autograd


def _t(r: random.Random, *shape: int) -> dict:
    """A random tensor, as shape and flat values: multiples of 1/4 in [-2, 2], exact in float32."""
    return {"shape": list(shape), "values": [r.randint(-8, 8) / 4 for _ in range(math.prod(shape))]}


def _distinct(r: random.Random, *shape: int) -> dict:
    """A random tensor of distinct multiples of 1/4 (no ties anywhere), exact in float32."""
    size = math.prod(shape)
    values = r.sample(range(-4 * size, 4 * size), size)
    return {"shape": list(shape), "values": [v / 4 for v in values]}


def first_wrong(
    values: list[float], expected: list[float], shape: list[int], atol: float, rtol: float
) -> tuple[int, list[int], float, float] | None:
    """Where flat `values` differ from `expected` (value b is right within atol + rtol * |b|):
    (how many are wrong, the index of the first in `shape`, its value, the expected one)."""
    bad = [
        i
        for i, (a, b) in enumerate(zip(values, expected, strict=True))
        if not abs(a - b) <= atol + rtol * abs(b)
    ]
    if not bad:
        return None
    index, rest = [], bad[0]
    for dim in reversed(shape):
        index, rest = [rest % dim, *index], rest // dim
    return len(bad), index, values[bad[0]], expected[bad[0]]


def _decode(case: dict, dtype: Any) -> dict[str, Any]:
    """A case's keyword arguments, with its tensors made into torch tensors of `dtype`."""
    import torch

    def tensor(v: dict) -> Any:
        return torch.tensor(v["values"], dtype=dtype).reshape(v["shape"])

    return {k: tensor(v) if isinstance(v, dict) else v for k, v in case.items()}


# --- cases ---------------------------------------------------------------------------------------


def _conv_setting(r: random.Random, plain: bool, strided: bool) -> tuple:
    """Sizes of a random convolution: (n, cin, cout, h, w, kh, kw, stride, padding)."""
    n, cin, cout = (1, 1, 1) if plain else (r.randint(1, 2), r.randint(1, 3), r.randint(1, 3))
    kh = r.randint(1, 4)
    kw = kh if plain or r.random() < 0.6 else r.randint(1, 4)
    s, p = (r.randint(1, 3), r.randint(0, 2)) if strided else (1, 0)
    h, w = r.randint(max(kh - 2 * p, 1), 8), r.randint(max(kw - 2 * p, 1), 8)
    return n, cin, cout, h, w, kh, kw, s, p


def _conv2d_case(r: random.Random, plain: bool = False, strided: bool = False) -> dict:
    n, cin, cout, h, w, kh, kw, s, p = _conv_setting(r, plain, strided)
    case = {"x": _t(r, n, cin, h, w), "weight": _t(r, cout, cin, kh, kw)}
    if not plain:
        case["bias"] = _t(r, cout) if r.random() < 0.7 else None
    return {**case, "stride": s, "padding": p} if strided else case


def _conv2d_input_grad_case(r: random.Random) -> dict:
    """The gradient of a random strided, padded convolution's output, and the sizes to undo."""
    n, cin, cout, h, w, kh, kw, s, p = _conv_setting(r, plain=False, strided=True)
    h_out, w_out = (h + 2 * p - kh) // s + 1, (w + 2 * p - kw) // s + 1
    return {
        "grad_out": _t(r, n, cout, h_out, w_out),
        "weight": _t(r, cout, cin, kh, kw),
        "input_size": [h, w],  # with stride > 1 several input sizes give the same output size
        "stride": s,
        "padding": p,
    }


def _pool_case(r: random.Random) -> dict:
    n, c, k = r.randint(1, 2), r.randint(1, 3), r.randint(1, 3)
    s = r.choice([None, None, 1, 2, 3])
    return {"x": _t(r, n, c, r.randint(k, 9), r.randint(k, 9)), "kernel_size": k, "stride": s}


def _global_pool_case(r: random.Random) -> dict:
    n, c, _ = r.randint(1, 2), r.randint(1, 3), r.randint(1, 3)  # as _pool_case draws (unused k)
    return {"x": _t(r, n, c, r.randint(1, 7), r.randint(1, 7))}


def _max_pool2d_backward_case(r: random.Random) -> dict:
    """Distinct input values, so that every window has one maximum: no ties to break."""
    n, c, k = r.randint(1, 2), r.randint(1, 3), r.randint(1, 3)
    s = r.choice([None, 1, 2, 2, 3])  # stride 1 or 2 < k: windows overlap, gradients add up
    h, w = r.randint(k, 9), r.randint(k, 9)
    h_out, w_out = (h - k) // (s or k) + 1, (w - k) // (s or k) + 1
    return {
        "x": _distinct(r, n, c, h, w),
        "grad_out": _t(r, n, c, h_out, w_out),
        "kernel_size": k,
        "stride": s,
    }


def _output_size_case(r: random.Random) -> dict:
    while True:
        n, k, s, p, d = (r.randint(lo, hi) for lo, hi in ((1, 64), (1, 11), (1, 4), (0, 3), (1, 3)))
        if d * (k - 1) + 1 <= n + 2 * p:
            return {"size": n, "kernel_size": k, "stride": s, "padding": p, "dilation": d}


def _receptive_field_case(r: random.Random) -> dict:
    return {"layers": [[r.randint(1, 7), r.randint(1, 2)] for _ in range(r.randint(1, 6))]}


def _conv_stack_case(r: random.Random, macs: bool = False) -> dict:
    """A random conv stack: [kernel, filters] per layer, or [kernel, filters, stride, padding]."""
    size = first = r.randint(8, 64)
    layers = []
    for _ in range(r.randint(1, 5)):
        k, d, s = r.choice([1, 3, 5, 7]), r.randint(1, 128), r.randint(1, 2)
        p = r.randint(0, k // 2)
        if not macs:
            layers.append([k, d])
        elif k <= size + 2 * p:
            layers.append([k, d, s, p])
            size = (size + 2 * p - k) // s + 1
    case = {"in_channels": r.randint(1, 64), "layers": layers or [[1, 8, 1, 0]]}
    return {**case, "size": first} if macs else case


# --- references: torch's operators (and autograd), or the formulas of cnncourse.counting ---------


def _torch(case: dict) -> tuple[Any, Any, dict]:
    import torch
    import torch.nn.functional as F

    return torch, F, _decode(case, torch.float64)


def _conv2d(case: dict) -> Any:
    _, F, a = _torch(case)
    return F.conv2d(a["x"], a["weight"], a.get("bias"), a.get("stride", 1), a.get("padding", 0))


def _conv2d_input_grad(case: dict) -> Any:
    """Autograd's gradient of sum(grad_out * conv2d(x, weight)) with respect to x."""
    torch, F, a = _torch(case)
    n, c_in = a["grad_out"].shape[0], a["weight"].shape[1]
    x = torch.zeros(n, c_in, *case["input_size"], dtype=torch.float64, requires_grad=True)
    out = F.conv2d(x, a["weight"], stride=a["stride"], padding=a["padding"])
    return torch.autograd.grad(out, x, a["grad_out"])[0]


def _max_pool2d_backward(case: dict) -> Any:
    """Autograd's gradient of sum(grad_out * max_pool2d(x)) with respect to x."""
    torch, F, a = _torch(case)
    x = a["x"].requires_grad_()
    out = F.max_pool2d(x, a["kernel_size"], a["stride"])
    return torch.autograd.grad(out, x, a["grad_out"])[0]


def _pool(case: dict, kind: str) -> Any:
    _, F, a = _torch(case)
    pool = F.max_pool2d if kind == "max" else F.avg_pool2d
    return pool(a["x"], a["kernel_size"], a["stride"])


def _global_avg_pool2d(case: dict) -> Any:
    _, F, a = _torch(case)
    return F.adaptive_avg_pool2d(a["x"], 1).flatten(1)


def _output_size(case: dict) -> int:
    from cnncourse.counting import conv_output_size

    return conv_output_size(**case)


def _receptive_field(case: dict) -> int:
    from cnncourse.counting import receptive_field

    return receptive_field([tuple(layer) for layer in case["layers"]])


def _count_conv(case: dict, macs: bool = False) -> list[int]:
    from cnncourse import counting as c

    p, size, out = case["in_channels"], case.get("size"), []
    for k, d, *stride_padding in case["layers"]:
        if macs:
            size = c.conv_output_size(size, k, *stride_padding)
        out.append(c.conv_macs(p, d, k, size) if macs else c.conv_params(p, d, k))
        p = d
    return out


# --- the catalogue -------------------------------------------------------------------------------

# From-scratch tasks run guarded, which slows every tensor operation: fewer, small cases.
_SCRATCH = {"visible": 4, "hidden": 12}
FUNCTION_TASKS: dict[str, Task] = {
    "output_size": Task("output_size", _output_size_case, _output_size),
    "conv2d.basic": Task(
        "conv2d", partial(_conv2d_case, plain=True), _conv2d, CONV_OPS, fixed=(SLIDES,), **_SCRATCH
    ),
    "conv2d.channels": Task("conv2d", _conv2d_case, _conv2d, CONV_OPS, **_SCRATCH),
    "conv2d.stride_padding": Task(
        "conv2d", partial(_conv2d_case, strided=True), _conv2d, CONV_OPS, **_SCRATCH
    ),
    "conv2d_input_grad": Task(
        "conv2d_input_grad",
        _conv2d_input_grad_case,
        _conv2d_input_grad,
        CONV_GRAD_OPS,
        autograd=False,
        **_SCRATCH,
    ),
    "count_conv_params": Task("count_conv_params", _conv_stack_case, _count_conv),
    "count_conv_macs": Task(
        "count_conv_macs", partial(_conv_stack_case, macs=True), partial(_count_conv, macs=True)
    ),
    "max_pool2d": Task("max_pool2d", _pool_case, partial(_pool, kind="max"), POOL_OPS, **_SCRATCH),
    "avg_pool2d": Task("avg_pool2d", _pool_case, partial(_pool, kind="avg"), POOL_OPS, **_SCRATCH),
    "global_avg_pool2d": Task(
        "global_avg_pool2d", _global_pool_case, _global_avg_pool2d, POOL_OPS, **_SCRATCH
    ),
    "max_pool2d_backward": Task(
        "max_pool2d_backward",
        _max_pool2d_backward_case,
        _max_pool2d_backward,
        POOL_GRAD_OPS,
        autograd=False,
        **_SCRATCH,
    ),
    "receptive_field": Task("receptive_field", _receptive_field_case, _receptive_field),
}

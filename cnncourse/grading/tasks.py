"""The task catalogue: each function task's random cases and its reference results.

A case is the keyword arguments of the student's function as plain data, with tensors as a shape
and a flat list of values (`_decode` makes them torch tensors). The judge draws the cases
(`_make_case`) and computes the right results (`_reference`); the kernel only decodes them to call
the student's function. A new function task needs its entry in `TASKS`, its cases and its reference.
"""

from __future__ import annotations

import math
import random
from typing import Any

CONV_OPS = frozenset({"convolution", "_convolution", "conv_tbc", "im2col", "unfold"})
POOL_OPS = CONV_OPS | {"max_pool2d", "max_pool2d_with_indices", "avg_pool2d", "adaptive_max_pool2d"}
# task -> (the student's function, aten operators it must not use); cases: `_make_case`
TASKS: dict[str, tuple[str, frozenset[str]]] = {
    "output_size": ("output_size", frozenset()),
    "conv2d.basic": ("conv2d", CONV_OPS),
    "conv2d.channels": ("conv2d", CONV_OPS),
    "conv2d.stride_padding": ("conv2d", CONV_OPS),
    "count_conv_params": ("count_conv_params", frozenset()),
    "count_conv_macs": ("count_conv_macs", frozenset()),
    "max_pool2d": ("max_pool2d", POOL_OPS),
    "avg_pool2d": ("avg_pool2d", POOL_OPS),
    "global_avg_pool2d": ("global_avg_pool2d", POOL_OPS),
    "receptive_field": ("receptive_field", frozenset()),
}
# The slides' 7x7 input (row by row) and 3x3 filter: the first visible case of conv2d.basic.
SLIDES_X = [float(c) for c in "2222333101111011330001132003113200313320033332003"]
SLIDES_W = [-1.0, 0.5, 1.0, -1.0, 0.0, 0.0, 0.0, 0.0, 0.5]
SLIDES = {"x": {"shape": [1, 1, 7, 7], "values": SLIDES_X},
          "weight": {"shape": [1, 1, 3, 3], "values": SLIDES_W}}  # fmt: skip


def _t(r: random.Random, *shape: int) -> dict:
    """A random tensor, as shape and flat values: multiples of 1/4 in [-2, 2], exact in float32."""
    return {"shape": list(shape), "values": [r.randint(-8, 8) / 4 for _ in range(math.prod(shape))]}


def _decode(case: dict, dtype: Any) -> dict[str, Any]:
    """A case's keyword arguments, with its tensors made into torch tensors of `dtype`."""
    import torch

    def tensor(v: dict) -> Any:
        return torch.tensor(v["values"], dtype=dtype).reshape(v["shape"])

    return {k: tensor(v) if isinstance(v, dict) else v for k, v in case.items()}


def _make_case(task: str, r: random.Random) -> dict:
    """One random case of `task`: the keyword arguments of the student's function."""
    if task.startswith("conv2d."):
        plain, strided = task == "conv2d.basic", task == "conv2d.stride_padding"
        n, cin, cout = (1, 1, 1) if plain else (r.randint(1, 2), r.randint(1, 3), r.randint(1, 3))
        kh = r.randint(1, 4)
        kw = kh if plain or r.random() < 0.6 else r.randint(1, 4)
        s, p = (r.randint(1, 3), r.randint(0, 2)) if strided else (1, 0)
        h, w = r.randint(max(kh - 2 * p, 1), 8), r.randint(max(kw - 2 * p, 1), 8)
        case = {"x": _t(r, n, cin, h, w), "weight": _t(r, cout, cin, kh, kw)}
        if not plain:
            case["bias"] = _t(r, cout) if r.random() < 0.7 else None
        return {**case, "stride": s, "padding": p} if strided else case
    if task.endswith("pool2d"):
        n, c, k = r.randint(1, 2), r.randint(1, 3), r.randint(1, 3)
        if task == "global_avg_pool2d":
            return {"x": _t(r, n, c, r.randint(1, 7), r.randint(1, 7))}
        s = r.choice([None, None, 1, 2, 3])
        return {"x": _t(r, n, c, r.randint(k, 9), r.randint(k, 9)), "kernel_size": k, "stride": s}
    if task == "output_size":
        while True:
            n, k, s, p, d = (
                r.randint(lo, hi) for lo, hi in ((1, 64), (1, 11), (1, 4), (0, 3), (1, 3))
            )
            if d * (k - 1) + 1 <= n + 2 * p:
                return {"size": n, "kernel_size": k, "stride": s, "padding": p, "dilation": d}
    if task == "receptive_field":
        return {"layers": [[r.randint(1, 7), r.randint(1, 2)] for _ in range(r.randint(1, 6))]}
    size = first = r.randint(8, 64)  # count_conv_params / count_conv_macs: a random conv stack
    layers = []
    for _ in range(r.randint(1, 5)):
        k, d, s = r.choice([1, 3, 5, 7]), r.randint(1, 128), r.randint(1, 2)
        p = r.randint(0, k // 2)
        if task == "count_conv_params":
            layers.append([k, d])
        elif k <= size + 2 * p:
            layers.append([k, d, s, p])
            size = (size + 2 * p - k) // s + 1
    case = {"in_channels": r.randint(1, 64), "layers": layers or [[1, 8, 1, 0]]}
    return {**case, "size": first} if task == "count_conv_macs" else case


def _reference(task: str, case: dict) -> Any:
    """The right result for one case: torch's operators, or the formulas of `cnncourse.counting`."""
    from cnncourse import counting as c

    if task == "output_size":
        return c.conv_output_size(**case)
    if task == "receptive_field":
        return c.receptive_field([tuple(layer) for layer in case["layers"]])
    if task.startswith("count_conv"):
        p, size, out = case["in_channels"], case.get("size"), []
        for k, d, *stride_padding in case["layers"]:
            if task == "count_conv_params":
                out.append(c.conv_params(p, d, k))
            else:
                size = c.conv_output_size(size, k, *stride_padding)
                out.append(c.conv_macs(p, d, k, size))
            p = d
        return out
    import torch
    import torch.nn.functional as F

    a = _decode(case, torch.float64)
    if task.startswith("conv2d"):
        return F.conv2d(a["x"], a["weight"], a.get("bias"), a.get("stride", 1), a.get("padding", 0))
    if task == "global_avg_pool2d":
        return F.adaptive_avg_pool2d(a["x"], 1).flatten(1)
    pool = F.max_pool2d if task == "max_pool2d" else F.avg_pool2d
    return pool(a["x"], a["kernel_size"], a["stride"])

"""Exercise 9, segmentation (FCN, U-Net): the compute answers (a transposed convolution's output
size, the sides and skip crops of U-Net's valid convolutions, FCN's upsampling factors and its
score grid) and the function tasks (a transposed convolution from scratch, U-Net's
crop-and-concatenate step, U-Net's border weight map).

References: `cnncourse.counting`'s formulas, the package's `UNet.output_size`, its `Up` block
(the crop and the concatenation, with the layers around them made identities) and
`cnncourse.losses.unet_weight_map`. The transposed convolution is checked against
`F.conv_transpose2d` under the dispatch guard that refuses every convolution operator
(`tasks.CONV_OPS`: transposed ones included, by all their names).

The function tasks' test cells call this module's `check_function`: the kernel's own check, with
the student's function run under a watch that refuses calls into cnncourse's code (its
``unet_weight_map`` or ``Up`` would otherwise pass as the student's work), and with the instance
map handed over as integers.
"""

from __future__ import annotations

import contextlib
import random
import sys
from collections.abc import Callable
from functools import cache, partial, wraps
from typing import Any

from cnncourse import counting
from cnncourse.grading import kernel
from cnncourse.grading.modules import answer
from cnncourse.grading.tasks import CONV_OPS, Task, _decode, _t

__all__ = ["EX09", "check_function"]

# taken at import (the notebooks' locked first cell), before any student code runs
_check, _setprofile, _getprofile = kernel.check_function, sys.setprofile, sys.getprofile

# --- compute answers ---------------------------------------------------------------------------


def _tconv_case(r: random.Random) -> dict:
    """A transposed convolution whose output has at least one value (PyTorch's rules)."""
    while True:
        n, k, s, p, d = r.randint(1, 64), r.randint(1, 7), r.randint(1, 4), r.randint(0, 3), 1
        if r.random() < 0.4:
            d = r.randint(2, 3)
        case = {"n": n, "k": k, "s": s, "p": p, "output_padding": r.randrange(max(s, d)), "d": d}
        if (n - 1) * s - 2 * p + d * (k - 1) + case["output_padding"] + 1 >= 1:
            return case


def _tconv_size(a: dict) -> int:
    return counting.conv_transpose_output_size(
        a["n"], a["k"], a["s"], a["p"], a["output_padding"], a["d"]
    )


def _two_convs(side: int) -> int:
    """Two valid 3x3 convolutions."""
    return counting.conv_output_size(counting.conv_output_size(side, 3), 3)


@cache
def _unet(depth: int) -> Any:
    """The paper's U-Net (valid convolutions) with `depth` poolings, on the meta device (one per
    depth: its `output_size` is all the judge asks of it)."""
    import torch

    from cnncourse.models.unet import unet

    with torch.device("meta"):
        return unet(base_channels=1, depth=depth)


def _unet_case(r: random.Random) -> dict:
    """A valid tile: every pooling meets an even side. Built from the bottom up: the bottom level
    sees t pixels, and each level above sees 2 * (what the level below sees) + 4."""
    depth = r.randint(1, 5)
    n = r.randint(8, 40)  # t: at least 8, so that the expanding path's convolutions fit
    for _ in range(depth):
        n = 2 * n + 4
    return {"n": n, "depth": depth}


def _unet_walk(a: dict) -> tuple[list[int], list[int]]:
    """The contracting path's sides (each level's output, the bottom's last) and the crop per
    border of each skip (top level first), with `cnncourse.counting`."""
    sides = [_two_convs(a["n"])]
    for _ in range(a["depth"]):
        sides.append(_two_convs(counting.pool_output_size(sides[-1], 2)))
    crops, side = [], sides[-1]
    for skip in reversed(sides[:-1]):
        up = counting.conv_transpose_output_size(side, 2, stride=2)
        crops.append((skip - up) // 2)
        side = _two_convs(up)
    return sides, crops[::-1]


def _fcn_factors(a: dict) -> list[int]:
    """Scores of stride 2**pools; each skip fuses after a x2 upsampling; one last upsampling."""
    stride, factors = 2 ** a["pools"], []
    for _ in range(a["skips"]):
        factors.append(2)
        stride //= 2
    return [*factors, stride]


def _fcn_score_side(a: dict) -> int:
    """The side of FCN's score_fr for an n x n image: conv1_1 pads by 100, the pools round up,
    fc6 is a valid 7x7 convolution (`cnncourse.models.fcn`)."""
    from cnncourse.models.fcn import VGG16_CFG

    side = counting.conv_output_size(a["n"], 3, padding=100)
    for v in VGG16_CFG[1:]:
        if v == "M":
            side = counting.pool_output_size(side, 2, 2, ceil_mode=True)
        else:
            side = counting.conv_output_size(side, 3, padding=1)
    return counting.conv_output_size(side, 7)


ANSWERS: dict[str, Task] = {
    "tconv_size": answer(
        "tconv_size",
        {"n": 7, "k": 3, "s": 2, "p": 1, "output_padding": 1, "d": 1},
        _tconv_case,
        _tconv_size,
    ),
    "unet_sides": answer(
        "unet_sides", {"n": 572, "depth": 4}, _unet_case, lambda a: _unet_walk(a)[0]
    ),
    "unet_crops": answer(
        "unet_crops", {"n": 572, "depth": 4}, _unet_case, lambda a: _unet_walk(a)[1]
    ),
    "unet_output": answer(
        "unet_output",
        {"n": 572, "depth": 4},
        _unet_case,
        lambda a: _unet(a["depth"]).output_size(a["n"]),
    ),
    "fcn_factors": answer(
        "fcn_factors",
        {"pools": 5, "skips": 2},
        lambda r: (lambda p: {"pools": p, "skips": r.randint(0, p - 1)})(r.randint(1, 8)),
        _fcn_factors,
    ),
    "fcn_score_side": answer(
        "fcn_score_side", {"n": 500}, lambda r: {"n": r.randint(1, 1024)}, _fcn_score_side
    ),
}


# --- function tasks: cases and references ------------------------------------------------------


def _conv_transpose2d_case(r: random.Random, strided: bool) -> dict:
    """A small transposed convolution: weight (C_in, C_out, kh, kw), as F.conv_transpose2d's."""
    while True:
        n, c_in, c_out = r.randint(1, 2), r.randint(1, 3), r.randint(1, 3)
        h, w, kh = r.randint(1, 5), r.randint(1, 5), r.randint(1, 4)
        kw = kh if r.random() < 0.6 else r.randint(1, 4)
        s, p = (r.randint(1, 3), r.randint(0, 2)) if strided else (1, 0)
        if min((h - 1) * s + kh, (w - 1) * s + kw) - 2 * p >= 1:
            case = {"x": _t(r, n, c_in, h, w), "weight": _t(r, c_in, c_out, kh, kw)}
            return {**case, "stride": s, "padding": p} if strided else case


def _conv_transpose2d(case: dict) -> Any:
    import torch
    import torch.nn.functional as F

    a = _decode(case, torch.float64)
    return F.conv_transpose2d(
        a["x"], a["weight"], stride=a.get("stride", 1), padding=a.get("padding", 0)
    )


def _crop_case(r: random.Random) -> dict:
    """A skip at least as large as the upsampled map; odd and even differences, 0 included."""
    n, h, w = r.randint(1, 2), r.randint(1, 5), r.randint(1, 5)
    dh, dw = r.randint(0, 5), r.randint(0, 5)
    return {
        "skip": _t(r, n, r.randint(1, 3), h + dh, w + dw),
        "x": _t(r, n, r.randint(1, 3), h, w),
    }


def _crop_and_concat(case: dict) -> Any:
    """The package's `Up` block with its up-convolution and convolutions made identities."""
    import torch
    from torch import nn

    from cnncourse.models.unet import Up

    a = _decode(case, torch.float64)
    step = Up(2, 1, padding=False)
    step.up, step.conv = nn.Identity(), nn.Identity()
    with torch.no_grad():
        return step(a["x"], a["skip"])


def _instances(r: random.Random, h: int, w: int, count: int) -> list[int]:
    """An instance map (row by row): up to `count` rectangles of 1 to 3 by 1 to 4 pixels that
    do not overlap (they may touch), numbered 1, 2, ... in the order they were placed."""
    ids = [0] * (h * w)
    placed = 0
    for _ in range(40):
        if placed == count:
            break
        rh, rw = r.randint(1, 3), r.randint(1, 4)
        top, left = r.randint(0, h - rh), r.randint(0, w - rw)
        cells = [(top + i) * w + left + j for i in range(rh) for j in range(rw)]
        if all(ids[c] == 0 for c in cells):
            placed += 1
            for c in cells:
                ids[c] = placed
    return ids


def _weights_case(r: random.Random, balanced: bool) -> dict:
    h, w = r.randint(6, 10), r.randint(6, 10)
    ids = _instances(r, h, w, r.choice([1, 2, 3, 3, 4]))
    return {
        "instances": {"shape": [h, w], "values": [float(v) for v in ids]},
        "w0": round(r.uniform(1, 10), 2),
        "sigma": round(r.uniform(1, 5), 2),
        "class_balance": balanced,
    }


def _border_weight_map(case: dict) -> Any:
    """`cnncourse.losses.unet_weight_map` for the two classes background (0) and object (> 0)."""
    import torch

    from cnncourse.losses import unet_weight_map

    instances = _decode(case, torch.float64)["instances"].long()
    mask = (instances > 0).long()
    return unet_weight_map(
        mask, case["w0"], case["sigma"], instances, class_balance=case["class_balance"]
    )


# The paper's w0 = 10 and sigma = 5 first, on a 7x9 map with three objects, two of them close.
_PAPER_ROWS = ("110000000", "110002200", "000002200", "000000000", "033300000", "000000000",
               "000000000")  # fmt: skip
_PAPER_CASE = {
    "instances": {"shape": [7, 9], "values": [float(v) for row in _PAPER_ROWS for v in row]},
    "w0": 10.0,
    "sigma": 5.0,
}

# From-scratch tasks run guarded: few, small cases (as ex01's conv2d).
_SCRATCH = {"visible": 4, "hidden": 10}
FUNCTIONS: dict[str, Task] = {
    "conv_transpose2d.channels": Task(
        "conv_transpose2d",
        partial(_conv_transpose2d_case, strided=False),
        _conv_transpose2d,
        CONV_OPS,
        **_SCRATCH,
    ),
    "conv_transpose2d.stride_padding": Task(
        "conv_transpose2d",
        partial(_conv_transpose2d_case, strided=True),
        _conv_transpose2d,
        CONV_OPS,
        **_SCRATCH,
    ),
    "crop_and_concat": Task("crop_and_concat", _crop_case, _crop_and_concat, **_SCRATCH),
    "border_weights.plain": Task(
        "border_weight_map",
        partial(_weights_case, balanced=False),
        _border_weight_map,
        fixed=({**_PAPER_CASE, "class_balance": False},),
        **_SCRATCH,
    ),
    "border_weights.balanced": Task(
        "border_weight_map",
        partial(_weights_case, balanced=True),
        _border_weight_map,
        fixed=({**_PAPER_CASE, "class_balance": True},),
        **_SCRATCH,
    ),
}
EX09: dict[str, Task] = {f"ex09.{name}": task for name, task in {**ANSWERS, **FUNCTIONS}.items()}


# --- the kernel's side ---------------------------------------------------------------------------


class OwnWorkError(RuntimeError):
    """The student's function called cnncourse's own code."""


@contextlib.contextmanager
def _watch(seen: list[str]) -> Any:
    """Record the first Python call into cnncourse's code, other than the grading's own."""

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and not seen:
            module = frame.f_globals.get("__name__", "")
            if module.split(".")[0] == "cnncourse" and not module.startswith("cnncourse.grading"):
                seen.append(f"{module}.{frame.f_code.co_name}")

    previous = _getprofile()
    _setprofile(profile)
    try:
        yield
    finally:
        _setprofile(previous)


def check_function(task: str, func: Callable[..., Any], *, hidden: bool = False) -> None:
    """`cnncourse.grading.check_function`, with `func` watched: a result made by calling
    cnncourse's own code (``unet_weight_map``, ``Up``...) is refused, as the module tasks refuse
    cnncourse's modules. An instance map reaches `func` as an integer tensor."""
    if not callable(func):
        _check(task, func, hidden=hidden)  # its message: expected a function

    @wraps(func)
    def watched(**kwargs: Any) -> Any:
        if "instances" in kwargs:
            kwargs["instances"] = kwargs["instances"].long()
        seen: list[str] = []
        with _watch(seen):
            out = func(**kwargs)
        if seen:
            raise OwnWorkError(f"it calls cnncourse's own `{seen[0]}`: write it yourself")
        return out

    _check(task, watched, hidden=hidden)

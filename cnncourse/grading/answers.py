"""The compute answers' tasks: each answer is the student's function of the question's givens.

A compute question ("the output side of a 3x3 convolution on a 7x7 input") is answered by a
function whose keyword arguments are the question's givens, with the question's values as their
defaults (``def size_a(n=7, k=3): ...``). The judge checks it like an implementation task: the
visible case is the question itself (its givens, the only fixed case), a hidden check draws fresh
givens of the same kind, and the reference comes from `cnncourse.counting` (or torch), computed in
the judge. So a constant, a lookup table of the visible answers or a value found by looping the
visible check fails the hidden cases; only working that is right in general passes them. Every
answer has its own test cell, with its own points: one wrong answer costs only its own points.

Names: ``ex01.size_a`` is answer ``size_a`` of exercise 1. `cnncourse.grading.catalogue` merges
`ANSWERS` with the function tasks into `TASKS`.
"""

from __future__ import annotations

import random
from typing import Any

from cnncourse import counting
from cnncourse.grading.tasks import SLIDES_W, SLIDES_X, Task, _decode, _t

__all__ = ["ANSWERS"]

HIDDEN = 20  # hidden cases per answer: plain arithmetic, cheap


def _side_case(names: tuple[str, ...], r: random.Random) -> dict:
    """Random givens of an output-size question (n, k, and some of s, p, d, c): the filter fits."""
    while True:
        v = {"n": r.randint(1, 256), "k": r.randint(1, 11), "s": r.randint(1, 4)}
        v |= {"p": r.randint(0, 3), "d": r.randint(1, 4), "c": r.randint(1, 512)}
        p, d = (v["p"] if "p" in names else 0), (v["d"] if "d" in names else 1)
        if d * (v["k"] - 1) + 1 <= v["n"] + 2 * p:
            return {name: v[name] for name in names}


def _side(a: dict) -> int:
    return counting.conv_output_size(a["n"], a["k"], a.get("s", 1), a.get("p", 0), a.get("d", 1))


def _window_case(padded: bool, r: random.Random) -> dict:
    """A random 2-D input, a 3x3 filter and the centre (r, c) of an output value."""
    h, w = r.randint(3, 9), r.randint(3, 9)
    lo, hi = (0, 1) if padded else (1, 2)  # with a ring of zeros, every pixel can be a centre
    centre = {"r": r.randint(lo, h - hi), "c": r.randint(lo, w - hi)}
    return {"x": _t(r, h, w), "weight": _t(r, 3, 3), **centre}


def _window(kind: str, case: dict) -> float:
    """The output centred on pixel (r, c): "valid", "padded" (one ring of zeros), or "flipped"."""
    import torch

    a = _decode(case, torch.float64)
    x, weight, i, j = a["x"], a["weight"], a["r"], a["c"]
    if kind == "padded":
        x, i, j = torch.nn.functional.pad(x, (1, 1, 1, 1)), i + 1, j + 1
    if kind == "flipped":
        weight = weight.flip(0, 1)
    return float((weight * x[i - 1 : i + 2, j - 1 : j + 2]).sum())


def _conv_case(r: random.Random, size: bool = False) -> dict:
    """A random conv layer: k, p input channels, d filters (and n: the same size in and out)."""
    case = {"k": r.choice([1, 3, 5, 7]), "p": r.randint(1, 512), "d": r.randint(1, 512)}
    return {"n": r.randint(1, 64), **case} if size else case


def _stack_case(r: random.Random, size: bool = False) -> dict:
    """A random stack of [k, d] layers on p channels (n: stride 1, "same" padding, odd k)."""
    layers = [[r.choice([1, 3, 5, 7]), r.randint(1, 128)] for _ in range(r.randint(1, 5))]
    case = {"p": r.randint(1, 64), "layers": layers}
    return {"n": r.randint(1, 64), **case} if size else case


def _stack(case: dict, cost: int = 0) -> int:
    """The parameters (cost 0), the MACs (1) or the FLOPs (2) of a stack of layers."""
    p, total = case["p"], 0
    for k, d in case["layers"]:
        if cost:
            total += cost * counting.conv_macs(p, d, k, case["n"])
        else:
            total += counting.conv_params(p, d, k)
        p = d
    return total


def _draw(**ranges: tuple[int, int]) -> Any:
    """A case generator: each given drawn uniformly from its (low, high) range."""
    return lambda r: {name: r.randint(lo, hi) for name, (lo, hi) in ranges.items()}


def _pool_side_case(r: random.Random) -> dict:
    k = r.randint(1, 5)
    return {"n": r.randint(k, 128), "k": k, "s": r.randint(1, 4)}


def _answer(name: str, givens: dict, cases: Any, reference: Any) -> Task:
    return Task(name, cases, reference, fixed=(givens,), visible=1, hidden=HIDDEN, answer=True)


def _sides(**questions: dict) -> dict[str, Task]:
    return {
        name: _answer(name, q, lambda r, names=tuple(q): _side_case(names, r), _side)
        for name, q in questions.items()
    }


SLIDES_2D = {  # the slides' 7x7 input and 3x3 filter, as 2-D tensors
    "x": {"shape": [7, 7], "values": SLIDES_X},
    "weight": {"shape": [3, 3], "values": SLIDES_W},
}
NET = [[5, 8], [3, 16], [1, 32]]  # the slides' three layers: [kernel, filters]
_params = {"k": (1, 7), "p": (1, 512), "d": (1, 512)}
_WARM = (("warm_a", "valid", 3), ("warm_b", "padded", 6), ("warm_c", "flipped", 3))
_RF = {
    "rf_a": ({"k": 3}, lambda a: [(a["k"], 1)] * 2),
    "rf_b": ({"k": 3}, lambda a: [(a["k"], 1)] * 3),
    "rf_c": ({"k": 3, "pool": 2}, lambda a: [(a["k"], 1), (a["pool"], a["pool"]), (a["k"], 1)]),
    "rf_d": ({"k": 3, "s": 2}, lambda a: [(a["k"], a["s"])] * 3),
}

EX01 = {
    **_sides(
        size_a={"n": 7, "k": 3},
        size_b={"n": 7, "k": 3, "p": 1},
        size_c={"n": 6, "k": 3, "s": 2, "p": 1},
        size_d={"n": 32, "k": 5, "c": 3},
        size_e={"n": 224, "k": 7, "s": 2, "p": 3, "c": 3},
        size_f={"n": 32, "k": 3, "d": 2},
        size_g={"n": 28, "k": 5, "s": 3},
    ),
    **{
        name: _answer(
            name,
            {**SLIDES_2D, "r": rc, "c": rc},
            lambda r, padded=kind == "padded": _window_case(padded, r),
            lambda case, kind=kind: _window(kind, case),
        )
        for name, kind, rc in _WARM
    },
}
EX02 = {
    **{
        f"params_{i}": _answer(
            f"params_{i}", {"k": k, "p": p, "d": d}, _draw(**_params),
            lambda a: counting.conv_params(a["p"], a["d"], a["k"]),
        )
        for i, (k, p, d) in enumerate(((5, 3, 8), (3, 8, 16), (1, 16, 32)), start=1)
    },
    "params_total": _answer("params_total", {"p": 3, "layers": NET}, _stack_case, _stack),
    **{
        f"macs_{i}": _answer(
            f"macs_{i}", {"n": 32, "k": k, "p": p, "d": d}, lambda r: _conv_case(r, size=True),
            lambda a: counting.conv_macs(a["p"], a["d"], a["k"], a["n"]),
        )
        for i, (k, p, d) in enumerate(((5, 3, 8), (3, 8, 16), (1, 16, 32)), start=1)
    },
    "macs_total": _answer(
        "macs_total", {"n": 32, "p": 3, "layers": NET}, lambda r: _stack_case(r, size=True),
        lambda a: _stack(a, cost=1),
    ),
    "flops_total": _answer(
        "flops_total", {"n": 32, "p": 3, "layers": NET}, lambda r: _stack_case(r, size=True),
        lambda a: _stack(a, cost=2),
    ),
    "dense_params": _answer(
        "dense_params", {"inputs": 784, "units": 100}, _draw(inputs=(1, 4096), units=(1, 1024)),
        lambda a: counting.linear_params(a["inputs"], a["units"]),
    ),
    "dense_macs": _answer(
        "dense_macs", {"inputs": 784, "units": 100}, _draw(inputs=(1, 4096), units=(1, 1024)),
        lambda a: counting.linear_macs(a["inputs"], a["units"]),
    ),
    "conv_params": _answer(
        "conv_params", {"k": 3, "p": 1, "d": 100}, _draw(**_params),
        lambda a: counting.conv_params(a["p"], a["d"], a["k"]),
    ),
    "conv_macs": _answer(
        "conv_macs", {"n": 28, "k": 3, "p": 1, "d": 100}, lambda r: _conv_case(r, size=True),
        lambda a: counting.conv_macs(a["p"], a["d"], a["k"], a["n"]),
    ),
}  # fmt: skip
EX03 = {
    **{
        name: _answer(
            name, {"n": n, "k": k, "s": 2}, _pool_side_case,
            lambda a: counting.pool_output_size(a["n"], a["k"], a["s"]),
        )
        for name, n, k in (("pool_a", 32, 2), ("pool_b", 7, 3), ("pool_c", 112, 3))
    },
    "global_values": _answer(
        "global_values", {"h": 40, "w": 40, "c": 100}, _draw(h=(1, 64), w=(1, 64), c=(1, 512)),
        lambda a: a["c"],  # one value per channel
    ),
    "pool_params": _answer(
        "pool_params", {"k": 2, "c": 64}, _draw(k=(1, 7), c=(1, 512)),
        lambda a: 0,  # nothing to learn: the right answer is a constant here
    ),
    **_sides(strided_conv={"n": 32, "k": 3, "s": 2, "p": 1}),
    **{
        name: _answer(
            name, givens, _draw(**{g: (1, 11) if g == "k" else (1, 4) for g in givens}),
            lambda a, stack=stack: counting.receptive_field(stack(a)),
        )
        for name, (givens, stack) in _RF.items()
    },
}  # fmt: skip
ANSWERS: dict[str, Task] = {
    f"{ex}.{name}": task
    for ex, answers in (("ex01", EX01), ("ex02", EX02), ("ex03", EX03))
    for name, task in answers.items()
}

"""Exercise 5, Inception: the compute answers (the naive module's cost, the 1x1 bottleneck's
saving, on the slides' 28x28x256 and 28x28x192 examples) and the module tasks (the naive module
and the module with 1x1 reductions), judged against `cnncourse.models.inception_blocks`.

The modules are the 2015 paper's (figure 2): convolutions with biases and ReLUs, no batch norm,
the "5x5" branch a true 5x5. References are cnncourse's modules counted on the meta device.
"""

from __future__ import annotations

import random
from typing import Any

from cnncourse import counting
from cnncourse.grading.modules import answer, module_task, on_meta
from cnncourse.grading.tasks import Task

__all__ = ["EX05"]

NAIVE = ("c_in", "c1", "c3", "c5")
REDUCED = ("c_in", "c1", "r3", "c3", "r5", "c5", "pool_proj")


def _naive(a: dict) -> Any:
    from cnncourse.models.inception_blocks import NaiveInceptionModule

    return on_meta(NaiveInceptionModule, a["c_in"], a["c1"], a["c3"], a["c5"])


def _reduced(a: dict) -> Any:
    from cnncourse.models.inception_blocks import InceptionModule

    return on_meta(InceptionModule, *(a[g] for g in REDUCED))


def _params(module: Any) -> int:
    from cnncourse.profile import count_params

    return count_params(module)


def _macs(module: Any, a: dict) -> int:
    from cnncourse.profile import count_macs

    return count_macs(module, (a["c_in"], a["n"], a["n"]))


# --- compute answers ---------------------------------------------------------------------------


def _draw(names: tuple[str, ...], size: bool) -> Any:
    """Givens of a module: channels 1 to 512 (and the side n of its square input)."""

    def draw(r: random.Random) -> dict:
        case = {name: r.randint(1, 512) for name in names}
        return {"n": r.randint(1, 64), **case} if size else case

    return draw


def _5x5_case(reduced: bool, r: random.Random) -> dict:
    case = {"n": r.randint(1, 64), "c_in": r.randint(1, 512)}
    case |= {"r": r.randint(1, 64)} if reduced else {}
    return {**case, "c_out": r.randint(1, 512)}


def _5x5(a: dict) -> int:
    """A 5x5 conv c_in -> c_out that keeps the n x n side, after a 1x1 reduction to r if given."""
    if "r" not in a:
        return counting.conv_macs(a["c_in"], a["c_out"], 5, a["n"])
    return counting.conv_macs(a["c_in"], a["r"], 1, a["n"]) + counting.conv_macs(
        a["r"], a["c_out"], 5, a["n"]
    )


_NAIVE_GIVENS = {"c_in": 256, "c1": 128, "c3": 192, "c5": 96}
_REDUCED_GIVENS = {"c_in": 256, "c1": 128, "r3": 64, "c3": 192, "r5": 64, "c5": 96, "pool_proj": 64}
ANSWERS: dict[str, Task] = {
    "naive_channels": answer(
        "naive_channels",
        _NAIVE_GIVENS,
        _draw(NAIVE, False),
        lambda a: _naive(a).out_channels,
    ),
    "naive_params": answer(
        "naive_params", _NAIVE_GIVENS, _draw(NAIVE, False), lambda a: _params(_naive(a))
    ),
    "naive_macs": answer(
        "naive_macs",
        {"n": 28, **_NAIVE_GIVENS},
        _draw(NAIVE, True),
        lambda a: _macs(_naive(a), a),
    ),
    "direct_5x5_macs": answer(
        "direct_5x5_macs",
        {"n": 28, "c_in": 192, "c_out": 32},
        lambda r: _5x5_case(False, r),
        _5x5,
    ),
    "reduced_5x5_macs": answer(
        "reduced_5x5_macs",
        {"n": 28, "c_in": 192, "r": 16, "c_out": 32},
        lambda r: _5x5_case(True, r),
        _5x5,
    ),
    "module_channels": answer(
        "module_channels",
        {g: _REDUCED_GIVENS[g] for g in ("c1", "c3", "c5", "pool_proj")},
        _draw(("c1", "c3", "c5", "pool_proj"), False),
        lambda a: _reduced({"c_in": 1, "r3": 1, "r5": 1, **a}).out_channels,
    ),
    "module_params": answer(
        "module_params", _REDUCED_GIVENS, _draw(REDUCED, False), lambda a: _params(_reduced(a))
    ),
    "module_macs": answer(
        "module_macs",
        {"n": 28, **_REDUCED_GIVENS},
        _draw(REDUCED, True),
        lambda a: _macs(_reduced(a), a),
    ),
}


# --- module tasks ------------------------------------------------------------------------------


def _naive_config(r: random.Random) -> dict:
    names = ("in_channels", "ch1x1", "ch3x3", "ch5x5")
    return {name: r.randint(1, 5) for name in names}


def _reduced_config(r: random.Random) -> dict:
    names = ("in_channels", "ch1x1", "ch3x3red", "ch3x3", "ch5x5red", "ch5x5", "pool_proj")
    return {name: r.randint(1, 5) for name in names}


def _input(a: dict, r: random.Random) -> tuple[int, ...]:
    return (r.randint(1, 2), a["in_channels"], r.randint(2, 8), r.randint(2, 8))


def _naive_module(**kwargs: int) -> Any:
    from cnncourse.models.inception_blocks import NaiveInceptionModule

    return NaiveInceptionModule(**kwargs)


def _reduced_module(**kwargs: int) -> Any:
    from cnncourse.models.inception_blocks import InceptionModule

    return InceptionModule(**kwargs)


MODULES: dict[str, Task] = {
    "naive_inception": module_task(
        "NaiveInception",
        _naive_module,
        _naive_config,
        _input,
        fixed=({"in_channels": 4, "ch1x1": 2, "ch3x3": 3, "ch5x5": 2},),
    ),
    "inception": module_task(
        "Inception",
        _reduced_module,
        _reduced_config,
        _input,
        fixed=(
            {
                "in_channels": 6,
                "ch1x1": 2,
                "ch3x3red": 2,
                "ch3x3": 3,
                "ch5x5red": 1,
                "ch5x5": 2,
                "pool_proj": 2,
            },
        ),  # fmt: skip
    ),
}
EX05: dict[str, Task] = {f"ex05.{name}": task for name, task in {**ANSWERS, **MODULES}.items()}

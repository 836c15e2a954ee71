"""Exercise 7, DenseNet: the compute answers (the channels of a dense block and of a whole
DenseNet, a bottleneck dense layer's and a dense block's parameters and MACs, the values its
concatenated inputs hold) and the module tasks (`DenseLayer`, `DenseBlock` and `Transition`),
judged against `cnncourse.models.densenet`.

Dense layers are the bottleneck ones of DenseNet-B: BN-ReLU-1x1 conv to ``bn_size * k`` maps,
BN-ReLU-3x3 conv to ``k`` maps, no bias; a batch norm over c channels has 2c parameters, and MACs
count the convolutions only. References are cnncourse's modules on the meta device
(`cnncourse.profile`, and forward pre-hooks for the concatenations).
"""

from __future__ import annotations

import random
from typing import Any

from cnncourse.grading.modules import answer, module_task, on_meta
from cnncourse.grading.tasks import Task

__all__ = ["EX07"]

# DenseNet-121: growth rate 32, 64 channels into the first block, 6-12-24-16 layers, theta 0.5
K, C0, LAYERS, N = 32, 64, [6, 12, 24, 16], 56


def _layer(c_in: int, k: int, bn_size: int) -> Any:
    from cnncourse.models.densenet import DenseLayer

    return on_meta(DenseLayer, c_in, k, bn_size)


def _block(c0: int, n_layers: int, k: int, bn_size: int = 4) -> Any:
    from cnncourse.models.densenet import DenseBlock

    return on_meta(DenseBlock, n_layers, c0, k, bn_size)


def _params(module: Any) -> int:
    from cnncourse.profile import count_params

    return count_params(module)


def _macs(module: Any, size: tuple[int, ...]) -> int:
    from cnncourse.profile import count_macs

    return count_macs(module, size)


# --- compute answers ---------------------------------------------------------------------------


def _final_channels(a: dict) -> int:
    """The channels into the classifier of a DenseNet: its last block's output."""
    from cnncourse.models.densenet import DenseNet

    net = on_meta(
        DenseNet, a["k"], tuple(a["layers"]), a["c0"], compression=a["theta"], stem="cifar"
    )
    return net.classifier.in_features


def _concat_memory(a: dict) -> int:
    """Values (one image) of the inputs the dense layers receive: each a new concatenation."""
    import torch

    from cnncourse.models.densenet import DenseLayer

    block, sizes = _block(a["c0"], a["n_layers"], a["k"]), []
    for layer in block.modules():
        if isinstance(layer, DenseLayer):
            layer.register_forward_pre_hook(lambda m, args: sizes.append(args[0][0].numel()))
    with torch.no_grad():
        block.eval()(torch.empty(1, a["c0"], a["n"], a["n"], device="meta"))
    return sum(sizes)


def _draw(r: random.Random, *names: str) -> dict:
    """Random givens: c0, c_in, n_layers, k, bn_size, n, theta, layers (a whole net's)."""
    ranges = {"n": (1, 112), "c0": (1, 256), "c_in": (1, 1024), "n_layers": (1, 48),
              "k": (1, 64), "bn_size": (1, 4)}  # fmt: skip
    case = {name: r.randint(*ranges[name]) for name in names if name in ranges}
    if "layers" in names:  # 4 or more channels into the first block: theta * m >= 1 everywhere
        case["c0"] = r.randint(4, 128)
        case["layers"] = [r.randint(1, 32) for _ in range(r.randint(1, 4))]
    if "theta" in names:  # theta * m exact in binary: floor(theta * m) is unambiguous
        case["theta"] = r.choice([0.5, 0.5, 0.75, 1.0])
    return {name: case[name] for name in names}


ANSWERS: dict[str, Task] = {
    "block_channels": answer(
        "block_channels",
        {"c0": C0, "n_layers": 6, "k": K},
        lambda r: _draw(r, "c0", "n_layers", "k"),
        lambda a: _block(a["c0"], a["n_layers"], a["k"]).out_channels,
    ),
    "final_channels": answer(
        "final_channels",
        {"c0": C0, "layers": LAYERS, "k": K, "theta": 0.5},
        lambda r: _draw(r, "c0", "layers", "k", "theta"),
        _final_channels,
    ),
    "layer_params": answer(
        "layer_params",
        {"c_in": 128, "k": K, "bn_size": 4},
        lambda r: _draw(r, "c_in", "k", "bn_size"),
        lambda a: _params(_layer(a["c_in"], a["k"], a["bn_size"])),
    ),
    "layer_macs": answer(
        "layer_macs",
        {"n": 28, "c_in": 128, "k": K, "bn_size": 4},
        lambda r: _draw(r, "n", "c_in", "k", "bn_size"),
        lambda a: _macs(_layer(a["c_in"], a["k"], a["bn_size"]), (a["c_in"], a["n"], a["n"])),
    ),
    "block_params": answer(
        "block_params",
        {"c0": C0, "n_layers": 6, "k": K, "bn_size": 4},
        lambda r: _draw(r, "c0", "n_layers", "k", "bn_size"),
        lambda a: _params(_block(a["c0"], a["n_layers"], a["k"], a["bn_size"])),
    ),
    "block_macs": answer(
        "block_macs",
        {"n": N, "c0": C0, "n_layers": 6, "k": K, "bn_size": 4},
        lambda r: _draw(r, "n", "c0", "n_layers", "k", "bn_size"),
        lambda a: _macs(
            _block(a["c0"], a["n_layers"], a["k"], a["bn_size"]), (a["c0"], a["n"], a["n"])
        ),
    ),
    "concat_memory": answer(
        "concat_memory",
        {"n": N, "c0": C0, "n_layers": 6, "k": K},
        lambda r: _draw(r, "n", "c0", "n_layers", "k"),
        _concat_memory,
    ),
}


# --- module tasks --------------------------------------------------------------------------------


def _dense_layer(in_channels: int, growth_rate: int, bn_size: int = 4) -> Any:
    from cnncourse.models.densenet import DenseLayer

    return DenseLayer(in_channels, growth_rate, bn_size)


def _dense_block(num_layers: int, in_channels: int, growth_rate: int, bn_size: int = 4) -> Any:
    from cnncourse.models.densenet import DenseBlock

    return DenseBlock(num_layers, in_channels, growth_rate, bn_size)


def _transition(in_channels: int, out_channels: int) -> Any:
    from cnncourse.models.densenet import Transition

    return Transition(in_channels, out_channels)


def _input(a: dict, r: random.Random) -> tuple[int, ...]:
    """2 or 3 images (batch statistics need more than one value), sides 2 to 7 (odd and even)."""
    return (r.randint(2, 3), a["in_channels"], r.randint(2, 7), r.randint(2, 7))


MODULES: dict[str, Task] = {
    "dense_layer": module_task(
        "DenseLayer",
        _dense_layer,
        lambda r: {
            "in_channels": r.randint(1, 8),
            "growth_rate": r.randint(1, 4),
            "bn_size": r.randint(1, 4),
        },
        _input,
        fixed=(
            {"in_channels": 6, "growth_rate": 3, "bn_size": 4, "mode": "eval"},
            {"in_channels": 4, "growth_rate": 2, "bn_size": 2, "mode": "train"},
        ),
        train=0.3,
    ),
    "dense_block": module_task(
        "DenseBlock",
        _dense_block,
        lambda r: {
            "num_layers": r.randint(1, 4),
            "in_channels": r.randint(1, 6),
            "growth_rate": r.randint(1, 3),
            "bn_size": r.randint(1, 4),
        },
        _input,
        fixed=(
            {"num_layers": 3, "in_channels": 4, "growth_rate": 2, "bn_size": 4, "mode": "eval"},
            {"num_layers": 2, "in_channels": 3, "growth_rate": 3, "bn_size": 2, "mode": "train"},
        ),
        train=0.3,
    ),
    "transition": module_task(
        "Transition",
        _transition,
        lambda r: {"in_channels": r.randint(1, 8), "out_channels": r.randint(1, 8)},
        _input,
        fixed=(
            {"in_channels": 8, "out_channels": 4, "mode": "eval"},
            {"in_channels": 5, "out_channels": 2, "mode": "train"},
        ),
        train=0.3,
    ),
}
EX07: dict[str, Task] = {f"ex07.{name}": task for name, task in {**ANSWERS, **MODULES}.items()}

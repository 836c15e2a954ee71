"""Exercise 4, AlexNet and VGG: the compute answers (AlexNet's first layers, 3x3 stacks against
one large kernel, a VGG's parameters and MACs) and the module tasks (a VGG block and the builder
of a VGG's convolutional part from its configuration list), judged against `cnncourse.models.vgg`.

References are `cnncourse.counting`'s formulas, or cnncourse's modules counted on the meta device
(`cnncourse.profile`).
"""

from __future__ import annotations

import random
from typing import Any

from cnncourse import counting
from cnncourse.grading.modules import answer, module_task, on_meta
from cnncourse.grading.tasks import Task

__all__ = ["EX04", "VGG16"]

# VGG-16's configuration (the paper's column D): conv widths, "M" = 2x2 max pool
VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def _features(cfg: list, in_channels: int = 3, batch_norm: bool = False) -> Any:
    from cnncourse.models.vgg import make_layers

    return make_layers(cfg, batch_norm=batch_norm, in_channels=in_channels)


def _vgg(cfg: list, num_classes: int) -> Any:
    from cnncourse.models.vgg import VGG

    return on_meta(lambda: VGG(_features(cfg), num_classes=num_classes, init_weights=False))


def _count(cfg: list, in_channels: int, n: int | None = None) -> int:
    from cnncourse.profile import count_macs, count_params

    features = on_meta(_features, cfg, in_channels)
    return count_params(features) if n is None else count_macs(features, (in_channels, n, n))


# --- compute answers ---------------------------------------------------------------------------


def _side_case(r: random.Random) -> dict:
    while True:
        case = {"n": r.randint(8, 512), "k": r.randint(1, 11), "s": r.randint(1, 4)}
        case["p"] = r.randint(0, 3)
        if case["k"] <= case["n"] + 2 * case["p"]:
            return case


def _cfg_case(r: random.Random, size: bool = False, classes: bool = False) -> dict:
    """A random VGG-like configuration: 1 to 5 blocks of 1 to 4 convs, each block then "M"."""
    n = r.randint(32, 256)
    blocks = r.randint(1, min(5, n.bit_length() - 1))  # every pool halves n: it stays >= 1
    cfg: list[int | str] = []
    for _ in range(blocks):
        width = r.randint(1, 512)
        cfg += [width] * r.randint(1, 4) + ["M"]
    if classes:
        return {"cfg": cfg, "num_classes": r.randint(1, 2000)}
    case = {"cfg": cfg, "in_channels": r.randint(1, 4)}
    return {**case, "n": n} if size else case


ANSWERS: dict[str, Task] = {
    "size_conv1": answer(
        "size_conv1",
        {"n": 227, "k": 11, "s": 4, "p": 0},
        _side_case,
        lambda a: counting.conv_output_size(a["n"], a["k"], a["s"], a["p"]),
    ),
    "params_conv1": answer(
        "params_conv1",
        {"k": 11, "p": 3, "d": 96},
        lambda r: {"k": r.randint(1, 11), "p": r.randint(1, 512), "d": r.randint(1, 512)},
        lambda a: counting.conv_params(a["p"], a["d"], a["k"]),
    ),
    "macs_conv1": answer(
        "macs_conv1",
        {"n": 55, "k": 11, "p": 3, "d": 96},
        lambda r: {  # odd kernels, as AlexNet's: an output of side n is a "same" conv's on n
            "n": r.randint(1, 224),
            "k": r.choice([1, 3, 5, 7, 9, 11]),
            "p": r.randint(1, 512),
            "d": r.randint(1, 512),
        },  # fmt: skip
        lambda a: counting.conv_macs(a["p"], a["d"], a["k"], a["n"]),
    ),
    "fc6_params": answer(
        "fc6_params",
        {"c": 256, "side": 6, "units": 4096},
        lambda r: {"c": r.randint(1, 512), "side": r.randint(1, 13), "units": r.randint(1, 4096)},
        lambda a: counting.linear_params(a["c"] * a["side"] ** 2, a["units"]),
    ),
    "stack_weights": answer(
        "stack_weights",
        {"c": 64, "n_layers": 3},
        lambda r: {"c": r.randint(1, 512), "n_layers": r.randint(1, 6)},
        lambda a: a["n_layers"] * counting.conv_params(a["c"], a["c"], 3, bias=False),
    ),
    "big_weights": answer(
        "big_weights",
        {"c": 64, "n_layers": 3},
        lambda r: {"c": r.randint(1, 512), "n_layers": r.randint(1, 6)},
        # the receptive field of n 3x3 convs (stride 1) is 2n + 1: one kernel that large
        lambda a: counting.conv_params(
            a["c"], a["c"], counting.receptive_field([(3, 1)] * a["n_layers"]), bias=False
        ),
    ),
    "features_params": answer(
        "features_params",
        {"cfg": VGG16, "in_channels": 3},
        _cfg_case,
        lambda a: _count(a["cfg"], a["in_channels"]),
    ),
    "features_macs": answer(
        "features_macs",
        {"cfg": VGG16, "in_channels": 3, "n": 224},
        lambda r: _cfg_case(r, size=True),
        lambda a: _count(a["cfg"], a["in_channels"], a["n"]),
    ),
    "vgg_params": answer(
        "vgg_params",
        {"cfg": VGG16, "num_classes": 1000},
        lambda r: _cfg_case(r, classes=True),
        lambda a: _count_params(_vgg(a["cfg"], a["num_classes"])),
    ),
}


def _count_params(module: Any) -> int:
    from cnncourse.profile import count_params

    return count_params(module)


# --- module tasks ------------------------------------------------------------------------------


def _block_config(r: random.Random) -> dict:
    return {
        "in_channels": r.randint(1, 4),
        "out_channels": r.randint(1, 6),
        "num_convs": r.randint(1, 3),
    }


def _cfg_config(batch_norm: bool, r: random.Random) -> dict:
    """1 to 6 entries, at least one conv, at most two pools (so a side of 4 or more survives)."""
    while True:
        cfg = [r.choice([r.randint(1, 6), r.randint(1, 6), "M"]) for _ in range(r.randint(1, 6))]
        if cfg.count("M") <= 2 and any(v != "M" for v in cfg):
            return {"cfg": cfg, "in_channels": r.randint(1, 4), "batch_norm": batch_norm}


def _input(a: dict, r: random.Random) -> tuple[int, ...]:
    """2 or 3 images, sides from 2^pools (each pool halves, rounding down) to 2^pools + 5."""
    pools = a["cfg"].count("M") if "cfg" in a else 1
    side = lambda: r.randint(2**pools, 2**pools + 5)  # noqa: E731
    return (r.randint(2, 3), a["in_channels"], side(), side())


def _block(in_channels: int, out_channels: int, num_convs: int) -> Any:
    return _features([out_channels] * num_convs + ["M"], in_channels)


MODULES: dict[str, Task] = {
    "vgg_block": module_task(
        "vgg_block",
        _block,
        _block_config,
        _input,
        fixed=(
            {"in_channels": 3, "out_channels": 4, "num_convs": 2},
            {"in_channels": 2, "out_channels": 3, "num_convs": 1},
        ),
    ),
    "make_features": module_task(
        "make_features",
        _features,
        lambda r: _cfg_config(False, r),
        _input,
        fixed=({"cfg": [4, "M", 6, 6, "M"], "in_channels": 3, "batch_norm": False},),
    ),
    "make_features_bn": module_task(
        "make_features",
        _features,
        lambda r: _cfg_config(True, r),
        _input,
        fixed=(
            {"cfg": [4, "M", 6], "in_channels": 3, "batch_norm": True, "mode": "eval"},
            {"cfg": [4, 4, "M"], "in_channels": 2, "batch_norm": True, "mode": "train"},
        ),
        train=0.3,
    ),
}
EX04: dict[str, Task] = {f"ex04.{name}": task for name, task in {**ANSWERS, **MODULES}.items()}

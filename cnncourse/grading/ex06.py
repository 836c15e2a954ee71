"""Exercise 6, ResNet: the compute answers (a block's and a network's size and cost, the stages'
sides) and the module tasks (`BasicBlock` and `Bottleneck`, with an identity shortcut and with a
1x1 projection), judged against `cnncourse.models.resnet_blocks` and `cnncourse.models.resnet`.

The blocks are option B's (the paper's ImageNet nets, torchvision): the identity where the block
keeps the shape, a 1x1 conv + batch norm (``downsample``) where it does not; the bottleneck strides
its 3x3 conv (v1.5). References are counted on the meta device (`cnncourse.profile`).
"""

from __future__ import annotations

import random
from typing import Any

from cnncourse import counting
from cnncourse.grading.modules import answer, module_task, on_meta
from cnncourse.grading.tasks import Task

__all__ = ["EX06"]


def _block(kind: str, in_channels: int, out_channels: int, stride: int = 1) -> Any:
    """cnncourse's block with option B's shortcut (None where the shape is kept)."""
    from cnncourse.models import resnet_blocks as rb

    block = rb.BasicBlock if kind == "basic" else rb.Bottleneck
    down = rb.make_shortcut("B", in_channels, out_channels, stride)
    return block(in_channels, out_channels, stride, down)


def _resnet(layers: list[int], bottleneck: bool, num_classes: int = 1000) -> Any:
    from cnncourse.models import resnet_blocks as rb
    from cnncourse.models.resnet import ResNet

    block = rb.Bottleneck if bottleneck else rb.BasicBlock
    return on_meta(ResNet, block, tuple(layers), num_classes)


def _params(module: Any) -> int:
    from cnncourse.profile import count_params

    return count_params(module)


def _macs(module: Any, size: tuple[int, ...]) -> int:
    from cnncourse.profile import count_macs

    return count_macs(module, size)


# --- compute answers ---------------------------------------------------------------------------


def _block_case(kind: str, size: bool, r: random.Random) -> dict:
    """A random block: the shape kept (identity shortcut) 4 times in 10, else a projection."""
    c_in = r.randint(1, 512)
    if r.random() < 0.4:
        c_out, stride = c_in if kind == "basic" else 4 * r.randint(1, 128), 1
        c_in = c_out
    else:
        c_out, stride = (r.randint(1, 512) if kind == "basic" else 4 * r.randint(1, 128)), 2
    case = {"c_in": c_in, "c_out": c_out, "stride": stride}
    return {"n": r.randint(1, 112), **case} if size else case


def _block_params(kind: str, a: dict) -> int:
    return _params(on_meta(_block, kind, a["c_in"], a["c_out"], a["stride"]))


def _block_macs(kind: str, a: dict) -> int:
    block = on_meta(_block, kind, a["c_in"], a["c_out"], a["stride"])
    return _macs(block, (a["c_in"], a["n"], a["n"]))


def _layers_case(macs: bool, r: random.Random) -> dict:
    case = {"layers": [r.randint(1, 4) for _ in range(4)], "bottleneck": r.random() < 0.5}
    if macs:
        return {**case, "n": r.randint(32, 320)}
    return {**case, "num_classes": r.randint(1, 2000)}


def _stage_sides(a: dict) -> list[int]:
    """Sides after layer1..layer4: conv1 (7x7, stride 2, padding 3), max pool (3, 2, 1), then
    stride 1, 2, 2, 2 (each stage's first block: its 3x3 conv, padding 1, and its 1x1 shortcut
    give the same side)."""
    side = counting.conv_output_size(a["n"], 7, 2, 3)
    side = counting.pool_output_size(side, 3, 2, 1)
    sides = [side]
    for _ in range(3):
        sides.append(counting.conv_output_size(sides[-1], 3, 2, 1))
    return sides


ANSWERS: dict[str, Task] = {
    "basic_params": answer(
        "basic_params",
        {"c_in": 64, "c_out": 128, "stride": 2},
        lambda r: _block_case("basic", False, r),
        lambda a: _block_params("basic", a),
    ),
    "basic_macs": answer(
        "basic_macs",
        {"n": 56, "c_in": 64, "c_out": 128, "stride": 2},
        lambda r: _block_case("basic", True, r),
        lambda a: _block_macs("basic", a),
    ),
    "bottleneck_params": answer(
        "bottleneck_params",
        {"c_in": 256, "c_out": 512, "stride": 2},
        lambda r: _block_case("bottleneck", False, r),
        lambda a: _block_params("bottleneck", a),
    ),
    "bottleneck_macs": answer(
        "bottleneck_macs",
        {"n": 56, "c_in": 256, "c_out": 512, "stride": 2},
        lambda r: _block_case("bottleneck", True, r),
        lambda a: _block_macs("bottleneck", a),
    ),
    "stage_sides": answer(
        "stage_sides", {"n": 224}, lambda r: {"n": r.randint(32, 512)}, _stage_sides
    ),
    "resnet_params": answer(
        "resnet_params",
        {"layers": [2, 2, 2, 2], "bottleneck": False, "num_classes": 1000},
        lambda r: _layers_case(False, r),
        lambda a: _params(_resnet(a["layers"], a["bottleneck"], a["num_classes"])),
    ),
    "resnet_macs": answer(
        "resnet_macs",
        {"layers": [3, 4, 6, 3], "bottleneck": True, "n": 224},
        lambda r: _layers_case(True, r),
        lambda a: _macs(_resnet(a["layers"], a["bottleneck"]), (3, a["n"], a["n"])),
    ),
}


# --- module tasks --------------------------------------------------------------------------------


def _identity(kind: str, r: random.Random) -> dict:
    c = r.randint(1, 6) if kind == "basic" else 4 * r.randint(1, 2)
    return {"in_channels": c, "out_channels": c, "stride": 1}


def _projection(kind: str, r: random.Random) -> dict:
    """A block that changes the shape: a stride of 2, other channels, or both."""
    while True:
        c_in, stride = r.randint(1, 6), r.choice([1, 2, 2])
        c_out = r.randint(1, 8) if kind == "basic" else 4 * r.randint(1, 2)
        if stride == 2 or c_out != c_in:
            return {"in_channels": c_in, "out_channels": c_out, "stride": stride}


def _input(a: dict, r: random.Random) -> tuple[int, ...]:
    """2 or 3 images (batch statistics need more than one value), sides 3 to 7 (odd and even)."""
    return (r.randint(2, 3), a["in_channels"], r.randint(3, 7), r.randint(3, 7))


def _task(kind: str, shortcut: str) -> Task:
    function = "BasicBlock" if kind == "basic" else "Bottleneck"
    c = 4 if kind == "basic" else 8
    fixed = (
        ({"in_channels": c, "out_channels": c, "stride": 1, "mode": "eval"},)
        if shortcut == "identity"
        else (
            {"in_channels": c, "out_channels": 2 * c, "stride": 2, "mode": "eval"},
            {"in_channels": c, "out_channels": 2 * c, "stride": 1, "mode": "eval"},
        )
    )
    draw = _identity if shortcut == "identity" else _projection
    return module_task(
        function,
        lambda **kw: _block(kind, **kw),
        lambda r: draw(kind, r),
        _input,
        fixed=(*fixed, {**fixed[0], "mode": "train"}),
        train=0.3,
    )


MODULES: dict[str, Task] = {
    f"{name}.{shortcut}": _task(kind, shortcut)
    for kind, name in (("basic", "basic_block"), ("bottleneck", "bottleneck"))
    for shortcut in ("identity", "projection")
}
EX06: dict[str, Task] = {f"ex06.{name}": task for name, task in {**ANSWERS, **MODULES}.items()}

"""Reference implementations of the course's architectures, one family per file.

Names follow torchvision's where torchvision has the model (`resnet50`, `vgg16_bn`, `densenet121`,
`googlenet`, `inception_v3`, `mobilenet_v2`), so its `state_dict` loads with `strict=True`; the
papers' variants carry a suffix (`alexnet_paper`, `googlenet_paper`, ...). Blocks shared by
two files of a family live in their own module (`resnet_blocks`, `inception_blocks`), which
declares no models.

>>> from cnncourse.models import get_model
>>> model = get_model("resnet20")  # CIFAR ResNet, 10 classes
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from types import ModuleType

from torch import nn

from . import (
    alexnet,
    densenet,
    fcn,
    googlenet,
    inception_v3,
    lenet,
    mobilenet,
    resnet,
    resnet_cifar,
    unet,
    vgg,
    xception,
)

FAMILIES = (
    lenet,
    alexnet,
    vgg,
    googlenet,
    inception_v3,
    resnet,
    resnet_cifar,
    densenet,
    mobilenet,
    xception,
    fcn,
    unet,
)


def merge_registries(families: Iterable[ModuleType]) -> dict[str, Callable[..., nn.Module]]:
    """One dict of the families' `MODELS`, in order. A name that two families declare is an
    error: merging silently would let the later family's builder shadow the earlier one's."""
    merged: dict[str, Callable[..., nn.Module]] = {}
    owners: dict[str, str] = {}
    for family in families:
        for name, builder in family.MODELS.items():
            if name in merged:
                raise ValueError(
                    f"model name {name!r} is declared twice, by {owners[name]} and by "
                    f"{family.__name__}: rename one of them"
                )
            merged[name], owners[name] = builder, family.__name__
    return merged


#: Every model builder by name; each family module declares its own `MODELS`.
MODELS: dict[str, Callable[..., nn.Module]] = merge_registries(FAMILIES)


#: The input (C, H, W) each model is designed for and counted at; 3 x 224 x 224 unless listed.
INPUT_SIZES: dict[str, tuple[int, int, int]] = {
    "lenet5": (1, 32, 32),
    "lenet5_paper": (1, 32, 32),
    "alexnet_paper": (3, 227, 227),
    "inception_v3": (3, 299, 299),
    "xception": (3, 299, 299),
    "fcn32s": (3, 500, 500),  # PASCAL VOC images are at most 500 x 500
    "fcn16s": (3, 500, 500),
    "fcn8s": (3, 500, 500),
    "unet": (1, 572, 572),  # the paper's tile size
    "unet_padded": (1, 572, 572),
    **{
        name: (3, 32, 32)
        for name in MODELS
        if name.endswith("_cifar")
        or name.startswith(("densenet_bc", "plain"))
        or name in ("resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "resnet1202")
    },
    "plain18": (3, 224, 224),
    "plain34": (3, 224, 224),
}


def input_size(name: str) -> tuple[int, int, int]:
    """The (C, H, W) input that model `name` is designed for (see `INPUT_SIZES`)."""
    if name not in MODELS:
        raise ValueError(f"unknown model name={name!r} (see cnncourse.models.MODELS)")
    return INPUT_SIZES.get(name, (3, 224, 224))


def get_model(name: str, **kwargs: object) -> nn.Module:
    """Build a model by name, randomly initialised (keyword arguments go to its builder)."""
    if name not in MODELS:
        close = difflib.get_close_matches(name, MODELS, n=5, cutoff=0.6)
        hint = f"; did you mean one of {close}?" if close else ""
        raise ValueError(f"unknown model name={name!r}{hint} (see cnncourse.models.MODELS)")
    return MODELS[name](**kwargs)


__all__ = ["MODELS", "FAMILIES", "INPUT_SIZES", "get_model", "input_size", "merge_registries"]

"""Reference implementations of the course's architectures, one family per file.

Names follow torchvision's where torchvision has the model (`resnet50`, `vgg16_bn`, `densenet121`,
`googlenet`, `inception_v3`, `mobilenet_v2`), so its `state_dict` loads with `strict=True`; the
papers' variants carry a suffix (`alexnet_paper`, `googlenet_paper`, ...).

>>> from cnncourse.models import get_model
>>> model = get_model("resnet20")  # CIFAR ResNet, 10 classes
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

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

#: Every model builder by name; each family module declares its own `MODELS`.
MODELS: dict[str, Callable[..., nn.Module]] = {
    name: builder for family in FAMILIES for name, builder in family.MODELS.items()
}


def get_model(name: str, **kwargs: object) -> nn.Module:
    """Build a model by name, randomly initialised (keyword arguments go to its builder)."""
    if name not in MODELS:
        close = difflib.get_close_matches(name, MODELS, n=5, cutoff=0.6)
        hint = f"; did you mean one of {close}?" if close else ""
        raise ValueError(f"unknown model name={name!r}{hint} (see cnncourse.models.MODELS)")
    return MODELS[name](**kwargs)


__all__ = ["MODELS", "FAMILIES", "get_model"]

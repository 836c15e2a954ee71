"""Reference implementations of the course's architectures, one family per file.

Names follow torchvision's where torchvision has the model (`resnet50`, `vgg16_bn`, `densenet121`,
`googlenet`, `inception_v3`, `mobilenet_v2`), so its `state_dict` loads with `strict=True`; the
papers' variants carry a suffix (`alexnet_paper`, `googlenet_paper`, ...). Blocks shared by
two files of a family live in their own module (`resnet_blocks`, `inception_blocks`), which
declares no models; `spec` defines the record every family declares per model.

>>> from cnncourse.models import SPECS, get_model
>>> model = get_model("resnet20")  # CIFAR ResNet, 10 classes
>>> SPECS["resnet20"].input_size  # what the course knows about it: its record (`ModelSpec`)
(3, 32, 32)
"""

from __future__ import annotations

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
from .spec import ModelSpec, did_you_mean

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


def merge_registries(families: Iterable[ModuleType]) -> dict[str, ModelSpec]:
    """One dict of the families' records (``SPECS``), by name, in order. A name that two families
    declare is an error: merging silently would let the later family's model shadow the earlier
    one's."""
    merged: dict[str, ModelSpec] = {}
    owners: dict[str, str] = {}
    for family in families:
        for spec in family.SPECS:
            if spec.name in merged:
                raise ValueError(
                    f"model name {spec.name!r} is declared twice, by {owners[spec.name]} and by "
                    f"{family.__name__}: rename one of them"
                )
            merged[spec.name], owners[spec.name] = spec, family.__name__
    return merged


#: Every model's record by name (`ModelSpec`); each family module declares its own ``SPECS``.
SPECS: dict[str, ModelSpec] = merge_registries(FAMILIES)

#: Every model builder by name, from the records.
MODELS: dict[str, Callable[..., nn.Module]] = {name: s.builder for name, s in SPECS.items()}

#: The input (C, H, W) each model is designed for and counted at, from the records.
INPUT_SIZES: dict[str, tuple[int, int, int]] = {name: s.input_size for name, s in SPECS.items()}


def get_spec(name: str) -> ModelSpec:
    """The record of model `name`; a ValueError suggesting close names if there is none."""
    if name not in SPECS:
        hint = did_you_mean(name, SPECS)
        raise ValueError(f"unknown model name={name!r}{hint} (see cnncourse.models.MODELS)")
    return SPECS[name]


def input_size(name: str) -> tuple[int, int, int]:
    """The (C, H, W) input that model `name` is designed for (its record's ``input_size``)."""
    return get_spec(name).input_size


def get_model(name: str, **kwargs: object) -> nn.Module:
    """Build a model by name, randomly initialised (keyword arguments go to its builder)."""
    return get_spec(name).build(**kwargs)


def model_for_data(name: str, in_channels: int, num_classes: int, **kwargs: object) -> nn.Module:
    """Model `name` built for a dataset: `num_classes`, and `in_channels` when its record says
    the builder takes it. A model with fixed input channels (VGG's, DenseNet's: RGB only) is
    built as it is; whether the data fits is then `cnncourse.train.check_model_data`'s call.
    """
    spec = get_spec(name)
    if spec.in_channels:
        kwargs["in_channels"] = in_channels
    return spec.build(num_classes=num_classes, **kwargs)


__all__ = [
    "ModelSpec",
    "SPECS",
    "MODELS",
    "FAMILIES",
    "INPUT_SIZES",
    "get_spec",
    "get_model",
    "input_size",
    "model_for_data",
    "merge_registries",
]

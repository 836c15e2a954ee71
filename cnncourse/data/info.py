"""What each dataset is: task, input shape, number of classes and the statistics to normalise it.

`DATASETS` is the single source of truth that models and the trainer read: a model for "cifar10"
takes `DATASETS["cifar10"].in_channels` channels and predicts `num_classes` scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

__all__ = ["DatasetInfo", "DATASETS", "SHAPE_NAMES", "SEG_SHAPE_NAMES", "PET_CLASSES"]

# The synthetic shapes, in label order (label k draws SHAPE_NAMES[k]); see `synthetic.py`.
SHAPE_NAMES = (
    "disk",
    "square",
    "triangle",
    "plus",
    "ring",
    "h-stripes",
    "v-stripes",
    "checker",
    "diamond",
    "cross",
)
# Segmentation uses the five plain geometric shapes: telling a disk pixel from a square pixel needs
# context (the pixel itself is just "coloured"), which is what the encoder of a U-Net provides.
SEG_SHAPE_NAMES = SHAPE_NAMES[:5]
# Oxford-IIIT Pet trimaps, remapped (see `real.py`): trimap 2 -> 0, trimap 1 -> 1, trimap 3 -> 2.
PET_CLASSES = ("background", "pet", "border")


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a dataset.

    `image_size` is (height, width) of the items `get_dataset` returns with default arguments.
    `mean` and `std` are per channel, on pixel values scaled to [0, 1]: the normalised image is
    (x - mean) / std. `classes` names the labels (for classification) or the mask values (for
    segmentation; 0 is background).
    """

    name: str
    task: Literal["classification", "segmentation"]
    in_channels: int
    image_size: tuple[int, int]
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...] = ()

    def _stats(self, like: Tensor) -> tuple[Tensor, Tensor]:
        shape = (self.in_channels, 1, 1)  # broadcasts over (..., C, H, W)
        mean = torch.tensor(self.mean, dtype=like.dtype, device=like.device).view(shape)
        std = torch.tensor(self.std, dtype=like.dtype, device=like.device).view(shape)
        return mean, std

    def normalize(self, images: Tensor) -> Tensor:
        """[0, 1] pixels (..., C, H, W) -> zero mean, unit variance per channel."""
        mean, std = self._stats(images)
        return (images - mean) / std

    def denormalize(self, images: Tensor) -> Tensor:
        """The inverse of `normalize`: back to [0, 1] pixels, e.g. to plot an item."""
        mean, std = self._stats(images)
        return images * std + mean


_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)

_CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")  # fmt: skip
_FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                    "Sneaker", "Bag", "Ankle boot")  # fmt: skip
_CLS, _SEG = "classification", "segmentation"

DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in [
        # Real datasets: mean/std over all training pixels (the usual published values).
        DatasetInfo("mnist", _CLS, in_channels=1, image_size=(28, 28), num_classes=10,
                    mean=(0.1307,), std=(0.3081,), classes=tuple("0123456789")),
        DatasetInfo("fashion_mnist", _CLS, in_channels=1, image_size=(28, 28), num_classes=10,
                    mean=(0.2860,), std=(0.3530,), classes=_FASHION_CLASSES),
        # NOTE: the std often quoted for CIFAR-10, (0.2023, 0.1994, 0.2010), is the mean of
        # per-image stds; normalisation needs the std over all pixels, the one below.
        DatasetInfo("cifar10", _CLS, in_channels=3, image_size=(32, 32), num_classes=10,
                    mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616),
                    classes=_CIFAR10_CLASSES),
        # Pet photos are ImageNet-like, and pretrained backbones expect ImageNet statistics.
        DatasetInfo("oxford_pet", _SEG, in_channels=3, image_size=(128, 128), num_classes=3,
                    mean=_IMAGENET_MEAN, std=_IMAGENET_STD, classes=PET_CLASSES),
        # Synthetic: mean 0.5 by symmetry (uniform random colours); std measured over 100,000
        # generated images (tests/test_data.py re-checks both on a fresh sample).
        DatasetInfo("shapes", _CLS, in_channels=3, image_size=(32, 32),
                    num_classes=len(SHAPE_NAMES), mean=(0.5,) * 3, std=(0.296,) * 3,
                    classes=SHAPE_NAMES),
        DatasetInfo("shapes_seg", _SEG, in_channels=3, image_size=(64, 64),
                    num_classes=1 + len(SEG_SHAPE_NAMES), mean=(0.5,) * 3, std=(0.296,) * 3,
                    classes=("background", *SEG_SHAPE_NAMES)),
    ]
}  # fmt: skip

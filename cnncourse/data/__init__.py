"""Datasets: real ones through torchvision, synthetic ones made offline, and fast batches.

    from cnncourse.data import DATASETS, get_dataset, to_tensors, DeviceLoader

    train = get_dataset("shapes", "train")           # synthetic: no download, CPU-friendly
    x, y = to_tensors(train)                         # (10000, 3, 32, 32) float32, (10000,) long
    for images, labels in DeviceLoader(x, y, batch_size=128, augment=True, device="cuda"):
        ...

Items are (image, target): a normalised float tensor (C, H, W) and an int label (classification)
or a long mask (H, W) (segmentation). `DATASETS[name]` gives channels, size, classes and the
normalisation statistics.

- `info.py`: `DatasetInfo` and `DATASETS`;
- `real.py`: MNIST, Fashion-MNIST, CIFAR-10, Oxford-IIIT Pet (segmentation) via torchvision;
- `seeding.py`: seeds derived from (seed, split) or (seed, epoch);
- `synthetic.py`: "shapes" and "shapes_seg", generated with tensor ops from a seed;
- `tensors.py`: `to_tensors`, a whole dataset as two tensors;
- `device.py`: `DeviceLoader`, batches and augmentation on the device (airbench style).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from .device import DeviceLoader, crop_flip
from .info import DATASETS, PET_CLASSES, SEG_SHAPE_NAMES, SHAPE_NAMES, DatasetInfo
from .real import load_real, trimap_to_mask
from .synthetic import SPLITS, make_shapes, make_shapes_seg
from .tensors import TensorImageDataset, to_tensors

__all__ = [
    "DATASETS",
    "DatasetInfo",
    "DeviceLoader",
    "TensorImageDataset",
    "get_dataset",
    "to_tensors",
    "make_shapes",
    "make_shapes_seg",
    "crop_flip",
    "trimap_to_mask",
    "SHAPE_NAMES",
    "SEG_SHAPE_NAMES",
    "PET_CLASSES",
]

_SYNTHETIC = {"shapes": make_shapes, "shapes_seg": make_shapes_seg}


def get_dataset(
    name: str,
    split: str = "train",
    root: str | Path = "data",
    download: bool = False,
    **kwargs: Any,
) -> Dataset:
    """The dataset `name`, one of `DATASETS`: "mnist", "fashion_mnist", "cifar10", "oxford_pet",
    "shapes", "shapes_seg".

    split: "train" or "test" (for Oxford-IIIT Pet, "train" is its "trainval" list).
    root, download: where the real datasets live; `download=True` lets torchvision fetch what is
    missing. Without it, missing files raise FileNotFoundError naming `root`.
    kwargs:
    - every dataset: `normalize=True` (False: pixels in [0, 1], e.g. for plotting), `n` (the
      number of items; for a real dataset, its first n, as a `Subset`);
    - "oxford_pet": `image_size=128` (int or (h, w));
    - "shapes", "shapes_seg": `n`, `image_size`, `seed`, `noise`, ... (see `make_shapes`,
      `make_shapes_seg`). The synthetic datasets ignore `root` and `download`; "test" uses a
      different seed from "train", so the two splits never share images.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(sorted(DATASETS))}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    if name in _SYNTHETIC:
        normalize = kwargs.pop("normalize", True)
        images, targets = _SYNTHETIC[name](split=split, **kwargs)
        if normalize:
            images = DATASETS[name].normalize(images)
        return TensorImageDataset(images, targets)
    return load_real(name, split, Path(root).expanduser(), download, **kwargs)

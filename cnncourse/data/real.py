"""The real datasets, read by torchvision's own dataset classes from their usual on-disk layout.

    root/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte      (+ the .gz they came from)
    root/FashionMNIST/raw/... (same names)
    root/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}   (pickled numpy arrays)
    root/oxford-iiit-pet/images/<id>.jpg, annotations/trimaps/<id>.png,
                         annotations/{trainval,test}.txt

What torchvision checks before it reads (torchvision 0.17 .. 0.2x):
- MNIST, Fashion-MNIST: that the four *decompressed* idx files exist (no checksum). The .gz files
  alone are not enough; `download=True` decompresses them without downloading when their md5
  matches the official archives.
- CIFAR-10: the md5 of all six batch files and of batches.meta, for either split. A modified or
  truncated file reads as "not found or corrupted".
- Oxford-IIIT Pet: only that images/ and annotations/ are folders.
`download=True` fetches only what is missing or fails its md5; every archive is checked by md5.

We add to torchvision: a normalised float tensor instead of a PIL image, an error that says where
the files were expected, and, for the pets, a fixed-size image and a class mask from the trimap.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset, Subset
from torchvision import datasets
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from cnncourse.counting import pair

from .info import DATASETS, DatasetInfo

__all__ = ["ToNormalizedTensor", "PetSegmentationTransform", "trimap_to_mask", "load_real"]


class ToNormalizedTensor:
    """PIL image -> float tensor (C, H, W), pixels scaled to [0, 1] then (x - mean) / std.

    `ToTensor` + `Normalize` in one picklable object, so that `to_tensors` can recognise it and
    apply the same arithmetic to a whole uint8 array at once.
    """

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        self.mean, self.std = tuple(mean), tuple(std)

    def from_uint8(self, pixels: Tensor) -> Tensor:
        """uint8 (..., C, H, W) -> normalised float32 (..., C, H, W)."""
        mean = torch.tensor(self.mean).view(-1, 1, 1)
        std = torch.tensor(self.std).view(-1, 1, 1)
        return (pixels.float() / 255 - mean) / std

    def __call__(self, image: Image.Image) -> Tensor:
        return self.from_uint8(TF.pil_to_tensor(image))  # (C, H, W)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(mean={self.mean}, std={self.std})"


# Oxford-IIIT Pet trimap values: 1 = pet, 2 = background, 3 = border ("not classified": the
# uncertain band around the outline). We make background 0, as in every other mask here:
#   trimap 2 (background) -> 0,   trimap 1 (pet) -> 1,   trimap 3 (border) -> 2.
# To ignore the border in the loss instead, use nn.CrossEntropyLoss(ignore_index=2).
_TRIMAP_LUT = torch.tensor([-1, 1, 0, 2])  # index = trimap value; -1 = invalid


def trimap_to_mask(trimap: Tensor) -> Tensor:
    """Oxford pet trimap (H, W) with values {1, 2, 3} -> long mask {0: bg, 1: pet, 2: border}."""
    trimap = trimap.long()
    if trimap.numel() and (trimap.min() < 1 or trimap.max() > 3):
        bad = trimap[(trimap < 1) | (trimap > 3)].unique().tolist()
        raise ValueError(f"a trimap holds only 1, 2 and 3; found {bad}")
    return _TRIMAP_LUT[trimap]


class PetSegmentationTransform:
    """(PIL photo, PIL trimap) -> (normalised image (3, h, w), mask (h, w) long).

    Both are resized to `size` = (h, w), ignoring the aspect ratio: the mask is squashed exactly
    like the photo, so they stay aligned. The photo is resized bilinearly with antialiasing; the
    mask with nearest-neighbour (NEAREST_EXACT: pixel centres line up with the bilinear grid), so
    it keeps only values that exist.
    """

    def __init__(self, size: tuple[int, int], to_tensor: ToNormalizedTensor) -> None:
        self.size, self.to_tensor = size, to_tensor

    def __call__(self, image: Image.Image, trimap: Image.Image) -> tuple[Tensor, Tensor]:
        pixels = TF.pil_to_tensor(image)  # (3, H, W) uint8
        trimap_t = TF.pil_to_tensor(trimap)  # (1, H, W) uint8
        if tuple(pixels.shape[1:]) != self.size:
            pixels = TF.resize(pixels, list(self.size), InterpolationMode.BILINEAR, antialias=True)
            trimap_t = TF.resize(trimap_t, list(self.size), InterpolationMode.NEAREST_EXACT)
        return self.to_tensor.from_uint8(pixels), trimap_to_mask(trimap_t[0])


_EXPECTED = {  # where torchvision looks, relative to root
    "mnist": "MNIST/raw/",
    "fashion_mnist": "FashionMNIST/raw/",
    "cifar10": "cifar-10-batches-py/",
    "oxford_pet": "oxford-iiit-pet/",
}


def _not_found(info: DatasetInfo, root: Path, err: Exception) -> FileNotFoundError:
    where = root / _EXPECTED[info.name]
    return FileNotFoundError(
        f"dataset {info.name!r} not found under root={str(root)!r}: torchvision looked in "
        f"{str(where)!r} and said: {err}. Pass download=True to download it there (files "
        f"already present and intact are not downloaded again), or pass the root folder that "
        f"holds {_EXPECTED[info.name]!r}."
    )


def _open(
    name: str, train: bool, root: Path, download: bool, to_tensor: ToNormalizedTensor, size: tuple
) -> Dataset:
    """torchvision's dataset class for `name`, with our transforms."""
    if name == "oxford_pet":
        return datasets.OxfordIIITPet(
            root,
            split="trainval" if train else "test",
            target_types="segmentation",
            transforms=PetSegmentationTransform(size, to_tensor),
            download=download,
        )
    cls = {"mnist": datasets.MNIST, "fashion_mnist": datasets.FashionMNIST}.get(
        name, datasets.CIFAR10
    )
    return cls(root, train=train, transform=to_tensor, download=download)


def load_real(
    name: str,
    split: str,
    root: Path,
    download: bool,
    normalize: bool = True,
    image_size: int | tuple[int, int] | None = None,
    n: int | None = None,
) -> Dataset:
    """The torchvision dataset `name` for `split` ("train" or "test"), items as tensors.

    `image_size` applies to "oxford_pet" only (default 128 x 128). `n` keeps the first n items
    (all if there are fewer): a quick subset for CPU runs, as for the synthetic datasets.
    """
    info = DATASETS[name]
    channels = info.in_channels
    to_tensor = (
        ToNormalizedTensor(info.mean, info.std)
        if normalize
        else ToNormalizedTensor((0.0,) * channels, (1.0,) * channels)
    )
    if image_size is not None and name != "oxford_pet":
        raise TypeError(f"image_size is only for 'oxford_pet'; {name!r} is {info.image_size}")
    if n is not None and n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    size = pair("image_size", image_size if image_size is not None else info.image_size)
    try:
        dataset = _open(name, split == "train", root, download, to_tensor, size)
    except RuntimeError as err:
        # torchvision says "Dataset not found [or corrupted]. You can use download=True ..."
        if download or "not found" not in str(err).lower():
            raise
        raise _not_found(info, root, err) from err
    return dataset if n is None else Subset(dataset, range(min(n, len(dataset))))

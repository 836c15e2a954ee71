"""Whole datasets as two tensors: what `DeviceLoader` needs, small enough for every dataset here.

CIFAR-10's 50,000 training images are 50,000 x 3 x 32 x 32 float32 = 614 MB; MNIST's 60,000 are
188 MB. Holding them as one tensor (on the GPU if there is one) replaces a per-item Python loop, PIL
conversions and worker processes by a few indexing operations per batch.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset
from torchvision import datasets
from tqdm.auto import tqdm

from .real import ToNormalizedTensor

__all__ = ["TensorImageDataset", "to_tensors"]


class TensorImageDataset(Dataset):
    """A dataset held as tensors: images (N, C, H, W) float, targets (N,) or masks (N, H, W) long.

    Items are (image, int label) for classification and (image, mask) for segmentation, like the
    torchvision-backed datasets.
    """

    def __init__(self, images: Tensor, targets: Tensor) -> None:
        if images.ndim != 4 or len(images) != len(targets):
            raise ValueError(
                f"expected images (N, C, H, W) and N targets, got {tuple(images.shape)} "
                f"and {tuple(targets.shape)}"
            )
        self.images, self.targets = images, targets

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Tensor, int | Tensor]:
        target = self.targets[index]
        return self.images[index], int(target) if target.ndim == 0 else target


def _fast_path(dataset: Dataset) -> tuple[Tensor, Tensor] | None:
    """MNIST-style and CIFAR-10 datasets hold all pixels in one uint8 array: convert it at once.

    Also for a `Subset` of one (what `get_dataset(..., n=...)` returns): only its items.
    """
    indices = None
    if isinstance(dataset, Subset):
        dataset, indices = dataset.dataset, torch.as_tensor(list(dataset.indices))
    if not isinstance(dataset, datasets.MNIST | datasets.CIFAR10):
        return None
    transform = dataset.transform
    if not isinstance(transform, ToNormalizedTensor) or dataset.target_transform is not None:
        return None
    pixels = torch.as_tensor(dataset.data)
    targets = torch.as_tensor(dataset.targets, dtype=torch.long)
    if indices is not None:
        pixels, targets = pixels[indices], targets[indices]
    # MNIST: (N, H, W) -> (N, 1, H, W); CIFAR-10: (N, H, W, C) -> (N, C, H, W)
    pixels = pixels.unsqueeze(1) if pixels.ndim == 3 else pixels.permute(0, 3, 1, 2)
    return transform.from_uint8(pixels).contiguous(), targets


def to_tensors(
    dataset: Dataset, progress: bool = True, batch_size: int = 256
) -> tuple[Tensor, Tensor]:
    """Stack every item of `dataset`: images (N, C, H, W) float32, targets (N,) or (N, H, W) long.

    Any map-style dataset of (image tensor, int label or mask tensor) works; it is read in order.
    Datasets that are already tensors (`TensorImageDataset`, the synthetic ones) are returned as
    they are (no copy), and torchvision's MNIST/CIFAR-10 from `get_dataset` (or a `Subset` of
    them) are converted in one vectorised step; the result is the same as reading item by item.
    """
    if isinstance(dataset, TensorImageDataset):
        return dataset.images, dataset.targets
    fast = _fast_path(dataset)
    if fast is not None:
        return fast
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    images, targets = [], []
    for x, y in tqdm(loader, desc="to_tensors", disable=not progress, leave=False):
        images.append(x.float())
        targets.append(torch.as_tensor(y).long())
    if not images:
        raise ValueError("to_tensors: the dataset is empty")
    return torch.cat(images), torch.cat(targets)

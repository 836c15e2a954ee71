"""Batches straight from tensors that live on the device, with augmentation done by indexing.

As in airbench (Keller Jordan's fast CIFAR-10 training), the whole dataset goes to the GPU once;
an epoch is then a random permutation and, per batch, one gather: no Python loop per image, no
worker processes, no host-to-device copies. On a CPU it is simply the fastest way to iterate too.

Augmentation (`augment=True`) is the standard CIFAR recipe: pad by 4 pixels (reflecting the border),
take a random crop of the original size, flip horizontally with probability 1/2. We never build the
padded image: a crop at offset (dy, dx) of the padded image reads original row `dy - pad + i`,
reflected back into range, and a flip just reverses the column indices. Masks (segmentation targets)
are read with the very same indices, so image and mask stay aligned pixel for pixel.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor

from .seeding import generator

__all__ = ["DeviceLoader", "crop_flip", "reflect_index"]


def reflect_index(i: Tensor, n: int) -> Tensor:
    """Map indices in [-(n-1), 2(n-1)] into [0, n) the way reflect padding does (edge not repeated).

    E.g. n = 5: -2, -1, 0, ..., 4, 5, 6 -> 2, 1, 0, ..., 4, 3, 2.
    """
    i = i.abs()
    return torch.where(i > n - 1, 2 * (n - 1) - i, i)


def crop_flip(
    images: Tensor, targets: Tensor, dy: Tensor, dx: Tensor, flip: Tensor, pad: int
) -> tuple[Tensor, Tensor]:
    """Crop (after reflect padding by `pad`) at offsets (dy, dx), then flip where `flip` is True.

    images (B, C, H, W); targets (B,) labels (returned unchanged) or (B, H, W) masks (cropped and
    flipped like the images); dy, dx (B,) ints in [0, 2*pad]; flip (B,) bool. Equivalent to
    `F.pad(x, [pad] * 4, mode="reflect")[..., dy:dy+H, dx:dx+W]`, then `flip(-1)`, per image.
    """
    b, c, h, w = images.shape
    rows = reflect_index(dy[:, None] - pad + torch.arange(h, device=dy.device), h)  # (B, H)
    cols = dx[:, None] - pad + torch.arange(w, device=dx.device)  # (B, W)
    cols = reflect_index(torch.where(flip[:, None], cols.flip(1), cols), w)
    out = images.gather(2, rows[:, None, :, None].expand(b, c, h, w))  # rows first: (B, C, H, W)
    out = out.gather(3, cols[:, None, None, :].expand(b, c, h, w))  # then columns
    if targets.ndim == 3:  # masks (B, H, W): the same rows and columns
        targets = targets.gather(1, rows[:, :, None].expand(b, h, w))
        targets = targets.gather(2, cols[:, None, :].expand(b, h, w))
    return out, targets


class DeviceLoader:
    """Iterate over (images, targets) batches of tensors held on `device`.

    images (N, C, H, W) float; targets (N,) labels or (N, H, W) masks. `device=None` keeps the
    tensors where they are; pass e.g. "cuda" to copy them there once.

    Randomness (the shuffle and the augmentation) comes from a generator seeded by (seed, epoch),
    drawn on the CPU, so it is the same on every device. Each `iter(loader)` uses `loader.epoch`
    and then increments it: successive epochs differ, and a new loader with the same seed replays
    the same sequence. `set_epoch(e)` chooses the epoch of the next iteration (e.g. on resume).
    """

    def __init__(
        self,
        images: Tensor,
        targets: Tensor,
        batch_size: int,
        shuffle: bool = True,
        drop_last: bool = False,
        augment: bool = False,
        device: str | torch.device | None = None,
        seed: int = 0,
        pad: int = 4,
    ) -> None:
        if images.ndim != 4:
            raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
        if targets.ndim not in (1, 3) or len(targets) != len(images):
            raise ValueError(
                f"targets must be (N,) labels or (N, H, W) masks for N = {len(images)} images, "
                f"got shape {tuple(targets.shape)}"
            )
        if targets.ndim == 3 and targets.shape[1:] != images.shape[2:]:
            raise ValueError(f"masks {tuple(targets.shape)} do not match images {images.shape}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if augment and not 0 <= pad < min(images.shape[2:]):
            raise ValueError(f"pad must be in [0, {min(images.shape[2:])}), got {pad}")
        device = images.device if device is None else torch.device(device)
        self.images, self.targets = images.to(device), targets.to(device)
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.augment, self.pad, self.seed = augment, pad, seed
        self.epoch = 0

    @property
    def device(self) -> torch.device:
        return self.images.device

    def set_epoch(self, epoch: int) -> None:
        """The next `iter(self)` draws the shuffle and augmentation of `epoch`."""
        self.epoch = epoch

    def __len__(self) -> int:
        """Number of batches per epoch."""
        n = len(self.images)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        n = len(self.images)
        gen = generator(self.seed, self.epoch)
        self.epoch += 1
        order = torch.randperm(n, generator=gen) if self.shuffle else torch.arange(n)
        # Per position in the epoch's order: crop offsets and flips, all drawn up front.
        dy, dx = torch.randint(0, 2 * self.pad + 1, (2, n), generator=gen)
        flip = torch.rand(n, generator=gen) < 0.5
        return self._batches(*(t.to(self.device) for t in (order, dy, dx, flip)))

    def _batches(
        self, order: Tensor, dy: Tensor, dx: Tensor, flip: Tensor
    ) -> Iterator[tuple[Tensor, Tensor]]:
        for i in range(len(self)):
            s = slice(i * self.batch_size, (i + 1) * self.batch_size)
            idx = order[s]
            images, targets = self.images[idx], self.targets[idx]  # (B, C, H, W), (B,) | (B, H, W)
            if self.augment:
                images, targets = crop_flip(images, targets, dy[s], dx[s], flip[s], self.pad)
            yield images, targets

"""Synthetic shape images, generated offline in a second: meaningful CNN experiments on a CPU.

"shapes" (classification): one shape per image, at a random position, size and colour, on a
noisy background of another random colour. The label is the shape, never where it is, so a model
must recognise the same pattern anywhere in the image: the translation invariance that weight
sharing gives a CNN for free and that an MLP has to learn separately for every position.

"shapes_seg" (segmentation): 1 to `max_objects` shapes per image, later ones drawn over earlier
ones; the mask holds, per pixel, 0 for background or 1 + the index of the shape drawn there.

Everything is vectorised: a shape is a boolean test on pixel coordinates (u, v) measured from the
shape's centre in units of its half-size, evaluated for all images of one class at once. Generation
is deterministic: the same (seed, split) gives identical tensors.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable

import torch
from torch import Tensor

from .info import SEG_SHAPE_NAMES, SHAPE_NAMES
from .seeding import generator

__all__ = ["make_shapes", "make_shapes_seg", "draw_shapes", "split_generator", "MIN_IMAGE_SIZE"]

# Each shape: (u, v) -> inside?; u points right, v down; |u|, |v| <= 1 is the bounding box.
_SHAPES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "disk": lambda u, v: u**2 + v**2 <= 1,
    "square": lambda u, v: torch.maximum(u.abs(), v.abs()) <= 0.8,
    # Apex at the top (v = -0.9), base at v = 0.8, half-width 0.9 at the base.
    "triangle": lambda u, v: (v <= 0.8) & (u.abs() <= (v + 0.9) * 0.9 / 1.7),
    "plus": lambda u, v: (
        ((u.abs() <= 0.3) & (v.abs() <= 0.9)) | ((v.abs() <= 0.3) & (u.abs() <= 0.9))
    ),
    "ring": lambda u, v: (u**2 + v**2 <= 1) & (u**2 + v**2 >= 0.55**2),
    # Textures: a square patch in which every other band (width 0.4) is drawn.
    "h-stripes": lambda u, v: (
        (torch.maximum(u.abs(), v.abs()) <= 0.9) & (torch.floor((v + 1) * 2.5) % 2 == 0)
    ),
    "v-stripes": lambda u, v: (
        (torch.maximum(u.abs(), v.abs()) <= 0.9) & (torch.floor((u + 1) * 2.5) % 2 == 0)
    ),
    "checker": lambda u, v: (
        (torch.maximum(u.abs(), v.abs()) <= 0.9)
        & ((torch.floor((u + 1) * 2.5) + torch.floor((v + 1) * 2.5)) % 2 == 0)
    ),
    "diamond": lambda u, v: u.abs() + v.abs() <= 1,
    "cross": lambda u, v: (
        (torch.maximum(u.abs(), v.abs()) <= 0.85)
        & (((u - v).abs() <= 0.4) | ((u + v).abs() <= 0.4))
    ),
}
assert tuple(_SHAPES) == SHAPE_NAMES

SPLITS = ("train", "test")

#: The smallest image side: at S = 8 a shape of the default scale is 3 to 6 pixels across;
#: any smaller and its form is lost.
MIN_IMAGE_SIZE = 8


def split_generator(seed: int, split: str) -> torch.Generator:
    """The random stream of (seed, split): "train" and "test" never share images."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return generator(seed, SPLITS.index(split))


def _check(n: int, image_size: int, noise: float) -> None:
    """ValueError naming the argument, for sizes that cannot make a meaningful data set."""
    for name, value, least in (("n", n, 1), ("image_size", image_size, MIN_IMAGE_SIZE)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
            raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
    if not noise >= 0:  # also refuses NaN
        raise ValueError(f"noise must be >= 0 (a standard deviation), got {noise!r}")


def _check_scale(scale: tuple[float, float]) -> None:
    """The half-size range must keep every shape inside the image: 0 < low <= high <= 0.5.

    A shape of half-size r (pixels) fits in an image of S pixels only if 2r <= S; its centre
    is then drawn in [r, S - r]. A larger r would put part of the shape outside the image.
    """
    low, high = scale
    if not 0 < low <= high <= 0.5:
        raise ValueError(
            f"scale must be (low, high) with 0 < low <= high <= 0.5, the shape's half-size as a "
            f"fraction of the image (0.5: the shape spans the image), got {tuple(scale)}"
        )


def _backgrounds(n: int, size: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """Uniform random background colours: images (n, 3, size, size) and the colours (n, 3)."""
    bg = torch.rand(n, 3, generator=gen)
    return bg[:, :, None, None].expand(n, 3, size, size).clone(), bg


def _contrasting(bg: Tensor, gen: torch.Generator) -> Tensor:
    """Random colours that differ from `bg` by at least 0.35 in every channel (n, 3)."""
    shift = 0.35 + 0.3 * torch.rand(bg.shape, generator=gen)  # in [0.35, 0.65]
    return (bg + shift) % 1.0  # circular shift: |fg - bg| is shift or 1 - shift, both >= 0.35


def draw_shapes(
    images: Tensor,
    masks: Tensor,
    labels: Tensor,
    bg: Tensor,
    scale: tuple[float, float],
    gen: torch.Generator,
    names: tuple[str, ...] = SHAPE_NAMES,
) -> None:
    """Draw one shape per image, in place: shape `labels[i]` (or none where it is -1).

    images (N, 3, S, S) in [0, 1]; masks (N, S, S) long, set to 1 + label where the shape is drawn;
    bg (N, 3) background colours (the shape gets a contrasting colour); scale: the half-size range,
    as fractions of S, within (0, 0.5] (else ValueError). The shape lies entirely inside the image.
    """
    _check_scale(scale)
    n, _, size, _ = images.shape
    # Random draws for every image (used or not), so that the stream does not depend on labels.
    r = size * (scale[0] + (scale[1] - scale[0]) * torch.rand(n, generator=gen))  # half-size, px
    centre = r[:, None] + (size - 2 * r[:, None]) * torch.rand(n, 2, generator=gen)  # (N, 2): x, y
    colour = _contrasting(bg, gen)  # (N, 3)
    xy = torch.arange(size, dtype=torch.float32) + 0.5  # pixel centres
    for k, name in enumerate(names):
        idx = (labels == k).nonzero().squeeze(1)
        if idx.numel() == 0:
            continue
        u = (xy[None, None, :] - centre[idx, 0, None, None]) / r[idx, None, None]  # (M, 1, S)
        v = (xy[None, :, None] - centre[idx, 1, None, None]) / r[idx, None, None]  # (M, S, 1)
        inside = _SHAPES[name](u, v)  # (M, S, S), broadcast
        images[idx] = torch.where(inside[:, None], colour[idx, :, None, None], images[idx])
        masks[idx] = torch.where(inside, k + 1, masks[idx])


def _finish(images: Tensor, noise: float, gen: torch.Generator) -> Tensor:
    """Add Gaussian pixel noise and clip back to [0, 1]."""
    if noise > 0:
        images += noise * torch.randn(images.shape, generator=gen)
    return images.clamp_(0.0, 1.0)


def make_shapes(
    n: int = 10_000,
    image_size: int = 32,
    seed: int = 0,
    split: str = "train",
    noise: float = 0.1,
    scale: tuple[float, float] = (0.18, 0.38),
) -> tuple[Tensor, Tensor]:
    """Classification: images (n, 3, S, S) in [0, 1], labels (n,) long in [0, 10).

    Classes are balanced: every class appears n // 10 or n // 10 + 1 times, in random order.
    n >= 1, S = `image_size` >= `MIN_IMAGE_SIZE`; `noise`: the standard deviation of the pixel
    noise; `scale`: the range of a shape's half-size, as a fraction of S (at most 0.5, so that
    every shape lies inside the image).
    """
    _check(n, image_size, noise)
    _check_scale(scale)
    gen = split_generator(seed, split)
    labels = torch.arange(n) % len(SHAPE_NAMES)
    labels = labels[torch.randperm(n, generator=gen)]
    images, bg = _backgrounds(n, image_size, gen)
    masks = torch.zeros(n, image_size, image_size, dtype=torch.long)  # unused here
    draw_shapes(images, masks, labels, bg, scale, gen)
    return _finish(images, noise, gen), labels


def make_shapes_seg(
    n: int = 2_000,
    image_size: int = 64,
    seed: int = 0,
    split: str = "train",
    noise: float = 0.1,
    max_objects: int = 3,
    scale: tuple[float, float] = (0.12, 0.25),
) -> tuple[Tensor, Tensor]:
    """Segmentation: images (n, 3, S, S) in [0, 1], masks (n, S, S) long in [0, 6).

    Mask value 0 is background, 1 + k is `SEG_SHAPE_NAMES[k]`. Each image holds 1 to `max_objects`
    shapes with independent random classes; a later shape hides what it covers, in the image and
    in the mask alike. The other arguments: as for `make_shapes`.
    """
    _check(n, image_size, noise)
    _check_scale(scale)
    if max_objects < 1:
        raise ValueError(f"max_objects must be >= 1, got {max_objects}")
    gen = split_generator(seed, split)
    count = torch.randint(1, max_objects + 1, (n,), generator=gen)  # shapes per image
    images, bg = _backgrounds(n, image_size, gen)
    masks = torch.zeros(n, image_size, image_size, dtype=torch.long)
    for slot in range(max_objects):
        labels = torch.randint(0, len(SEG_SHAPE_NAMES), (n,), generator=gen)
        labels[count <= slot] = -1  # this image has fewer shapes
        draw_shapes(images, masks, labels, bg, scale, gen, names=SEG_SHAPE_NAMES)
    return _finish(images, noise, gen), masks

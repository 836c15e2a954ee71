"""`cnncourse.losses` against references written here: U-Net's eq. 1-2 pixel by pixel."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from cnncourse.losses import (
    BorderWeightedCrossEntropy,
    connected_components,
    distance_transform,
    pixel_cross_entropy,
    unet_weight_map,
)

IGNORE = 255  # unlabelled pixels, as in VOC's masks


def three_objects() -> tuple[Tensor, list[Tensor]]:
    """A 20 x 30 class mask with three objects, and each object's pixels (built by hand).

    Two of class 1 with a 2-pixel gap between them (an L and a rectangle), one of class 2: the
    classes cover different areas, so the class-balance term w_c differs between them.
    """
    mask = torch.zeros(20, 30, dtype=torch.long)
    objects = [torch.zeros(20, 30, dtype=torch.bool) for _ in range(3)]
    objects[0][4:14, 3:11] = True
    objects[0][14:18, 3:6] = True  # the L's foot
    objects[1][6:12, 13:20] = True  # columns 11, 12: the gap
    objects[2][2:5, 23:28] = True
    for obj, cls in zip(objects, (1, 1, 2), strict=True):
        mask[obj] = cls
    return mask, objects


def brute_force_weights(
    mask: Tensor, objects: list[Tensor], w0: float = 10.0, sigma: float = 5.0
) -> Tensor:
    """U-Net's eq. 2, w = w_c + w0 exp(-(d1 + d2)^2 / (2 sigma^2)) on background pixels, from
    the distance of every pixel to every pixel of every object. Pixels equal to IGNORE: 0."""
    h, w = mask.shape
    labelled = mask != IGNORE
    classes = mask[labelled]
    present = classes.unique()
    w_c = torch.zeros(h, w)
    for c in present:  # "balanced": n_labelled / (n_classes_present * n_pixels_of_class)
        w_c[mask == c] = len(classes) / (len(present) * (classes == c).sum().item())
    ys, xs = torch.meshgrid(torch.arange(float(h)), torch.arange(float(w)), indexing="ij")
    grid = torch.stack([ys.flatten(), xs.flatten()], 1)  # (H*W, 2)
    per_object = torch.stack([torch.cdist(grid, grid[o.flatten()]).amin(1) for o in objects])
    d1, d2 = per_object.sort(0).values[:2]  # nearest and second-nearest object, (H*W,) each
    border = (w0 * torch.exp(-((d1 + d2) ** 2) / (2 * sigma**2))).view(h, w)
    background = labelled & ~torch.stack(objects).any(0)
    return w_c + torch.where(background, border, 0.0)


def test_weight_map_matches_a_brute_force_computation() -> None:
    mask, objects = three_objects()
    expected = brute_force_weights(mask, objects)
    assert expected[8, 11] > 5 > expected[0, 29]  # the gap weighs far more than a far corner
    torch.testing.assert_close(unet_weight_map(mask), expected)
    other = brute_force_weights(mask, objects, w0=3.0, sigma=2.0)
    torch.testing.assert_close(unet_weight_map(mask, w0=3.0, sigma=2.0), other)
    # Unlabelled pixels: a band across the background, one through the gap.
    mask[:, 28:] = IGNORE
    mask[0, :] = IGNORE
    mask[8, 11:13] = IGNORE
    got = unet_weight_map(torch.stack([mask, mask.flip(1)]), ignore_index=IGNORE)
    torch.testing.assert_close(got[0], brute_force_weights(mask, objects))
    flipped = brute_force_weights(mask.flip(1), [o.flip(1) for o in objects])
    torch.testing.assert_close(got[1], flipped)


def test_objects_and_border_weights() -> None:
    mask = torch.zeros(20, 30, dtype=torch.long)
    mask[5:15, 2:12] = 1
    mask[5:15, 14:24] = 1  # same class, a 2-pixel gap: two objects
    mask[16:19, 2:6] = 2
    mask[16:19, 6:9] = 1  # touching, but another class: two objects
    labels = connected_components(mask)
    assert labels.max() == 4 and labels[5, 2] != labels[5, 14] and labels[17, 5] != labels[17, 6]
    assert connected_components(torch.ones(4, 4, dtype=torch.long)).unique().tolist() == [1]

    w = unet_weight_map(mask, class_balance=False)
    # In the gap (columns 12, 13): d1 = 1, d2 = 2 (the other side); far away: no border term.
    assert w[10, 12] == pytest.approx(1 + 10 * math.exp(-((1 + 2) ** 2) / (2 * 5**2)))
    assert w[0, 29] == pytest.approx(1.0, abs=1e-3) and w[10, 5] == 1.0  # inside: w_c only
    alone = torch.zeros(20, 30, dtype=torch.long)
    alone[5:15, 2:12] = 1
    balanced = unet_weight_map(alone)  # one object: class balance only, mean 1
    assert balanced.mean() == pytest.approx(1.0) and balanced[10, 5] > balanced[0, 0]
    assert unet_weight_map(torch.stack([mask, alone])).shape == (2, 20, 30)


def test_distance_transform_is_exact() -> None:
    gen = torch.Generator().manual_seed(0)
    feature = torch.rand(3, 9, 13, generator=gen) < 0.1
    feature[:, 4, 6] = True  # at least one pixel per map
    got = distance_transform(feature)
    ys, xs = torch.meshgrid(torch.arange(9.0), torch.arange(13.0), indexing="ij")
    grid = torch.stack([ys.flatten(), xs.flatten()], 1)  # (H*W, 2)
    for f, d in zip(feature, got, strict=True):
        brute = torch.cdist(grid, grid[f.flatten()]).amin(1).view(9, 13)
        torch.testing.assert_close(d, brute)


def reference_loss(logits: Tensor, target: Tensor, weight: Tensor) -> Tensor:
    """Mean over the labelled pixels of weight x torch's per-pixel cross-entropy."""
    labelled = target != IGNORE
    per_pixel = F.cross_entropy(logits, torch.where(labelled, target, 0), reduction="none")
    return (weight * per_pixel)[labelled].mean()


def test_pixel_cross_entropy_is_the_weighted_mean_over_labelled_pixels() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 6, 7, generator=gen)
    target = torch.randint(0, 4, (2, 6, 7), generator=gen)
    target[torch.rand(2, 6, 7, generator=gen) < 0.2] = IGNORE
    weight = 0.5 + 5 * torch.rand(2, 6, 7, generator=gen)
    got = pixel_cross_entropy(logits, target, weight, ignore_index=IGNORE)
    torch.testing.assert_close(got, reference_loss(logits, target, weight))
    weighted = weight * F.cross_entropy(logits, target, reduction="none", ignore_index=IGNORE)
    assert abs(got - weighted.sum() / weight[target != IGNORE].sum()) > 0.1  # tell them apart
    unweighted = F.cross_entropy(logits, target, ignore_index=IGNORE)
    torch.testing.assert_close(pixel_cross_entropy(logits, target, ignore_index=IGNORE), unweighted)
    full = torch.randint(0, 4, (2, 6, 7), generator=gen)  # no pixel ignored: the default
    torch.testing.assert_close(pixel_cross_entropy(logits, full), F.cross_entropy(logits, full))


def test_border_weighted_cross_entropy_matches_the_reference() -> None:
    mask, objects = three_objects()
    mask[:, 28:] = IGNORE
    flipped = [o.flip(0) for o in objects]
    target = torch.stack([mask, mask.flip(0)])
    weight = torch.stack(
        [brute_force_weights(mask, objects), brute_force_weights(mask.flip(0), flipped)]
    )
    logits = torch.randn(
        2, 3, 20, 30, generator=torch.Generator().manual_seed(1), requires_grad=True
    )
    loss_fn = BorderWeightedCrossEntropy(ignore_index=IGNORE)
    got = loss_fn(logits, target)
    torch.testing.assert_close(got, reference_loss(logits, target, weight))
    assert loss_fn.ignore_index == IGNORE  # `fit`'s pixel accuracy reads it
    got.backward()  # the weights are constants: gradients flow to the logits only
    assert logits.grad is not None and logits.grad[:, :, :, 28:].abs().max() == 0

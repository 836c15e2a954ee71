"""Pixel-wise cross-entropy for segmentation, and U-Net's border weights.

U-Net (Ronneberger et al., 2015, eq. 1-2) trains with a cross-entropy in which each pixel x has
a weight

    w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))^2 / (2 sigma^2)),     w0 = 10, sigma = 5 px

- w_c balances the classes: a class covering few pixels gets a larger weight (here sklearn's
  "balanced" weights, n_pixels / (n_classes_present * n_pixels_of_class), so the mean is 1;
  unlabelled pixels, ``ignore_index``, get weight 0 and are not counted);
- d1 and d2 are the distances to the nearest and the second-nearest object. Background pixels in
  a narrow gap between two objects have d1 + d2 small and get up to w0 + w_c: the net is pushed
  to separate touching objects instead of merging them into one blob.

The loss is the *mean* of w(x) * cross-entropy(x) over the labelled pixels (`pixel_cross_entropy`),
where the paper writes a sum: the same gradients up to a constant factor, and a loss that does
not grow with the image size, so a learning rate carries over between tile sizes.

Everything is computed in torch (no SciPy): objects are connected components of the mask,
found by label propagation (`connected_components`), and d1, d2 come from an exact Euclidean
distance transform per object (`distance_transform`).

# NOTE: the paper does not say which pixels get the border term; we follow the common reading
# (and the paper's figure 3d) and add it to background pixels only: inside an object d1 = 0 and
# the term would only inflate the object's own weight near its neighbours.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "connected_components",
    "distance_transform",
    "unet_weight_map",
    "pixel_cross_entropy",
    "BorderWeightedCrossEntropy",
]


def _shift(t: Tensor, dy: int, dx: int, fill: int) -> Tensor:
    """``t`` moved by (dy, dx) pixels over its last two dims, `fill` entering at the edge."""
    out = torch.full_like(t, fill)
    h, w = t.shape[-2:]
    src = t[..., max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)]
    out[..., max(dy, 0) : h - max(-dy, 0), max(dx, 0) : w - max(-dx, 0)] = src
    return out


def connected_components(mask: Tensor) -> Tensor:
    """Objects of class masks (..., H, W) (0 = background): labels, 0 = background, 1..K per map.

    Two pixels belong to the same object when a path of 4-neighbours of the same class joins
    them (touching objects of *different* classes stay apart). Each pixel starts with its own
    label and takes the largest label among its same-class neighbours until nothing changes:
    as many rounds as the longest path inside an object, each a few tensor ops on all maps.
    """
    fg = mask > 0
    ids = torch.arange(1, mask.numel() + 1, device=mask.device).view(mask.shape)
    labels = torch.where(fg, ids, 0)
    same = {  # per direction: is the neighbour there of the same class?
        d: (_shift(mask, *d, -1) == mask) & fg for d in ((1, 0), (-1, 0), (0, 1), (0, -1))
    }
    while True:
        new = labels
        for d, ok in same.items():
            new = torch.maximum(new, torch.where(ok, _shift(labels, *d, 0), 0))
        if torch.equal(new, labels):
            break
        labels = new
    # Renumber each map's objects 1..K (torch.unique sorts, so background's 0 stays first).
    flat = labels.reshape(-1, *mask.shape[-2:])
    dense = [torch.unique(m, return_inverse=True)[1] + int(m.min() > 0) for m in flat]
    return torch.stack(dense).view(mask.shape)


def distance_transform(feature: Tensor) -> Tensor:
    """Euclidean distance from every pixel to the nearest True pixel: (..., H, W) -> float.

    Exact, thanks to the separability of the squared distance (Felzenszwalb & Huttenlocher):
    ``min over (y', x') of (y - y')^2 + (x - x')^2 = min over y' of [(y - y')^2 + g(y', x)]``
    with ``g(y', x)`` = min over x' in row y' of ``(x - x')^2``: two 1-D minimisations. Done by
    brute force, each costs O(H W (H + W)) time and memory per map: fine for course-sized tiles
    (64 x 64), not meant for 1024 x 1024. A map without a True pixel gives inf everywhere.
    """
    h, w = feature.shape[-2:]
    dev = feature.device
    x, y = torch.arange(w, device=dev, dtype=torch.float32), torch.arange(h, device=dev)
    inf = torch.tensor(float("inf"), device=dev)
    dx2 = (x[:, None] - x[None, :]) ** 2  # (W, W): [x, x']
    g = torch.where(feature[..., :, None, :], dx2, inf).amin(-1)  # (..., H, W): along rows
    dy2 = ((y[:, None] - y[None, :]) ** 2).float()  # (H, H): [y, y']
    d2 = (g[..., None, :, :] + dy2[:, :, None]).amin(-2)  # (..., H, W): then along columns
    return d2.sqrt()


def unet_weight_map(
    mask: Tensor,
    w0: float = 10.0,
    sigma: float = 5.0,
    instances: Tensor | None = None,
    class_balance: bool = True,
    ignore_index: int = -100,
) -> Tensor:
    """U-Net's per-pixel loss weights for a class mask (H, W) or a batch (N, H, W): float.

    `instances`: object ids (same shape, 0 = background) when the objects are known; by default
    the connected components of each class (`connected_components`). ``class_balance=False``:
    w_c = 1. Fewer than two objects: no border term. Pixels equal to `ignore_index` (unlabelled)
    get weight 0, count in no class, and are background for the objects and distances.
    """
    labelled = mask != ignore_index
    if instances is None:  # for the whole batch at once; unlabelled pixels are background
        instances = connected_components(torch.where(labelled, mask, 0))
    if mask.ndim == 3:
        maps = [
            unet_weight_map(m, w0, sigma, i, class_balance, ignore_index)
            for m, i in zip(mask, instances, strict=True)
        ]
        return torch.stack(maps)
    mask = torch.where(labelled, mask, 0)
    weight = labelled.float()  # w_c = 1 on labelled pixels, 0 on the others
    if class_balance:
        counts = torch.bincount(mask[labelled], minlength=int(mask.max()) + 1).float()
        present = (counts > 0).sum().clamp(min=1)
        weight = weight * (labelled.sum() / (present * counts.clamp(min=1)))[mask]
    k = int(instances.max())
    if k >= 2:
        objects = instances[None] == torch.arange(1, k + 1, device=mask.device)[:, None, None]
        d1, d2 = distance_transform(objects).topk(2, dim=0, largest=False).values  # (H, W) each
        border = w0 * torch.exp(-((d1 + d2) ** 2) / (2 * sigma**2))
        weight = weight + torch.where((instances == 0) & labelled, border, 0.0)
    return weight


def pixel_cross_entropy(
    logits: Tensor, target: Tensor, weight: Tensor | None = None, ignore_index: int = -100
) -> Tensor:
    """Mean over the labelled pixels of ``weight * -log softmax(logits)[target]``.

    logits (N, C, H, W); target (N, H, W) class indices, `ignore_index` where unlabelled (those
    pixels add nothing and are not counted); weight (N, H, W) or None (all ones, which is
    ``F.cross_entropy(logits, target, ignore_index=ignore_index)``). Divided by the number of
    labelled pixels, so it is the paper's sum (eq. 1) up to a constant factor; not by the
    weights' sum, which would make it a weighted average (what `F.cross_entropy` computes with
    its class weights, ``weight=``).
    """
    loss = F.cross_entropy(logits, target, reduction="none", ignore_index=ignore_index)
    if weight is not None:
        loss = weight * loss  # (N, H, W); 0 at unlabelled pixels either way
    return loss.sum() / (target != ignore_index).sum()


class BorderWeightedCrossEntropy(nn.Module):
    """`pixel_cross_entropy` weighted by `unet_weight_map`, computed from each batch's masks.

    A drop-in ``loss_fn(logits, masks)`` for `cnncourse.train.fit`. The weights depend only on
    the masks, so for a fixed dataset they could be computed once; computing them per batch
    keeps them right under augmentation (crops and flips move the borders). `ignore_index`:
    the mask value of unlabelled pixels (e.g. 2 for the Oxford pets' uncertain border band).
    """

    def __init__(
        self,
        w0: float = 10.0,
        sigma: float = 5.0,
        class_balance: bool = True,
        ignore_index: int = -100,
    ) -> None:
        super().__init__()
        self.w0, self.sigma, self.class_balance = w0, sigma, class_balance
        self.ignore_index = ignore_index  # `fit`'s pixel accuracy leaves these pixels out too

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        with torch.no_grad():
            weight = unet_weight_map(
                target, self.w0, self.sigma, None, self.class_balance, self.ignore_index
            )
        return pixel_cross_entropy(logits, target, weight, self.ignore_index)

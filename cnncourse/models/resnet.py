"""ResNet for ImageNet (He, Zhang, Ren and Sun, 2015, "Deep Residual Learning for Image
Recognition"). A residual block learns F(x) = H(x) - x and outputs relu(F(x) + x): when the best
mapping H is close to the identity, pushing F to 0 is easier than fitting H with nonlinear layers.

Layout (paper, table 1), for a 224 x 224 input::

    conv1    7x7, 64, stride 2                      -> 112 x 112
    maxpool  3x3, stride 2                          ->  56 x  56
    layer1   conv2_x  [block] x n1  (64 e channels)  ->  56 x  56
    layer2   conv3_x  [block] x n2  (128 e)          ->  28 x  28
    layer3   conv4_x  [block] x n3  (256 e)          ->  14 x  14
    layer4   conv5_x  [block] x n4  (512 e)          ->   7 x   7
    avgpool, fc (1000)

with ``BasicBlock`` (two 3x3 convs, expansion e = 1) for 18/34 layers and ``Bottleneck``
(1x1 reduce, 3x3, 1x1 expand by e = 4) for 50/101/152. The first block of layer2..4 halves the
grid (stride 2) and changes the channel count, so its shortcut must change shape too (`shortcut`).
The blocks and shortcuts are in `cnncourse.models.resnet_blocks` (re-exported here), shared with
the CIFAR nets of `cnncourse.models.resnet_cifar`.
Attribute names (``conv1 bn1 relu maxpool layer1..layer4 avgpool fc``, ``downsample``) are
torchvision's: a torchvision ``state_dict`` loads with ``strict=True`` and gives the same outputs.

Cost, in multiply-accumulates (MACs) for one 224 x 224 image (conv and fc, bias excluded;
``cnncourse.profile.count_macs``); the paper's table 1 "FLOPs" are multiply-adds::

    model       paper (v1)   ours v1         torchvision v1.5 (its published _ops)
    resnet18    1.8 G        1,814,073,344   1,814,073,344 (1.814)
    resnet34    3.6 G        3,663,761,408   3,663,761,408 (3.664)
    resnet50    3.8 G        3,857,973,248   4,089,184,256 (4.089)
    resnet101   7.6 G        7,570,194,432   7,801,405,440 (7.801)
    resnet152   11.3 G       11,282,415,616  11,513,626,624 (11.514)

Erratum: 18, 101 and 152 round to the paper's figures; 34 (3.66 G) and 50 (3.86 G) are printed
one digit low (truncated rather than rounded). v1.5 costs 3 x 77,070,336 = 231,211,008 MACs more
than v1 in the bottleneck nets: see `Bottleneck`. The basic-block nets are the same in both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import nn

from cnncourse.models.resnet_blocks import (
    BasicBlock,
    Block,
    Bottleneck,
    Shortcut,
    ZeroPadShortcut,
    conv1x1,
    conv3x3,
    init_resnet,
    make_shortcut,
    make_stage,
)
from cnncourse.models.spec import ModelSpec, builders

# The blocks live in `resnet_blocks`; they are re-exported here, where the course first meets them.
__all__ = [
    "BasicBlock",
    "Bottleneck",
    "ZeroPadShortcut",
    "ResNet",
    "make_shortcut",
    "conv1x1",
    "conv3x3",
    "make_stage",
    "init_resnet",
    "Shortcut",
    "Block",
    "LAYERS",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "plain18",
    "plain34",
    "SPECS",
    "MODELS",
]


class ResNet(nn.Module):
    """ResNet for ImageNet-sized inputs: (N, in_channels, H, W) -> (N, num_classes) logits.

    `layers` is the number of blocks in each of the 4 stages (paper, table 1), e.g. (3, 4, 6, 3).
    `version`: "v1.5" (torchvision) or "v1" (the paper): where a bottleneck block puts its stride.
    `shortcut`: "B" (torchvision; the paper's ImageNet models), "A" or "C" (see `make_shortcut`).
    `residual=False` builds the plain twin (same layers, no shortcuts) of sec. 4.1.
    `stem="cifar"` (not in the paper): a 3x3 stride-1 conv1 and no max pool, so 32 x 32 images
    are not shrunk 4x before layer1 (`resnet18_cifar`).
    """

    def __init__(
        self,
        block: Block,
        layers: tuple[int, int, int, int],
        num_classes: int = 1000,
        in_channels: int = 3,
        version: Literal["v1", "v1.5"] = "v1.5",
        shortcut: Shortcut = "B",
        residual: bool = True,
        zero_init_residual: bool = False,
        stem: Literal["imagenet", "cifar"] = "imagenet",
    ) -> None:
        super().__init__()
        if version not in ("v1", "v1.5"):
            raise ValueError(f"version must be 'v1' or 'v1.5', got {version!r}")
        if stem not in ("imagenet", "cifar"):
            raise ValueError(f"stem must be 'imagenet' or 'cifar', got {stem!r}")
        kw = {"stride_in_1x1": version == "v1"} if block is Bottleneck else {}
        c = [64] + [w * block.expansion for w in (64, 128, 256, 512)]  # channels between stages
        imagenet = stem == "imagenet"  # else CIFAR's: conv1 3x3 stride 1, no max pool
        k, s = (7, 2) if imagenet else (3, 1)
        self.conv1 = nn.Conv2d(in_channels, 64, k, stride=s, padding=k // 2, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1) if imagenet else nn.Identity()
        self.layer1 = make_stage(block, c[0], c[1], layers[0], 1, shortcut, residual, **kw)
        self.layer2 = make_stage(block, c[1], c[2], layers[1], 2, shortcut, residual, **kw)
        self.layer3 = make_stage(block, c[2], c[3], layers[2], 2, shortcut, residual, **kw)
        self.layer4 = make_stage(block, c[3], c[4], layers[3], 2, shortcut, residual, **kw)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(c[4], num_classes)
        init_resnet(self, zero_init_residual)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (N, 64, H/4, W/4); cifar: H, W
        x = self.layer1(x)  # (N, 64e, H/4, W/4)
        x = self.layer2(x)  # (N, 128e, H/8, W/8)
        x = self.layer3(x)  # (N, 256e, H/16, W/16)
        x = self.layer4(x)  # (N, 512e, H/32, W/32)
        x = torch.flatten(self.avgpool(x), 1)  # (N, 512e): global average pooling
        return self.fc(x)  # (N, num_classes)


# Blocks per stage, paper table 1: depth = 2 * sum (basic) or 3 * sum (bottleneck), + conv1 + fc.
LAYERS: dict[int, tuple[Block, tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}


def resnet18(**kwargs) -> ResNet:
    """ResNet-18: 11,689,512 params, 1.814 GMACs at 224 x 224 (torchvision's figures)."""
    return ResNet(*LAYERS[18], **kwargs)


def resnet34(**kwargs) -> ResNet:
    """ResNet-34: 21,797,672 params, 3.664 GMACs at 224 x 224 (paper: 3.6 G)."""
    return ResNet(*LAYERS[34], **kwargs)


def resnet50(**kwargs) -> ResNet:
    """ResNet-50: 25,557,032 params; 4.089 GMACs (v1.5), 3.858 GMACs (v1; paper: 3.8 G)."""
    return ResNet(*LAYERS[50], **kwargs)


def resnet101(**kwargs) -> ResNet:
    """ResNet-101: 44,549,160 params; 7.801 GMACs (v1.5), 7.570 GMACs (v1; paper: 7.6 G)."""
    return ResNet(*LAYERS[101], **kwargs)


def resnet152(**kwargs) -> ResNet:
    """ResNet-152: 60,192,808 params; 11.514 GMACs (v1.5), 11.282 GMACs (v1; paper: 11.3 G)."""
    return ResNet(*LAYERS[152], **kwargs)


def plain18(**kwargs) -> ResNet:
    """Plain-18 (paper fig. 4): ResNet-18 without shortcuts, for the degradation experiment."""
    return ResNet(*LAYERS[18], residual=False, **kwargs)


def plain34(**kwargs) -> ResNet:
    """Plain-34 (paper fig. 3 middle, fig. 4 left): trains to a higher error than plain-18."""
    return ResNet(*LAYERS[34], residual=False, **kwargs)


_PAPER = "He et al. 2016, Deep residual learning for image recognition"

#: One record per model (see `cnncourse.models.spec`); `cnncourse.models` merges them.
SPECS: tuple[ModelSpec, ...] = (
    ModelSpec("resnet18", resnet18, in_channels=True, paper=_PAPER, torchvision="resnet18"),
    ModelSpec("resnet34", resnet34, in_channels=True, paper=_PAPER, torchvision="resnet34"),
    ModelSpec("resnet50", resnet50, in_channels=True, paper=_PAPER, torchvision="resnet50"),
    ModelSpec("resnet101", resnet101, in_channels=True, paper=_PAPER, torchvision="resnet101"),
    ModelSpec("resnet152", resnet152, in_channels=True, paper=_PAPER, torchvision="resnet152"),
    ModelSpec("plain18", plain18, in_channels=True, paper=_PAPER),
    ModelSpec("plain34", plain34, in_channels=True, paper=_PAPER),
)
MODELS: dict[str, Callable[..., nn.Module]] = builders(SPECS)

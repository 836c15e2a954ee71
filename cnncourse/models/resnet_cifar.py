"""ResNets for CIFAR-10 and their plain twins (He et al., 2015, sec. 4.2).

The paper's CIFAR nets take a 32 x 32 image and have depth 6n + 2::

    conv1    3x3, 16                                 -> 32 x 32
    layer1   [3x3, 16; 3x3, 16] x n                  -> 32 x 32
    layer2   [3x3, 32; 3x3, 32] x n  (first stride 2) -> 16 x 16
    layer3   [3x3, 64; 3x3, 64] x n  (first stride 2) ->  8 x  8
    avgpool, fc (10)

(1 + 6n weighted layers + the fc). All shortcuts are identities; where the shape changes
(twice) the paper uses option A: subsample, and pad the new channels with zeros, so the
residual nets have exactly the parameters of their plain twins. Option B (a 1x1 projection
there) is available as ``shortcut="B"``.

Parameters, option A (paper, table 6: 0.27M, 0.46M, 0.66M, 0.85M, 1.7M, 19.4M)::

    resnet20      269,722      resnet56       853,018
    resnet32      464,154      resnet110    1,727,962
    resnet44      658,586      resnet1202  19,421,274

Each rounds to the paper's figure. Option B adds two projections (1x1 conv + BN) and
16*32 + 2*32 + 32*64 + 2*64 = 2,752 parameters, whatever the depth.

Degradation (paper, fig. 6 left): the plain nets (``plain20`` ... ``plain110``) train to a
*higher* training error as they get deeper, while the residual ones get better.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from cnncourse.models.resnet import LAYERS, ResNet
from cnncourse.models.resnet_blocks import BasicBlock, Shortcut, conv3x3, init_resnet, make_stage
from cnncourse.models.spec import ModelSpec, builders

__all__ = [
    "resnet18_cifar",
    "CifarResNet",
    "resnet_cifar",
    "resnet20",
    "resnet32",
    "resnet44",
    "resnet56",
    "resnet110",
    "resnet1202",
    "plain20",
    "plain32",
    "plain44",
    "plain56",
    "plain110",
    "SPECS",
    "MODELS",
]


class CifarResNet(nn.Module):
    """(N, in_channels, 32, 32) -> (N, num_classes); depth = 6n + 2 (20, 32, 44, 56, 110, 1202).

    `widths`: channels of the 3 stages (the paper's 16, 32, 64). `shortcut`: "A" (the paper's
    CIFAR choice) or "B"/"C" (see `cnncourse.models.resnet_blocks.make_shortcut`).
    `residual=False`: the plain net of the same depth.
    """

    def __init__(
        self,
        depth: int,
        num_classes: int = 10,
        in_channels: int = 3,
        widths: tuple[int, int, int] = (16, 32, 64),
        shortcut: Shortcut = "A",
        residual: bool = True,
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
            raise ValueError(f"depth must be 6n + 2 with n >= 1 (20, 32, 44, ...), got {depth!r}")
        n = (depth - 2) // 6
        w1, w2, w3 = widths
        self.conv1 = conv3x3(in_channels, w1)
        self.bn1 = nn.BatchNorm2d(w1)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = make_stage(BasicBlock, w1, w1, n, 1, shortcut, residual)
        self.layer2 = make_stage(BasicBlock, w1, w2, n, 2, shortcut, residual)
        self.layer3 = make_stage(BasicBlock, w2, w3, n, 2, shortcut, residual)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(w3, num_classes)
        init_resnet(self, zero_init_residual)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))  # (N, 16, 32, 32)
        x = self.layer1(x)  # (N, 16, 32, 32)
        x = self.layer2(x)  # (N, 32, 16, 16)
        x = self.layer3(x)  # (N, 64, 8, 8)
        x = torch.flatten(self.avgpool(x), 1)  # (N, 64)
        return self.fc(x)  # (N, num_classes)


def resnet_cifar(depth: int, **kwargs) -> CifarResNet:
    """The CIFAR ResNet of the given depth 6n + 2 (``residual=False`` for the plain twin)."""
    return CifarResNet(depth, **kwargs)


def resnet20(**kwargs) -> CifarResNet:
    """ResNet-20 (n = 3); paper table 6: 0.27M params, 8.75% error."""
    return CifarResNet(20, **kwargs)


def resnet32(**kwargs) -> CifarResNet:
    """ResNet-32 (n = 5); paper table 6: 0.46M params, 7.51% error."""
    return CifarResNet(32, **kwargs)


def resnet44(**kwargs) -> CifarResNet:
    """ResNet-44 (n = 7); paper table 6: 0.66M params, 7.17% error."""
    return CifarResNet(44, **kwargs)


def resnet56(**kwargs) -> CifarResNet:
    """ResNet-56 (n = 9); paper table 6: 0.85M params, 6.97% error."""
    return CifarResNet(56, **kwargs)


def resnet110(**kwargs) -> CifarResNet:
    """ResNet-110 (n = 18); paper table 6: 1.7M params, 6.43% error (best of 5 runs)."""
    return CifarResNet(110, **kwargs)


def resnet1202(**kwargs) -> CifarResNet:
    """ResNet-1202 (n = 200); paper table 6: 19.4M params, 7.93% error (overfits)."""
    return CifarResNet(1202, **kwargs)


def plain20(**kwargs) -> CifarResNet:
    """Plain-20: ResNet-20's layers without shortcuts (paper fig. 6 left)."""
    return CifarResNet(20, residual=False, **kwargs)


def plain32(**kwargs) -> CifarResNet:
    """Plain-32: ResNet-32's layers without shortcuts."""
    return CifarResNet(32, residual=False, **kwargs)


def plain44(**kwargs) -> CifarResNet:
    """Plain-44: ResNet-44's layers without shortcuts."""
    return CifarResNet(44, residual=False, **kwargs)


def plain56(**kwargs) -> CifarResNet:
    """Plain-56: trains to a higher error than plain-20 (paper fig. 1 and fig. 6 left)."""
    return CifarResNet(56, residual=False, **kwargs)


def plain110(**kwargs) -> CifarResNet:
    """Plain-110: the paper reports its error above 60% (fig. 6 left, not shown)."""
    return CifarResNet(110, residual=False, **kwargs)


def resnet18_cifar(num_classes: int = 10, **kwargs) -> ResNet:
    """ResNet-18 adapted to 32 x 32 images: the CIFAR variant that training benchmarks use.

    Not from the ResNet paper: the ImageNet ResNet-18 (four stages of 64..512 channels, two
    BasicBlocks each) with its stem changed so a 32 x 32 image is not shrunk 4x before the first
    stage: conv1 is 3x3 with stride 1 (instead of 7x7, stride 2) and there is no max pool. The
    stages then run at 32, 16, 8 and 4 pixels; (N, in_channels, 32, 32) -> (N, num_classes).
    """
    return ResNet(*LAYERS[18], num_classes=num_classes, stem="cifar", **kwargs)


_PAPER = "He et al. 2016, Deep residual learning for image recognition"

#: One record per model (see `cnncourse.models.spec`); `cnncourse.models` merges them.
SPECS: tuple[ModelSpec, ...] = (
    ModelSpec(
        "resnet18_cifar", resnet18_cifar, input_size=(3, 32, 32), in_channels=True, paper=_PAPER
    ),
    ModelSpec("resnet20", resnet20, input_size=(3, 32, 32), in_channels=True, paper=_PAPER),
    ModelSpec("resnet32", resnet32, input_size=(3, 32, 32), in_channels=True, paper=_PAPER),
    ModelSpec("resnet44", resnet44, input_size=(3, 32, 32), in_channels=True, paper=_PAPER),
    ModelSpec("resnet56", resnet56, input_size=(3, 32, 32), in_channels=True, paper=_PAPER),
    ModelSpec("resnet110", resnet110, input_size=(3, 32, 32), in_channels=True, paper=_PAPER),
    ModelSpec("resnet1202", resnet1202, input_size=(3, 32, 32), in_channels=True, paper=_PAPER),
    ModelSpec("plain20", plain20, input_size=(3, 32, 32), in_channels=True, paper=_PAPER),
    ModelSpec("plain32", plain32, input_size=(3, 32, 32), in_channels=True, paper=_PAPER),
    ModelSpec("plain44", plain44, input_size=(3, 32, 32), in_channels=True, paper=_PAPER),
    ModelSpec("plain56", plain56, input_size=(3, 32, 32), in_channels=True, paper=_PAPER),
    ModelSpec("plain110", plain110, input_size=(3, 32, 32), in_channels=True, paper=_PAPER),
)
MODELS: dict[str, Callable[..., nn.Module]] = builders(SPECS)

"""Xception: Chollet, "Xception: Deep Learning with Depthwise Separable Convolutions", CVPR 2017.

Xception takes the Inception hypothesis to its extreme: cross-channel and spatial correlations
can be mapped *entirely* separately, so every inception module becomes a depthwise-separable
convolution, and the modules are linked by residual connections (figure 5 of the paper):

- entry flow: two full 3x3 convs (32, 64), then three blocks of [ReLU -> SepConv -> BN] x 2 and
  a 3x3/2 max pool, each with a strided 1x1 conv + BN on the shortcut (128, 256, 728 channels);
- middle flow: eight blocks of [ReLU -> SepConv(728) -> BN] x 3 with identity shortcuts;
- exit flow: one more downsampling block (728, 1024), SepConv 1536 and 2048 with ReLU, global
  average pool, logistic regression (FC).

Unlike MobileNet's, Xception's separable conv (`SeparableConv2d`) has no BN or ReLU between the
depthwise and the pointwise step: section 4.7 of the paper finds that no intermediate activation
works best. The block shapes follow the paper's Keras reference implementation (no conv biases,
"same" padding except in the first two convs, input 299x299 -> 10x10x2048 before the pool).

Parameters: table 3 of the paper gives 22,855,952; our count is exactly that: the
convolution and FC weights, the FC biases and the BN scales and shifts (Keras's "trainable
params"; its total, 22,910,480, adds the BN running means and variances, which are buffers here).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from cnncourse.layers import init_conv_bn
from cnncourse.models.spec import ModelSpec, builders

__all__ = ["SeparableConv2d", "XceptionBlock", "Xception", "xception", "SPECS", "MODELS"]


class SeparableConv2d(nn.Sequential):
    """k x k depthwise conv (groups = C_in) then 1x1 pointwise conv; no bias, no BN or ReLU between.

    Shapes: (N, in_channels, H, W) -> (N, out_channels, H, W) ("same" padding, stride 1).
    Weights: k*k*C_in + C_in*C_out, instead of k*k*C_in*C_out for a full conv.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.depthwise = nn.Conv2d(
            in_channels, in_channels, kernel_size, padding=pad, groups=in_channels, bias=False
        )
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=False)


class XceptionBlock(nn.Module):
    """A residual block of ``len(channels)`` [ReLU -> SepConv -> BN] units.

    ``channels`` are the units' output channels. ``stride=2`` ends the block with a 3x3/2 max
    pool and puts a 1x1/2 conv + BN on the shortcut; stride 1 (the middle flow) has an identity
    shortcut. ``first_relu=False`` omits the first ReLU (the first block follows a ReLU already).
    Shapes: (N, in_channels, H, W) -> (N, channels[-1], ceil(H/stride), ceil(W/stride)).
    """

    def __init__(
        self, in_channels: int, channels: tuple[int, ...], stride: int = 1, first_relu: bool = True
    ) -> None:
        super().__init__()
        units: list[nn.Module] = []
        c = in_channels
        for i, out in enumerate(channels):
            if i > 0 or first_relu:
                units.append(nn.ReLU(inplace=i > 0))  # not in place on the shortcut's input
            units += [SeparableConv2d(c, out), nn.BatchNorm2d(out)]
            c = out
        if stride == 2:
            units.append(nn.MaxPool2d(3, stride=2, padding=1))
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, c, 1, stride=2, bias=False), nn.BatchNorm2d(c)
            )
        elif stride == 1 and c == in_channels:
            self.shortcut = nn.Identity()
        else:
            raise ValueError(
                f"stride 1 needs channels[-1] == in_channels; got {channels}, {stride}"
            )
        self.residual = nn.Sequential(*units)

    def forward(self, x: Tensor) -> Tensor:
        return self.residual(x) + self.shortcut(x)


class Xception(nn.Module):
    """Xception (figure 5). Shapes: (N, 3, H, W) -> (N, num_classes); 299x299 in the paper.

    Feature grids for 299: 149, 147 (entry convs), 74, 37, 19 (entry blocks), 19 (middle),
    10 (exit). ``middle_blocks`` is the number of middle-flow blocks (8 in the paper).
    """

    def __init__(self, num_classes: int = 1000, middle_blocks: int = 8) -> None:
        super().__init__()

        def conv_bn_relu(c_in: int, c_out: int, stride: int) -> list[nn.Module]:
            conv = nn.Conv2d(c_in, c_out, 3, stride=stride, bias=False)  # "valid" padding
            return [conv, nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]

        self.entry_flow = nn.Sequential(
            *conv_bn_relu(3, 32, 2),  # (N, 32, 149, 149)
            *conv_bn_relu(32, 64, 1),  # (N, 64, 147, 147)
            XceptionBlock(64, (128, 128), stride=2, first_relu=False),  # (N, 128, 74, 74)
            XceptionBlock(128, (256, 256), stride=2),  # (N, 256, 37, 37)
            XceptionBlock(256, (728, 728), stride=2),  # (N, 728, 19, 19)
        )
        self.middle_flow = nn.Sequential(
            *[XceptionBlock(728, (728, 728, 728)) for _ in range(middle_blocks)]
        )  # (N, 728, 19, 19)
        self.exit_flow = nn.Sequential(
            XceptionBlock(728, (728, 1024), stride=2),  # (N, 1024, 10, 10)
            SeparableConv2d(1024, 1536),
            nn.BatchNorm2d(1536),
            nn.ReLU(inplace=True),
            SeparableConv2d(1536, 2048),
            nn.BatchNorm2d(2048),
            nn.ReLU(inplace=True),  # (N, 2048, 10, 10)
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2048, num_classes)
        init_conv_bn(self)  # He normal convs, BN at the identity; the fc keeps PyTorch's init

    def forward(self, x: Tensor) -> Tensor:
        x = self.exit_flow(self.middle_flow(self.entry_flow(x)))  # (N, 2048, H', W')
        return self.fc(torch.flatten(self.avgpool(x), 1))  # (N, num_classes)


def xception(num_classes: int = 1000, **kwargs: object) -> Xception:
    """Xception (Chollet 2017); see `Xception`."""
    return Xception(num_classes, **kwargs)


_PAPER = "Chollet 2017, Xception: deep learning with depthwise separable convolutions"

#: One record per model (see `cnncourse.models.spec`); `cnncourse.models` merges them.
SPECS: tuple[ModelSpec, ...] = (
    ModelSpec("xception", xception, input_size=(3, 299, 299), paper=_PAPER),
)
MODELS: dict[str, Callable[..., nn.Module]] = builders(SPECS)

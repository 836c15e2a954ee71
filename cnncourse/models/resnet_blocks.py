"""The building blocks of every ResNet (He, Zhang, Ren and Sun, 2015): convs, shortcuts, residual
blocks and stages, shared by the ImageNet nets (`resnet`) and the CIFAR nets (`resnet_cifar`).

A residual block learns F(x) = H(x) - x and outputs relu(F(x) + shortcut(x)). The shortcut is the
identity where the block keeps the shape; where it changes (the first block of a stage halves the
grid and widens the channels) the paper offers three options (sec. 4.1, table 3), see
`make_shortcut`. Attribute names (``conv1 bn1 conv2 bn2 [conv3 bn3] downsample``) are torchvision's.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from cnncourse.layers import init_conv_bn

__all__ = [
    "conv3x3",
    "conv1x1",
    "ZeroPadShortcut",
    "make_shortcut",
    "BasicBlock",
    "Bottleneck",
    "make_stage",
    "init_resnet",
    "Shortcut",
    "Block",
]

Shortcut = Literal["A", "B", "C"]


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """3x3 conv, padding 1, no bias (the batch norm that follows has a shift)."""
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """1x1 conv, no bias: mixes channels at each position (and subsamples when stride > 1)."""
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


class ZeroPadShortcut(nn.Module):
    """Option A: the identity subsampled by `stride`, zeros appended for the new channels.

    (N, in_channels, H, W) -> (N, out_channels, ceil(H/stride), ceil(W/stride)); no parameters.
    (Some CIFAR code pads on both sides: the same network up to a channel permutation.)
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(f"out_channels={out_channels} < in_channels={in_channels}")
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]  # (N, C_in, H/s, W/s)
        return F.pad(x, (0, 0, 0, 0, 0, self.out_channels - self.in_channels))  # (N, C_out, ...)


def make_shortcut(
    kind: Shortcut, in_channels: int, out_channels: int, stride: int = 1
) -> nn.Module | None:
    """The shortcut of one block, by the paper's options (sec. 4.1, table 3); None = identity.

    A: identity, zero-padding where the shape changes (parameter-free; the CIFAR nets).
    B: identity, a 1x1 conv + BN projection W_s x where the shape changes (torchvision).
    C: a projection in every block.
    """
    if kind not in ("A", "B", "C"):
        raise ValueError(f"shortcut must be 'A', 'B' or 'C', got {kind!r}")
    same_shape = stride == 1 and in_channels == out_channels
    if kind == "A":
        return None if same_shape else ZeroPadShortcut(in_channels, out_channels, stride)
    if kind == "B" and same_shape:
        return None
    return nn.Sequential(conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels))


class BasicBlock(nn.Module):
    """Two 3x3 convs and a shortcut: y = relu(F(x) + shortcut(x)), F = bn2(conv2(relu(bn1(conv1)))).

    (N, in_channels, H, W) -> (N, out_channels, H/stride, W/stride). With ``residual=False``
    it is the paper's "plain" block: y = relu(F(x)), no shortcut at all.
    """

    expansion = 1  # out_channels = expansion x the width of the stage (64, 128, 256, 512)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        residual: bool = True,
    ) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample = downsample  # None: identity shortcut (or none, when not residual)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))  # (N, C_out, H/s, W/s)
        out = self.bn2(self.conv2(out))  # F(x)
        if self.residual:
            out = out + (x if self.downsample is None else self.downsample(x))  # F(x) + x
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 -> 1x1 expand (x4), and a shortcut: y = relu(F(x) + shortcut(x)).

    (N, in_channels, H, W) -> (N, out_channels, H/stride, W/stride); the 3x3 conv runs on
    ``out_channels // 4`` channels, so it costs about as much as a basic block at a quarter width.
    ``stride_in_1x1`` picks which conv of a strided block subsamples: the 1x1 (the paper, v1) or
    the 3x3 (torchvision, v1.5, the default); the NOTE in ``__init__`` gives the cost.
    """

    expansion = 4

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        residual: bool = True,
        stride_in_1x1: bool = False,
    ) -> None:
        super().__init__()
        width = out_channels // self.expansion
        # NOTE: the paper (v1) strides the first 1x1 conv (``stride_in_1x1=True``); torchvision
        # (v1.5) strides the 3x3 conv, which then sees every position instead of 1 in 4: about
        # +0.5% top-1, same parameters, but conv1 runs on the full H x W grid: in_channels *
        # out_channels/4 * 3HW/4 more MACs per strided block (77,070,336 in each of layer2..4
        # at 224).
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = conv1x1(in_channels, width, s1)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, s3)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, out_channels)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))  # (N, C_out/4, H or H/s, W or W/s)
        out = self.relu(self.bn2(self.conv2(out)))  # (N, C_out/4, H/s, W/s)
        out = self.bn3(self.conv3(out))  # F(x): (N, C_out, H/s, W/s)
        if self.residual:
            out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu(out)


Block = type[BasicBlock] | type[Bottleneck]


def make_stage(
    block: Block,
    in_channels: int,
    out_channels: int,
    num_blocks: int,
    stride: int = 1,
    shortcut: Shortcut = "B",
    residual: bool = True,
    **block_kwargs: bool,
) -> nn.Sequential:
    """`num_blocks` blocks; the first one takes `stride` and changes the channel count.

    (N, in_channels, H, W) -> (N, out_channels, H/stride, W/stride).
    """
    blocks = []
    for i in range(num_blocks):
        cin, s = (in_channels, stride) if i == 0 else (out_channels, 1)
        down = make_shortcut(shortcut, cin, out_channels, s) if residual else None
        blocks.append(block(cin, out_channels, s, down, residual, **block_kwargs))
    return nn.Sequential(*blocks)


def init_resnet(model: nn.Module, zero_init_residual: bool = False) -> None:
    """He (Kaiming) normal init for convs, BN scale 1 and shift 0, as torchvision and the paper.

    ``zero_init_residual``: start each block's last BN scale at 0, so every residual block starts
    as the identity (Goyal et al., 2017); not for plain nets, whose blocks would output 0.
    """
    init_conv_bn(model)  # the fc keeps PyTorch's default init, as in torchvision
    if zero_init_residual:
        for m in model.modules():
            if isinstance(m, Bottleneck | BasicBlock) and m.residual:
                last = m.bn3 if isinstance(m, Bottleneck) else m.bn2
                nn.init.zeros_(last.weight)

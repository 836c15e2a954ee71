"""Blocks shared by the inception family: GoogLeNet (`googlenet`) and Inception v2/v3
(`inception_v3`).

- `BasicConv2d`: conv -> [batch norm] -> ReLU, the unit every inception branch is made of;
- `transform_input`: the input rescaling that the weights ported from Google expect;
- `InceptionFig5`: the inception module of figure 5 of Szegedy et al., "Rethinking the Inception
  Architecture for Computer Vision" (CVPR 2016), where the 5x5 conv of GoogLeNet's module becomes
  two stacked 3x3 convs: the first of that paper's factorisations (v2/v3);
- `NaiveInceptionModule` and `InceptionModule`: GoogLeNet's module without and with 1x1
  reductions (figures 2a and 2b of Szegedy et al. 2015), the module that figure 5 refines;
- `factorized_conv`: an n x n conv as 1 x n then n x 1 (figure 6 of the 2016 paper).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "BasicConv2d",
    "InceptionFig5",
    "InceptionModule",
    "NaiveInceptionModule",
    "conv1xn",
    "convnx1",
    "factorized_conv",
    "transform_input",
]


def transform_input(x: Tensor) -> Tensor:
    """Undo ImageNet's mean/std normalisation and rescale to [-1, 1], (x*std + mean - 0.5) / 0.5
    per channel: the input scaling of the weights ported from Google. Same float operations as
    torchvision, so outputs match to the bit. Shapes: (N, 3, H, W) -> (N, 3, H, W)."""
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    channels = [x[:, i : i + 1] * (std[i] / 0.5) + (mean[i] - 0.5) / 0.5 for i in range(3)]
    return torch.cat(channels, 1)


class BasicConv2d(nn.Module):
    """Conv -> [BatchNorm] -> ReLU, with torchvision's attribute names ``conv`` and ``bn``.

    ``batch_norm=True``: conv without bias, then BN with eps=0.001 (torchvision's GoogLeNet and
    Inception v3). ``batch_norm=False``: conv with bias, as in the 2015 GoogLeNet paper (``bn`` is
    an `nn.Identity`, which has no entry in the state_dict).
    Shapes: (N, in_channels, H, W) -> (N, out_channels, H', W') by the usual conv formula.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int = 1,
        padding: int | tuple[int, int] = 0,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, padding, bias=not batch_norm
        )
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001) if batch_norm else nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.bn(self.conv(x)))


class InceptionFig5(nn.Module):
    """Figure 5 of "Rethinking the Inception Architecture": GoogLeNet's module (its figure 4, the
    2015 paper's figure 2b) with the 5x5 conv replaced by two stacked 3x3 convs.

    Four branches on the same input, concatenated along channels:
    1x1 | 1x1 reduce -> 3x3 | 1x1 reduce -> 3x3 -> 3x3 | 3x3 average pool -> 1x1 "pool proj".
    Shapes: (N, in_channels, H, W) -> (N, ch1x1 + ch3x3 + ch5x5 + pool_proj, H, W).

    Why (section 3.1): two 3x3 convs in a row see a 5x5 window (receptive field 3 + 3 - 1 = 5)
    with 2 x 9 = 18 weights per input-output channel pair instead of 25, 28% fewer, and add a
    ReLU between them. The arguments are those of GoogLeNet's `InceptionModule` (the columns of
    its table 1), so ``InceptionFig5(*INCEPTION_CFG["3a"])`` is module (3a) factorised: the
    branch that held the 5x5 runs ch5x5red -> 3x3, ch5x5 -> 3x3, ch5x5.

    Every conv is a `BasicConv2d` with batch norm, as in Inception v2/v3; the pool is an average
    pool, as in Inception v3's 35 x 35 modules (the figure only says "Pool"). Attribute names
    follow torchvision's `InceptionA`, which is this module plus a 5x5 branch (see its NOTE).
    """

    def __init__(
        self,
        in_channels: int,
        ch1x1: int,
        ch3x3red: int,
        ch3x3: int,
        ch5x5red: int,
        ch5x5: int,
        pool_proj: int,
    ) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, ch1x1, 1)
        self.branch3x3_1 = BasicConv2d(in_channels, ch3x3red, 1)
        self.branch3x3_2 = BasicConv2d(ch3x3red, ch3x3, 3, padding=1)
        # The 5x5 of figure 4, factorised: two 3x3 convs, each keeping H and W (padding 1)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, ch5x5red, 1)
        self.branch3x3dbl_2 = BasicConv2d(ch5x5red, ch5x5, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(ch5x5, ch5x5, 3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_proj, 1)
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x: Tensor) -> Tensor:  # (N, C_in, H, W) -> (N, out_channels, H, W)
        b1 = self.branch1x1(x)  # (N, ch1x1, H, W)
        b3 = self.branch3x3_2(self.branch3x3_1(x))  # (N, ch3x3, H, W)
        b5 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))  # (N, ch5x5, H, W)
        pooled = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1)  # (N, C_in, H, W)
        bp = self.branch_pool(pooled)  # (N, pool_proj, H, W)
        return torch.cat([b1, b3, b5, bp], 1)


class NaiveInceptionModule(nn.Module):
    """The "naive" inception module (paper, figure 2a): 1x1, 3x3 and 5x5 convs and a 3x3 max pool
    side by side on the same input, concatenated along channels; no 1x1 reductions.

    Shapes: (N, in_channels, H, W) -> (N, ch1x1 + ch3x3 + ch5x5 + in_channels, H, W). The pool
    branch keeps all ``in_channels``, so the width can only grow from module to module, and the
    3x3 and 5x5 convs see all input channels: the cost problem that figure 2b solves.
    """

    def __init__(self, in_channels: int, ch1x1: int, ch3x3: int, ch5x5: int) -> None:
        super().__init__()
        self.branch1 = BasicConv2d(in_channels, ch1x1, 1, batch_norm=False)
        self.branch2 = BasicConv2d(in_channels, ch3x3, 3, padding=1, batch_norm=False)
        self.branch3 = BasicConv2d(in_channels, ch5x5, 5, padding=2, batch_norm=False)
        self.branch4 = nn.MaxPool2d(3, stride=1, padding=1)
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + in_channels

    def forward(self, x: Tensor) -> Tensor:
        branches = (self.branch1, self.branch2, self.branch3, self.branch4)
        return torch.cat([b(x) for b in branches], dim=1)


class InceptionModule(nn.Module):
    """Inception module with dimension reductions (paper, figure 2b).

    Four branches on the same input, concatenated along channels:
    1x1 conv | 1x1 reduce -> 3x3 conv | 1x1 reduce -> 5x5 conv | 3x3 max pool -> 1x1 "pool proj".
    Shapes: (N, in_channels, H, W) -> (N, ch1x1 + ch3x3 + ch5x5 + pool_proj, H, W).

    ``kernel_5x5`` is the kernel of the "5x5" branch: 5 in the paper (the default), 3 in
    torchvision. ``batch_norm`` adds BN after every conv (torchvision), instead of conv biases.
    """

    def __init__(
        self,
        in_channels: int,
        ch1x1: int,
        ch3x3red: int,
        ch3x3: int,
        ch5x5red: int,
        ch5x5: int,
        pool_proj: int,
        kernel_5x5: int = 5,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()

        def conv(c_in: int, c_out: int, k: int) -> BasicConv2d:
            return BasicConv2d(c_in, c_out, k, padding=k // 2, batch_norm=batch_norm)

        self.branch1 = conv(in_channels, ch1x1, 1)
        self.branch2 = nn.Sequential(conv(in_channels, ch3x3red, 1), conv(ch3x3red, ch3x3, 3))
        # NOTE: torchvision uses kernel_5x5=3 here (a bug kept for its pretrained weights); the
        # paper's 5x5 is the default of this class and of `googlenet_paper`.
        self.branch3 = nn.Sequential(
            conv(in_channels, ch5x5red, 1), conv(ch5x5red, ch5x5, kernel_5x5)
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True), conv(in_channels, pool_proj, 1)
        )
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x: Tensor) -> Tensor:  # (N, C_in, H, W) -> (N, out_channels, H, W)
        branches = (self.branch1, self.branch2, self.branch3, self.branch4)
        return torch.cat([b(x) for b in branches], dim=1)


def conv1xn(in_channels: int, out_channels: int, n: int) -> BasicConv2d:
    """A 1 x n conv that keeps H and W: (N, C_in, H, W) -> (N, C_out, H, W)."""
    return BasicConv2d(in_channels, out_channels, (1, n), padding=(0, n // 2))


def convnx1(in_channels: int, out_channels: int, n: int) -> BasicConv2d:
    """An n x 1 conv that keeps H and W: (N, C_in, H, W) -> (N, C_out, H, W)."""
    return BasicConv2d(in_channels, out_channels, (n, 1), padding=(n // 2, 0))


def factorized_conv(
    in_channels: int, mid_channels: int, out_channels: int, n: int
) -> nn.Sequential:
    """An n x n conv factorised as 1 x n then n x 1 (figure 6): same n x n receptive field with
    n*(C_in*C_mid + C_mid*C_out) weights instead of n*n*C_in*C_out.

    Shapes: (N, in_channels, H, W) -> (N, out_channels, H, W).
    """
    return nn.Sequential(
        conv1xn(in_channels, mid_channels, n), convnx1(mid_channels, out_channels, n)
    )

"""Inception v2/v3: Szegedy et al., "Rethinking the Inception Architecture for Computer Vision",
CVPR 2016. torchvision-compatible: same attribute names (``Mixed_5b.branch7x7_2``...), so
torchvision's `state_dict` loads with ``strict=True`` and gives the same outputs.

The idea of the paper is to factorise convolutions, keeping the receptive field for fewer weights:

- a 5x5 conv becomes two stacked 3x3 convs (figure 5): 2*9 = 18 instead of 25 weights per
  input-output channel pair (-28%); see `InceptionFig5` (the figure's module, defined in
  `cnncourse.models.inception_blocks`) and the ``branch3x3dbl`` of `InceptionA`;
- an n x n conv becomes a 1 x n conv then an n x 1 conv (figure 6): 2n instead of n*n weights,
  14 instead of 49 for n = 7 (-71%); see `factorized_conv` and `InceptionC`;
- on the coarsest grid the 1x3 and 3x1 convs run side by side and are concatenated, widening
  the output (figure 7); see `InceptionE`;
- the grid is reduced by a stride-2 conv branch in parallel with a stride-2 pool (figure 10),
  instead of a pool before or after an inception module; see `InceptionB` and `InceptionD`.

Every conv is a `BasicConv2d` (conv without bias, BN with eps=0.001, ReLU). Input 299x299
(at least 75x75); the output grid sizes below are for 299.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnncourse.models.inception_blocks import (
    BasicConv2d,
    InceptionFig5,
    conv1xn,
    convnx1,
    factorized_conv,
    transform_input,
)
from cnncourse.models.spec import ModelSpec, builders

__all__ = [
    "BasicConv2d",
    "InceptionFig5",
    "factorized_conv",
    "InceptionA",
    "InceptionB",
    "InceptionC",
    "InceptionD",
    "InceptionE",
    "InceptionAux",
    "Inception3",
    "InceptionOutputs",
    "inception_v3",
    "SPECS",
    "MODELS",
]

InceptionOutputs = namedtuple("InceptionOutputs", ["logits", "aux_logits"])


def _avg_pool_3x3(x: Tensor) -> Tensor:
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1)


class InceptionA(nn.Module):
    """35x35 module (Mixed_5b/c/d): 1x1 | 1x1 -> 5x5 | 1x1 -> 3x3 -> 3x3 | avg pool -> 1x1.

    Shapes: (N, in_channels, H, W) -> (N, 224 + pool_features, H, W). Figure 5's module
    (`InceptionFig5`) with a 5x5 branch added (see the NOTE in ``__init__``).
    """

    def __init__(self, in_channels: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, 1)
        # NOTE: the paper's figure 5 replaces every 5x5 by two 3x3 (`InceptionFig5`); torchvision
        # (and the TF-slim checkpoint it was ported from) keep this 5x5 branch next to the
        # double-3x3 one.
        self.branch5x5_1 = BasicConv2d(in_channels, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)  # two 3x3 = one 5x5 field
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, 1)

    def forward(self, x: Tensor) -> Tensor:
        b1 = self.branch1x1(x)  # 64
        b5 = self.branch5x5_2(self.branch5x5_1(x))  # 64
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))  # 96
        bp = self.branch_pool(_avg_pool_3x3(x))  # pool_features
        return torch.cat([b1, b5, b3, bp], 1)


class InceptionB(nn.Module):
    """Grid reduction 35 -> 17 (Mixed_6a): 3x3/2 | 1x1 -> 3x3 -> 3x3/2 | max pool 3x3/2.

    Shapes: (N, in_channels, H, W) -> (N, 480 + in_channels, (H-3)//2 + 1, (W-3)//2 + 1).
    """

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3(x)  # 384
        bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))  # 96
        return torch.cat([b3, bd, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionC(nn.Module):
    """17x17 module (Mixed_6b..e) with 7x7 convs factorised into 1x7 and 7x1 (figure 6):
    1x1 | 1x1 -> 1x7 -> 7x1 | 1x1 -> 7x1 -> 1x7 -> 7x1 -> 1x7 | avg pool -> 1x1.

    ``channels_7x7`` is the width c7 inside the factorised branches.
    Shapes: (N, in_channels, H, W) -> (N, 768, H, W).
    """

    def __init__(self, in_channels: int, channels_7x7: int) -> None:
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, 1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, 1)
        self.branch7x7_2 = conv1xn(c7, c7, 7)
        self.branch7x7_3 = convnx1(c7, 192, 7)
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, 1)
        self.branch7x7dbl_2 = convnx1(c7, c7, 7)
        self.branch7x7dbl_3 = conv1xn(c7, c7, 7)
        self.branch7x7dbl_4 = convnx1(c7, c7, 7)
        self.branch7x7dbl_5 = conv1xn(c7, 192, 7)
        self.branch_pool = BasicConv2d(in_channels, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = self.branch7x7dbl_1(x)
        bd = self.branch7x7dbl_3(self.branch7x7dbl_2(bd))
        bd = self.branch7x7dbl_5(self.branch7x7dbl_4(bd))
        bp = self.branch_pool(_avg_pool_3x3(x))
        return torch.cat([b1, b7, bd, bp], 1)  # 4 x 192 = 768


class InceptionD(nn.Module):
    """Grid reduction 17 -> 8 (Mixed_7a): 1x1 -> 3x3/2 | 1x1 -> 1x7 -> 7x1 -> 3x3/2 | max pool.

    Shapes: (N, in_channels, H, W) -> (N, 512 + in_channels, (H-3)//2 + 1, (W-3)//2 + 1).
    """

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, 1)
        self.branch7x7x3_2 = conv1xn(192, 192, 7)
        self.branch7x7x3_3 = convnx1(192, 192, 7)
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))  # 320
        b7 = self.branch7x7x3_2(self.branch7x7x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(b7))  # 192
        return torch.cat([b3, b7, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionE(nn.Module):
    """8x8 module (Mixed_7b/c) with expanded filter banks (figure 7): the 1x3 and 3x1 convs run
    in parallel and are concatenated. 1x1 | 1x1 -> (1x3, 3x1) | 1x1 -> 3x3 -> (1x3, 3x1) | pool.

    Shapes: (N, in_channels, H, W) -> (N, 2048, H, W).
    """

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 320, 1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, 1)
        self.branch3x3_2a = conv1xn(384, 384, 3)
        self.branch3x3_2b = convnx1(384, 384, 3)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = conv1xn(384, 384, 3)
        self.branch3x3dbl_3b = convnx1(384, 384, 3)
        self.branch_pool = BasicConv2d(in_channels, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        b1 = self.branch1x1(x)  # 320
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)  # 768
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)  # 768
        bp = self.branch_pool(_avg_pool_3x3(x))  # 192
        return torch.cat([b1, b3, bd, bp], 1)


class InceptionAux(nn.Module):
    """Auxiliary classifier on the 17x17 grid (training only; the paper, section 7, finds it acts
    as a regulariser). avg pool 5x5/3 -> 1x1 conv 128 -> 5x5 conv 768 -> global pool -> FC.

    Shapes: (N, in_channels, 17, 17) -> (N, num_classes).
    """

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.conv0 = BasicConv2d(in_channels, 128, 1)
        self.conv1 = BasicConv2d(128, 768, 5)
        self.fc = nn.Linear(768, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = F.avg_pool2d(x, kernel_size=5, stride=3)  # (N, 768, 5, 5)
        x = self.conv1(self.conv0(x))  # (N, 768, 1, 1)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class Inception3(nn.Module):
    """Inception v3 (torchvision's `Inception3`). Input (N, 3, 299, 299), at least 75x75.

    Eval mode, or ``aux_logits=False``: returns logits (N, num_classes). Training mode with
    ``aux_logits=True``: InceptionOutputs(logits, aux_logits), like torchvision.
    """

    def __init__(
        self,
        num_classes: int = 1000,
        aux_logits: bool = True,
        transform_input: bool = False,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.aux_logits = aux_logits
        self.transform_input = transform_input
        # Stem (paper, table 1): 299 -> 149 -> 147 -> 73 -> 71 -> 35
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)  # 149x149
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)  # 147x147
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)  # 147x147
        self.maxpool1 = nn.MaxPool2d(3, stride=2)  # 73x73
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)  # 71x71
        self.maxpool2 = nn.MaxPool2d(3, stride=2)  # 35x35
        self.Mixed_5b = InceptionA(192, pool_features=32)  # 256 channels
        self.Mixed_5c = InceptionA(256, pool_features=64)  # 288
        self.Mixed_5d = InceptionA(288, pool_features=64)  # 288
        self.Mixed_6a = InceptionB(288)  # 768 x 17 x 17
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        if aux_logits:
            self.AuxLogits = InceptionAux(768, num_classes)
        self.Mixed_7a = InceptionD(768)  # 1280 x 8 x 8
        self.Mixed_7b = InceptionE(1280)  # 2048
        self.Mixed_7c = InceptionE(2048)  # 2048
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(2048, num_classes)
        for m in self.modules():  # torchvision's init
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.trunc_normal_(m.weight, mean=0.0, std=0.1, a=-2, b=2)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if aux_logits:  # smaller weights for the auxiliary head, as torchvision
            nn.init.trunc_normal_(self.AuxLogits.conv1.conv.weight, std=0.01, a=-2, b=2)
            nn.init.trunc_normal_(self.AuxLogits.fc.weight, std=0.001, a=-2, b=2)

    def forward(self, x: Tensor) -> Tensor | InceptionOutputs:
        if self.transform_input:
            x = transform_input(x)
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))  # (N, 64, 147, 147)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(self.maxpool1(x)))  # (N, 192, 71, 71)
        x = self.Mixed_5d(self.Mixed_5c(self.Mixed_5b(self.maxpool2(x))))  # (N, 288, 35, 35)
        x = self.Mixed_6a(x)  # (N, 768, 17, 17)
        x = self.Mixed_6e(self.Mixed_6d(self.Mixed_6c(self.Mixed_6b(x))))  # (N, 768, 17, 17)
        use_aux = self.aux_logits and self.training
        aux = self.AuxLogits(x) if use_aux else None
        x = self.Mixed_7c(self.Mixed_7b(self.Mixed_7a(x)))  # (N, 2048, 8, 8)
        x = torch.flatten(self.dropout(self.avgpool(x)), 1)  # (N, 2048)
        x = self.fc(x)  # (N, num_classes)
        return InceptionOutputs(x, aux) if use_aux else x


def inception_v3(num_classes: int = 1000, aux_logits: bool = True, **kwargs: object) -> Inception3:
    """torchvision-compatible Inception v3; see `Inception3`."""
    return Inception3(num_classes, aux_logits, **kwargs)


_PAPER = "Szegedy et al. 2016, Rethinking the Inception architecture for computer vision"

#: One record per model (see `cnncourse.models.spec`); `cnncourse.models` merges them.
SPECS: tuple[ModelSpec, ...] = (
    ModelSpec(
        "inception_v3",
        inception_v3,
        input_size=(3, 299, 299),
        paper=_PAPER,
        torchvision="inception_v3",
    ),
)
MODELS: dict[str, Callable[..., nn.Module]] = builders(SPECS)

"""MobileNet v1 (Howard et al. 2017) and v2 (Sandler et al., CVPR 2018).

**MobileNet v1** stacks depthwise-separable convolutions (`layers.DepthwiseSeparableConv`): a
3x3 depthwise conv (one filter per channel) then a 1x1 pointwise conv, each followed by BN and
ReLU. Two hyper-parameters trade accuracy for cost (section 3.3-3.4): the **width multiplier**
alpha thins every layer to alpha*M channels (cost ~ alpha^2), and the **resolution multiplier**
rho is simply a smaller input (cost ~ rho^2): the network is fully convolutional up to a global
average pool, so `mobilenet_v1` takes any input size (224, 192, 160, 128 in the paper).

Paper figures, recomputed (tests pin each; M = 10^6, MACs = the paper's "mult-adds"):

- Table 1 lists the second-to-last depthwise layer as "Conv dw / s2" on a 7x7x1024 input with a
  7x7x1024 output: an erratum; the stride must be 1, as every implementation has it.
- Table 8, 1.0 MobileNet-224: 569M mult-adds, 4.2M params -> 568,740,352 MACs and 4,231,976
  parameters (4,209,088 without the BN scales and shifts).
- Table 6 (width, at 224): 0.75 -> 325M, 2.6M; 0.5 -> 149M, 1.3M; 0.25 -> 41M, 0.5M: all agree.
- Table 7 (resolution, alpha=1): 192 -> 418M; 160 -> 290M; 128 -> 186M: all agree.
- Table 2 (share of the 1.0 MobileNet-224 by layer type, mult-adds / params): 1x1 conv
  94.86% / 74.59%, depthwise 3.06% / 1.06%, full 3x3 conv 1.19% / 0.02%, FC 0.18% / 24.33%.
  All agree to 0.01% (parameters = conv and FC weights, no biases, no BN) except the full 3x3
  conv's mult-adds: 112*112*32*27 = 10,838,016 MACs are 1.91% of the total, not 1.19% (an
  erratum, the digits swapped; the printed column would not sum to 100%).

**MobileNet v2** (`mobilenet_v2`) is torchvision's: same attribute names (``features.1.conv.0.0``),
so its state_dict loads with ``strict=True``. Its block, the inverted residual, expands the
channels t times with a 1x1 conv, filters them with a 3x3 depthwise conv, and projects them back
with a linear 1x1 conv (no ReLU: the "linear bottleneck"); the shortcut joins the thin ends.
Table 4 of the paper: 300M mult-adds, 3.4M params -> 300,774,272 MACs and 3,504,872 parameters
(torchvision's and Keras' trainable count). The 3.4M is not reproduced by any counting convention
we tried (without BN: 3,470,760; without the classifier's bias: 3,503,872).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from cnncourse.layers import ConvBNReLU, DepthwiseSeparableConv, init_conv_bn
from cnncourse.models.spec import ModelSpec, builders

__all__ = [
    "MobileNetV1",
    "InvertedResidual",
    "MobileNetV2",
    "mobilenet_v1",
    "mobilenet_v2",
    "V1_CFG",
    "V2_CFG",
    "SPECS",
    "MODELS",
]

# MobileNet v1, table 1: (out_channels, stride) of each depthwise-separable layer after the first
# full 3x3 conv (32 channels, stride 2). Grid for a 224 input in the comments.
V1_CFG: list[tuple[int, int]] = [
    (64, 1),  # 112
    (128, 2),  # 56
    (128, 1),
    (256, 2),  # 28
    (256, 1),
    (512, 2),  # 14
    *[(512, 1)] * 5,
    (1024, 2),  # 7
    (1024, 1),  # NOTE: "s2" in the paper's table 1, an erratum: 7x7 in, 7x7 out
]

# MobileNet v2, table 2: (expansion t, out_channels c, repeats n, first stride s)
V2_CFG: list[tuple[int, int, int, int]] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


class MobileNetV1(nn.Module):
    """MobileNet v1: 3x3 conv (32, /2) -> 13 depthwise-separable layers -> global pool -> FC.

    ``width_mult`` is alpha: every layer gets int(alpha * channels) channels.
    Shapes: (N, 3, H, W) -> (N, num_classes); the last grid is H/32 x W/32 (7x7 for 224).
    """

    def __init__(
        self, num_classes: int = 1000, width_mult: float = 1.0, dropout: float = 0.0
    ) -> None:
        super().__init__()
        c = int(32 * width_mult)
        layers: list[nn.Module] = [ConvBNReLU(3, c, 3, stride=2)]  # (N, 32a, H/2, W/2)
        for out, stride in V1_CFG:
            layers.append(DepthwiseSeparableConv(c, int(out * width_mult), 3, stride))
            c = int(out * width_mult)
        self.features = nn.Sequential(*layers)  # (N, 1024a, H/32, W/32)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(c, num_classes))
        init_conv_bn(self, linear_std=0.01)  # torchvision's MobileNet init

    def forward(self, x: Tensor) -> Tensor:
        x = torch.flatten(self.avgpool(self.features(x)), 1)  # (N, 1024a)
        return self.classifier(x)  # (N, num_classes)


def _make_divisible(v: float, divisor: int = 8) -> int:
    """Round v to the nearest multiple of ``divisor``, never going below 90% of v (torchvision)."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


class InvertedResidual(nn.Module):
    """MobileNet v2 block: 1x1 expand (t*C_in, ReLU6) -> 3x3 depthwise (ReLU6) -> 1x1 linear.

    The expansion is skipped when t = 1. A residual connection joins input and output when the
    stride is 1 and in_channels == out_channels.
    Shapes: (N, in_channels, H, W) -> (N, out_channels, ceil(H/stride), ceil(W/stride)).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        hidden = int(round(in_channels * expand_ratio))
        self.use_res_connect = stride == 1 and in_channels == out_channels
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU(in_channels, hidden, 1, activation=nn.ReLU6))  # expand
        layers += [
            ConvBNReLU(hidden, hidden, 3, stride, groups=hidden, activation=nn.ReLU6),  # depthwise
            nn.Conv2d(hidden, out_channels, 1, bias=False),  # project, linear: no ReLU
            nn.BatchNorm2d(out_channels),
        ]
        self.conv = nn.Sequential(*layers)
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNet v2 (torchvision's): 3x3 conv (32, /2) -> 17 inverted residuals -> 1x1 conv
    (1280) -> global pool -> dropout -> FC. Shapes: (N, 3, H, W) -> (N, num_classes).

    ``width_mult`` scales every width, rounded to a multiple of 8; the last conv stays at 1280
    channels for width_mult <= 1.
    """

    def __init__(
        self, num_classes: int = 1000, width_mult: float = 1.0, dropout: float = 0.2
    ) -> None:
        super().__init__()
        c = _make_divisible(32 * width_mult)
        last = _make_divisible(1280 * max(1.0, width_mult))
        layers: list[nn.Module] = [ConvBNReLU(3, c, 3, stride=2, activation=nn.ReLU6)]
        for t, out, n, s in V2_CFG:
            out = _make_divisible(out * width_mult)
            for i in range(n):
                layers.append(InvertedResidual(c, out, s if i == 0 else 1, t))
                c = out
        layers.append(ConvBNReLU(c, last, 1, activation=nn.ReLU6))
        self.features = nn.Sequential(*layers)  # (N, 1280, H/32, W/32)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last, num_classes))
        init_conv_bn(self, linear_std=0.01)  # torchvision's MobileNet init

    def forward(self, x: Tensor) -> Tensor:
        x = nn.functional.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(torch.flatten(x, 1))  # (N, num_classes)


def mobilenet_v1(num_classes: int = 1000, width_mult: float = 1.0, **kwargs: object) -> MobileNetV1:
    """MobileNet v1 with width multiplier alpha = ``width_mult``; see `MobileNetV1`."""
    return MobileNetV1(num_classes, width_mult, **kwargs)


def mobilenet_v2(num_classes: int = 1000, width_mult: float = 1.0, **kwargs: object) -> MobileNetV2:
    """torchvision-compatible MobileNet v2; see `MobileNetV2`."""
    return MobileNetV2(num_classes, width_mult, **kwargs)


#: One record per model (see `cnncourse.models.spec`); `cnncourse.models` merges them.
SPECS: tuple[ModelSpec, ...] = (
    ModelSpec(
        "mobilenet_v1",
        mobilenet_v1,
        paper="Howard et al. 2017, MobileNets: efficient CNNs for mobile vision applications",
    ),
    ModelSpec(
        "mobilenet_v2",
        mobilenet_v2,
        paper="Sandler et al. 2018, MobileNetV2: inverted residuals and linear bottlenecks",
        torchvision="mobilenet_v2",
    ),
)
MODELS: dict[str, Callable[..., nn.Module]] = builders(SPECS)

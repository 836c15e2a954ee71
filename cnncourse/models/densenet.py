"""DenseNet: Huang et al., "Densely Connected Convolutional Networks", CVPR 2017.

Layer l of a dense block receives the feature maps of *all* preceding layers of the block,
concatenated: x_l = H_l([x_0, x_1, ..., x_{l-1}]). Each H_l adds only k new maps (the growth rate
k), so layer l sees k_0 + k*(l-1) channels and its weights grow as O(l*k*k), not O(C*C).

- H_l is BN -> ReLU -> 3x3 conv (k maps); with a **bottleneck** (the "B" of DenseNet-B) it is
  BN -> ReLU -> 1x1 conv (4k maps) -> BN -> ReLU -> 3x3 conv (k maps).
- A **transition** between blocks, BN -> ReLU -> 1x1 conv -> 2x2 average pool, halves H and W,
  and with **compression** theta < 1 (the "C") keeps floor(theta*m) of its m input channels.

ImageNet models (`densenet121/161/169/201`) are torchvision's (attribute names
``features.denseblock1.denselayer1.norm1`` ..., so its state_dicts load with ``strict=True``).
CIFAR models (`densenet_cifar`, `densenet_bc_100_12`, `densenet_bc_250_24`) follow section 3 of the
paper: three blocks of (L-4)/3 layers, or (L-4)/6 bottleneck layers for DenseNet-BC, on 32x32,
16x16 and 8x8 grids; a first 3x3 conv with 16 output channels (2k for DenseNet-BC).

Table 2 of the paper, parameters, recomputed (exact counts for 10 classes; the tests pin them):
DenseNet (L=40, k=12) 1.0M -> 1,019,722; DenseNet (L=100, k=12) 7.0M -> 6,979,642;
DenseNet (L=100, k=24) 27.2M -> 27,249,082; DenseNet-BC (L=100, k=12) 0.8M -> 769,162;
DenseNet-BC (L=250, k=24) 15.3M -> 15,324,406; DenseNet-BC (L=190, k=40) 25.6M -> 25,624,430.
All round to the printed figures. The table gives one figure for CIFAR-10 and CIFAR-100; it is
the 10-class count: 100 classes add 90 x (C + 1) classifier weights (C = final channels), e.g.
DenseNet (L=40, k=12) has 1,060,132 parameters for CIFAR-100, which would round to 1.1M.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnncourse.models.spec import ModelSpec, builders

__all__ = [
    "DenseLayer",
    "DenseBlock",
    "Transition",
    "DenseNet",
    "densenet121",
    "densenet161",
    "densenet169",
    "densenet201",
    "densenet_cifar",
    "densenet_bc_100_12",
    "densenet_bc_250_24",
    "SPECS",
    "MODELS",
]


class DenseLayer(nn.Module):
    """The composite function H_l: [BN-ReLU-1x1 conv (bn_size*k)] -> BN-ReLU-3x3 conv (k maps).

    Shapes: (N, in_channels, H, W) -> (N, growth_rate, H, W); the input is the concatenation of
    all earlier maps of the block. ``bn_size=None`` drops the bottleneck (plain DenseNet); the
    single BN-ReLU-conv is then named ``norm1, relu1, conv1``.
    """

    def __init__(
        self, in_channels: int, growth_rate: int, bn_size: int | None = 4, drop_rate: float = 0.0
    ) -> None:
        super().__init__()
        if bn_size is not None:  # bottleneck: 1x1 conv down to bn_size * k channels, then 3x3
            mid = bn_size * growth_rate
            self.norm1 = nn.BatchNorm2d(in_channels)
            self.relu1 = nn.ReLU(inplace=True)
            self.conv1 = nn.Conv2d(in_channels, mid, 1, bias=False)
            self.norm2 = nn.BatchNorm2d(mid)
            self.relu2 = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(mid, growth_rate, 3, padding=1, bias=False)
        else:  # plain DenseNet: the 3x3 conv alone
            self.norm1 = nn.BatchNorm2d(in_channels)
            self.relu1 = nn.ReLU(inplace=True)
            self.conv1 = nn.Conv2d(in_channels, growth_rate, 3, padding=1, bias=False)
        self.drop_rate = drop_rate

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.children():  # norm, relu, conv [, norm, relu, conv], in order
            x = layer(x)
        return F.dropout(x, p=self.drop_rate, training=self.training) if self.drop_rate else x


class DenseBlock(nn.ModuleDict):
    """``num_layers`` dense layers; layer i (from 0) sees in_channels + i*k channels.

    Shapes: (N, in_channels, H, W) -> (N, in_channels + num_layers * growth_rate, H, W).
    """

    def __init__(
        self,
        num_layers: int,
        in_channels: int,
        growth_rate: int,
        bn_size: int | None = 4,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        for i in range(num_layers):
            layer = DenseLayer(in_channels + i * growth_rate, growth_rate, bn_size, drop_rate)
            self.add_module(f"denselayer{i + 1}", layer)
        self.out_channels = in_channels + num_layers * growth_rate

    def forward(self, x: Tensor) -> Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(torch.cat(features, 1)))  # x_l = H_l([x_0, ..., x_{l-1}])
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    """BN -> ReLU -> 1x1 conv -> 2x2 average pool, between two dense blocks.

    Shapes: (N, in_channels, H, W) -> (N, out_channels, H // 2, W // 2); out_channels is
    floor(theta * in_channels) for compression factor theta.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(in_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.pool = nn.AvgPool2d(2, stride=2)


class DenseNet(nn.Module):
    """DenseNet: a stem, dense blocks separated by transitions, BN -> ReLU -> global pool -> FC.

    ``block_config`` is the number of layers per block; ``num_init_features`` the stem's output
    channels; ``compression`` the theta of the transitions; ``bn_size=None`` for no bottleneck.
    ``stem="imagenet"``: 7x7/2 conv + 3x3/2 max pool (H/4); ``stem="cifar"``: one 3x3 conv.
    Shapes: (N, 3, H, W) -> (N, num_classes).
    """

    def __init__(
        self,
        growth_rate: int = 32,
        block_config: tuple[int, ...] = (6, 12, 24, 16),
        num_init_features: int = 64,
        bn_size: int | None = 4,
        compression: float = 0.5,
        drop_rate: float = 0.0,
        num_classes: int = 1000,
        stem: str = "imagenet",
    ) -> None:
        super().__init__()
        c = num_init_features
        if stem == "imagenet":
            self.features = nn.Sequential(
                OrderedDict(
                    conv0=nn.Conv2d(3, c, 7, stride=2, padding=3, bias=False),  # H/2
                    norm0=nn.BatchNorm2d(c),
                    relu0=nn.ReLU(inplace=True),
                    pool0=nn.MaxPool2d(3, stride=2, padding=1),  # H/4
                )
            )
        elif stem == "cifar":  # section 3: "a convolution with 16 (or 2k) output channels"
            self.features = nn.Sequential(
                OrderedDict(conv0=nn.Conv2d(3, c, 3, padding=1, bias=False))
            )
        else:
            raise ValueError(f"stem must be 'imagenet' or 'cifar', got {stem!r}")
        for i, num_layers in enumerate(block_config):
            block = DenseBlock(num_layers, c, growth_rate, bn_size, drop_rate)
            self.features.add_module(f"denseblock{i + 1}", block)
            c = block.out_channels
            if i != len(block_config) - 1:
                out = int(compression * c)  # floor(theta * m)
                self.features.add_module(f"transition{i + 1}", Transition(c, out))
                c = out
        # The final BN after the last block: "norm5" in the four-block ImageNet nets, "norm4" in
        # the three-block CIFAR ones (the stem's BN is norm0).
        self.features.add_module(f"norm{len(block_config) + 1}", nn.BatchNorm2d(c))
        self.classifier = nn.Linear(c, num_classes)
        for m in self.modules():  # torchvision's init
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.features(x))  # (N, C, H/32, W/32) on ImageNet, (N, C, 8, 8) on CIFAR
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)  # (N, C)
        return self.classifier(x)  # (N, num_classes)


def densenet121(**kwargs: object) -> DenseNet:
    """DenseNet-121 (k=32, blocks 6-12-24-16), torchvision-compatible."""
    return DenseNet(32, (6, 12, 24, 16), 64, **kwargs)


def densenet161(**kwargs: object) -> DenseNet:
    """DenseNet-161 (k=48, blocks 6-12-36-24, 96 stem channels), torchvision-compatible."""
    return DenseNet(48, (6, 12, 36, 24), 96, **kwargs)


def densenet169(**kwargs: object) -> DenseNet:
    """DenseNet-169 (k=32, blocks 6-12-32-32), torchvision-compatible."""
    return DenseNet(32, (6, 12, 32, 32), 64, **kwargs)


def densenet201(**kwargs: object) -> DenseNet:
    """DenseNet-201 (k=32, blocks 6-12-48-32), torchvision-compatible."""
    return DenseNet(32, (6, 12, 48, 32), 64, **kwargs)


def densenet_cifar(
    depth: int, growth_rate: int, bc: bool = True, num_classes: int = 10, **kwargs: object
) -> DenseNet:
    """DenseNet of depth L for 32x32 inputs (paper, section 3 and table 2).

    L counts the 3 dense blocks' convs, the stem conv, the 2 transition convs and the classifier:
    L = 3n + 4 for plain DenseNet (n layers of one conv per block) and L = 6n + 4 for DenseNet-BC
    (n bottleneck layers of two convs per block, compression 0.5, stem of 2k channels).
    """
    per_layer = 6 if bc else 3
    if (depth - 4) % per_layer:
        raise ValueError(f"depth must be {per_layer}n + 4 for bc={bc}, got {depth}")
    n = (depth - 4) // per_layer
    return DenseNet(
        growth_rate,
        (n, n, n),
        num_init_features=2 * growth_rate if bc else 16,
        bn_size=4 if bc else None,
        compression=0.5 if bc else 1.0,
        num_classes=num_classes,
        stem="cifar",
        **kwargs,
    )


def densenet_bc_100_12(num_classes: int = 10, **kwargs: object) -> DenseNet:
    """DenseNet-BC (L=100, k=12) for CIFAR: 0.8M parameters in table 2."""
    return densenet_cifar(100, 12, bc=True, num_classes=num_classes, **kwargs)


def densenet_bc_250_24(num_classes: int = 10, **kwargs: object) -> DenseNet:
    """DenseNet-BC (L=250, k=24) for CIFAR: 15.3M parameters in table 2."""
    return densenet_cifar(250, 24, bc=True, num_classes=num_classes, **kwargs)


_PAPER = "Huang et al. 2017, Densely connected convolutional networks"

#: One record per model (see `cnncourse.models.spec`); `cnncourse.models` merges them.
SPECS: tuple[ModelSpec, ...] = (
    ModelSpec("densenet121", densenet121, paper=_PAPER, torchvision="densenet121"),
    ModelSpec("densenet161", densenet161, paper=_PAPER, torchvision="densenet161"),
    ModelSpec("densenet169", densenet169, paper=_PAPER, torchvision="densenet169"),
    ModelSpec("densenet201", densenet201, paper=_PAPER, torchvision="densenet201"),
    ModelSpec("densenet_bc_100_12", densenet_bc_100_12, input_size=(3, 32, 32), paper=_PAPER),
    ModelSpec("densenet_bc_250_24", densenet_bc_250_24, input_size=(3, 32, 32), paper=_PAPER),
)
MODELS: dict[str, Callable[..., nn.Module]] = builders(SPECS)

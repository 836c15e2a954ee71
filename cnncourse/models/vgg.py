"""VGG (Simonyan and Zisserman, 2014, "Very Deep Convolutional Networks for Large-Scale Image
Recognition"), for ImageNet (torchvision's layout) and for CIFAR (32 x 32, 10 classes).

Only 3x3 convs (stride 1, padding 1: the size is kept) and 2x2 max-pools (stride 2: the size is
halved), in 5 blocks of 64, 128, 256, 512, 512 channels. Two stacked 3x3 convs see 5x5 with
2 * 9 = 18 weights per channel pair instead of 25; three see 7x7 with 27 instead of 49, with a
ReLU between each. A network is a list: ``cfgs["D"]`` (VGG-16) is 13 conv widths and 5 "M"s.

Attribute names (``features``, ``avgpool``, ``classifier``) and layer positions are torchvision's,
so its ``state_dict`` loads with ``strict=True`` (``vgg11`` ... ``vgg19_bn``).

Figures (224 x 224, 1000 classes; MACs of conv and fc layers, bias excluded)::

    model   params (paper table 2)   MACs: all layers   convs only       fc only
    vgg11   132,863,336  (133 M)      7,609,090,048      7,485,456,384    123,633,664
    vgg13   133,047,848  (133 M)     11,308,466,176     11,184,832,512    123,633,664
    vgg16   138,357,544  (138 M)     15,470,264,320     15,346,630,656    123,633,664
    vgg19   143,667,240  (144 M)     19,632,062,464     19,508,428,800    123,633,664

Erratum: He et al. (2015, sec. 3.3 and 4.1) quote VGG-16/19 at "15.3/19.6 billion FLOPs"
(multiply-adds). VGG-19's 19.6 counts every layer, VGG-16's 15.3 only its convolutions: counted
the same way the pair is 15.5/19.6 (all layers) or 15.3/19.5 (convs only). The three fc layers,
25088*4096 + 4096*4096 + 4096*1000 = 123.6M MACs, hold 124M of VGG-16's 138M parameters.
Batch norm (``_bn``) adds 2 parameters per channel and no MACs in our convention.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from cnncourse.layers import init_conv_bn
from cnncourse.models.spec import ModelSpec, builders

__all__ = [
    "VGG",
    "cfgs",
    "make_layers",
    "vgg_cifar",
    "vgg11",
    "vgg11_bn",
    "vgg13",
    "vgg13_bn",
    "vgg16",
    "vgg16_bn",
    "vgg19",
    "vgg19_bn",
    "vgg11_cifar",
    "vgg13_cifar",
    "vgg16_cifar",
    "vgg19_cifar",
    "SPECS",
    "MODELS",
]

# Paper table 1, columns A (11 weight layers), B (13), D (16), E (19): conv widths, "M" = max-pool.
# (A-LRN and C, which has 1x1 convs, are not in torchvision and not here.)
cfgs: dict[str, list[int | str]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [
        *(64, 64, "M", 128, 128, "M"),
        *(256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"),
    ],
}
DEPTHS = {11: "A", 13: "B", 16: "D", 19: "E"}


def make_layers(
    cfg: list[int | str], batch_norm: bool = False, in_channels: int = 3
) -> nn.Sequential:
    """The conv part of a VGG: (N, in_channels, H, W) -> (N, last width, H/2^p, W/2^p), p pools.

    Each number c is Conv3x3(c) [-> BatchNorm] -> ReLU; each "M" is MaxPool(2x2, stride 2).
    The convs keep their bias even before a batch norm, as torchvision's do.
    """
    layers: list[nn.Module] = []
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))  # H -> H/2
            continue
        if not isinstance(v, int):
            raise ValueError(f"a cfg entry is a channel count or 'M', got {v!r}")
        layers.append(nn.Conv2d(in_channels, v, kernel_size=3, padding=1))  # H -> H
        if batch_norm:
            layers.append(nn.BatchNorm2d(v))
        layers.append(nn.ReLU(inplace=True))
        in_channels = v
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """features -> avgpool (to pool_size x pool_size) -> 3 fc layers: (N, 3, H, W) -> (N, classes).

    ImageNet (the defaults): the 512 x 7 x 7 map of a 224 x 224 input (adaptive pooling makes other
    sizes fit) -> fc 4096 -> fc 4096 -> fc 1000, dropout 0.5 before the 2nd and 3rd fc.
    """

    def __init__(
        self,
        features: nn.Sequential,
        num_classes: int = 1000,
        pool_size: int = 7,
        hidden: int = 4096,
        dropout: float = 0.5,
        init_weights: bool = True,
    ) -> None:
        super().__init__()
        channels = next(m.out_channels for m in reversed(features) if isinstance(m, nn.Conv2d))
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((pool_size, pool_size))
        self.classifier = nn.Sequential(
            nn.Linear(channels * pool_size * pool_size, hidden),
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(hidden, num_classes),
        )
        if init_weights:  # torchvision's: He normal convs, N(0, 0.01) fc weights, zero biases
            # (the paper trained net A from N(0, 0.01), initialised the deeper nets from it, then
            # noted that Glorot's init works without this pre-training)
            init_conv_bn(self, linear_std=0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (N, 512, H/32, W/32)
        x = self.avgpool(x)  # (N, 512, 7, 7)
        x = torch.flatten(x, 1)  # (N, 25088)
        return self.classifier(x)  # (N, num_classes)


def _vgg(depth: int, batch_norm: bool, **kwargs: Any) -> VGG:
    return VGG(make_layers(cfgs[DEPTHS[depth]], batch_norm), **kwargs)


def vgg11(**kwargs: Any) -> VGG:
    """VGG-11 (config A): 8 convs + 3 fc."""
    return _vgg(11, False, **kwargs)


def vgg11_bn(**kwargs: Any) -> VGG:
    """VGG-11 with batch norm after each conv."""
    return _vgg(11, True, **kwargs)


def vgg13(**kwargs: Any) -> VGG:
    """VGG-13 (config B): 10 convs + 3 fc."""
    return _vgg(13, False, **kwargs)


def vgg13_bn(**kwargs: Any) -> VGG:
    """VGG-13 with batch norm after each conv."""
    return _vgg(13, True, **kwargs)


def vgg16(**kwargs: Any) -> VGG:
    """VGG-16 (config D): 13 convs + 3 fc; 138M params, 15.47 GMACs at 224 x 224."""
    return _vgg(16, False, **kwargs)


def vgg16_bn(**kwargs: Any) -> VGG:
    """VGG-16 with batch norm after each conv."""
    return _vgg(16, True, **kwargs)


def vgg19(**kwargs: Any) -> VGG:
    """VGG-19 (config E): 16 convs + 3 fc; 144M params, 19.63 GMACs at 224 x 224."""
    return _vgg(19, False, **kwargs)


def vgg19_bn(**kwargs: Any) -> VGG:
    """VGG-19 with batch norm after each conv."""
    return _vgg(19, True, **kwargs)


def vgg_cifar(depth: int, num_classes: int = 10, batch_norm: bool = True, **kwargs: Any) -> VGG:
    """VGG for 32 x 32 inputs: the same convs, a 512 -> 512 -> 512 -> num_classes classifier.

    The 5 pools take 32 x 32 to 1 x 1, so ``avgpool`` is (1, 1), and the classifier shrinks from
    123.6M parameters (25088 -> 4096 -> 4096 -> 1000) to 530,442 (512 -> 512 -> 512 -> 10);
    VGG-16 from 138M to 15.3M. Batch norm is on by default: without it (or the paper's staged
    init) the deeper nets train poorly from scratch. (N, 3, 32, 32) -> (N, num_classes).
    """
    if depth not in DEPTHS:
        raise ValueError(f"depth must be one of {sorted(DEPTHS)}, got {depth!r}")
    features = make_layers(cfgs[DEPTHS[depth]], batch_norm)
    return VGG(features, num_classes, pool_size=1, hidden=512, **kwargs)


def vgg11_cifar(**kwargs: Any) -> VGG:
    """VGG-11 for CIFAR-10 (batch norm by default)."""
    return vgg_cifar(11, **kwargs)


def vgg13_cifar(**kwargs: Any) -> VGG:
    """VGG-13 for CIFAR-10 (batch norm by default)."""
    return vgg_cifar(13, **kwargs)


def vgg16_cifar(**kwargs: Any) -> VGG:
    """VGG-16 for CIFAR-10 (batch norm by default)."""
    return vgg_cifar(16, **kwargs)


def vgg19_cifar(**kwargs: Any) -> VGG:
    """VGG-19 for CIFAR-10 (batch norm by default)."""
    return vgg_cifar(19, **kwargs)


_PAPER = "Simonyan and Zisserman 2015, Very deep convolutional networks for large-scale image ..."

#: One record per model (see `cnncourse.models.spec`); `cnncourse.models` merges them.
SPECS: tuple[ModelSpec, ...] = (
    ModelSpec("vgg11", vgg11, paper=_PAPER, torchvision="vgg11"),
    ModelSpec("vgg11_bn", vgg11_bn, paper=_PAPER, torchvision="vgg11_bn"),
    ModelSpec("vgg13", vgg13, paper=_PAPER, torchvision="vgg13"),
    ModelSpec("vgg13_bn", vgg13_bn, paper=_PAPER, torchvision="vgg13_bn"),
    ModelSpec("vgg16", vgg16, paper=_PAPER, torchvision="vgg16"),
    ModelSpec("vgg16_bn", vgg16_bn, paper=_PAPER, torchvision="vgg16_bn"),
    ModelSpec("vgg19", vgg19, paper=_PAPER, torchvision="vgg19"),
    ModelSpec("vgg19_bn", vgg19_bn, paper=_PAPER, torchvision="vgg19_bn"),
    ModelSpec("vgg11_cifar", vgg11_cifar, input_size=(3, 32, 32), paper=_PAPER),
    ModelSpec("vgg13_cifar", vgg13_cifar, input_size=(3, 32, 32), paper=_PAPER),
    ModelSpec("vgg16_cifar", vgg16_cifar, input_size=(3, 32, 32), paper=_PAPER),
    ModelSpec("vgg19_cifar", vgg19_cifar, input_size=(3, 32, 32), paper=_PAPER),
)
MODELS: dict[str, Callable[..., nn.Module]] = builders(SPECS)

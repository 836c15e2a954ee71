"""AlexNet (Krizhevsky, Sutskever and Hinton, 2012, "ImageNet Classification with Deep
Convolutional Neural Networks"), in two layouts.

``alexnet``: torchvision's single-tower layout, state_dict-compatible. It follows Krizhevsky's
later "One weird trick" paper (2014): 64, 192, 384, 256, 256 filters, no grouping, no LRN::

    conv 11x11/4, 64 -> pool 3/2 -> conv 5x5, 192 -> pool 3/2 -> conv 3x3, 384 -> conv 3x3, 256
    -> conv 3x3, 256 -> pool 3/2 -> (256 x 6 x 6) -> fc 4096 -> fc 4096 -> fc 1000
    61,100,840 params; 714,188,480 MACs at 224 x 224 (torchvision: 61.1M, 0.714 GFLOPS)

``alexnet_paper``: the 2012 paper's layout (its figure 2 and sec. 3.5): 96, 256, 384, 384, 256
filters split over two GPUs. Convs 2, 4 and 5 only see the maps on their own GPU, which is a
grouped convolution (``groups=2``: kernels of depth 48, 192, 192); conv 3 and the fc layers see
both. Local response normalisation follows the ReLU of convs 1 and 2::

    conv 11x11/4, 96 -> LRN -> pool 3/2 -> conv 5x5, 256 (g2) -> LRN -> pool 3/2
    -> conv 3x3, 384 -> conv 3x3, 384 (g2) -> conv 3x3, 256 (g2) -> pool 3/2 -> fc 4096 x 2, 1000
    groups=2: 60,965,224 params (the paper's "60 million"), 724,406,816 MACs at 227 x 227;
    groups=1 (the same filters on one GPU, all connected): 62,378,344 params

Where the ~61M comes from: the three fc layers hold 58.6M of them (fc6 alone, 9216 x 4096 + 4096,
holds 37.8M); the five convs only 2.3M (torchvision's 2.5M), yet they do 92% of the MACs.

Input size: the paper says 224 x 224, but its unpadded conv1 needs 227 x 227 to give its 55 x 55
maps (see the NOTE at ``LAYOUTS["paper"]``). The paper's neuron counts (sec. 3.5)
186,624-64,896-64,896-43,264-4096-4096-1000 are reproduced; its first figure, 253,440, is not
55 * 55 * 96 = 290,400 (an erratum in the paper).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from cnncourse.models.spec import ModelSpec, builders

__all__ = ["AlexNet", "LAYOUTS", "make_features", "alexnet", "alexnet_paper", "SPECS", "MODELS"]

# Each conv: (out_channels, kernel_size, stride, padding, groups, LRN after ReLU?, max-pool after?)
ConvSpec = tuple[int, int, int, int, int, bool, bool]
LAYOUTS: dict[str, list[ConvSpec]] = {
    "torchvision": [
        (64, 11, 4, 2, 1, False, True),
        (192, 5, 1, 2, 1, False, True),
        (384, 3, 1, 1, 1, False, False),
        (256, 3, 1, 1, 1, False, False),
        (256, 3, 1, 1, 1, False, True),
    ],
    "paper": [  # groups = 2: the two GPUs; conv1 is two towers of 48 seeing the whole image
        # NOTE: the paper says 224 x 224 inputs, but 11x11 filters at stride 4 without padding
        # only give its 55 x 55 maps from 227 x 227 (or from 224 with padding 2, torchvision's
        # choice). We follow the paper's unpadded conv and document 227; the adaptive pool, as
        # in torchvision, makes other sizes fit.
        (96, 11, 4, 0, 1, True, True),
        (256, 5, 1, 2, 2, True, True),
        (384, 3, 1, 1, 1, False, False),  # conv3 takes all 256 maps of both GPUs
        (384, 3, 1, 1, 2, False, False),
        (256, 3, 1, 1, 2, False, True),
    ],
}


def make_features(
    layout: Sequence[ConvSpec], in_channels: int = 3, groups: int = 1
) -> nn.Sequential:
    """Conv -> ReLU [-> LRN] [-> MaxPool 3x3/2] for each spec; spec groups > 1 become `groups`.

    Shapes: (N, in_channels, H, W) -> (N, last spec's out_channels, H', W').
    """
    layers: list[nn.Module] = []
    for out_channels, k, stride, padding, g, lrn, pool in layout:
        layers.append(
            nn.Conv2d(in_channels, out_channels, k, stride, padding, groups=groups if g > 1 else 1)
        )
        layers.append(nn.ReLU(inplace=True))
        if lrn:
            # NOTE: torch's LocalResponseNorm divides alpha by the size n; the paper's
            # alpha = 1e-4 multiplies the plain sum, so we pass alpha = 1e-4 * n
            # (k = 2, n = 5, beta = 0.75).
            layers.append(nn.LocalResponseNorm(size=5, alpha=5e-4, beta=0.75, k=2.0))
        if pool:
            layers.append(nn.MaxPool2d(kernel_size=3, stride=2))  # overlapping pooling: 3 > 2
        in_channels = out_channels
    return nn.Sequential(*layers)


class AlexNet(nn.Module):
    """(N, in_channels, H, W) -> (N, num_classes); H = W = 224 (torchvision) or 227 (paper).

    ``features`` end in 256 maps of 6 x 6 (``avgpool`` makes them 6 x 6 for other input sizes),
    then 3 fc layers with dropout 0.5: torchvision puts it before fc6 and fc7 (its indices 1, 4,
    6 hold the fc layers); the paper's Caffe model after the ReLUs of fc6 and fc7.
    """

    def __init__(
        self,
        layout: str = "torchvision",
        num_classes: int = 1000,
        in_channels: int = 3,
        groups: int = 1,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {sorted(LAYOUTS)}, got {layout!r}")
        self.features = make_features(LAYOUTS[layout], in_channels, groups)
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        fc6, fc7, fc8 = (
            nn.Linear(256 * 6 * 6, 4096),
            nn.Linear(4096, 4096),
            nn.Linear(4096, num_classes),
        )
        if layout == "torchvision":
            layers = [
                nn.Dropout(dropout),
                fc6,
                nn.ReLU(True),
                nn.Dropout(dropout),
                fc7,
                nn.ReLU(True),
                fc8,
            ]
        else:
            layers = [
                fc6,
                nn.ReLU(True),
                nn.Dropout(dropout),
                fc7,
                nn.ReLU(True),
                nn.Dropout(dropout),
                fc8,
            ]
        self.classifier = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (N, 256, 6, 6) at 224 (torchvision) or 227 (paper)
        x = self.avgpool(x)  # (N, 256, 6, 6)
        x = torch.flatten(x, 1)  # (N, 9216)
        return self.classifier(x)  # (N, num_classes)


def alexnet(**kwargs: Any) -> AlexNet:
    """torchvision's AlexNet: 61,100,840 params, 0.714 GMACs at 224 x 224."""
    return AlexNet("torchvision", **kwargs)


def alexnet_paper(groups: int = 2, **kwargs: Any) -> AlexNet:
    """The 2012 paper's AlexNet (96-filter conv1, LRN, two GPU groups); 227 x 227 inputs.

    ``groups=2``: the two-GPU network, 60,965,224 params; ``groups=1``: the same filters, all
    connected (as one GPU would run it), 62,378,344 params.
    """
    return AlexNet("paper", groups=groups, **kwargs)


_PAPER = "Krizhevsky et al. 2012, ImageNet classification with deep convolutional neural networks"

#: One record per model (see `cnncourse.models.spec`); `cnncourse.models` merges them.
SPECS: tuple[ModelSpec, ...] = (
    ModelSpec("alexnet", alexnet, in_channels=True, paper=_PAPER, torchvision="alexnet"),
    ModelSpec(
        "alexnet_paper", alexnet_paper, input_size=(3, 227, 227), in_channels=True, paper=_PAPER
    ),
)
MODELS: dict[str, Callable[..., nn.Module]] = builders(SPECS)

"""GoogLeNet (Inception v1): Szegedy et al., "Going deeper with convolutions", CVPR 2015.

Two versions of one network, chosen by ``paper``:

- ``googlenet()`` (``paper=False``) is torchvision's `GoogLeNet`: same attribute names, so its
  `state_dict` loads with ``strict=True`` and gives the same outputs. It adds batch norm after every
  conv and, in the branch the paper calls "5x5", uses a 3x3 kernel (pytorch/vision#906).
- ``googlenet_paper()`` (``paper=True``) is the network of the paper's table 1 and figure 3: 5x5
  kernels, conv biases and no batch norm, local response normalisation in the stem, a 3x3 max pool
  after inception (4e), 40% dropout, auxiliary heads with a 5x5/3 average pool.

Table 1 of the paper, recomputed (``tests/test_models_inception.py`` pins every row). "params"
counts weights without biases in units of K = 1024 (conv2: 114,688 = 112.0K); "ops" are
multiply-adds, M = 10^6, and for a layer without bias ops = params x H_out x W_out, so each
printed row can be checked against itself as well as against its filter columns (the inception
module's output channels are #1x1 + #3x3 + #5x5 + pool proj).

==========  ============  ==========  ===============  =========  ================================
row         printed       exact       exact weights    exact ops  verdict
==========  ============  ==========  ===============  =========  ================================
conv1       2.7K, 34M     9.2K        9,408            118.0M     erratum, see (a)
conv2       112K, 360M    112.0K      114,688          359.7M     agrees
3a          159K, 128M    159.5K      163,328          128.0M     agrees
3b          380K, 304M    379.0K      388,096          304.3M     agrees
4a          364K, 73M     366.8K      375,552          73.6M      agrees within 1%
4b          437K, 88M     438.0K      448,512          87.9M      agrees
4c          463K, 100M    497.5K      509,440          99.9M      params misprinted, see (b)
4d          580K, 119M    590.5K      604,672          118.5M     agrees within 2%
4e          840K, 170M    847.0K      867,328          170.0M     agrees within 1%
5a          1072K, 54M    1018.0K     1,042,432        51.1M      erratum, see (c)
5b          1388K, 71M    1409.0K     1,442,816        70.7M      agrees within 2%
linear      1000K, 1M     1000.0K     1,024,000        1.0M       agrees
==========  ============  ==========  ===============  =========  ================================

(a) A 7x7 conv from 3 channels to 64 has 7*7*3*64 = 9,408 weights and 112*112*9,408 = 118M ops.
    The printed pair is self-consistent (112*112*2.7K = 34M) but corresponds to ~2,700 weights,
    fewer than the layer can have; we know of no reading of the layer that gives it.
(b) The printed ops, 100M, agree with the exact count; the printed params do not: 463K weights
    would give 14*14*463K = 93M ops. The params figure is the misprint.
(c) The printed pair is self-consistent (7*7*1072K = 54M), but it does not follow from the row's
    own filter columns (the same as in torchvision and Caffe's bvlc_googlenet), which give
    1,042,432 weights and 51.1M ops.

Totals. The paper's budget is "1.5 billion multiply-adds at inference time" and its ops column
sums to 1,502M; the exact count is 1,583M MACs, the difference being mostly conv1 (118M, not 34M).
The paper says GoogLeNet has "12 times fewer parameters" than AlexNet (60M), i.e. ~5M, and the
slides repeat "~5M". The exact count of the network of table 1 is 6,998,552 parameters (weights
and biases; 5,973,552 without the final linear layer); each auxiliary head adds ~3.2M, used in
training only. torchvision's version has 6,624,904 (3x3 instead of 5x5, batch norm instead of
biases; 13,004,888 with its auxiliary heads) and 1,498M MACs.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable

import torch
from torch import Tensor, nn

# Shared with Inception v3; re-exported here, where the course first meets them.
from cnncourse.models.inception_blocks import (
    BasicConv2d,
    InceptionModule,
    NaiveInceptionModule,
    transform_input,
)
from cnncourse.models.spec import ModelSpec, builders

__all__ = [
    "BasicConv2d",
    "NaiveInceptionModule",
    "InceptionModule",
    "InceptionAux",
    "GoogLeNet",
    "GoogLeNetOutputs",
    "transform_input",
    "googlenet",
    "googlenet_paper",
    "INCEPTION_CFG",
    "SPECS",
    "MODELS",
]

# The inception rows of table 1 (Szegedy et al. 2015), as data:
# name: (in_channels, #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj)
INCEPTION_CFG: dict[str, tuple[int, int, int, int, int, int, int]] = {
    "3a": (192, 64, 96, 128, 16, 32, 32),
    "3b": (256, 128, 128, 192, 32, 96, 64),
    "4a": (480, 192, 96, 208, 16, 48, 64),
    "4b": (512, 160, 112, 224, 24, 64, 64),
    "4c": (512, 128, 128, 256, 24, 64, 64),
    "4d": (512, 112, 144, 288, 32, 64, 64),
    "4e": (528, 256, 160, 320, 32, 128, 128),
    "5a": (832, 256, 160, 320, 32, 128, 128),
    "5b": (832, 384, 192, 384, 48, 128, 128),
}

# Training mode with auxiliary heads returns all three logits, in torchvision's order.
GoogLeNetOutputs = namedtuple("GoogLeNetOutputs", ["logits", "aux_logits2", "aux_logits1"])


class InceptionAux(nn.Module):
    """Auxiliary classifier on inception (4a) and (4d), used in training only (paper, section 5):
    5x5/3 average pool -> 1x1 conv, 128 + ReLU -> FC 1024 + ReLU -> 70% dropout -> FC classes.

    Shapes: (N, in_channels, 14, 14) -> (N, num_classes). The paper's pool needs a 14x14 map
    (a ~224 input); ``adaptive_pool=True`` (torchvision) pools any map to 4x4 instead, and
    ``batch_norm=True`` (torchvision) puts BN after the conv instead of a bias.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        batch_norm: bool = False,
        adaptive_pool: bool = False,
        dropout: float = 0.7,
    ) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(4) if adaptive_pool else nn.AvgPool2d(5, stride=3)
        self.conv = BasicConv2d(in_channels, 128, 1, batch_norm=batch_norm)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(self.pool(x))  # (N, 128, 4, 4)
        x = self.relu(self.fc1(torch.flatten(x, 1)))  # (N, 1024)
        return self.fc2(self.dropout(x))  # (N, num_classes)


class GoogLeNet(nn.Module):
    """GoogLeNet, the 22-layer network of table 1; ``paper`` picks the version (module docstring).

    Input (N, 3, H, W), 224x224 in the paper (at least 15x15 without the auxiliary heads).
    Eval mode, or ``aux_logits=False``: returns logits (N, num_classes). Training mode with
    ``aux_logits=True``: GoogLeNetOutputs(logits, aux_logits2, aux_logits1), like torchvision.
    ``transform_input`` rescales ImageNet-normalised inputs to [-1, 1] (torchvision's pretrained
    weights expect it).
    """

    def __init__(
        self,
        num_classes: int = 1000,
        aux_logits: bool = True,
        paper: bool = False,
        transform_input: bool = False,
        dropout: float | None = None,
        dropout_aux: float = 0.7,
    ) -> None:
        super().__init__()
        bn = not paper  # torchvision: BN after every conv; the paper: conv biases
        self.aux_logits = aux_logits
        self.transform_input = transform_input
        lrn: Callable[[], nn.Module] = (
            (lambda: nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75)) if paper else nn.Identity
        )
        # Stem: (N, 3, 224, 224) -> (N, 192, 28, 28). Caffe's pools round up, hence ceil_mode.
        self.conv1 = BasicConv2d(3, 64, 7, stride=2, padding=3, batch_norm=bn)  # 112x112
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)  # 56x56
        self.norm1 = lrn()  # NOTE: the paper's LRN (figure 3); torchvision drops it (Identity)
        self.conv2 = BasicConv2d(64, 64, 1, batch_norm=bn)  # the "#3x3 reduce" of row conv2
        self.conv3 = BasicConv2d(64, 192, 3, padding=1, batch_norm=bn)
        self.norm2 = lrn()
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)  # 28x28

        def inception(row: str) -> InceptionModule:  # one row of table 1 (INCEPTION_CFG)
            return InceptionModule(*INCEPTION_CFG[row], kernel_5x5=5 if paper else 3, batch_norm=bn)

        self.inception3a = inception("3a")  # 28x28
        self.inception3b = inception("3b")
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)  # 14x14
        self.inception4a = inception("4a")
        self.inception4b = inception("4b")
        self.inception4c = inception("4c")
        self.inception4d = inception("4d")
        self.inception4e = inception("4e")
        # NOTE: the paper's pool before (5a) is 3x3/2; torchvision's is 2x2/2 (same 7x7 output).
        self.maxpool4 = nn.MaxPool2d(3 if paper else 2, stride=2, ceil_mode=True)  # 7x7
        self.inception5a = inception("5a")
        self.inception5b = inception("5b")
        if aux_logits:
            aux = {"batch_norm": bn, "adaptive_pool": not paper, "dropout": dropout_aux}
            self.aux1 = InceptionAux(512, num_classes, **aux)  # on (4a)'s output
            self.aux2 = InceptionAux(528, num_classes, **aux)  # on (4d)'s output
        # The paper's 7x7 average pool; adaptive, so that other input sizes work too.
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout((0.4 if paper else 0.2) if dropout is None else dropout)
        self.fc = nn.Linear(1024, num_classes)
        _init_weights(self, paper)

    def forward(self, x: Tensor) -> Tensor | GoogLeNetOutputs:
        if self.transform_input:
            x = transform_input(x)
        x = self.maxpool1(self.conv1(x))  # (N, 64, 56, 56)
        x = self.maxpool2(self.norm2(self.conv3(self.conv2(self.norm1(x)))))  # (N, 192, 28, 28)
        x = self.inception3b(self.inception3a(x))  # (N, 480, 28, 28)
        x = self.inception4a(self.maxpool3(x))  # (N, 512, 14, 14)
        use_aux = self.aux_logits and self.training
        aux1 = self.aux1(x) if use_aux else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))  # (N, 528, 14, 14)
        aux2 = self.aux2(x) if use_aux else None
        x = self.maxpool4(self.inception4e(x))  # (N, 832, 7, 7)
        x = self.inception5b(self.inception5a(x))  # (N, 1024, 7, 7)
        x = self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))  # (N, num_classes)
        return GoogLeNetOutputs(x, aux2, aux1) if use_aux else x


def _init_weights(model: nn.Module, paper: bool) -> None:
    """torchvision's init (truncated normal, std 0.01) for the BN network; for the paper's network,
    without BN, Caffe bvlc_googlenet's: Xavier weights, conv biases 0.2, linear biases 0."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            if paper:
                nn.init.xavier_uniform_(m.weight)
                nn.init.constant_(m.bias, 0.2 if isinstance(m, nn.Conv2d) else 0.0)
            else:
                nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def googlenet(num_classes: int = 1000, aux_logits: bool = True, **kwargs: object) -> GoogLeNet:
    """torchvision-compatible GoogLeNet (3x3 "5x5" branch, batch norm); see `GoogLeNet`."""
    return GoogLeNet(num_classes, aux_logits, paper=False, **kwargs)


def googlenet_paper(
    num_classes: int = 1000, aux_logits: bool = True, **kwargs: object
) -> GoogLeNet:
    """The paper's GoogLeNet (5x5 branch, biases, LRN, no batch norm); see `GoogLeNet`."""
    return GoogLeNet(num_classes, aux_logits, paper=True, **kwargs)


_PAPER = "Szegedy et al. 2015, Going deeper with convolutions"

#: One record per model (see `cnncourse.models.spec`); `cnncourse.models` merges them.
SPECS: tuple[ModelSpec, ...] = (
    ModelSpec("googlenet", googlenet, paper=_PAPER, torchvision="googlenet"),
    ModelSpec("googlenet_paper", googlenet_paper, paper=_PAPER),
)
MODELS: dict[str, Callable[..., nn.Module]] = builders(SPECS)

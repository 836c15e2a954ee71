"""LeNet-5 (LeCun, Bottou, Bengio and Haffner, 1998, "Gradient-Based Learning Applied to
Document Recognition", sec. II.B), on 32 x 32 x 1 inputs (MNIST digits padded from 28 x 28).

Layers, in the paper's names (C = convolution, S = subsampling, F = fully connected)::

    C1  conv 5x5, 6 maps           -> 6 x 28 x 28      156 params
    S2  2x2 subsampling            -> 6 x 14 x 14       12 (paper) or 0 (average pooling)
    C3  conv 5x5, 16 maps          -> 16 x 10 x 10    1516 (paper's table I) or 2416 (full)
    S4  2x2 subsampling            -> 16 x 5 x 5        32 (paper) or 0
    C5  conv 5x5, 120 maps         -> 120 x 1 x 1    48120
    F6  fc 84                                        10164
    output: 10 Euclidean RBF units (paper, fixed) or fc 10 (850 params)

``lenet5_paper()`` is the paper's network: 60,000 trainable parameters, its own figure. Its
choices, each available on its own in `LeNet5`:

- C3 sees a subset of S2's maps (table I: 6 maps see 3 of them, 9 see 4, one sees all 6), "to
  break the symmetry" and to save connections; ``c3_table=False`` connects all 6 (modern code).
- S2/S4 sum each 2x2 window, multiply by a trainable coefficient per map, add a trainable bias,
  then squash; ``pool="avg"`` (a plain average, no parameters) or ``"max"``.
- The squashing function is f(a) = A tanh(S a), A = 1.7159, S = 2/3 (appendix A), applied after
  every layer up to F6; ``activation="tanh"`` or ``"relu"``.
- The output units compute y_i = sum_j (x_j - w_ij)^2 with fixed w_ij in {-1, +1} (the paper draws
  them as 7 x 12 bitmaps of the characters; we use a seeded random +-1 code, which the paper also
  mentions); we return -y_i, so that argmax picks the nearest code. ``rbf_output=False``: an fc.

``lenet5()`` is the version usually taught today: full C3, average pooling, tanh, an fc output:
61,706 parameters.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Literal

import torch
from torch import nn

from cnncourse.models.spec import ModelSpec, builders

__all__ = [
    "LeNet5",
    "C3_TABLE",
    "ScaledTanh",
    "Subsampling",
    "PartialConv",
    "RBFOutput",
    "lenet5",
    "lenet5_paper",
    "SPECS",
    "MODELS",
]

# Paper table I: the S2 maps that each of C3's 16 maps sees.
C3_TABLE: tuple[tuple[int, ...], ...] = (
    *(tuple(sorted((j + i) % 6 for i in range(3))) for j in range(6)),  # 0-5: 3 neighbours
    *(tuple(sorted((j + i) % 6 for i in range(4))) for j in range(6)),  # 6-11: 4 neighbours
    (0, 1, 3, 4),  # 12-14: 4 maps, not all neighbours
    (1, 2, 4, 5),
    (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),  # 15: all of them
)


class ScaledTanh(nn.Module):
    """f(a) = A tanh(S a), A = 1.7159, S = 2/3: f(1) = 1 and f(-1) = -1 (paper, appendix A)."""

    def __init__(self, amplitude: float = 1.7159, slope: float = 2 / 3) -> None:
        super().__init__()
        self.amplitude, self.slope = amplitude, slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.amplitude * torch.tanh(self.slope * x)


class Subsampling(nn.Module):
    """The paper's S layer: (N, C, H, W) -> (N, C, H/2, W/2), w_c * (sum of a 2x2 window) + b_c.

    2 trainable parameters per map (coefficient and bias); the squashing comes after.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(2)  # the mean is a quarter of the sum: w_c absorbs the 4
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x) * self.weight[:, None, None] + self.bias[:, None, None]


class PartialConv(nn.Module):
    """A conv in which output map j sees only the input maps ``table[j]`` (paper's C3).

    (N, in_channels, H, W) -> (N, len(table), H - k + 1, W - k + 1). One small conv per output
    map, so parameters and MACs count only the connections that exist.
    """

    def __init__(self, table: tuple[tuple[int, ...], ...], kernel_size: int = 5) -> None:
        super().__init__()
        self.table = table
        self.convs = nn.ModuleList(nn.Conv2d(len(maps), 1, kernel_size) for maps in table)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [conv(x[:, list(m)]) for conv, m in zip(self.convs, self.table, strict=True)], 1
        )


class RBFOutput(nn.Module):
    """Euclidean RBF units: (N, in_features) -> (N, num_classes), -||x - w_i||^2.

    The codes w_i are a fixed buffer (not parameters), +-1, drawn from a seeded generator.
    """

    def __init__(self, in_features: int = 84, num_classes: int = 10, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        codes = torch.randint(0, 2, (num_classes, in_features), generator=g).float() * 2 - 1
        self.register_buffer("codes", codes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -((x[:, None, :] - self.codes) ** 2).sum(-1)  # (N, num_classes)


class LeNet5(nn.Module):
    """(N, in_channels, 32, 32) -> (N, num_classes); ``features`` -> ``classifier``.

    Layers are named as in the paper (``features.c1``, ``features.s2``, ..., ``classifier.f6``,
    ``classifier.output``).
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        activation: Literal["tanh", "scaled_tanh", "relu"] = "tanh",
        pool: Literal["avg", "max", "subsampling"] = "avg",
        c3_table: bool = False,
        rbf_output: bool = False,
    ) -> None:
        super().__init__()
        acts = {"tanh": nn.Tanh, "scaled_tanh": ScaledTanh, "relu": nn.ReLU}
        if activation not in acts:
            raise ValueError(f"activation must be one of {sorted(acts)}, got {activation!r}")
        if pool not in ("avg", "max", "subsampling"):
            raise ValueError(f"pool must be 'avg', 'max' or 'subsampling', got {pool!r}")
        act = acts[activation]

        def subsample(channels: int) -> list[tuple[str, nn.Module]]:
            if pool == "subsampling":  # trainable, then squashed like every paper layer
                return [("s", Subsampling(channels)), ("act_s", act())]
            return [("s", nn.AvgPool2d(2) if pool == "avg" else nn.MaxPool2d(2))]

        s2, s4 = subsample(6), subsample(16)
        c3 = PartialConv(C3_TABLE) if c3_table else nn.Conv2d(6, 16, 5)
        self.features = nn.Sequential(
            OrderedDict(
                [
                    ("c1", nn.Conv2d(in_channels, 6, 5)),  # (N, 6, 28, 28)
                    ("act1", act()),
                    *((f"{n}2", m) for n, m in s2),  # (N, 6, 14, 14): s2 [, act_s2]
                    ("c3", c3),  # (N, 16, 10, 10)
                    ("act3", act()),
                    *((f"{n}4", m) for n, m in s4),  # (N, 16, 5, 5)
                    ("c5", nn.Conv2d(16, 120, 5)),  # (N, 120, 1, 1)
                    ("act5", act()),
                ]
            )
        )
        output = RBFOutput(84, num_classes) if rbf_output else nn.Linear(84, num_classes)
        self.classifier = nn.Sequential(
            OrderedDict([("f6", nn.Linear(120, 84)), ("act6", act()), ("output", output)])
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (N, 120, 1, 1)
        x = torch.flatten(x, 1)  # (N, 120)
        return self.classifier(x)  # (N, num_classes)


def lenet5(**kwargs) -> LeNet5:
    """LeNet-5 as usually taught: tanh, average pooling, full C3, fc output; 61,706 params."""
    return LeNet5(**kwargs)


def lenet5_paper(**kwargs) -> LeNet5:
    """LeNet-5 as in the paper: scaled tanh, trainable subsampling, table I, RBF output; 60,000."""
    defaults = dict(activation="scaled_tanh", pool="subsampling", c3_table=True, rbf_output=True)
    return LeNet5(**(defaults | kwargs))


_LECUN = "LeCun et al. 1998, Gradient-based learning applied to document recognition"

#: One record per model (see `cnncourse.models.spec`); `cnncourse.models` merges them.
SPECS: tuple[ModelSpec, ...] = (
    ModelSpec("lenet5", lenet5, input_size=(1, 32, 32), in_channels=True, paper=_LECUN),
    ModelSpec("lenet5_paper", lenet5_paper, input_size=(1, 32, 32), in_channels=True, paper=_LECUN),
)
MODELS: dict[str, Callable[..., nn.Module]] = builders(SPECS)

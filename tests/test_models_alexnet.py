"""AlexNet (Krizhevsky et al. 2012): the paper's two-GPU network (60M parameters, neurons per
layer, LRN) and torchvision's single-tower one (its published figures).

The registry-wide checks are in ``test_models.py``.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
import torchvision
from models_helpers import (
    native_cpu_kernels,  # noqa: F401 (autouse: applies here too)
    on_meta,
    output_shapes,
)
from torch import nn
from torch.testing import assert_close

from cnncourse.counting import (
    conv_params,
    linear_params,
)
from cnncourse.models import alexnet
from cnncourse.profile import count_params

tvm = torchvision.models
IMAGENET = (3, 224, 224)
pytestmark = pytest.mark.usefixtures("one_thread")


# --- AlexNet, Krizhevsky et al. 2012 -------------------------------------------------------------


def alexnet_paper_params(groups: int) -> int:
    """Sec. 3.5 of the paper, read off its text: kernel sizes and depths per GPU (groups=2)."""
    g = groups
    return (
        conv_params(3, 96, 11)  # "96 kernels of size 11x11x3"
        + conv_params(96, 256, 5, groups=g)  # "256 kernels of size 5x5x48"
        + conv_params(256, 384, 3)  # "384 kernels of size 3x3x256"
        + conv_params(384, 384, 3, groups=g)  # "384 kernels of size 3x3x192"
        + conv_params(384, 256, 3, groups=g)  # "256 kernels of size 3x3x192"
        + linear_params(256 * 6 * 6, 4096)  # "The fully-connected layers have 4096 neurons each"
        + linear_params(4096, 4096)
        + linear_params(4096, 1000)
    )


def test_alexnet_paper_has_60_million_parameters() -> None:
    two_gpus = count_params(on_meta(alexnet.alexnet_paper))
    assert two_gpus == alexnet_paper_params(groups=2)
    assert 60e6 <= two_gpus < 61e6  # sec. 4: "60 million parameters" (60,965,224)
    assert count_params(on_meta(alexnet.alexnet_paper, groups=1)) == alexnet_paper_params(1)
    # torchvision's single tower (64-192-384-256-256) has 61.1M: its model card's figure.
    assert round(count_params(on_meta(alexnet.alexnet)) / 1e6, 1) == 61.1


def test_alexnet_paper_neurons_per_layer() -> None:
    # Sec. 3.5: "253,440-186,624-64,896-64,896-43,264-4096-4096-1000" (for a 227 x 227 input).
    model = on_meta(alexnet.alexnet_paper)
    convs_and_fcs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    sizes = [math.prod(s) for s in output_shapes(model, (3, 227, 227), convs_and_fcs)]
    assert sizes[1:] == [186_624, 64_896, 64_896, 43_264, 4096, 4096, 1000]
    assert sizes[0] == 55 * 55 * 96 == 290_400 != 253_440  # erratum in the paper's first figure


def test_alexnet_lrn_is_the_papers_formula() -> None:
    # Sec. 3.3: b_i = a_i / (k + alpha * sum of a_j^2 over the n maps around i)^beta,
    # k = 2, n = 5, alpha = 1e-4, beta = 0.75 (the sum is clipped at the first and last maps).
    torch.manual_seed(0)
    a = torch.randn(2, 96, 5, 5) * 30
    sq = F.pad(a.square(), (0, 0, 0, 0, 2, 2))  # zero maps beyond both ends
    window = sum(sq[:, j : j + 96] for j in range(5))
    expected = a / (2 + 1e-4 * window) ** 0.75
    lrn = next(m for m in alexnet.alexnet_paper().features if isinstance(m, nn.LocalResponseNorm))
    assert_close(lrn(a), expected)

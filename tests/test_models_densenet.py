"""DenseNet (Huang et al. 2017) against table 2 of the paper, summed from its definitions with
`cnncourse.counting`; torchvision's published figures.

The registry-wide checks are in ``test_models.py``.
"""

from __future__ import annotations

import pytest
import torchvision
from models_helpers import (
    native_cpu_kernels,  # noqa: F401 (autouse: applies here too)
    on_meta,
)
from torch import nn

from cnncourse import counting
from cnncourse.models import (
    densenet,
    resnet_cifar,
)
from cnncourse.profile import count_params

tvm = torchvision.models
IMAGENET = (3, 224, 224)
pytestmark = pytest.mark.usefixtures("one_thread")


# --- DenseNet: Huang et al. 2017, table 2 ---------------------------------------------------------

# (L, k, bottleneck and compression): params in millions, as printed in table 2
DENSENET_TABLE2 = {(40, 12, False): 1.0, (100, 12, False): 7.0, (100, 24, False): 27.2}
DENSENET_TABLE2 |= {(100, 12, True): 0.8, (250, 24, True): 15.3, (190, 40, True): 25.6}


def densenet_cifar_params(depth: int, k: int, bc: bool, num_classes: int = 10) -> int:
    """Section 3 of the paper, summed from its text, for 32x32 inputs: a 3x3 conv (16 maps, or
    2k for DenseNet-BC); 3 dense blocks of n layers, layer H_l = BN-ReLU-3x3 conv (k maps) or,
    with bottleneck, BN-ReLU-1x1 conv (4k) then BN-ReLU-3x3 conv (k); between blocks a
    transition BN-ReLU-1x1 conv to floor(theta * m) maps (theta = 0.5 for BC, 1 otherwise) and
    2x2 average pooling; after the last block BN-ReLU, global average pooling and a linear
    classifier. Convs without bias (each is preceded, not followed, by a BN)."""
    n = (depth - 4) // (6 if bc else 3)
    c = 2 * k if bc else 16
    total = counting.conv_params(3, c, 3, bias=False)
    for block in range(3):
        for _ in range(n):
            if bc:
                total += counting.batchnorm_params(c)
                total += counting.conv_params(c, 4 * k, 1, bias=False)
                total += counting.batchnorm_params(4 * k)
                total += counting.conv_params(4 * k, k, 3, bias=False)
            else:
                total += counting.batchnorm_params(c) + counting.conv_params(c, k, 3, bias=False)
            c += k  # the layer's k maps join the concatenation
        if block < 2:
            out = c // 2 if bc else c
            total += counting.batchnorm_params(c) + counting.conv_params(c, out, 1, bias=False)
            c = out
    return total + counting.batchnorm_params(c) + counting.linear_params(c, num_classes)


@pytest.mark.parametrize("config", DENSENET_TABLE2)
def test_densenet_cifar_table2(config: tuple[int, int, bool]) -> None:
    depth, k, bc = config
    model = on_meta(densenet.densenet_cifar, depth=depth, growth_rate=k, bc=bc, num_classes=10)
    exact = densenet_cifar_params(depth, k, bc)  # DenseNet-BC (L=100, k=12): 769,162
    assert count_params(model) == exact
    assert f"{exact:,}" in densenet.__doc__  # the module docstring's exact counts
    assert round(exact / 1e6, 1) == DENSENET_TABLE2[config]
    # L counts the layers with weights: stem, dense convs, transitions, classifier
    assert sum(isinstance(m, nn.Conv2d | nn.Linear) for m in model.modules()) == depth
    for block in (m for m in model.modules() if isinstance(m, densenet.DenseBlock)):
        k0 = block["denselayer1"].norm1.num_features
        for i, layer in enumerate(block.values()):  # layer i sees k0 + i*k channels, adds k
            convs = [m for m in layer.modules() if isinstance(m, nn.Conv2d)]
            assert (convs[0].in_channels, convs[-1].out_channels) == (k0 + i * k, k)
            assert len(convs) == (2 if bc else 1)
    if bc:  # compression 0.5 in every transition
        for t in (m for m in model.modules() if isinstance(m, densenet.Transition)):
            assert t.conv.out_channels == t.conv.in_channels // 2


def test_densenet_table2_is_for_10_classes() -> None:
    """The docstring's CIFAR-100 count: 90 more classes, 90 x (C + 1) more classifier weights."""
    exact = densenet_cifar_params(40, 12, bc=False, num_classes=100)
    model = on_meta(densenet.densenet_cifar, depth=40, growth_rate=12, bc=False, num_classes=100)
    assert count_params(model) == exact and f"{exact:,}" in densenet.__doc__
    assert round(exact / 1e6, 1) == 1.1 != DENSENET_TABLE2[(40, 12, False)]


def test_densenet_bc_100_has_under_half_the_parameters_of_resnet_110() -> None:
    """Chapter 7 (seeds/001): DenseNet-BC (L=100, k=12) 0.8M vs ResNet-110 1.7M parameters on
    CIFAR, with a lower error in the DenseNet paper's table 2 (4.51% vs 6.41% on C10+)."""
    dense_bc = count_params(on_meta(densenet.densenet_bc_100_12))
    res = count_params(on_meta(resnet_cifar.resnet110))
    assert dense_bc == densenet_cifar_params(100, 12, bc=True)  # ResNet-110: test_models_classic
    assert (round(dense_bc / 1e6, 1), round(res / 1e6, 1)) == (0.8, 1.7)
    assert 2 * dense_bc < res

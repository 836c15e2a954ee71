"""VGG (Simonyan and Zisserman 2014) against table 2 of the paper and the figures the ResNet paper
quotes; the CIFAR variants; torchvision's published figures and initialisation.

The registry-wide checks are in ``test_models.py``.
"""

from __future__ import annotations

import pytest
import torchvision
from models_helpers import (
    native_cpu_kernels,  # noqa: F401 (autouse: applies here too)
    on_meta,
    output_shapes,
)
from torch import nn

from cnncourse.counting import (
    conv_params,
    linear_macs,
)
from cnncourse.models import (
    vgg,
)
from cnncourse.profile import count_params, summarize

tvm = torchvision.models
IMAGENET = (3, 224, 224)
pytestmark = pytest.mark.usefixtures("one_thread")


# --- VGG, Simonyan and Zisserman 2014 ------------------------------------------------------------

# Table 2: "Number of parameters (in millions)" for configurations A, B, D, E.
VGG_PAPER_PARAMS_M = {11: 133, 13: 133, 16: 138, 19: 144}


@pytest.mark.parametrize("depth", sorted(VGG_PAPER_PARAMS_M))
def test_vgg_params_are_paper_table_2(depth: int) -> None:
    model = on_meta(vgg.MODELS[f"vgg{depth}"])
    assert round(count_params(model) / 1e6) == VGG_PAPER_PARAMS_M[depth]
    weighted = [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    assert len(weighted) == depth  # VGG-16 has 16 weight layers


def split_macs(model: nn.Module) -> tuple[int, int]:
    """(conv MACs, fc MACs) at 224 x 224."""
    rows = summarize(model, IMAGENET).rows
    return (
        sum(r.macs for r in rows if r.type == "Conv2d"),
        sum(r.macs for r in rows if r.type == "Linear"),
    )


def test_vgg_macs_and_the_resnet_papers_15_3_and_19_6() -> None:
    # He et al. 2015, sec. 4.1: "VGG-16/19 nets (15.3/19.6 billion FLOPs)" (multiply-adds).
    conv16, fc16 = split_macs(on_meta(vgg.vgg16))
    conv19, fc19 = split_macs(on_meta(vgg.vgg19))
    fc = linear_macs(512 * 7 * 7, 4096) + linear_macs(4096, 4096) + linear_macs(4096, 1000)
    assert fc16 == fc19 == fc  # 123.6M: three fc layers, one position each
    assert round(conv16 / 1e9, 1) == 15.3  # VGG-16's figure counts only the convs ...
    assert round((conv16 + fc16) / 1e9, 1) == 15.5  # (the total usually quoted: 15.47 G)
    assert round((conv19 + fc19) / 1e9, 1) == 19.6  # ... VGG-19's counts every layer.
    assert round(conv19 / 1e9, 1) == 19.5  # Erratum: the consistent pairs are 15.3/19.5, 15.5/19.6.
    # Two stacked 3x3 convs see 5x5 with 18 weights per channel pair, not 25 (slides, ch. 4).
    assert 2 * conv_params(1, 1, 3, bias=False) == 18 < conv_params(1, 1, 5, bias=False) == 25


def test_vgg_cifar_maps_end_at_1x1_and_keep_the_convs() -> None:
    for depth in (11, 13, 16, 19):
        small, big = on_meta(vgg.MODELS[f"vgg{depth}_cifar"]), on_meta(vgg.MODELS[f"vgg{depth}_bn"])
        shapes = output_shapes(small, (3, 32, 32), ["features", "classifier"])
        assert shapes == [(512, 1, 1), (10,)]
        conv_and_bn = [nn.Conv2d, nn.BatchNorm2d]
        assert [type(m) for m in small.features if type(m) in conv_and_bn] == [
            type(m) for m in big.features if type(m) in conv_and_bn
        ]
        assert small.features.state_dict().keys() == big.features.state_dict().keys()

"""The model registry: every name builds, unknown names are refused, the CIFAR ResNet-18."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode

from cnncourse.models import MODELS, get_model
from cnncourse.profile import count_macs, count_params


def test_registry_has_every_family_and_torchvision_names() -> None:
    for name in ("lenet5", "alexnet", "vgg16_bn", "googlenet", "inception_v3", "resnet50"):
        assert name in MODELS
    for name in ("densenet121", "mobilenet_v2", "xception", "fcn8s", "unet", "resnet20"):
        assert name in MODELS


def test_unknown_name_is_refused_with_suggestions() -> None:
    with pytest.raises(ValueError, match=r"name='resnet5'.*'resnet50'"):
        get_model("resnet5")


def test_resnet18_cifar_is_resnet18_with_a_small_stem() -> None:
    ours = get_model("resnet18_cifar")
    reference = torchvision.models.resnet18(num_classes=10)
    stem_saving = (7 * 7 - 3 * 3) * 3 * 64  # a 3x3 instead of a 7x7 first conv, 64 filters
    assert count_params(ours) == count_params(reference) - stem_saving
    # No 4x downsampling in the stem: every later layer sees 16x more positions than at 32/4.
    with torch.device("meta"):
        flops = FlopCounterMode(display=False)
        with flops:
            ours.to("meta")(torch.empty(1, 3, 32, 32))
    assert count_macs(get_model("resnet18_cifar"), (3, 32, 32)) * 2 == flops.get_total_flops()
    out = get_model("resnet18_cifar")(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)

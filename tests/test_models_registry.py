"""The model registry: every family registered, no name twice, unknown names refused, the CIFAR
ResNet-18."""

from __future__ import annotations

import importlib
import pkgutil
from types import SimpleNamespace

import pytest
import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode

import cnncourse.models
from cnncourse.models import FAMILIES, MODELS, get_model, merge_registries
from cnncourse.profile import count_macs, count_params


def test_registry_has_every_family_and_torchvision_names() -> None:
    for name in ("lenet5", "alexnet", "vgg16_bn", "googlenet", "inception_v3", "resnet50"):
        assert name in MODELS
    for name in ("densenet121", "mobilenet_v2", "xception", "fcn8s", "unet", "resnet20"):
        assert name in MODELS


def test_every_family_module_is_registered() -> None:
    # Found on disk, not from FAMILIES: a new family file that declares MODELS but is left out
    # of FAMILIES fails here.
    package = cnncourse.models
    modules = [
        importlib.import_module(f"{package.__name__}.{info.name}")
        for info in pkgutil.iter_modules(package.__path__)
    ]
    families = [m for m in modules if hasattr(m, "MODELS")]
    assert {m.__name__ for m in families} == {f.__name__ for f in FAMILIES}
    assert len(FAMILIES) == len(set(FAMILIES)) == 12
    for family in families:
        assert family.MODELS, family.__name__
        for name, builder in family.MODELS.items():
            assert MODELS[name] is builder, name
    assert len(MODELS) == sum(len(f.MODELS) for f in families)  # no name lost to a duplicate
    # The block modules declare no models; they are shared by the files of one family.
    assert {m.__name__.rsplit(".", 1)[1] for m in modules if m not in families} == {
        "inception_blocks",
        "resnet_blocks",
    }


def test_a_name_declared_twice_is_an_error() -> None:
    def build_a() -> torch.nn.Module:
        return torch.nn.Identity()

    def build_b() -> torch.nn.Module:
        return torch.nn.Identity()

    first = SimpleNamespace(__name__="family_a", MODELS={"net": build_a, "only_a": build_a})
    second = SimpleNamespace(__name__="family_b", MODELS={"net": build_b})
    assert merge_registries([first]) == {"net": build_a, "only_a": build_a}
    with pytest.raises(ValueError, match="'net' is declared twice, by family_a and by family_b"):
        merge_registries([first, second])


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

"""`cnncourse.train.checks`: a model that does not fit its data is named before training."""

from __future__ import annotations

import doctest
import importlib

import pytest
import torch
from torch import nn
from train_helpers import shapes

from cnncourse.data import DATASETS
from cnncourse.models import get_model
from cnncourse.train import FitConfig, check_model_data, fit

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


def test_shape_mismatch_is_named_before_training() -> None:
    info = DATASETS["shapes"]
    size = (info.in_channels, *info.image_size)
    with pytest.raises(ValueError, match=r"'lenet5'.*'shapes'.*first conv takes 1 channels"):
        check_model_data(
            get_model("lenet5"), size, info.num_classes, model_name="lenet5", data_name="shapes"
        )
    with pytest.raises(ValueError, match=r"'resnet20' outputs shape \(6,\).*'shapes'.*\(10,\)"):
        check_model_data(
            get_model("resnet20", num_classes=6), size, 10, "classification", "resnet20", "shapes"
        )

    steps = 0

    def counting_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        nonlocal steps
        steps += 1
        return nn.functional.cross_entropy(out, y)

    for model, match in (
        (get_model("lenet5"), "channels"),
        (get_model("lenet5", in_channels=3, num_classes=5), "num_classes=10"),
    ):
        with pytest.raises(ValueError, match=match):
            fit(model, shapes(64), config=FitConfig(loss_fn=counting_loss, progress=False))
    assert steps == 0


@pytest.mark.parametrize("module", ["checks"])
def test_docstring_examples(module: str) -> None:
    result = doctest.testmod(importlib.import_module(f"cnncourse.train.{module}"))
    assert result.failed == 0 and result.attempted > 0

"""`cnncourse.train.step`: what the running accuracy counts (soft targets, ignored pixels)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from train_helpers import tiny_cnn

from cnncourse.train import FitConfig, evaluate, fit

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


def test_accuracy_of_soft_targets_is_against_their_most_probable_class() -> None:
    torch.manual_seed(0)
    model = tiny_cnn(dropout=0.0)
    x = torch.randn(64, 3, 32, 32)
    soft = torch.softmax(3 * torch.randn(64, 10), 1)  # e.g. mixup or label smoothing
    with torch.no_grad():
        expected = (model.eval()(x).argmax(1) == soft.argmax(1)).double().mean().item()
    assert 0 < expected < 1
    result = evaluate(model, [(x[:32], soft[:32]), (x[32:], soft[32:])])
    assert result["acc"] == pytest.approx(expected)

    def regression(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return ((out[:, 0] - y) ** 2).mean()

    # Float targets that are not class probabilities: accuracy is undefined, not 0.
    assert math.isnan(evaluate(model, [(x, torch.randn(64))], regression)["acc"])


def test_pixel_accuracy_leaves_out_the_pixels_the_loss_ignores() -> None:
    torch.manual_seed(0)
    model = nn.Conv2d(3, 3, 3, padding=1)  # 3 classes per pixel; no batch norm, no dropout
    x = torch.randn(4, 3, 16, 16)
    masks = torch.randint(0, 3, (4, 16, 16))  # class 2 marks unlabelled pixels
    with torch.no_grad():
        right = model(x).argmax(1) == masks
    labelled = masks != 2
    expected = (right & labelled).sum().item() / labelled.sum().item()
    every_pixel = right.double().mean().item()
    assert abs(expected - every_pixel) > 0.01  # the test can tell the two apart
    loss_fn = nn.CrossEntropyLoss(ignore_index=2)
    assert evaluate(model, [(x, masks)], loss_fn)["acc"] == pytest.approx(expected)
    # Training too: with lr=0 the step leaves the model as it is, so the same pixels are right.
    history = fit(
        model, [(x, masks)], config=FitConfig(loss_fn=loss_fn, lr=0.0, seed=None, progress=False)
    )
    assert history.train_acc[0] == pytest.approx(expected)
    assert evaluate(model, [(x, masks)])["acc"] == pytest.approx(every_pixel)  # ignores none

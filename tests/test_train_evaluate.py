"""`cnncourse.train.evaluate`: eval mode for the pass, every submodule's own mode back after."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnncourse.train import evaluate


def test_evaluate_runs_in_eval_mode_and_gives_each_module_its_mode_back() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5), nn.Flatten(), nn.Linear(64, 3)
    )
    x, y = torch.randn(8, 1, 6, 6), torch.randint(0, 3, (8,))  # (8, 4, 4, 4) after the conv
    model.train()
    model[1].eval()  # a frozen batch norm inside a training network
    result = evaluate(model, [(x, y)])
    assert model.training and model[2].training and not model[1].training
    model.eval()
    with torch.no_grad():
        expected = F.cross_entropy(model(x), y).item()  # dropout off, running statistics
    assert abs(result["loss"] - expected) < 1e-6

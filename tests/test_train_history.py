"""`cnncourse.train.history`: round trip, best epoch, printing."""

from __future__ import annotations

import doctest
import importlib

import pytest
from train_helpers import run

from cnncourse.train import History

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


def test_history_round_trip_best_and_printing() -> None:
    _, history = run(epochs=2)
    again = History.from_dict(history.to_dict())
    assert again == history and len(again) == 2
    assert history.best("val_loss")["val_loss"] == min(history.val_loss)
    assert "epoch 2" in str(history)


@pytest.mark.parametrize("module", ["history"])
def test_docstring_examples(module: str) -> None:
    result = doctest.testmod(importlib.import_module(f"cnncourse.train.{module}"))
    assert result.failed == 0 and result.attempted > 0

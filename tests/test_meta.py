"""`cnncourse.meta`: a model run on the meta device, its errors, its state and training flags."""

from __future__ import annotations

import doctest

import pytest
import torch
from models_helpers import meta_model
from torch import nn

from cnncourse import meta
from cnncourse.meta import meta_forward, meta_state, training_mode
from cnncourse.profile import count_macs


def test_meta_state_is_shaped_like_the_model_and_leaves_it_alone() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    before = {n: t.clone() for n, t in model.state_dict().items()}
    state = meta_state(model)
    real = dict(model.named_parameters()) | dict(model.named_buffers())
    assert state.keys() == real.keys()
    for name, tensor in state.items():
        assert tensor.device.type == "meta", name
        assert (tensor.shape, tensor.dtype) == (real[name].shape, real[name].dtype), name
    assert all(torch.equal(t, before[n]) for n, t in model.state_dict().items())


@pytest.mark.parametrize("mode", [True, False])
def test_training_mode_sets_then_restores_every_flag(mode: bool) -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2), nn.Dropout())
    model.train()
    model[1].eval()  # a frozen BN inside a training net: its own flag must come back
    flags = [m.training for m in model.modules()]
    with training_mode(model, mode) as inside:
        assert inside is model and all(m.training is mode for m in model.modules())
    assert [m.training for m in model.modules()] == flags
    with pytest.raises(RuntimeError), training_mode(model, mode):
        raise RuntimeError("an error inside")
    assert [m.training for m in model.modules()] == flags  # restored on errors too


def test_wrong_channels_and_the_models_own_forward():
    with pytest.raises(ValueError, match=r"\(1, 224, 224\) does not fit ResNet: layer 'conv1' "):
        count_macs(meta_model("resnet50"), (1, 224, 224))  # built for 3 channels

    class Matmul(nn.Module):  # fails in its own forward, not in a layer
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.zeros(8, 4))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x @ self.weight

    assert meta_forward(Matmul(), (3, 8)).shape == (1, 3, 4)  # the output, on meta
    with pytest.raises(ValueError, match=r"^input_size \(3, 5\) does not fit Matmul: [^']*$"):
        meta_forward(Matmul(), (3, 5))


def test_data_dependent_forward_is_not_blamed_on_the_input():
    class KeepPositive(nn.Module):  # nonzero() needs values: meta cannot know how many
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x).flatten().nonzero()

    assert KeepPositive()(torch.ones(1, 4)).ndim == 2  # a real forward works
    with pytest.raises(NotImplementedError, match=r"^KeepPositive cannot run on the meta device"):
        count_macs(KeepPositive(), (4,))


def test_doctests() -> None:
    result = doctest.testmod(meta)
    assert result.attempted > 0 and result.failed == 0

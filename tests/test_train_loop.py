"""`cnncourse.train.loop` (`fit`, `evaluate`): real CPU runs, determinism, options, bad arguments,
the deprecated keywords, segmentation in the same loop."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from train_helpers import run, same_weights, shapes, tiny_cnn, without_time

from cnncourse.data import DeviceLoader, get_dataset, to_tensors
from cnncourse.losses import BorderWeightedCrossEntropy
from cnncourse.models import get_model
from cnncourse.profile import count_params
from cnncourse.train import FitConfig, evaluate, fit, load_checkpoint
from cnncourse.train.loop import _show_bars

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


@pytest.mark.slow
def test_small_cnn_learns_shapes_on_the_cpu_in_under_a_minute() -> None:
    start = time.perf_counter()
    torch.manual_seed(0)
    model = get_model("lenet5", in_channels=3, activation="relu", pool="max")
    train, test = shapes(8000, batch_size=64), shapes(1000, "test", batch_size=500)
    history = fit(
        model, train, test, config=FitConfig(epochs=5, lr=0.1, scheduler="onecycle", progress=False)
    )
    seconds = time.perf_counter() - start
    print(f"LeNet-5 on shapes: val_acc {history.val_acc[-1]:.1%} in {seconds:.1f} s")
    assert history.val_acc[-1] > 0.6, history  # chance is 10 classes: 10%
    assert seconds < 60
    assert evaluate(model, test)["acc"] == pytest.approx(history.val_acc[-1])


@pytest.mark.slow
def test_a_cnn_beats_an_mlp_of_similar_size_on_shapes() -> None:
    """The label is the shape wherever it is drawn: weight sharing makes a CNN recognise it
    anywhere, while an MLP must learn it again for every position. Same data, same budget
    (4 epochs, the same optimiser and schedule), about as many parameters: the CNN wins by far.

    lr=0.1 is the best of 0.003 ... 0.3 for this MLP; even with 3x the epochs it stays near 30%
    validation accuracy (it overfits: 90% on its training images).
    """
    size = 16  # 16 x 16 images keep the MLP's first layer, and so both models, small
    train = DeviceLoader(*to_tensors(get_dataset("shapes", n=2000, image_size=size)), 64)
    x, y = to_tensors(get_dataset("shapes", "test", n=500, image_size=size))
    test = DeviceLoader(x, y, 500, shuffle=False)

    def block(c_in: int, c_out: int) -> list[nn.Module]:
        return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]

    torch.manual_seed(0)  # the initial weights
    cnn = nn.Sequential(  # (N, 3, 16, 16) -> 8 x 8 -> 4 x 4 -> global max over positions
        *block(3, 16), nn.MaxPool2d(2), *block(16, 32), nn.MaxPool2d(2), *block(32, 32),
        nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(32, 10),
    )  # fmt: skip
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(3 * size * size, 24), nn.ReLU(), nn.Linear(24, 10))
    n_cnn, n_mlp = count_params(cnn), count_params(mlp)
    assert 0.5 < n_cnn / n_mlp < 2, (n_cnn, n_mlp)  # 14,826 vs 18,706
    acc = {}
    for name, model in (("cnn", cnn), ("mlp", mlp)):
        history = fit(
            model,
            train,
            test,
            config=FitConfig(epochs=4, lr=0.1, scheduler="onecycle", progress=False),
        )
        acc[name] = history.val_acc[-1]
    print(f"val_acc: CNN {acc['cnn']:.1%} ({n_cnn:,} params), MLP {acc['mlp']:.1%} ({n_mlp:,})")
    assert acc["cnn"] > 0.75 and acc["cnn"] > acc["mlp"] + 0.4, acc  # ~90% vs ~24%


def test_same_seed_same_weights_bit_for_bit() -> None:
    a, ha = run(seed=1)
    b, hb = run(seed=1)
    c, _ = run(seed=2)
    assert same_weights(a, b) and without_time(ha) == without_time(hb)
    assert not same_weights(a, c)


def test_a_torch_dataloader_works_too_and_is_checked() -> None:
    """Its shuffle draws from the global generator, which `fit` seeds (and checkpoints)."""
    x, y = to_tensors(get_dataset("shapes", n=128))

    def train(model: nn.Module) -> nn.Module:
        loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
        fit(model, loader, config=FitConfig(epochs=2, progress=False))
        return model

    torch.manual_seed(0)
    a = train(tiny_cnn())
    torch.manual_seed(0)
    assert same_weights(a, train(tiny_cnn()))
    with pytest.raises(ValueError, match="first conv takes 1 channels"):
        train(get_model("lenet5"))


def test_bf16_channels_last_and_compile_on_the_cpu(tmp_path: Path) -> None:
    model, history = run(
        epochs=1, amp="bf16", channels_last=True, compile="eager", checkpoint=tmp_path / "r.pt"
    )
    assert math.isfinite(history.train_loss[0])
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert model[0].weight.dtype == torch.float32  # autocast leaves the weights in fp32
    saved = load_checkpoint(tmp_path / "r.pt")["model"]
    assert saved.keys() == tiny_cnn().state_dict().keys()  # no "_orig_mod." prefixes


def test_progress_bars_only_where_someone_watches(monkeypatch) -> None:
    monkeypatch.setenv("CI", "true")
    assert _show_bars(None) is False and _show_bars(True) is True
    monkeypatch.delenv("CI")
    monkeypatch.setattr("sys.stderr.isatty", lambda: False)
    assert _show_bars(None) == ("ipykernel" in sys.modules)  # a notebook has no tty either


def test_a_second_fit_with_the_same_seed_replays_the_same_shuffles() -> None:
    """As fit's docstring says: the same `seed` replays a `DataLoader`'s shuffle; a
    `DeviceLoader`'s comes from its own seed (and the epoch, which every `fit` starts at 0)."""
    x = torch.randn(64, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    ids = torch.arange(64)  # the targets are the samples' ids: the loss sees the order
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 64))

    def order(loader: Iterable, seed: int) -> list[int]:
        seen: list[int] = []

        def loss_fn(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            seen.extend(y.tolist())
            return nn.functional.cross_entropy(out, y)

        fit(model, loader, config=FitConfig(epochs=1, seed=seed, loss_fn=loss_fn, progress=False))
        return seen

    loader = DataLoader(TensorDataset(x, ids), batch_size=16, shuffle=True)
    first, again, other = order(loader, 0), order(loader, 0), order(loader, 1)
    assert sorted(first) == list(range(64)) and first == again and first != other
    device_loader = DeviceLoader(x, ids, batch_size=16)
    assert order(device_loader, 0) == order(device_loader, 1)  # fit's seed does not matter
    assert order(DeviceLoader(x, ids, 16, seed=1), 0) != order(device_loader, 0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"epochs": 0}, "epochs must be an integer >= 1, got 0"),
        ({"epochs": -2}, "epochs must be an integer >= 1, got -2"),
        ({"check_every": 0}, "check_every must be an integer >= 1, got 0"),  # was: x % 0
        ({"device": "gpu"}, "device must be 'auto', 'cuda', 'mps' or 'cpu'.*got 'gpu'"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        fit(tiny_cnn(), shapes(64), config=FitConfig(progress=False, **kwargs))


def test_fit_keywords_still_work_for_one_release_and_warn() -> None:
    torch.manual_seed(0)
    with pytest.warns(DeprecationWarning, match=r"FitConfig\(epochs=\.\.\., progress=\.\.\.\)"):
        history = fit(tiny_cnn(), shapes(64), epochs=2, progress=False)
    assert len(history) == 2  # the keywords took effect
    with pytest.warns(DeprecationWarning):  # a keyword overrides the config's field
        history = fit(tiny_cnn(), shapes(64), config=FitConfig(epochs=3), progress=False)
    assert len(history) == 3
    with pytest.raises(TypeError, match="unexpected keyword argument 'epoch'"):
        fit(tiny_cnn(), shapes(64), epoch=1)


def test_unet_trains_with_border_weights_in_the_same_loop() -> None:
    x, y = to_tensors(get_dataset("shapes_seg", n=32, image_size=32))
    loader = DeviceLoader(x, y, batch_size=8, augment=True)
    model = get_model("unet_padded", in_channels=3, num_classes=6, base_channels=8, depth=2)
    history = fit(
        model,
        loader,
        loader,
        config=FitConfig(loss_fn=BorderWeightedCrossEntropy(), progress=False),
    )
    assert math.isfinite(history.train_loss[0]) and 0 <= history.val_acc[0] <= 1

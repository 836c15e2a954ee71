"""`cnncourse.train`: convergence, determinism, resume, NaN, DDP, checks (losses: test_losses)."""

from __future__ import annotations

import doctest
import math
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from matplotlib.figure import Figure
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from cnncourse.cli import main
from cnncourse.data import DATASETS, DeviceLoader, get_dataset, to_tensors
from cnncourse.losses import BorderWeightedCrossEntropy
from cnncourse.models import get_model
from cnncourse.plot import plot_history
from cnncourse.profile import count_params
from cnncourse.train import (
    FitConfig,
    History,
    NonFiniteLossError,
    check_model_data,
    evaluate,
    fit,
    load_checkpoint,
    pick_device,
    save_checkpoint,
)
from cnncourse.train import checkpoint as checkpoint_module
from cnncourse.train.loop import _show_bars

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


def shapes(n: int, split: str = "train", batch_size: int = 32, **kw) -> DeviceLoader:
    x, y = to_tensors(get_dataset("shapes", split, n=n))
    return DeviceLoader(x, y, batch_size, shuffle=split == "train", **kw)


def tiny_cnn(dropout: float = 0.2, batch_norm: bool = True) -> nn.Module:
    """Batch norm (buffers), dropout (the global RNG) and momentum: all state a resume needs."""
    norm = nn.BatchNorm2d(8) if batch_norm else nn.Identity()
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        norm,
        nn.ReLU(),
        nn.MaxPool2d(4),  # (N, 8, 8, 8)
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(16, 10),
    )


def same_weights(a: nn.Module | dict, b: nn.Module | dict) -> bool:
    sa = a if isinstance(a, dict) else a.state_dict()
    sb = b if isinstance(b, dict) else b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def without_time(h: History) -> dict:
    return {k: v for k, v in h.to_dict().items() if k != "seconds"}


@pytest.mark.parametrize("module", ["checks", "device", "distributed", "history"])
def test_docstring_examples(module: str) -> None:
    import importlib

    mod = importlib.import_module(f"cnncourse.train.{module}")
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0


# --- the "done": a real CPU run ------------------------------------------------------


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


# --- determinism, resume, atomic checkpoints, NaN ---------------------------------------------


def run(seed: int = 0, epochs: int = 3, **kw) -> tuple[nn.Module, History]:
    torch.manual_seed(seed)
    model = tiny_cnn()
    kw = {"scheduler": "onecycle", "progress": False, "seed": seed, **kw}
    train = kw.pop("train", None) or shapes(256, augment=True, seed=seed)
    history = fit(
        model, train, shapes(128, "test", batch_size=64), config=FitConfig(epochs=epochs, **kw)
    )
    return model, history


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


class CrashingLoader:
    """A loader that raises in the middle of epoch `crash_epoch` (0-based), like a killed job."""

    def __init__(self, loader: DeviceLoader, crash_epoch: int) -> None:
        self.loader, self.crash_epoch, self.epoch = loader, crash_epoch, 0
        self.images, self.targets = loader.images, loader.targets

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.loader.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for i, batch in enumerate(self.loader):
            if self.epoch == self.crash_epoch and i == 3:
                raise KeyboardInterrupt("simulated crash")
            yield batch


@pytest.mark.parametrize("amp", [None, "fp16"])
def test_resumed_run_continues_exactly_where_it_stopped(tmp_path: Path, amp: str | None) -> None:
    """fp16 (autocast with a `GradScaler`, on the CPU here) too: the checkpoint holds the
    scaler's state, the scale and the count of steps since it last changed, and the resumed
    run restores it, so the scale grows (or backs off) at the same step as without the crash."""
    straight, h_straight = run(epochs=4, checkpoint=tmp_path / "a.pt", amp=amp)
    assert all(math.isfinite(loss) for loss in h_straight.train_loss)

    ckpt = tmp_path / "b.pt"
    crashing = CrashingLoader(shapes(256, augment=True), crash_epoch=2)
    with pytest.raises(KeyboardInterrupt):
        run(epochs=4, checkpoint=ckpt, train=crashing, amp=amp)
    saved = load_checkpoint(ckpt)
    assert saved["epoch"] == 2  # the last complete epoch
    if amp == "fp16":  # 2 epochs, no step skipped: the scale is still the initial 2^16
        steps = 2 * len(crashing)
        assert saved["scaler"]["scale"] == 2.0**16 and saved["scaler"]["_growth_tracker"] == steps
    else:
        assert saved["scaler"] is None

    # A new process would build a new model (other initial weights) and call fit again.
    resumed, h_resumed = run(seed=0, epochs=4, checkpoint=ckpt, resume=True, amp=amp)
    assert same_weights(resumed, straight)
    assert without_time(h_resumed) == without_time(h_straight)
    assert h_resumed.epoch == [1, 2, 3, 4]
    end, end_straight = load_checkpoint(ckpt), load_checkpoint(tmp_path / "a.pt")
    assert same_weights(end["model"], end_straight["model"])
    assert end["scaler"] == end_straight["scaler"]  # not restored: it would count half the steps


def test_an_existing_checkpoint_is_never_overwritten_by_a_new_run(tmp_path: Path) -> None:
    path = tmp_path / "run.pt"
    run(epochs=1, checkpoint=path)
    before = path.read_bytes()
    steps = 0

    def counting_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        nonlocal steps
        steps += 1
        return nn.functional.cross_entropy(out, y)

    with pytest.raises(ValueError, match=r"checkpoint=.*run\.pt.*exists.*resume=True"):
        run(epochs=2, checkpoint=path, loss_fn=counting_loss)
    assert steps == 0 and path.read_bytes() == before  # refused before training: the run is kept
    with pytest.raises(ValueError, match="checkpoint=.*is a folder"):
        run(epochs=1, checkpoint=tmp_path)


def test_resume_without_a_checkpoint_is_refused() -> None:
    with pytest.raises(ValueError, match="resume=True needs checkpoint="):
        fit(tiny_cnn(), shapes(64), config=FitConfig(resume=True, progress=False))


def test_resume_refuses_a_different_schedule_length(tmp_path: Path) -> None:
    run(epochs=1, checkpoint=tmp_path / "c.pt")
    with pytest.raises(ValueError, match="run of 1 epochs.*epochs=1, not 3"):
        run(epochs=3, checkpoint=tmp_path / "c.pt", resume=True)


def test_resume_refuses_a_checkpoint_of_another_architecture(tmp_path: Path) -> None:
    path = tmp_path / "tiny.pt"
    run(epochs=1, checkpoint=path)
    other = get_model("lenet5", in_channels=3)
    with pytest.raises(ValueError, match=r"checkpoint '.*tiny\.pt' .* another architecture"):
        fit(
            other,
            shapes(64),
            config=FitConfig(checkpoint=path, resume=True, scheduler="onecycle", progress=False),
        )


def test_a_crash_while_writing_keeps_the_previous_checkpoint(tmp_path, monkeypatch) -> None:
    path = tmp_path / "run.pt"
    save_checkpoint(path, {"epoch": 1, "w": torch.ones(3)})

    def dying_save(obj, f):  # writes half a file, then the machine "dies"
        f.write(b"garbage")
        raise OSError("disk gone")

    monkeypatch.setattr(checkpoint_module.torch, "save", dying_save)
    with pytest.raises(OSError):
        save_checkpoint(path, {"epoch": 2, "w": torch.zeros(3)})
    monkeypatch.undo()
    state = load_checkpoint(path)
    assert state["epoch"] == 1 and torch.equal(state["w"], torch.ones(3))


def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(tmp_path) -> None:
    steps_per_epoch = len(shapes(256))
    calls = 0

    def poisoned(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Cross-entropy that turns NaN from the 3rd epoch's 5th step on (training only)."""
        nonlocal calls
        loss = nn.functional.cross_entropy(out, y)
        if torch.is_grad_enabled():
            calls += 1
            if calls > 2 * steps_per_epoch + 4:
                loss = loss * float("nan")
        return loss

    path = tmp_path / "run.pt"
    with pytest.raises(NonFiniteLossError, match="epoch 3") as info:
        run(epochs=4, checkpoint=path, loss_fn=poisoned, check_every=4)
    message = str(info.value)
    assert "nan" in message and str(path) in message and "untouched" in message
    assert len(info.value.history) == 2
    state = load_checkpoint(path)
    assert state["epoch"] == 2
    assert all(torch.isfinite(t).all() for t in state["model"].values() if t.is_floating_point())
    assert calls <= 2 * steps_per_epoch + 8  # stopped at the first check after the NaN


# --- options: amp, channels_last, compile; progress bars -----------------------------------


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


def test_history_round_trip_best_and_plot() -> None:
    _, history = run(epochs=2)
    again = History.from_dict(history.to_dict())
    assert again == history and len(again) == 2
    assert history.best("val_loss")["val_loss"] == min(history.val_loss)
    assert "epoch 2" in str(history)
    fig = plot_history(history)
    assert isinstance(fig, Figure) and len(fig.axes) == 2


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


# --- device choice --------------------------------------------------------------------------


def pretend_machine(monkeypatch: pytest.MonkeyPatch, cuda: bool, mps: bool) -> list:
    """Make torch see (or not) a GPU and Apple's MPS; returns the devices passed to
    `torch.cuda.set_device`, recorded instead of set."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    monkeypatch.delenv("LOCAL_RANK", raising=False)  # not under torchrun
    set_device: list = []
    monkeypatch.setattr(torch.cuda, "set_device", set_device.append)
    return set_device


@pytest.mark.parametrize(
    ("cuda", "mps", "best"),
    [(True, True, "cuda:0"), (True, False, "cuda:0"), (False, True, "mps"), (False, False, "cpu")],
)
def test_the_best_available_device_is_chosen(monkeypatch, cuda: bool, mps: bool, best: str) -> None:
    set_device = pretend_machine(monkeypatch, cuda, mps)
    assert pick_device() == pick_device("auto") == torch.device(best)
    assert pick_device("cpu") == torch.device("cpu")  # asked for: always there
    assert set_device == ([torch.device(best)] * 2 if cuda else [])  # later calls use that GPU
    if cuda:  # under torchrun, each process takes the GPU of its LOCAL_RANK
        monkeypatch.setenv("LOCAL_RANK", "1")
        assert pick_device() == pick_device("cuda") == torch.device("cuda", 1)
        assert pick_device("cuda:0") == torch.device("cuda", 0)  # an explicit index wins


@pytest.mark.parametrize(
    ("cuda", "mps", "asked"),
    [(False, False, "cuda"), (False, True, "cuda:1"), (False, False, "mps"), (True, False, "mps")],
)
def test_a_missing_device_is_a_value_error_naming_it(monkeypatch, cuda, mps, asked) -> None:
    set_device = pretend_machine(monkeypatch, cuda, mps)
    kind = asked.split(":")[0]
    with pytest.raises(ValueError, match=rf"device='{asked}', but this machine has no {kind} "):
        pick_device(asked)
    with pytest.raises(ValueError, match=rf"device='{asked}'"):
        fit(tiny_cnn(), shapes(64), config=FitConfig(device=asked, progress=False))
    assert set_device == []


# --- bad input: named, before training ------------------------------------------------------


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


def test_cli_names_unknown_models_and_datasets(capsys) -> None:
    assert main(["train", "resnet21", "--data", "shapes"]) == 1
    assert "unknown model name='resnet21'" in capsys.readouterr().err
    assert main(["train", "resnet20", "--data", "shapez"]) == 1
    assert "unknown dataset 'shapez'" in capsys.readouterr().err
    assert main(["train", "vgg11_cifar", "--data", "mnist"]) == 1
    err = capsys.readouterr().err
    assert "'vgg11_cifar'" in err and "'mnist'" in err


def test_cli_trains_checkpoints_resumes_and_plots(tmp_path: Path, capsys) -> None:
    ckpt = tmp_path / "run.pt"
    base = ["train", "lenet5", "--data", "shapes", "--num-images", "256", "--batch-size", "64"]
    base += ["--device", "cpu"]
    args = [*base, "--checkpoint", str(ckpt)]
    assert main([*args, "--epochs", "1", "--scheduler", "none"]) == 0
    first = ckpt.read_bytes()
    assert main([*args, "--epochs", "2", "--scheduler", "none"]) == 1  # would lose the run
    err = capsys.readouterr().err
    assert f"--checkpoint {ckpt} exists" in err and "--resume" in err
    assert ckpt.read_bytes() == first
    assert main([*args, "--epochs", "2", "--scheduler", "none", "--resume"]) == 0
    assert main([*base, "--epochs", "2", "--plot", str(tmp_path / "c.png"), "--augment"]) == 0
    out = capsys.readouterr().out
    assert "resumed from" in out and "epoch 2/2" in out
    assert load_checkpoint(ckpt)["epoch"] == 2
    assert (tmp_path / "c.png").stat().st_size > 0
    assert main([*base, "--resume"]) == 1
    assert "--resume needs --checkpoint" in capsys.readouterr().err


# --- accuracy: soft targets, ignored pixels -------------------------------------------------


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


# --- segmentation: U-Net's weights, same loop -------------------------------------------------


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


# --- DDP: two CPU processes, gloo -----------------------------------------------------------


def _torchrun_env(rank: int, world_size: int, port: int) -> None:
    """What ``torchrun`` sets in each process it starts."""
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world_size),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(worker, *args: object, nprocs: int = 2, timeout: float = 180) -> None:
    """`mp.spawn` `worker(rank, nprocs, *args)`, failing the test (not hanging it) if the
    processes wait for each other forever."""
    context = mp.spawn(worker, args=(nprocs, *args), nprocs=nprocs, join=False)
    deadline = time.monotonic() + timeout
    while not context.join(timeout=5):  # raises if a worker raised
        if time.monotonic() > deadline:
            for p in context.processes:
                p.kill()
            pytest.fail(f"the {nprocs} processes did not finish in {timeout} s: deadlock?")


def _ddp_worker(rank: int, world_size: int, port: int, out: str) -> None:
    _torchrun_env(rank, world_size, port)
    model, history, seen = _ddp_run()
    state = {"model": model.state_dict(), "history": history.to_dict(), "seen": seen}
    torch.save(state, f"{out}/{rank}.pt")
    torch.distributed.destroy_process_group()


def _ddp_run() -> tuple[nn.Module, History, int]:
    """No batch norm, no dropout: then 2 processes x half a batch is exactly one full batch."""
    torch.manual_seed(0)
    model = tiny_cnn(dropout=0.0, batch_norm=False)
    train = shapes(128, batch_size=32, augment=True)
    seen = 0

    def loss_fn(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        nonlocal seen
        seen += len(y)
        return nn.functional.cross_entropy(out, y)

    history = fit(
        model,
        train,
        config=FitConfig(epochs=2, device="cpu", progress=False, lr=0.05, loss_fn=loss_fn),
    )
    return model, history, seen


def test_ddp_on_two_cpu_processes_matches_one_process(tmp_path: Path) -> None:
    _spawn(_ddp_worker, _free_port(), str(tmp_path))
    r0, r1 = (torch.load(tmp_path / f"{r}.pt") for r in (0, 1))
    assert same_weights(r0["model"], r1["model"])  # DDP kept the replicas identical
    assert r0["history"]["train_loss"] == r1["history"]["train_loss"]  # all-reduced metrics

    single, history, seen = _ddp_run()
    assert seen == 2 * 128 and r0["seen"] == r1["seen"] == 128  # each process: half of each batch
    for k, v in single.state_dict().items():
        torch.testing.assert_close(r0["model"][k], v, rtol=1e-4, atol=1e-5)
    assert r0["history"]["train_loss"] == pytest.approx(history.train_loss, rel=1e-4)


def _sampler_worker(rank: int, world_size: int, port: int, out: str) -> None:
    """`fit` with torch DataLoaders whose DistributedSamplers give each process its own samples;
    the targets are the samples' ids, and the loss records which ones each process sees."""
    _torchrun_env(rank, world_size, port)
    ids = torch.arange(128)
    x = torch.randn(128, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    data = TensorDataset(x, ids)
    train = DataLoader(data, 16, sampler=DistributedSampler(data, world_size, rank, seed=0))
    val = DataLoader(data, 16, sampler=DistributedSampler(data, world_size, rank, shuffle=False))
    seen: dict[str, list[int]] = {"train": [], "val": []}

    def loss_fn(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        seen["train" if torch.is_grad_enabled() else "val"] += y.tolist()
        return nn.functional.cross_entropy(out, y)

    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 128))  # a class per sample id
    fit(
        model, train, val, config=FitConfig(epochs=2, device="cpu", loss_fn=loss_fn, progress=False)
    )
    torch.save(seen, f"{out}/{rank}.pt")
    torch.distributed.destroy_process_group()


def test_ddp_with_a_distributed_sampler_neither_reslices_nor_repeats_epochs(tmp_path) -> None:
    _spawn(_sampler_worker, _free_port(), str(tmp_path))
    seen = [torch.load(tmp_path / f"{r}.pt") for r in (0, 1)]
    for kind in ("train", "val"):
        for epoch in (0, 1):
            # Each process: its whole half of the data (64 ids), not half of it again.
            mine = [s[kind][64 * epoch : 64 * (epoch + 1)] for s in seen]
            assert [len(m) for m in mine] == [64, 64] and [len(s[kind]) for s in seen] == [128] * 2
            assert sorted(mine[0] + mine[1]) == list(range(128))  # together: every sample once
    for s in seen:  # sampler.set_epoch(1) was called: the second epoch is shuffled anew
        assert s["train"][:64] != s["train"][64:]


def _cli_worker(rank: int, world_size: int, ports: tuple[int, int], out: str) -> None:
    """`cnncourse train` as torchrun runs it, with get_dataset and savefig spied on."""
    import torch.distributed as dist
    from matplotlib.figure import Figure

    import cnncourse.data

    _torchrun_env(rank, world_size, ports[0])
    events: list[tuple] = []
    real_get_dataset, real_savefig = cnncourse.data.get_dataset, Figure.savefig

    def get_dataset(*args: object, **kwargs: object) -> object:
        events.append(("load", time.time(), dist.is_initialized()))
        if rank == 0:
            time.sleep(0.5)  # a slow download: the others must wait for it
        dataset = real_get_dataset(*args, **kwargs)
        events.append(("loaded", time.time(), dist.is_initialized()))
        return dataset

    def savefig(self: Figure, *args: object, **kwargs: object) -> None:
        events.append(("savefig", time.time(), dist.is_initialized()))
        real_savefig(self, *args, **kwargs)

    cnncourse.data.get_dataset, Figure.savefig = get_dataset, savefig
    args = ["train", "lenet5", "--data", "shapes", "--num-images", "64", "--epochs", "1"]
    args += ["--batch-size", "32", "--device", "cpu", "--plot", f"{out}/curves.png"]
    codes = [main(args)]
    events.append(("done", time.time(), dist.is_initialized()))
    # Rank 0 fails while loading (no such files): the other must not wait for it forever.
    os.environ["MASTER_PORT"] = str(ports[1])
    codes.append(main(["train", "resnet20", "--data", "mnist", "--root", f"{out}/none"]))
    events.append(("done", time.time(), dist.is_initialized()))
    torch.save({"codes": codes, "events": events}, f"{out}/{rank}.pt")


def test_cli_under_torchrun_loads_on_rank_0_first_and_plots_once(tmp_path: Path) -> None:
    _spawn(_cli_worker, (_free_port(), _free_port()), str(tmp_path))
    r0, r1 = (torch.load(tmp_path / f"{r}.pt") for r in (0, 1))
    assert r0["codes"] == r1["codes"] == [0, 1]
    for r in (r0, r1):
        loads = [e for e in r["events"] if e[0].startswith("load")]
        assert loads and all(initialized for *_, initialized in loads)  # the group came first
        assert [e[2] for e in r["events"] if e[0] == "done"] == [False, False]  # destroyed
    rank0_loaded = max(t for what, t, _ in r0["events"][:4] if what == "loaded")
    rank1_load = min(t for what, t, _ in r1["events"][:4] if what == "load")
    assert rank1_load >= rank0_loaded  # waited at the barrier for rank 0's "download"
    assert [e[0] for e in r0["events"]].count("savefig") == 1
    assert "savefig" not in [e[0] for e in r1["events"]]  # one file, written by rank 0 only
    assert (tmp_path / "curves.png").stat().st_size > 0

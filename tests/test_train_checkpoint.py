"""`cnncourse.train.checkpoint`, through `fit`: exact resume, no overwriting, atomic writes, NaN."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn
from train_helpers import CrashingLoader, run, same_weights, shapes, tiny_cnn, without_time

from cnncourse.models import get_model
from cnncourse.train import FitConfig, NonFiniteLossError, fit, load_checkpoint, save_checkpoint
from cnncourse.train import checkpoint as checkpoint_module

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


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

"""The `cnncourse` command: summary, train (under torchrun too), bench; errors in one clear line."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torchvision
from matplotlib.figure import Figure
from train_helpers import _free_port, _spawn, _torchrun_env

from cnncourse.cli import main
from cnncourse.train import load_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


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


@pytest.mark.slow
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


def test_cli_bench(tmp_path: Path, capsys) -> None:
    plot = tmp_path / "bench.png"
    args = ["bench", "resnet20", "--device", "cpu", "--batch-size", "2", "--steps", "1"]
    assert main([*args, "--warmup", "1", "--markdown", "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "| textbook |" in out and plot.stat().st_size > 0
    assert main(["bench", "resnet21", "--device", "cpu"]) == 1
    assert "resnet21" in capsys.readouterr().err


def test_summary_prints_the_table_with_torchvision_totals(capsys: pytest.CaptureFixture) -> None:
    assert main(["summary", "resnet18", "--input", "3x224x224"]) == 0
    text = capsys.readouterr().out
    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta
    assert f"{weights['num_params']:,}" in text  # 11,689,512 as torchvision publishes it
    assert "layer4.1.conv2" in text and "MACs" in text


def test_bad_input_size_is_named() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "cnncourse.cli", "summary", "resnet18", "--input", "3xbig"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2 and "--input" in run.stderr


def test_unknown_model_is_named() -> None:
    with pytest.raises(SystemExit, match="unknown model 'resnet5'"):
        main(["summary", "resnet5"])


def test_summary_of_a_course_model_uses_its_design_input(capsys: pytest.CaptureFixture) -> None:
    # The paper's U-Net maps a 572 x 572 tile to a 388 x 388 segmentation (Ronneberger et al.).
    assert main(["summary", "unet"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rule = lines[1]  # under the header, and again under the last row
    last = lines[lines.index(rule, 2) - 1].split()
    params, macs = 64 * 2 + 2, 388 * 388 * 64 * 2  # the final 1x1 conv: 64 -> 2 channels
    assert last == ["outc", "Conv2d", "(2,", "388,", "388)", f"{params:,}", f"{macs:,}"]


def test_summary_of_a_torchvision_model_uses_its_weights_crop(
    capsys: pytest.CaptureFixture,
) -> None:
    # EfficientNet-B3 is designed for 300 x 300; torchvision's published ops are at that size.
    assert main(["summary", "efficientnet_b3"]) == 0
    text = capsys.readouterr().out
    weights = torchvision.models.EfficientNet_B3_Weights.DEFAULT
    assert weights.transforms().crop_size == [300]
    assert "Input: (3, 300, 300), batch of 1" in text
    assert f"({weights.meta['_ops']:.3f} GMACs)" in text  # 1.827 GMACs at 300, 0.99 at 224


@pytest.mark.parametrize(
    ("model", "size", "complaint"),
    [
        ("resnet50", "1x224x224", "layer 'conv1' (Conv2d(3, 64, "),  # 1 channel for 3
        ("alexnet", "3x32x32", "got an input of shape (256, 1, 1)"),  # too small for a 3x3 pool
        ("unet", "1x570x570", "nearest valid tile sizes"),  # odd map before a 2x2 pool
    ],
)
def test_input_the_model_refuses_is_one_clear_line(
    model: str, size: str, complaint: str, capsys: pytest.CaptureFixture
) -> None:
    assert main(["summary", model, "--input", size]) == 1  # the exit status of `cnncourse`
    out, err = capsys.readouterr()
    assert out == ""
    (line,) = err.splitlines()  # no traceback
    shape = size.replace("x", ", ")
    assert line.startswith(f"cnncourse summary: error: input_size ({shape}) does not fit ")
    assert complaint in line


TRAIN = ["train", "lenet5", "--data", "shapes", "--epochs", "1", "--device", "cpu"]


BENCH = ["bench", "resnet20", "--device", "cpu"]


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        ([*TRAIN[:4], "--epochs", "0"], "--epochs must be an integer >= 1, got 0"),
        ([*TRAIN, "--num-images", "0"], "--num-images must be an integer >= 1, got 0"),  # not "all"
        ([*TRAIN, "--num-images", "-5"], "--num-images must be an integer >= 1, got -5"),
        ([*TRAIN, "--batch-size", "0"], "--batch-size must be an integer >= 1, got 0"),
        ([*TRAIN[:-1], "gpu"], "device must be 'auto', 'cuda', 'mps' or 'cpu'"),
        ([*BENCH, "--steps", "0"], "--steps must be an integer >= 1, got 0"),
        ([*BENCH, "--warmup", "-1"], "--warmup must be an integer >= 0, got -1"),
        (
            ["bench", "vgg11_cifar", "--input", "1x32x32", "--device", "cpu"],
            "input_size=(1, 32, 32) does not suit 'vgg11_cifar': ",
        ),
    ],
)
def test_bad_options_are_one_clear_line(
    argv: list[str], complaint: str, capsys: pytest.CaptureFixture
) -> None:
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert out == ""
    (line,) = err.splitlines()  # no traceback
    assert line.startswith(f"cnncourse {argv[0]}: error: ") and complaint in line


def test_resuming_another_architecture_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    ckpt = str(tmp_path / "lenet.pt")
    args = [*TRAIN, "--num-images", "64", "--batch-size", "64", "--checkpoint", ckpt]
    assert main(args) == 0
    capsys.readouterr()
    assert main([*args, "--resume"]) == 0  # the same architecture: resumes (nothing left to do)
    assert "resumed from" in capsys.readouterr().out
    args[1] = "resnet20"
    assert main([*args, "--resume"]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert f"checkpoint {ckpt!r} holds a model of another architecture" in line

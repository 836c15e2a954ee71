"""The `cnncourse` command, run as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torchvision

from cnncourse.cli import main


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

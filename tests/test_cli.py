"""The `cnncourse` command, run as a user runs it."""

from __future__ import annotations

import subprocess
import sys

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
    text = capsys.readouterr().out
    assert "(2, 388, 388)" in text or "2, 388, 388" in text

"""`cnncourse.bench_report`: the benchmark's tables."""

from __future__ import annotations

import pytest

from cnncourse.bench import BenchResult
from cnncourse.bench_report import format_table

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


def test_table_says_mfu_is_against_the_bf16_peak_for_fp32_too() -> None:
    fp32 = BenchResult(
        model="resnet20",
        variant="textbook",
        math="fp32 (TF32 convs)",
        device="NVIDIA H100 80GB HBM3",
        batch_size=512,
        steps=50,
        images_per_s=10_000.0,
        step_ms=51.2,
        peak_mem_mib=1000.0,
        flops_per_step=125_000_000_000,
        tflops=2.44,
        mfu=2.44 / 989,
        warmup_s=1.0,
    )
    title, note, head, _, row = format_table([fp32]).splitlines()
    assert "125 GFLOP per step" in title
    assert "bf16 peak, 989 TFLOP/s" in note and "fp32" in note
    assert head.split() == ["variant", "math", "images/s", "speed-up", "ms/step", "peak", "MiB",
                            "TFLOP/s", "MFU"]  # fmt: skip
    assert row.startswith("textbook  fp32 (TF32 convs)  ")

"""`cnncourse.bench`: the CPU path (tiny), the GPU table, the output formats."""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest
import torch
from matplotlib.figure import Figure

from cnncourse.bench import (
    Variant,
    default_variants,
    format_table,
    peak_tflops,
    run_benchmark,
)
from cnncourse.cli import main
from cnncourse.models import get_model
from cnncourse.plot import plot_bench
from cnncourse.profile import count_macs


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # see tests/test_train.py: stable timings on a shared CPU
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize(
    "name, tflops",
    [
        ("NVIDIA H100 80GB HBM3", 989.0),  # SXM
        ("NVIDIA H100 PCIe", 756.0),
        ("NVIDIA H100 NVL", 835.0),
        ("NVIDIA H200", 989.0),
        ("NVIDIA A100-SXM4-80GB", 312.0),
        ("NVIDIA A100-PCIE-40GB", 312.0),
        ("NVIDIA A10", 125.0),  # not A100's
        ("NVIDIA L4", 121.0),
        ("NVIDIA L40S", 362.0),  # not L4's
        ("Tesla T4", 65.0),
        ("NVIDIA GeForce RTX 4090", None),  # unknown: no MFU rather than a wrong one
    ],
)
def test_gpu_peaks_by_name(name: str, tflops: float | None) -> None:
    assert peak_tflops(name) == tflops


def test_docstring_examples() -> None:
    import cnncourse.bench

    assert doctest.testmod(cnncourse.bench).failed == 0


def test_variants_turn_one_trick_off_each() -> None:
    names = [v.name for v in default_variants(compile=True)]
    assert names[:2] == ["textbook", "optimised"] and "no compile" in names
    textbook, best, *ablations = default_variants(compile=True)
    assert textbook == Variant("textbook")
    for v in ablations:  # differs from the optimised loop in exactly one field (and the name)
        diff = [
            f
            for f in ("device_data", "amp", "channels_last", "compile", "fused")
            if getattr(v, f) != getattr(best, f)
        ]
        assert len(diff) == 1, v
    assert "no compile" not in [v.name for v in default_variants(compile=False)]


def test_cpu_benchmark_reports_every_variant(tmp_path: Path) -> None:
    results = run_benchmark(["resnet20"], batch_size=4, steps=2, warmup=1, device="cpu")
    assert [r.variant for r in results] == [v.name for v in default_variants(compile=False)]
    macs = count_macs(get_model("resnet20"), (3, 32, 32))
    for r in results:
        assert r.device == "cpu" and r.images_per_s > 0 and r.peak_mem_mib is None
        assert r.mfu is None  # no peak for a CPU
        step_s = r.step_ms / 1e3
        assert r.tflops == pytest.approx(3 * 2 * macs * 4 / step_s / 1e12)  # 3 passes, 2 FLOPs
        assert r.images_per_s == pytest.approx(4 / step_s)
    text = format_table(results)
    assert "MFU not reported" in text and "textbook" in text and "1.00x" in text
    md = format_table(results, markdown=True).splitlines()
    assert md[2].startswith("| variant |") and md[3].startswith("|:---|")
    fig = plot_bench(results)
    assert isinstance(fig, Figure)
    fig.savefig(tmp_path / "bench.png")


def test_compile_variant_runs_once_cheaply() -> None:
    """torch.compile's plumbing with the "eager" backend (no code generation); LeNet-5 takes
    1 channel: the benchmark builds it for the data's channels."""
    compiled = Variant("compiled", device_data=True, compile="eager")
    (r,) = run_benchmark(
        ["lenet5"],
        batch_size=2,
        steps=1,
        warmup=1,
        device="cpu",
        input_size=(1, 32, 32),
        variants=[compiled],
        progress=False,
    )
    assert r.variant == "compiled" and r.images_per_s > 0


def test_unknown_model_is_named() -> None:
    with pytest.raises(ValueError, match="resnet21"):
        run_benchmark(["resnet21"], device="cpu")


def test_cli_bench(tmp_path: Path, capsys) -> None:
    plot = tmp_path / "bench.png"
    args = ["bench", "resnet20", "--device", "cpu", "--batch-size", "2", "--steps", "1"]
    assert main([*args, "--warmup", "1", "--markdown", "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "| textbook |" in out and plot.stat().st_size > 0
    assert main(["bench", "resnet21", "--device", "cpu"]) == 1
    assert "resnet21" in capsys.readouterr().err

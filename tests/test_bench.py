"""`cnncourse.bench`: the CPU path (tiny), the GPU table, the output formats."""

from __future__ import annotations

import doctest
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from matplotlib.figure import Figure
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import cnncourse.bench
from cnncourse.bench import (
    TEXTBOOK,
    BenchResult,
    Variant,
    default_variants,
    run_benchmark,
)
from cnncourse.bench_report import format_table
from cnncourse.cli import main
from cnncourse.mfu import peak_tflops, train_step_flops
from cnncourse.models import get_model
from cnncourse.plot import plot_bench
from cnncourse.profile import count_macs
from cnncourse.train.device import math_mode

pytestmark = pytest.mark.usefixtures("one_thread")  # stable timings on a shared CPU


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
        ("Tesla V100-SXM2-16GB", 125.0),  # fp16, as T4's
        ("Tesla V100-PCIE-32GB", 112.0),  # lower clocks than the SXM2 board
        ("Tesla V100S-PCIE-32GB", 130.0),
        ("NVIDIA GeForce RTX 4090", None),  # unknown: no MFU rather than a wrong one
    ],
)
def test_gpu_peaks_by_name(name: str, tflops: float | None) -> None:
    assert peak_tflops(name) == tflops


def test_docstring_examples() -> None:
    import cnncourse.mfu

    assert doctest.testmod(cnncourse.bench).failed == 0
    result = doctest.testmod(cnncourse.mfu)
    assert result.attempted > 0 and result.failed == 0


def test_variants_turn_one_trick_off_each() -> None:
    names = [v.name for v in default_variants(compile=True)]
    assert names[:2] == ["textbook", "optimised"]
    assert "no compile" in names and "no cudnn.benchmark" in names
    textbook, best, *ablations = default_variants(compile=True)
    assert textbook == Variant("textbook") and best.cudnn_benchmark
    tricks = ("device_data", "amp", "channels_last", "compile", "fused", "cudnn_benchmark")
    for v in ablations:  # differs from the optimised loop in exactly one field (and the name)
        diff = [f for f in tricks if getattr(v, f) != getattr(best, f)]
        assert len(diff) == 1, v
    assert len(ablations) == len(tricks)  # one row per trick
    cpu = default_variants(compile=False, cudnn_benchmark=False)  # no cuDNN on a CPU
    assert not {"no compile", "no cudnn.benchmark"} & {v.name for v in cpu}
    assert not any(v.cudnn_benchmark for v in cpu)


def measured_step_flops(name: str, batch_size: int) -> int:
    """FLOPs of one real training step (forward, loss, backward) of model `name` on the CPU,
    as PyTorch's FlopCounterMode sees every convolution and matrix product run."""
    torch.manual_seed(0)
    model = get_model(name).train()
    x, y = torch.randn(batch_size, 3, 32, 32), torch.randint(0, 10, (batch_size,))
    with FlopCounterMode(display=False) as counter:
        nn.functional.cross_entropy(model(x), y).backward()
    return counter.get_total_flops()


def test_flops_per_step_match_a_measured_training_step() -> None:
    measured = measured_step_flops("resnet20", batch_size=2)
    forward = 2 * count_macs(get_model("resnet20"), (3, 32, 32)) * 2  # 2 FLOPs per MAC, B = 2
    assert measured / forward == pytest.approx(3, abs=0.05)  # backward = 2 forwards
    (r,) = run_benchmark(
        ["resnet20"], batch_size=2, steps=1, warmup=1, device="cpu", variants=[TEXTBOOK]
    )
    assert r.flops_per_step == pytest.approx(measured, rel=0.03)
    assert r.tflops == pytest.approx(r.flops_per_step / (r.step_ms / 1e3) / 1e12)


def test_flops_count_what_only_training_runs() -> None:
    """GoogLeNet's auxiliary heads run in training mode only: an eval-mode count misses them."""
    with torch.device("meta"):
        with_aux, without = get_model("googlenet"), get_model("googlenet", aux_logits=False)
    size = (3, 224, 224)
    assert count_macs(with_aux, size) == count_macs(without, size)  # eval mode: no heads
    assert train_step_flops(without, size) == 6 * count_macs(without, size)
    # The heads on their own: on (4a)'s and (4d)'s outputs, 14 x 14 for a 224 x 224 input.
    heads = count_macs(with_aux.aux1, (512, 14, 14)) + count_macs(with_aux.aux2, (528, 14, 14))
    assert heads > 0
    assert train_step_flops(with_aux, size) == 6 * (count_macs(without, size) + heads)
    assert with_aux.training  # the model is left as it was


def test_cpu_benchmark_reports_every_variant(tmp_path: Path) -> None:
    results = run_benchmark(["resnet20"], batch_size=4, steps=2, warmup=1, device="cpu")
    expected = default_variants(compile=False, cudnn_benchmark=False)
    assert [r.variant for r in results] == [v.name for v in expected]
    for r, v in zip(results, expected, strict=True):
        assert r.device == "cpu" and r.images_per_s > 0 and r.peak_mem_mib is None
        assert r.mfu is None  # no peak for a CPU
        assert r.images_per_s == pytest.approx(4 / (r.step_ms / 1e3))
        assert r.math == ("bf16 autocast" if v.amp == "bf16" else "fp32")  # PyTorch's defaults
    text = format_table(results)
    assert "MFU not reported" in text and "textbook" in text and "1.00x" in text
    assert f"{results[0].flops_per_step / 1e9:.3g} GFLOP per step" in text
    rows = {line.split("  ")[0].strip(): line for line in text.splitlines()[4:]}
    assert rows.keys() == {r.variant for r in results}
    assert all(f" {r.math} " in rows[r.variant] for r in results)  # each row says its math
    md = format_table(results, markdown=True).splitlines()
    assert md[2].startswith("| variant | math |") and md[3].startswith("|:---|:---|")
    assert md[4].startswith("| textbook | fp32 |") and md[5].startswith(
        "| optimised | bf16 autocast |"
    )
    fig = plot_bench(results)
    assert isinstance(fig, Figure)
    fig.savefig(tmp_path / "bench.png")


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


@pytest.fixture
def float32_flags() -> Iterator[None]:
    """Give back PyTorch's fp32 precision flags, whatever the test set (the legacy setters set
    every operation's flag: mixed per-operation flags make the legacy getters raise)."""
    matmul, tf32 = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    yield
    torch.set_float32_matmul_precision(matmul)
    torch.backends.cudnn.allow_tf32 = tf32


@pytest.mark.usefixtures("float32_flags")
def test_math_mode_says_when_fp32_runs_in_tf32(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a (pretended) H100, PyTorch's defaults give TF32 convolutions and fp32 matmuls."""
    gpu = torch.device("cuda", 0)
    capability = (9, 0)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert torch.backends.cudnn.allow_tf32 and torch.get_float32_matmul_precision() == "highest"
    assert math_mode(gpu, None) == "fp32 (TF32 convs)"
    assert math_mode(gpu, "bf16") == "bf16 autocast" and math_mode(gpu, "fp16") == "fp16 autocast"
    torch.set_float32_matmul_precision("high")  # TF32 for matmuls too
    assert math_mode(gpu, None) == "fp32 (TF32 convs, TF32 matmuls)"
    torch.set_float32_matmul_precision("highest")
    torch.backends.cudnn.allow_tf32 = False  # the legacy switch: true fp32
    assert math_mode(gpu, "fp32") == "fp32"
    torch.backends.cudnn.conv.fp32_precision = "tf32"  # the per-operation one
    assert math_mode(gpu, None) == "fp32 (TF32 convs)"
    capability = (7, 0)  # a V100: no TF32, whatever the flags say
    assert math_mode(gpu, None) == "fp32"
    torch.set_float32_matmul_precision("medium")  # on a CPU: oneDNN may compute in bf16
    assert math_mode(torch.device("cpu"), None) == "fp32 (bf16 matmuls)"


def test_cudnn_benchmark_is_set_per_variant_then_restored(monkeypatch) -> None:
    seen, real_make_step = [], cnncourse.bench.make_step

    def make_step(*args: object, **kwargs: object) -> object:
        seen.append(torch.backends.cudnn.benchmark)  # as the variant's steps will run
        return real_make_step(*args, **kwargs)

    monkeypatch.setattr(cnncourse.bench, "make_step", make_step)
    tuned = Variant("tuned", cudnn_benchmark=True)
    for caller in (False, True):
        monkeypatch.setattr(torch.backends.cudnn, "benchmark", caller)
        run_benchmark(
            ["resnet20"],
            2,
            steps=1,
            warmup=0,
            device="cpu",
            variants=[tuned, TEXTBOOK],
            progress=False,
        )
        assert torch.backends.cudnn.benchmark is caller  # the caller's setting, back
    assert seen == [True, False] * 2


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


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"steps": 0}, "steps must be an integer >= 1, got 0"),  # was: a division by zero
        ({"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
        ({"warmup": -1}, "warmup must be an integer >= 0, got -1"),
        # VGG is RGB only: a 1-channel input is refused before any benchmark runs.
        (
            {"models": ["resnet20", "vgg11_cifar"], "input_size": (1, 32, 32)},
            r"input_size=\(1, 32, 32\) does not suit 'vgg11_cifar': "
            "it takes 3 input channels, not 1",
        ),
    ],
)
def test_bad_arguments_are_named_before_any_benchmark(kwargs: dict, match: str, capsys) -> None:
    with pytest.raises(ValueError, match=match):
        run_benchmark(**{"models": ["resnet20"], "device": "cpu", **kwargs})
    assert capsys.readouterr().out == ""  # nothing ran


def test_flops_are_counted_on_the_meta_device(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the benchmarked variants build real models: counting FLOPs allocates no weights."""
    from cnncourse.models import ModelSpec

    built, real_build = [], ModelSpec.build

    def build(self: ModelSpec, **kwargs: object) -> nn.Module:
        model = real_build(self, **kwargs)
        built.append(next(model.parameters()).device.type)
        return model

    monkeypatch.setattr(ModelSpec, "build", build)  # every model is built from its record
    run_benchmark(["resnet20"], batch_size=2, steps=1, warmup=1, device="cpu", variants=[TEXTBOOK])
    assert built.count("cpu") == 1 and set(built) == {"cpu", "meta"}, built  # the variant's


def test_cli_bench(tmp_path: Path, capsys) -> None:
    plot = tmp_path / "bench.png"
    args = ["bench", "resnet20", "--device", "cpu", "--batch-size", "2", "--steps", "1"]
    assert main([*args, "--warmup", "1", "--markdown", "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "| textbook |" in out and plot.stat().st_size > 0
    assert main(["bench", "resnet21", "--device", "cpu"]) == 1
    assert "resnet21" in capsys.readouterr().err

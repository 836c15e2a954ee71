"""`cnncourse.bench`: the CPU path (tiny), the GPU table, the output formats."""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

import cnncourse.bench
from cnncourse.bench import TEXTBOOK, Variant, default_variants, run_benchmark
from cnncourse.bench_report import format_table
from cnncourse.plot import plot_bench

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


def test_docstring_examples() -> None:
    assert doctest.testmod(cnncourse.bench).failed == 0


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

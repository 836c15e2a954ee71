"""The benchmark's report: one table per model, as aligned text or as Markdown.

`cnncourse.bench.run_benchmark` measures; this module only lays its `BenchResult` rows out, with
the speed-up of each variant over the first (the textbook loop) and, where the GPU's dense bf16
peak is known, the MFU it is measured against.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from cnncourse.mfu import peak_tflops

if TYPE_CHECKING:
    from cnncourse.bench import BenchResult

__all__ = ["format_table"]


def format_table(results: Sequence[BenchResult], markdown: bool = False) -> str:
    """A table per model: math, images/s, speed-up vs the first row, ms/step, MiB, TFLOP/s, MFU.

    Above each table: the setting, the FLOPs per step, and the peak the MFU is taken against.
    """
    head = ("variant", "math", "images/s", "speed-up", "ms/step", "peak MiB", "TFLOP/s", "MFU")
    out = []
    for model in dict.fromkeys(r.model for r in results):
        rows = [r for r in results if r.model == model]
        first = rows[0]
        out.append(
            f"{model} on {first.device}, batch {first.batch_size}, {first.steps} steps, "
            f"{first.flops_per_step / 1e9:.3g} GFLOP per step (3 x the training forward)"
        )
        peak = peak_tflops(first.device)
        if peak is not None:
            out.append(
                f"MFU: TFLOP/s over the dense bf16 peak, {peak:g} TFLOP/s, for every variant: "
                "fp32 ones too (their own peak is far lower)"
            )
        else:
            why = "a CPU" if first.device in ("cpu", "mps") else f"unknown GPU {first.device!r}"
            out.append(f"MFU not reported: no dense bf16 peak for {why} (see GPU_PEAK_TFLOPS)")
        cells = [head] + [
            (
                r.variant,
                r.math,
                f"{r.images_per_s:,.0f}",
                f"{r.images_per_s / first.images_per_s:.2f}x",
                f"{r.step_ms:.2f}",
                "-" if r.peak_mem_mib is None else f"{r.peak_mem_mib:,.0f}",
                f"{r.tflops:.3g}",
                "-" if r.mfu is None else f"{r.mfu:.1%}",
            )
            for r in rows
        ]
        out.append(_markdown(cells) if markdown else _text(cells))
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def _text(cells: list[tuple[str, ...]]) -> str:
    """Columns as wide as their widest cell: the words (variant, math) flush left, numbers right."""
    widths = [max(map(len, column)) for column in zip(*cells, strict=True)]
    pad = [str.ljust] * 2 + [str.rjust] * (len(widths) - 2)
    lines = ["  ".join(f(c, w) for f, c, w in zip(pad, row, widths, strict=True)) for row in cells]
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])


def _markdown(cells: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(row) + " |" for row in cells]
    lines.insert(1, "|" + "|".join([":---"] * 2 + ["---:"] * (len(cells[0]) - 2)) + "|")
    return "\n".join(lines)

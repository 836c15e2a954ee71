"""Parameters and MACs of a real `nn.Module`, layer by layer, measured on the meta device.

`cnncourse.counting` gives the formulas; this module applies them to a model's layers as the
model actually runs, so that the book never types a layer table by hand:

>>> import torch.nn as nn
>>> net = nn.Sequential(nn.Conv2d(3, 8, 5), nn.ReLU(), nn.Conv2d(8, 16, 3))
>>> count_params(net)  # [(5*5*3)+1]*8 + [(3*3*8)+1]*16
1776
>>> count_macs(net, (3, 32, 32))  # 28*28*8*(5*5*3) + 26*26*16*(3*3*8)
1249152

How it works. The model's parameters and buffers are swapped, for one forward pass only, for
tensors on PyTorch's ``meta`` device: tensors that carry a shape and a dtype but no data. Every
operation then computes only the shape of its result, so a 3 x 2048 x 1024 input costs no more
memory or time than 3 x 32 x 32, and the model itself is neither copied nor changed. A forward
hook on each layer records its output shape, and its MACs from the counting formulas.

Counting convention (the book's chapter 2): the unit is the MAC, one multiply-accumulate;
FLOPs = 2 x MACs. Only convolution (incl. grouped, depthwise and transposed) and linear layers are
counted, bias excluded, which reproduces the ops that torchvision publishes for its models.

Limits, on purpose:
- Only *modules* are counted. Work done by functional calls in a ``forward`` (``F.conv2d`` with a
  bare parameter, ``x @ w``, attention's matrix products) is not seen; in a CNN the MACs are in
  conv and linear modules. `torch.utils.flop_counter.FlopCounterMode` counts every operation and
  is the independent cross-check used in the tests.
- The model runs in eval mode (auxiliary classifiers of GoogLeNet/Inception are skipped, as at
  inference), with a batch of one; the training flags are restored afterwards.
- A forward that needs real values (``.item()``, data-dependent branches) cannot run on meta.
"""

from __future__ import annotations

import functools
import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from cnncourse import counting
from cnncourse.meta import check_input_size, first_tensor, meta_forward

__all__ = ["LayerRow", "Summary", "count_params", "count_macs", "summarize", "meta_forward"]

_COLUMNS = ("Layer", "Type", "Output shape", "Params", "MACs")


@dataclass(frozen=True)
class LayerRow:
    """One call of one layer: ``output_shape`` has no batch dimension, like ``input_size``.

    A layer called twice gives two rows; its parameters are counted on the first row only.
    """

    name: str  # attribute path in the model, e.g. "layer1.0.conv1" ("" for the model itself)
    type: str  # class name, e.g. "Conv2d"
    output_shape: tuple[int, ...]
    params: int
    macs: int


@dataclass
class Summary:
    """The per-layer table returned by `summarize`; print it, or display it in a notebook."""

    rows: list[LayerRow]
    total_params: int  # all parameters of the model, each counted once
    total_macs: int  # sum over rows: MACs of one forward pass for one input
    input_size: tuple[int, ...]

    def _cells(self) -> list[tuple[str, ...]]:
        return [
            (r.name or "(model)", r.type, str(r.output_shape), f"{r.params:,}", f"{r.macs:,}")
            for r in self.rows
        ]

    def _footer(self) -> list[str]:
        lines = [f"Input: {self.input_size}, batch of 1"]
        n = self.total_params
        lines.append(f"Total params: {n:,}" + (f" ({_scaled(n).rstrip()})" if n >= 1000 else ""))
        unseen = self.total_params - sum(r.params for r in self.rows)
        if unseen:
            lines.append(f"  of which {unseen:,} in layers that did not run in this forward pass")
        macs = self.total_macs
        lines.append(
            f"Total MACs: {macs:,} ({_scaled(macs)}MACs); "
            f"FLOPs = 2 x MACs = {_scaled(2 * macs)}FLOPs"
        )
        return lines

    def to_text(self) -> str:
        """An aligned text table: names and types left-aligned, numbers right-aligned."""
        cells = [_COLUMNS, *self._cells()]
        widths = [max(len(row[i]) for row in cells) for i in range(len(_COLUMNS))]

        def line(row: Sequence[str]) -> str:
            left = [c.ljust(w) for c, w in zip(row[:3], widths[:3], strict=True)]
            right = [c.rjust(w) for c, w in zip(row[3:], widths[3:], strict=True)]
            return "  ".join(left + right).rstrip()

        rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
        body = [line(cells[0]), rule, *(line(row) for row in cells[1:]), rule]
        return "\n".join(body + self._footer())

    def __str__(self) -> str:
        return self.to_text()

    def _repr_html_(self) -> str:
        """Jupyter calls this to display a Summary as an HTML table."""
        esc = html.escape
        head = "".join(f"<th>{esc(c)}</th>" for c in _COLUMNS)
        body = "".join(
            "<tr>"
            + "".join(f"<td style='text-align:left'>{esc(c)}</td>" for c in row[:3])
            + "".join(f"<td style='text-align:right'>{esc(c)}</td>" for c in row[3:])
            + "</tr>"
            for row in self._cells()
        )
        foot = "<br>".join(esc(line) for line in self._footer())
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table><p>{foot}</p>"


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters of `model`; a parameter shared by two layers is counted once.

    Buffers (batch norm's running mean and variance) are not parameters: they are not learned.
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_macs(model: nn.Module, input_size: tuple[int, ...]) -> int:
    """MACs of one forward pass of `model` on one input of shape `input_size` (no batch dim).

    >>> count_macs(nn.Linear(784, 100), (784,))  # 784 * 100, bias not counted
    78400
    """
    return summarize(model, input_size).total_macs


def summarize(model: nn.Module, input_size: tuple[int, ...]) -> Summary:
    """Run `model` on the meta device and tabulate each layer call: output shape, params, MACs.

    A row is a *leaf* module (one without children: Conv2d, BatchNorm2d, ReLU, ...), or any
    module holding parameters of its own. A module called twice gives two rows, so its MACs are
    counted twice, while its parameters are counted on its first row only. Raises ValueError
    naming ``input_size`` when the model cannot take it (see `meta_forward`).
    """
    size = check_input_size(input_size)
    rows: list[LayerRow] = []
    counted: set[int] = set()  # ids of the (real) parameters already put on a row

    def hook(module: nn.Module, args: tuple, kwargs: dict, output: object, *, name: str, own: list):
        params = sum(p.numel() for p in own if id(p) not in counted)
        counted.update(id(p) for p in own)
        x = first_tensor((*args, *kwargs.values()))
        y = first_tensor(output)
        shape = tuple(y.shape[1:]) if y is not None else ()
        rows.append(LayerRow(name, type(module).__name__, shape, params, _layer_macs(module, x, y)))

    handles = []
    for name, module in model.named_modules():
        own = list(module.parameters(recurse=False))  # the real ones: meta_forward swaps a copy
        if own or next(module.children(), None) is None:
            call = functools.partial(hook, name=name, own=own)
            handles.append(module.register_forward_hook(call, with_kwargs=True))

    try:
        meta_forward(model, size)
    finally:
        for h in handles:
            h.remove()
    return Summary(rows, count_params(model), sum(r.macs for r in rows), size)


def _layer_macs(module: nn.Module, x: torch.Tensor | None, y: torch.Tensor | None) -> int:
    """MACs of one call of a conv or linear layer (0 for every other layer), bias excluded.

    The formulas only multiply sizes, so a kernel of any dimension flattens to (prod(k), 1), and
    the grid of positions (batch and spatial dims together) to (positions, 1).
    """
    if y is None or y.numel() == 0:
        return 0
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        # Counted on the *input* grid: each input value meets k*k*(C_out/g) weights.
        k = math.prod(module.kernel_size)
        positions = x.numel() // module.in_channels if x is not None else 0
        if positions == 0:
            return 0
        return counting.conv_transpose_macs(
            module.in_channels, module.out_channels, (k, 1), (positions, 1), module.groups
        )
    if isinstance(module, nn.modules.conv._ConvNd):
        k = math.prod(module.kernel_size)
        positions = y.numel() // module.out_channels
        return counting.conv_macs(
            module.in_channels, module.out_channels, (k, 1), (positions, 1), module.groups
        )
    if isinstance(module, nn.Linear):
        # A linear layer applies to the last dim; any other dims are positions (tokens, pixels).
        positions = y.numel() // module.out_features
        return counting.linear_macs(module.in_features, module.out_features, positions)
    return 0


def _scaled(n: int) -> str:
    """1814073344 -> '1.814 G': three decimals and an SI prefix, as torchvision prints ops."""
    for factor, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= factor:
            return f"{n / factor:.3f} {prefix}"
    return f"{n} "

"""Helpers shared by the model tests: models on the meta device, the smallest input a model
takes, PyTorch's own MAC count. Nothing here knows a model by name: what a model needs comes
from its record (`cnncourse.models.SPECS`) or from running it on the meta device."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cnncourse.meta import meta_state, training_mode
from cnncourse.models import SPECS, ModelSpec

#: Every record, in registry order: the parameter of the registry-wide loops.
ALL_SPECS: list[ModelSpec] = list(SPECS.values())


def spec_id(spec: ModelSpec) -> str:
    return spec.name


def on_meta(build: Callable[..., nn.Module], **kwargs: object) -> nn.Module:
    """The model with shape-only parameters: counting needs no memory and no initialisation."""
    with torch.device("meta"):
        return build(**kwargs)


def flop_counter_macs(model: nn.Module, input_size: tuple[int, ...]) -> int:
    """MACs by PyTorch's own counter (every conv and matmul dispatched, bias excluded), in eval
    mode, on the model's device (meta for big models)."""
    device = next(model.parameters()).device
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()(torch.empty(1, *input_size, device=device))
    flops = counter.get_total_flops()
    assert flops % 2 == 0  # FLOPs = 2 x MACs
    return flops // 2


def trains_on(model: nn.Module, input_size: tuple[int, ...]) -> bool:
    """Whether a training-mode forward of a batch of 2 of `input_size` runs (on meta)."""
    x = torch.empty(2, *input_size, device="meta")  # 2: batch norm needs 2 values to train
    try:
        with training_mode(model, True), torch.no_grad():
            torch.func.functional_call(model, meta_state(model), (x,))
    except (RuntimeError, ValueError):
        return False
    return True


def smallest_side(model: nn.Module, channels: int, largest: int) -> int:
    """The smallest power of two (else `largest`) that `model` trains on as a square input."""
    side = 1
    while side < largest:
        if trains_on(model, (channels, side, side)):
            return side
        side *= 2
    return largest

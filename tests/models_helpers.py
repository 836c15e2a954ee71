"""Helpers shared by the model tests: models on the meta device, the smallest input a model
takes, PyTorch's own MAC count. Nothing here knows a model by name: what a model needs comes
from its record (`cnncourse.models.SPECS`) or from running it on the meta device."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
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


def meta_model(name: str, **kwargs: object) -> nn.Module:
    """A torchvision model built on the meta device: no weights, no memory, no download."""
    import torchvision

    with torch.device("meta"):
        return torchvision.models.get_model(name, weights=None, **kwargs)


def flop_counter_macs(model: nn.Module, input_size: tuple[int, ...]) -> int:
    """MACs by PyTorch's own counter (every conv and matmul dispatched, bias excluded), in eval
    mode, on the model's device (meta for big models)."""
    device = next(model.parameters()).device
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()(torch.empty(1, *input_size, device=device))
    flops = counter.get_total_flops()
    assert flops % 2 == 0  # FLOPs = 2 x MACs
    return flops // 2


def runs_on(model: nn.Module, input_size: tuple[int, ...], training: bool = True) -> bool:
    """Whether a forward of a batch of 2 of `input_size` runs (on meta), in training mode (the
    auxiliary heads too) or in eval mode."""
    x = torch.empty(2, *input_size, device="meta")  # 2: batch norm needs 2 values to train
    try:
        with training_mode(model, training), torch.no_grad():
            torch.func.functional_call(model, meta_state(model), (x,))
    except (RuntimeError, ValueError):
        return False
    return True


def smallest_side(model: nn.Module, channels: int, largest: int, training: bool = True) -> int:
    """The smallest power of two (else `largest`) that `model` runs on as a square input."""
    side = 1
    while side < largest:
        if runs_on(model, (channels, side, side), training):
            return side
        side *= 2
    return largest


@pytest.fixture(autouse=True)
def native_cpu_kernels() -> Iterator[None]:
    """oneDNN compiles a kernel for each new conv shape; the model tests run hundreds of shapes
    once each (every DenseNet layer has its own), on tiny inputs: native kernels are several
    times faster here. Both sides of every comparison run on the same kernels. A test module
    that imports it gets it as an autouse fixture."""
    previous = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    yield
    torch.backends.mkldnn.enabled = previous


def calibrate_bn(model: nn.Module, x: torch.Tensor, seed: int = 0) -> nn.Module:
    """Give every BN non-trivial statistics and affine terms, so that eval mode is really tested.

    The statistics are those of the BN's actual input for ``x``, perturbed at random, so that
    activations keep a sane scale through deep networks (random weights and random statistics
    would overflow). Leaves the model in eval mode.
    """
    g = torch.Generator().manual_seed(seed)

    def hook(m: nn.BatchNorm2d, args: tuple[torch.Tensor]) -> None:
        c, inp = m.num_features, args[0]
        mean, var = inp.mean((0, 2, 3)), inp.var((0, 2, 3)) + 1e-3
        m.running_mean.copy_(mean + 0.1 * var.sqrt() * torch.randn(c, generator=g))
        m.running_var.copy_(var * (0.5 + torch.rand(c, generator=g)))
        m.weight.copy_(0.5 + torch.rand(c, generator=g))
        m.bias.copy_(0.1 * torch.randn(c, generator=g))

    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    handles = [m.register_forward_pre_hook(hook) for m in bns]
    with torch.no_grad():
        model.eval()(x)
    for h in handles:
        h.remove()
    return model


def assert_all_grads(model: nn.Module) -> None:
    """Every trainable parameter received a gradient of its shape; unless on the meta device
    (shapes only), a finite one that is not all zero."""
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        assert p.grad is not None and p.grad.shape == p.shape, f"{name} got no gradient"
        if p.device.type != "meta":
            assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"
            assert p.grad.abs().sum() > 0, f"{name} has an all-zero gradient"


def output_shapes(model: nn.Module, input_size: tuple[int, ...], names: list[str]) -> list:
    """Output shapes (no batch dim) of the named submodules, from one forward on meta."""
    shapes: dict[str, tuple[int, ...]] = {}
    modules = dict(model.named_modules())
    hooks = [
        modules[n].register_forward_hook(lambda m, i, o, n=n: shapes.__setitem__(n, o.shape[1:]))
        for n in names
    ]
    with torch.no_grad():
        model.eval()(torch.empty(1, *input_size, device="meta"))
    for h in hooks:
        h.remove()
    return [tuple(shapes[n]) for n in names]


def check_trains(model: nn.Module, x: torch.Tensor, num_classes: int) -> None:
    """Train-mode forward and backward: (N, num_classes) logits, a gradient for every parameter."""
    model.train()
    out = model(x)
    outputs = list(out) if isinstance(out, tuple) else [out]  # with auxiliary heads' logits
    assert all(o.shape == (x.shape[0], num_classes) for o in outputs)
    sum(o.square().mean() for o in outputs).backward()
    assert_all_grads(model)

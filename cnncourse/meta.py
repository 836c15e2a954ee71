"""Run a model on PyTorch's meta device: output shapes without data, memory or time.

A meta tensor carries a shape and a dtype but no storage, so every operation on it only works out
the shape of its result. Swapping a model's parameters and buffers for meta tensors, for one call,
tells what the model outputs for an input of any size (3 x 2048 x 1024 as cheaply as 3 x 32 x 32),
and which layer refuses it when it does not fit. `cnncourse.profile` counts on top of this;
`cnncourse.train.checks` uses it to match a model with a dataset before training.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence

import torch
from torch import nn

__all__ = ["meta_forward", "meta_state", "training_mode", "check_input_size", "first_tensor"]


def meta_forward(model: nn.Module, input_size: tuple[int, ...]) -> object:
    """The output of `model` for one input of shape `input_size` (no batch dim), on meta.

    The model's parameters and buffers are swapped for meta tensors (a shape and a dtype, no
    data) for this one call (`torch.func.functional_call`), in eval mode, on a batch of one of
    the model's floating dtype; the model is neither moved nor changed, its training flags are
    restored, and forward hooks registered on it see the call (`summarize` relies on that).

    Raises ValueError naming ``input_size`` when it is not a tuple of positive ints, or when the
    model refuses an input of that shape (wrong channel count, an image too small for its pools,
    ...): the message names the layer that failed, the shape it got and its complaint; the
    original error is chained (``__cause__``). A model whose forward needs real values (``.item()``,
    ``nonzero``) raises NotImplementedError, naming the layer.

    >>> meta_forward(nn.Conv2d(3, 8, 5), (3, 32, 32)).shape
    torch.Size([1, 8, 28, 28])
    >>> net = nn.Sequential(nn.Conv2d(3, 8, 5), nn.MaxPool2d(4), nn.MaxPool2d(4))
    >>> meta_forward(net, (3, 12, 12))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: input_size (3, 12, 12) does not fit Sequential: layer '2' (MaxPool2d(...)) got ...
    """
    size = check_input_size(input_size)
    state = meta_state(model)
    dtype = next((t.dtype for t in state.values() if t.is_floating_point()), None)
    x = torch.empty((1, *size), dtype=dtype, device="meta")  # a batch of one

    # The layers entered and not yet left: on an error, the last one is the layer that failed.
    calls: list[tuple[str, nn.Module, torch.Tensor | None]] = []

    def enter(module: nn.Module, args: tuple, kwargs: dict, *, name: str) -> None:
        calls.append((name, module, first_tensor((*args, *kwargs.values()))))

    def leave(module: nn.Module, args: tuple, output: object) -> None:
        calls.pop()

    handles = []
    for name, module in model.named_modules():
        hook = functools.partial(enter, name=name)
        handles.append(module.register_forward_pre_hook(hook, with_kwargs=True))
        handles.append(module.register_forward_hook(leave))
    try:
        with training_mode(model, False), torch.no_grad():
            return torch.func.functional_call(model, state, (x,))
    except NotImplementedError as e:  # before RuntimeError, its base class
        # Not the input's fault: an operation that needs real values (.item(), nonzero, a
        # data-dependent branch) has no meta implementation.
        raise NotImplementedError(
            f"{type(model).__name__} cannot run on the meta device, so it cannot be counted "
            f"without data: {_where(calls)}{_first_line(e)}"
        ) from e
    except (RuntimeError, ValueError) as e:
        where = _where(calls)  # which layer failed, and on what
        raise ValueError(
            f"input_size {size} does not fit {type(model).__name__}: {where}{_first_line(e)}"
        ) from e
    finally:
        for h in handles:
            h.remove()


def meta_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Meta tensors shaped like `model`'s parameters and buffers, by name: the state to run it
    with, through ``torch.func.functional_call``, without touching its own tensors.

    >>> meta_state(nn.Linear(3, 2))["weight"]
    tensor(..., device='meta', size=(2, 3))
    """
    state = {n: torch.empty_like(t, device="meta") for n, t in model.named_parameters()}
    return state | {n: torch.empty_like(t, device="meta") for n, t in model.named_buffers()}


@contextlib.contextmanager
def training_mode(model: nn.Module, training: bool) -> Iterator[nn.Module]:
    """`model` in training (True) or eval (False) mode for the block; every submodule's own flag
    comes back afterwards, even where they differed (a frozen BN in eval inside a training net).
    """
    modes = {m: m.training for m in model.modules()}
    try:
        yield model.train(training)
    finally:
        for m, flag in modes.items():
            m.training = flag


def _where(calls: list[tuple[str, nn.Module, torch.Tensor | None]]) -> str:
    """Where an error happened: the innermost layer of `calls`, its settings and input shape
    (no batch dim), e.g. "layer 'features.2' (MaxPool2d(...)) got an input of shape (64, 1, 1): ";
    empty when the model's own forward failed.
    """
    if not calls or not calls[-1][0]:
        return ""
    name, module, x = calls[-1]
    text = repr(module)
    what = text if "\n" not in text else type(module).__name__  # one line: a leaf's settings
    shape = f" got an input of shape {tuple(x.shape[1:])}" if x is not None else ""
    return f"layer {name!r} ({what}){shape}: "


def _first_line(error: Exception) -> str:
    """The first non-blank line of an error's message (PyTorch's can run to many lines)."""
    return next((line.strip() for line in str(error).splitlines() if line.strip()), repr(error))


def check_input_size(input_size: object) -> tuple[int, ...]:
    """``input_size`` must be a non-empty sequence of positive ints, without the batch dim."""
    ok = isinstance(input_size, Sequence) and not isinstance(input_size, str | bytes)
    ok = ok and len(input_size) > 0
    ok = ok and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in input_size)
    if not ok:
        raise ValueError(
            "input_size must be a non-empty tuple of positive ints without the batch "
            f"dimension, e.g. (3, 224, 224); got {input_size!r}"
        )
    return tuple(input_size)


def first_tensor(output: object) -> torch.Tensor | None:
    """The output tensor of a layer, or the first one if it returns a tuple or a list."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, tuple | list):
        return next((o for o in output if isinstance(o, torch.Tensor)), None)
    return None

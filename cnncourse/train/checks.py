"""Catch a model that does not fit its data before training starts, not minutes into it.

The model runs once on PyTorch's ``meta`` device (shapes, no data, no memory, no time; see
`cnncourse.meta`), on one input of the data's shape. A wrong ``in_channels`` fails there; a
wrong ``num_classes`` (or a segmentation net whose output is smaller than its input, like the
paper's unpadded U-Net) shows in the output's shape.

>>> from torch import nn
>>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))
>>> output_shape(net, (1, 28, 28))
(10,)
>>> check_model_data(net, (3, 32, 32), 10, model_name="tiny", data_name="shapes")
... # doctest: +ELLIPSIS
Traceback (most recent call last):
ValueError: model 'tiny' cannot take the inputs of dataset 'shapes', of shape (3, 32, 32) ...
"""

from __future__ import annotations

import numbers

import torch
from torch import nn

from cnncourse.meta import meta_forward

__all__ = ["output_shape", "check_model_data", "check_loader", "check_at_least"]


def output_shape(model: nn.Module, input_size: tuple[int, ...]) -> tuple[int, ...]:
    """Shape of ``model(x)`` for one input of shape `input_size` (no batch dim), on meta.

    The model is neither moved nor changed (see `cnncourse.meta.meta_forward`, which raises
    ValueError naming the layer that refused the input).
    """
    return tuple(meta_forward(model, tuple(input_size)).shape[1:])


def check_model_data(
    model: nn.Module,
    input_size: tuple[int, ...],
    num_classes: int | None,
    task: str = "classification",
    model_name: str | None = None,
    data_name: str | None = None,
) -> tuple[int, ...]:
    """Raise ValueError, naming both, unless `model` maps inputs of `input_size` (C, H, W) to
    `num_classes` scores (classification) or to scores per pixel, (num_classes, H, W)
    (segmentation). ``num_classes=None``: any number of classes. Returns the output shape.
    """
    model_name = model_name or type(model).__name__
    data_name = data_name or "the data"
    who = f"model {model_name!r}"
    data = f"dataset {data_name!r}" if data_name != "the data" else data_name
    try:
        out = output_shape(model, tuple(input_size))
    except ValueError as e:
        reason = str(e).strip().splitlines()[0]
        advice = "Is the input too small for the model?"
        conv = next((m for m in model.modules() if isinstance(m, nn.modules.conv._ConvNd)), None)
        if conv is not None and conv.in_channels != input_size[0]:  # the usual culprit
            reason = f"its first conv takes {conv.in_channels} channels, the data has "
            reason += f"{input_size[0]}"
            advice = "Build the model with in_channels matching the data's channels."
        raise ValueError(
            f"{who} cannot take the inputs of {data}, of shape {tuple(input_size)} (C, H, W): "
            f"{reason}. {advice}"
        ) from e
    c = num_classes if num_classes is not None else (out[0] if out else None)
    expected = (c,) if task == "classification" else (c, *input_size[1:])
    if out != expected:
        what = "class scores" if task == "classification" else "class scores per pixel"
        raise ValueError(
            f"{who} outputs shape {out} per input, but {data} ({task}, {num_classes} classes, "
            f"inputs {tuple(input_size)}) needs {what} of shape {expected}. "
            "Build the model with num_classes (and, for segmentation, padding that keeps H x W)."
        )
    return out


def check_loader(model: nn.Module, data: object) -> None:
    """`check_model_data` on the first sample of `data`, when the loader shows its tensors
    (``images`` and ``targets`` of a `cnncourse.data.DeviceLoader`, or a torch `DataLoader`'s
    ``dataset``); a target class beyond the model's outputs is refused too. Others: no check.
    """
    images, targets = getattr(data, "images", None), getattr(data, "targets", None)
    dataset = getattr(data, "dataset", None)  # a torch DataLoader
    if images is None and dataset is not None and len(dataset) > 0:
        x, y = dataset[0]
        images, targets = torch.as_tensor(x)[None], torch.as_tensor(y)[None]
    if not isinstance(images, torch.Tensor) or not isinstance(targets, torch.Tensor):
        return
    if images.ndim != 4:
        return
    task = "segmentation" if targets.ndim == 3 else "classification"
    out = check_model_data(model, tuple(images.shape[1:]), None, task)
    if not targets.is_floating_point() and len(targets) and int(targets.max()) >= out[0]:
        raise ValueError(
            f"the data has class {int(targets.max())} but the model {type(model).__name__} "
            f"outputs {out[0]} class scores; build it with num_classes={int(targets.max()) + 1}"
        )


def check_at_least(least: int, **values: int) -> None:
    """Raise ValueError naming the first of `values` that is not an integer >= `least`.

    >>> check_at_least(1, epochs=3, check_every=0)
    Traceback (most recent call last):
    ValueError: check_every must be an integer >= 1, got 0
    """
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
            raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")

"""What the course knows about each model, as data: one `ModelSpec` per registry entry.

Each family file declares its records next to its builders (``SPECS``); `cnncourse.models` merges
them. Everything that needs to know about a model (the input it is designed for, whether it takes
``in_channels``, its task, whether torchvision ships the same network) reads its record: the CLI,
the training checks, the benchmark's FLOP counts, the model zoo page and the tests. Nothing is
guessed from a model's name.

>>> from cnncourse.models import SPECS
>>> SPECS["lenet5"].input_size, SPECS["lenet5"].in_channels, SPECS["unet"].task
((1, 32, 32), True, 'segmentation')
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from dataclasses import KW_ONLY, dataclass
from typing import Literal

from torch import nn

__all__ = ["ModelSpec", "Task", "builders", "did_you_mean"]

Task = Literal["classification", "segmentation"]


@dataclass(frozen=True)
class ModelSpec:
    """One model of the registry.

    name: the registry name (torchvision's where torchvision has the model);
    builder: builds it, randomly initialised; every builder takes ``num_classes``;
    input_size: the (C, H, W) input it is designed for, and counted at;
    task: "classification" (scores per image) or "segmentation" (scores per pixel);
    in_channels: whether the builder takes ``in_channels`` (else it is fixed at input_size[0]);
    paper: where the architecture was published;
    torchvision: the torchvision model of the same architecture (its ``state_dict`` loads into
    ours with ``strict=True``; its weights publish ``num_params`` and ``_ops``), or None.
    """

    name: str
    builder: Callable[..., nn.Module]
    _: KW_ONLY
    input_size: tuple[int, int, int] = (3, 224, 224)
    task: Task = "classification"
    in_channels: bool = False
    paper: str = ""
    torchvision: str | None = None

    def __post_init__(self) -> None:
        if self.task not in ("classification", "segmentation"):
            raise ValueError(f"{self.name}: task must be classification or segmentation")
        if len(self.input_size) != 3:
            raise ValueError(f"{self.name}: input_size must be (C, H, W), got {self.input_size}")

    def build(self, **kwargs: object) -> nn.Module:
        """The model, randomly initialised (keyword arguments go to its builder)."""
        return self.builder(**kwargs)


def builders(specs: Iterable[ModelSpec]) -> dict[str, Callable[..., nn.Module]]:
    """Name -> builder of `specs`: a family's ``MODELS``, derived from its records."""
    return {spec.name: spec.builder for spec in specs}


def did_you_mean(name: str, names: Iterable[str]) -> str:
    """ "; did you mean one of [...]?" when some of `names` are close to `name`, else ""."""
    close = difflib.get_close_matches(name, list(names), n=5, cutoff=0.6)
    return f"; did you mean one of {close}?" if close else ""

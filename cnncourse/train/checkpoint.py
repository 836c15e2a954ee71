"""Checkpoints that a crash cannot corrupt, and that resume a run exactly.

A checkpoint holds everything that decides what the next step computes: the model's weights
and buffers, the optimizer's state (momentum), the scheduler's and the fp16 grad scaler's,
every random generator's state (CPU, GPUs, Python's, NumPy's; they decide the next dropout
masks, and the shuffle of a torch `DataLoader`, which draws from torch's generator), the number
of epochs done and the `History` so far. Restoring all of it makes the resumed run continue with
the same numbers as a run that never stopped.

The loader itself is not saved. `fit` writes checkpoints between epochs, so no position inside
an epoch is needed, and it calls ``set_epoch(epoch)`` on a loader that has it: a
`cnncourse.data.DeviceLoader` draws each epoch's shuffle and augmentation from (seed, epoch), and
replays them (so does a `DataLoader`'s `DistributedSampler`, whose ``set_epoch`` `fit` calls). A
loader with a random generator of its own and no ``set_epoch`` (a `DataLoader`
given ``generator=``) does not resume exactly.

Writes are atomic: the new checkpoint goes to ``PATH.tmp``, is flushed to the disk, then
renamed over PATH (`os.replace`, atomic on POSIX and Windows). A crash during the write leaves
the previous checkpoint intact; a reader never sees half a file.

Everything saved is tensors, numbers, strings, lists and dicts, so `torch.load` runs with
``weights_only=True``: loading a checkpoint cannot execute code.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "save_checkpoint",
    "load_checkpoint",
    "checkpoint_path",
    "restore",
    "rng_state",
    "set_rng_state",
]


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """`torch.save` `state` to `path` atomically (write ``path.tmp``, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())  # the bytes are on the disk before the rename makes them visible
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """The dict saved by `save_checkpoint` (tensors on `map_location`); no code is executed."""
    return torch.load(Path(path), map_location=map_location, weights_only=True)


def checkpoint_path(checkpoint: str | os.PathLike | None, resume: bool) -> Path | None:
    """`fit`'s checkpoint argument as a Path, after the checks that protect a saved run.

    A ValueError when `resume` has no checkpoint to continue, when the path is a folder, and
    when a file is there but `resume` is False (a new run would overwrite it).
    """
    path = Path(checkpoint) if checkpoint is not None else None
    if resume and path is None:
        raise ValueError("resume=True needs checkpoint=PATH, the file of the run to continue")
    if path is not None and path.is_dir():
        raise ValueError(f"checkpoint={str(path)!r} is a folder; give a file path, e.g. run.pt")
    if path is not None and path.exists() and not resume:
        raise ValueError(
            f"checkpoint={str(path)!r} exists: a new run would overwrite it and lose that run. "
            "Pass resume=True to continue it, or another checkpoint path for a new run "
            "(delete the file yourself to start over)"
        )
    return path


def restore(
    path: Path,
    epochs: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any = None,
    scaler: torch.amp.GradScaler | None = None,
) -> tuple[int, dict[str, list]]:
    """Load the run saved at `path` into `model`, `optimizer`, `scheduler`, `scaler` and the
    random generators. Returns (epochs done, the history's dict).

    ValueError, naming `path`, when the run cannot continue as asked: its learning-rate
    schedule was planned for another number of `epochs`, or it is a run of a model of another
    architecture (its weights do not fit `model`).
    """
    state = load_checkpoint(path)
    if scheduler is not None and state["epochs"] != epochs:
        raise ValueError(
            f"{path} is a run of {state['epochs']} epochs, its learning-rate schedule "
            f"planned for that many; resume it with epochs={state['epochs']}, not {epochs}"
        )
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:  # missing or unexpected keys, or other shapes
        lines = str(e).strip().splitlines()  # a heading, then one line per kind of problem
        detail = lines[1].strip() if len(lines) > 1 else lines[0] if lines else ""
        detail = detail if len(detail) <= 150 else detail[:150] + "..."
        raise ValueError(
            f"checkpoint {str(path)!r} holds a model of another architecture than "
            f"{type(model).__name__} (its weights do not fit: {detail}). Resume it with the "
            "model it was trained with, or give another checkpoint path for a new run"
        ) from e
    optimizer.load_state_dict(state["optimizer"])
    for obj, key in ((scheduler, "scheduler"), (scaler, "scaler")):
        if obj is not None and state[key] is not None:
            obj.load_state_dict(state[key])
    set_rng_state(state["rng"])
    return state["epoch"], state["history"]


def rng_state() -> dict[str, Any]:
    """The state of every random generator that training may draw from."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if torch.backends.mps.is_available():
        state["mps"] = torch.mps.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the generators saved by `rng_state`."""
    torch.set_rng_state(state["torch"].cpu())
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    if "mps" in state and torch.backends.mps.is_available():
        torch.mps.set_rng_state(state["mps"].cpu())

"""Training: `fit` a model, `evaluate` it, read its `History`.

>>> from cnncourse.data import DeviceLoader, get_dataset, to_tensors
>>> from cnncourse.models import get_model
>>> from cnncourse.train import FitConfig, fit
>>> train = DeviceLoader(*to_tensors(get_dataset("shapes", "train")), batch_size=128)
>>> test = DeviceLoader(*to_tensors(get_dataset("shapes", "test")), batch_size=512, shuffle=False)
>>> model = get_model("resnet20")
>>> config = FitConfig(epochs=5, scheduler="onecycle")
>>> history = fit(model, train, test, config=config)  # doctest: +SKIP
>>> from cnncourse.plot import plot_history
>>> plot_history(history)  # doctest: +SKIP

The same call uses a GPU when there is one, and several under ``torchrun`` (DDP); in the
`FitConfig`, ``amp="bf16"``, ``channels_last=True`` and ``compile=True`` make it faster
(`cnncourse.bench` measures by how much); ``checkpoint="run.pt", resume=True`` survives an
interruption.

- `config.py`: `FitConfig`, the options of `fit`;
- `loop.py`: `fit` (set up, then epochs of steps);
- `evaluate.py`: `evaluate`, loss and accuracy in eval mode;
- `step.py`: `make_step` (one optimisation step: forward, loss, backward, update), running
  metrics;
- `history.py`: `History`, the per-epoch metrics;
- `checkpoint.py`: atomic checkpoints, random generator states;
- `checks.py`: model/data shape checks on the meta device, before training;
- `device.py`: device choice, autocast, seeding;
- `distributed.py`: DDP under ``torchrun``.
"""

from cnncourse.train.checkpoint import load_checkpoint, save_checkpoint
from cnncourse.train.checks import check_model_data, output_shape
from cnncourse.train.config import FitConfig
from cnncourse.train.device import amp_dtype, math_mode, pick_device, seed_everything
from cnncourse.train.evaluate import evaluate
from cnncourse.train.history import History
from cnncourse.train.loop import NonFiniteLossError, fit
from cnncourse.train.step import SCHEDULERS, make_step

__all__ = [
    "fit",
    "FitConfig",
    "evaluate",
    "make_step",
    "History",
    "NonFiniteLossError",
    "SCHEDULERS",
    "pick_device",
    "amp_dtype",
    "math_mode",
    "seed_everything",
    "check_model_data",
    "output_shape",
    "save_checkpoint",
    "load_checkpoint",
]

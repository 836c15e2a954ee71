"""The `cnncourse` command.

    cnncourse summary resnet50 --input 3x224x224     # per-layer params and MACs of a model
    cnncourse train resnet20 --data shapes --epochs 5 --amp bf16 --checkpoint run.pt --resume
    cnncourse bench resnet20 vgg11_cifar --batch-size 512 --markdown --plot bench.png
    cnncourse grade ex01_convolution --course . --verify  # jailed grading of a class

`summary` builds the course's own model of that name (`cnncourse.models.MODELS`), or else
torchvision's (without weights: nothing is downloaded), on the meta device, so any input size is
cheap; without --input it uses the model's design input size. `train` and `bench` use the
course's models and datasets (`cnncourse.data.DATASETS`). `grade` grades a class's submissions of
an exercise, each in its own jail (`cnncourse.grading.grader`, book/grading.md).
Several GPUs: ``torchrun --nproc_per_node 4 -m cnncourse.cli train ...`` (DDP, one process
per GPU; ``--batch-size`` stays the total batch).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from torch import nn

if TYPE_CHECKING:
    import torch

    from cnncourse.train.distributed import Dist

__all__ = ["main", "parse_size", "build_model"]


def parse_size(text: str) -> tuple[int, ...]:
    """Parse "3x224x224" into (3, 224, 224); every part must be a positive integer."""
    try:
        size = tuple(int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--input must look like 3x224x224, got {text!r}"
        ) from None
    if not size or any(s < 1 for s in size):
        raise argparse.ArgumentTypeError(f"--input sizes must be positive, got {text!r}")
    return size


def build_model(name: str) -> nn.Module:
    """A model by name, on the meta device: ours first, else torchvision's (no weights)."""
    return _model_and_input(name)[0]


def _model_and_input(name: str) -> tuple[nn.Module, tuple[int, ...]]:
    """Model `name` on the meta device, and the (C, H, W) input it is designed for.

    Ours: its record (`cnncourse.models.SPECS`). torchvision's: the crop of its default weights'
    preprocessing (300 x 300 for efficientnet_b3, 299 for inception_v3), unless the built model
    fixes its own size (a ViT's ``image_size``: vit_h_14 is 224 without weights, 518 with its
    default ones); 3 x 224 x 224 when neither says.
    """
    import torch
    import torchvision

    from cnncourse.models import SPECS
    from cnncourse.models.spec import did_you_mean

    theirs = torchvision.models.list_models(module=torchvision.models)
    with torch.device("meta"):  # shapes only: no memory, no initialisation time
        if name in SPECS:
            return SPECS[name].build(), SPECS[name].input_size
        if name in theirs:
            model = torchvision.models.get_model(name, weights=None)
        else:
            hint = did_you_mean(name, [*SPECS, *theirs])
            raise SystemExit(f"cnncourse: unknown model {name!r}{hint}")
    side = getattr(model, "image_size", None)
    if not isinstance(side, int):
        preprocess = torchvision.models.get_model_weights(name).DEFAULT.transforms()
        (side,) = getattr(preprocess, "crop_size", None) or (224,)
    return model, (3, side, side)


def _summary(args: argparse.Namespace) -> int:
    from cnncourse.profile import summarize

    model, design = _model_and_input(args.model)
    print(summarize(model, args.input or design))
    return 0


def _check_counts(args: argparse.Namespace, least: int, *names: str) -> None:
    """`check_at_least` on the options `names` (an option not given, None, is left alone), the
    error naming the option as typed (``--num-images``)."""
    from cnncourse.train.checks import check_at_least

    given = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    check_at_least(least, **{"--" + name.replace("_", "-"): v for name, v in given.items()})


def _train(args: argparse.Namespace) -> int:
    import os

    import torch.distributed as dist

    from cnncourse.data import DATASETS
    from cnncourse.models import model_for_data
    from cnncourse.train import check_model_data, pick_device, seed_everything
    from cnncourse.train.distributed import setup

    _check_counts(args, 1, "epochs", "batch_size", "num_images")
    if args.resume and not args.checkpoint:
        raise ValueError("--resume needs --checkpoint FILE, the file of the run to continue")
    if args.checkpoint and os.path.exists(args.checkpoint) and not args.resume:
        raise ValueError(
            f"--checkpoint {args.checkpoint} exists: a new run would overwrite it and lose that "
            "run. Add --resume to continue it, or give another --checkpoint for a new run "
            "(delete the file yourself to start over)"
        )
    if args.data not in DATASETS:
        raise ValueError(f"unknown dataset {args.data!r}; valid names: {', '.join(DATASETS)}")
    info = DATASETS[args.data]
    seed_everything(args.seed)  # the model's initial weights too
    model = model_for_data(args.model, info.in_channels, info.num_classes)
    size = (info.in_channels, *info.image_size)
    check_model_data(model, size, info.num_classes, info.task, args.model, args.data)

    device = pick_device(args.device)
    ours = not (dist.is_available() and dist.is_initialized())  # a group we create, we destroy
    d = setup(device)  # under torchrun: join the process group before any download
    try:
        _train_in_group(args, model, device, d)
    finally:
        if ours and d.enabled:
            dist.destroy_process_group()
    return 0


def _train_in_group(
    args: argparse.Namespace, model: nn.Module, device: torch.device, d: Dist
) -> None:
    """`_train` once the process group (if any) exists: load the data (rank 0 first: it
    downloads what is missing, the others then read the files), `fit`, plot on rank 0."""
    from cnncourse.data import DeviceLoader, get_dataset, to_tensors
    from cnncourse.losses import BorderWeightedCrossEntropy
    from cnncourse.train import FitConfig, fit
    from cnncourse.train.distributed import main_first

    n = args.num_images  # None: the whole dataset; the test split gets a fifth as many
    sizes = {"train": n, "test": None if n is None else max(n // 5, 1)}
    with main_first(d):
        datasets = {
            split: get_dataset(
                args.data, split, root=args.root, download=args.download, **({"n": k} if k else {})
            )
            for split, k in sizes.items()
        }
    loaders = []
    for split, shuffle in (("train", True), ("test", False)):
        x, y = to_tensors(datasets[split])
        augment = args.augment and shuffle
        loaders.append(DeviceLoader(x, y, args.batch_size, shuffle, augment=augment, device=device))
    loss = BorderWeightedCrossEntropy() if args.border_weights else None
    config = FitConfig(
        epochs=args.epochs,
        lr=args.lr,
        scheduler=None if args.scheduler == "none" else args.scheduler,
        loss_fn=loss,
        device=device,
        amp=args.amp,
        channels_last=args.channels_last,
        compile=args.compile,
        checkpoint=args.checkpoint,
        resume=args.resume,
        seed=args.seed,
    )
    history = fit(model, *loaders, config=config)
    if args.plot and history and d.is_main:  # one file, written once
        from cnncourse.plot import plot_history

        plot_history(history).savefig(args.plot)


def _bench(args: argparse.Namespace) -> int:
    from cnncourse.bench import run_benchmark
    from cnncourse.bench_report import format_table

    _check_counts(args, 1, "batch_size", "steps")
    _check_counts(args, 0, "warmup")
    results = run_benchmark(
        args.models,
        batch_size=args.batch_size,
        steps=args.steps,
        warmup=args.warmup,
        device=args.device,
        compile=args.compile,
        input_size=args.input,
    )
    print(format_table(results, markdown=args.markdown))
    if args.plot:
        from cnncourse.plot import plot_bench

        plot_bench(results).savefig(args.plot)
    return 0


def _add_train(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("train", help="train a course model on a course dataset")
    p.add_argument("model", help="model name, e.g. resnet20, lenet5, unet_padded")
    p.add_argument("--data", required=True, help="dataset name, e.g. shapes, shapes_seg, cifar10")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128, help="total over all GPUs (128)")
    p.add_argument("--lr", type=float, default=0.1, help="(peak) learning rate of SGD (0.1)")
    p.add_argument("--scheduler", choices=["onecycle", "cosine", "none"], default="onecycle")
    p.add_argument("--device", default="auto", help="auto (default), cuda, mps or cpu")
    p.add_argument("--amp", choices=["bf16", "fp16"], default=None, help="mixed precision")
    p.add_argument("--channels-last", action="store_true", help="NHWC memory layout")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument(
        "--checkpoint", help="checkpoint file, written after every epoch (one there needs --resume)"
    )
    p.add_argument(
        "--resume", action="store_true", help="continue from --checkpoint (start it if missing)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--augment", action="store_true", help="random crops and flips")
    p.add_argument("--border-weights", action="store_true", help="U-Net's weighted loss (masks)")
    p.add_argument("--num-images", type=int, help="images of a synthetic training set (test: 1/5)")
    p.add_argument("--root", default="data", help="folder of the real datasets (data)")
    p.add_argument("--download", action="store_true", help="download a missing real dataset")
    p.add_argument("--plot", help="save the learning curves to this image file")
    p.set_defaults(run=_train)


def _add_bench(commands: argparse._SubParsersAction) -> None:
    from cnncourse.bench import DEFAULT_MODELS

    p = commands.add_parser("bench", help="textbook vs optimised training loop, with ablations")
    p.add_argument("models", nargs="*", default=list(DEFAULT_MODELS), help="model names")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--steps", type=int, default=50, help="timed steps per variant (50)")
    p.add_argument("--warmup", type=int, default=10, help="untimed steps first (10)")
    p.add_argument("--device", default="auto", help="auto (default), cuda, mps or cpu")
    p.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="include torch.compile (default: on CUDA only)",
    )
    p.add_argument("--input", type=parse_size, default=(3, 32, 32), help="CxHxW (3x32x32)")
    p.add_argument("--markdown", action="store_true", help="print a markdown table")
    p.add_argument("--plot", help="save a bar chart of images/s to this image file")
    p.set_defaults(run=_bench)


def _add_grade(commands: argparse._SubParsersAction) -> None:
    from cnncourse.grading import grader

    p = commands.add_parser("grade", help="grade a class's submissions, each in its own jail")
    grader.add_arguments(p)
    p.set_defaults(run=grader.run)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cnncourse", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    summary = commands.add_parser("summary", help="per-layer table of params and MACs of a model")
    summary.add_argument("model", help="model name, e.g. resnet50 or vgg16_bn")
    summary.add_argument(
        "--input", type=parse_size, default=None, help="CxHxW (default: the model's design size)"
    )
    summary.set_defaults(run=_summary)
    _add_train(commands)
    _add_bench(commands)
    _add_grade(commands)

    args = parser.parse_args(argv)
    from cnncourse.train import NonFiniteLossError

    try:
        return args.run(args)
    except (ValueError, FileNotFoundError, NonFiniteLossError) as e:  # bad input: no traceback
        print(f"cnncourse {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""The `cnncourse` command.

    cnncourse summary resnet50 --input 3x224x224     # per-layer params and MACs of a model

Models are looked up by name among torchvision's classification models (built without weights,
nothing is downloaded); counting runs on the meta device, so any input size is cheap.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from torch import nn

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
    """A randomly initialised model by name (torchvision's names: resnet50, vgg16_bn, ...)."""
    import torchvision

    available = torchvision.models.list_models(module=torchvision.models)
    if name not in available:
        close = [m for m in available if m.startswith(name[:3])][:8]
        hint = f" Did you mean one of {close}?" if close else ""
        raise SystemExit(f"cnncourse: unknown model {name!r}.{hint}")
    return torchvision.models.get_model(name, weights=None)


def _summary(args: argparse.Namespace) -> int:
    from cnncourse.profile import summarize

    print(summarize(build_model(args.model), args.input))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cnncourse", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    summary = commands.add_parser("summary", help="per-layer table of params and MACs of a model")
    summary.add_argument("model", help="model name, e.g. resnet50 or vgg16_bn")
    summary.add_argument(
        "--input", type=parse_size, default=(3, 224, 224), help="input size CxHxW (3x224x224)"
    )
    summary.set_defaults(run=_summary)

    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())

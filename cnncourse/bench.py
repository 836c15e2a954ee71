"""How fast does a training step run, and which trick buys what?

`run_benchmark` times, side by side on the same model and the same data, the training loop as
textbooks write it and the loop with every trick of a fast one, then each trick taken away in
turn (an ablation):

- textbook: PyTorch's defaults (fp32, NCHW), a torch `DataLoader` over a `TensorDataset` (one
  Python `__getitem__` per image, then a host-to-device copy per batch);
- optimised: data resident on the device (`cnncourse.data.DeviceLoader`: one gather per batch),
  bf16 autocast (tensor cores; fp16 with loss scaling on GPUs without bf16), channels_last
  (NHWC, the layout tensor-core convolutions want), `torch.compile` (fused elementwise ops, fewer
  kernel launches), a fused optimizer (`SGD(fused=True)`: one kernel updates every weight) and,
  on CUDA, cuDNN's autotuner (``torch.backends.cudnn.benchmark = True``: per input shape, cuDNN
  times its convolution algorithms and keeps the fastest; the caller's setting comes back after).

"fp32" is not always fp32: on GPUs since Ampere, PyTorch runs fp32 convolutions in TF32 on the
tensor cores by default (``torch.backends.cudnn.allow_tf32`` is True; matmuls stay fp32, as
``torch.get_float32_matmul_precision()`` is "highest"). There the textbook loop is "fp32 (TF32
convs)" and the "no bf16" row compares bf16 with TF32. Each result says what its convolutions
and matmuls ran in (`math`, from `cnncourse.train.device.math_mode`), and so does the table.
For true fp32, set ``torch.backends.cudnn.allow_tf32 = False`` first.

Every variant runs `make_step`, the step `cnncourse.train.fit` runs. Warm-up steps (compilation,
cuDNN's autotuning, the allocator's first allocations) are not timed; the GPU is synchronised
before reading the clock, since CUDA calls return before the work is done.

Reported per variant: images/s, time per step, peak memory (CUDA), achieved TFLOP/s and MFU
(model FLOPs utilisation). A training step costs about 3 forward passes (the backward pass
computes gradients with respect to both inputs and weights, two products of the forward's size
each), and FLOPs = 2 x MACs, so a step on a batch of B is 6 x MACs x B FLOPs
(`cnncourse.mfu.train_step_flops`), MACs of the *training-mode* forward: GoogLeNet's auxiliary
heads, which run only in training, count (`cnncourse.profile.count_macs`, eval mode, omits them).

MFU divides the achieved rate by the GPU's dense bf16 peak, looked up by name in
`cnncourse.mfu.GPU_PEAK_TFLOPS`, for every variant: the fp32 ones ("textbook", "no bf16") too,
although fp32 (TF32 too) runs at a fraction of that peak, so their MFU shows what they leave
unused. An unknown GPU (or a CPU) gets no MFU, and says so.
"""

from __future__ import annotations

import functools
import gc
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import KW_ONLY, dataclass, replace

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from cnncourse.data import DeviceLoader
from cnncourse.mfu import model_step_flops, peak_tflops
from cnncourse.models import model_for_data
from cnncourse.train.checks import check_at_least
from cnncourse.train.device import cudnn_benchmark, math_mode, pick_device, synchronize
from cnncourse.train.distributed import Dist
from cnncourse.train.step import make_step, to_batch

__all__ = [
    "DEFAULT_MODELS",
    "Variant",
    "BenchResult",
    "default_variants",
    "run_benchmark",
]

DEFAULT_MODELS = ("resnet18_cifar", "vgg11_cifar", "densenet_bc_100_12")


@dataclass(frozen=True)
class Variant:
    """One way to run the training loop. `compile`: True, or the name of a compile backend;
    `cudnn_benchmark`: the value of ``torch.backends.cudnn.benchmark`` while it runs."""

    name: str
    _: KW_ONLY  # the tricks by name: Variant("mine", amp="bf16"), never a row of booleans
    device_data: bool = False
    amp: str | None = None
    channels_last: bool = False
    compile: bool | str = False
    fused: bool = False
    cudnn_benchmark: bool = False


TEXTBOOK = Variant("textbook")
OPTIMISED = Variant(
    "optimised",
    device_data=True,
    amp="bf16",
    channels_last=True,
    compile=True,
    fused=True,
    cudnn_benchmark=True,
)


def default_variants(compile: bool | str = True, cudnn_benchmark: bool = True) -> list[Variant]:
    """Textbook, optimised, then the optimised loop without each trick in turn.

    ``compile=False`` (the default on a CPU, where compiling costs more than it saves in a short
    run) leaves compilation out of every variant; ``cudnn_benchmark=False`` (the default on a
    CPU, which has no cuDNN) leaves the autotuner out.
    """
    best = replace(OPTIMISED, compile=compile, cudnn_benchmark=cudnn_benchmark)
    ablations = [
        replace(best, name="no device data", device_data=False),
        replace(best, name="no bf16", amp=None),
        replace(best, name="no channels_last", channels_last=False),
        replace(best, name="no compile", compile=False) if compile else None,
        replace(best, name="no fused SGD", fused=False),
        replace(best, name="no cudnn.benchmark", cudnn_benchmark=False)
        if cudnn_benchmark
        else None,
    ]
    return [TEXTBOOK, best, *(a for a in ablations if a is not None)]


@dataclass(frozen=True)
class BenchResult:
    """Measurements of one variant; None where not measurable (memory on CPU, MFU unknown).

    math: what its convolutions and matmuls computed in (`math_mode`), e.g. "fp32 (TF32 convs)";
    flops_per_step: FLOPs of one step on the whole batch (`train_step_flops` x batch size);
    tflops: their rate, in TFLOP/s; mfu: that rate over the GPU's dense bf16 peak.
    """

    model: str
    variant: str
    math: str
    device: str
    batch_size: int
    steps: int
    images_per_s: float
    step_ms: float
    peak_mem_mib: float | None
    flops_per_step: int
    tflops: float
    mfu: float | None
    warmup_s: float


def _forever(loader: DataLoader | DeviceLoader) -> Iterator[tuple[Tensor, Tensor]]:
    while True:
        yield from loader


def _bench_variant(
    name: str,
    v: Variant,
    data: tuple[Tensor, Tensor],
    build: Callable[[], nn.Module],
    flops_per_image: int,
    batch_size: int,
    steps: int,
    warmup: int,
    device: torch.device,
) -> BenchResult:
    torch.manual_seed(0)
    model = build().to(device)
    if v.channels_last:
        model = model.to(memory_format=torch.channels_last)
    fused = v.fused or None  # None: PyTorch's default (foreach: a few kernels per step)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, fused=fused)
    amp = v.amp
    if amp == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        amp = "fp16"  # T4, V100
    scaler = torch.amp.GradScaler(device.type) if amp == "fp16" else None
    net: nn.Module = model
    if v.compile:
        torch._dynamo.reset()  # a fresh cache per variant: no recompilation limits, fair warm-up
        net = torch.compile(model, **({"backend": v.compile} if isinstance(v.compile, str) else {}))
    step = make_step(net, optimizer, nn.CrossEntropyLoss(), device, amp, scaler)
    images, targets = data
    if v.device_data:
        loader = DeviceLoader(images, targets, batch_size, drop_last=True, device=device)
    else:
        dataset = TensorDataset(images, targets)  # one __getitem__ per image, then a collate
        loader = DataLoader(dataset, batch_size, shuffle=True, drop_last=True)
    batches = _forever(loader)

    def run(n: int) -> None:
        for _ in range(n):
            x, y = next(batches)
            step(*to_batch(x, y, device, v.channels_last, Dist()))  # copy: no-op on the device

    t = time.perf_counter()
    run(warmup)
    synchronize(device)
    warmup_s = time.perf_counter() - t
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t = time.perf_counter()
    run(steps)
    synchronize(device)  # wait for the queued kernels before reading the clock
    seconds = time.perf_counter() - t
    peak_mem = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    flops_per_step = flops_per_image * batch_size
    tflops = flops_per_step * steps / seconds / 1e12
    peak = peak_tflops(torch.cuda.get_device_name(device)) if device.type == "cuda" else None
    return BenchResult(
        model=name,
        variant=v.name if amp == v.amp else f"{v.name} ({amp})",
        math=math_mode(device, amp),  # the TF32 flags as they are now, while the variant runs
        device=torch.cuda.get_device_name(device) if device.type == "cuda" else device.type,
        batch_size=batch_size,
        steps=steps,
        images_per_s=batch_size * steps / seconds,
        step_ms=1e3 * seconds / steps,
        peak_mem_mib=peak_mem,
        flops_per_step=flops_per_step,
        tflops=tflops,
        mfu=tflops / peak if peak else None,
        warmup_s=warmup_s,
    )


def run_benchmark(
    models: Sequence[str] = DEFAULT_MODELS,
    batch_size: int = 512,
    steps: int = 50,
    warmup: int = 10,
    device: str | torch.device | None = None,
    compile: bool | str | None = None,
    input_size: tuple[int, int, int] = (3, 32, 32),
    num_classes: int = 10,
    variants: Sequence[Variant] | None = None,
    progress: bool = True,
) -> list[BenchResult]:
    """Benchmark every variant (default: `default_variants`) of every model in `models`.

    compile: None compiles on CUDA only. input_size, num_classes: the random data's shape
    (speed does not depend on the pixels' values) and the models' ``num_classes``; models that
    take ``in_channels`` get ``input_size[0]``. Returns one `BenchResult` per (model, variant).
    Bad arguments (steps=0, an unknown model, an input a model cannot take) are a ValueError
    naming them, raised before the first benchmark.
    """
    check_at_least(1, batch_size=batch_size, steps=steps)
    check_at_least(0, warmup=warmup)
    flops = {name: model_step_flops(name, tuple(input_size), num_classes) for name in models}
    device = pick_device(device)
    cuda = device.type == "cuda"
    compile = cuda if compile is None else compile
    variants = list(variants) if variants is not None else default_variants(compile, cuda)
    gen = torch.Generator().manual_seed(0)
    n = batch_size * min(steps + warmup, 20)  # the loaders cycle over it
    data = (
        torch.randn(n, *input_size, generator=gen),
        torch.randint(0, num_classes, (n,), generator=gen),
    )
    results = []
    for name in models:
        build = functools.partial(model_for_data, name, input_size[0], num_classes)
        for v in variants:
            if progress:
                print(f"bench {name}: {v.name} ...", flush=True)
            with cudnn_benchmark(v.cudnn_benchmark):
                r = _bench_variant(
                    name, v, data, build, flops[name], batch_size, steps, warmup, device
                )
            results.append(r)
            gc.collect()  # free this variant's model and optimizer before the next
            if cuda:
                torch.cuda.empty_cache()
    return results

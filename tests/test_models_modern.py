"""Modern families (GoogLeNet/Inception, DenseNet, MobileNet, Xception, FCN, U-Net): the checks
that run over all of them, and the helpers their topic files import.

Here: torchvision compatibility (random weights loaded into ours with ``strict=True``, then the
same outputs; the published ``num_params`` and ``_ops``), and for every registered modern model
`summarize`, PyTorch's `FlopCounterMode`, a forward and a backward. Each family's papers are
checked in its topic file: ``test_models_inception.py``,
``test_models_densenet_mobilenet_xception.py`` and ``test_models_segmentation.py``.

Every expected value comes from outside our code: torchvision's models and metadata, the papers'
tables (typed in, with the table they come from), or a recomputation from the papers' layer
descriptions with `cnncourse.counting`. Where a printed figure is wrong the test pins the exact
value *and* checks the reason given in the model's docstring.

Cost: counts run on the meta device; forwards use small inputs (64x64, 32x32 for DenseNet and
CIFAR, 75x75 for Inception v3).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import torch
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cnncourse.models import (
    densenet,
    fcn,
    googlenet,
    inception_v3,
    mobilenet,
    unet,
    xception,
)
from cnncourse.profile import count_macs, count_params, summarize

tvm = torchvision.models


@pytest.fixture(autouse=True)
def native_cpu_kernels() -> Iterator[None]:
    """oneDNN compiles a kernel for each new conv shape; these tests run hundreds of shapes once
    each (every DenseNet layer has its own), on tiny inputs: native kernels are several times
    faster here. Both sides of every comparison run on the same kernels. The topic files import
    it, which makes it autouse there too."""
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


def on_meta(factory: Callable[..., nn.Module], **kwargs: object) -> nn.Module:
    with torch.device("meta"):
        return factory(**kwargs)


# --- torchvision compatibility ------------------------------------------------------------------

# name: (our factory, torchvision builder, weights enum, standard input, small test input)
TORCHVISION = {
    "googlenet": (
        googlenet.googlenet,
        lambda: tvm.googlenet(weights=None, aux_logits=True, init_weights=True),
        tvm.GoogLeNet_Weights.IMAGENET1K_V1,
        224,
        64,
    ),
    "inception_v3": (
        inception_v3.inception_v3,
        lambda: tvm.inception_v3(weights=None, aux_logits=True, init_weights=True),
        tvm.Inception_V3_Weights.IMAGENET1K_V1,
        299,
        75,
    ),
    **{
        name: (getattr(densenet, name), getattr(tvm, name), weights, 224, 32)
        for name, weights in [
            ("densenet121", tvm.DenseNet121_Weights.IMAGENET1K_V1),
            ("densenet161", tvm.DenseNet161_Weights.IMAGENET1K_V1),
            ("densenet169", tvm.DenseNet169_Weights.IMAGENET1K_V1),
            ("densenet201", tvm.DenseNet201_Weights.IMAGENET1K_V1),
        ]
    },
    "mobilenet_v2": (
        mobilenet.mobilenet_v2,
        lambda: tvm.mobilenet_v2(weights=None),
        tvm.MobileNet_V2_Weights.IMAGENET1K_V1,
        224,
        64,
    ),
}


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_state_dict_and_outputs(name: str) -> None:
    ours_factory, tv_factory, _, _, size = TORCHVISION[name]
    torch.manual_seed(0)
    # a batch of 8: enough samples for the statistics of the last, 1x1, maps
    reference = calibrate_bn(tv_factory(), torch.randn(8, 3, size, size))
    ours = ours_factory()
    ours.load_state_dict(reference.state_dict(), strict=True)
    ours.eval()
    x = torch.randn(8, 3, size, size)
    with torch.no_grad():
        expected = reference(x)
        assert expected.std() > 0.01 and expected.abs().max() < 1e4  # a meaningful comparison
        torch.testing.assert_close(ours(x), expected)
    assert count_params(ours) == count_params(reference)


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_published_params_and_macs(name: str) -> None:
    """torchvision's metadata: parameters of the released model, GMACs at the standard size.

    torchvision releases GoogLeNet without its auxiliary heads (and Inception v3 with them).
    """
    factory, _, weights, size, _ = TORCHVISION[name]
    kwargs = {"aux_logits": False} if name == "googlenet" else {}
    model = on_meta(factory, **kwargs)
    assert count_params(model) == weights.meta["num_params"]
    assert round(count_macs(model, (3, size, size)) / 1e9, 3) == weights.meta["_ops"]


# --- every model: summarize, FlopCounterMode, forward and backward --------------------------------

# name: (factory and kwargs, input shape (C, H, W) for the counts, small input for a real pass)
EVERY = {
    "googlenet": (googlenet.googlenet, {}, (3, 224, 224), (2, 3, 64, 64)),
    # no BN: a batch of one; the paper's auxiliary heads need a 224 input
    "googlenet_paper": (googlenet.googlenet_paper, {}, (3, 224, 224), (1, 3, 224, 224)),
    "inception_v3": (
        inception_v3.inception_v3,
        {"aux_logits": False},
        (3, 299, 299),
        (2, 3, 75, 75),
    ),
    **{
        n: (getattr(densenet, n), {}, (3, 224, 224), (2, 3, 32, 32))
        for n in ["densenet121", "densenet161", "densenet169", "densenet201"]
    },
    "densenet_bc_100_12": (densenet.densenet_bc_100_12, {}, (3, 32, 32), (2, 3, 8, 8)),
    "densenet_bc_250_24": (densenet.densenet_bc_250_24, {}, (3, 32, 32), (2, 3, 8, 8)),
    "mobilenet_v1": (mobilenet.mobilenet_v1, {}, (3, 224, 224), (2, 3, 64, 64)),
    "mobilenet_v2": (mobilenet.mobilenet_v2, {}, (3, 224, 224), (2, 3, 64, 64)),
    "xception": (xception.xception, {}, (3, 299, 299), (2, 3, 64, 64)),
    "fcn32s": (fcn.fcn32s, {}, (3, 224, 224), (1, 3, 9, 11)),
    "fcn16s": (fcn.fcn16s, {}, (3, 224, 224), (1, 3, 9, 11)),
    "fcn8s": (fcn.fcn8s, {}, (3, 224, 224), (1, 3, 9, 11)),
    # small widths for the real pass of the U-Nets: the valid one needs a tile of 188, 204, ...
    "unet": (unet.unet, {}, (1, 572, 572), (1, 1, 188, 204)),
    "unet_padded": (unet.unet_padded, {}, (1, 64, 64), (1, 1, 33, 35)),
}
SEGMENTATION = {"fcn32s", "fcn16s", "fcn8s", "unet", "unet_padded"}
# A real pass of an FCN costs a VGG-16 on a 200x200 input (the 100-pixel padding), whatever the
# input: FCN-8s, whose layers include those of the others, runs for real, FCN-32s and FCN-16s on
# the meta device (autograd there checks that every parameter is in the graph, with its shape).
META_ONLY = {"fcn32s", "fcn16s"}


def test_every_family_model_is_covered() -> None:
    registered = {}
    for module in (densenet, fcn, googlenet, inception_v3, mobilenet, unet, xception):
        registered |= module.MODELS
    assert set(registered) == set(EVERY)
    assert all(registered[n] is EVERY[n][0] for n in EVERY)


@pytest.mark.parametrize("name", EVERY)
def test_summarize_and_flop_counter(name: str) -> None:
    factory, kwargs, size, _ = EVERY[name]
    model = on_meta(factory, **kwargs).eval()
    summary = summarize(model, size)
    assert summary.total_params == count_params(model)
    assert "Total MACs" in str(summary)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        out = model(torch.empty(1, *size, device="meta"))
    assert summary.total_macs == counter.get_total_flops() // 2  # FLOPs = 2 x MACs
    if name in SEGMENTATION:
        hw = size[1:] if name != "unet" else (388, 388)
        assert tuple(out.shape) == (1, 21 if name.startswith("fcn") else 2, *hw)
    else:
        assert tuple(out.shape) == (1, 10 if "bc" in name else 1000)


@pytest.mark.parametrize("name", EVERY)
def test_forward_backward(name: str) -> None:
    factory, kwargs, _, shape = EVERY[name]
    torch.manual_seed(0)
    if name in ("unet", "unet_padded"):
        kwargs = {**kwargs, "base_channels": 8}
    with torch.device("meta" if name in META_ONLY else "cpu"):
        model = factory(num_classes=3, **kwargs).train()
        if name.startswith("fcn"):  # zero-initialised scores would give zero gradients below
            for m in model.modules():
                if isinstance(m, nn.Conv2d) and m.out_channels == 3:
                    nn.init.normal_(m.weight, std=0.01)
        out = model(torch.randn(*shape))
    outputs = list(out) if isinstance(out, tuple) else [out]
    n = shape[0]
    if name in SEGMENTATION:
        hw = shape[2:] if name != "unet" else (4, 20)  # a valid tile loses 184 (572 -> 388)
        assert outputs[0].shape == (n, 3, *hw)
    else:
        assert all(o.shape == (n, 3) for o in outputs)
    if name.startswith("googlenet"):
        assert len(outputs) == 3  # training mode: logits and the two auxiliary heads
    sum(o.square().mean() for o in outputs).backward()
    assert_all_grads(model)
    if name.startswith("fcn"):
        assert model.upscore.weight.grad is None  # the fixed bilinear upsampling
    if name == "inception_v3":  # the aux head needs a 17x17 grid (299 input): test it alone
        aux = inception_v3.InceptionAux(768, 3).train()
        aux(torch.randn(2, 768, 17, 17)).sum().backward()
        assert_all_grads(aux)

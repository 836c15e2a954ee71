"""Every model of the registry, each check one loop over the records (`cnncourse.models.SPECS`),
as torchvision's and timm's test suites loop over theirs; and the registry itself.

A record says what a model needs (its design input, its task, whether it takes ``in_channels``,
which torchvision model it matches); these tests hold each record to its builder. Everything
runs on the meta device: shapes, counts and the autograd graph, without memory or time. Each
family's papers, and real forward and backward passes, are checked in its own test module.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import SimpleNamespace

import pytest
import torch
import torchvision
from models_helpers import (
    ALL_SPECS,
    calibrate_bn,
    native_cpu_kernels,  # noqa: F401 (autouse: applies here too)
    on_meta,
    smallest_side,
    spec_id,
)
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import cnncourse.models
from cnncourse.meta import meta_forward
from cnncourse.models import (
    FAMILIES,
    INPUT_SIZES,
    MODELS,
    SPECS,
    ModelSpec,
    get_model,
    input_size,
    merge_registries,
    model_for_data,
)
from cnncourse.profile import count_macs, count_params, summarize

TORCHVISION_SPECS = [s for s in ALL_SPECS if s.torchvision]
#: A real training step costs at most this many MACs (a forward of a batch of 2 at the smallest
#: input the model trains on); a costlier model is checked on meta only, and in its own module.
REAL_STEP_BUDGET = 2e9
pytestmark = pytest.mark.usefixtures("one_thread")


# --- the registry -------------------------------------------------------------------------------


def test_every_family_module_is_registered() -> None:
    # Found on disk, not from FAMILIES: a family file that declares SPECS but is left out of
    # FAMILIES fails here.
    package = cnncourse.models
    modules = [
        importlib.import_module(f"{package.__name__}.{info.name}")
        for info in pkgutil.iter_modules(package.__path__)
    ]
    families = [m for m in modules if hasattr(m, "SPECS")]
    assert {m.__name__ for m in families} == {f.__name__ for f in FAMILIES}
    for family in families:
        assert family.SPECS, family.__name__
        assert {s.name: s.builder for s in family.SPECS} == family.MODELS
        for spec in family.SPECS:
            assert SPECS[spec.name] is spec and MODELS[spec.name] is spec.builder
            assert INPUT_SIZES[spec.name] == input_size(spec.name) == spec.input_size
    # The other modules declare no models: blocks shared by one family's files, the record type.
    assert {m.__name__.rsplit(".", 1)[1] for m in modules if m not in families} == {
        "inception_blocks",
        "resnet_blocks",
        "spec",
    }


def test_a_name_declared_twice_is_an_error() -> None:
    def build_a() -> nn.Module:
        return nn.Identity()

    def build_b() -> nn.Module:
        return nn.Identity()

    net_a, only_a = ModelSpec("net", build_a), ModelSpec("only_a", build_a)
    first = SimpleNamespace(__name__="family_a", SPECS=(net_a, only_a))
    second = SimpleNamespace(__name__="family_b", SPECS=(ModelSpec("net", build_b),))
    assert merge_registries([first]) == {"net": net_a, "only_a": only_a}
    with pytest.raises(ValueError, match="'net' is declared twice, by family_a and by family_b"):
        merge_registries([first, second])


def test_a_record_refuses_a_task_or_size_it_cannot_mean() -> None:
    with pytest.raises(ValueError, match="task"):
        ModelSpec("net", nn.Identity, task="detection")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        ModelSpec("net", nn.Identity, input_size=(224, 224))  # type: ignore[arg-type]


def test_unknown_name_is_refused_with_suggestions() -> None:
    with pytest.raises(ValueError, match=r"name='resnet5'.*'resnet50'"):
        get_model("resnet5")
    with pytest.raises(ValueError, match=r"name='resnet5'.*'resnet50'"):
        input_size("resnet5")


# --- each record against its builder ------------------------------------------------------------


@pytest.mark.parametrize("spec", ALL_SPECS, ids=spec_id)
def test_design_input_output_and_counts(spec: ModelSpec) -> None:
    """At the record's input: the task's output shape, MACs equal to PyTorch's own count (2 FLOPs
    per MAC, every conv and matmul it dispatches, bias excluded), every parameter counted once;
    an input with another channel count is refused."""
    model = on_meta(spec.builder, num_classes=7).eval()
    summary = summarize(model, spec.input_size)  # count_macs's total, with the rows
    c, h, w = spec.input_size
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        out = model(torch.empty(1, c, h, w, device="meta"))
    assert summary.total_macs * 2 == counter.get_total_flops()
    if spec.task == "classification":
        assert out.shape == (1, 7)
    else:  # scores per pixel: the input's size, or smaller for unpadded convolutions
        assert out.shape[:2] == (1, 7) and 0 < out.shape[2] <= h and 0 < out.shape[3] <= w
    assert summary.total_params == sum(p.numel() for p in model.parameters())
    assert 0 < sum(r.params for r in summary.rows) <= summary.total_params  # aux heads: eval
    with pytest.raises(ValueError, match="does not fit"):
        meta_forward(model, (c + 1, h, w))  # the record's channels are the ones it takes


@pytest.mark.parametrize("spec", ALL_SPECS, ids=spec_id)
def test_in_channels_is_taken_exactly_when_the_record_says(spec: ModelSpec) -> None:
    c, h, w = spec.input_size
    if spec.in_channels:  # model_for_data passes it, on the record's word (no trial build)
        with torch.device("meta"):
            model = model_for_data(spec.name, c + 1, 5)
        assert meta_forward(model, (c + 1, h, w)).shape[:2] == (1, 5)
    else:
        with pytest.raises(TypeError, match="in_channels"):
            on_meta(spec.builder, in_channels=c + 1)
        with torch.device("meta"):
            model_for_data(spec.name, c + 1, 5)  # built as it is; check_model_data then refuses


@pytest.mark.parametrize("spec", ALL_SPECS, ids=spec_id)
def test_every_trainable_parameter_is_in_the_training_graph(spec: ModelSpec) -> None:
    # Autograd on meta tensors builds the real graph: a parameter left out of the forward
    # (a layer built but never called) gets no gradient. Training mode: auxiliary heads run.
    model = on_meta(spec.builder, num_classes=3).train()
    out = model(torch.empty(2, *spec.input_size, device="meta"))
    outputs = list(out) if isinstance(out, tuple) else [out]
    sum(o.sum() for o in outputs).backward()
    for name, p in model.named_parameters():
        assert (p.grad is not None) == p.requires_grad, name
        assert p.grad is None or p.grad.shape == p.shape, name


@pytest.mark.parametrize("spec", TORCHVISION_SPECS, ids=spec_id)
def test_state_dict_has_torchvisions_keys_and_shapes(spec: ModelSpec) -> None:
    # Same keys and shapes: torchvision's state_dict loads into ours with strict=True (the
    # family modules also compare the outputs once it is loaded).
    ours = on_meta(spec.builder).state_dict()
    with torch.device("meta"):
        theirs = torchvision.models.get_model(spec.torchvision, weights=None).state_dict()
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}


def test_every_torchvision_architecture_is_recorded() -> None:
    # A model named as torchvision's is torchvision's architecture (the module docstring's
    # promise), and its record says so.
    theirs = set(torchvision.models.list_models(module=torchvision.models))
    assert {s.name for s in TORCHVISION_SPECS} == set(SPECS) & theirs


@pytest.mark.parametrize("spec", TORCHVISION_SPECS, ids=spec_id)
def test_torchvisions_weights_give_torchvisions_outputs(spec: ModelSpec) -> None:
    # torchvision's randomly initialised model, with non-trivial BN statistics, loaded into ours
    # with strict=True: the same outputs, on a small input (the smallest power of two it takes,
    # at least 32; a batch of 8: enough samples for the statistics of the last, 1x1, maps).
    torch.manual_seed(0)
    reference = torchvision.models.get_model(spec.torchvision, weights=None).eval()
    c = spec.input_size[0]
    side = max(32, smallest_side(on_meta(spec.builder), c, spec.input_size[1], training=False))
    # x10: the nets without BN (AlexNet, VGG) start with small logits (their fc weights are
    # ~0.01); the guard below wants outputs well clear of assert_close's atol (1e-5)
    x = 10 * torch.randn(8, c, side, side)
    calibrate_bn(reference, x)
    ours = on_meta(spec.builder).to_empty(device="cpu")  # no init: every value is loaded
    ours.load_state_dict(reference.state_dict(), strict=True)
    with torch.no_grad():
        expected = reference(x)
        assert torch.isfinite(expected).all() and expected.std() > 0.01  # a meaningful comparison
        torch.testing.assert_close(ours.eval()(x), expected)


@pytest.mark.slow
@pytest.mark.parametrize("spec", ALL_SPECS, ids=spec_id)
def test_a_real_training_step_reaches_every_parameter(spec: ModelSpec) -> None:
    # Real values, where the meta graph test above has shapes only: a finite gradient, not all
    # zero, for every trainable parameter, on a small input: the smallest the model trains on,
    # at least 32 x 32 (smaller, the last batch norms see 2 values per channel and divide by
    # their tiny variance).
    c, h, _ = spec.input_size
    side = max(32, smallest_side(on_meta(spec.builder, num_classes=3), c, h))
    cost = 2 * count_macs(on_meta(spec.builder, num_classes=3), (c, side, side))
    if cost > REAL_STEP_BUDGET:
        pytest.skip(f"a real step costs {cost / 1e9:.1f} GMACs: the meta graph test covers it")
    torch.manual_seed(0)
    model = spec.build(num_classes=3).train()
    for m in model.modules():  # zero-initialised layers (FCN's scores) would stop the gradient
        if isinstance(m, nn.Conv2d | nn.Linear) and not m.weight.any():
            nn.init.normal_(m.weight, std=0.01)
    out = model(torch.randn(2, c, side, side))
    outputs = list(out) if isinstance(out, tuple) else [out]
    assert all(o.shape[:2] == (2, 3) for o in outputs)  # classes (per pixel for segmentation)
    sum(o.square().mean() for o in outputs).backward()
    # A batch norm's shift that reaches the next training-mode batch norm through linear layers
    # only (MobileNet v2's projections, Xception's shortcuts) is subtracted there again with the
    # batch mean: its gradient is 0 up to rounding. Every other gradient must move the weights.
    shifts = {f"{n}.bias" for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert name in shifts or p.grad.any(), f"{name} has an all-zero gradient"


# torchvision publishes GoogLeNet without its auxiliary heads (Inception v3 with them).
PUBLISHED_KWARGS: dict[str, dict] = {"googlenet": {"aux_logits": False}}


@pytest.mark.parametrize("spec", TORCHVISION_SPECS, ids=spec_id)
def test_params_and_macs_are_torchvision_published_figures(spec: ModelSpec) -> None:
    # torchvision's weights' metadata: num_params, and _ops in GMACs (3 decimals) at the
    # design input (224 x 224; 299 x 299 for Inception v3)
    meta = torchvision.models.get_model_weights(spec.torchvision).IMAGENET1K_V1.meta
    model = on_meta(spec.builder, **PUBLISHED_KWARGS.get(spec.name, {}))
    assert count_params(model) == meta["num_params"]
    assert round(count_macs(model, spec.input_size) / 1e9, 3) == meta["_ops"]


@pytest.mark.parametrize("name", ["vgg11_bn", "resnet18", "resnet50"])
def test_init_draws_what_torchvision_draws(name: str) -> None:
    # `init_conv_bn` visits the layers in torchvision's order with torchvision's distributions
    # (VGG: with N(0, 0.01) linear layers; ResNet: fc left at PyTorch's default): same seed,
    # same numbers.
    torch.manual_seed(0)
    reference = torchvision.models.get_model(name, weights=None).state_dict()
    torch.manual_seed(0)
    ours = get_model(name).state_dict()
    assert ours.keys() == reference.keys()
    for key, value in ours.items():
        assert torch.equal(value, reference[key]), key

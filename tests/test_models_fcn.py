"""FCN (Long et al. 2015): crop offsets derived from the layers' geometry, table 1, bilinear
upsampling, the convolutionalised VGG-16, any input size kept, a real training step.

The registry-wide checks are in ``test_models.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
import torchvision
from models_helpers import (
    assert_all_grads,
    native_cpu_kernels,  # noqa: F401 (autouse: applies here too)
    on_meta,
)
from torch import nn

from cnncourse import counting
from cnncourse.models import fcn
from cnncourse.profile import count_params

tvm = torchvision.models
pytestmark = pytest.mark.usefixtures("one_thread")


# --- FCN: Long et al. 2015 ------------------------------------------------------------------------


def _kernel_stride_padding(m: nn.Module) -> tuple[int, int, int]:
    return tuple(v if isinstance(v, int) else v[0] for v in (m.kernel_size, m.stride, m.padding))


def _coordinate_offsets(model: fcn.FCN) -> dict[str, float]:
    """The crop offsets, derived from the layers' kernels, strides and paddings.

    Index j of a map sits at input coordinate x = S*j + O (S: its stride, O: its offset). A conv
    or pool (k, s, p) maps O -> O + S*((k-1)/2 - p) and S -> S*s; a transposed conv (2f, f)
    maps S -> S/f and O -> O - S/f*(f - 1/2). A map is cropped where it meets the other's index 0.
    """
    offset, stride, taps = 0.0, 1, {}
    for i, m in enumerate([*model.features, *model.classifier]):
        if isinstance(m, nn.Conv2d | nn.MaxPool2d):
            k, s, p = _kernel_stride_padding(m)
            offset, stride = offset + stride * ((k - 1) / 2 - p), stride * s
        if i in (fcn._POOL3, fcn._POOL4):
            taps[i] = offset

    def up(o: float, s: float, f: int) -> tuple[float, float]:
        return o - s / f * (f - 0.5), s / f

    s16, s8 = up(offset, stride, 2), up(*up(offset, stride, 2), 2)
    return {
        "32s": -up(offset, stride, 32)[0],
        "pool4": (s16[0] - taps[fcn._POOL4]) / 16,
        "16s": -up(*s16, 16)[0],
        "pool3": (s8[0] - taps[fcn._POOL3]) / 8,
        "8s": -up(*s8, 8)[0],
    }


def test_fcn_crop_offsets_follow_from_geometry() -> None:
    offsets = _coordinate_offsets(on_meta(fcn.fcn8s))
    # what Caffe's coord_map computes for the reference nets' crop layers (voc-fcn*s/net.py);
    # the PyTorch ports (e.g. wkentaro/pytorch-fcn) hard-code the same numbers
    assert offsets == {"32s": 19, "pool4": 5, "16s": 27, "pool3": 9, "8s": 31}
    assert (offsets["pool4"], offsets["pool3"]) == (fcn._OFFSET_POOL4, fcn._OFFSET_POOL3)
    assert {32: offsets["32s"], 16: offsets["16s"], 8: offsets["8s"]} == fcn._OFFSET_FINAL


def test_fcn_table1_vgg16() -> None:
    """Table 1, FCN-VGG16: 16 conv layers, rf size 404, max stride 32, 134M parameters."""
    model = on_meta(fcn.fcn32s, num_classes=21)  # PASCAL VOC: 20 classes + background
    convs = [m for m in [*model.features, *model.classifier] if isinstance(m, nn.Conv2d)]
    assert len(convs) == 16
    windows = [
        m for m in [*model.features, *model.classifier] if isinstance(m, nn.Conv2d | nn.MaxPool2d)
    ]
    layers = [_kernel_stride_padding(m)[:2] for m in windows]
    assert counting.receptive_field_steps(layers)[-1] == (404, 32)
    assert round(count_params(model, trainable_only=True) / 1e6) == 134
    assert count_params(model) - count_params(model, trainable_only=True) == 21 * 21 * 64 * 64


def test_fcn_bilinear_upsampling_is_bilinear_interpolation() -> None:
    """The transposed conv's initial kernel is F.interpolate's bilinear away from the borders."""
    x = torch.randn(1, 3, 6, 7)
    up = nn.ConvTranspose2d(3, 3, 4, stride=2, padding=1, bias=False)
    with torch.no_grad():
        up.weight.copy_(fcn.bilinear_kernel(3, 4))
        got = up(x)
    expected = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    torch.testing.assert_close(got[..., 1:-1, 1:-1], expected[..., 1:-1, 1:-1])


def test_fcn_convolutionalized_vgg16_matches_torchvision_classifier() -> None:
    torch.manual_seed(0)
    vgg = tvm.vgg16(weights=None).eval()
    model = fcn.fcn8s().eval()
    missing, unexpected = model.load_state_dict(
        fcn.convolutionalize_vgg16(vgg.state_dict()), strict=False
    )
    assert not unexpected
    assert {k.split(".")[0] for k in missing} == {
        "classifier",
        "score_pool4",
        "score_pool3",
        "upscore2",
        "upscore_pool4",
        "upscore",
    }
    assert all(k.startswith("classifier.6") for k in missing if k.startswith("classifier"))
    pool5 = torch.randn(2, 512, 7, 7)  # one 7x7 window: fc6 as a conv = fc6 as a linear layer
    with torch.no_grad():
        torch.testing.assert_close(
            model.classifier[:5](pool5).flatten(1), vgg.classifier[:5](pool5.flatten(1))
        )


@pytest.mark.parametrize("size", [(1, 1), (17, 23), (64, 64), (101, 77)])
@pytest.mark.parametrize("factory", [fcn.fcn32s, fcn.fcn16s, fcn.fcn8s])
def test_fcn_keeps_input_size(factory: Callable[..., nn.Module], size: tuple[int, int]) -> None:
    model = on_meta(factory, num_classes=5)
    with torch.no_grad():
        assert model(torch.empty(2, 3, *size, device="meta")).shape == (2, 5, *size)


def test_fcn8s_trains_for_real() -> None:
    """A real forward and backward of FCN-8s (its layers include FCN-16s' and FCN-32s'): the
    registry's real training step skips the FCNs, whose 100-pixel padding makes any input cost
    a VGG-16 on 200 x 200."""
    torch.manual_seed(0)
    model = fcn.fcn8s(num_classes=3).train()
    for m in model.modules():  # the score layers start at zero: their gradients would stop
        if isinstance(m, nn.Conv2d) and m.out_channels == 3:
            nn.init.normal_(m.weight, std=0.01)
    out = model(torch.randn(1, 3, 9, 11))
    assert out.shape == (1, 3, 9, 11)
    out.square().mean().backward()
    assert_all_grads(model)
    assert model.upscore.weight.grad is None  # the fixed bilinear upsampling

"""U-Net (Ronneberger et al. 2015): figure 1's sizes, the valid tiles, every up-convolution's sizes
and a real forward/backward of each.

The registry-wide checks are in ``test_models.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from models_helpers import (
    assert_all_grads,
    native_cpu_kernels,  # noqa: F401 (autouse: applies here too)
    on_meta,
)
from torch import nn

from cnncourse import counting
from cnncourse.models import unet
from cnncourse.profile import count_params

pytestmark = pytest.mark.usefixtures("one_thread")


# --- U-Net: Ronneberger et al. 2015 ---------------------------------------------------------------


def test_unet_figure1_sizes() -> None:
    """Figure 1: 572x572 -> 388x388 with valid convs; the sizes of every level on the way."""
    model = on_meta(unet.unet)
    sizes = []
    modules = [model.inc, *model.downs, *model.ups, model.outc]
    hooks = [
        m.register_forward_hook(lambda m, i, o: sizes.append(tuple(o.shape[1:]))) for m in modules
    ]
    with torch.no_grad():
        out = model(torch.empty(1, 1, 572, 572, device="meta"))
    for h in hooks:
        h.remove()
    assert out.shape == (1, 2, 388, 388)
    expected = [(64, 568), (128, 280), (256, 136), (512, 64), (1024, 28)]
    expected += [(512, 52), (256, 100), (128, 196), (64, 388), (2, 388)]
    assert sizes == [(c, s, s) for c, s in expected]
    assert model.output_size(572) == 388
    # Parameters from figure 1's description: 2 convs per level, up-convs halve the channels
    params = counting.conv_params(1, 64, 3) + counting.conv_params(64, 64, 3)
    for c in (64, 128, 256, 512):
        params += counting.conv_params(c, 2 * c, 3) + counting.conv_params(2 * c, 2 * c, 3)
        params += counting.conv_params(2 * c, c, 2)  # the 2x2 up-convolution
        params += counting.conv_params(2 * c, c, 3) + counting.conv_params(c, c, 3)
    assert count_params(model) == params + counting.conv_params(64, 2, 1)


def run_by_hand(model: unet.UNet, size: int) -> tuple[list[int], int | None]:
    """The U-Net's layers run one by one on a size x size meta input, without `UNet.forward`'s
    check: the size of the map entering each max pool, and the output size (None when a layer
    finds its input too small).
    """
    x = torch.empty(1, 1, size, size, device="meta")
    pooled: list[int] = []
    try:
        skips = [model.inc(x)]
        for down in model.downs:
            pooled.append(skips[-1].shape[-1])
            skips.append(down(skips[-1]))
        x = skips.pop()
        for up in model.ups:
            x = up(x, skips.pop())
    except RuntimeError:  # e.g. "Kernel size can't be greater than actual input size"
        return pooled, None
    return pooled, model.outc(x).shape[-1]


@pytest.mark.parametrize(("depth", "sizes"), [(4, range(150, 600)), (2, range(1, 80))])
def test_unet_valid_tile_sizes(depth: int, sizes: range) -> None:
    """The paper's tiles: every pooled map even. Other sizes are refused, naming the nearest."""
    model = on_meta(unet.unet, base_channels=4, depth=depth)
    step = 2**depth  # the pools halve `depth` times: tiles should come every `step` pixels
    valid = {}  # size -> output size, for the sizes where the layers run and every pool is even
    for size in range(sizes.start, sizes.stop + step):  # one more step: the next valid one
        pooled, out = run_by_hand(model, size)
        if out is not None and all(p % 2 == 0 for p in pooled):
            valid[size] = out
    assert list(valid) == [s for s in range(min(valid), sizes.stop + step, step)]
    if depth == 4:
        assert min(valid) == 188 and valid[572] == 388  # the paper's figure 1
    for size in sizes:
        if size in valid:
            assert model.output_size(size) == valid[size]
            continue
        below = [s for s in valid if s < size]
        above = min(s for s in valid if s > size)
        nearest = f"sizes are {max(below)} and {above}" if below else f"size is {above}"
        with pytest.raises(ValueError, match=f"input size {size} .* valid tile {nearest} "):
            model.output_size(size)


@pytest.mark.parametrize("up_mode", ["transpose", "bilinear", "nearest"])
def test_unet_sizes(up_mode: str) -> None:
    valid = on_meta(unet.unet, up_mode=up_mode)
    padded = on_meta(unet.unet_padded, up_mode=up_mode)
    reference = on_meta(unet.unet)  # same weights whatever the up-convolution
    assert count_params(valid) == count_params(padded) == count_params(reference)
    for size in [188, 204, 220, 572]:  # valid tiles: the output has the size of a hand-run
        with torch.no_grad():
            got = valid(torch.empty(1, 1, size, size + 32, device="meta")).shape
        assert got == (1, 2, run_by_hand(reference, size)[1], run_by_hand(reference, size + 32)[1])
    for height, width, bad in [(570, 572, 570), (572, 570, 570), (188, 189, 189), (172, 188, 172)]:
        with pytest.raises(ValueError, match=f"input size {bad} does not suit"):  # H or W
            valid(torch.empty(1, 1, height, width, device="meta"))
    with pytest.raises(ValueError, match="too small"):
        valid.output_size(172)  # every pool even, but the expanding path runs out of pixels
    for size in [16, 17, 31, 33, 65, 100]:  # odd sizes included: the padded U-Net keeps H, W
        with torch.no_grad():
            assert padded(torch.empty(1, 1, size, size + 3, device="meta")).shape[-2:] == (
                size,
                size + 3,
            )


@pytest.mark.parametrize("up_mode", ["transpose", "bilinear", "nearest"])
@pytest.mark.parametrize(
    ("factory", "shape", "out_hw"),
    [
        # odd sizes: 35 -> 17 -> 8 -> 4 -> 2 and 37 -> 18 -> 9 -> 4 -> 2, the pools floor odd
        # maps, and the expanding path pads each upsampled map back to its skip
        pytest.param(unet.unet_padded, (2, 1, 35, 37), (35, 37), id="padded-odd"),
        # the unpadded U-Net only takes valid tiles (188, 204, ...): 188 -> 4, 204 -> 20
        pytest.param(unet.unet, (1, 1, 188, 204), (4, 20), id="valid-tile"),
    ],
)
def test_unet_every_up_mode_trains(
    factory: Callable[..., nn.Module],
    shape: tuple[int, int, int, int],
    out_hw: tuple[int, int],
    up_mode: str,
) -> None:
    """A real forward and backward (small widths), where `test_unet_sizes` only runs on meta."""
    torch.manual_seed(0)
    model = factory(num_classes=3, base_channels=4, up_mode=up_mode).train()
    expected_up = nn.ConvTranspose2d if up_mode == "transpose" else nn.Sequential
    assert all(type(up.up) is expected_up for up in model.ups)
    out = model(torch.randn(*shape))
    assert out.shape == (shape[0], 3, *out_hw)
    assert torch.isfinite(out).all() and out.std() > 0
    out.square().mean().backward()
    assert_all_grads(model)

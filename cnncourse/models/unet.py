"""U-Net: Ronneberger, Fischer and Brox, "U-Net: Convolutional Networks for Biomedical Image
Segmentation", MICCAI 2015.

A contracting path (two 3x3 convs + ReLU, then a 2x2 max pool, doubling the channels at each of
``depth`` levels: 64, 128, 256, 512, 1024) and a symmetric expanding path: an "up-convolution"
that doubles H and W and halves the channels, concatenation with the contracting path's map of
the same level (the skip connection), two 3x3 convs + ReLU. A final 1x1 conv gives the class
scores.

Two versions (``padding``):

- ``unet()`` (``padding=False``), the paper's: "valid" 3x3 convs lose 2 pixels each, so the output
  is smaller than the input: 572x572 -> 388x388 (figure 1), and the skip maps are centre-cropped
  to the upsampled map before concatenation (568 -> 392 at the top level). The paper picks the input
  tile so that every 2x2 max pool sees an even size; at any other size a pool drops a row and the
  crop is off-centre by half a pixel, so the skip no longer lines up with the map it joins. This
  U-Net refuses such sizes (ValueError naming the nearest valid ones): with ``depth=4`` the valid
  tiles are 188, 204, ..., 572, ... (every 16 pixels). `UNet.output_size` gives the output size.
- ``unet_padded()`` (``padding=True``): "same" 3x3 convs keep the size, so the output has the
  input's H and W. Inputs of any size >= 2**depth work: when a pool met an odd size (floor), the
  upsampled map is one pixel short of its skip and is zero-padded (bottom/right) to match it.

Up-convolutions (``up_mode``): ``"transpose"`` is the paper's (a 2x2 transposed conv, stride 2);
``"bilinear"`` or ``"nearest"`` upsample then apply a 2x2 conv (the slides' "upsampling followed by
2x2 convolution"), with one pixel of zero padding at the bottom/right to keep the doubled size, as
Keras' ``padding="same"`` does. Both halve the channels with the same number of weights (4*C*C/2).

With ``in_channels=1, num_classes=2`` (the paper's cell segmentation), the paper's U-Net has
31,030,658 parameters (the paper gives no count); ``base_channels`` and ``depth`` make smaller
ones for CPU experiments. ``batch_norm=True`` adds BN after each 3x3 conv (not in the paper).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnncourse import counting
from cnncourse.models.spec import ModelSpec, builders

__all__ = ["DoubleConv", "Up", "UNet", "unet", "unet_padded", "SPECS", "MODELS"]


class DoubleConv(nn.Sequential):
    """3x3 conv -> [BN] -> ReLU -> 3x3 conv -> [BN] -> ReLU.

    Shapes: (N, in_channels, H, W) -> (N, out_channels, H - 4, W - 4) unpadded, (H, W) padded.
    """

    def __init__(
        self, in_channels: int, out_channels: int, padding: bool, batch_norm: bool = False
    ) -> None:
        layers: list[nn.Module] = []
        for c_in in (in_channels, out_channels):
            layers.append(
                nn.Conv2d(c_in, out_channels, 3, padding=int(padding), bias=not batch_norm)
            )
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class Up(nn.Module):
    """Up-convolution (x2, halves the channels) -> concatenate the skip -> `DoubleConv`.

    Shapes: x (N, in_channels, h, w) and skip (N, in_channels // 2, H, W) ->
    (N, out_channels, H' - 4, W' - 4) unpadded, where (H', W') = (2h, 2w) and the skip is
    centre-cropped to it; (N, out_channels, H, W) padded, the upsampled map padded to the skip.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        padding: bool,
        up_mode: str = "transpose",
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        half = in_channels // 2
        if up_mode == "transpose":
            self.up = nn.ConvTranspose2d(in_channels, half, 2, stride=2)
        elif up_mode in ("bilinear", "nearest"):
            self.up = nn.Sequential(
                nn.Upsample(scale_factor=2, mode=up_mode),
                nn.ZeroPad2d((0, 1, 0, 1)),  # (left, right, top, bottom): "same" for a 2x2 conv
                nn.Conv2d(in_channels, half, 2),
            )
        else:
            raise ValueError(
                f"up_mode must be 'transpose', 'bilinear' or 'nearest', got {up_mode!r}"
            )
        self.conv = DoubleConv(2 * half, out_channels, padding, batch_norm)
        self.padding = padding

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        x = self.up(x)  # (N, C/2, 2h, 2w)
        dh, dw = skip.shape[-2] - x.shape[-2], skip.shape[-1] - x.shape[-1]
        if self.padding:  # at most one pixel short, after a pool of an odd size
            x = F.pad(x, (0, dw, 0, dh))
        else:  # the paper's "copy and crop": centre-crop the skip to the upsampled map
            top, left = dh // 2, dw // 2
            skip = skip[..., top : top + x.shape[-2], left : left + x.shape[-1]]
        return self.conv(torch.cat([skip, x], dim=1))  # skip first, as in figure 1


class UNet(nn.Module):
    """U-Net with ``depth`` poolings; level i has base_channels * 2**i channels.

    Shapes: (N, in_channels, H, W) -> (N, num_classes, H_out, W_out), with H_out =
    `output_size`(H) (= H when ``padding=True``). Attributes: ``inc`` (first `DoubleConv`),
    ``downs`` (pool + `DoubleConv` per level), ``ups`` (`Up` per level), ``outc`` (1x1 conv).
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        base_channels: int = 64,
        depth: int = 4,
        padding: bool = False,
        up_mode: str = "transpose",
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        self.depth, self.padding = depth, padding
        widths = [base_channels * 2**i for i in range(depth + 1)]  # 64, 128, ..., 1024
        self.inc = DoubleConv(in_channels, widths[0], padding, batch_norm)
        self.downs = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(2), DoubleConv(c, 2 * c, padding, batch_norm))
            for c in widths[:-1]
        )
        self.ups = nn.ModuleList(
            Up(2 * c, c, padding, up_mode, batch_norm) for c in reversed(widths[:-1])
        )
        self.outc = nn.Conv2d(widths[0], num_classes, 1)
        for m in self.modules():  # the paper's init: N(0, sqrt(2 / fan_in))
            if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        if not self.padding:  # refuse a tile whose skips would be cropped off-centre
            for side in x.shape[-2:]:
                self.output_size(int(side))
        skips = [self.inc(x)]  # (N, 64, H - 4, W - 4) unpadded
        for down in self.downs:
            skips.append(down(skips[-1]))  # halve H and W, double the channels
        x = skips.pop()  # the bottom of the U: (N, 1024, 28, 28) for 572
        for up in self.ups:
            x = up(x, skips.pop())  # double H and W, halve the channels
        return self.outc(x)  # (N, num_classes, 388, 388) for 572

    def output_size(self, size: int) -> int:
        """Output height (or width) for an input of height (or width) ``size``.

        Raises ValueError when ``size`` is too small for the pools (and, unpadded, for the valid
        convolutions), or, unpadded, when it is not a valid tile size: the message lists the
        nearest valid ones (572 -> 388 is valid; 570, whose second pool meets 279, is not).
        """
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be a positive int, got {size!r}")
        if self.padding:
            if size < 2**self.depth:
                raise ValueError(f"size must be >= {2**self.depth} for depth {self.depth}")
            return size
        try:
            return self._unpadded_output_size(size)
        except ValueError as e:
            below, above = self._valid_tile_sizes_around(size)
            nearest = f"sizes are {below} and {above}" if below else f"size is {above}"
            raise ValueError(
                f"input size {size} does not suit this unpadded U-Net: {e}. The nearest valid "
                f"tile {nearest} (every pooled map even)"
            ) from None

    def _unpadded_output_size(self, size: int) -> int:
        """Output size with valid convolutions; ValueError if ``size`` is not a valid tile."""

        def two_convs(s: int) -> int:  # two valid 3x3 convs: s - 4
            if s < 5:
                raise ValueError(
                    f"it is too small, a {s}-pixel map is left for two valid 3x3 convolutions"
                )
            return counting.conv_output_size(counting.conv_output_size(s, 3), 3)

        s = two_convs(size)
        for level in range(1, self.depth + 1):  # contracting path: 2x2 pool, two convs
            if s % 2:
                raise ValueError(
                    f"max pool {level} would meet an odd size, {s}, and drop its last row: "
                    "the skip crop would then be off-centre by half a pixel"
                )
            s = two_convs(counting.pool_output_size(s, 2))
        for _ in range(self.depth):  # expanding path: x2 up-convolution, two convs
            s = two_convs(counting.conv_transpose_output_size(s, 2, stride=2))
        return s

    def _valid_tile_sizes_around(self, size: int) -> tuple[int | None, int]:
        """The largest valid tile size below ``size`` (None if there is none) and the smallest
        above it; valid sizes come every 2**depth pixels, so the search is short."""

        def valid(s: int) -> bool:
            try:
                self._unpadded_output_size(s)
            except ValueError:
                return False
            return True

        below = next((s for s in range(size - 1, 0, -1) if valid(s)), None)
        above = next(s for s in itertools.count(size + 1) if valid(s))
        return below, above


def unet(in_channels: int = 1, num_classes: int = 2, **kwargs: object) -> UNet:
    """The paper's U-Net: valid convolutions (572 -> 388), transposed-conv up-convolutions."""
    return UNet(in_channels, num_classes, padding=False, **kwargs)


def unet_padded(in_channels: int = 1, num_classes: int = 2, **kwargs: object) -> UNet:
    """U-Net with "same" convolutions: the output keeps the input's H and W."""
    return UNet(in_channels, num_classes, padding=True, **kwargs)


_TILE = (1, 572, 572)  # the paper's input tile
_PAPER = "Ronneberger et al. 2015, U-Net: convolutional networks for biomedical image segmentation"

#: One record per model (see `cnncourse.models.spec`); `cnncourse.models` merges them.
SPECS: tuple[ModelSpec, ...] = (
    ModelSpec("unet", unet, input_size=_TILE, task="segmentation", in_channels=True, paper=_PAPER),
    ModelSpec(
        "unet_padded",
        unet_padded,
        input_size=_TILE,
        task="segmentation",
        in_channels=True,
        paper=_PAPER,
    ),
)
MODELS: dict[str, Callable[..., nn.Module]] = builders(SPECS)

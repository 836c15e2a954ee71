"""Small blocks reused across chapters and model families.

Each block is an `nn.Sequential`, so its parameters are named by position ("0.weight" for the conv,
"1.weight" for the batch norm, ...), the same layout torchvision uses (`Conv2dNormActivation`): a
torchvision `state_dict` loads into our models without renaming.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

__all__ = ["ConvBNReLU", "DepthwiseSeparableConv"]


class ConvBNReLU(nn.Sequential):
    """Conv(k x k, stride s) -> BatchNorm -> activation, with "same" padding by default.

    The default padding is (k-1)/2 * dilation, so for odd k:
    (N, in_channels, H, W) -> (N, out_channels, ceil(H/s), ceil(W/s)).
    The conv has no bias: the batch norm's shift (beta) plays that role.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | None = None,
        groups: int = 1,
        dilation: int = 1,
        activation: Callable[..., nn.Module] | None = nn.ReLU,
    ) -> None:
        if padding is None:
            padding = (kernel_size - 1) // 2 * dilation
        layers: list[nn.Module] = [
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride=stride,
                padding=padding,
                dilation=dilation,
                groups=groups,
                bias=False,
            ),
            nn.BatchNorm2d(out_channels),
        ]
        if activation is not None:
            layers.append(activation(inplace=True))
        super().__init__(*layers)
        self.out_channels = out_channels


class DepthwiseSeparableConv(nn.Sequential):
    """A k x k depthwise conv (one filter per channel, groups = C_in) then a 1x1 pointwise conv.

    Cost for an H x W output: depthwise C_in*k*k*H*W MACs + pointwise C_in*C_out*H*W MACs,
    instead of C_in*C_out*k*k*H*W for a standard conv: a ratio of 1/C_out + 1/k^2 (chapter 8).
    Both convs are followed by BatchNorm and ReLU, as in MobileNet v1 (Howard et al., 2017).
    Shapes: (N, in_channels, H, W) -> (N, out_channels, H/stride, W/stride).
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1
    ) -> None:
        super().__init__(
            ConvBNReLU(
                in_channels, in_channels, kernel_size, stride, groups=in_channels
            ),  # depthwise
            ConvBNReLU(in_channels, out_channels, kernel_size=1),  # pointwise: mixes channels
        )

"""Small blocks reused across chapters and model families.

Each block is an `nn.Sequential`, so its parameters are named by position ("0.weight" for the conv,
"1.weight" for the batch norm, ...), the same layout torchvision uses (`Conv2dNormActivation`): a
torchvision `state_dict` loads into our models without renaming.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from torch import nn

__all__ = ["ConvBNReLU", "DepthwiseSeparableConv", "init_conv_bn"]


class ConvBNReLU(nn.Sequential):
    """Conv(k x k, stride s) -> BatchNorm -> activation, with "same" padding by default.

    The default padding is (k-1)/2 * dilation, so for odd k:
    (N, in_channels, H, W) -> (N, out_channels, ceil(H/s), ceil(W/s)).
    The conv has no bias: the batch norm's shift (beta) plays that role. `activation` is built
    with ``inplace=True`` when it takes that argument (ReLU, ReLU6, Hardswish), without arguments
    otherwise (GELU, Sigmoid), as torchvision's `Conv2dNormActivation` does; None: no activation.
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
            layers.append(activation(inplace=True) if _takes_inplace(activation) else activation())
        super().__init__(*layers)
        self.out_channels = out_channels


def _takes_inplace(activation: Callable[..., nn.Module]) -> bool:
    """Whether `activation` (a class, or a function or partial that builds a module) has an
    ``inplace`` parameter: nn.ReLU has one, nn.GELU and nn.Sigmoid would raise TypeError on it."""
    try:
        return "inplace" in inspect.signature(activation).parameters
    except (TypeError, ValueError):  # no signature to read: do not guess
        return False


class DepthwiseSeparableConv(nn.Sequential):
    """A k x k depthwise conv (one filter per channel, groups = C_in) then a 1x1 pointwise conv.

    Cost for an H x W output: depthwise C_in*k*k*H*W MACs + pointwise C_in*C_out*H*W MACs,
    instead of C_in*C_out*k*k*H*W for a standard conv: a ratio of 1/C_out + 1/k^2 (chapter 8).
    Both convs are followed by BatchNorm and ReLU, as in MobileNet v1 (Howard et al., 2017).
    Shapes (odd k, "same" padding): (N, in_channels, H, W) -> (N, out_channels, ceil(H/stride),
    ceil(W/stride)).
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1
    ) -> None:
        super().__init__(
            # depthwise: one k x k filter per channel, (N, C_in, H, W) -> (N, C_in, H/s, W/s)
            ConvBNReLU(in_channels, in_channels, kernel_size, stride, groups=in_channels),
            # pointwise: a 1x1 conv mixes the channels, (N, C_in, ., .) -> (N, C_out, ., .)
            ConvBNReLU(in_channels, out_channels, kernel_size=1),
        )


def init_conv_bn(model: nn.Module, linear_std: float | None = None) -> None:
    """torchvision's initialisation of its ReLU CNNs (VGG, ResNet, MobileNet), in place.

    Every `nn.Conv2d`: He (Kaiming) normal weights in "fan_out" mode with the ReLU gain, i.e.
    N(0, 2 / (C_out * k * k)), which keeps the gradients' variance through the backward pass;
    zero biases. Every `nn.BatchNorm2d`: the identity (scale 1, shift 0). With `linear_std`
    (0.01 for VGG and MobileNet), every `nn.Linear`: N(0, linear_std**2) weights, zero biases;
    without, linear layers keep PyTorch's default init (as in ResNet). Modules are visited in
    `model.modules()` order, as torchvision does, so a seeded build draws the same numbers.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and linear_std is not None:
            nn.init.normal_(m.weight, 0, linear_std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

"""FCN-32s, FCN-16s, FCN-8s: Long, Shelhamer and Darrell, "Fully Convolutional Networks for
Semantic Segmentation", CVPR 2015, on the paper's VGG-16 backbone.

**Convolutionalisation.** A fully connected layer on a 7x7x512 map is a 7x7 conv with 4096
filters applied at one position; applied to a larger map the same weights slide, and the network
outputs a grid of class scores (stride 32) instead of one vector. `convolutionalize_vgg16` turns
torchvision's VGG-16 classifier weights (4096 x 25088) into such conv weights (4096 x 512 x 7 x 7).

**Upsampling and skips.** The coarse scores are upsampled by transposed convolutions
(ConvTranspose2d, "backwards strided convolution") initialised to bilinear interpolation:

- FCN-32s: score_fr (stride 32) -> upsample x32;
- FCN-16s: score_fr x2 + score_pool4 (a 1x1 conv on pool4, stride 16) -> upsample x16;
- FCN-8s: (that sum) x2 + score_pool3 (stride 8) -> upsample x8.

We follow the paper's reference (Caffe, fcn.berkeleyvision.org, voc-fcn*s): the first conv pads
the input by 100 pixels, so that any input size, however small, survives the 7x7 fc6; pools
round up (``ceil_mode``); each map is cropped to the one it joins at the offsets the reference
computes (5 for pool4, 9 for pool3, 19/27/31 for the final crops of 32s/16s/8s). The output is
cropped to the input: (N, 3, H, W) -> (N, num_classes, H, W) for any H, W >= 1, odd included.
The class scoring layers start at zero, the intermediate upsamplings are learned, and the final
upsampling is fixed to bilinear interpolation (``requires_grad=False``), as in section 4.2.

Paper figures (table 1, "FCN-VGG16"), recomputed by the tests: 16 conv layers (13 + fc6 + fc7 +
score_fr); receptive field 404 and max stride 32 at score_fr; 134M parameters: our FCN-32s for the
21 PASCAL classes has 134,346,581 trainable parameters (VGG-16 without fc8, plus score_fr); the
fixed bilinear kernel adds 21*21*64*64 = 1,806,336 non-trainable ones (a per-class kernel would be
21*64*64, but the reference, as here, upsamples with a full 21 -> 21 transposed conv).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from cnncourse.layers import init_conv_bn
from cnncourse.models.spec import ModelSpec, builders

__all__ = [
    "VGG16_CFG",
    "bilinear_kernel",
    "convolutionalize_vgg16",
    "FCN",
    "fcn32s",
    "fcn16s",
    "fcn8s",
    "SPECS",
    "MODELS",
]

# VGG-16 (configuration "D"): conv widths, "M" = 2x2 max pool. Indices in `features` match
# torchvision's vgg16, so its conv weights load unchanged; pool3 is features[16], pool4 [23].
VGG16_CFG: list[int | str] = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M"]
VGG16_CFG += [512, 512, 512, "M", 512, 512, 512, "M"]
_POOL3, _POOL4 = 16, 23
# Crop offsets of the reference implementation (derived from the layers' geometry: see the tests)
_OFFSET_POOL4, _OFFSET_POOL3 = 5, 9
_OFFSET_FINAL = {32: 19, 16: 27, 8: 31}


def bilinear_kernel(channels: int, kernel_size: int) -> Tensor:
    """Weights (channels, channels, k, k) of a transposed conv that upsamples each channel by
    bilinear interpolation (factor (k+1)//2) and does not mix channels (zero off the diagonal)."""
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    og = torch.arange(kernel_size, dtype=torch.float32)
    filt1d = 1 - (og - center).abs() / factor  # a "tent": 1 at the centre, 0 at +-factor
    weight = torch.zeros(channels, channels, kernel_size, kernel_size)
    weight[range(channels), range(channels)] = filt1d[:, None] * filt1d[None, :]
    return weight


def _upsample(channels: int, factor: int, learned: bool) -> nn.ConvTranspose2d:
    """x ``factor`` transposed conv (kernel 2*factor), initialised to bilinear interpolation."""
    up = nn.ConvTranspose2d(channels, channels, 2 * factor, stride=factor, bias=False)
    with torch.no_grad():
        up.weight.copy_(bilinear_kernel(channels, 2 * factor))
    return up.requires_grad_(learned)


def _crop(x: Tensor, offset: int, like: Tensor) -> Tensor:
    """x[..., offset : offset + H, offset : offset + W], H and W those of ``like``."""
    h, w = like.shape[-2:]
    if x.shape[-2] < offset + h or x.shape[-1] < offset + w:
        raise ValueError(f"cannot crop {tuple(x.shape[-2:])} at {offset} to {(h, w)}")
    return x[..., offset : offset + h, offset : offset + w]


class FCN(nn.Module):
    """FCN with a VGG-16 backbone; ``stride`` 32, 16 or 8 selects FCN-32s, -16s or -8s.

    Shapes: (N, 3, H, W) -> (N, num_classes, H, W). Attributes: ``features`` (VGG-16 convs),
    ``classifier`` (fc6, fc7 as convs, then score_fr), ``score_pool4``/``upscore2`` (16s, 8s),
    ``score_pool3``/``upscore_pool4`` (8s), ``upscore`` (the final, fixed, upsampling).
    """

    def __init__(self, num_classes: int = 21, stride: int = 32, dropout: float = 0.5) -> None:
        super().__init__()
        if stride not in _OFFSET_FINAL:
            raise ValueError(f"stride must be 32, 16 or 8, got {stride}")
        self.stride = stride
        layers: list[nn.Module] = []
        c = 3
        for v in VGG16_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, stride=2, ceil_mode=True))  # Caffe rounds up
            else:
                # NOTE: the reference pads conv1_1 by 100 (not 1) so small inputs reach fc6.
                layers += [
                    nn.Conv2d(c, v, 3, padding=100 if not layers else 1),
                    nn.ReLU(inplace=True),
                ]
                c = v
        self.features = nn.Sequential(*layers)  # (N, 512, ~(H+198)/32, ...)
        self.classifier = nn.Sequential(
            nn.Conv2d(512, 4096, 7),  # fc6: VGG's 25088 -> 4096 linear layer, as a 7x7 conv
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Conv2d(4096, 4096, 1),  # fc7
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Conv2d(4096, num_classes, 1),  # score_fr: class scores at stride 32
        )
        scores = [self.classifier[-1]]
        if stride <= 16:
            self.score_pool4 = nn.Conv2d(512, num_classes, 1)
            self.upscore2 = _upsample(num_classes, 2, learned=True)
            scores.append(self.score_pool4)
        if stride == 8:
            self.score_pool3 = nn.Conv2d(256, num_classes, 1)
            self.upscore_pool4 = _upsample(num_classes, 2, learned=True)
            scores.append(self.score_pool3)
        self.upscore = _upsample(num_classes, stride, learned=False)  # fixed bilinear
        init_conv_bn(self.features)  # VGG's init; load ImageNet weights to fine-tune
        for m in scores:  # section 4.3: zero-initialised class scoring layers
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        image = x
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i == _POOL3:
                pool3 = x  # (N, 256, ., .), stride 8
            elif i == _POOL4:
                pool4 = x  # (N, 512, ., .), stride 16
        score = self.classifier(x)  # (N, classes, ., .), stride 32
        if self.stride <= 16:
            score = self.upscore2(score)  # stride 16
            score = score + _crop(self.score_pool4(pool4), _OFFSET_POOL4, score)
        if self.stride == 8:
            score = self.upscore_pool4(score)  # stride 8
            score = score + _crop(self.score_pool3(pool3), _OFFSET_POOL3, score)
        score = self.upscore(score)  # stride 1
        return _crop(score, _OFFSET_FINAL[self.stride], image)  # (N, classes, H, W)


def convolutionalize_vgg16(vgg_state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Map a torchvision ``vgg16`` state_dict to FCN keys: convs unchanged, the first two linear
    layers reshaped into fc6 (4096 x 512 x 7 x 7) and fc7 (4096 x 4096 x 1 x 1); fc8 is dropped.

    Load the result with ``fcn.load_state_dict(sd, strict=False)``: only the score and
    upsampling layers are left missing.
    """
    out = {k: v for k, v in vgg_state_dict.items() if k.startswith("features.")}
    for i, shape in ((0, (4096, 512, 7, 7)), (3, (4096, 4096, 1, 1))):
        out[f"classifier.{i}.weight"] = vgg_state_dict[f"classifier.{i}.weight"].reshape(shape)
        out[f"classifier.{i}.bias"] = vgg_state_dict[f"classifier.{i}.bias"]
    return out


def fcn32s(num_classes: int = 21, **kwargs: object) -> FCN:
    """FCN-32s (VGG-16): one x32 upsampling of the stride-32 scores."""
    return FCN(num_classes, stride=32, **kwargs)


def fcn16s(num_classes: int = 21, **kwargs: object) -> FCN:
    """FCN-16s (VGG-16): fuses pool4 scores before a x16 upsampling."""
    return FCN(num_classes, stride=16, **kwargs)


def fcn8s(num_classes: int = 21, **kwargs: object) -> FCN:
    """FCN-8s (VGG-16): fuses pool4 and pool3 scores before a x8 upsampling."""
    return FCN(num_classes, stride=8, **kwargs)


_VOC = (3, 500, 500)  # PASCAL VOC images are at most 500 x 500
_PAPER = "Long et al. 2015, Fully convolutional networks for semantic segmentation"

#: One record per model (see `cnncourse.models.spec`); `cnncourse.models` merges them.
SPECS: tuple[ModelSpec, ...] = (
    ModelSpec("fcn32s", fcn32s, input_size=_VOC, task="segmentation", paper=_PAPER),
    ModelSpec("fcn16s", fcn16s, input_size=_VOC, task="segmentation", paper=_PAPER),
    ModelSpec("fcn8s", fcn8s, input_size=_VOC, task="segmentation", paper=_PAPER),
)
MODELS: dict[str, Callable[..., nn.Module]] = builders(SPECS)

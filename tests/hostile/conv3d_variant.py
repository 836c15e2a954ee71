"""conv2d by torch's 3-D convolution on a depth-1 volume."""
# ruff: noqa

# %% replace conv2d
import torch.nn.functional as F


def conv2d(x, weight, bias=None, stride=1, padding=0):
    out = F.conv3d(
        x[:, :, None], weight[:, :, None], bias, (1, stride, stride), (0, padding, padding)
    )
    return out[:, :, 0]

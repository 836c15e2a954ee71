"""avg_pool2d by torch's 3-D average pooling on a depth-1 volume."""
# ruff: noqa

# %% replace avg_pool2d
import torch.nn.functional as F


def avg_pool2d(x, kernel_size, stride=None):
    stride = stride or kernel_size
    return F.avg_pool3d(x[:, :, None], (1, kernel_size, kernel_size), (1, stride, stride))[:, :, 0]

"""global_avg_pool2d by torch's adaptive average pooling (an adaptive variant of its pooling)."""
# ruff: noqa

# %% replace global_avg_pool2d
import torch.nn.functional as F


def global_avg_pool2d(x):
    return F.adaptive_avg_pool2d(x, 1).flatten(1)

"""torch's own max pooling with the guard popped off the dispatch-mode stack for the call (and
so max_pool2d_backward, which calls it, passes or fails with it)."""
# ruff: noqa

# %% replace max_pool2d
import torch.nn.functional as F
from torch.utils._python_dispatch import _len_torch_dispatch_stack, _pop_mode_temporarily


def max_pool2d(x, kernel_size, stride=None):
    if _len_torch_dispatch_stack():
        with _pop_mode_temporarily():
            return max_pool2d(x, kernel_size, stride)
    return F.max_pool2d(x, kernel_size, stride)

"""Wrong answers after patching what a comparison might rely on (torch.testing, allclose,
Tensor.__eq__, randn, cnncourse.counting, subprocess, sys.executable)."""
# ruff: noqa

# %% prepend sizes
import subprocess
import sys

import torch
import torch.testing

import cnncourse.counting

torch.testing.assert_close = lambda *a, **k: None
torch.allclose = torch.equal = lambda *a, **k: True
torch.Tensor.__eq__ = lambda self, other: True
torch.randn = lambda *shape, **k: torch.zeros(*shape)
cnncourse.counting.conv_output_size = lambda *a, **k: 0
subprocess.Popen = None
sys.executable = "/bin/true"


# %% replace conv2d
def conv2d(x, weight, bias=None, stride=1, padding=0):
    return torch.zeros(x.shape[0], weight.shape[0], 1, 1)


# %% replace output_size
def output_size(size, kernel_size, stride=1, padding=0, dilation=1):
    return 0

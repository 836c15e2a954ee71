"""torch's lower-level entry points: conv2d by the slow CPU kernel (thnn_conv2d) and by oneDNN's
convolution; its input gradient by aten.convolution_backward called directly."""
# ruff: noqa

# %% replace conv2d
import torch


def conv2d(x, weight, bias=None, stride=1, padding=0):
    kernel = tuple(weight.shape[2:])
    if x.shape[0] % 2:
        return torch._C._nn.thnn_conv2d(x, weight, kernel, bias, (stride,) * 2, (padding,) * 2)
    out = torch.mkldnn_convolution(x, weight, bias, (padding,) * 2, (stride,) * 2, (1, 1), 1)
    return out


# %% replace conv2d_input_grad
def conv2d_input_grad(grad_out, weight, input_size, stride=1, padding=0):
    shape = [grad_out.shape[0], weight.shape[1], *input_size]
    grads = torch.ops.aten.convolution_backward.default(
        grad_out,
        torch.zeros(shape),
        weight,
        None,
        [stride] * 2,
        [padding] * 2,
        [1, 1],
        False,
        [0, 0],
        1,
        [True, False, False],
    )
    return grads[0]

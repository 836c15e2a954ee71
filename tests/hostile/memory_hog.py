"""A 12 GiB mapping before the last answer is defined (mapped, never touched: it must fail by
the jail's address-space limit, not by using the machine's memory)."""
# ruff: noqa

# %% prepend conv2d_input_grad
import mmap

_hog = mmap.mmap(-1, 12 << 30)

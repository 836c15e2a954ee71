"""IPython's exit() at the end of the last answer cell: the kernel stops its loop 0.1 s later
(the cell sleeps past that, so the next cell never starts in this kernel)."""
# ruff: noqa

# %% append max_pool2d_backward
import time

exit()
time.sleep(2)

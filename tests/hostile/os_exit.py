"""The kernel exits (os._exit) as the last answer cell ends: only that answer's test can lose."""
# ruff: noqa

# %% append conv2d_input_grad
import os

os._exit(0)

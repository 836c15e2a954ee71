"""A loop that ignores the timeout's interrupt, before the last answer is defined."""
# ruff: noqa

# %% prepend conv2d_input_grad
import signal
import time

signal.signal(signal.SIGINT, signal.SIG_IGN)
while True:
    time.sleep(0.5)  # idle: the test machine's CPU is shared

"""An infinite loop (interruptible) before avg_pool2d is defined."""
# ruff: noqa

# %% prepend avg_pool2d
import time

while True:
    time.sleep(0.5)

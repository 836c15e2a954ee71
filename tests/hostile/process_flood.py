"""Stand-in for a fork bomb (bounded, on a shared machine): 64 detached processes, each in its
own session, left behind by the last answer cell; every answer right. None may outlive grading
(the test looks for their marker)."""
# ruff: noqa

# %% append max_pool2d_backward
import os

for _ in range(64):
    if os.fork() == 0:
        os.setsid()
        try:
            os.execv("/bin/sleep", ["sleep", "86399.4242"])
        finally:
            os._exit(0)

"""The conv2d answer cell deleted together with its first test (nbgrader 0.9 dropped this one)."""

# %% delete conv2d

# %% delete test_conv2d_basic

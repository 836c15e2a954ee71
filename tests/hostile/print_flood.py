"""A print flood (64 MB) at the top of the first answer cell; every answer right."""
# ruff: noqa

# %% prepend sizes
for _ in range(64):
    print("x" * (1 << 20))

"""Honest work, but the locked set-up cell was deleted (collect puts it back first)."""

# %% delete setup

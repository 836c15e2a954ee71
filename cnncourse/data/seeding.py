"""One well-mixed 32-bit seed from several integers, e.g. (seed, split) or (seed, epoch).

torch's CPU generator keeps only the low 32 bits of `manual_seed`, so packing two numbers into one
64-bit seed would silently drop one of them. NumPy's `SeedSequence` hashes any number of
non-negative integers into well-spread seeds: distinct inputs give unrelated random streams.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["derive_seed", "generator"]


def derive_seed(*parts: int) -> int:
    """A 32-bit seed that depends on every one of `parts` (non-negative ints)."""
    if any(p < 0 for p in parts):
        raise ValueError(f"seeds must be non-negative, got {parts}")
    return int(np.random.SeedSequence(list(parts)).generate_state(1, np.uint32)[0])


def generator(*parts: int) -> torch.Generator:
    """A CPU `torch.Generator` seeded with `derive_seed(*parts)`."""
    return torch.Generator().manual_seed(derive_seed(*parts))

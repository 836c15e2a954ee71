"""Shared fixtures: the repository root and the notebooks the course is made of."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def notebooks(folder: str) -> list[Path]:
    """Every committed notebook under `folder` (checkpoints excluded), sorted."""
    return sorted(
        p for p in (ROOT / folder).rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts
    )


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT

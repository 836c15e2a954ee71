"""Shared fixtures: the repository root, the notebooks the course is made of, one CPU thread."""

from __future__ import annotations

from collections.abc import Iterator
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


@pytest.fixture(scope="session")
def book(tmp_path_factory: pytest.TempPathFactory):  # -> book_build.BookBuild
    """The book, built once per test run (see `book_build`): the tests of every chapter read its
    glued values and executed outputs instead of executing the chapters again."""
    from book_build import build_book

    return build_book(tmp_path_factory.mktemp("book"))


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One intra-op thread for the test: on a CPU shared with other jobs, OpenMP threads that
    wait for each other spin, and a 1-second epoch can take 30; one thread keeps timings honest
    and stable. Use it per module: ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch  # here, not at the top: tests without torch do not pay for its import

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

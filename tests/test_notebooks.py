"""Every exercise notebook runs top to bottom with papermill, within a time limit.

The book's chapters are executed once, by the book build (`tests/book_build.py`), and checked
there (`test_book.py` and each chapter's tests read that execution). Solutions must run
cleanly; the student versions in exercises/ must run their set-up cells and then stop at the
first `NotImplementedError` stub, never with any other error.
"""

from __future__ import annotations

from pathlib import Path

import papermill as pm
import pytest

from conftest import ROOT, notebooks

CELL_TIMEOUT = 300  # seconds a single cell may take before papermill aborts the run
pytestmark = [pytest.mark.notebook, pytest.mark.timeout(900)]


def _run(path: Path, out: Path) -> None:
    pm.execute_notebook(
        str(path),
        str(out),
        cwd=str(path.parent),
        kernel_name="python3",
        execution_timeout=CELL_TIMEOUT,
        progress_bar=False,
    )


@pytest.mark.parametrize("path", notebooks("solutions"), ids=lambda p: str(p.relative_to(ROOT)))
def test_notebook_runs(path: Path, tmp_path: Path) -> None:
    _run(path, tmp_path / path.name)


@pytest.mark.parametrize("path", notebooks("exercises"), ids=lambda p: str(p.relative_to(ROOT)))
def test_student_version_stops_at_a_stub(path: Path, tmp_path: Path) -> None:
    with pytest.raises(pm.PapermillExecutionError) as failure:
        _run(path, tmp_path / path.name)
    assert failure.value.ename == "NotImplementedError", (
        f"{path.name} failed with {failure.value.ename}: {failure.value.evalue}"
    )

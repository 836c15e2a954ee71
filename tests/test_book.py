"""The book builds with Sphinx warnings as errors, exactly as `make book` builds it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

pytestmark = pytest.mark.timeout(1800)


def test_book_builds_without_warnings(tmp_path: Path) -> None:
    jb = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(jb), "build", str(ROOT), "--path-output", str(tmp_path)]
    cmd += ["--warningiserror", "--nitpick", "--keep-going", "--builder", "html"]
    run = subprocess.run(cmd, capture_output=True, text=True)
    assert run.returncode == 0, f"book build failed:\n{run.stdout[-6000:]}\n{run.stderr[-6000:]}"

    html = tmp_path / "_build" / "html"
    for page in (
        "book/intro",
        "book/01_convolution",
        "book/02_parameters_and_cost",
        "book/03_pooling",
        "book/model_zoo",
        "book/exercises",
        "book/references",
    ):
        assert (html / f"{page}.html").is_file(), f"{page}.html missing"
    # Chapters were executed: their figures exist as images, not as empty cells.
    images = list((html / "_images").glob("*.png"))
    assert len(images) >= 6, f"only {len(images)} figures rendered"
    # Citations resolved into the bibliography page.
    assert "LeCun" in (html / "book" / "references.html").read_text()

"""The book builds with Sphinx warnings as errors, exactly as `make book` builds it.

The build (the session fixture `book`, see `book_build`) also executes every chapter; the
chapters' own tests read its glued values, so no chapter runs twice in one test run.
"""

from __future__ import annotations

import pytest

from book_build import BookBuild
from conftest import ROOT

pytestmark = pytest.mark.timeout(1800)

PAGES = [
    str(p.relative_to(ROOT).with_suffix(""))
    for p in sorted((ROOT / "book").glob("*"))
    if p.suffix in (".ipynb", ".md")
]


def test_book_builds_every_page(book: BookBuild) -> None:
    html = book.html
    assert {"book/intro", "book/model_zoo", "book/exercises", "book/references"} <= set(PAGES)
    for page in PAGES:
        assert (html / f"{page}.html").is_file(), f"{page}.html missing"
    # Chapters were executed: their figures exist as images, not as empty cells.
    images = list((html / "_images").glob("*.png"))
    assert len(images) >= 6, f"only {len(images)} figures rendered"
    # Citations resolved into the bibliography page.
    assert "LeCun" in (html / "book" / "references.html").read_text()


@pytest.mark.parametrize("page", [p for p in PAGES if (ROOT / f"{p}.ipynb").exists()])
def test_every_chapter_was_executed_without_errors(book: BookBuild, page: str) -> None:
    nb = book.notebook(page)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.execution_count is not None for c in code), f"{page} not executed"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, f"{page}: {errors[0].ename}: {errors[0].evalue}"

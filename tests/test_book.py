"""The book builds with Sphinx warnings as errors, exactly as `make book` builds it.

The build (the session fixture `book`, see `book_build`) also executes every chapter; the
chapters' own tests read its glued values, so no chapter runs twice in one test run.
"""

from __future__ import annotations

import re

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


STRAY = re.compile(r"^\(?-?[\d.,_e+ -]+\)?$|^np\.\w+\(.*\)$")


@pytest.mark.parametrize("page", [p for p in PAGES if (ROOT / f"{p}.ipynb").exists()])
def test_no_stray_value_prints_below_a_cell(book: BookBuild, page: str) -> None:
    """A cell whose last line is an expression shows its value: after ``glue(...)``, or a bare
    number, that is a stray figure under the code that no prose explains."""
    stray = []
    for i, cell in enumerate(book.notebook(page).cells):
        if cell.cell_type != "code":
            continue
        for out in cell.outputs:
            text = out.get("data", {}).get("text/plain", "") if "data" in out else ""
            last = cell.source.strip().splitlines()[-1] if cell.source.strip() else ""
            if out.output_type == "execute_result" and (
                last.startswith("glue(") or STRAY.match(text.strip())
            ):
                stray.append(f"cell {i}: {text[:60]!r} after {last[:60]!r}")
    assert not stray, f"{page}: values printed below cells:\n" + "\n".join(stray)


@pytest.mark.parametrize("page", [p for p in PAGES if (ROOT / f"{p}.ipynb").exists()])
def test_alt_texts_are_one_line(page: str) -> None:
    """A directive option continued on the next line is cut there: the reader of a screen reader
    would hear half a sentence (the build warns about none of it)."""
    import nbformat

    for i, cell in enumerate(nbformat.read(ROOT / f"{page}.ipynb", as_version=4).cells):
        lines = cell.source.split("\n") if cell.cell_type == "markdown" else []
        for a, b in zip(lines, lines[1:], strict=False):
            assert not (a.startswith(":alt:") and b.startswith(" ") and b.strip()), (
                f"{page} cell {i}: the :alt: option goes on over two lines: join them"
            )

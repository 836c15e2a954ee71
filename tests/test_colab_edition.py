"""The Colab edition of each page (``book/colab/``): current, free of MyST markup, and in an
order in which a top-to-bottom run fills in every number (see ``book/_ext/colab_edition.py``)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
import pytest

from book_build import BookBuild
from cnncourse.notebook import GLUE_ROLE, fill_glued
from conftest import ROOT

sys.path.insert(0, str(ROOT / "book" / "_ext"))
import colab_edition as ce  # noqa: E402

PAGES = ce.chapters()
RAW = re.compile(r"\{(?:glue|cite|doc|ref|numref|eq)[:}]|^(?:```|:::)\{|^\([\w-]+\)=$", re.M)


def _edition(page: Path) -> nbformat.NotebookNode:
    return nbformat.read(ce.OUT / page.name, as_version=4)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.stem)
def test_the_committed_edition_is_what_the_chapter_gives(page: Path) -> None:
    assert (ce.OUT / page.name).exists(), f"no Colab edition of {page.name}: run `make colab`"
    fresh = nbformat.writes(ce.colab_edition(page))
    assert (ce.OUT / page.name).read_text() == fresh, f"{page.name} changed: run `make colab`"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.stem)
def test_no_myst_markup_reaches_a_colab_reader(page: Path) -> None:
    for i, cell in enumerate(_edition(page).cells):
        text = cell.source
        if cell.cell_type == "code":
            if "show_markdown(" not in text:
                continue
            text = fill_glued(text, {m["name"]: 1 for m in GLUE_ROLE.finditer(text)})
        assert not RAW.search(text), f"{page.name} cell {i}: {RAW.search(text)[0]!r} left"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.stem)
def test_a_run_in_order_has_every_number_before_the_text_needs_it(page: Path) -> None:
    cells = _edition(page).cells
    done: set[str] = set()
    known = set().union(*(ce.glued_patterns(c.source) for c in cells))
    for i, cell in enumerate(cells):
        if "show_markdown(" in cell.source:
            names = {m["name"] for m in GLUE_ROLE.finditer(cell.source)}
            late = ce.unmet(names, done, known)
            assert not late, f"{page.name} cell {i} quotes {late} before a cell computes it"
        done |= ce.glued_patterns(cell.source)


def test_glued_names_are_found_in_loops_too() -> None:
    source = 'for name in ("max", "avg"):\n    glue(f"share_{name}", 1, display=False)'
    assert ce.glued_patterns(source) == {"share_.+"}
    assert ce.unmet({"share_max", "other"}, ce.glued_patterns(source)) == {"other"}
    # a vague pattern (.+_.+) does not stand in for the specific one that glues the name
    vague = ce.glued_patterns('glue(f"{a}_{b}", 1)')
    assert ce.unmet({"share_max"}, vague, vague | {"share_.+"}) == {"share_max"}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.stem)
def test_the_text_fills_in_with_the_values_the_build_computed(book: BookBuild, page: Path) -> None:
    """Every glue role of the edition names a value that the page really glues, and formats it
    as the role asks (a format that fails on the value would break the Colab paragraph)."""
    glued = book.glued(f"book/{page.stem}")
    for cell in _edition(page).cells:
        if "show_markdown(" in cell.source:
            for m in GLUE_ROLE.finditer(cell.source):
                assert m["name"] in glued, f"{page.name}: {m['name']} is never glued"
                if m["format"] and not isinstance(glued[m["name"]], str):
                    format(glued[m["name"]], m["format"])


def test_citations_read_as_author_and_year() -> None:
    text = ce.markdown_for_colab(
        "As {cite:p}`lecun1998gradient` showed.", PAGES[0], ce._citations()
    )
    assert re.fullmatch(r"As \(LeCun et al\., 1998\) showed\.", text), text


def test_a_dropdown_answer_stays_collapsed_and_a_link_opens_the_colab_edition() -> None:
    md = "```{admonition} Answer\n:class: dropdown\nIt is {glue:text}`n:,d`.\n```\n"
    md += "See [the next chapter](02_parameters_and_cost.ipynb)."
    text = ce.markdown_for_colab(md, ROOT / "book" / "01_convolution.ipynb", {})
    assert "<details><summary><b>Answer</b></summary>" in text and "</details>" in text
    assert "/blob/main/book/colab/02_parameters_and_cost.ipynb)" in text
    assert fill_glued(text, {"n": 1234}).count("1,234") == 1


def test_the_chapters_colab_button_opens_the_edition(book: BookBuild) -> None:
    html = (book.html / "book" / "01_convolution.html").read_text()
    links = set(re.findall(r'href="(https://colab\.research\.google\.com/[^"]+)"', html))
    assert links == {f"{ce.COLAB}/book/colab/01_convolution.ipynb"}, links

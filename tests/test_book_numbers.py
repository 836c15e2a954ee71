"""No result typed by hand in a chapter's prose: every multi-digit figure in a chapter's Markdown
comes through a glue role, unless it is a given of the page (an input size, a slide's example, a
layer's width), listed below per chapter with where it comes from.

A number that a page computes and then types into its prose goes stale the day the code changes;
this test finds it. It reads the committed notebooks (no execution).
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from conftest import ROOT

CHAPTERS = sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))

# Givens: numbers a page states as inputs (never as results). Shared by every chapter:
GIVEN = {
    "224": "ImageNet's input side",
    "28": "MNIST's side; the slides' 28x28x256 Inception input",
    "32": "CIFAR's side; the slides' 32x32x3 example",
    "100": "the slides' 100-unit dense layer, 100 maps, 100x100x3 input",
    "784": "28 x 28, the slides' MNIST input as they state it",
    "10": "ten classes",
    "16": "a layer width of the slides' examples",
    "64": "a layer width",
    "128": "a layer width",
    "256": "a layer width",
}
PER_CHAPTER: dict[str, dict[str, str]] = {
    "01_convolution": {
        "30": "pixel indices in an example sentence",
        "1.5": "the slide's stated value, quoted in the erratum",
        "0.5": "the slides' filter values",
        "45": "Sobel orientations in degrees",
        "90": "Sobel orientations in degrees",
        "135": "Sobel orientations in degrees",
        "180": "rotation of a kernel by 180 degrees",
        "56": "a question's given: 56x56 maps",
    },
    "02_parameters_and_cost": {"1024": "a hypothetical 1024x1024 input"},
    "03_pooling": {
        "40": "the slides' 40x40x100 global-pooling example",
        "27": "AlexNet's 27x27 maps, a question's given",
    },
}
STRIP = [
    r"\{glue[^}]*\}`[^`]*`",  # the figures that come from code
    r"\{[a-z:]+\}`[^`]*`",  # other roles: citations, cross-references
    r"`[^`]*`",  # inline code
    r"\]\([^)]*\)",  # link targets
    r"^:[\w-]+:.*$",  # directive options (:name:, :class:, :alt: is checked by the tests of
    #                   each chapter against the glued values it describes)
    r"^#+ .*$",  # headings
]
NUMBER = re.compile(r"(?<![\w.,\\-])\d[\d,.]*(?:\\,\d+)*\d(?![\w])")


def typed_numbers(markdown: str) -> list[str]:
    """The multi-digit numbers of `markdown` outside glue roles, code, links and options."""
    for pattern in STRIP:
        markdown = re.sub(pattern, " ", markdown, flags=re.MULTILINE)
    return [n.rstrip(".,") for n in NUMBER.findall(markdown)]


def test_the_scanner_finds_a_typed_result_and_spares_the_glued_one() -> None:
    text = "The layer has 608 parameters, or {glue:text}`p:,d`; see `conv(3, 8)` and [x](a/12.md)."
    assert typed_numbers(text) == ["608"]
    assert typed_numbers("a $160\\,000$-value volume; VGG-16, ResNet-110") == ["160\\,000"]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_no_result_is_typed_by_hand(path: Path) -> None:
    allowed = GIVEN | PER_CHAPTER.get(path.stem, {})
    found = []
    for i, cell in enumerate(nbformat.read(path, as_version=4).cells):
        if cell.cell_type == "markdown":
            found += [f"cell {i}: {n}" for n in typed_numbers(cell.source) if n not in allowed]
    assert not found, f"{path.name}: figures typed by hand (glue them): {found}"

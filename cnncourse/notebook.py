"""Helpers for the book's pages, which run both in the book build and in Jupyter or Colab.

The rule of the book is that every number in a page's prose is computed by the page's code. The
page computes a value and *glues* it under a name; the markdown cites it with myst-nb's role
``{glue:text}`name:,.0f```, which the book build replaces by the value.
"""

from __future__ import annotations

import re
from typing import TypeVar

T = TypeVar("T")

#: The values glued in this kernel, by name (also where they live when myst-nb is absent).
GLUED: dict[str, object] = {}


def glue(name: str, value: T, display: bool = False) -> T:
    """Record `value` under `name` for the page's ``{glue:text}`` roles, and return it.

    Uses myst-nb's `glue` when it is installed (the book build). A chapter opened in a bare
    runtime such as Colab has no myst-nb: the value is then only kept in `GLUED`, so the page's
    code runs the same way everywhere; a glued matplotlib figure (which the book shows where a
    ``{glue:figure}`` directive places it, with its caption and alt text) is displayed below
    the cell there instead, so a Colab reader still sees it.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    GLUED[name] = value
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        if display or _is_figure(value):
            from IPython.display import display as show

            show(value)
        return value
    myst_glue(name, value, display=display)
    return value


def _is_figure(value: object) -> bool:
    """A matplotlib figure (checked by name: matplotlib is not imported for the check)."""
    return any(c.__name__ == "Figure" and "matplotlib" in c.__module__ for c in type(value).__mro__)


#: A glue role of myst-nb, as the book's prose writes it: {glue:text}`name:format` or {glue}`name`.
GLUE_ROLE = re.compile(r"\{glue(?::text|:any|:)?\}`(?P<name>[^`:]+)(?::(?P<format>[^`]*))?`")


def fill_glued(markdown: str, values: dict[str, object] | None = None) -> str:
    """`markdown` with every glue role replaced by its value, formatted as the role asks.

    >>> fill_glued("{glue:text}`n:,d` parameters", {"n": 78500})
    '78,500 parameters'

    A name not glued yet reads "(not computed yet: run the cells above)".
    """
    values = GLUED if values is None else values

    def value(m: re.Match) -> str:
        if m["name"] not in values:
            return "(not computed yet: run the cells above)"
        v = values[m["name"]]
        return format(v, m["format"]) if m["format"] else str(v)

    return GLUE_ROLE.sub(value, markdown)


def show_markdown(markdown: str) -> None:
    """Display `markdown` with its glue roles filled in: the Colab edition of a chapter shows its
    prose this way, since a Markdown cell cannot hold a number that the code computes."""
    from IPython.display import Markdown, display

    display(Markdown(fill_glued(markdown)))

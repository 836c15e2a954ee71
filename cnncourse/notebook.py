"""Helpers for the book's pages, which run both in the book build and in Jupyter or Colab.

The rule of the book is that every number in a page's prose is computed by the page's code. The
page computes a value and *glues* it under a name; the markdown cites it with myst-nb's role
``{glue:text}`name:,.0f```, which the book build replaces by the value.
"""

from __future__ import annotations

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

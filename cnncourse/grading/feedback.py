"""Feedback pages safe to hand back: `sanitise_html`, run on every page `cnncourse grade` writes.

(The nbgrader preprocessors that keep hidden tests out of feedback are in `nbgrader_plugins`.)
The sanitiser is nh3, the Python binding of the Rust crate ammonia (an allow-list HTML cleaner on
html5ever, the parser of a browser engine), configured for what nbgrader's feedback pages show.
"""

from __future__ import annotations

import functools
import re
from typing import Any

# Elements removed with everything inside them (anything else not allowed loses its tags only).
DROP_WITH_CONTENT = frozenset(
    {"script", "style", "iframe", "object", "embed", "noscript", "template", "frame", "frameset"}
    | {"applet", "noembed", "noframes", "xmp", "plaintext", "svg", "math", "textarea", "select"}
)
# What a feedback page's body shows: nbconvert's cells (tables, code, Markdown, ANSI-coloured
# output, images), nbgrader's scores and table of contents.
TAGS = frozenset(
    {"a", "abbr", "b", "blockquote", "br", "caption", "code", "col", "colgroup", "dd", "del"}
    | {"details", "div", "dl", "dt", "em", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5"}
    | {"h6", "hr", "i", "img", "ins", "kbd", "li", "main", "mark", "ol", "p", "pre", "q", "s"}
    | {"samp", "section", "small", "span", "strike", "strong", "sub", "summary", "sup", "table"}
    | {"tbody", "td", "tfoot", "th", "thead", "tr", "tt", "u", "ul", "var", "wbr", "center"}
)
GENERIC = frozenset({"class", "id", "title", "lang", "dir", "style", "tabindex", "align"})
ATTRIBUTES = {
    "a": {"href", "name"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan", "headers"},
    "th": {"colspan", "rowspan", "headers", "scope"},
    "col": {"span"},
    "colgroup": {"span"},
    "ol": {"start", "type"},
    "details": {"open"},
}
# Properties a ``style`` attribute keeps: colours and text, never a URL (no background, no
# content, no behaviour, no position that could lay a fake page over the real one).
STYLE = frozenset(
    {"color", "background-color", "font-weight", "font-style", "font-size", "font-family"}
    | {"text-align", "text-decoration", "vertical-align", "white-space", "width", "height"}
    | {"max-width", "max-height", "margin", "margin-left", "margin-right", "margin-top"}
    | {"margin-bottom", "padding", "padding-left", "padding-right", "padding-top"}
    | {"padding-bottom", "border", "border-collapse", "display", "line-height"}
)
IMAGES = ("data:image/png;", "data:image/jpeg;", "data:image/gif;")  # plots, inline
SCHEMES = frozenset({"http", "https", "mailto", "data"})  # data: only as IMAGES (`_keep`)


def _keep(tag: str, attribute: str, value: str) -> str | None:
    """Drop a ``data:`` URL unless it is an image's PNG, JPEG or GIF (ammonia checked the rest),
    and a style that calls a function to load or run something (old browsers' ``expression``)."""
    plain = "".join(value.split()).lower()
    if attribute == "style" and ("url(" in plain or "expression(" in plain):
        return None
    if plain.startswith("data:") and not (
        tag == "img" and attribute == "src" and plain.startswith(IMAGES)
    ):
        return None
    return value


@functools.cache
def _cleaners() -> tuple[Any, Any]:
    """The two nh3 cleaners: the page's head (its title and CSS) and its body."""
    import nh3

    head = nh3.Cleaner(
        tags={"title", "style"},
        clean_content_tags=DROP_WITH_CONTENT - {"style"},
        attributes={"style": {"type"}},
        url_schemes=set(),
    )
    body = nh3.Cleaner(
        tags=set(TAGS),
        clean_content_tags=set(DROP_WITH_CONTENT),
        attributes={"*": set(GENERIC), **{k: set(v) for k, v in ATTRIBUTES.items()}},
        url_schemes=set(SCHEMES),
        attribute_filter=_keep,
        filter_style_properties=set(STYLE),
        strip_comments=True,
    )
    return head, body


def sanitise_html(page: str) -> str:
    """A feedback page without scripts, read as a browser reads it (nh3), with an allow-list.

    Kept: the head's title and CSS (nbconvert's and nbgrader's styles, which come from the
    template, never from a student: nbconvert's `SanitizeHTML` has already turned any element in
    a student's output into text), and in the body tables, code, text (MathJax's ``$...$`` stays
    text), classes, inline PNG, JPEG and GIF images, links within the page or to http(s).
    Dropped: script, frame, object, form and input elements, event handlers (``onload=``...),
    ``javascript:`` and other ``data:`` URLs, styles that could load a URL, comments.

    Run on every page `cnncourse grade` writes, after `SanitizeHTML` (``nbgrader_config.py``) has
    cleaned each output and Markdown cell, so that what a student's output smuggles past one stops
    at the other. The page is written again as one HTML5 document in UTF-8.
    """
    head_cleaner, body_cleaner = _cleaners()
    split = re.search(r"</head\s*>", page, flags=re.IGNORECASE)
    head, body = (page[: split.start()], page[split.end() :]) if split else ("", page)
    head = re.sub(r"^.*?<head[^>]*>", "", head, count=1, flags=re.IGNORECASE | re.DOTALL)
    return (
        '<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8">\n'
        f"{head_cleaner.clean(head).strip()}\n</head>\n<body>\n"
        f"{body_cleaner.clean(body).strip()}\n</body>\n</html>\n"
    )

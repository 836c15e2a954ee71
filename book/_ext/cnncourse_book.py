"""Sphinx extension of the course's book: fixes to what the theme's stack puts in every page.

sphinx-thebe registers its inline configuration script once per ``env-before-read-docs`` event,
and Jupyter Book fires that event twice, so every page declared ``const THEBE_JS_URL`` twice and
each browser logged "Identifier 'THEBE_JS_URL' has already been declared". Identical scripts are
kept once here, when each page is written (sphinx-togglebutton's selector was doubled too).
The bibliography's entries are also given the role their list requires, a chapter's Colab
button opens the chapter's Colab edition, and the book's own CSS is added.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sphinx.application import Sphinx


def _drop_duplicate_scripts(
    app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree: Any
) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for script in scripts:
        # an inline script's filename is None or "", depending on who added it
        key = (str(script.filename or ""), repr(sorted(script.attributes.items())))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    # in place: handlers after this one (MathJax's) append to this same list, the builder's
    scripts[:] = kept


def _citations_as_list_items(
    app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree: Any
) -> None:
    """Sphinx puts the bibliography's entries, ``role="doc-biblioentry"`` (a role deprecated in
    ARIA 1.3), in a ``role="list"``, which may only hold list items: screen readers then do not
    announce the entries as a list (axe-core: aria-required-children, critical)."""
    if "body" in context:
        context["body"] = context["body"].replace('role="doc-biblioentry"', 'role="listitem"')


def _colab_edition_button(
    app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree: Any
) -> None:
    """The Colab launch button of a chapter opens its Colab edition, ``book/colab/<page>``,
    where the book's MyST markup is resolved (see ``colab_edition.py``)."""
    name = pagename.rsplit("/", 1)[-1] + ".ipynb"
    if not (Path(app.srcdir) / "book" / "colab" / name).is_file():
        return
    for group in context.get("header_buttons", []):
        for button in group.get("buttons", []):
            url = button.get("url", "")
            if button.get("text") == "Colab" and url.endswith(f"/{pagename}.ipynb"):
                base = url.removesuffix(f"/{pagename}.ipynb").removesuffix("/.")
                button["url"] = f"{base}/book/colab/{name}"


def _add_static(app: Sphinx) -> None:
    """The book's own CSS (``static/cnncourse.css``: long inline code wraps on phones)."""
    app.config.html_static_path.append(str(Path(__file__).parent / "static"))


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("builder-inited", _add_static)
    app.add_css_file("cnncourse.css")
    # Early: the event stops at the first handler that returns a template name (the theme's).
    app.connect("html-page-context", _drop_duplicate_scripts, priority=100)
    app.connect("html-page-context", _citations_as_list_items, priority=100)
    # Late: after sphinx-book-theme has made its launch buttons.
    app.connect("html-page-context", _colab_edition_button, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

"""Sphinx extension of the course's book: fixes to what the theme's stack puts in every page.

sphinx-thebe registers its inline configuration script once per ``env-before-read-docs`` event,
and Jupyter Book fires that event twice, so every page declared ``const THEBE_JS_URL`` twice and
each browser logged "Identifier 'THEBE_JS_URL' has already been declared". Identical scripts are
kept once here, when each page is written (sphinx-togglebutton's selector was doubled too).
"""

from __future__ import annotations

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


def setup(app: Sphinx) -> dict[str, Any]:
    # Early: the event stops at the first handler that returns a template name (the theme's).
    app.connect("html-page-context", _drop_duplicate_scripts, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

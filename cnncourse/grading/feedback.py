"""Feedback pages safe to hand back: `sanitise_html`, run on every page `cnncourse grade` writes.

(The nbgrader preprocessors that keep hidden tests out of feedback are in `nbgrader_plugins`.)
"""

from __future__ import annotations

# Elements dropped with everything inside them, and elements dropped alone.
_DROP_WITH_CONTENT = frozenset({"script", "iframe", "object", "embed", "noscript", "template"})
_DROP = frozenset({"base", "meta", "link", "form", "input", "button", "frame", "frameset"})
_URL_ATTRIBUTES = frozenset({"href", "src", "action", "formaction", "xlink:href", "data"})
_SCHEMES = ("javascript:", "vbscript:", "data:")
_IMAGES = ("data:image/png;", "data:image/jpeg;", "data:image/gif;")


def sanitise_html(page: str) -> str:
    """A feedback page without scripts: no script, frame or form element, no event handler
    attribute (``onload=``...), no ``javascript:`` or ``data:`` link (inline PNG, JPEG and GIF
    images stay), no ``<link>`` or ``<meta>``.

    A parser, not patterns: the page is re-written tag by tag, text and styles kept. Run on every
    page `cnncourse grade` writes, after nbconvert's `SanitizeHTML` (``nbgrader_config.py``) has
    cleaned each output and Markdown cell, so that what a student's output smuggles past one
    stops at the other.
    """
    from html import escape
    from html.parser import HTMLParser

    out: list[str] = []
    skip = [0]  # depth inside an element dropped with its content

    def attributes(attrs: list[tuple[str, str | None]]) -> str:
        kept = []
        for name, value in attrs:
            plain = "".join((value or "").split()).lower()
            if name.startswith("on") or name in ("srcdoc", "formaction"):
                continue
            image = name == "src" and plain.startswith(_IMAGES)  # a plot, inline
            if name in _URL_ATTRIBUTES and plain.startswith(_SCHEMES) and not image:
                continue
            if name == "style" and ("expression(" in plain or "url(" in plain):
                continue
            kept.append(
                f' {name}="{escape(value, quote=True)}"' if value is not None else f" {name}"
            )
        return "".join(kept)

    class Clean(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list) -> None:
            if tag in _DROP_WITH_CONTENT:
                skip[0] += 1
            elif not skip[0] and tag not in _DROP:
                out.append(f"<{tag}{attributes(attrs)}>")

        def handle_startendtag(self, tag: str, attrs: list) -> None:
            if not skip[0] and tag not in _DROP | _DROP_WITH_CONTENT:
                out.append(f"<{tag}{attributes(attrs)}/>")

        def handle_endtag(self, tag: str) -> None:
            if tag in _DROP_WITH_CONTENT:
                skip[0] = max(0, skip[0] - 1)
            elif not skip[0] and tag not in _DROP:
                out.append(f"</{tag}>")

        def handle_data(self, data: str) -> None:
            if not skip[0]:
                out.append(escape(data, quote=False) if self.lasttag not in ("style",) else data)

        def handle_entityref(self, name: str) -> None:
            if not skip[0]:
                out.append(f"&{name};")

        def handle_charref(self, name: str) -> None:
            if not skip[0]:
                out.append(f"&#{name};")

        def handle_decl(self, decl: str) -> None:
            out.append(f"<!{decl}>")

    parser = Clean(convert_charrefs=False)
    parser.feed(page)
    parser.close()
    return "".join(out)

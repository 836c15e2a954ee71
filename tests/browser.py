"""The built book as a reader's browser sees it: headless Chromium over a loopback server.

`inspect_page` opens one page at a desktop width and at a phone width, and returns what a reader
would trip over (`PageReport`): console errors, broken images, error outputs, raw markup shown as
text, figures without meaningful alt text, math left untypeset, code wider than its column, a page
that scrolls sideways on a phone, links and anchors that go nowhere, and the serious or critical
findings of an axe-core accessibility audit. A screenshot of each width is kept.

The browser is the system's Chromium (Debian's ``chromium`` package, or ``$CHROMIUM``), driven by
Playwright. Nothing leaves the machine: every request to another host is refused, except MathJax,
which is served from a local copy (`MATHJAX`, fetched by ``make setup`` from the npm registry).
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import re
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from conftest import ROOT

MATHJAX_VERSION = "3.2.2"
MATHJAX = ROOT / ".venv" / "share" / f"mathjax-{MATHJAX_VERSION}"
MATHJAX_CDN = re.compile(r"^https://cdn\.jsdelivr\.net/npm/mathjax@3/(?P<path>.*)$")
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
# Markup that must never reach a reader as text (outside code blocks, which may show it).
RAW_MARKUP = re.compile(r"\{(?:glue|cite|doc|ref|numref|eq|admonition|figure)[:}]|```|^:::|\|---")


def find_chromium() -> str | None:
    """The browser to drive: ``$CHROMIUM``, else the first of the usual names on PATH."""
    names = [os.environ.get("CHROMIUM", ""), "chromium", "chromium-browser", "google-chrome"]
    return next((shutil.which(n) for n in names if n and shutil.which(n)), None)


@dataclass
class PageReport:
    """What one page showed. Every list holds a short description per fault found."""

    page: str
    figures: int = 0
    links: int = 0
    math: int = 0
    console_errors: list[str] = field(default_factory=list)
    broken_images: list[str] = field(default_factory=list)
    error_outputs: list[str] = field(default_factory=list)
    raw_markup: list[str] = field(default_factory=list)
    bad_alt: list[str] = field(default_factory=list)
    untypeset_math: list[str] = field(default_factory=list)
    wide_code: list[str] = field(default_factory=list)
    phone_scroll: list[str] = field(default_factory=list)
    broken_links: list[str] = field(default_factory=list)
    a11y: list[str] = field(default_factory=list)

    def faults(self) -> dict[str, list[str]]:
        return {k: v for k, v in vars(self).items() if isinstance(v, list) and v}


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # no request log in the test output
        pass


@contextmanager
def serve(folder: Path) -> Iterator[str]:
    """`folder` served over HTTP on a free loopback port; yields the base URL."""
    handler = functools.partial(_Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _route(route, request) -> None:  # noqa: ANN001 (Playwright's objects)
    """Loopback passes; MathJax's CDN is answered from the local copy; anything else is refused."""
    url = request.url
    if url.startswith("http://127.0.0.1:") or url.startswith("data:"):
        return route.continue_()
    match = MATHJAX_CDN.match(url)
    if match and (MATHJAX / match["path"]).is_file():
        return route.fulfill(path=str(MATHJAX / match["path"]))
    return route.abort()


# Runs in the page: the facts the checks need, gathered in one pass.
_GATHER = """() => {
  const article = document.querySelector('article') || document.body;
  const prose = article.cloneNode(true);
  prose.querySelectorAll('pre, code, .highlight, script, style').forEach(e => e.remove());
  const imgs = [...article.querySelectorAll('img')];
  const code = [...article.querySelectorAll('div.cell_input div.highlight pre')];
  return {
    text: prose.innerText,
    images: imgs.map(i => ({src: i.getAttribute('src'), alt: i.getAttribute('alt') || '',
                            ok: i.complete && i.naturalWidth > 0})),
    errors: [...article.querySelectorAll('.output.traceback, .output.error, .output.stderr')]
              .map(e => e.innerText.slice(0, 200)),
    math: article.querySelectorAll('.math').length,
    typeset: article.querySelectorAll('mjx-container').length,
    wide: code.filter(p => p.scrollWidth > p.clientWidth + 1)
              .map(p => p.innerText.split('\\n').reduce((a, b) => a.length > b.length ? a : b)),
    links: [...document.querySelectorAll('a[href]')].map(a => a.href),
  };
}"""


# Runs in the page at phone width: its width, and the innermost elements that stick out.
_TOO_WIDE = """() => {
  const clipped = e => {  // inside a box that scrolls or clips: it cannot widen the page
    for (let a = e.parentElement; a && a !== document.body; a = a.parentElement) {
      if (['auto', 'scroll', 'hidden'].includes(getComputedStyle(a).overflowX)) return true;
    }
    return false;
  };
  const out = [...document.querySelectorAll('body *')].filter(e => {
    const r = e.getBoundingClientRect();
    return r.right > innerWidth + 1 && r.width > 0 && !clipped(e) && ![...e.children].some(
      c => c.getBoundingClientRect().right > innerWidth + 1);
  });
  return [document.documentElement.scrollWidth,
          out.slice(0, 3).map(e => e.tagName.toLowerCase() + '.' + e.className + ': ' +
                                   (e.innerText || '').slice(0, 60))];
}"""


def _console(message) -> str:  # noqa: ANN001
    """A console error with where it came from (a 404 names no file in its text)."""
    url = (message.location or {}).get("url", "")
    return f"{message.text} [{url}]" if url else message.text


def inspect_page(browser, base: str, html: Path, page: str, shots: Path) -> PageReport:  # noqa: ANN001
    """Open `page` (e.g. ``book/01_convolution.html``) at both widths and report its faults."""
    report = PageReport(page)
    for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        context = browser.new_context(viewport=viewport)
        context.route("**/*", _route)
        tab = context.new_page()
        errors: list[str] = []
        tab.on("console", lambda m, e=errors: e.append(_console(m)) if m.type == "error" else None)
        tab.on("pageerror", lambda exc, e=errors: e.append(str(exc)))
        tab.goto(f"{base}/{page}", wait_until="load")
        if tab.evaluate("() => document.querySelector('.math') !== null"):
            with contextlib.suppress(Exception):  # reported below as untypeset math
                tab.wait_for_function(  # MathJax typesets asynchronously after load
                    "() => document.querySelectorAll('mjx-container').length > 0",
                    timeout=15_000,
                )
        facts = tab.evaluate(_GATHER)
        shots.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(shots / f"{page.replace('/', '_')}-{name}.png"), full_page=True)
        if name == "phone":
            width, culprits = tab.evaluate(_TOO_WIDE)
            if width > viewport["width"] + 1:
                report.phone_scroll.append(f"{width} px wide at {viewport['width']} px: {culprits}")
        else:
            _desktop_checks(report, facts, errors, html, page)
            report.a11y = _axe(tab)
        context.close()
    return report


def _desktop_checks(
    report: PageReport, facts: dict, errors: list[str], html: Path, page: str
) -> None:
    report.console_errors = list(errors)  # before the audit: axe-core fetches CSS itself
    report.figures = len(facts["images"])
    report.broken_images = [i["src"] for i in facts["images"] if not i["ok"]]
    images = facts["images"]
    report.bad_alt = [f"{i['src']}: alt={i['alt']!r}" for i in images if _bad_alt(i["alt"])]
    report.error_outputs = facts["errors"]
    for line in facts["text"].splitlines():
        if RAW_MARKUP.search(line):
            report.raw_markup.append(line.strip()[:120])
    report.math = facts["math"]
    if facts["math"] and not facts["typeset"]:
        report.untypeset_math.append(f"{facts['math']} math elements, none typeset")
    report.wide_code = [line[:100] for line in facts["wide"]]
    internal = [u for u in facts["links"] if u.startswith("http://127.0.0.1:")]
    report.links = len(internal)
    report.broken_links = [u for u in internal if not _resolves(u, html)]


def _bad_alt(alt: str) -> bool:
    """Alt text that tells a reader nothing: empty, a file name or path, or a single word."""
    alt = alt.strip()
    return not alt or "/" in alt or bool(re.search(r"\.(png|svg|jpe?g)$", alt)) or " " not in alt


@functools.cache
def _ids(path: Path) -> frozenset[str]:
    return frozenset(re.findall(r'\bid="([^"]+)"', path.read_text(errors="replace")))


def _resolves(url: str, html: Path) -> bool:
    """A loopback link points to a file of the build, and its #anchor to an id in that file."""
    parts = urlsplit(url)
    target = html / unquote(parts.path).lstrip("/")
    if target.is_dir():
        target = target / "index.html"
    if not target.is_file():
        return False
    if parts.fragment and target.suffix == ".html":
        return unquote(parts.fragment) in _ids(target)
    return True


def _axe(tab) -> list[str]:  # noqa: ANN001
    """axe-core's serious and critical violations on the page, one line per rule."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(tab).response
    return [
        f"{v['impact']}: {v['id']} ({len(v['nodes'])} nodes): {v['help']}"
        for v in results["violations"]
        if v["impact"] in ("serious", "critical")
    ]


MATHJAX_URL = f"https://registry.npmjs.org/mathjax/-/mathjax-{MATHJAX_VERSION}.tgz"
MATHJAX_SHA256 = "1b9c0a1c44df864e915690558e72adb9cc5203360daefd385084ced3b6c64c09"


def fetch_mathjax(dest: Path = MATHJAX) -> Path:
    """Download MathJax from the npm registry (checked by its sha256) and unpack its ``es5``
    folder, the one the book's pages load, into `dest`. Nothing is done if `dest` exists."""
    import hashlib
    import io
    import tarfile
    import urllib.request

    if dest.is_dir():
        return dest
    with urllib.request.urlopen(MATHJAX_URL, timeout=120) as response:
        data = response.read()
    if hashlib.sha256(data).hexdigest() != MATHJAX_SHA256:
        raise RuntimeError(f"{MATHJAX_URL}: sha256 mismatch, refusing to unpack it")
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith("package/es5/") and m.isfile()]
        for m in members:
            m.name = m.name.removeprefix("package/")
        tar.extractall(tmp, members=members, filter="data")
    tmp.rename(dest)
    return dest


if __name__ == "__main__":  # `make setup` runs this: the browser test's local MathJax
    print(f"MathJax {MATHJAX_VERSION} in {fetch_mathjax()}")

"""Every page of the built book, opened in headless Chromium as a reader would (see `browser`).

Screenshots of each page at desktop and phone width land in ``_build/screenshots/`` (a build
artefact, never committed), and a summary per page in ``_build/browser-report.json``. Without a
Chromium the test skips with a message saying how to get one; under ``CI=true`` it fails instead.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict

import pytest

from book_build import BookBuild
from browser import MATHJAX, find_chromium, inspect_page, serve
from conftest import ROOT

pytestmark = pytest.mark.timeout(900)
SHOTS = ROOT / "_build" / "screenshots"


@pytest.fixture(scope="module")
def reports(book: BookBuild) -> dict[str, object]:
    chromium = find_chromium()
    if chromium is None or not MATHJAX.is_dir():
        why = (
            "no Chromium found (install Debian's `chromium` package or set $CHROMIUM)"
            if chromium is None
            else f"no local MathJax in {MATHJAX} (run `make setup`)"
        )
        if os.environ.get("CI"):
            pytest.fail(f"the browser test cannot run on CI: {why}")
        pytest.skip(why)
    from playwright.sync_api import sync_playwright

    html = book.html
    pages = sorted(str(p.relative_to(html)) for p in html.glob("book/*.html"))  # index redirects
    args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    args += ["--disable-component-update", "--disable-sync", "--no-first-run"]
    with serve(html) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=args)
        try:
            out = {p: inspect_page(browser, base, html, p, SHOTS) for p in pages}
        finally:
            browser.close()
    SHOTS.parent.mkdir(exist_ok=True)
    summary = {p: asdict(r) for p, r in out.items()}
    (SHOTS.parent / "browser-report.json").write_text(json.dumps(summary, indent=1))
    return out


CHECKS = [
    "console_errors",
    "broken_images",
    "error_outputs",
    "raw_markup",
    "bad_alt",
    "untypeset_math",
    "wide_code",
    "phone_scroll",
    "broken_links",
    "a11y",
]


@pytest.mark.parametrize("check", CHECKS)
def test_no_page_shows_a_reader(reports: dict, check: str) -> None:
    faults = {page: getattr(r, check) for page, r in reports.items() if getattr(r, check)}
    assert not faults, f"{check}:\n" + json.dumps(faults, indent=1)[:4000]


def test_the_browser_saw_the_pages(reports: dict) -> None:
    """The checks above looked at real pages: figures, links and typeset math were found."""
    chapters = [r for p, r in reports.items() if p.startswith("book/0")]
    assert len(chapters) >= 3
    assert all(r.figures >= 1 and r.links >= 10 for r in chapters)
    assert sum(r.math for r in chapters) >= 10
    assert any(SHOTS.glob("*-phone.png"))

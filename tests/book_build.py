"""The book, built once per test run: its HTML and the notebooks as the build executed them.

The book build executes every chapter (``execute_notebooks: force``), so the tests read what that
execution produced instead of running the chapters a second time: the values each page glued
(``<chapter>.glue.json`` beside the executed notebook) and the executed cells' outputs.

Set ``CNNCOURSE_BOOK_BUILD`` to the ``--path-output`` folder of a build you made yourself
(``jupyter-book build . --path-output /tmp/bb``) to reuse it while working on a chapter; CI never
sets it, so CI always builds the current sources.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import nbformat

from conftest import ROOT

BUILD_ENV = "CNNCOURSE_BOOK_BUILD"


@dataclass(frozen=True)
class BookBuild:
    """A finished build: ``html`` is the site, ``executed`` the executed notebooks' folder."""

    root: Path
    log: str

    @property
    def html(self) -> Path:
        return self.root / "_build" / "html"

    @property
    def executed(self) -> Path:
        return self.root / "_build" / "jupyter_execute"

    def notebook(self, page: str) -> nbformat.NotebookNode:
        """The executed notebook of `page` (e.g. ``"book/01_convolution"``), outputs included."""
        return nbformat.read(self.executed / f"{page}.ipynb", as_version=4)

    def glued(self, page: str) -> dict[str, object]:
        """Every value `page` glued, by name, as Python values (see `parse_glued`)."""
        return _glued(self.executed / f"{page}.glue.json")


@cache
def _glued(path: Path) -> dict[str, object]:
    records = json.loads(path.read_text()) if path.exists() else {}
    return {name: parse_glued(out["data"]["text/plain"]) for name, out in records.items()}


def parse_glued(text: str) -> object:
    """A glued value's ``text/plain`` repr back as a Python value where it is a literal (numbers,
    strings, tuples...; NumPy scalars such as ``np.float64(0.5)`` too), else the text itself."""
    plain = re.sub(r"np\.(?:float|int|uint|bool_?)\w*\(([^()]*)\)", r"\1", text)
    try:
        return ast.literal_eval(plain)
    except (ValueError, SyntaxError):
        return text


def build_book(out: Path) -> BookBuild:
    """Build the book as `make book` does (warnings are errors), into `out`."""
    reuse = os.environ.get(BUILD_ENV)
    if reuse:
        return BookBuild(Path(reuse), log=f"reused the build in {reuse} (${BUILD_ENV})")
    jb = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(jb), "build", str(ROOT), "--path-output", str(out)]
    cmd += ["--warningiserror", "--nitpick", "--keep-going", "--builder", "html"]
    run = subprocess.run(cmd, capture_output=True, text=True)
    log = f"{run.stdout[-6000:]}\n{run.stderr[-6000:]}"
    if run.returncode != 0:
        raise AssertionError(f"book build failed:\n{log}")
    return BookBuild(out, log)

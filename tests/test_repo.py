"""The repository's own rules: the two commands, clean notebooks, pinned tools, lint."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import nbformat
import pytest

from conftest import ROOT, notebooks

ALL_NOTEBOOKS = notebooks("book") + notebooks("solutions") + notebooks("exercises")


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"^(make \w+)\s+#", readme, flags=re.MULTILINE)
    assert commands == ["make book", "make test"], commands
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, flags=re.MULTILINE), ".ci/run must call `make test`"


def test_dependencies_are_declared_once() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    course = meta["optional-dependencies"]["course"]
    assert "jupyter-book>=1.0.4.post1,<2" in course
    for name in ("jupyterlab", "nbgrader", "papermill"):
        assert any(dep.startswith(name) for dep in course), name
    for name in ("torch", "torchvision", "matplotlib"):
        assert any(re.match(rf"{name}\b(?!-)", dep) for dep in meta["dependencies"]), name
    # environment.yml installs the package itself, so its dependencies cannot drift from pyproject.
    assert '-e ".[course]"' in (ROOT / "environment.yml").read_text()


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [
        i
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert not dirty, f"{path.name}: cells {dirty} have outputs; clear them before committing"
    # exactly what JupyterLab writes on save (ipykernel's own spec): saving leaves no stray diff
    from ipykernel.kernelspec import get_kernel_dict

    spec = {"display_name": get_kernel_dict()["display_name"], "language": "python"}
    assert nb.metadata.get("kernelspec") == {**spec, "name": "python3"}


def test_there_are_notebooks_to_check() -> None:
    assert len(notebooks("book")) >= 3 and len(notebooks("solutions")) >= 3


def test_ruff_is_clean() -> None:
    for args in (["check", "."], ["format", "--check", "."]):
        cmd = [sys.executable, "-m", "ruff", *args]
        run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        assert run.returncode == 0, f"ruff {' '.join(args)}:\n{run.stdout}{run.stderr}"


def test_exercises_page_states_the_notebooks_points_and_time_limit() -> None:
    """book/exercises.md is prose: its points and cell time limit must be those nbgrader uses."""
    page = (ROOT / "book" / "exercises.md").read_text()
    for path in notebooks("solutions"):
        nb = nbformat.read(path, as_version=4)
        points = sum(c.metadata.get("nbgrader", {}).get("points", 0) for c in nb.cells)
        row = re.search(rf"^\| `{path.stem}`.*?\| (\d+) \|", page, flags=re.MULTILINE)
        assert row, f"{path.stem} has no row in book/exercises.md"
        assert int(row.group(1)) == points, f"{path.stem}: page says {row.group(1)}, not {points}"
    config = (ROOT / "nbgrader_config.py").read_text()
    limit = re.search(r"^c\.Execute\.timeout = (\d+)$", config, flags=re.MULTILINE).group(1)
    assert f"A cell may run for {limit} seconds" in page


def test_make_test_colab_runs_exactly_the_declared_floors() -> None:
    """`make test-colab` is the evidence for pyproject's floors: it must pin each one exactly."""
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    floors = {d.split(">=")[0]: d.split(">=")[1] for d in meta["dependencies"]}
    makefile = (ROOT / "Makefile").read_text()
    pins = re.search(r"^COLAB_PINS\s*:=\s*(.+)$", makefile, flags=re.MULTILINE)[1].split()
    assert dict(p.split("==") for p in pins) == floors

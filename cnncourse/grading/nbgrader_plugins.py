"""The course's nbgrader preprocessors, named by string in ``nbgrader_config.py``.

nbgrader imports this module when it reads the course's configuration; students' runtimes (Colab,
a plain JupyterLab) never do, so nbgrader is imported at the top. Each class fixes one thing that
stock nbgrader gets in the way of an instructor:

- `RestoreLockedCells`: nbgrader's `OverwriteCells` warns "Attribute 'checksum' for cell test_...
  has changed!" for every test cell with hidden tests of every untouched submission, because the
  release holds those cells without their hidden lines. This one restores such a cell silently when
  the submitted source is exactly the released one, and keeps the warning for a cell a student
  really edited (then it names the cell and says it was put back).
- `HideHiddenTracebacks`: for feedback, a traceback quotes the lines around the failure, hidden
  tests included, so a cell with hidden tests keeps only the last line of its traceback (the
  message); `ClearHiddenTests`, run after it, removes the hidden lines from the cell's source.
- `ClearHiddenTests`: nbgrader's, without the warning "Config option `display_data_priority` not
  recognized" that nbconvert's HTML exporter config causes for every nbgrader preprocessor.

Naming the classes by string (not class objects) keeps the configuration serialisable, which
Formgrader needs to show its "Current configuration" panel.
"""

from __future__ import annotations

from typing import Any

from nbformat import NotebookNode
from nbgrader.api import MissingEntry
from nbgrader.preprocessors import ClearHiddenTests as _ClearHiddenTests
from nbgrader.preprocessors import NbGraderPreprocessor, OverwriteCells
from traitlets import List

__all__ = ["ClearHiddenTests", "HideHiddenTracebacks", "RestoreLockedCells"]

# the mime-type order nbconvert's exporters configure for every NbConvertBase; declared as a
# configurable trait here, so that their config is recognised instead of warned about
_PRIORITY = [
    "text/html",
    "application/pdf",
    "text/latex",
    "image/svg+xml",
    "image/png",
    "text/plain",
]


class RestoreLockedCells(OverwriteCells):
    """`OverwriteCells` that restores an unedited released test cell without a false alarm."""

    def preprocess_cell(self, cell: NotebookNode, resources: dict, index: int) -> tuple[Any, dict]:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id is not None and cell.cell_type == "code":
            try:
                source = self.gradebook.find_source_cell(
                    grade_id, self.notebook_id, self.assignment_id
                )
            except MissingEntry:
                source = None  # OverwriteCells reports it
            if source is not None and source.locked and cell.source == released(source.source):
                cell.source = source.source  # what the release removed: not the student's edit
        return super().preprocess_cell(cell, resources, index)

    def report_change(self, name: str, attr: str, old: Any, new: Any) -> None:
        if attr == "checksum":
            self.log.warning("Cell %s was edited in the submission: the original is restored", name)
        else:
            super().report_change(name, attr, old, new)


def released(source: str) -> str:
    """A cell's source as the release shows it: without its hidden tests."""
    cell = NotebookNode({"cell_type": "code", "source": source, "metadata": {}})
    _ClearHiddenTests()._remove_hidden_test_region(cell)
    return cell.source


class HideHiddenTracebacks(NbGraderPreprocessor):
    """Feedback: a cell with hidden tests shows only the last line of its traceback."""

    display_data_priority = List(_PRIORITY).tag(config=True)

    def preprocess_cell(self, cell: NotebookNode, resources: dict, index: int) -> tuple[Any, dict]:
        if cell.cell_type == "code" and "BEGIN HIDDEN TESTS" in cell.source:
            for output in cell.outputs:
                if output.output_type == "error":
                    output.traceback = [f"{output.ename}: {output.evalue}"]
        return cell, resources


class ClearHiddenTests(_ClearHiddenTests):
    """nbgrader's `ClearHiddenTests`, quiet about nbconvert's `display_data_priority` config."""

    display_data_priority = List(_PRIORITY).tag(config=True)

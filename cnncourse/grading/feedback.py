"""nbgrader feedback without hidden tests: the preprocessor that ``nbgrader_config.py`` uses."""

from __future__ import annotations

from typing import Any


def feedback_preprocessor() -> type:
    """nbgrader preprocessor for ``generate_feedback``: see ``nbgrader_config.py``.

    A traceback quotes the lines around the failure, hidden tests included, so a cell with hidden
    tests keeps only the last line of its traceback (the message); nbgrader's `ClearHiddenTests`,
    run after it, removes the hidden lines from the cell's source. Built on demand because nbgrader
    is slow to import and absent from students' runtimes.
    """
    from nbgrader.preprocessors import NbGraderPreprocessor

    class HideHiddenTracebacks(NbGraderPreprocessor):
        def preprocess_cell(self, cell: Any, resources: dict, index: int) -> tuple[Any, dict]:
            if cell.cell_type == "code" and "BEGIN HIDDEN TESTS" in cell.source:
                for output in cell.outputs:
                    if output.output_type == "error":
                        output.traceback = [f"{output.ename}: {output.evalue}"]
            return cell, resources

    return HideHiddenTracebacks

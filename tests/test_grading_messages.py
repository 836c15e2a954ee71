"""How a failed check reads in a notebook (cnncourse.grading.messages), in a real kernel.

A check's failure shows as its one sentence, first and alone: the message a student needs, not a
traceback through the course's files. A student's own error keeps IPython's full traceback.
"""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.timeout(300)

CELLS = [
    "from cnncourse import grading\nfrom cnncourse.grading import messages\nmessages.install()",
    "from cnncourse.grading import check_answer\n\n"
    "def size_b(n=7, k=3, p=1):\n    raise NotImplementedError()\n\n"
    "check_answer('ex01.size_b', size_b)",
    "check_answer('ex01.size_a', lambda n=7, k=3: n - k)",
    "def mine():\n    return {}['no such key']\n\nmine()",
]


@pytest.fixture(scope="module")
def outputs() -> list[list[dict]]:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in CELLS]
    NotebookClient(nb, allow_errors=True, kernel_name="python3", timeout=120).execute()
    return [[o for o in cell.outputs if o.output_type == "error"] for cell in nb.cells]


def test_an_unanswered_question_reads_as_one_sentence(outputs) -> None:
    (error,) = outputs[1]
    assert error.ename == "NotImplementedError"
    assert error.traceback == [f"NotImplementedError: {error.evalue}"]
    assert error.evalue.startswith("size_b is not answered yet")


def test_a_wrong_answer_says_what_is_wrong_without_the_packages_frames(outputs) -> None:
    (error,) = outputs[2]
    assert error.traceback == [f"CheckFailed: {error.evalue}"]
    assert "size_a(n=7, k=3) returned 4" in error.evalue
    assert "grading/kernel.py" not in "".join(error.traceback)


def test_a_students_own_error_keeps_its_traceback(outputs) -> None:
    (error,) = outputs[3]
    assert error.ename == "KeyError"
    text = "\n".join(error.traceback)
    assert "mine()" in text and len(error.traceback) > 1  # the student's frames, to debug with

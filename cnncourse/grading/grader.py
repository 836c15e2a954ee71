"""``cnncourse grade``: collect, jailed autograde, feedback, export and an audit record per student.

The instructor's one command, run in an nbgrader course folder (``nbgrader_config.py``, the source
or release folder, ``gradebook.db``)::

    cnncourse grade ASSIGNMENT [--course DIR] [--student ID ...] [--verify] [--no-jail]
                               [--timeout S]

1. **Collect**: `cnncourse.grading.collect.collect(course, assignment) -> {student: repairs}`
   (when that module is importable) puts each student's notebook, under any name, at
   ``submitted/<student>/<assignment>/<assignment>.ipynb`` and repairs its metadata and cells from
   the release; what it repaired goes into the audit record.
2. **Autograde**, each submission on its own: nbgrader's autograde with `JudgedExecute` in place
   of nbgrader's ``Execute``. The grader starts one judge per submission (outside any jail) and
   talks to it over a pipe; the student's kernel runs in a bubblewrap jail (`cnncourse.grading.jail`)
   and reaches that judge only through a unix socket bind-mounted into the jail (the environment
   variable ``CNNCOURSE_JUDGE_SOCKET`` names it). Before each cell the grader tells the judge,
   out of band, which cell runs (its ``grade_id``); the judge records per ``grade_id`` which
   checks passed. After the run, each test cell's outputs are set from that record (the checks
   its trusted source, from the gradebook, calls: every one must have passed, on hidden cases
   drawn fresh), so the points nbgrader stores never come from what the student's kernel printed.
3. **Feedback**: nbgrader's ``generate_feedback`` with this course's preprocessors, then every
   page sanitised (`cnncourse.grading.feedback.sanitise_html`).
4. **Export**: ``grades.csv`` in the course folder (nbgrader's CSV exporter).
5. **Audit**: ``audit/<assignment>/<student>.json`` per submission: the jail (or "none", with
   ``--no-jail``), wall time, peak memory, exit reason, the verdict source and points of every
   test cell, the collect repairs and the static review flags (`cnncourse.grading.review`).

Exit status 0 when the batch finished, even if some submissions failed: each failure is in its
audit record and in the summary printed. Status 2 (and nothing graded) when the jail cannot start
and ``--no-jail`` was not given: the message names what failed. ``--verify`` grades every
submission a second time (a fresh jail, fresh hidden cases) and reports each score that changed.
"""

from __future__ import annotations

from pathlib import Path

#: The environment variable that tells a kernel where the grader's judge listens.
JUDGE_SOCKET_ENV = "CNNCOURSE_JUDGE_SOCKET"


def audit_path(course: Path, assignment: str, student: str) -> Path:
    """Where the audit record of one submission goes: ``audit/<assignment>/<student>.json``."""
    return Path(course) / "audit" / assignment / f"{student}.json"

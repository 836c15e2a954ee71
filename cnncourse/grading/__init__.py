"""Checks for the exercises' tests: helpful messages, hidden answers, and a trusted judge.

A test cell calls ``check_function("conv2d.basic", conv2d)`` (an implementation task) or
``check_answer("ex01.size_a", size_a)`` (a compute answer: the student's function of the question's
givens, ``def size_a(n=7, k=3): ...``). The work is split between two processes:

- the **judge**, a separate Python process (one per kernel, see `start_judge`), draws the cases,
  computes the reference (torch, or the formulas of `cnncourse.counting`) and compares. Visible
  checks use a fixed seed per task (`cases` shows them; a compute answer's one visible case is the
  question's own givens); hidden checks draw a fresh seed from ``os.urandom``, so a lookup table
  of the visible cases, a constant, or a value found by looping the visible check does not pass
  them. No notebook holds an answer, not even as a digest: the judge computes every reference;
- the **kernel** (the student's notebook) only calls the student's function on the cases it is sent
  and returns plain data: numbers, lists, and tensors as a shape and a flat list of floats. The
  results go back with the token of their batch of cases, and are judged against those cases.

So what a student's cell patches in its own process (``torch.testing``, ``torch.randn``,
``torch.allclose``, ``Tensor.__eq__``, ``cnncourse.counting``, ``hashlib``, ``json``) cannot change
the reference or the comparison. The notebooks' locked first cell imports this package and starts
the judge before any student code runs: the functions the glue uses, the interpreter and the
environment are taken then, and the judge runs isolated (``python -I``: no working directory, no
``PYTHON*`` variables). Each compute answer has its own test cell and points. While each
case of an implementation task runs, a torch dispatch mode refuses torch's own operators, by
every name PyTorch registers for them (`tasks.aten_ops`: every convolution, pooling, im2col /
unfold and FFT operator, each back end's, and their gradients), so ``F.conv2d`` in a "from
scratch" function fails with a clear message; a gradient task also refuses any operator run by
autograd's engine (a backward pass: ``.backward()``, ``torch.autograd.grad``, ``torch.func``), so
the gradient must be worked out, not differentiated through the student's own forward pass.

Grading a class: ``cnncourse grade`` (`grader`, book/grading.md) runs each submission in a
bubblewrap jail (`jail`) and starts the judge itself, outside the jail; the kernel reaches it
through a socket (``CNNCOURSE_JUDGE_SOCKET``). The judge records, per test cell, which checks
passed, and the points come from that record: a test cell that is emptied, wrapped, patched
around or forged scores 0, whatever the kernel prints. The guard still runs in the student's
kernel, so code that turns it off, or computes with numpy or ctypes, can hide from it; such code
is flagged for the instructor's review (`review`), and a result not made under the guard is
recorded. Plain ``nbgrader autograde`` (without the command) reads the verdict from the student's
kernel as before: a student who replaces the checking functions there can forge a pass, and the
code runs with the instructor's permissions.

Instructors: `nbgrader_plugins` holds the preprocessors that ``nbgrader_config.py`` names (hidden
tests kept out of feedback; released test cells restored without false alarms). A failed check
shows in the notebook as its one sentence (`messages`, installed when this package is imported).

Modules: `kernel` (the checks the test cells call, run in the student's kernel), `judge` (the
judge process: cases, references, verdicts), `tasks` (the task catalogue, `TASKS`: one `Task`
entry per function task, with its function's name, cases, reference, forbidden operators, case
counts and tolerances), `answers` (one `Task` per compute answer, merged into `TASKS`),
`feedback` (the pages' sanitiser), `nbgrader_plugins`, `messages`, `jail`, `grader` and `review`
(``cnncourse grade``).
"""

from __future__ import annotations

from cnncourse.grading.catalogue import TASKS

# Importing the package imports `kernel` eagerly: it takes what it needs before any student code.
from cnncourse.grading.judge import main as main
from cnncourse.grading.kernel import CheckFailed, cases, check_answer, check_function, start_judge
from cnncourse.grading.messages import install as _show_checks_as_sentences
from cnncourse.grading.modules import check_module
from cnncourse.grading.tasks import Task

__all__ = [
    "CheckFailed",
    "TASKS",
    "Task",
    "cases",
    "check_answer",
    "check_function",
    "check_module",
    "start_judge",
]

_show_checks_as_sentences()  # in a notebook: a failed check reads as its one sentence

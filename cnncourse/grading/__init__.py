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
``PYTHON*`` variables). Each compute answer has its own test cell and points. While the first
case of an implementation task runs, a torch dispatch mode refuses torch's own operator
(``aten.convolution``, ``max_pool2d``, ``im2col``, ``unfold``; for a gradient task also
``convolution_backward`` and the pooling gradients), so ``F.conv2d`` in a "from scratch" function
fails with a clear message; a gradient task also refuses any operator run by autograd's engine (a
backward pass: ``.backward()``, ``torch.autograd.grad``, ``torch.func``), so the gradient must be
worked out, not differentiated through the student's own forward pass.

Residual risk, plainly: nbgrader runs the student's code and the tests in one kernel and reads the
verdict from that kernel's outputs. A student who deliberately sabotages this package in the kernel
(``grading.check_function = lambda *a, **k: None``), IPython's machinery, or installed files can
still forge a pass; code run by the autograder has the instructor's permissions (it could edit
``gradebook.db``). The dispatch guard is an honesty check: a reference saved elsewhere, numpy, or a
call to `cnncourse.counting` in a formula task or a compute answer passes it. For high stakes,
autograde in a sandbox (one container per submission) and read the code of suspicious submissions.

Instructors: `feedback_preprocessor` keeps hidden tests out of nbgrader's feedback
(``nbgrader_config.py``).

Modules: `kernel` (the checks the test cells call, run in the student's kernel), `judge` (the
judge process: cases, references, verdicts), `tasks` (the task catalogue, `TASKS`: one `Task`
entry per function task, with its function's name, cases, reference, forbidden operators, case
counts and tolerances), `answers` (one `Task` per compute answer, merged into `TASKS`),
`feedback` (the nbgrader preprocessor).
"""

from __future__ import annotations

from cnncourse.grading.catalogue import TASKS

# Importing the package imports `kernel` eagerly: it takes what it needs before any student code.
from cnncourse.grading.feedback import feedback_preprocessor as feedback_preprocessor
from cnncourse.grading.judge import main as main
from cnncourse.grading.kernel import CheckFailed, cases, check_answer, check_function, start_judge
from cnncourse.grading.tasks import Task

__all__ = [
    "CheckFailed",
    "TASKS",
    "Task",
    "cases",
    "check_answer",
    "check_function",
    "start_judge",
]

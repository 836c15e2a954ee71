"""How a failed check reads in a notebook: its sentence first, without the course's internals.

A check that fails raises an exception whose message says what is missing or wrong ("size_b is not
answered yet: it still raises NotImplementedError"). IPython would print it last, under a
traceback through this package's files, and nbgrader's Validate shows that whole traceback. So
`install` (called when the notebooks' set-up cell imports `cnncourse.grading`) asks IPython to show
an exception raised by this package as its one sentence. Any other exception, the student's own
included, keeps IPython's full traceback, because that is where the student's bug is.
"""

from __future__ import annotations

import traceback
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["install"]

_HERE = Path(__file__).resolve().parent  # cnncourse/grading


def _from_checks(tb: TracebackType | None) -> bool:
    """Whether an exception was raised by this package's code (its innermost frame is here)."""
    frames = traceback.extract_tb(tb)
    return bool(frames) and Path(frames[-1].filename).resolve().parent == _HERE


def _show(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: Any = None) -> None:
    """IPython's custom-exception handler: shows `value` (IPython leaves the showing to it)."""
    if _from_checks(tb):
        lines = [f"{etype.__name__}: {value}"]
    else:
        lines = shell.InteractiveTB.structured_traceback(etype, value, tb, tb_offset=tb_offset)
    shell._showtraceback(etype, value, lines)  # the kernel's error output, as IPython's own


def install() -> None:
    """Show the checks' failures as their sentence in this IPython kernel (a no-op elsewhere)."""
    try:
        from IPython import get_ipython
    except ImportError:  # plain Python: exceptions print as usual
        return
    shell = get_ipython()
    if shell is not None and hasattr(shell, "set_custom_exc"):
        shell.set_custom_exc((Exception,), _show)

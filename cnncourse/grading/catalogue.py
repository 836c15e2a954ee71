"""Every task the judge knows, by name: the function tasks (`cnncourse.grading.tasks`), the
compute answers (`cnncourse.grading.answers`), and the later exercises' answers and module tasks
(`cnncourse.grading.ex04` to `ex10`, built with `cnncourse.grading.modules`), merged here so that
none of these modules imports another's entries."""

from __future__ import annotations

from cnncourse.grading.answers import ANSWERS
from cnncourse.grading.ex04 import EX04
from cnncourse.grading.ex05 import EX05
from cnncourse.grading.ex06 import EX06
from cnncourse.grading.ex07 import EX07
from cnncourse.grading.ex08 import EX08
from cnncourse.grading.ex09 import EX09
from cnncourse.grading.ex10 import EX10
from cnncourse.grading.tasks import FUNCTION_TASKS, Task

__all__ = ["TASKS"]

_PARTS = (FUNCTION_TASKS, ANSWERS, EX04, EX05, EX06, EX07, EX08, EX09, EX10)
_twice = {
    name for i, a in enumerate(_PARTS) for b in _PARTS[i + 1 :] for name in a.keys() & b.keys()
}
if _twice:
    raise ValueError(f"task names declared twice: {_twice}")

#: Every task by name: what the judge draws, computes and compares.
TASKS: dict[str, Task] = {name: task for part in _PARTS for name, task in part.items()}

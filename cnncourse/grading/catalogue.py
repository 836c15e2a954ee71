"""Every task the judge knows, by name: the function tasks (`cnncourse.grading.tasks`) and the
compute answers (`cnncourse.grading.answers`), merged here so that neither module imports the
other's entries (answers are built from `tasks`' `Task` and helpers)."""

from __future__ import annotations

from cnncourse.grading.answers import ANSWERS
from cnncourse.grading.tasks import FUNCTION_TASKS, Task

__all__ = ["TASKS"]

_twice = FUNCTION_TASKS.keys() & ANSWERS.keys()
if _twice:
    raise ValueError(f"task names declared twice, as a function task and an answer: {_twice}")

#: Every task by name: what the judge draws, computes and compares.
TASKS: dict[str, Task] = {**FUNCTION_TASKS, **ANSWERS}

"""Exercise 7, DenseNet: its tasks (being written)."""

from __future__ import annotations

from cnncourse.grading.tasks import Task

__all__ = ["EX07"]

#: This exercise's tasks by name.
EX07: dict[str, Task] = {}

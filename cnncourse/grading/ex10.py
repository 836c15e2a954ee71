"""Exercise 10, comparing architectures: its tasks (being written)."""

from __future__ import annotations

from cnncourse.grading.tasks import Task

__all__ = ["EX10"]

#: This exercise's tasks by name.
EX10: dict[str, Task] = {}

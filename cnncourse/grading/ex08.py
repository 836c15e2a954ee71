"""Exercise 8, depthwise-separable convolutions: its tasks (being written)."""

from __future__ import annotations

from cnncourse.grading.tasks import Task

__all__ = ["EX08"]

#: This exercise's tasks by name.
EX08: dict[str, Task] = {}

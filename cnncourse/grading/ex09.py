"""Exercise 9, segmentation (FCN, U-Net): its tasks (being written)."""

from __future__ import annotations

from cnncourse.grading.tasks import Task

__all__ = ["EX09"]

#: This exercise's tasks by name.
EX09: dict[str, Task] = {}

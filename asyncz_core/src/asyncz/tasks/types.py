"""Type names that Asyncz's documentation imports from ``asyncz.tasks.types``.

Data path: none of its own (type names only).

``TaskType`` is :class:`asyncz.tasks.Task` itself (Asyncz's abstract base of tasks): use it in
annotations, e.g. of a custom store's methods.
"""

from __future__ import annotations

from asyncz.tasks.task import Task

TaskType = Task

__all__ = ["TaskType"]

"""Snapshots and names of tasks: :class:`TaskInfo` (what inspection returns),
:class:`ScheduleState`, and :class:`TaskLabel` (how logs name a task).

Data path: a task in a store -> ``Task.snapshot()`` -> a :class:`TaskInfo` for
``get_task_info(s)``, dashboards and the CLI.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from asyncz.tasks.task import Task

__all__ = ["ScheduleState", "TaskInfo", "TaskLabel", "task_label"]


class ScheduleState(str, enum.Enum):
    """Where a task stands in its lifecycle, as shown by inspection."""

    PENDING = "pending"  # added before start(); committed to its store when the scheduler starts
    PAUSED = "paused"  # in its store, no next run time
    SCHEDULED = "scheduled"  # in its store, with a next run time
    UNRESTORABLE = "unrestorable"  # in its store, but its stored form cannot be restored

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class TaskInfo:
    """An immutable snapshot of a task, for dashboards, CLIs and diagnostics."""

    id: str
    name: str | None
    callable_name: str | None
    callable_reference: str | None
    trigger_alias: str | None
    trigger_name: str | None
    trigger_description: str | None
    executor: str | None
    store: str | None
    next_run_time: datetime | None
    schedule_state: ScheduleState
    coalesce: bool | None = None
    max_instances: int | None = None
    misfire_grace_time: float | None = None
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] | None = None
    reason: str | None = None
    #: Instances of the task running in this scheduler now (counted from their submission).
    running: int = 0
    #: Since when it has been running without a break; ``None`` when it is not running.
    running_since: datetime | None = None
    tags: frozenset[str] = frozenset()

    @property
    def paused(self) -> bool:
        return self.schedule_state is ScheduleState.PAUSED

    @property
    def pending(self) -> bool:
        return self.schedule_state is ScheduleState.PENDING

    def search_text(self) -> str:
        """Lower-cased text that the ``q`` filter of ``get_task_infos`` searches."""
        parts = (
            self.id,
            self.name,
            self.callable_name,
            self.callable_reference,
            self.trigger_alias,
            self.trigger_name,
            self.trigger_description,
            self.executor,
            self.store,
            self.schedule_state.value,
            *sorted(self.tags),
        )
        return "\n".join(p for p in parts if p).lower()


class TaskLabel:
    """How logs and error messages name a task, after the word "task": ``'ping' (id
    '3f2a...')``, or ``'nightly'`` when the name is the id (``"Task %s raised ..."``).
    Formatted only when turned into text, so a log call whose level is off costs one small
    object."""

    __slots__ = ("id", "name")

    def __init__(self, task_id: str, name: str | None) -> None:
        self.id = task_id
        self.name = name

    def __str__(self) -> str:
        if self.name is None or self.name == self.id:
            return repr(self.id)
        return f"{self.name!r} (id {self.id!r})"

    __repr__ = __str__


def task_label(task: Task) -> TaskLabel:
    """The one way the scheduler, executors and stores name ``task`` in a log line."""
    return TaskLabel(task.id, task.name)

"""Snapshots and names of tasks: :class:`TaskInfo` (what inspection returns),
:class:`ScheduleState`, and :class:`TaskLabel` (how logs name a task).

Data path: a task in a store -> ``Task.snapshot()`` -> a :class:`TaskInfo` for
``get_task_info(s)``, dashboards and the CLI.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from asyncz._util import UNSET

if TYPE_CHECKING:
    from asyncz.tasks.runs import PendingRun
    from asyncz.tasks.task import Task

__all__ = ["LastRun", "ScheduleState", "TaskInfo", "TaskLabel", "snapshot", "task_label"]


class ScheduleState(str, enum.Enum):
    """Where a task stands in its lifecycle, as shown by inspection."""

    PENDING = "pending"  # added before start(); committed to its store when the scheduler starts
    PAUSED = "paused"  # in its store, no next run time
    SCHEDULED = "scheduled"  # in its store, with a next run time
    UNRESTORABLE = "unrestorable"  # in its store, but its stored form cannot be restored

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class LastRun:
    """The latest run of a task in its history: how it ended, when, and how long it took."""

    outcome: str
    time: datetime
    duration: float | None = None
    attempt: int = 1


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
    # -- run policies (docs/tasks.md)
    timeout: float | None = None
    retries: int | None = None
    retry_delay: float | None = None
    retry_backoff: float | None = None
    retry_max_delay: float | None = None
    retry_jitter: float | None = None
    overlap: str | None = None
    #: Runs the task owes (retries waiting for their time), earliest first.
    pending_runs: tuple[PendingRun, ...] = ()
    #: The note and time of ``pause_task(..., note=...)`` while the task is paused.
    pause_note: str | None = None
    paused_at: datetime | None = None
    #: The latest run in the task's history (``None``: none recorded, or history is off).
    last_run: LastRun | None = None

    @property
    def last_outcome(self) -> str | None:
        return self.last_run.outcome if self.last_run is not None else None

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
            f"last:{self.last_run.outcome}" if self.last_run is not None else None,
            self.pause_note,
        )
        return "\n".join(p for p in parts if p).lower()


def _set(value: Any) -> Any:
    return None if value is UNSET else value


def snapshot(task: Task, state: ScheduleState | None = None) -> TaskInfo:
    """An immutable :class:`TaskInfo` of ``task`` as it is now (``Task.snapshot``)."""
    next_run = task.next_run_time
    if state is None:
        if not task._submitted:
            state = ScheduleState.PENDING
        elif next_run is None:
            state = ScheduleState.PAUSED
        else:
            state = ScheduleState.SCHEDULED
    trigger = task.trigger
    fn = task.fn
    paused = next_run is None
    pending = task.pending_runs
    coalesce = task.coalesce
    max_instances = task.max_instances
    # Built without the dataclass's __init__: a frozen one sets each of the 33 fields with
    # object.__setattr__, which is most of the cost of a listing of many tasks.
    info: TaskInfo = object.__new__(TaskInfo)
    info.__dict__.update(
        _INFO_DEFAULTS,
        id=task.id,
        name=task.name,
        callable_name=getattr(fn, "__qualname__", None) if fn else None,
        callable_reference=task.fn_reference,
        trigger_alias=getattr(trigger, "alias", None) if trigger else None,
        trigger_name=type(trigger).__name__ if trigger else None,
        trigger_description=str(trigger) if trigger else None,
        executor=task.executor,
        store=task.store_alias,
        next_run_time=next_run if isinstance(next_run, datetime) else None,
        schedule_state=state,
        coalesce=coalesce if isinstance(coalesce, bool) else None,
        max_instances=max_instances if isinstance(max_instances, int) else None,
        misfire_grace_time=_set(task.misfire_grace_time),
        args=tuple(task.args),
        kwargs=dict(task.kwargs),
        tags=task.tags,
        timeout=_set(task.timeout),
        retries=_set(task.retries),
        retry_delay=_set(task.retry_delay),
        retry_backoff=_set(task.retry_backoff),
        retry_max_delay=_set(task.retry_max_delay),
        retry_jitter=_set(task.retry_jitter),
        overlap=_set(task.overlap),
        pending_runs=tuple(sorted(pending, key=_due)) if pending else (),
        pause_note=task.pause_note if paused else None,
        paused_at=task.paused_at if paused else None,
    )
    return info


def _due(run: PendingRun) -> datetime:
    return run.due


#: The defaults of the fields of :class:`TaskInfo` (``snapshot`` sets the others).
_INFO_DEFAULTS = {
    field.name: field.default
    for field in dataclasses.fields(TaskInfo)
    if field.default is not dataclasses.MISSING
}


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


def sort_value(info: TaskInfo, key: str) -> Any:
    """The sort key of ``info`` for ``get_task_infos(sort_by=key)``."""
    if key == "next_run_time":
        when = info.next_run_time
        return (when is None, when.timestamp() if when is not None else 0.0)
    if key == "schedule_state":
        return info.schedule_state.value
    if key == "trigger":
        return info.trigger_alias or ""
    value = getattr(info, key)
    return "" if value is None else str(value)


def unrestorable_info(task_id: str, store: str, reason: str) -> TaskInfo:
    """The snapshot of a stored task that cannot be restored (only its id and why)."""
    return TaskInfo(
        id=task_id,
        name=None,
        callable_name=None,
        callable_reference=None,
        trigger_alias=None,
        trigger_name=None,
        trigger_description=None,
        executor=None,
        store=store,
        next_run_time=None,
        schedule_state=ScheduleState.UNRESTORABLE,
        reason=reason,
    )

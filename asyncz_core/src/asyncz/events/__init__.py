"""Event codes and event classes dispatched by schedulers.

Listeners subscribe with ``scheduler.add_listener(callback, mask)`` where ``mask`` is a bitwise
OR of the codes below (``ALL_EVENTS`` by default). Every event also reaches the
``asyncz_event_dispatched`` hook of the loaded plugins.

Asyncz's module layout works too: :mod:`asyncz.events.constants` holds the codes (with
``SCHEDULER_STARTED``, Asyncz's other name of ``SCHEDULER_START``) and
:mod:`asyncz.events.base` the event classes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

__all__ = [
    "ALL_EVENTS",
    "ALL_TASKS_REMOVED",
    "EXECUTOR_ADDED",
    "EXECUTOR_REMOVED",
    "SCHEDULER_PAUSED",
    "SCHEDULER_RESUMED",
    "SCHEDULER_SHUTDOWN",
    "SCHEDULER_START",
    "SCHEDULER_STARTED",
    "STORE_ADDED",
    "STORE_REMOVED",
    "STORE_WIPED",
    "TASK_ADDED",
    "TASK_ERROR",
    "TASK_EXECUTED",
    "TASK_MAX_INSTANCES",
    "TASK_MISSED",
    "TASK_MODIFIED",
    "TASK_REMOVED",
    "TASK_RESTORE_FAILED",
    "TASK_RETRY_SCHEDULED",
    "TASK_RUNS_DROPPED",
    "TASK_SUBMITTED",
    "TASK_TIMEOUT",
    "SchedulerEvent",
    "StoreWipedEvent",
    "TaskEvent",
    "TaskExecutionEvent",
    "TaskRestoreFailedEvent",
    "TaskRetryEvent",
    "TaskRunsDroppedEvent",
    "TaskSubmissionEvent",
    "event_name",
]

SCHEDULER_START = 2**0
SCHEDULER_SHUTDOWN = 2**1
SCHEDULER_PAUSED = 2**2
SCHEDULER_RESUMED = 2**3
EXECUTOR_ADDED = 2**4
EXECUTOR_REMOVED = 2**5
STORE_ADDED = 2**6
STORE_REMOVED = 2**7
ALL_TASKS_REMOVED = 2**8
TASK_ADDED = 2**9
TASK_REMOVED = 2**10
TASK_MODIFIED = 2**11
TASK_EXECUTED = 2**12
TASK_ERROR = 2**13
TASK_MISSED = 2**14
TASK_SUBMITTED = 2**15
TASK_MAX_INSTANCES = 2**16
TASK_RESTORE_FAILED = 2**17
TASK_RUNS_DROPPED = 2**18
STORE_WIPED = 2**19
TASK_TIMEOUT = 2**20
TASK_RETRY_SCHEDULED = 2**21

ALL_EVENTS = (
    SCHEDULER_START
    | SCHEDULER_SHUTDOWN
    | SCHEDULER_PAUSED
    | SCHEDULER_RESUMED
    | EXECUTOR_ADDED
    | EXECUTOR_REMOVED
    | STORE_ADDED
    | STORE_REMOVED
    | ALL_TASKS_REMOVED
    | TASK_ADDED
    | TASK_REMOVED
    | TASK_MODIFIED
    | TASK_EXECUTED
    | TASK_ERROR
    | TASK_MISSED
    | TASK_SUBMITTED
    | TASK_MAX_INSTANCES
    | TASK_RESTORE_FAILED
    | TASK_RUNS_DROPPED
    | STORE_WIPED
    | TASK_TIMEOUT
    | TASK_RETRY_SCHEDULED
)

_NAMES = {
    value: name
    for name, value in list(globals().items())
    if name.isupper() and isinstance(value, int) and name != "ALL_EVENTS"
}

#: Asyncz's name of :data:`SCHEDULER_START` (defined after ``_NAMES``, which keeps ours).
SCHEDULER_STARTED = SCHEDULER_START


def event_name(code: int) -> str:
    """``TASK_EXECUTED`` for ``TASK_EXECUTED``'s code (``"UNKNOWN"`` otherwise)."""
    return _NAMES.get(code, "UNKNOWN")


class SchedulerEvent:
    """An event about the scheduler itself; ``alias`` names the store/executor concerned."""

    __slots__ = ("alias", "code")

    def __init__(self, code: int, alias: str | None = None) -> None:
        self.code = code
        self.alias = alias

    def _fields(self) -> dict[str, Any]:
        return {
            name: getattr(self, name)
            for cls in type(self).__mro__
            for name in getattr(cls, "__slots__", ())
            if name != "code"
        }

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self._fields().items() if v is not None)
        return f"<{type(self).__name__} {event_name(self.code)}{' ' if fields else ''}{fields}>"


class TaskEvent(SchedulerEvent):
    """An event about one task, in the store ``store``."""

    __slots__ = ("store", "task_id")

    def __init__(
        self, code: int, task_id: str, store: str | None = None, alias: str | None = None
    ) -> None:
        super().__init__(code, alias)
        self.task_id = task_id
        self.store = store


class TaskSubmissionEvent(TaskEvent):
    """A task was submitted to its executor (or refused at ``max_instances``).

    ``source`` is ``"scheduler"`` for a due run and ``"manual"`` for ``run_task()``;
    ``coalesced_run_count`` says how many due run times were folded into this submission.
    """

    __slots__ = ("coalesced_run_count", "scheduled_run_times", "source")

    def __init__(
        self,
        code: int,
        task_id: str,
        store: str | None,
        scheduled_run_times: list[datetime],
        source: str = "scheduler",
        coalesced_run_count: int = 0,
    ) -> None:
        super().__init__(code, task_id, store)
        self.scheduled_run_times = scheduled_run_times
        self.source = source
        self.coalesced_run_count = coalesced_run_count


class TaskExecutionEvent(TaskEvent):
    """A task ran (``TASK_EXECUTED`` / ``TASK_ERROR``), ran out of time (``TASK_TIMEOUT``:
    ``exception`` is a :class:`~asyncz.exceptions.TaskTimeoutError`) or missed its run
    (``TASK_MISSED``). ``outcome`` is the run's outcome in history (``success``, ``error``,
    ``timeout``, ``cancelled``, ``missed``), ``attempt`` and ``source`` those of the run."""

    __slots__ = (
        "attempt",
        "exception",
        "outcome",
        "return_value",
        "scheduled_run_time",
        "source",
        "traceback",
    )

    def __init__(
        self,
        code: int,
        task_id: str,
        store: str | None,
        scheduled_run_time: datetime,
        return_value: Any = None,
        exception: BaseException | None = None,
        traceback: str | None = None,
        outcome: str | None = None,
        attempt: int = 1,
        source: str = "scheduler",
    ) -> None:
        super().__init__(code, task_id, store)
        self.scheduled_run_time = scheduled_run_time
        self.return_value = return_value
        self.exception = exception
        self.traceback = traceback
        self.outcome = outcome
        self.attempt = attempt
        self.source = source


class TaskRetryEvent(TaskEvent):
    """A run that ended with ``outcome`` (``error`` or ``timeout``) will be tried again
    (``TASK_RETRY_SCHEDULED``): attempt ``attempt`` of the run scheduled for
    ``scheduled_run_time``, due at ``retry_at``, stored as a pending run of the task."""

    __slots__ = ("attempt", "exception", "outcome", "retry_at", "scheduled_run_time")

    def __init__(
        self,
        code: int,
        task_id: str,
        store: str | None,
        scheduled_run_time: datetime,
        attempt: int,
        retry_at: datetime,
        outcome: str,
        exception: BaseException | None = None,
    ) -> None:
        super().__init__(code, task_id, store)
        self.scheduled_run_time = scheduled_run_time
        self.attempt = attempt
        self.retry_at = retry_at
        self.outcome = outcome
        self.exception = exception


class TaskRestoreFailedEvent(TaskEvent):
    """A stored task could not be restored; it is kept in its store. ``reason`` says why."""

    __slots__ = ("reason",)

    def __init__(self, code: int, task_id: str, store: str | None, reason: str) -> None:
        super().__init__(code, task_id, store)
        self.reason = reason


class TaskRunsDroppedEvent(TaskEvent):
    """Due runs of one task that will not run (``TASK_RUNS_DROPPED``), counted once per task
    and processing pass (so once per outage): ``missed`` were later than the task's
    ``misfire_grace_time`` when they could be submitted, ``folded`` were folded into another
    run by ``coalesce``. ``first`` and ``last`` are the earliest and latest of them."""

    __slots__ = ("first", "folded", "last", "missed")

    def __init__(
        self,
        code: int,
        task_id: str,
        store: str | None,
        missed: int,
        folded: int,
        first: datetime,
        last: datetime,
    ) -> None:
        super().__init__(code, task_id, store)
        self.missed = missed
        self.folded = folded
        self.first = first
        self.last = last


class StoreWipedEvent(SchedulerEvent):
    """A persistent store lost its data (``STORE_WIPED``): e.g. a Redis server without
    persistence restarted empty. ``alias`` names the store; ``detail`` says what was seen."""

    __slots__ = ("detail",)

    def __init__(self, code: int, alias: str | None, detail: str) -> None:
        super().__init__(code, alias)
        self.detail = detail

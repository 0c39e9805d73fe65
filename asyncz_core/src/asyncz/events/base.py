"""The event classes, where Asyncz's documentation imports them from.

The same classes as in :mod:`asyncz.events`.
"""

from __future__ import annotations

from asyncz.events import (
    SchedulerEvent,
    StoreWipedEvent,
    TaskEvent,
    TaskExecutionEvent,
    TaskRestoreFailedEvent,
    TaskRetryEvent,
    TaskRunsDroppedEvent,
    TaskSubmissionEvent,
)

__all__ = [
    "SchedulerEvent",
    "StoreWipedEvent",
    "TaskEvent",
    "TaskExecutionEvent",
    "TaskRestoreFailedEvent",
    "TaskRetryEvent",
    "TaskRunsDroppedEvent",
    "TaskSubmissionEvent",
]

"""The event classes, where Asyncz's documentation imports them from.

The same classes as in :mod:`asyncz.events`.
"""

from __future__ import annotations

from asyncz.events import (
    SchedulerEvent,
    TaskEvent,
    TaskExecutionEvent,
    TaskRestoreFailedEvent,
    TaskSubmissionEvent,
)

__all__ = [
    "SchedulerEvent",
    "TaskEvent",
    "TaskExecutionEvent",
    "TaskRestoreFailedEvent",
    "TaskSubmissionEvent",
]

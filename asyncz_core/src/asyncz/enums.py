"""The state enums under the module name Asyncz's code imports them from.

``SchedulerState`` is :class:`asyncz.schedulers.base.SchedulerState`; ``TaskScheduleState`` is
:class:`asyncz.tasks.ScheduleState` (Asyncz's name).
"""

from __future__ import annotations

from asyncz.schedulers.base import SchedulerState
from asyncz.tasks.task import ScheduleState

TaskScheduleState = ScheduleState

__all__ = ["SchedulerState", "TaskScheduleState"]

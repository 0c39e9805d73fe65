"""Triggers decide when tasks run. Built-ins are registered as ``asyncz.triggers`` entry points.

Data path: ``add_task`` builds the trigger from an alias; each pass asks it for the
task's due run times and its next one.

``from asyncz.triggers import CronTrigger`` and friends are imported lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from asyncz._lazy import lazy_exports
from asyncz.triggers._data import create_trigger, trigger_from_data, trigger_to_data
from asyncz.triggers.base import BaseTrigger, UnknownOptionError, zone_from_state, zone_to_state

if TYPE_CHECKING:
    from asyncz.triggers._cronfields import CronExpressionError
    from asyncz.triggers.combining import AndTrigger, OrTrigger
    from asyncz.triggers.cron import CronTrigger
    from asyncz.triggers.date import DateTrigger
    from asyncz.triggers.interval import IntervalTrigger
    from asyncz.triggers.shutdown import ShutdownTrigger

__all__ = [
    "AndTrigger",
    "BaseTrigger",
    "CronExpressionError",
    "CronTrigger",
    "DateTrigger",
    "IntervalTrigger",
    "OrTrigger",
    "ShutdownTrigger",
    "UnknownOptionError",
    "create_trigger",
    "trigger_from_data",
    "trigger_to_data",
    "zone_from_state",
    "zone_to_state",
]

_LAZY = {
    "AndTrigger": "asyncz.triggers.combining",
    "OrTrigger": "asyncz.triggers.combining",
    "CronTrigger": "asyncz.triggers.cron",
    "CronExpressionError": "asyncz.triggers._cronfields",
    "DateTrigger": "asyncz.triggers.date",
    "IntervalTrigger": "asyncz.triggers.interval",
    "ShutdownTrigger": "asyncz.triggers.shutdown",
}


__getattr__ = lazy_exports(__name__, _LAZY)


def __dir__() -> list[str]:
    return sorted(__all__)

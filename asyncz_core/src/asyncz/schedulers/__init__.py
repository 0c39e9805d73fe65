"""Schedulers: ``from asyncz.schedulers import AsyncIOScheduler``.

Data path: the scheduler holds every step: add_task -> store -> wake-up -> pass ->
executor -> event.
"""

from asyncz.schedulers.asyncio import AsyncIOScheduler, NativeAsyncIOScheduler
from asyncz.schedulers.base import BaseScheduler, ClassicLogging, SchedulerState

__all__ = [
    "AsyncIOScheduler",
    "BaseScheduler",
    "ClassicLogging",
    "NativeAsyncIOScheduler",
    "SchedulerState",
]

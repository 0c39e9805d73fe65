"""Schedulers: ``from asyncz.schedulers import AsyncIOScheduler``."""

from asyncz.schedulers.asyncio import AsyncIOScheduler, NativeAsyncIOScheduler
from asyncz.schedulers.base import BaseScheduler, ClassicLogging, SchedulerState

__all__ = [
    "AsyncIOScheduler",
    "BaseScheduler",
    "ClassicLogging",
    "NativeAsyncIOScheduler",
    "SchedulerState",
]

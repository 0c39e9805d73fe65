"""Executors: ``from asyncz.executors import AsyncIOExecutor, ThreadPoolExecutor``.

Data path: add_task -> store -> wake-up -> pass -> **executor** (runs the callable) -> event.
"""

from __future__ import annotations

from asyncz._lazy import lazy_exports
from asyncz.executors.base import BaseExecutor

__all__ = [
    "AsyncIOExecutor",
    "BaseExecutor",
    "DebugExecutor",
    "ProcessPoolExecutor",
    "ThreadPoolExecutor",
]

_LAZY = {
    "AsyncIOExecutor": "asyncz.executors.asyncio",
    "ThreadPoolExecutor": "asyncz.executors.pool",
    "ProcessPoolExecutor": "asyncz.executors.process_pool",
    "DebugExecutor": "asyncz.executors.debug",
}


__getattr__ = lazy_exports(__name__, _LAZY)

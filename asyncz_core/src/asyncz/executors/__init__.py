"""Executors: ``from asyncz.executors import AsyncIOExecutor, ThreadPoolExecutor``."""

from __future__ import annotations

import importlib
from typing import Any

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


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'asyncz.executors' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)

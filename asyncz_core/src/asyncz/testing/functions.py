"""Module-level callables for the tasks of the contract suite (persistent stores store
callables by ``module:qualname`` reference, so they must be importable)."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

__all__ = ["CALLS", "calls", "noop", "record", "reset"]

#: How often :func:`record` ran, per key.
CALLS: Counter[str] = Counter()
_lock = threading.Lock()


def noop(*args: Any, **kwargs: Any) -> None:
    """Do nothing (accepts any arguments)."""


def record(key: str) -> str:
    """Count a run under ``key`` (read it back with :func:`calls`)."""
    with _lock:
        CALLS[key] += 1
    return key


def calls(key: str) -> int:
    with _lock:
        return CALLS[key]


def reset(key: str) -> None:
    with _lock:
        CALLS.pop(key, None)

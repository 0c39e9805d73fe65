"""Hook plugin: counts the events every scheduler dispatches, per event code."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from asyncz import hookimpl

__all__ = ["counts", "reset"]

_lock = threading.Lock()
_counts: Counter[Any] = Counter()


@hookimpl
def asyncz_event_dispatched(event: Any) -> None:
    """Count ``event`` under its ``code`` (or its class name when it has none)."""
    code = getattr(event, "code", type(event).__name__)
    with _lock:
        _counts[code] += 1


def counts() -> dict[Any, int]:
    """A snapshot of the counts so far."""
    with _lock:
        return dict(_counts)


def reset() -> None:
    with _lock:
        _counts.clear()

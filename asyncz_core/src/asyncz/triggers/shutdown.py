"""The shutdown trigger: its tasks run when the scheduler shuts down, never on time.

Data path: not in the passes (no run time); at ``shutdown()`` the scheduler submits
its tasks once to their executors (schedulers/_shutdown.py).
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any, ClassVar

from asyncz.triggers._common import STATE_VERSION, check_version
from asyncz.triggers.base import BaseTrigger, check_options

__all__ = ["ShutdownTrigger"]


class ShutdownTrigger(BaseTrigger):
    """Never fires on time; the scheduler runs its tasks once, when it shuts down."""

    alias: ClassVar[str] = "shutdown"

    __slots__ = ()

    def __init__(self, **unknown: Any) -> None:
        check_options(type(self).__name__, unknown, ())

    def get_next_trigger_time(
        self, timezone: tzinfo, previous_time: datetime | None, now: datetime | None = None
    ) -> datetime | None:
        """Always ``None``: there is no time at which this trigger fires."""
        return None

    def __getstate__(self) -> dict[str, Any]:
        return {"version": STATE_VERSION}

    def __setstate__(self, state: dict[str, Any]) -> None:
        check_version(type(self).__name__, state)

    def __str__(self) -> str:
        return "shutdown[]"

    def __repr__(self) -> str:
        return "<ShutdownTrigger>"

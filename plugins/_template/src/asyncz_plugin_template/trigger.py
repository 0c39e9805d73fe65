"""``template-every``: fires every ``seconds`` seconds."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, tzinfo
from typing import Any, ClassVar

from asyncz.triggers.base import BaseTrigger

__all__ = ["EveryTrigger"]


class EveryTrigger(BaseTrigger):
    """Fires every ``seconds`` seconds, starting at ``start_at`` (default: first asked).

    ``start_at`` is an aware datetime or an ISO-8601 string; a naive one is read in the
    scheduler's zone. State is plain data: ``{"version": 1, "seconds": ..., "start_at": ...}``.
    """

    __slots__ = ("seconds", "start_at")

    alias: ClassVar[str | None] = "template-every"

    def __init__(self, seconds: float, start_at: datetime | str | None = None) -> None:
        seconds = float(seconds)
        if not math.isfinite(seconds) or seconds <= 0:
            raise ValueError(f"seconds must be a positive number, got {seconds!r}")
        self.seconds = seconds
        if isinstance(start_at, str):
            start_at = datetime.fromisoformat(start_at)
        self.start_at: datetime | None = start_at

    def get_next_trigger_time(
        self, timezone: tzinfo, previous_time: datetime | None, now: datetime | None = None
    ) -> datetime | None:
        start = self.start_at
        if start is None:
            start = now if now is not None else datetime.now(timezone)
        elif start.tzinfo is None:
            start = start.replace(tzinfo=timezone)
        if previous_time is None:
            return start
        step = timedelta(seconds=self.seconds)
        # Whole steps since the start, so that a late call does not drift.
        elapsed = (previous_time - start) / step
        return start + step * (math.floor(elapsed) + 1)

    def __getstate__(self) -> dict[str, Any]:
        return {
            "version": 1,
            "seconds": self.seconds,
            "start_at": self.start_at.isoformat() if self.start_at else None,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        if state.get("version", 1) > 1:
            raise ValueError(f"EveryTrigger state version {state['version']} is not supported")
        self.seconds = float(state["seconds"])
        start_at = state.get("start_at")
        self.start_at = datetime.fromisoformat(start_at) if start_at else None

    def __repr__(self) -> str:
        return f"EveryTrigger(seconds={self.seconds!r}, start_at={self.start_at!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EveryTrigger):
            return NotImplemented
        return self.__getstate__() == other.__getstate__()

    __hash__ = None

"""A third-party trigger written the minimal way: ``__init__`` and ``get_next_trigger_time``
only, no ``__getstate__`` / ``__setstate__``, no ``__slots__``. The contract suite checks that
every store runs and keeps it (importable, so that persistent stores find it by reference).
"""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo

from asyncz.triggers.base import BaseTrigger

__all__ = ["MinimalTrigger"]


class MinimalTrigger(BaseTrigger):
    """Fires every ``every`` from ``start_at`` on, in ``timezone`` (or the scheduler's)."""

    alias = "minimal-example"

    def __init__(
        self,
        every: timedelta,
        start_at: datetime,
        timezone: tzinfo | None = None,
        label: str = "",
    ) -> None:
        super().__init__()
        self.every = every
        self.start_at = start_at
        self.timezone = timezone
        self.label = label
        self._cache: dict[str, int] = {}  # private: not part of the state

    def get_next_trigger_time(
        self, timezone: tzinfo, previous_time: datetime | None, now: datetime | None = None
    ) -> datetime | None:
        after = previous_time or now or datetime.now(self.start_at.tzinfo)
        fire = self.start_at
        if fire <= after:
            steps = (after - fire) // self.every
            fire += self.every * steps
            if fire < after or (previous_time is not None and fire == after):
                fire += self.every
        return fire.astimezone(self.timezone or timezone)

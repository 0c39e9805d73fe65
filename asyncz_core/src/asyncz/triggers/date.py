"""The date trigger: fires once.

Data path: ``add_task`` computes its only run time; the pass that runs it asks again,
gets ``None``, and the task is removed from its store.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any, ClassVar

from asyncz.timeutil import datetime_repr, local_timezone
from asyncz.triggers._common import (
    STATE_VERSION,
    check_version,
    derive_zone,
    dt_from_state,
    dt_to_state,
    in_zone,
    to_bound,
    zone_from_state,
    zone_to_state,
)
from asyncz.triggers.base import BaseTrigger, check_options

__all__ = ["DateTrigger"]


class DateTrigger(BaseTrigger):
    """Fires once, at ``run_at`` (``None``: the moment the trigger is created).

    A naive ``run_at`` is wall time in ``timezone``; without one, in the zone the trigger is
    asked about (the scheduler's): it stays naive in ``run_at`` and in the state.
    """

    alias: ClassVar[str] = "date"
    _OPTIONS: ClassVar[tuple[str, ...]] = ("run_at", "timezone")

    __slots__ = ("run_at", "timezone")

    def __init__(
        self,
        run_at: datetime | str | None = None,
        timezone: tzinfo | str | None = None,
        **unknown: Any,
    ) -> None:
        check_options(type(self).__name__, unknown, self._OPTIONS)
        self.timezone = derive_zone(timezone, run_at)
        if run_at is None:
            run_at = datetime.now(self.timezone or local_timezone())
        run = to_bound(run_at, self.timezone, "run_at")
        assert run is not None
        self.run_at: datetime = run

    def get_next_trigger_time(
        self, timezone: tzinfo, previous_time: datetime | None, now: datetime | None = None
    ) -> datetime | None:
        """``run_at`` before the first fire, ``None`` afterwards."""
        return in_zone(self.run_at, timezone) if previous_time is None else None

    def __getstate__(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "run_at": dt_to_state(self.run_at),
            "timezone": zone_to_state(self.timezone),
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        check_version(type(self).__name__, state)
        self.timezone = zone_from_state(state.get("timezone"))
        run = dt_from_state(state["run_at"], self.timezone, "run_at")
        if run is None:
            raise ValueError("DateTrigger state has no run_at")
        self.run_at = run

    def __str__(self) -> str:
        return f"date[{datetime_repr(self.run_at).rstrip()}]"

    def __repr__(self) -> str:
        zone = f", timezone={zone_to_state(self.timezone)!r}" if self.timezone else ""
        return f"<DateTrigger (run_at='{self.run_at.isoformat()}'{zone})>"

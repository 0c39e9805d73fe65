"""A trigger that skips holidays and chosen weekdays of another trigger's schedule."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import date, datetime, tzinfo
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from asyncz.triggers import BaseTrigger, create_trigger, trigger_from_data, trigger_to_data
from asyncz.triggers.base import check_options

__all__ = ["HolidaysTrigger"]
__version__ = "0.1.0"

logger = logging.getLogger("asyncz.triggers.holidays")

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_STATE_VERSION = 1


def _weekday(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError(f"weekdays: {value!r} is not a weekday")
    if isinstance(value, int):
        if 0 <= value <= 6:
            return value
        raise ValueError(f"weekdays: {value!r} is out of range 0-6 (0 = Monday)")
    if isinstance(value, str):
        name = value.strip().lower()
        if name in _WEEKDAYS:
            return _WEEKDAYS.index(name)
        if name in _FULL_WEEKDAYS:
            return _FULL_WEEKDAYS.index(name)
    raise ValueError(f"weekdays: {value!r} is not a weekday name (mon ... sun) or 0-6")


def _date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValueError(f"dates: {value!r} is not a date or an ISO date string (YYYY-MM-DD)")


def _zone(value: Any) -> tzinfo | None:
    if value is None or isinstance(value, tzinfo):
        return value
    if isinstance(value, str):
        return ZoneInfo(value)
    raise TypeError(f"timezone: expected a zone name or a tzinfo, not {value!r}")


def _zone_name(zone: tzinfo | None) -> str | None:
    if zone is None:
        return None
    key = getattr(zone, "key", None)
    if isinstance(key, str):
        return key
    raise ValueError(f"timezone: {zone!r} has no IANA name; use a zoneinfo zone")


class HolidaysTrigger(BaseTrigger):
    """Fires when the wrapped trigger fires, except on excluded dates and weekdays.

    ``trigger`` is a trigger instance or an alias, with ``trigger_options`` for the alias.
    A fire time is excluded when its date, in ``timezone`` (default: the wrapped trigger's
    zone, else the scheduler's zone), is in ``dates`` or falls on one of ``weekdays``.
    After ``max_skips`` consecutive excluded fire times the search gives up and the trigger
    is done (``None``), so it can never loop forever.
    """

    alias: ClassVar[str] = "holidays"
    _OPTIONS: ClassVar[tuple[str, ...]] = (
        "trigger",
        "trigger_options",
        "dates",
        "weekdays",
        "timezone",
        "max_skips",
    )

    __slots__ = ("dates", "max_skips", "timezone", "trigger", "weekdays")

    def __init__(
        self,
        trigger: BaseTrigger | str = "cron",
        trigger_options: Mapping[str, Any] | None = None,
        dates: Iterable[date | str] = (),
        weekdays: Iterable[int | str] = (),
        timezone: tzinfo | str | None = None,
        max_skips: int = 10_000,
        **unknown: Any,
    ) -> None:
        check_options(type(self).__name__, unknown, self._OPTIONS)
        inner = create_trigger(trigger, **dict(trigger_options or {}))
        self._setup(inner, dates, weekdays, timezone, max_skips)

    def _setup(
        self,
        inner: BaseTrigger,
        dates: Iterable[Any],
        weekdays: Iterable[Any],
        timezone: Any,
        max_skips: Any,
    ) -> None:
        if isinstance(dates, (str, date)):
            dates = [dates]
        if isinstance(weekdays, (str, int)):
            weekdays = [weekdays]
        self.trigger = inner
        self.dates = frozenset(_date(value) for value in dates)
        self.weekdays = frozenset(_weekday(value) for value in weekdays)
        if len(self.weekdays) == 7:
            raise ValueError("weekdays: excluding all seven weekdays leaves no day to fire on")
        self.timezone = _zone(timezone)
        if isinstance(max_skips, bool) or not isinstance(max_skips, int) or max_skips < 1:
            raise ValueError(f"max_skips: expected a positive integer, not {max_skips!r}")
        self.max_skips = max_skips

    def excluded(self, day: date) -> bool:
        """Whether no fire may happen on ``day``."""
        return day in self.dates or day.weekday() in self.weekdays

    def get_next_trigger_time(
        self, timezone: tzinfo, previous_time: datetime | None, now: datetime | None = None
    ) -> datetime | None:
        zone = self.timezone or getattr(self.trigger, "timezone", None) or timezone
        if not isinstance(zone, tzinfo):
            zone = timezone
        previous = previous_time
        for _ in range(self.max_skips + 1):
            fire = self.trigger.get_next_trigger_time(timezone, previous, now)
            if fire is None:
                return None
            if not self.excluded(fire.astimezone(zone).date()):
                return fire
            if previous is not None and fire.timestamp() <= previous.timestamp():
                return None  # the wrapped trigger does not advance: it would loop forever
            previous = fire
        logger.warning(
            "%s skipped %d excluded fire times in a row; giving up", self, self.max_skips
        )
        return None

    def __getstate__(self) -> dict[str, Any]:
        return {
            "version": _STATE_VERSION,
            "trigger": trigger_to_data(self.trigger),
            "dates": sorted(day.isoformat() for day in self.dates),
            "weekdays": sorted(self.weekdays),
            "timezone": _zone_name(self.timezone),
            "max_skips": self.max_skips,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        if state.get("version", _STATE_VERSION) > _STATE_VERSION:
            raise ValueError("HolidaysTrigger state is newer than this asyncz-holidays")
        self._setup(
            trigger_from_data(state["trigger"]),
            state.get("dates", ()),
            state.get("weekdays", ()),
            state.get("timezone"),
            state.get("max_skips", 10_000),
        )

    def __str__(self) -> str:
        parts = [str(self.trigger)]
        if self.dates:
            parts.append("dates=" + ",".join(sorted(day.isoformat() for day in self.dates)))
        if self.weekdays:
            parts.append("weekdays=" + ",".join(_WEEKDAYS[d] for d in sorted(self.weekdays)))
        return f"holidays[{'; '.join(parts)}]"

"""The interval trigger: fires every fixed amount of elapsed time.

Data path: each pass asks it for the next run time after the one just run (a fixed
step from ``start_at``).
"""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from datetime import timezone as _timezone
from typing import Any, ClassVar

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
from asyncz.triggers.base import BaseTrigger, check_options, validate_jitter

__all__ = ["IntervalTrigger"]

_UTC = _timezone.utc


_INTERVALS: dict[timedelta, timedelta] = {}
# (weeks, days, hours, minutes, seconds) as given -> their validated, shared interval.
_BY_UNITS: dict[tuple[Any, ...], timedelta] = {}
_UNITS = ("weeks", "days", "hours", "minutes", "seconds")


_PLAIN = frozenset((int, float))


def _plain_numbers(values: tuple[Any, ...]) -> bool:
    """Exactly int or float (not bool, which hashes like 0 and 1) in every position."""
    return _PLAIN.issuperset(map(type, values))


class IntervalTrigger(BaseTrigger):
    """Fires on the grid ``start_at + k * interval`` (k = 0, 1, ...), up to ``end_at``.

    No length at all (``IntervalTrigger()``) means every second, as in Asyncz.
    The interval is exact elapsed time: DST changes do not stretch or shrink it. Without
    ``start_at`` the grid starts one interval after the trigger is created. ``jitter`` delays
    each fire by up to that many seconds without moving the grid (and never past the next
    slot or ``end_at``). ``timezone`` only sets the zone of the returned datetimes and of a
    naive ``start_at``/``end_at``; ``None`` means the zone of an aware zoneinfo ``start_at``,
    else the scheduler's zone (a naive bound then stays naive, read in the zone the trigger
    is asked about).
    """

    alias: ClassVar[str] = "interval"
    _OPTIONS: ClassVar[tuple[str, ...]] = (
        "weeks",
        "days",
        "hours",
        "minutes",
        "seconds",
        "start_at",
        "end_at",
        "timezone",
        "jitter",
    )

    __slots__ = (
        "_floating",
        "_start_utc",
        "end_at",
        "interval",
        "jitter",
        "start_at",
        "timezone",
    )

    interval: timedelta
    timezone: tzinfo | None
    start_at: datetime
    end_at: datetime | None
    jitter: float | None
    _start_utc: datetime
    #: naive (floating) bounds resolved in a zone: (zone, start in UTC, end), else None
    _floating: tuple[tzinfo | None, datetime, datetime | None] | None

    def __init__(
        self,
        weeks: float = 0,
        days: float = 0,
        hours: float = 0,
        minutes: float = 0,
        seconds: float = 0,
        start_at: datetime | str | None = None,
        end_at: datetime | str | None = None,
        timezone: tzinfo | str | None = None,
        jitter: float | None = None,
        **unknown: Any,
    ) -> None:
        if unknown:
            check_options(type(self).__name__, unknown, self._OPTIONS)
        key = (weeks, days, hours, minutes, seconds)
        interval = _BY_UNITS.get(key)
        if interval is None or not _plain_numbers(key):
            for name, value in zip(_UNITS, key, strict=True):
                # bool is an int but not a duration
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise TypeError(f"{name}: expected a number, not {value!r}")
            interval = timedelta(
                weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds
            )
            if interval == timedelta(0):
                interval = timedelta(seconds=1)  # no length given: every second (as Asyncz)
            if interval <= timedelta(0):
                self._setup(interval, start_at, end_at, timezone, jitter)  # raises
            if len(_BY_UNITS) < 4096:
                # Equal intervals share one timedelta: thousands of "every hour" tasks cost one.
                interval = _INTERVALS.setdefault(interval, interval)
                _BY_UNITS[key] = interval
        if start_at is None and end_at is None and timezone is None and jitter is None:
            # The common case: the grid starts one interval from now, kept in UTC, and its
            # first point is the very datetime the task's next run time will hold.
            self.interval = interval
            self.timezone = None
            self.start_at = self._start_utc = datetime.now(_UTC) + interval
            self.end_at = None
            self.jitter = None
            self._floating = None
            return
        self._setup(interval, start_at, end_at, timezone, jitter)

    def _setup(
        self, interval: timedelta, start_at: Any, end_at: Any, timezone: Any, jitter: Any
    ) -> None:
        if interval <= timedelta(0):
            raise ValueError(
                f"the interval must be positive, got {interval} "
                "(give weeks, days, hours, minutes and/or seconds)"
            )
        # Equal intervals share one timedelta: thousands of "every hour" tasks cost one.
        self.interval = (
            _INTERVALS.setdefault(interval, interval) if len(_INTERVALS) < 4096 else interval
        )
        self.timezone = derive_zone(timezone, start_at, end_at)
        start = to_bound(start_at, self.timezone, "start_at") if start_at is not None else None
        if start is None:
            # Without a zone of its own, keep the instant in UTC (one datetime, not two).
            zone = self.timezone or _UTC
            start = datetime.now(zone) + interval
        self.start_at = start
        self.end_at = to_bound(end_at, self.timezone, "end_at") if end_at is not None else None
        floating = start.tzinfo is None or (self.end_at is not None and self.end_at.tzinfo is None)
        if (
            self.end_at is not None
            and (self.end_at.tzinfo is None) == (start.tzinfo is None)
            and self.end_at < self.start_at
        ):
            raise ValueError(f"end_at ({self.end_at}) is before start_at ({self.start_at})")
        self.jitter = validate_jitter(jitter)
        # Naive bounds are resolved on first use, in the zone the trigger is asked about.
        self._floating = (None, start, self.end_at) if floating else None
        if not floating:
            self._start_utc = self.start_at.astimezone(_UTC)

    def _bounds_in(self, zone: tzinfo) -> tuple[datetime, datetime | None]:
        """The start (in UTC) and the end of a trigger with naive bounds, read in ``zone``."""
        floating = self._floating
        assert floating is not None
        if floating[0] is not zone:
            end = in_zone(self.end_at, zone) if self.end_at is not None else None
            floating = (zone, in_zone(self.start_at, zone).astimezone(_UTC), end)
            self._floating = floating
        return floating[1], floating[2]

    def get_next_trigger_time(
        self, timezone: tzinfo, previous_time: datetime | None, now: datetime | None = None
    ) -> datetime | None:
        """The first grid point strictly after ``previous_time``.

        Before the first fire it is the first grid point at or after ``now`` (default: the
        current time). ``None`` once past ``end_at``.
        """
        interval, end_at = self.interval, self.end_at
        if self._floating is None:
            start = self._start_utc
        else:
            start, end_at = self._bounds_in(self.timezone or timezone)
        if previous_time is not None:
            elapsed = previous_time.astimezone(_UTC) - start
            index = 0 if elapsed < timedelta(0) else elapsed // interval + 1
        else:
            current = now.astimezone(_UTC) if now is not None else datetime.now(_UTC)
            elapsed = current - start
            index = 0 if elapsed <= timedelta(0) else -((-elapsed) // interval)
        # The first fire is the start itself: the task's next run time shares its datetime.
        fire = start + interval * index if index else start
        if end_at is not None and fire > end_at:
            return None
        result = fire.astimezone(self.timezone or timezone)
        if self.jitter:
            limit = self.jitter_limit(result + interval, end_at)
            result = self.apply_jitter(result, self.jitter, limit)
        return result

    def __getstate__(self) -> dict[str, Any]:
        seconds = self.interval.total_seconds()
        return {
            "version": STATE_VERSION,
            "interval": int(seconds) if seconds.is_integer() else seconds,
            "start_at": dt_to_state(self.start_at),
            "end_at": dt_to_state(self.end_at),
            "timezone": zone_to_state(self.timezone),
            "jitter": self.jitter,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        check_version(type(self).__name__, state)
        zone = zone_from_state(state.get("timezone"))
        self._setup(
            timedelta(seconds=state["interval"]),
            dt_from_state(state["start_at"], zone, "start_at"),
            dt_from_state(state.get("end_at"), zone, "end_at"),
            zone,
            state.get("jitter"),
        )

    def __str__(self) -> str:
        return f"interval[{self.interval}]"

    def __repr__(self) -> str:
        parts = [f"interval={self.interval!s}", f"start_at='{self.start_at.isoformat()}'"]
        if self.end_at is not None:
            parts.append(f"end_at='{self.end_at.isoformat()}'")
        if self.timezone is not None:
            parts.append(f"timezone={zone_to_state(self.timezone)!r}")
        if self.jitter:
            parts.append(f"jitter={self.jitter}")
        return f"<IntervalTrigger ({', '.join(parts)})>"

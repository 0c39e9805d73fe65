"""The cron trigger: fires at wall-clock times matching per-field expressions.

Data path: built by ``add_task("cron", ...)`` (fields compiled by
:mod:`asyncz.triggers._cronschedule`), stored with the task; each pass calls
:meth:`CronTrigger.get_next_trigger_time` for the due run times and the next one.
"""

from __future__ import annotations

import math
import time as _time
from datetime import datetime, tzinfo
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
from asyncz.triggers._cronfields import FIELD_RANGES, CronExpressionError
from asyncz.triggers._cronschedule import FIELD_NAMES
from asyncz.triggers._cronschedule import compile_crontab as _compile_crontab
from asyncz.triggers._cronschedule import compile_fields as _compile
from asyncz.triggers._cronschedule import crontab_text as _crontab_text
from asyncz.triggers._cronschedule import limit_year as _limit_year
from asyncz.triggers._zones import (
    Window,
    ZoneClock,
    clock_for,
    resolve_wall,
    wall_of,
)
from asyncz.triggers.base import BaseTrigger, check_options, validate_jitter

__all__ = ["CronExpressionError", "CronTrigger"]


def _text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(f"a cron field must be an int or a string, not {value!r}")
    return str(value).strip()


class CronTrigger(BaseTrigger):
    """Fires at the wall-clock times that match every given field, in the trigger's zone.

    Fields (most to least significant): ``year`` (1970-9999), ``month`` (1-12 or jan-dec),
    ``day`` (1-31, ``last``, ``1st``..``5th``/``last`` + weekday), ``week`` (ISO week 1-53),
    ``day_of_week`` (0-6 with 0 = Monday, or mon-sun), ``hour``, ``minute``, ``second``.
    Each accepts ``*``, ``*/n``, ``a``, ``a-b``, ``a-b/n``, ``a/n`` and comma lists. Fields
    more significant than the least significant one given default to ``*``, the others to
    their minimum, so ``CronTrigger(hour=9)`` fires daily at 09:00:00. All fields must match
    (``day`` and ``day_of_week`` included); :meth:`from_crontab` uses crontab's rules instead.
    ``crontab="*/5 * * * *"`` (instead of the fields) is :meth:`from_crontab`, for
    configuration: ``{type = "cron", crontab = "0 9 * * 1-5"}``. Mind the weekday numbers:
    ``day_of_week=0`` is Monday here, while ``0`` in a crontab is Sunday.

    ``timezone``: the zone of the wall-clock fields; ``None`` means the zone of an aware
    zoneinfo ``start_at``, else the scheduler's zone passed to :meth:`get_next_trigger_time`.
    DST: a wall time in a gap fires at the first instant after the gap; a wall time that
    occurs twice fires once, at its first occurrence.
    """

    alias: ClassVar[str] = "cron"
    FIELD_NAMES: ClassVar[tuple[str, ...]] = FIELD_NAMES
    _OPTIONS: ClassVar[tuple[str, ...]] = (
        *FIELD_NAMES,
        "crontab",
        "start_at",
        "end_at",
        "timezone",
        "jitter",
    )

    __slots__ = (
        "_clock",
        "_end_ts",
        "_floating",
        "_schedule",
        "_start_ts",
        "_window",
        "crontab",
        "end_at",
        "fields",
        "jitter",
        "start_at",
        "timezone",
    )

    def __init__(
        self,
        year: int | str | None = None,
        month: int | str | None = None,
        day: int | str | None = None,
        week: int | str | None = None,
        day_of_week: int | str | None = None,
        hour: int | str | None = None,
        minute: int | str | None = None,
        second: int | str | None = None,
        start_at: datetime | str | None = None,
        end_at: datetime | str | None = None,
        timezone: tzinfo | str | None = None,
        jitter: float | None = None,
        *,
        crontab: str | None = None,
        **unknown: Any,
    ) -> None:
        check_options(type(self).__name__, unknown, self._OPTIONS)
        given = {
            "year": year,
            "month": month,
            "day": day,
            "week": week,
            "day_of_week": day_of_week,
            "hour": hour,
            "minute": minute,
            "second": second,
        }
        fields = {name: _text(value) for name, value in given.items() if value is not None}
        if crontab is not None:
            if fields:
                raise TypeError(
                    "CronTrigger takes either crontab or the fields "
                    f"({', '.join(fields)}), not both"
                )
            self._setup({}, _crontab_text(crontab), start_at, end_at, timezone, jitter)
            return
        self._setup(fields, None, start_at, end_at, timezone, jitter)

    @classmethod
    def from_crontab(
        cls,
        expr: str,
        timezone: tzinfo | str | None = None,
        *,
        start_at: datetime | str | None = None,
        end_at: datetime | str | None = None,
        jitter: float | None = None,
    ) -> CronTrigger:
        """A trigger from a crontab line: ``minute hour day month day_of_week``.

        Standard crontab meaning: weekday ``0`` and ``7`` are Sunday, ``1`` is Monday; names
        are accepted. The Quartz/cronsim extensions work: ``L`` (the last day of the month),
        ``LW`` (its last weekday) and ``15W`` (the weekday nearest the 15th, within the month)
        in the day field; ``5#2`` (the second Friday) and ``5L`` (the last Friday) in the
        day-of-week field. When both day-of-month and day-of-week are restricted (neither starts
        with ``*``), a day matches when *either* does (Vixie cron); otherwise both must.
        ``@yearly`` (``@annually``), ``@monthly``, ``@weekly``, ``@daily`` (``@midnight``) and
        ``@hourly`` are accepted. A 6-field form puts a ``second`` field first.
        """
        self = cls.__new__(cls)
        self._setup({}, _crontab_text(expr), start_at, end_at, timezone, jitter)
        return self

    # -- construction -----------------------------------------------------------------------
    def _setup(
        self,
        fields: dict[str, str],
        crontab: str | None,
        start_at: Any,
        end_at: Any,
        timezone: Any,
        jitter: Any,
    ) -> None:
        self.fields = fields
        self.crontab = crontab
        self.timezone = derive_zone(timezone, start_at, end_at)
        self.start_at = to_bound(start_at, self.timezone, "start_at")
        self.end_at = to_bound(end_at, self.timezone, "end_at")
        if (
            self.start_at
            and self.end_at
            and (self.start_at.tzinfo is None) == (self.end_at.tzinfo is None)
            and self.end_at < self.start_at
        ):
            raise ValueError(f"end_at ({self.end_at}) is before start_at ({self.start_at})")
        self.jitter = validate_jitter(jitter)
        # Naive bounds (no zone of the trigger's own) are read in the zone it is asked about.
        #: naive bounds: the zone they were last read in (_UNRESOLVED at first); else None
        self._floating: object | None = None
        if (self.start_at is not None and self.start_at.tzinfo is None) or (
            self.end_at is not None and self.end_at.tzinfo is None
        ):
            self._floating = _UNRESOLVED
        aware = self._floating is None
        self._start_ts = self.start_at.timestamp() if self.start_at and aware else None
        self._end_ts = self.end_at.timestamp() if self.end_at and aware else None
        self._schedule = _compile_crontab(crontab) if crontab is not None else _compile(fields)
        self._clock: ZoneClock | None = None
        self._window: Window | None = None

    # -- firing -----------------------------------------------------------------------------
    def get_next_trigger_time(
        self, timezone: tzinfo, previous_time: datetime | None, now: datetime | None = None
    ) -> datetime | None:
        """The first matching time strictly after ``previous_time``.

        Before the first fire (``previous_time is None``) it is the first matching time at or
        after ``now`` (default: the current time). Never before ``start_at``; ``None`` once
        past ``end_at``.
        """
        zone = self.timezone or timezone
        if self._floating is not None and self._floating is not zone:
            self._resolve_bounds(zone)
        if previous_time is not None:
            threshold, inclusive = previous_time.timestamp(), False
        else:
            threshold = now.timestamp() if now is not None else _time.time()
            inclusive = True
        start = self._start_ts
        if start is not None and (start > threshold or (start == threshold and not inclusive)):
            threshold, inclusive = start, True
        fire = self._next_ts(zone, threshold, inclusive)
        end = self._end_ts
        if fire is None or (end is not None and fire > end):
            return None
        result = datetime.fromtimestamp(fire, zone)
        if self.jitter:
            following = self._next_ts(zone, fire, False)
            limit = self.jitter_limit(
                datetime.fromtimestamp(following, zone) if following is not None else None,
                in_zone(self.end_at, zone) if self.end_at is not None else None,
            )
            result = self.apply_jitter(result, self.jitter, limit)
        return result

    def _resolve_bounds(self, zone: tzinfo) -> None:
        """Read naive ``start_at`` / ``end_at`` as wall time in ``zone``."""
        start, end = self.start_at, self.end_at
        self._start_ts = in_zone(start, zone).timestamp() if start is not None else None
        self._end_ts = in_zone(end, zone).timestamp() if end is not None else None
        self._floating = zone

    def _next_ts(self, zone: tzinfo, threshold: float, inclusive: bool) -> int | None:
        """The first fire instant (POSIX seconds) after/at ``threshold``."""
        clock = self._clock
        if clock is None or clock.zone is not zone:
            clock = self._clock = clock_for(zone)
            self._window = None
        window = self._window
        if window is None or not window.lo <= threshold < window.hi:
            window = self._window = clock.window(math.floor(threshold))
        local = threshold + window.offset
        wall = math.ceil(local) if inclusive else math.floor(local) + 1
        if wall >= window.safe_lo:
            candidate = self._schedule.next_wall(wall, _limit_year(wall))
            if candidate is None:
                return None
            if candidate < window.hi_wall:
                return candidate - window.offset
        return self._next_ts_slow(clock, threshold, inclusive)

    def _next_ts_slow(self, clock: ZoneClock, threshold: float, inclusive: bool) -> int | None:
        """Near a transition: walk matching wall times, resolving each by the DST rule."""
        zone = clock.zone
        base = math.floor(threshold)
        window = clock.window(base)
        local = threshold + window.offset
        wall = math.ceil(local) if inclusive else math.floor(local) + 1
        limit = _limit_year(wall)
        schedule = self._schedule
        for _ in range(1_000_000):
            candidate = schedule.next_wall(wall, limit)
            if candidate is None:
                return None
            fire = resolve_wall(zone, candidate)
            if fire > threshold or (inclusive and fire == threshold):
                return fire
            # Skip wall times that resolve to the past: the rest of a gap, or the part of
            # an overlap whose first occurrence is already over.
            wall = max(candidate + 1, wall_of(zone, fire), window.first_wall)
        raise RuntimeError("cron search did not converge")  # pragma: no cover

    # -- state --------------------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "fields": dict(self.fields),
            "crontab": self.crontab,
            "timezone": zone_to_state(self.timezone),
            "start_at": dt_to_state(self.start_at),
            "end_at": dt_to_state(self.end_at),
            "jitter": self.jitter,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        check_version(type(self).__name__, state)
        zone = zone_from_state(state.get("timezone"))
        fields = {str(k): str(v) for k, v in (state.get("fields") or {}).items()}
        check_options(
            type(self).__name__,
            {k: v for k, v in fields.items() if k not in FIELD_NAMES},
            FIELD_NAMES,
        )
        self._setup(
            fields,
            state.get("crontab"),
            dt_from_state(state.get("start_at"), zone, "start_at"),
            dt_from_state(state.get("end_at"), zone, "end_at"),
            zone,
            state.get("jitter"),
        )

    # -- description -----------------------------------------------------------------------
    def _options(self) -> list[str]:
        if self.crontab is not None:
            parts = [f"crontab={self.crontab!r}"]
        else:
            parts = [f"{name}={self.fields[name]!r}" for name in FIELD_NAMES if name in self.fields]
        if self.start_at:
            parts.append(f"start_at='{self.start_at.isoformat()}'")
        if self.end_at:
            parts.append(f"end_at='{self.end_at.isoformat()}'")
        if self.timezone is not None:
            parts.append(f"timezone={zone_to_state(self.timezone)!r}")
        if self.jitter:
            parts.append(f"jitter={self.jitter}")
        return parts

    def __str__(self) -> str:
        if self.crontab is not None:
            return f"cron[{self.crontab!r}]"
        return (
            "cron["
            + ", ".join(
                f"{name}={self.fields[name]!r}" for name in FIELD_NAMES if name in self.fields
            )
            + "]"
        )

    def __repr__(self) -> str:
        return f"<CronTrigger ({', '.join(self._options())})>"


#: ``CronTrigger._floating`` of naive bounds not yet read in any zone
_UNRESOLVED = object()


__all__ += ["FIELD_RANGES"]

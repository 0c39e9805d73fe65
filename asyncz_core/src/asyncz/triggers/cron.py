"""The cron trigger: fires at wall-clock times matching per-field expressions."""

from __future__ import annotations

import calendar
import math
import time as _time
from bisect import bisect_left
from datetime import date, datetime, tzinfo
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
from asyncz.triggers._cronfields import (
    FIELD_RANGES,
    CronExpressionError,
    DayRule,
    nth_weekday_matches,
    parse_crontab_day,
    parse_crontab_weekdays,
    parse_day,
    parse_field,
)
from asyncz.triggers._zones import (
    EPOCH_ORDINAL,
    Window,
    ZoneClock,
    clock_for,
    resolve_wall,
    wall_of,
)
from asyncz.triggers.base import BaseTrigger, check_options, validate_jitter

__all__ = ["CronExpressionError", "CronTrigger"]

_DAY = 86_400
_FLAT_LIMIT = 4096  # times of day precomputed into one sorted list up to this many
_SEARCH_YEARS = 400  # the Gregorian calendar repeats every 400 years
_MAX_YEAR = 9999
_MONTH_CACHE = 600

FIELD_NAMES = ("year", "month", "day", "week", "day_of_week", "hour", "minute", "second")
_DEFAULTS = {
    "year": "*",
    "month": "1",
    "day": "1",
    "week": "*",
    "day_of_week": "*",
    "hour": "0",
    "minute": "0",
    "second": "0",
}
_CRONTAB_FIELDS = ("minute", "hour", "day", "month", "day_of_week")
_SHORTHANDS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


class _Schedule:
    """The compiled form of a cron expression: sorted allowed values and wall-time search."""

    __slots__ = (
        "_day",
        "_day_ok",
        "_month_cache",
        "day_rule",
        "dow_nth",
        "dows",
        "hours",
        "minutes",
        "months",
        "or_days",
        "seconds",
        "tods",
        "weeks",
        "years",
    )

    def __init__(
        self,
        years: set[int] | None,
        months: set[int],
        day_rule: DayRule,
        weeks: set[int] | None,
        dows: set[int] | None,
        hours: set[int],
        minutes: set[int],
        seconds: set[int],
        or_days: bool,
        dow_nth: set[tuple[int, int]] | None = None,
    ) -> None:
        self.years = sorted(years) if years is not None else None
        self.months = sorted(months)
        self.day_rule = day_rule
        self.weeks = weeks
        self.dows = dows
        self.or_days = or_days
        #: crontab's ``5#2`` / ``5L`` items of the day-of-week field: (n or -1, weekday)
        self.dow_nth = dow_nth or None
        self.hours = sorted(hours)
        self.minutes = sorted(minutes)
        self.seconds = sorted(seconds)
        count = len(self.hours) * len(self.minutes) * len(self.seconds)
        self.tods: list[int] | None = None
        if count <= _FLAT_LIMIT:
            self.tods = sorted(
                h * 3600 + m * 60 + s
                for h in self.hours
                for m in self.minutes
                for s in self.seconds
            )
        self._month_cache: dict[tuple[int, int], tuple[list[int], frozenset[int]]] = {}
        self._day = -(10**9)
        self._day_ok = False

    # -- days ---------------------------------------------------------------------------
    def month_days(self, year: int, month: int) -> tuple[list[int], frozenset[int]]:
        """The allowed days of a month (the year and month themselves being allowed)."""
        key = (year, month)
        cached = self._month_cache.get(key)
        if cached is not None:
            return cached
        first_weekday, length = calendar.monthrange(year, month)
        rule, dows, weeks, dow_nth = self.day_rule, self.dows, self.weeks, self.dow_nth
        days = []
        for day in range(1, length + 1):
            weekday = (first_weekday + day - 1) % 7
            dom_ok = rule.matches(day, weekday, length)
            dow_ok = (
                dows is None
                or weekday in dows
                or (dow_nth is not None and nth_weekday_matches(dow_nth, day, weekday, length))
            )
            if self.or_days:
                ok = dom_ok or dow_ok
            else:
                ok = dom_ok and dow_ok
                if ok and weeks is not None:
                    ok = date(year, month, day).isocalendar()[1] in weeks
            if ok:
                days.append(day)
        result = (days, frozenset(days))
        if len(self._month_cache) >= _MONTH_CACHE:
            self._month_cache.clear()
        self._month_cache[key] = result
        return result

    def _next_month(self, year: int, month: int, limit: int) -> tuple[int, int] | None:
        """The first allowed (year, month) at or after the given one, up to ``limit``."""
        years, months = self.years, self.months
        while year <= limit:
            if years is not None:
                index = bisect_left(years, year)
                if index == len(years):
                    return None
                if years[index] != year:
                    year, month = years[index], 1
                    continue
            index = bisect_left(months, month)
            if index < len(months):
                return year, months[index]
            year, month = year + 1, 1
        return None

    def next_day(self, day_number: int, limit_year: int) -> int | None:
        """The first allowed day (days since 1970-01-01) at or after ``day_number``."""
        start = date.fromordinal(day_number + EPOCH_ORDINAL)
        year, month, day = start.year, start.month, start.day
        limit = min(limit_year, self.years[-1] if self.years is not None else _MAX_YEAR)
        while True:
            found = self._next_month(year, month, limit)
            if found is None:
                return None
            if found != (year, month):
                year, month = found
                day = 1
            days = self.month_days(year, month)[0]
            index = bisect_left(days, day)
            if index < len(days):
                return date(year, month, days[index]).toordinal() - EPOCH_ORDINAL
            if month == 12:
                year, month = year + 1, 1
            else:
                month += 1
            day = 1

    def day_allowed(self, day_number: int) -> bool:
        if day_number == self._day:
            return self._day_ok
        when = date.fromordinal(day_number + EPOCH_ORDINAL)
        year, month = when.year, when.month
        ok = (
            (self.years is None or year in self.years)
            and month in self.months
            and when.day in self.month_days(year, month)[1]
        )
        self._day, self._day_ok = day_number, ok
        return ok

    # -- times of day ---------------------------------------------------------------------
    def next_tod(self, second_of_day: int) -> int | None:
        """The first allowed second of the day at or after ``second_of_day``."""
        tods = self.tods
        if tods is not None:
            index = bisect_left(tods, second_of_day)
            return tods[index] if index < len(tods) else None
        hours, minutes, seconds = self.hours, self.minutes, self.seconds
        hour, rest = divmod(second_of_day, 3600)
        minute, second = divmod(rest, 60)
        index = bisect_left(hours, hour)
        if index == len(hours):
            return None
        if hours[index] == hour:
            m_index = bisect_left(minutes, minute)
            if m_index < len(minutes):
                if minutes[m_index] == minute:
                    s_index = bisect_left(seconds, second)
                    if s_index < len(seconds):
                        return hour * 3600 + minute * 60 + seconds[s_index]
                    m_index += 1
                if m_index < len(minutes):
                    return hour * 3600 + minutes[m_index] * 60 + seconds[0]
            index += 1
            if index == len(hours):
                return None
        return hours[index] * 3600 + minutes[0] * 60 + seconds[0]

    def next_wall(self, wall: int, limit_year: int) -> int | None:
        """The first matching wall second at or after ``wall``, or ``None`` before the limit."""
        day_number, second_of_day = divmod(wall, _DAY)
        if self.day_allowed(day_number):
            tod = self.next_tod(second_of_day)
            if tod is not None:
                return day_number * _DAY + tod
        following = self.next_day(day_number + 1, limit_year)
        if following is None:
            return None
        first = self.tods[0] if self.tods is not None else self.next_tod(0)
        assert first is not None
        return following * _DAY + first


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


def _crontab_text(expr: Any) -> str:
    if not isinstance(expr, str):
        raise TypeError(f"a crontab expression must be a string, not {expr!r}")
    return " ".join(expr.split())


def _limit_year(wall: int) -> int:
    year = date.fromordinal(max(1, wall // _DAY + EPOCH_ORDINAL)).year
    return min(year + _SEARCH_YEARS, _MAX_YEAR)


def _compile(fields: dict[str, str]) -> _Schedule:
    expressions: dict[str, str] = {}
    least = max((FIELD_NAMES.index(name) for name in fields), default=-1)
    for index, name in enumerate(FIELD_NAMES):
        if name in fields:
            expressions[name] = fields[name]
        elif index > least and least >= 0:
            expressions[name] = _DEFAULTS[name]
        else:
            expressions[name] = "*"
    year = expressions["year"]
    return _Schedule(
        years=None if year == "*" else parse_field("year", year),
        months=parse_field("month", expressions["month"]),
        day_rule=parse_day(expressions["day"]),
        weeks=None if expressions["week"] == "*" else parse_field("week", expressions["week"]),
        dows=None
        if expressions["day_of_week"] == "*"
        else parse_field("day_of_week", expressions["day_of_week"]),
        hours=parse_field("hour", expressions["hour"]),
        minutes=parse_field("minute", expressions["minute"]),
        seconds=parse_field("second", expressions["second"]),
        or_days=False,
    )


def _compile_crontab(text: str) -> _Schedule:
    if text.startswith("@"):
        expansion = _SHORTHANDS.get(text.lower())
        if expansion is None:
            raise CronExpressionError(
                "crontab",
                text,
                text,
                "is not a known shorthand (@yearly, @annually, @monthly, @weekly, @daily, "
                "@midnight, @hourly)",
            )
        text = expansion
    parts = text.split()
    if len(parts) == 5:
        second = "0"
    elif len(parts) == 6:
        second, parts = parts[0], parts[1:]
    else:
        raise CronExpressionError(
            "crontab",
            text,
            text,
            f"has {len(parts)} fields; expected 5 (minute hour day month day_of_week) "
            "or 6 (second minute hour day month day_of_week)",
        )
    minute, hour, dom, month, dow = parts
    # Weekdays come back numbered Monday 0 (crontab numbers Sunday 0).
    dows, dow_nth = parse_crontab_weekdays(dow)
    dom_star, dow_star = dom.startswith("*"), dow.startswith("*")
    return _Schedule(
        years=None,
        months=parse_field("month", month),
        day_rule=parse_crontab_day(dom),
        weeks=None,
        dows=None if dow_star and dows == set(range(7)) and not dow_nth else dows,
        hours=parse_field("hour", hour),
        minutes=parse_field("minute", minute),
        seconds=parse_field("second", second),
        or_days=not (dom_star or dow_star),
        dow_nth=dow_nth,
    )


__all__ += ["FIELD_RANGES"]

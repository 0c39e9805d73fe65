"""Cron expressions compiled: per-field values and crontab lines become a :class:`Schedule`
that finds the next matching wall time.

Data path: :class:`~asyncz.triggers.cron.CronTrigger` compiles its fields once here when it
is built (or restored from a store); each pass then asks its schedule for the next wall time.
"""

from __future__ import annotations

import calendar
from bisect import bisect_left
from datetime import date
from typing import Any

from asyncz.triggers._cronfields import (
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
)

__all__ = [
    "FIELD_NAMES",
    "Schedule",
    "compile_crontab",
    "compile_fields",
    "crontab_text",
    "limit_year",
]

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


class Schedule:
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


def crontab_text(expr: Any) -> str:
    if not isinstance(expr, str):
        raise TypeError(f"a crontab expression must be a string, not {expr!r}")
    return " ".join(expr.split())


def limit_year(wall: int) -> int:
    year = date.fromordinal(max(1, wall // _DAY + EPOCH_ORDINAL)).year
    return min(year + _SEARCH_YEARS, _MAX_YEAR)


def compile_fields(fields: dict[str, str]) -> Schedule:
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
    return Schedule(
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


def compile_crontab(text: str) -> Schedule:
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
    return Schedule(
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

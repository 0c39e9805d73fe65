"""Parsing of cron field expressions into sets of allowed values.

Data path: when a cron trigger is built (``add_task``) or restored from a store, each
field goes through here once; passes use the parsed sets.

Every error is a :class:`CronExpressionError` naming the field and the offending token.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = [
    "FIELD_RANGES",
    "CronExpressionError",
    "DayRule",
    "parse_crontab_day",
    "parse_crontab_weekdays",
    "parse_day",
    "parse_field",
]

#: field name -> (minimum, maximum)
FIELD_RANGES: dict[str, tuple[int, int]] = {
    "year": (1970, 9999),
    "month": (1, 12),
    "day": (1, 31),
    "week": (1, 53),
    "day_of_week": (0, 6),
    "hour": (0, 23),
    "minute": (0, 59),
    "second": (0, 59),
}

MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_ORDINALS = {"1st": 1, "2nd": 2, "3rd": 3, "4th": 4, "5th": 5, "last": -1}
_NTH_WEEKDAY = re.compile(r"^(1st|2nd|3rd|4th|5th|last)\s+([a-z]{3})[a-z]*$")
_NEAREST_WEEKDAY = re.compile(r"^(\d{1,2})w$")  # 15w: the weekday nearest the 15th


class CronExpressionError(ValueError):
    """An invalid cron field expression; names the field and the bad token."""

    def __init__(self, field_name: str, expression: str, token: str, reason: str) -> None:
        self.field = field_name
        self.expression = expression
        self.token = token
        self.reason = reason
        super().__init__(
            f"Invalid expression for field {field_name!r}: {token!r} {reason}"
            + (f" (in {expression!r})" if token != expression else "")
        )

    def __str__(self) -> str:
        return str(self.args[0])


def _names_for(field_name: str, weekday_numbering: str) -> dict[str, int]:
    if field_name == "month":
        return {name: number for number, name in enumerate(MONTH_NAMES, 1)}
    if field_name == "day_of_week":
        if weekday_numbering == "crontab":  # 0 = Sunday
            return {name: (number + 1) % 7 for number, name in enumerate(WEEKDAY_NAMES)}
        return {name: number for number, name in enumerate(WEEKDAY_NAMES)}
    return {}


def parse_field(
    field_name: str,
    expression: str,
    *,
    bounds: tuple[int, int] | None = None,
    weekday_numbering: str = "asyncz",
) -> set[int]:
    """The set of values ``expression`` allows for ``field_name``.

    Accepts ``*``, ``*/n``, ``a``, ``a-b``, ``a-b/n``, ``a/n`` and comma lists of those;
    month and weekday names (``jan``, ``mon-fri``). Weekday ranges may wrap (``fri-mon``).
    ``weekday_numbering="crontab"`` reads weekday numbers as crontab does (0 and 7 are Sunday).
    """
    lo, hi = bounds or FIELD_RANGES[field_name]
    names = _names_for(field_name, weekday_numbering)
    text = expression.strip().lower()
    if not text:
        raise CronExpressionError(field_name, expression, expression, "is empty")
    values: set[int] = set()
    cyclic = field_name == "day_of_week" and weekday_numbering != "crontab"
    period = hi - lo + 1

    def number(token: str, item: str) -> int:
        if token in names:
            return names[token]
        try:
            value = int(token)
        except ValueError:
            raise CronExpressionError(
                field_name, expression, item, "is not a number" + _name_hint(names)
            ) from None
        if not lo <= value <= hi:
            raise CronExpressionError(field_name, expression, item, f"is out of range {lo}-{hi}")
        return value

    for item in text.split(","):
        item = item.strip()
        if not item:
            raise CronExpressionError(field_name, expression, expression, "has an empty item")
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            try:
                step = int(step_text)
            except ValueError:
                raise CronExpressionError(
                    field_name, expression, item, "has a step that is not a number"
                ) from None
            if step < 1:
                raise CronExpressionError(
                    field_name, expression, item, "has a step that is not positive"
                )
        if base == "*":
            start, end = lo, hi
        elif "-" in base.lstrip("-"):
            first, _, last = base.partition("-")
            start, end = number(first.strip(), item), number(last.strip(), item)
            if end < start and not cyclic:
                raise CronExpressionError(
                    field_name, expression, item, "is a range whose start is after its end"
                )
        else:
            start = number(base, item)
            end = hi if slash else start
        if end >= start:
            values.update(range(start, end + 1, step))
        else:  # a wrapping weekday range, like fri-mon
            span = (end - start) % period
            values.update(lo + (start - lo + k) % period for k in range(0, span + 1, step))
    return values


def _name_hint(names: dict[str, int]) -> str:
    if not names:
        return ""
    return " or a name (" + ", ".join(sorted(names, key=names.__getitem__)) + ")"


@dataclass
class DayRule:
    """What the ``day`` field allows: plain days, ``last``, ``<nth> <weekday>``, ``15w``, ``lw``."""

    days: set[int] = field(default_factory=set)
    last: bool = False
    #: (n, weekday) with n in 1..5, or -1 for the last such weekday; weekday 0 = Monday
    nth_weekdays: set[tuple[int, int]] = field(default_factory=set)
    #: days d whose nearest weekday (Monday-Friday, within the month) is allowed: ``15w``
    nearest: set[int] = field(default_factory=set)
    #: the last weekday (Monday-Friday) of the month: ``lw``
    last_weekday: bool = False

    def matches(self, day: int, weekday: int, days_in_month: int) -> bool:
        if day in self.days or (self.last and day == days_in_month):
            return True
        if nth_weekday_matches(self.nth_weekdays, day, weekday, days_in_month):
            return True
        if self.last_weekday and weekday < 5 and day == _nearest(days_in_month, day, weekday):
            return True
        return any(day == _nearest(target, day, weekday, days_in_month) for target in self.nearest)


def nth_weekday_matches(
    wanted: set[tuple[int, int]], day: int, weekday: int, days_in_month: int
) -> bool:
    """Whether ``day`` (a ``weekday``, 0 = Monday) is one of the ``(n, weekday)`` items."""
    for n, wanted_weekday in wanted:
        if weekday == wanted_weekday and (
            (n > 0 and (day - 1) // 7 + 1 == n) or (n < 0 and day + 7 > days_in_month)
        ):
            return True
    return False


def _nearest(target: int, day: int, weekday: int, days_in_month: int | None = None) -> int:
    """The weekday (Mon-Fri) of the month nearest to ``target`` (clamped to the month's
    length), without leaving the month: Saturday -> Friday (Monday on the 1st), Sunday ->
    Monday (Friday on the last day). ``day`` is any day of the month and ``weekday`` its
    weekday (0 = Monday); ``days_in_month`` defaults to ``target`` (for the ``lw`` rule)."""
    length = target if days_in_month is None else days_in_month
    target = min(target, length)
    target_weekday = (weekday + target - day) % 7
    if target_weekday == 5:  # Saturday
        return target - 1 if target > 1 else target + 2
    if target_weekday == 6:  # Sunday
        return target + 1 if target < length else target - 2
    return target


def _day_item(rule: DayRule, item: str, expression: str, raw: str) -> bool:
    """Add a ``l`` / ``lw`` / ``15w`` item to ``rule``; ``False`` when it is none of them."""
    if item in ("l", "last"):
        rule.last = True
        return True
    if item == "lw":
        rule.last_weekday = True
        return True
    match = _NEAREST_WEEKDAY.match(item)
    if match:
        target = int(match.group(1))
        if not 1 <= target <= 31:
            raise CronExpressionError("day", expression, raw.strip(), "is out of range 1-31")
        rule.nearest.add(target)
        return True
    return False


def parse_day(expression: str) -> DayRule:
    """Parse the ``day`` field: the common syntax plus ``last``, ``2nd fri``, ``last sun``,
    ``15w`` (the weekday nearest the 15th) and ``lw`` (the last weekday of the month)."""
    rule = DayRule()
    plain: list[str] = []
    for raw in expression.split(","):
        item = " ".join(raw.strip().lower().split())
        if _day_item(rule, item, expression, raw):
            continue
        match = _NTH_WEEKDAY.match(item)
        if match:
            ordinal, weekday = match.groups()
            if weekday not in WEEKDAY_NAMES:
                raise CronExpressionError(
                    "day", expression, raw.strip(), "does not name a weekday (mon ... sun)"
                )
            rule.nth_weekdays.add((_ORDINALS[ordinal], WEEKDAY_NAMES.index(weekday)))
            continue
        if item.split(" ")[0] in _ORDINALS and " " in item:
            raise CronExpressionError(
                "day", expression, raw.strip(), "is not '<1st..5th|last> <weekday>'"
            )
        plain.append(raw)
    if plain:
        if not all(p.strip() for p in plain):
            raise CronExpressionError("day", expression, expression, "has an empty item")
        rule.days = parse_field("day", ",".join(plain))
    return rule


def parse_crontab_day(expression: str) -> DayRule:
    """The day-of-month field of a crontab: the common syntax plus ``L`` (the last day),
    ``LW`` (the last weekday) and ``15W`` (the weekday nearest the 15th)."""
    rule = DayRule()
    plain = [
        raw
        for raw in expression.split(",")
        if raw.strip().lower() == "last"
        or not _day_item(rule, raw.strip().lower(), expression, raw)
    ]
    if plain:
        rule.days = parse_field("day", ",".join(plain))
    return rule


def parse_crontab_weekdays(expression: str) -> tuple[set[int], set[tuple[int, int]]]:
    """The day-of-week field of a crontab (0 and 7 = Sunday).

    Returns the plain weekdays (Monday = 0) and the ``(n, weekday)`` items: ``5#2`` (the
    second Friday, n = 2) and ``5L`` (the last Friday, n = -1); names work too (``fri#2``).
    """
    nth: set[tuple[int, int]] = set()
    plain: list[str] = []
    for raw in expression.split(","):
        item = raw.strip().lower()
        base, hash_sign, count = item.partition("#")
        if hash_sign:
            if not count.isdigit() or not 1 <= int(count) <= 5:
                raise CronExpressionError(
                    "day_of_week", expression, raw.strip(), "needs an occurrence 1-5 after '#'"
                )
            nth.add((int(count), _crontab_weekday(base, expression, raw)))
        elif len(item) > 1 and item.endswith("l"):
            nth.add((-1, _crontab_weekday(item[:-1], expression, raw)))
        else:
            plain.append(raw)
    weekdays: set[int] = set()
    if plain:
        values = parse_field(
            "day_of_week", ",".join(plain), bounds=(0, 7), weekday_numbering="crontab"
        )
        weekdays = {(value - 1) % 7 for value in values}  # crontab's Sunday 0 -> Monday 0
    return weekdays, nth


def _crontab_weekday(token: str, expression: str, raw: str) -> int:
    """One crontab weekday (0-7 or a name) as a Monday-0 weekday."""
    values = parse_field("day_of_week", token or raw, bounds=(0, 7), weekday_numbering="crontab")
    if len(values) != 1 or token in ("*", ""):
        raise CronExpressionError(
            "day_of_week", expression, raw.strip(), "needs a single weekday before '#' or 'L'"
        )
    return (values.pop() - 1) % 7


def describe(values: Iterable[int]) -> str:
    return ",".join(str(v) for v in sorted(values))

"""Property tests of the cron trigger against independent oracles.

* crontab expressions x zones x start instants, against ``cronsim`` iterating *naive wall
  time* (pure calendar matching, no DST logic), with the documented DST rule applied on the
  test side: a wall time in a gap fires at the first instant after the gap, a repeated wall
  time fires once (its first occurrence);
* the Quartz/cronsim extensions of ``from_crontab`` (``L``, ``LW`` in the day field; ``5#2``,
  ``5L`` in the day-of-week field) against ``cronsim`` the same way, and ``15W`` (which
  cronsim lacks) against ``croniter``;
* the extended field syntax of ``CronTrigger(...)`` (names, ``last``, ``2nd fri``, ISO weeks,
  Monday = 0) against a brute-force day-by-day matcher written from the generated value sets.

Each runs a fixed number of examples, derandomized (same examples on every run), with
``print_blob=True`` so a failure prints the blob that reproduces it.
"""

from __future__ import annotations

import calendar
import itertools
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter
from cronsim import CronSim, CronSimError
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from asyncz.triggers import CronTrigger

UTC = timezone.utc
ZONES = [
    "UTC",
    "Europe/London",
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Kathmandu",
    "Pacific/Apia",
    "America/Sao_Paulo",
]
PROPERTY = settings(
    max_examples=2000,
    derandomize=True,
    print_blob=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
RESULTS = 5


# -- generated crontab expressions ---------------------------------------------------------
def field_item(lo: int, hi: int) -> st.SearchStrategy[str]:
    value = st.integers(lo, hi)

    def ranged(pair: tuple[int, int]) -> str:
        a, b = sorted(pair)
        return f"{a}-{b}"

    return st.one_of(
        value.map(str),
        st.tuples(value, value).map(ranged),
        # a-b/n with a < b (cronsim reads "a-a/n" as "a/n", unlike Vixie cron)
        st.tuples(st.integers(lo, hi - 1), st.integers(1, hi - lo), st.integers(1, hi - lo)).map(
            lambda t: f"{t[0]}-{min(hi, t[0] + t[1])}/{t[2]}"
        ),
        st.integers(1, max(1, (hi - lo) // 2 + 1)).map(lambda n: f"*/{n}"),
    )


def field(lo: int, hi: int, star_weight: int = 3) -> st.SearchStrategy[str]:
    items = st.lists(field_item(lo, hi), min_size=1, max_size=3).map(",".join)
    return st.one_of(*([st.just("*")] * star_weight), items)


crontab_expressions = st.tuples(
    field(0, 59, 1),
    field(0, 23, 2),
    field(1, 31, 3),
    field(1, 12, 4),
    field(0, 7, 4),
).map(" ".join)
six_field_expressions = st.tuples(field(0, 59, 1), crontab_expressions).map(" ".join)


def extended_day_field() -> st.SearchStrategy[str]:
    item = st.one_of(st.just("L"), st.just("LW"), field_item(1, 31))
    return st.one_of(st.just("*"), st.lists(item, min_size=1, max_size=3).map(",".join))


def extended_dow_field() -> st.SearchStrategy[str]:
    weekday = st.integers(0, 7)
    item = st.one_of(
        st.tuples(weekday, st.integers(1, 5)).map(lambda t: f"{t[0]}#{t[1]}"),
        weekday.map(lambda d: f"{d}L"),
        field_item(0, 7),
    )
    return st.one_of(st.just("*"), st.lists(item, min_size=1, max_size=3).map(",".join))


extended_expressions = st.tuples(
    field(0, 59, 1),
    field(0, 23, 2),
    extended_day_field(),
    field(1, 12, 4),
    extended_dow_field(),
).map(" ".join)
# croniter reads some ranges its own way ("0-0" as "*"): plain value lists only
nearest_weekday_expressions = st.tuples(
    st.sets(st.integers(0, 59), min_size=1, max_size=3).map(lambda v: ",".join(map(str, v))),
    st.sets(st.integers(0, 23), min_size=1, max_size=3).map(lambda v: ",".join(map(str, v))),
    st.integers(1, 31).map(lambda d: f"{d}W"),
    st.one_of(
        st.just("*"),
        st.sets(st.integers(1, 12), min_size=1, max_size=4).map(lambda v: ",".join(map(str, v))),
    ),
).map(lambda t: f"{t[0]} {t[1]} {t[2]} {t[3]} *")
zones = st.sampled_from(ZONES)
start_instants = st.integers(
    int(datetime(1975, 1, 1, tzinfo=UTC).timestamp()),
    int(datetime(2037, 12, 31, tzinfo=UTC).timestamp()),
)


@cache
def transitions(zone_name: str, year: int) -> tuple[int, ...]:
    """Instants (to the hour) at which the zone's UTC offset changes during ``year``."""
    zone = ZoneInfo(zone_name)
    t = int(datetime(year, 1, 1, tzinfo=UTC).timestamp())
    end = int(datetime(year + 1, 1, 1, tzinfo=UTC).timestamp())
    found = []
    offset = datetime.fromtimestamp(t, zone).utcoffset()
    while t < end:
        t += 3600
        current = datetime.fromtimestamp(t, zone).utcoffset()
        if current != offset:
            found.append(t)
            offset = current
    return tuple(found)


@st.composite
def zone_and_start(draw: st.DrawFn) -> tuple[str, int]:
    """A zone and a start instant, half of the time within 36 hours before a DST change."""
    zone_name = draw(zones)
    if draw(st.booleans()):
        year = draw(st.integers(1976, 2036))
        found = transitions(zone_name, year)
        if found:
            return zone_name, draw(st.sampled_from(found)) - draw(st.integers(0, 36 * 3600))
    return zone_name, draw(start_instants)


# -- the oracle ------------------------------------------------------------------------------
def exists(naive: datetime, zone: ZoneInfo) -> bool:
    aware = naive.replace(tzinfo=zone)
    return aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == naive


def resolve(naive: datetime, zone: ZoneInfo) -> datetime:
    """The documented DST rule, written independently of the implementation."""
    if exists(naive, zone):
        return naive.replace(tzinfo=zone, fold=0)
    probe = naive.replace(second=0)  # transitions fall on whole minutes
    while not exists(probe, zone):
        probe += timedelta(minutes=1)
    return probe.replace(tzinfo=zone)


def croniter_walls(expr: str, after: datetime) -> Iterator[datetime]:
    iterator = croniter(expr, after)
    while True:
        yield iterator.get_next(datetime)


def oracle(
    expr: str, zone: ZoneInfo, start: datetime, count: int, walls: Any = CronSim
) -> list[datetime]:
    """The first ``count`` fires at or after ``start``: naive wall times from ``walls``
    (cronsim, or croniter for what cronsim lacks), each resolved by the DST rule."""
    local = start.astimezone(zone).replace(tzinfo=None, microsecond=0)
    results: list[datetime] = []
    iterator = iter(walls(expr, local - timedelta(seconds=1)))
    for _ in range(200_000):
        try:
            wall = next(iterator)
        except StopIteration:
            break
        fire = resolve(wall, zone)
        if fire < start or (results and fire <= results[-1]):
            continue
        results.append(fire)
        if len(results) == count:
            break
    return results


def run(trigger: CronTrigger, start: datetime, count: int) -> list[datetime]:
    results: list[datetime] = []
    previous = None
    for _ in range(count):
        fire = trigger.get_next_trigger_time(UTC, previous, start)
        if fire is None:
            break
        results.append(fire)
        previous = fire
    return results


def check_against_cronsim(expr: str, zone_name: str, start_ts: int, walls: Any = CronSim) -> None:
    zone = ZoneInfo(zone_name)
    if walls is CronSim:
        try:
            CronSim(expr, datetime(2000, 1, 1))
        except CronSimError:
            assume(False)
    start = datetime.fromtimestamp(start_ts, UTC)
    expected = oracle(expr, zone, start, RESULTS, walls)
    assume(expected)
    actual = run(CronTrigger.from_crontab(expr, timezone=zone_name), start, len(expected))
    assert [a.timestamp() for a in actual] == [e.timestamp() for e in expected], (
        expr,
        zone_name,
        start,
        actual,
        expected,
    )
    # invariants: strictly increasing, and results are in the trigger's zone
    assert all(a < b for a, b in itertools.pairwise(actual))
    assert all(
        a.tzinfo is not None and a.utcoffset() == a.astimezone(zone).utcoffset() for a in actual
    )


@PROPERTY
@given(expr=crontab_expressions, where=zone_and_start())
def test_crontab_agrees_with_cronsim(expr: str, where: tuple[str, int]) -> None:
    check_against_cronsim(expr, *where)


@settings(PROPERTY, max_examples=2000)
@given(expr=six_field_expressions, where=zone_and_start())
def test_six_field_crontab_agrees_with_cronsim(expr: str, where: tuple[str, int]) -> None:
    check_against_cronsim(expr, *where)


@settings(PROPERTY, max_examples=1500)
@given(expr=extended_expressions, where=zone_and_start())
def test_crontab_extensions_agree_with_cronsim(expr: str, where: tuple[str, int]) -> None:
    check_against_cronsim(expr, *where)


@settings(PROPERTY, max_examples=500)
@given(expr=nearest_weekday_expressions, where=zone_and_start())
def test_nearest_weekday_agrees_with_croniter(expr: str, where: tuple[str, int]) -> None:
    check_against_cronsim(expr, *where, walls=croniter_walls)


# -- the extended field syntax against a brute-force matcher ---------------------------------
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]


@st.composite
def field_spec(draw: st.DrawFn) -> tuple[dict[str, str], dict[str, object]]:
    """Field expressions for CronTrigger plus the value sets they mean."""
    fields: dict[str, str] = {}
    sets: dict[str, object] = {}
    if draw(st.booleans()):
        months = draw(st.sets(st.integers(1, 12), min_size=1, max_size=12))
        fields["month"] = ",".join(
            MONTHS[m - 1] if draw(st.booleans()) else str(m) for m in sorted(months)
        )
        sets["month"] = months
    day_kind = draw(st.sampled_from(["none", "plain", "last", "nth", "range", "nearest", "lw"]))
    if day_kind == "plain":
        days = draw(st.sets(st.integers(1, 31), min_size=1, max_size=6))
        fields["day"], sets["day"] = ",".join(map(str, sorted(days))), ("plain", days)
    elif day_kind == "range":
        a, b = sorted(draw(st.tuples(st.integers(1, 31), st.integers(1, 31))))
        step = draw(st.integers(1, 7))
        fields["day"], sets["day"] = f"{a}-{b}/{step}", ("plain", set(range(a, b + 1, step)))
    elif day_kind == "last":
        fields["day"], sets["day"] = "last", ("last", None)
    elif day_kind == "nearest":
        target = draw(st.integers(1, 31))
        fields["day"], sets["day"] = f"{target}W", ("nearest", target)
    elif day_kind == "lw":
        fields["day"], sets["day"] = "LW", ("lw", None)
    elif day_kind == "nth":
        n = draw(st.sampled_from(["1st", "2nd", "3rd", "4th", "5th", "last"]))
        weekday = draw(st.integers(0, 6))
        fields["day"], sets["day"] = f"{n} {WEEKDAYS[weekday]}", ("nth", (n, weekday))
    if draw(st.booleans()):
        dows = draw(st.sets(st.integers(0, 6), min_size=1, max_size=7))
        as_names = draw(st.booleans())
        fields["day_of_week"] = ",".join(WEEKDAYS[d] if as_names else str(d) for d in sorted(dows))
        sets["day_of_week"] = dows
    if draw(st.integers(0, 5)) == 0:
        weeks = draw(st.sets(st.integers(1, 53), min_size=1, max_size=20))
        fields["week"], sets["week"] = ",".join(map(str, sorted(weeks))), weeks
    hours = draw(st.sets(st.integers(0, 23), min_size=1, max_size=4))
    minutes = draw(st.sets(st.integers(0, 59), min_size=1, max_size=4))
    fields["hour"], sets["hour"] = ",".join(map(str, sorted(hours))), hours
    fields["minute"], sets["minute"] = ",".join(map(str, sorted(minutes))), minutes
    return fields, sets


def day_matches(day: date, sets: dict[str, object]) -> bool:
    months = sets.get("month")
    if isinstance(months, set) and day.month not in months:
        return False
    dows = sets.get("day_of_week")
    if isinstance(dows, set) and day.weekday() not in dows:
        return False
    weeks = sets.get("week")
    if isinstance(weeks, set) and day.isocalendar()[1] not in weeks:
        return False
    spec = sets.get("day")
    if spec is None:
        return True
    assert isinstance(spec, tuple)
    kind, value = spec
    length = calendar.monthrange(day.year, day.month)[1]
    if kind == "plain":
        assert isinstance(value, set)
        return day.day in value
    if kind == "last":
        return day.day == length
    if kind in ("nearest", "lw"):
        month_days = [date(day.year, day.month, d) for d in range(1, length + 1)]
        weekdays = [d for d in month_days if d.weekday() < 5]
        if kind == "lw":
            return day == weekdays[-1]
        # the weekday of the month closest to the target (clamped to the month's length)
        target = min(int(value), length)  # type: ignore[call-overload]
        return day == min(weekdays, key=lambda d: abs(d.day - target))
    assert isinstance(value, tuple)
    n, weekday = value
    if day.weekday() != weekday:
        return False
    if n == "last":
        return day.day + 7 > length
    return (day.day - 1) // 7 + 1 == int(n[0])


def brute_force(sets: dict[str, object], start: datetime, horizon_days: int) -> list[datetime]:
    results: list[datetime] = []
    hours = sorted(sets["hour"])  # type: ignore[call-overload]
    minutes = sorted(sets["minute"])  # type: ignore[call-overload]
    day = start.date()
    for _ in range(horizon_days):
        if day_matches(day, sets):
            for h in hours:
                for m in minutes:
                    fire = datetime(day.year, day.month, day.day, h, m, tzinfo=UTC)
                    if fire >= start:
                        results.append(fire)
                        if len(results) == RESULTS:
                            return results
        day += timedelta(days=1)
    return results


@PROPERTY
@given(spec=field_spec(), start_ts=start_instants)
def test_field_syntax_agrees_with_brute_force(
    spec: tuple[dict[str, str], dict[str, object]], start_ts: int
) -> None:
    fields, sets = spec
    start = datetime.fromtimestamp(start_ts, UTC)
    horizon = 3 * 366
    expected = brute_force(sets, start, horizon)
    trigger = CronTrigger(timezone="UTC", **fields)
    actual = run(trigger, start, RESULTS)
    end = datetime.combine(start.date() + timedelta(days=horizon), datetime.min.time(), UTC)
    actual_in_horizon = [a for a in actual if a < end]
    assert actual_in_horizon == expected[: len(actual_in_horizon)] or not expected
    assert actual_in_horizon == expected, (fields, start, actual, expected)
    for fire in actual:  # every result matches, even beyond the horizon
        assert day_matches(fire.date(), sets), (fields, fire)
        assert fire.hour in sets["hour"]
        assert fire.minute in sets["minute"]
        assert fire.second == 0

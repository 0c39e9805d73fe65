"""CronTrigger: field syntax, defaults, errors, crontab, DST, bounds, description."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from asyncz.triggers import CronExpressionError, CronTrigger, UnknownOptionError

UTC = timezone.utc


def fires(trigger: CronTrigger, start: datetime, count: int = 5) -> list[datetime]:
    result, previous = [], None
    for _ in range(count):
        fire = trigger.get_next_trigger_time(UTC, previous, start)
        if fire is None:
            break
        result.append(fire)
        previous = fire
    return result


def at(*args: int, tz: timezone | ZoneInfo = UTC) -> datetime:
    return datetime(*args, tzinfo=tz)


# -- field syntax ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("minute", "expected"),
    [
        ("*", [0, 1, 2]),
        ("*/20", [0, 20, 40]),
        ("7", [7, 7, 7]),
        ("10-12", [10, 11, 12]),
        ("10-40/15", [10, 25, 40]),
        ("50/4", [50, 54, 58]),
        ("5,3,59", [3, 5, 59]),
        ("1-2,30", [1, 2, 30]),
    ],
)
def test_minute_syntax(minute: str, expected: list[int]) -> None:
    trigger = CronTrigger(minute=minute, timezone="UTC")
    assert [f.minute for f in fires(trigger, at(2026, 1, 1), 3)] == expected


def test_least_significant_field_defaults_lower_fields_to_minimum() -> None:
    assert fires(CronTrigger(hour=9, timezone="UTC"), at(2026, 1, 1, 10), 2) == [
        at(2026, 1, 2, 9),
        at(2026, 1, 3, 9),
    ]
    # month given: day defaults to 1, time to midnight
    assert fires(CronTrigger(month="jun", timezone="UTC"), at(2026, 1, 1), 2) == [
        at(2026, 6, 1),
        at(2027, 6, 1),
    ]
    # no fields at all: every second
    assert fires(CronTrigger(timezone="UTC"), at(2026, 1, 1), 2) == [
        at(2026, 1, 1),
        at(2026, 1, 1, 0, 0, 1),
    ]


def test_month_and_weekday_names_monday_is_zero() -> None:
    trigger = CronTrigger(month="feb-mar", day_of_week="0", hour=8, timezone="UTC")
    result = fires(trigger, at(2026, 1, 1), 3)
    assert [f.date().isoformat() for f in result] == ["2026-02-02", "2026-02-09", "2026-02-16"]
    assert all(f.weekday() == 0 for f in result)
    named = CronTrigger(day_of_week="sat,SUN", hour=8, timezone="UTC")
    assert {f.weekday() for f in fires(named, at(2026, 1, 1), 6)} == {5, 6}


def test_weekday_range_may_wrap() -> None:
    trigger = CronTrigger(day_of_week="fri-mon", hour=0, timezone="UTC")
    assert {f.weekday() for f in fires(trigger, at(2026, 1, 1), 12)} == {4, 5, 6, 0}


def test_last_day_of_month() -> None:
    trigger = CronTrigger(day="last", timezone="UTC")
    assert [f.date().isoformat() for f in fires(trigger, at(2028, 1, 15), 3)] == [
        "2028-01-31",
        "2028-02-29",
        "2028-03-31",
    ]


def test_nth_and_last_weekday() -> None:
    second_friday = CronTrigger(day="2nd fri", hour=12, timezone="UTC")
    assert [f.date().isoformat() for f in fires(second_friday, at(2026, 1, 1), 3)] == [
        "2026-01-09",
        "2026-02-13",
        "2026-03-13",
    ]
    last_sunday = CronTrigger(day="last sun", timezone="UTC")
    assert [f.date().isoformat() for f in fires(last_sunday, at(2026, 1, 1), 3)] == [
        "2026-01-25",
        "2026-02-22",
        "2026-03-29",
    ]
    fifth_monday = CronTrigger(day="5th mon", timezone="UTC")
    assert [f.date().isoformat() for f in fires(fifth_monday, at(2026, 1, 1), 2)] == [
        "2026-03-30",
        "2026-06-29",
    ]


def test_day_list_mixes_numbers_last_and_nth() -> None:
    trigger = CronTrigger(day="1,last,3rd wed", timezone="UTC")
    assert [f.day for f in fires(trigger, at(2026, 4, 1), 4)] == [1, 15, 30, 1]


def test_iso_week_and_year_fields() -> None:
    trigger = CronTrigger(year="2027", week=1, day_of_week="mon", timezone="UTC")
    assert fires(trigger, at(2026, 1, 1), 3) == [at(2027, 1, 4)]


def test_impossible_date_is_exhausted_not_a_hang() -> None:
    trigger = CronTrigger(month=2, day=30, timezone="UTC")
    assert trigger.get_next_trigger_time(UTC, None, at(2026, 1, 1)) is None


# -- errors ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "field", "token"),
    [
        ({"hour": "25"}, "hour", "25"),
        ({"minute": "*/0"}, "minute", "*/0"),
        ({"minute": "1,x"}, "minute", "x"),
        ({"day_of_week": "mon-frx"}, "day_of_week", "mon-frx"),
        ({"month": "13"}, "month", "13"),
        ({"day": "6th fri"}, "day", "6th fri"),
        ({"day": "2nd fro"}, "day", "2nd fro"),
        ({"second": "30-10"}, "second", "30-10"),
        ({"year": "1900"}, "year", "1900"),
        ({"week": ""}, "week", ""),
    ],
)
def test_invalid_expressions_name_field_and_token(
    kwargs: dict[str, str], field: str, token: str
) -> None:
    with pytest.raises(CronExpressionError) as info:
        CronTrigger(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field
    assert info.value.token == token
    assert repr(field) in str(info.value)
    assert repr(token) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_unknown_keyword_names_key_and_closest() -> None:
    with pytest.raises(UnknownOptionError) as info:
        CronTrigger(secnds=5)  # type: ignore[call-arg]
    assert "'secnds'" in str(info.value)
    assert "did you mean 'second'" in str(info.value)
    assert isinstance(info.value, TypeError)


def test_bad_field_type() -> None:
    with pytest.raises(TypeError):
        CronTrigger(hour=1.5)  # type: ignore[arg-type]


# -- crontab ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("dow", "weekday"), [("0", 6), ("7", 6), ("1", 0), ("5", 4), ("sun", 6)])
def test_crontab_weekday_numbers(dow: str, weekday: int) -> None:
    trigger = CronTrigger.from_crontab(f"0 9 * * {dow}", timezone="UTC")
    assert {f.weekday() for f in fires(trigger, at(2026, 1, 1), 3)} == {weekday}


def test_crontab_weekday_range_and_step() -> None:
    work = CronTrigger.from_crontab("0 9 * * 1-5", timezone="UTC")
    assert {f.weekday() for f in fires(work, at(2026, 1, 1), 10)} == {0, 1, 2, 3, 4}
    weekend = CronTrigger.from_crontab("0 9 * * 6-7", timezone="UTC")
    assert {f.weekday() for f in fires(weekend, at(2026, 1, 1), 4)} == {5, 6}


def test_crontab_day_of_month_or_day_of_week() -> None:
    # both restricted: either matches (the 13th, or any Friday)
    trigger = CronTrigger.from_crontab("0 0 13 * 5", timezone="UTC")
    days = [f.date() for f in fires(trigger, at(2026, 2, 1), 6)]
    assert all(d.day == 13 or d.weekday() == 4 for d in days)
    assert [d.isoformat() for d in days] == [
        "2026-02-06",
        "2026-02-13",
        "2026-02-20",
        "2026-02-27",
        "2026-03-06",
        "2026-03-13",
    ]
    # one starts with '*': both must match (odd days that are Fridays)
    both = CronTrigger.from_crontab("0 0 */2 * 5", timezone="UTC")
    assert all(f.day % 2 == 1 and f.weekday() == 4 for f in fires(both, at(2026, 1, 1), 5))


@pytest.mark.parametrize(
    ("shorthand", "expected"),
    [
        ("@yearly", at(2027, 1, 1)),
        ("@annually", at(2027, 1, 1)),
        ("@monthly", at(2026, 6, 1)),
        ("@weekly", at(2026, 5, 17)),  # a Sunday
        ("@daily", at(2026, 5, 16)),
        ("@midnight", at(2026, 5, 16)),
        ("@hourly", at(2026, 5, 15, 13)),
    ],
)
def test_crontab_shorthands(shorthand: str, expected: datetime) -> None:
    trigger = CronTrigger.from_crontab(shorthand, timezone="UTC")
    assert trigger.get_next_trigger_time(UTC, None, at(2026, 5, 15, 12, 30)) == expected


def test_crontab_six_fields_put_seconds_first() -> None:
    trigger = CronTrigger.from_crontab("*/20 0 9 * * *", timezone="UTC")
    assert fires(trigger, at(2026, 1, 1), 3) == [
        at(2026, 1, 1, 9, 0, 0),
        at(2026, 1, 1, 9, 0, 20),
        at(2026, 1, 1, 9, 0, 40),
    ]


@pytest.mark.parametrize("expr", ["* * * *", "* * * * * * *", "", "@reboot", "@often"])
def test_crontab_bad_shape(expr: str) -> None:
    with pytest.raises(CronExpressionError) as info:
        CronTrigger.from_crontab(expr)
    assert info.value.field == "crontab"


def test_crontab_bad_field_is_named() -> None:
    with pytest.raises(CronExpressionError) as info:
        CronTrigger.from_crontab("0 24 * * *")
    assert info.value.field == "hour"
    assert info.value.token == "24"
    with pytest.raises(CronExpressionError) as info:
        CronTrigger.from_crontab("0 0 * * 8")
    assert info.value.field == "day_of_week"


@pytest.mark.parametrize(
    ("expr", "days"),
    [
        # November 2025: the 1st is a Saturday, the 15th a Saturday, the 30th a Sunday
        ("0 0 L * *", ["2025-11-30", "2025-12-31", "2026-01-31"]),
        ("0 0 LW * *", ["2025-11-28", "2025-12-31", "2026-01-30"]),
        ("0 0 15W * *", ["2025-11-14", "2025-12-15", "2026-01-15"]),
        ("0 0 1W * *", ["2025-11-03", "2025-12-01", "2026-01-01"]),  # never back into October
        ("0 0 31W * *", ["2025-11-28", "2025-12-31", "2026-01-30"]),  # clamped to the month
        ("0 0 * * 5#2", ["2025-11-14", "2025-12-12", "2026-01-09"]),
        ("0 0 * * fri#2", ["2025-11-14", "2025-12-12", "2026-01-09"]),
        ("0 0 * * 0#1,7#5", ["2025-11-02", "2025-11-30", "2025-12-07"]),
        ("0 0 * * 5L", ["2025-11-28", "2025-12-26", "2026-01-30"]),
        ("0 0 * * 7L", ["2025-11-30", "2025-12-28", "2026-01-25"]),
        ("0 0 1,L * *", ["2025-11-01", "2025-11-30", "2025-12-01"]),
        # both restricted: either matches (Vixie cron, as for plain values)
        ("0 0 L * 1#1", ["2025-11-03", "2025-11-30", "2025-12-01"]),
    ],
)
def test_crontab_quartz_extensions(expr: str, days: list[str]) -> None:
    trigger = CronTrigger.from_crontab(expr, timezone="UTC")
    assert [f.date().isoformat() for f in fires(trigger, at(2025, 11, 1), 3)] == days
    assert CronTrigger(crontab=expr.lower(), timezone="UTC") == CronTrigger.from_crontab(
        expr.lower(), timezone="UTC"
    )


def test_field_form_nearest_and_last_weekday() -> None:
    assert fires(CronTrigger(day="15W", timezone="UTC"), at(2025, 11, 1), 1) == [at(2025, 11, 14)]
    assert fires(CronTrigger(day="lw", timezone="UTC"), at(2025, 11, 1), 1) == [at(2025, 11, 28)]
    assert fires(CronTrigger(day="last fri", timezone="UTC"), at(2025, 11, 1), 1) == [
        at(2025, 11, 28)
    ]


@pytest.mark.parametrize(
    ("expr", "field", "token"),
    [
        ("0 0 32W * *", "day", "32W"),
        ("0 0 LX * *", "day", "lx"),
        ("0 0 * * 5#6", "day_of_week", "5#6"),
        ("0 0 * * 5#", "day_of_week", "5#"),
        ("0 0 * * *#2", "day_of_week", "*#2"),
        ("0 0 * * 8L", "day_of_week", "8"),
        ("0 0 * * L", "day_of_week", "l"),
    ],
)
def test_crontab_bad_extensions_are_named(expr: str, field: str, token: str) -> None:
    with pytest.raises(CronExpressionError) as info:
        CronTrigger.from_crontab(expr)
    assert info.value.field == field
    assert info.value.token.lower() == token.lower()


def test_crontab_option_is_from_crontab() -> None:
    trigger = CronTrigger(crontab="*/5 * * * *", timezone="UTC")
    assert trigger == CronTrigger.from_crontab("*/5 * * * *", timezone="UTC")
    assert fires(trigger, at(2026, 1, 1, 0, 1), 2) == [at(2026, 1, 1, 0, 5), at(2026, 1, 1, 0, 10)]
    # crontab numbering in the crontab, asyncz numbering in the fields: 0 is Sunday / Monday
    sunday = CronTrigger(crontab="0 9 * * 0", timezone="UTC")
    monday = CronTrigger(day_of_week=0, hour=9, timezone="UTC")
    assert fires(sunday, at(2026, 1, 1), 1)[0].weekday() == 6
    assert fires(monday, at(2026, 1, 1), 1)[0].weekday() == 0


def test_crontab_option_with_fields_is_an_error() -> None:
    with pytest.raises(TypeError, match="either crontab or the fields"):
        CronTrigger(hour=3, crontab="0 3 * * *")


def test_crontab_option_through_add_task_and_create_trigger() -> None:
    from asyncz.schedulers.asyncio import AsyncIOScheduler
    from asyncz.testing import functions
    from asyncz.triggers import create_trigger

    assert create_trigger("cron", crontab="0 3 * * *") == CronTrigger.from_crontab("0 3 * * *")
    scheduler = AsyncIOScheduler(timezone="UTC")
    task = scheduler.add_task(functions.noop, "cron", crontab="30 4 * * 1-5", id="c")
    assert task.trigger == CronTrigger.from_crontab("30 4 * * 1-5")
    scheduler.start(paused=True)
    try:
        when = scheduler.get_task("c").next_run_time  # type: ignore[union-attr]
        assert (when.hour, when.minute, when.weekday() < 5) == (4, 30, True)
    finally:
        scheduler.shutdown()


# -- time zones and DST ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("zone", "day", "wall", "expected_utc"),
    [
        # spring forward 02:00 -> 03:00: 02:30 does not exist, fires at 03:00 local
        ("America/New_York", (2026, 3, 8), (2, 30), (2026, 3, 8, 7, 0)),
        ("Europe/London", (2026, 3, 29), (1, 30), (2026, 3, 29, 1, 0)),
        # Lord Howe springs forward by 30 minutes at 02:00
        ("Australia/Lord_Howe", (2026, 10, 4), (2, 15), (2026, 10, 3, 15, 30)),
        # Sao Paulo (2018) skipped midnight: 00:00 -> 01:00
        ("America/Sao_Paulo", (2018, 11, 4), (0, 0), (2018, 11, 4, 3, 0)),
    ],
)
def test_wall_time_in_gap_fires_at_end_of_gap(
    zone: str, day: tuple[int, int, int], wall: tuple[int, int], expected_utc: tuple[int, ...]
) -> None:
    trigger = CronTrigger(hour=wall[0], minute=wall[1], timezone=zone)
    start = datetime(*day, tzinfo=ZoneInfo(zone)) - timedelta(hours=1)
    fire = trigger.get_next_trigger_time(UTC, None, start)
    assert fire == datetime(*expected_utc, tzinfo=UTC)
    assert fire is not None
    assert fire.tzinfo == ZoneInfo(zone)


def test_apia_skipped_day_fires_once_at_the_transition() -> None:
    # Samoa skipped 2011-12-30 entirely; a daily 09:00 job fires at the start of the 31st
    trigger = CronTrigger(hour=9, timezone="Pacific/Apia")
    result = fires(trigger, at(2011, 12, 29, 0), 3)
    local = [f.astimezone(ZoneInfo("Pacific/Apia")) for f in result]
    assert [f.strftime("%Y-%m-%d %H:%M") for f in local] == [
        "2011-12-29 09:00",
        "2011-12-31 00:00",
        "2011-12-31 09:00",
    ]


@pytest.mark.parametrize(
    ("zone", "day", "wall"),
    [
        ("America/New_York", (2026, 11, 1), (1, 30)),
        ("Europe/London", (2026, 10, 25), (1, 15)),
        ("Australia/Lord_Howe", (2026, 4, 5), (1, 45)),
    ],
)
def test_repeated_wall_time_fires_once(
    zone: str, day: tuple[int, int, int], wall: tuple[int, int]
) -> None:
    tz = ZoneInfo(zone)
    trigger = CronTrigger(hour=wall[0], minute=wall[1], timezone=zone)
    result = fires(trigger, datetime(*day, tzinfo=tz) - timedelta(hours=1), 2)
    first, second = result
    assert first.fold == 0
    assert (first.hour, first.minute) == wall
    assert second - first > timedelta(hours=23)  # the next day, not the repeat


def test_every_twenty_minutes_through_fall_back_does_not_repeat() -> None:
    tz = ZoneInfo("America/New_York")
    trigger = CronTrigger.from_crontab("*/20 * * * *", timezone=tz)
    result = fires(trigger, datetime(2026, 11, 1, 0, 50, tzinfo=tz), 6)
    walls = [f.astimezone(tz).strftime("%H:%M") for f in result]
    assert walls == ["01:00", "01:20", "01:40", "02:00", "02:20", "02:40"]
    assert result[3].astimezone(UTC) - result[2].astimezone(UTC) == timedelta(hours=1, minutes=20)


def test_scheduler_zone_is_used_when_trigger_has_none() -> None:
    trigger = CronTrigger(hour=9)
    tokyo = ZoneInfo("Asia/Tokyo")
    fire = trigger.get_next_trigger_time(tokyo, None, at(2026, 1, 1))
    assert fire == datetime(2026, 1, 1, 9, tzinfo=tokyo)
    fire_utc = trigger.get_next_trigger_time(UTC, None, at(2026, 1, 1))
    assert fire_utc == at(2026, 1, 1, 9)


def test_zone_derived_from_aware_start_at() -> None:
    paris = ZoneInfo("Europe/Paris")
    trigger = CronTrigger(hour=9, start_at=datetime(2026, 1, 1, tzinfo=paris))
    assert trigger.timezone == paris
    assert trigger.get_next_trigger_time(UTC, None, at(2025, 1, 1)) == datetime(
        2026, 1, 1, 9, tzinfo=paris
    )


# -- bounds, previous_time, jitter ---------------------------------------------------------------
def test_start_and_end_bounds() -> None:
    trigger = CronTrigger(
        hour=12, start_at=at(2026, 1, 3), end_at=at(2026, 1, 5, 12), timezone="UTC"
    )
    assert fires(trigger, at(2026, 1, 1), 10) == [
        at(2026, 1, 3, 12),
        at(2026, 1, 4, 12),
        at(2026, 1, 5, 12),
    ]


def test_end_before_start_is_an_error() -> None:
    with pytest.raises(ValueError, match="before start_at"):
        CronTrigger(start_at=at(2026, 1, 2), end_at=at(2026, 1, 1))


def test_previous_time_is_exclusive_now_is_inclusive() -> None:
    trigger = CronTrigger(minute="*/5", timezone="UTC")
    assert trigger.get_next_trigger_time(UTC, None, at(2026, 1, 1, 0, 5)) == at(2026, 1, 1, 0, 5)
    assert trigger.get_next_trigger_time(UTC, at(2026, 1, 1, 0, 5)) == at(2026, 1, 1, 0, 10)
    with_micro = at(2026, 1, 1, 0, 5) + timedelta(microseconds=1)
    assert trigger.get_next_trigger_time(UTC, None, with_micro) == at(2026, 1, 1, 0, 10)


def test_jitter_stays_before_next_slot_and_does_not_accumulate() -> None:
    trigger = CronTrigger(minute="*", timezone="UTC", jitter=120)
    previous = None
    for index in range(200):
        fire = trigger.get_next_trigger_time(UTC, previous, at(2026, 1, 1))
        assert fire is not None
        slot = at(2026, 1, 1) + timedelta(minutes=index)
        assert slot <= fire < slot + timedelta(minutes=1)
        previous = fire


def test_jitter_never_passes_end_at() -> None:
    end = at(2026, 1, 1, 0, 0, 10)
    trigger = CronTrigger(second=10, timezone="UTC", jitter=30, end_at=end)
    for _ in range(50):
        assert trigger.get_next_trigger_time(UTC, None, at(2026, 1, 1)) == end


# -- description -------------------------------------------------------------------------------
def test_str_and_repr() -> None:
    trigger = CronTrigger(day_of_week="mon-fri", hour=9, timezone="Europe/Paris")
    assert str(trigger) == "cron[day_of_week='mon-fri', hour='9']"
    assert repr(trigger) == (
        "<CronTrigger (day_of_week='mon-fri', hour='9', timezone='Europe/Paris')>"
    )
    assert str(CronTrigger.from_crontab("0 9 * * 1-5")) == "cron['0 9 * * 1-5']"


def test_equality() -> None:
    assert CronTrigger(hour=9, timezone="UTC") == CronTrigger(hour="9", timezone="UTC")
    assert CronTrigger(hour=9, timezone="UTC") != CronTrigger(hour=10, timezone="UTC")
    assert CronTrigger(hour=9) != CronTrigger(hour=9, timezone="UTC")

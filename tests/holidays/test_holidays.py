"""asyncz-holidays: a third-party trigger installed through its entry point."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from typing import Any

import pytest

from asyncz.registry import registry
from asyncz.triggers import (
    CronTrigger,
    UnknownOptionError,
    create_trigger,
    trigger_from_data,
    trigger_to_data,
)
from asyncz_holidays import HolidaysTrigger

UTC = timezone.utc


def fires(trigger: HolidaysTrigger, start: datetime, count: int) -> list[datetime]:
    result, previous = [], None
    for _ in range(count):
        fire = trigger.get_next_trigger_time(UTC, previous, start)
        if fire is None:
            break
        result.append(fire)
        previous = fire
    return result


def test_resolved_by_alias_through_the_installed_entry_point() -> None:
    assert registry.resolve("trigger", "holidays") is HolidaysTrigger
    entry = registry.entry("trigger", "holidays")
    assert entry.distribution == "asyncz-holidays"
    trigger = create_trigger("holidays", trigger="cron", trigger_options={"hour": 9})
    assert isinstance(trigger, HolidaysTrigger)


def test_skips_dates_and_weekdays_in_the_trigger_zone() -> None:
    trigger = HolidaysTrigger(
        trigger="cron",
        trigger_options={"hour": 9, "timezone": "Europe/Paris"},
        dates=["2026-12-25", date(2027, 1, 1)],
        weekdays=["sat", "sun"],
    )
    result = fires(trigger, datetime(2026, 12, 24, 12, tzinfo=UTC), 5)
    assert [f.date().isoformat() for f in result] == [
        "2026-12-28",
        "2026-12-29",
        "2026-12-30",
        "2026-12-31",
        "2027-01-04",
    ]
    assert all(f.hour == 9 for f in result)


def test_wraps_an_instance() -> None:
    trigger = HolidaysTrigger(trigger=CronTrigger(hour=0, timezone="UTC"), weekdays=[6])
    assert all(f.weekday() != 6 for f in fires(trigger, datetime(2026, 1, 1, tzinfo=UTC), 14))


def test_date_is_judged_in_its_own_zone() -> None:
    # 23:30 UTC on the 24th is already the 25th in Tokyo
    trigger = HolidaysTrigger(
        trigger=CronTrigger(hour=23, minute=30, timezone="UTC"),
        dates=["2026-12-25"],
        timezone="Asia/Tokyo",
    )
    result = fires(trigger, datetime(2026, 12, 24, tzinfo=UTC), 1)
    assert result == [datetime(2026, 12, 25, 23, 30, tzinfo=UTC)]


def test_everything_excluded_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    trigger = HolidaysTrigger(
        trigger="cron",
        trigger_options={"month": 12, "day": 25, "timezone": "UTC"},
        dates=[f"{year}-12-25" for year in range(2026, 2100)],
        max_skips=50,
    )
    asked = 0
    real = CronTrigger.get_next_trigger_time

    def counting(self: Any, *args: Any) -> Any:
        nonlocal asked
        asked += 1
        return real(self, *args)

    monkeypatch.setattr(CronTrigger, "get_next_trigger_time", counting)
    assert trigger.get_next_trigger_time(UTC, None, datetime(2026, 1, 1, tzinfo=UTC)) is None
    assert asked == 51  # the first fire time and max_skips more, all excluded
    with pytest.raises(ValueError, match="all seven"):
        HolidaysTrigger(weekdays=range(7))


def test_state_round_trips_as_plain_data() -> None:
    trigger = HolidaysTrigger(
        trigger="cron", trigger_options={"hour": 9}, dates=["2026-12-25"], weekdays=["sun"]
    )
    data = trigger_to_data(trigger)
    assert data["type"] == "holidays"
    assert data["state"]["trigger"] == {"type": "cron", "state": CronTrigger(hour=9).__getstate__()}
    restored = trigger_from_data(json.loads(json.dumps(data)))
    assert restored == trigger
    assert str(restored) == "holidays[cron[hour='9']; dates=2026-12-25; weekdays=sun]"


def test_errors() -> None:
    with pytest.raises(UnknownOptionError, match="did you mean 'weekdays'"):
        HolidaysTrigger(weekday=["sun"])  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="dates"):
        HolidaysTrigger(dates=["25/12/2026"])
    with pytest.raises(ValueError, match="weekdays"):
        HolidaysTrigger(weekdays=["funday"])

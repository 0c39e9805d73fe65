"""Zone names and naive datetimes: one reading everywhere (triggers, tasks, settings)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from asyncz.exceptions import ConfigurationError
from asyncz.schedulers.asyncio import AsyncIOScheduler
from asyncz.timeutil import timezone_name, to_timezone
from asyncz.triggers import CronTrigger, DateTrigger, IntervalTrigger

UTC = timezone.utc


# -- zone names --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("GMT+2", "write '+02:00' (or 'Etc/GMT-2') for UTC+02:00, or '-02:00' for UTC-02:00"),
        ("gmt-5", "write '-05:00' (or 'Etc/GMT+5') for UTC-05:00, or '+05:00' for UTC+05:00"),
        ("UTC+3", "write '+03:00' (or 'Etc/GMT-3') for UTC+03:00"),
        ("GMT+0530", "write '+05:30' for UTC+05:30, or '-05:30' for UTC-05:30"),
    ],
)
def test_posix_style_offsets_are_refused_with_the_fix(name: str, hint: str) -> None:
    with pytest.raises(ValueError, match="is ambiguous") as info:
        to_timezone(name)
    assert hint in str(info.value)
    with pytest.raises(ValueError, match="is ambiguous"):
        CronTrigger(hour=1, timezone=name)
    with pytest.raises(ConfigurationError) as config_error:
        AsyncIOScheduler(timezone=name)
    assert "asyncz.timezone" in str(config_error.value)
    assert hint in str(config_error.value)


@pytest.mark.parametrize(
    ("name", "offset"),
    [
        ("+02:00", timedelta(hours=2)),
        ("-0530", -timedelta(hours=5, minutes=30)),
        ("+2", timedelta(hours=2)),
        ("UTC+02:00", timedelta(hours=2)),  # what timezone_name writes
        ("GMT-05:30", -timedelta(hours=5, minutes=30)),
        ("Etc/GMT+2", -timedelta(hours=2)),  # IANA's own meaning
        ("Etc/GMT-2", timedelta(hours=2)),
        ("GMT+0", timedelta(0)),
        ("GMT", timedelta(0)),
    ],
)
def test_unambiguous_offsets_and_iana_names(name: str, offset: timedelta) -> None:
    zone = to_timezone(name)
    assert datetime(2030, 1, 1, tzinfo=zone).utcoffset() == offset
    assert to_timezone(timezone_name(zone)).utcoffset(None) == zone.utcoffset(None)


def test_out_of_range_offsets() -> None:
    for name in ("+24:00", "GMT+99", "UTC+01:75"):
        with pytest.raises(ValueError, match="out of range"):
            to_timezone(name)


# -- naive datetimes -------------------------------------------------------------------------
def other_zone() -> ZoneInfo:
    """A zone whose offset differs from the machine's local zone (what naive used to mean)."""
    from asyncz.timeutil import local_timezone

    for name in ("Asia/Tokyo", "America/New_York"):
        zone = ZoneInfo(name)
        probe = datetime(2030, 1, 1, 12)
        if (
            probe.replace(tzinfo=zone).utcoffset()
            != probe.replace(tzinfo=local_timezone()).utcoffset()
        ):
            return zone
    raise AssertionError("unreachable")


NAIVE = datetime(2030, 1, 1, 12, 0)


def test_naive_datetimes_are_read_in_the_scheduler_zone_everywhere() -> None:
    zone = other_zone()
    expected = NAIVE.replace(tzinfo=zone)
    scheduler = AsyncIOScheduler(timezone=zone)
    from asyncz.tasks import Task
    from asyncz.testing import functions

    scheduler.add_task(functions.noop, "date", run_at=NAIVE, id="date")
    scheduler.add_task(functions.noop, "interval", minutes=5, start_at=NAIVE, id="interval")
    scheduler.add_task(functions.noop, "cron", minute="*/5", start_at=NAIVE, id="cron")
    scheduler.add_task(functions.noop, "cron", minute="*/5", end_at=NAIVE, id="end")
    added = scheduler.add_task(functions.noop, "interval", hours=1, next_run_time=NAIVE, id="nrt")
    assert added.next_run_time == expected
    scheduler.add_task(
        Task(functions.noop, trigger="interval", hours=1, next_run_time=NAIVE, id="t")
    )
    scheduler.start(paused=True)
    try:
        times = {t.id: t.next_run_time for t in scheduler.get_tasks()}
        for task_id in ("date", "interval", "cron", "nrt", "t"):
            assert times[task_id] == expected, task_id
        end_trigger = scheduler.get_task("end").trigger  # type: ignore[union-attr]
        after_end = expected + timedelta(minutes=1)
        assert end_trigger.get_next_trigger_time(zone, None, after_end) is None
        assert end_trigger.get_next_trigger_time(zone, None, expected) == expected
        later = NAIVE + timedelta(days=1)
        scheduler.update_task("nrt", next_run_time=later)
        assert scheduler.get_task("nrt").next_run_time == later.replace(tzinfo=zone)  # type: ignore[union-attr]
    finally:
        scheduler.shutdown()


def test_task_defaults_timezone_is_the_trigger_zone_for_naive_values() -> None:
    zone = other_zone()
    scheduler = AsyncIOScheduler(timezone="UTC", task_defaults={"timezone": zone})
    from asyncz.testing import functions

    task = scheduler.add_task(functions.noop, "interval", hours=1, next_run_time=NAIVE)
    assert task.next_run_time == NAIVE.replace(tzinfo=zone)


def test_the_trigger_zone_wins_over_the_scheduler_zone() -> None:
    from asyncz.testing import functions

    scheduler = AsyncIOScheduler(timezone=other_zone())
    paris = ZoneInfo("Europe/Paris")
    task = scheduler.add_task(
        functions.noop, "cron", hour=12, timezone="Europe/Paris", next_run_time=NAIVE
    )
    assert task.next_run_time == NAIVE.replace(tzinfo=paris)
    trigger = DateTrigger(run_at=NAIVE, timezone="Europe/Paris")
    assert trigger.run_at == NAIVE.replace(tzinfo=paris)
    assert trigger.get_next_trigger_time(UTC, None) == NAIVE.replace(tzinfo=paris)


def test_a_standalone_trigger_reads_naive_values_in_the_zone_it_is_asked_about() -> None:
    tokyo, new_york = ZoneInfo("Asia/Tokyo"), ZoneInfo("America/New_York")
    date = DateTrigger(run_at=NAIVE)
    assert date.run_at == NAIVE  # kept naive: no zone decided yet
    assert date.get_next_trigger_time(tokyo, None) == NAIVE.replace(tzinfo=tokyo)
    assert date.get_next_trigger_time(new_york, None) == NAIVE.replace(tzinfo=new_york)
    interval = IntervalTrigger(hours=1, start_at=NAIVE, end_at=NAIVE + timedelta(hours=2))
    fires, previous = [], None
    while (previous := interval.get_next_trigger_time(tokyo, previous, None)) is not None:
        fires.append(previous)
    assert fires == [NAIVE.replace(tzinfo=tokyo) + timedelta(hours=k) for k in range(3)]
    cron = CronTrigger(minute=0, start_at=NAIVE, end_at=NAIVE + timedelta(hours=1), jitter=1)
    first = cron.get_next_trigger_time(new_york, None, datetime(2029, 1, 1, tzinfo=UTC))
    start = NAIVE.replace(tzinfo=new_york)
    assert first is not None
    assert start <= first <= start + timedelta(seconds=1)
    with pytest.raises(ValueError, match="before start_at"):
        IntervalTrigger(hours=1, start_at=NAIVE, end_at=NAIVE - timedelta(hours=1))


def test_naive_bounds_stay_naive_in_a_persistent_store(tmp_path: object) -> None:
    from pathlib import Path

    from asyncz.stores.file import FileStore
    from asyncz.testing import functions

    assert isinstance(tmp_path, Path)
    zone = other_zone()
    first = AsyncIOScheduler(timezone=zone, stores={"default": FileStore(tmp_path)})
    first.add_task(functions.noop, "interval", hours=1, start_at=NAIVE, id="i")
    first.start(paused=True)
    first.shutdown()
    second = AsyncIOScheduler(timezone=zone, stores={"default": FileStore(tmp_path)})
    second.start(paused=True)
    try:
        task = second.get_task("i")
        assert task is not None
        assert isinstance(task.trigger, IntervalTrigger)
        assert task.trigger.start_at == NAIVE
        assert task.next_run_time == NAIVE.replace(tzinfo=zone)
    finally:
        second.shutdown()

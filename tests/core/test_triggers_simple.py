"""DateTrigger, IntervalTrigger, ShutdownTrigger, and jitter bounds."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncz.triggers import DateTrigger, IntervalTrigger, ShutdownTrigger, UnknownOptionError

UTC = timezone.utc
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_date_fires_once() -> None:
    trigger = DateTrigger(T0)
    assert trigger.get_next_trigger_time(UTC, None, T0 - timedelta(days=1)) == T0
    assert trigger.get_next_trigger_time(UTC, T0, T0) is None


def test_date_defaults_to_now_and_reads_naive_in_zone() -> None:
    before = datetime.now(UTC)
    trigger = DateTrigger()
    assert before <= trigger.run_at <= datetime.now(UTC)
    paris = DateTrigger("2026-07-01 10:00", timezone="Europe/Paris")
    assert paris.run_at == datetime(2026, 7, 1, 8, tzinfo=UTC)
    assert str(DateTrigger(datetime(2026, 1, 1, 8, tzinfo=UTC))) == "date[2026-01-01 08:00:00 UTC]"


def test_date_unknown_option() -> None:
    with pytest.raises(UnknownOptionError, match="did you mean 'run_at'"):
        DateTrigger(run_date=T0)  # type: ignore[call-arg]


def test_interval_grid() -> None:
    trigger = IntervalTrigger(minutes=2, start_at=T0)
    assert str(trigger) == "interval[0:02:00]"
    assert trigger.get_next_trigger_time(UTC, None, T0 - timedelta(hours=1)) == T0
    assert trigger.get_next_trigger_time(UTC, None, T0 + timedelta(seconds=1)) == T0 + timedelta(
        minutes=2
    )
    assert trigger.get_next_trigger_time(UTC, T0 + timedelta(minutes=2)) == T0 + timedelta(
        minutes=4
    )


def test_interval_default_start_is_one_interval_after_creation() -> None:
    before = datetime.now(UTC)
    trigger = IntervalTrigger(seconds=30)
    assert before + timedelta(seconds=30) <= trigger.start_at
    assert trigger.start_at <= datetime.now(UTC) + timedelta(seconds=30)


def test_interval_end_at() -> None:
    trigger = IntervalTrigger(hours=1, start_at=T0, end_at=T0 + timedelta(hours=2))
    assert trigger.get_next_trigger_time(UTC, T0 + timedelta(hours=1)) == T0 + timedelta(hours=2)
    assert trigger.get_next_trigger_time(UTC, T0 + timedelta(hours=2)) is None


@pytest.mark.parametrize("kwargs", [{"minutes": -1}, {"hours": 1, "hours_": 0}])
def test_interval_negative_is_an_error(kwargs: dict[str, int]) -> None:
    with pytest.raises((ValueError, TypeError)):
        IntervalTrigger(**kwargs)


@pytest.mark.parametrize("kwargs", [{}, {"seconds": 0}])
def test_interval_without_length_is_every_second(kwargs: dict[str, int]) -> None:
    # As in Asyncz and APScheduler 3.
    assert IntervalTrigger(**kwargs).interval == timedelta(seconds=1)


def test_interval_unknown_keyword_names_closest() -> None:
    with pytest.raises(UnknownOptionError) as info:
        IntervalTrigger(secnds=5)  # type: ignore[call-arg]
    assert info.value.key == "secnds"
    assert info.value.suggestion == "seconds"
    assert "did you mean 'seconds'" in str(info.value)


def test_interval_is_elapsed_time_across_dst() -> None:
    ny = ZoneInfo("America/New_York")
    start = datetime(2026, 3, 7, 12, tzinfo=ny)
    trigger = IntervalTrigger(hours=24, start_at=start)
    fire = trigger.get_next_trigger_time(UTC, start)
    assert fire is not None
    assert fire.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=24)
    assert fire.hour == 13  # the wall clock moved, the elapsed time did not


def test_interval_scheduler_zone_when_none() -> None:
    trigger = IntervalTrigger(hours=1, start_at=T0)
    tokyo = ZoneInfo("Asia/Tokyo")
    fire = trigger.get_next_trigger_time(tokyo, None, T0)
    assert fire == T0
    assert fire is not None
    assert fire.tzinfo is tokyo


@settings(max_examples=2000, derandomize=True, print_blob=True, deadline=None)
@given(
    interval=st.integers(1, 10_000),
    jitter=st.floats(0, 20_000, allow_nan=False),
    steps=st.integers(1, 30),
    end_offset=st.one_of(st.none(), st.integers(0, 300_000)),
)
def test_interval_jitter_bounds_and_no_accumulation(
    interval: int, jitter: float, steps: int, end_offset: int | None
) -> None:
    end = T0 + timedelta(seconds=end_offset) if end_offset is not None else None
    trigger = IntervalTrigger(seconds=interval, start_at=T0, end_at=end, jitter=jitter)
    previous = None
    for k in range(steps):
        fire = trigger.get_next_trigger_time(UTC, previous, T0)
        slot = T0 + timedelta(seconds=interval * k)
        if end is not None and slot > end:
            assert fire is None
            return
        assert fire is not None
        assert slot <= fire <= slot + timedelta(seconds=jitter)
        assert fire < slot + timedelta(seconds=interval)  # never into the next slot
        if end is not None:
            assert fire <= end
        previous = fire


def test_shutdown_never_fires() -> None:
    trigger = ShutdownTrigger()
    assert trigger.get_next_trigger_time(UTC, None, T0) is None
    assert str(trigger) == "shutdown[]"
    assert trigger == ShutdownTrigger()
    with pytest.raises(UnknownOptionError):
        ShutdownTrigger(when="now")  # type: ignore[call-arg]


def test_jitter_validation() -> None:
    with pytest.raises(ValueError, match="jitter"):
        IntervalTrigger(seconds=1, jitter=-1)
    with pytest.raises(TypeError, match="jitter"):
        IntervalTrigger(seconds=1, jitter="5")  # type: ignore[arg-type]

"""task.scheduler and task.get_run_times, as Asyncz code uses them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from asyncz.schedulers import AsyncIOScheduler
from asyncz.tasks import Task
from asyncz.triggers import CronTrigger, IntervalTrigger

UTC = timezone.utc


def job() -> None: ...


def test_task_scheduler_is_the_scheduler_it_was_added_to() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    task = scheduler.add_task(job, "interval", minutes=1, id="a")
    assert task.scheduler is scheduler
    with scheduler:
        assert scheduler.get_task("a").scheduler is scheduler  # type: ignore[union-attr]
    loose = Task(job, trigger=IntervalTrigger(minutes=1))
    assert loose.scheduler is None
    loose.scheduler = scheduler  # binding an unbound task (Asyncz's stores do this) is fine
    task.scheduler = scheduler  # so is assigning the same one again
    with pytest.raises(AttributeError, match="read-only"):
        task.scheduler = AsyncIOScheduler(timezone=UTC)
    assert task.scheduler is scheduler


def test_get_run_times_lists_the_due_runs_up_to_now() -> None:
    start = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
    task = Task(job, trigger=IntervalTrigger(minutes=10, start_at=start))
    task.next_run_time = start
    now = start + timedelta(minutes=25)
    expected = [start, start + timedelta(minutes=10), start + timedelta(minutes=20)]
    assert task.get_run_times(now) == expected
    assert task.get_run_times(UTC, now) == expected  # Asyncz's (timezone, now)
    assert task.get_run_times(start - timedelta(seconds=1)) == []
    task.next_run_time = None
    assert task.get_run_times(now) == []


def test_get_run_times_uses_the_zone_for_a_trigger_without_one() -> None:
    paris = ZoneInfo("Europe/Paris")
    task = Task(job, trigger=CronTrigger(hour=9))
    task.next_run_time = datetime(2024, 3, 1, 9, 0, tzinfo=paris)
    runs = task.get_run_times("Europe/Paris", datetime(2024, 3, 3, 10, 0, tzinfo=paris))
    assert [r.astimezone(paris).day for r in runs] == [1, 2, 3]
    assert {r.astimezone(paris).hour for r in runs} == {9}
    with pytest.raises(TypeError, match="timezone, now"):
        task.get_run_times()

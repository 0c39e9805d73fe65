"""pytz zones, given as a zone or carried by a datetime, behave as their zoneinfo namesake."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

pytz = pytest.importorskip("pytz")

from asyncz.schedulers import AsyncIOScheduler  # noqa: E402
from asyncz.tasks import Task  # noqa: E402
from asyncz.triggers import CronTrigger, DateTrigger, IntervalTrigger  # noqa: E402

UTC = timezone.utc
LONDON = ZoneInfo("Europe/London")


def test_cron_takes_the_zone_of_a_pytz_start_at_across_the_year() -> None:
    london = pytz.timezone("Europe/London")
    trigger = CronTrigger(hour=4, start_at=london.localize(datetime(2024, 1, 1)))
    assert trigger.timezone == LONDON
    # Every day of 2024, DST changes included: 04:00 on London's clock.
    now = datetime(2024, 1, 1, tzinfo=UTC)
    previous = None
    for _ in range(366):
        fire = trigger.get_next_trigger_time(UTC, previous, now)
        assert fire is not None
        local = fire.astimezone(LONDON)
        assert (local.hour, local.minute) == (4, 0), fire
        if previous is not None:
            assert local.date() - previous.astimezone(LONDON).date() == timedelta(days=1)
        previous = fire
    assert previous is not None and previous.astimezone(LONDON).date().isoformat() == "2024-12-31"
    summer = datetime(2024, 7, 1, tzinfo=UTC)
    assert trigger.get_next_trigger_time(UTC, None, summer) == datetime(2024, 7, 1, 3, tzinfo=UTC)


@pytest.mark.parametrize("name", ["Europe/London", "America/New_York", "Australia/Sydney"])
def test_pytz_zone_given_as_timezone(name: str) -> None:
    zone = pytz.timezone(name)
    cron = CronTrigger(hour=2, minute=30, timezone=zone)
    assert cron.timezone == ZoneInfo(name)
    interval = IntervalTrigger(hours=1, timezone=zone)
    assert interval.timezone == ZoneInfo(name)
    run_at = zone.localize(datetime(2024, 6, 1, 8, 0))
    date = DateTrigger(run_at=run_at)
    assert date.run_at == run_at and date.run_at.tzinfo == ZoneInfo(name)
    scheduler = AsyncIOScheduler(timezone=zone)
    assert scheduler.timezone == ZoneInfo(name)


def test_a_fixed_offset_and_utc_from_pytz() -> None:
    assert CronTrigger(hour=1, timezone=pytz.utc).timezone is UTC
    fixed = pytz.FixedOffset(90)
    at = datetime(2024, 6, 1, 8, 0, tzinfo=fixed)
    assert DateTrigger(run_at=at).run_at == at
    assert DateTrigger(run_at=at).run_at.utcoffset() == timedelta(minutes=90)


def test_pytz_next_run_time_is_kept_as_the_same_instant() -> None:
    london = pytz.timezone("Europe/London")
    when = london.localize(datetime(2024, 10, 27, 1, 30), is_dst=False)  # the second 01:30
    task = Task(print, trigger=CronTrigger(hour=4), next_run_time=when)
    kept = task.next_run_time
    assert isinstance(kept, datetime) and kept.tzinfo == LONDON
    # (== between zones is always False inside a repeated hour, by PEP 495: compare instants)
    assert kept.timestamp() == when.timestamp() and kept.utcoffset() == timedelta(0)


async def test_a_running_scheduler_fires_a_pytz_date() -> None:
    import asyncio

    fired: list[datetime] = []
    london = pytz.timezone("Europe/London")
    scheduler = AsyncIOScheduler(timezone=UTC)
    soon = london.normalize(datetime.now(UTC).astimezone(london) + timedelta(seconds=0.2))
    async with scheduler:
        scheduler.add_task(lambda: fired.append(datetime.now(UTC)), DateTrigger(run_at=soon))
        for _ in range(500):
            if fired:
                break
            await asyncio.sleep(0.01)
    assert fired and fired[0] >= soon


def test_asyncz_does_not_import_or_require_pytz() -> None:
    code = (
        "import sys, asyncz.schedulers, asyncz.triggers, asyncz.stores.file, asyncz.settings\n"
        "asyncz.schedulers.AsyncIOScheduler(timezone='Europe/London')\n"
        "assert 'pytz' not in sys.modules, 'asyncz imported pytz'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    pyproject = Path(__file__).parents[2] / "asyncz_core" / "pyproject.toml"
    dependencies = pyproject.read_text().split("dependencies", 1)[1].split("]", 1)[0]
    assert "pytz" not in dependencies

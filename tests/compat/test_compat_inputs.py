"""Inputs Asyncz accepted with a sensible meaning; options it silently ignored stay refused."""

from __future__ import annotations

import os
import re
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from asyncz.exceptions import ConfigurationError
from asyncz.schedulers import AsyncIOScheduler
from asyncz.stores.file import FileStore
from asyncz.triggers import DateTrigger, IntervalTrigger

UTC = timezone.utc


def tick() -> None: ...


def test_interval_without_a_length_is_every_second() -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    trigger = IntervalTrigger(start_at=start)
    assert trigger.interval == timedelta(seconds=1)
    assert trigger.get_next_trigger_time(UTC, start) == start + timedelta(seconds=1)
    scheduler = AsyncIOScheduler(timezone=UTC)
    task = scheduler.add_task(tick, "interval")
    assert isinstance(task.trigger, IntervalTrigger)
    assert task.trigger.interval == timedelta(seconds=1)
    with pytest.raises(ValueError, match="positive"):
        IntervalTrigger(seconds=-1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2022-11-3", datetime(2022, 11, 3, tzinfo=UTC)),
        ("2022-1-5 9:30:00", datetime(2022, 1, 5, 9, 30, tzinfo=UTC)),
        ("2022-11-03 18:40:00.5+02:00", None),
        # what Python 3.10's fromisoformat refuses: 9 fraction digits, an offset without colon
        ("2022-11-03T18:40:00.500000999+0200", None),
    ],
)
def test_date_trigger_reads_asyncz_date_strings(text: str, expected: datetime | None) -> None:
    trigger = DateTrigger(run_at=text, timezone="UTC")
    if expected is None:
        expected = datetime(2022, 11, 3, 16, 40, 0, 500000, tzinfo=UTC)
    assert trigger.run_at == expected
    with pytest.raises(ValueError, match="run_at: '2022-13-3'"):
        DateTrigger(run_at="2022-13-3", timezone="UTC")


def test_file_store_cleanup_directory_removes_it_at_shutdown() -> None:
    directory = Path(tempfile.mkdtemp())
    scheduler = AsyncIOScheduler(
        timezone=UTC,
        stores={
            "default": {"type": "file", "directory": str(directory), "cleanup_directory": True}
        },
    )
    scheduler.add_task("os:getpid", "interval", minutes=5, id="kept-until-shutdown")
    with scheduler:
        assert (directory / "tasks" / "kept-until-shutdown").exists()
    assert not directory.exists()
    keep = Path(tempfile.mkdtemp())
    store = FileStore(keep)  # the default keeps the directory
    assert store.cleanup_directory is False
    with AsyncIOScheduler(timezone=UTC, stores={"default": store}):
        pass
    assert keep.exists()


def test_identity_names_the_scheduler_instance() -> None:
    named = AsyncIOScheduler(timezone=UTC, identity="worker-a")
    assert named.identity == "worker-a"
    assert named.get_scheduler_info().identity == "worker-a"
    default = AsyncIOScheduler(timezone=UTC)
    host, pid, suffix = default.identity.split(":")
    assert host and int(pid) == os.getpid() and re.fullmatch(r"[0-9a-f]{6}", suffix)
    assert AsyncIOScheduler(timezone=UTC).identity != default.identity
    configured = AsyncIOScheduler({"asyncz.identity": "from-config"}, timezone=UTC)
    assert configured.identity == "from-config"
    with pytest.raises(ConfigurationError, match=r"asyncz\.identity"):
        AsyncIOScheduler(timezone=UTC, identity=" ")


def test_options_asyncz_ignored_are_refused_with_the_key() -> None:
    with pytest.raises(TypeError, match="suffix"):
        FileStore(tempfile.mkdtemp(), suffix=".task")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="secnds"):
        IntervalTrigger(secnds=5)
    with pytest.raises(ConfigurationError, match=r"asyncz\.stores\.default"):
        AsyncIOScheduler(
            timezone=UTC,
            stores={"default": {"type": "file", "directory": tempfile.mkdtemp(), "mode": 0o700}},
        )
    with pytest.raises(ConfigurationError, match=r"asyncz\.colour"):
        AsyncIOScheduler({"asyncz.colour": "blue"}, timezone=UTC)

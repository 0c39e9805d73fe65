"""``tags``: a set of strings stored with a task (``asyncz run`` marks its tasks with one)."""

from __future__ import annotations

from datetime import timezone
from pathlib import Path

import pytest

from asyncz.schedulers.asyncio import AsyncIOScheduler
from asyncz.tasks import Task

UTC = timezone.utc


def job() -> None: ...


def test_tags_are_kept_shown_changed_and_stored(tmp_path: Path) -> None:
    stores = {"default": {"type": "file", "directory": str(tmp_path)}}
    scheduler = AsyncIOScheduler(timezone=UTC, stores=stores)
    with scheduler:
        scheduler.add_task(job, "interval", minutes=5, id="a", tags=["ops", "nightly"])
        scheduler.add_task(Task(job, trigger="interval", minutes=5, id="b", tags={"x"}))
        scheduler.add_task(job, "interval", minutes=5, id="c")
        assert scheduler.get_task_info("a").tags == frozenset({"ops", "nightly"})  # type: ignore[union-attr]
        assert scheduler.get_task_infos(q="nightly")[0].id == "a"
        scheduler.update_task("b", tags=["y"])
    restarted = AsyncIOScheduler(timezone=UTC, stores=stores)
    with restarted:
        tags = {i.id: i.tags for i in restarted.get_task_infos()}
    assert tags == {"a": frozenset({"ops", "nightly"}), "b": frozenset({"y"}), "c": frozenset()}


def test_tags_must_be_strings() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    with pytest.raises(TypeError, match="tags"):
        scheduler.add_task(job, "interval", minutes=5, tags="ops")
    with pytest.raises(TypeError, match="tags"):
        scheduler.add_task(job, "interval", minutes=5, tags=[1])

"""get_scheduler_info() and preview_task_runs(), read the way Asyncz's models are."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone

import pytest

from asyncz.exceptions import TaskLookupError
from asyncz.schedulers import AsyncIOScheduler

UTC = timezone.utc


def job() -> None: ...


def test_scheduler_info_has_attributes_and_is_a_mapping() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC, identity="node-1")
    scheduler.add_task(job, "interval", minutes=5, id="a")
    stopped = scheduler.get_scheduler_info()
    assert stopped.state == stopped["state"] == "stopped" and stopped.running is False
    assert stopped.pending_task_count == stopped["tasks_by_state"]["pending"] == 1
    assert stopped.started_at is None and stopped.uptime_seconds is None
    with scheduler:
        scheduler.add_task(job, "interval", minutes=5, id="b", next_run_time=None)
        info = scheduler.get_scheduler_info()
    assert isinstance(info, Mapping)
    assert info.identity == info["identity"] == "node-1"
    assert (info.state, info.state_label, info.running) == ("running", "running", True)
    assert info.task_count == info.tasks == 2
    assert (info.scheduled_task_count, info.paused_task_count) == (1, 1)
    assert info.store_aliases == ("default",) and info.executor_aliases == ("default",)
    assert info.uptime_seconds is not None and info.uptime_seconds >= 0
    assert dict(info)["timezone"] == "UTC" and info.to_dict() == dict(info)
    assert info == dict(info)
    json.dumps({k: v for k, v in info.items() if k not in ("started_at", "next_wakeup")})
    with pytest.raises(AttributeError, match="no field 'colour'"):
        info.colour  # noqa: B018
    with pytest.raises(AttributeError, match="immutable"):
        info.state = "paused"


def test_preview_task_runs_is_a_list_with_run_times() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.add_task(job, "interval", minutes=30, id="half-hourly")
    scheduler.add_task(job, "date", run_at=datetime.now(UTC) + timedelta(days=1), id="once")
    with scheduler:
        preview = scheduler.preview_task_runs("half-hourly", count=3)
        assert isinstance(preview, list) and len(preview) == 3
        assert preview.run_times == tuple(preview)
        assert preview.run_times[2] - preview.run_times[0] == timedelta(hours=1)
        assert preview.exhausted is False and preview.task_id == "half-hourly"
        # Asyncz's argument order: (task_id, store, count=...); ours: (task_id, count, store)
        assert len(scheduler.preview_task_runs("half-hourly", "default", count=2)) == 2
        assert len(scheduler.preview_task_runs("half-hourly", 4, "default")) == 4
        assert scheduler.preview_task_runs("once", count=5).exhausted is True
        with pytest.raises(TaskLookupError, match="'missing'"):
            scheduler.preview_task_runs("missing")

"""The scheduler calls every behaviour hook, with the documented arguments."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone
from typing import Any

import pytest

from asyncz import events as ev
from asyncz import hookimpl
from asyncz.plugins import get_plugin_manager
from asyncz.schedulers.asyncio import AsyncIOScheduler

UTC = timezone.utc


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    @hookimpl
    def asyncz_scheduler_started(self, scheduler: Any) -> None:
        self.calls.append(("started", {"scheduler": scheduler}))

    @hookimpl
    def asyncz_scheduler_shutdown(self, scheduler: Any) -> None:
        self.calls.append(("shutdown", {"scheduler": scheduler}))

    @hookimpl
    def asyncz_event_dispatched(self, scheduler: Any, event: Any) -> None:
        self.calls.append(("event", {"scheduler": scheduler, "event": event}))

    @hookimpl
    def asyncz_task_before_run(self, scheduler: Any, task: Any, run_time: datetime) -> None:
        self.calls.append(("before", {"task": task, "run_time": run_time}))

    @hookimpl
    def asyncz_task_after_run(
        self, task: Any, run_time: datetime, return_value: Any, exception: BaseException | None
    ) -> None:
        self.calls.append(("after", {"value": return_value, "exception": exception}))


@pytest.fixture
def recorder() -> Any:
    pm = get_plugin_manager()
    plugin = Recorder()
    pm.register(plugin, name="test-recorder")
    try:
        yield plugin
    finally:
        pm.unregister(name="test-recorder")


async def job(x: int) -> int:
    return x * 2


def failing() -> None:
    raise ValueError("nope")


async def test_scheduler_calls_every_hook(recorder: Recorder) -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.start()
    try:
        scheduler.add_task(job, "date", args=[21], id="ok")
        scheduler.add_task(failing, "date", id="bad")
        deadline = time.monotonic() + 5
        while sum(1 for name, _ in recorder.calls if name == "after") < 2:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
    finally:
        scheduler.shutdown()
    # STORE_ADDED / EXECUTOR_ADDED of the default components come first, as in Asyncz.
    component_events = (ev.STORE_ADDED, ev.EXECUTOR_ADDED)
    calls = [
        (name, data)
        for name, data in recorder.calls
        if not (name == "event" and data["event"].code in component_events)
    ]
    names = [name for name, _ in calls]
    assert names[0] == "started" and names[-1] == "shutdown"
    assert calls[0][1]["scheduler"] is scheduler
    afters = [data for name, data in recorder.calls if name == "after"]
    assert {a["value"] for a in afters} == {42, None}
    assert any(isinstance(a["exception"], ValueError) for a in afters)
    befores = [data for name, data in recorder.calls if name == "before"]
    assert {b["task"].id for b in befores} == {"ok", "bad"}
    event_codes = {data["event"].code for name, data in recorder.calls if name == "event"}
    assert {
        ev.STORE_ADDED,
        ev.EXECUTOR_ADDED,
        ev.SCHEDULER_START,
        ev.TASK_ADDED,
        ev.TASK_SUBMITTED,
        ev.TASK_EXECUTED,
        ev.TASK_ERROR,
        ev.TASK_REMOVED,
        ev.SCHEDULER_SHUTDOWN,
    } <= event_codes


async def test_a_failing_hook_does_not_stop_the_scheduler() -> None:
    class Broken:
        @hookimpl
        def asyncz_event_dispatched(self, scheduler: Any, event: Any) -> None:
            raise RuntimeError("plugin bug")

    pm = get_plugin_manager()
    pm.register(Broken(), name="test-broken")
    ran: list[int] = []
    try:
        scheduler = AsyncIOScheduler(timezone=UTC)
        scheduler.add_listener(lambda e: ran.append(e.code), ev.TASK_EXECUTED)
        with scheduler:
            scheduler.add_task(job, "date", args=[1])
            deadline = time.monotonic() + 5
            while not ran:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
    finally:
        pm.unregister(name="test-broken")
    assert ran == [ev.TASK_EXECUTED]

"""The store contract, part three: a scheduler on top of the store (tasks run, next run
times are written back, restarts keep tasks, pending tasks are committed at start).

Data path, end to end: ``add_task`` -> store -> wake-up -> pass -> executor -> event.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timedelta

import pytest

from asyncz import events as ev
from asyncz.schedulers.asyncio import AsyncIOScheduler, NativeAsyncIOScheduler
from asyncz.stores.base import BaseStore
from asyncz.tasks import ScheduleState
from asyncz.testing import functions
from asyncz.testing.harness import StoreHarness
from asyncz.testing.helpers import (
    MISSING_FUNCTION,
    UTC,
    _schedule_of,
    make_task,
    wait_until,
)
from asyncz.testing.triggers import MinimalTrigger

__all__ = ["SchedulerContract"]


class SchedulerContract(StoreHarness):
    """A real scheduler running tasks from the store under test."""

    # =====================================================================================
    # the scheduler on top of the store
    # =====================================================================================
    def _scheduler(self, store: BaseStore) -> AsyncIOScheduler:
        return AsyncIOScheduler(stores={"default": store}, isolated_event_loop=True)

    def test_scheduler_runs_tasks_and_persists_next_run_times(self, store: BaseStore) -> None:
        key = f"{self.namespace}-run"
        functions.reset(key)
        scheduler = self._scheduler(self.make_store())
        scheduler.start()
        try:
            scheduler.remove_all_tasks()
            task = scheduler.add_task(
                functions.record, "interval", seconds=0.2, args=(key,), id="every", coalesce=True
            )
            once = scheduler.add_task(functions.record, "date", args=(f"{key}-once",), id="once")
            first = task.next_run_time
            assert isinstance(first, datetime)
            wait_until(lambda: functions.calls(key) >= 2, what="the interval task ran twice")
            wait_until(lambda: functions.calls(f"{key}-once") == 1, what="the date task ran")
            wait_until(lambda: scheduler.get_task("once") is None, what="finished task removed")
            stored = scheduler.get_task("every")
            assert stored is not None
            assert isinstance(stored.next_run_time, datetime)
            assert stored.next_run_time > first
            assert once.id == "once"
        finally:
            scheduler.remove_all_tasks()
            scheduler.shutdown()

    def test_scheduler_runs_a_minimal_third_party_trigger(self, store: BaseStore) -> None:
        key = f"{self.namespace}-minimal"
        functions.reset(key)
        scheduler = self._scheduler(self.make_store())
        scheduler.start()
        try:
            scheduler.remove_all_tasks()
            trigger = MinimalTrigger(timedelta(seconds=0.2), datetime.now(UTC))
            scheduler.add_task(functions.record, trigger, args=(key,), id="minimal")
            wait_until(lambda: functions.calls(key) >= 2, what="the minimal trigger fired twice")
            stored = scheduler.get_task("minimal")
            assert stored is not None
            assert isinstance(stored.trigger, MinimalTrigger)
        finally:
            scheduler.remove_all_tasks()
            scheduler.shutdown()

    def test_scheduler_restart_keeps_ids_triggers_and_next_run_times(
        self, store: BaseStore
    ) -> None:
        self.require_persistent()
        scheduler = self._scheduler(self.make_store())
        scheduler.start()
        try:
            scheduler.remove_all_tasks()
            scheduler.add_task(functions.noop, "cron", hour=3, minute=15, id="nightly")
            scheduler.add_task(functions.noop, "interval", hours=2, id="twohourly")
            paused = scheduler.add_task(functions.noop, "interval", minutes=5, id="paused")
            paused.pause()
            before = {t.id: _schedule_of(t) for t in scheduler.get_tasks()}
        finally:
            scheduler.shutdown()
        again = self._scheduler(self.make_store())
        again.start(paused=True)
        try:
            after = {t.id: _schedule_of(t) for t in again.get_tasks()}
            assert after == before
            assert after["paused"][0] is None
        finally:
            again.remove_all_tasks()
            again.shutdown()

    def test_scheduler_reports_and_deletes_unrestorable_tasks(self, store: BaseStore) -> None:
        self.require_persistent()
        key = f"{self.namespace}-alive"
        functions.reset(key)
        self.call(store.add_task(make_task("broken", self.at(-(10**6)))))  # long overdue
        self.corrupt(store, "broken", self._bad_payloads(store)["renamed"])
        scheduler = self._scheduler(self.make_store())
        events: list[ev.SchedulerEvent] = []
        scheduler.add_listener(events.append, ev.TASK_RESTORE_FAILED)
        scheduler.start()
        try:
            scheduler.add_task(functions.record, "interval", seconds=0.1, args=(key,), id="alive")
            wait_until(lambda: functions.calls(key) >= 2, what="good tasks keep running")
            infos = scheduler.get_task_infos(schedule_state=ScheduleState.UNRESTORABLE)
            assert [i.id for i in infos] == ["broken"]
            assert infos[0].reason
            assert MISSING_FUNCTION.split(":")[0] in infos[0].reason
            assert [e.task_id for e in events] == ["broken"]  # type: ignore[attr-defined]
            scheduler.delete_task("broken")
            assert scheduler.get_task_infos(schedule_state="unrestorable") == []
        finally:
            scheduler.remove_all_tasks()
            scheduler.shutdown()

    # =====================================================================================
    # tasks added before start(), in every way a scheduler can be started
    # =====================================================================================
    @pytest.mark.parametrize("mode", ["own thread", "running loop", "given loop", "native"])
    def test_tasks_added_before_start_are_committed_in_every_start_mode(
        self, store: BaseStore, mode: str
    ) -> None:
        """Tasks added from synchronous code before ``start(paused=True)`` are in the store
        once it returns (nothing ran), and run after ``resume()``; for every start mode."""
        key = f"{self.namespace}-pending-{mode}"
        functions.reset(key)

        def prepare(scheduler: AsyncIOScheduler) -> None:
            scheduler.add_task(functions.record, "date", args=(key,), id="soon")
            scheduler.add_task(functions.noop, "interval", hours=1, id="hourly")

        def check_committed(scheduler: AsyncIOScheduler) -> None:
            stored = {info.id for info in scheduler.get_task_infos()}
            assert stored == {"soon", "hourly"}, f"{mode}: {stored}"
            assert functions.calls(key) == 0, "a paused scheduler ran a task"

        if mode in ("own thread", "given loop"):
            given = asyncio.new_event_loop() if mode == "given loop" else None
            scheduler = AsyncIOScheduler(stores={"default": self.make_store()}, event_loop=given)
            prepare(scheduler)
            scheduler.start(paused=True)
            try:
                check_committed(scheduler)
                scheduler.resume()
                wait_until(lambda: functions.calls(key) == 1, what=f"{mode}: the task ran")
            finally:
                scheduler.remove_all_tasks()
                scheduler.shutdown()
                if given is not None:
                    given.close()
            return

        async def main() -> None:
            native = mode == "native"
            cls = NativeAsyncIOScheduler if native else AsyncIOScheduler
            scheduler = cls(stores={"default": self.make_store()})
            prepare(scheduler)
            if native:
                await scheduler.start(paused=True)  # type: ignore[misc]
            else:
                scheduler.start(paused=True)
            try:
                await asyncio.to_thread(check_committed, scheduler)
                scheduler.resume()
                deadline = time.monotonic() + 10
                while functions.calls(key) < 1:
                    assert time.monotonic() < deadline, f"{mode}: the task did not run"
                    await asyncio.sleep(0.01)
            finally:
                await scheduler.remove_all_tasks_async()
                await scheduler.shutdown_async()

        asyncio.run(main())

    def test_a_pending_id_the_store_holds_keeps_the_stored_task(
        self, store: BaseStore, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A second worker adds the same ids before ``start()``: the stored task is kept
        (logged), its other tasks are committed, ``replace_existing=True`` replaces."""
        self.require_persistent()
        first = self._scheduler(self.make_store())
        first.add_task(functions.noop, "cron", hour=1, id="nightly")
        first.start(paused=True)
        first.shutdown()
        second = self._scheduler(self.make_store())
        second.add_task(functions.noop, "interval", hours=1, id="before")
        second.add_task(functions.noop, "cron", hour=2, id="nightly")
        second.add_task(functions.noop, "interval", hours=2, id="after")
        second.add_task(functions.noop, "cron", hour=5, id="replaced", replace_existing=True)
        caplog.set_level(logging.INFO, logger="asyncz")
        second.start(paused=True)
        try:
            tasks = {t.id: t for t in second.get_tasks()}
            assert set(tasks) == {"before", "nightly", "after", "replaced"}
            assert "hour='1'" in str(tasks["nightly"].trigger)
            kept = [r for r in caplog.records if "kept" in r.getMessage()]
            assert len(kept) == 1
            assert "nightly" in kept[0].getMessage()
        finally:
            second.shutdown()
        third = self._scheduler(self.make_store())
        third.add_task(functions.noop, "cron", hour=3, id="nightly", replace_existing=True)
        third.start(paused=True)
        try:
            stored = third.get_task("nightly")
            assert stored is not None
            assert "hour='3'" in str(stored.trigger)
        finally:
            third.remove_all_tasks()
            third.shutdown()

"""The store contract, part two: persistent stores (every task field survives serialization;
unrestorable tasks are kept, reported once and skipped).

Data path: a task on its way into and out of a persistent store, and what a pass does
with one that cannot be restored.
"""

from __future__ import annotations

import logging
import uuid
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from asyncz.exceptions import ConflictingIdError, TaskLookupError
from asyncz.stores._listing import list_store
from asyncz.stores.base import (
    BaseStore,
)
from asyncz.testing.harness import StoreHarness
from asyncz.testing.helpers import (
    UTC,
    assert_same_task,
    make_task,
)
from asyncz.testing.triggers import MinimalTrigger
from asyncz.triggers import CronTrigger, DateTrigger

__all__ = ["PersistenceContract"]


class PersistenceContract(StoreHarness):
    """Serialization and unrestorable tasks (only for PersistentStore subclasses)."""

    # =====================================================================================
    # serialization (persistent stores)
    # =====================================================================================
    def test_rich_arguments_and_triggers_survive(self, store: BaseStore) -> None:
        self.require_persistent()
        args = (
            datetime(2030, 3, 4, 5, 6, 7, 890, tzinfo=ZoneInfo("Europe/Paris")),
            date(2030, 1, 2),
            timedelta(days=1, seconds=2, microseconds=3),
            Decimal("1.10"),
            uuid.UUID(int=12345),
            b"\x00\xffbytes",
            (1, (2, 3)),
            {1, 2, 3},
        )
        tasks = [
            make_task("rich", self.at(1), args=args, kwargs={"nested": {"k": [args[0]]}}),
            make_task(
                "cron", self.at(2), trigger=CronTrigger(hour="*/2", minute=5, timezone="UTC")
            ),
            make_task("date", self.at(3), trigger=DateTrigger(run_at=self.at(3))),
            make_task("ref", self.at(4), fn="asyncz.testing.functions:record", args=("k",)),
        ]
        self.call(store.add_tasks(tasks))
        for task in tasks:
            assert_same_task(self.call(store.lookup_task(task.id)), task)

    def test_a_minimal_third_party_trigger_survives(self, store: BaseStore) -> None:
        # __init__ and get_next_trigger_time only: the default state of BaseTrigger (its
        # public attributes: a timedelta, an aware datetime, a zone) is all a store needs.
        self.require_persistent()
        trigger = MinimalTrigger(
            timedelta(minutes=7),
            datetime(2030, 1, 1, 9, 0, tzinfo=ZoneInfo("Europe/Paris")),
            timezone=ZoneInfo("America/New_York"),
            label="minimal",
        )
        self.call(store.add_task(make_task("minimal", self.at(5), trigger=trigger)))
        found = self.call(store.lookup_task("minimal"))
        assert_same_task(found, make_task("minimal", self.at(5), trigger=trigger))
        assert found is not None
        assert isinstance(found.trigger, MinimalTrigger)
        restored = found.trigger
        assert restored == trigger
        assert restored.timezone == ZoneInfo("America/New_York")
        assert restored.start_at.tzinfo == ZoneInfo("Europe/Paris")
        now = self.at(0)
        assert restored.get_next_trigger_time(UTC, None, now) == trigger.get_next_trigger_time(
            UTC, None, now
        )

    def test_a_task_without_an_importable_reference_is_refused(self, store: BaseStore) -> None:
        self.require_persistent()

        def local() -> None:
            pass

        with pytest.raises((ValueError, TypeError)):
            self.call(store.add_task(make_task("local", self.at(1), fn=local)))
        assert self.call(store.lookup_task("local")) is None

    def test_tasks_survive_a_new_store_instance(self, store: BaseStore) -> None:
        self.require_persistent()
        tasks = [
            make_task("s1", self.at(1), args=(1,)),
            make_task("s2", None),
            make_task("s3", self.at(3), trigger=CronTrigger(minute="*/5", timezone="UTC")),
        ]
        self.call(store.add_tasks(tasks))
        self.stop_store(store)
        second = self.start_store()
        try:
            restored = self.call(second.get_all_tasks(), second)
            assert [t.id for t in restored] == ["s1", "s3", "s2"]
            for task, expected in zip(restored, [tasks[0], tasks[2], tasks[1]], strict=False):
                assert_same_task(task, expected)
            assert self.call(second.get_next_run_time(), second) == self.at(1)
        finally:
            self.stop_store(second)
        self.start_store(store)  # the fixture's teardown uses it again

    # =====================================================================================
    # unrestorable tasks (persistent stores implementing overwrite_payload)
    # =====================================================================================
    def test_unrestorable_tasks_are_kept_reported_once_and_skipped(
        self, store: BaseStore, caplog: pytest.LogCaptureFixture
    ) -> None:
        self.require_persistent()
        bad = self._bad_payloads(store)
        # The broken tasks come first in run-time order: they must not starve the good one.
        for i, name in enumerate(bad):
            self.call(store.add_task(make_task(name, self.at(i))))
            self.corrupt(store, name, bad[name])
        self.call(store.add_task(make_task("good", self.at(10))))
        caplog.set_level(logging.ERROR)
        for _ in range(3):
            due = self.call(store.get_due_tasks(self.at(100), 2))
            assert [t.id for t in due] == ["good"]
            assert self.call(store.get_next_run_time()) == self.at(10)
        assert [t.id for t in self.call(store.get_all_tasks())] == ["good"]
        assert self.call(store.lookup_task("renamed")) is None

        broken = self.call(store.get_unrestorable())
        assert set(broken) == set(bad)
        for name in bad:  # one task's check agrees with the full one
            assert self.call(store.unrestorable_reason(name)) == broken[name]
        assert self.call(store.unrestorable_reason("good")) is None
        assert self.call(store.unrestorable_reason("absent")) is None
        listed = self.call(list_store(store, 2))
        assert [t.id for t in listed.tasks] == ["good"]
        assert listed.unrestorable == broken
        assert "asyncz_testing_removed_module" in broken["renamed"]
        assert all(reason for reason in broken.values())

        reported = sorted(e.task_id for e in self.restore_events)
        assert reported == sorted(bad), "each unrestorable task is reported exactly once"
        assert all(e.reason for e in self.restore_events)
        for name in bad:
            assert sum(name in r.getMessage() for r in caplog.records) == 1

        # Kept, not deleted: explicit deletion removes it.
        self.call(store.delete_task("garbage"))
        assert set(self.call(store.get_unrestorable())) == {"renamed", "tampered"}
        with pytest.raises(TaskLookupError):
            self.call(store.delete_task("garbage"))

    def test_an_unrestorable_task_can_be_replaced_by_a_good_one(self, store: BaseStore) -> None:
        self.require_persistent()
        self.call(store.add_task(make_task("fixme", self.at(1))))
        self.corrupt(store, "fixme", self._bad_payloads(store)["renamed"])
        assert self.call(store.get_due_tasks(self.at(5))) == []
        with pytest.raises(ConflictingIdError):
            self.call(store.add_task(make_task("fixme", self.at(2))))
        self.call(store.add_tasks([make_task("fixme", self.at(2))], True))
        assert [t.id for t in self.call(store.get_due_tasks(self.at(5)))] == ["fixme"]
        assert self.call(store.get_unrestorable()) == {}

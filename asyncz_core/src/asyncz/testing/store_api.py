"""The store contract, part one: the store API on its own (add, lookup, update, delete,
due-task and next-run queries, bulk operations).

Data path: what ``add_task`` commits to a store, and what a processing pass asks of it
(due tasks, earliest first, then the written-back next run times).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from asyncz._util import UNSET
from asyncz.exceptions import ConflictingIdError, TaskLookupError
from asyncz.stores._listing import list_store
from asyncz.stores.base import BaseStore
from asyncz.tasks import Task
from asyncz.tasks._state import POLICY_DEFAULTS
from asyncz.tasks.runs import PendingRun
from asyncz.testing.harness import StoreHarness
from asyncz.testing.helpers import (
    assert_same_task,
    make_task,
)

__all__ = ["StoreApiContract"]


class StoreApiContract(StoreHarness):
    """Add / lookup / update / delete, queries and bulk operations of any store."""

    # =====================================================================================
    # add / lookup / update / delete
    # =====================================================================================
    def test_add_and_lookup_round_trip(self, store: BaseStore) -> None:
        task = make_task(
            "t1",
            self.at(10),
            args=(1, "two"),
            kwargs={"three": 3.0, "four": [4, None, True]},
            name="a name",
            executor="pool",
            coalesce=False,
            max_instances=3,
            misfire_grace_time=None,
        )
        self.call(store.add_task(task))
        found = self.call(store.lookup_task("t1"))
        assert_same_task(found, task)
        assert found is not None
        assert found.store_alias == "default"

    def test_run_policies_owed_runs_and_pause_notes_round_trip(self, store: BaseStore) -> None:
        # A task keeps its policies and rarely set fields outside its own slots (shared
        # while they are the defaults): each task still gets back exactly its own.
        policies: tuple[object, ...] = (2.5, 3, 0.5, 3.0, None, 0.25, "buffer_all")
        given: dict[str, Any] = dict(zip(POLICY_DEFAULTS, policies, strict=True))
        retrying = make_task("retrying", self.at(6), **given)
        retrying.pending_runs = (PendingRun(self.at(5), self.at(6), 2),)
        retrying.scheduled_next = self.at(10)
        paused = make_task("paused", None, retries=1)
        paused.pause_note = "maintenance"
        paused.paused_at = self.at(1)
        plain = make_task("plain", self.at(11))
        self.call(store.add_tasks([retrying, paused, plain]))

        def policies_of(task_id: str) -> tuple[object, ...]:
            task = self.call(store.lookup_task(task_id))
            assert isinstance(task, Task)
            # UNSET (a task built outside a scheduler) is stored as the default
            values = (getattr(task, name) for name in POLICY_DEFAULTS)
            return tuple(
                POLICY_DEFAULTS[n] if v is UNSET else v
                for n, v in zip(POLICY_DEFAULTS, values, strict=True)
            )

        assert policies_of("retrying") == policies
        assert policies_of("paused") == (None, 1, 1.0, 2.0, 3600.0, 0.0, "skip")
        assert policies_of("plain") == tuple(POLICY_DEFAULTS.values())
        found = {t.id: t for t in self.call(store.get_all_tasks())}
        assert found["retrying"].pending_runs == retrying.pending_runs
        assert found["retrying"].scheduled_next == self.at(10)
        assert (found["paused"].pause_note, found["paused"].paused_at) == (
            "maintenance",
            self.at(1),
        )
        for task in (found["retrying"], found["plain"]):
            assert (task.pause_note, task.paused_at) == (None, None)
        for task in (found["paused"], found["plain"]):
            assert (task.pending_runs, task.scheduled_next) == ((), None)

    def test_lookup_of_a_missing_id_is_none(self, store: BaseStore) -> None:
        assert self.call(store.lookup_task("nope")) is None

    def test_add_of_an_existing_id_conflicts(self, store: BaseStore) -> None:
        self.call(store.add_task(make_task("dup", self.at(1))))
        with pytest.raises(ConflictingIdError):
            self.call(store.add_task(make_task("dup", self.at(2))))
        found = self.call(store.lookup_task("dup"))
        assert found is not None
        assert found.next_run_time == self.at(1)

    def test_update_replaces_the_task(self, store: BaseStore) -> None:
        self.call(store.add_task(make_task("u", self.at(50))))
        changed = make_task("u", self.at(5), args=(42,), name="renamed")
        self.call(store.update_task(changed))
        assert_same_task(self.call(store.lookup_task("u")), changed)
        assert self.call(store.get_next_run_time()) == self.at(5)

    def test_update_of_a_missing_id_is_a_lookup_error(self, store: BaseStore) -> None:
        with pytest.raises(TaskLookupError):
            self.call(store.update_task(make_task("ghost", self.at(1))))
        assert self.call(store.lookup_task("ghost")) is None

    def test_delete_removes_the_task(self, store: BaseStore) -> None:
        self.call(store.add_task(make_task("d1", self.at(1))))
        self.call(store.add_task(make_task("d2", self.at(2))))
        self.call(store.delete_task("d1"))
        assert self.call(store.lookup_task("d1")) is None
        assert [t.id for t in self.call(store.get_all_tasks())] == ["d2"]
        assert self.call(store.get_next_run_time()) == self.at(2)

    def test_delete_of_a_missing_id_is_a_lookup_error(self, store: BaseStore) -> None:
        with pytest.raises(TaskLookupError):
            self.call(store.delete_task("ghost"))

    def test_remove_all_tasks(self, store: BaseStore) -> None:
        for i in range(5):
            self.call(store.add_task(make_task(f"r{i}", self.at(i) if i % 2 else None)))
        self.call(store.remove_all_tasks())
        assert self.call(store.get_all_tasks()) == []
        assert self.call(store.get_next_run_time()) is None
        assert self.call(store.get_due_tasks(self.at(100))) == []
        # The store is still usable afterwards.
        self.call(store.add_task(make_task("r0", self.at(0))))
        assert self.call(store.lookup_task("r0")) is not None

    # =====================================================================================
    # queries
    # =====================================================================================
    def test_due_tasks_are_ordered_inclusive_and_skip_paused(self, store: BaseStore) -> None:
        for task_id, offset in [("c", 30), ("a", 10), ("later", 100), ("b", 20)]:
            self.call(store.add_task(make_task(task_id, self.at(offset))))
        self.call(store.add_task(make_task("paused", None)))
        due = self.call(store.get_due_tasks(self.at(30)))
        assert [t.id for t in due] == ["a", "b", "c"]  # next run == now is due
        assert all(t.store_alias == "default" for t in due)
        assert self.call(store.get_due_tasks(self.at(9))) == []

    def test_due_tasks_respect_the_limit(self, store: BaseStore) -> None:
        for i in range(10):
            self.call(store.add_task(make_task(f"l{i}", self.at(10 - i))))
        due = self.call(store.get_due_tasks(self.at(100), 4))
        assert [t.id for t in due] == ["l9", "l8", "l7", "l6"]
        assert len(self.call(store.get_due_tasks(self.at(100)))) == 10

    def test_due_tasks_stay_until_written_back(self, store: BaseStore) -> None:
        self.call(store.add_task(make_task("stay", self.at(1))))
        first = self.call(store.get_due_tasks(self.at(5)))
        assert [t.id for t in first] == ["stay"]
        assert self.call(store.get_next_run_time()) == self.at(1)
        assert [t.id for t in self.call(store.get_due_tasks(self.at(5)))] == ["stay"]
        assert [t.id for t in self.call(store.get_all_tasks())] == ["stay"]
        moved = make_task("stay", self.at(10))
        self.call(store.update_tasks([moved]))
        assert self.call(store.get_due_tasks(self.at(5))) == []
        assert self.call(store.get_next_run_time()) == self.at(10)

    def test_next_run_time(self, store: BaseStore) -> None:
        assert self.call(store.get_next_run_time()) is None
        self.call(store.add_task(make_task("p", None)))
        assert self.call(store.get_next_run_time()) is None
        self.call(store.add_task(make_task("x", self.at(20))))
        self.call(store.add_task(make_task("y", self.at(10))))
        assert self.call(store.get_next_run_time()) == self.at(10)
        self.call(store.update_task(make_task("y", None)))  # paused
        assert self.call(store.get_next_run_time()) == self.at(20)
        self.call(store.delete_task("x"))
        assert self.call(store.get_next_run_time()) is None

    def test_all_tasks_are_ordered_with_paused_last(self, store: BaseStore) -> None:
        self.call(store.add_task(make_task("paused", None)))
        self.call(store.add_task(make_task("second", self.at(2))))
        self.call(store.add_task(make_task("first", self.at(1))))
        tasks = self.call(store.get_all_tasks())
        assert [t.id for t in tasks] == ["first", "second", "paused"]
        assert tasks[2].next_run_time is None
        assert all(t.store_alias == "default" for t in tasks)

    def test_many_tasks_come_out_in_order_in_batches(self, store: BaseStore) -> None:
        count = 300
        tasks = [make_task(f"m{i:04d}", self.at((i * 7919) % count)) for i in range(count)]
        self.call(store.add_tasks(tasks))
        seen: list[datetime] = []
        horizon = self.at(count)
        while True:
            batch = self.call(store.get_due_tasks(horizon, 64))
            if not batch:
                break
            assert len(batch) <= 64
            seen.extend(t.next_run_time for t in batch)  # type: ignore[misc]
            self.call(store.delete_tasks([t.id for t in batch]))
        assert len(seen) == count
        assert seen == sorted(seen)

    def test_task_pages_hold_every_task_once_in_bounded_pages(self, store: BaseStore) -> None:
        count = 300
        tasks = [make_task(f"p{i:05d}", self.at(i % 50) if i % 9 else None) for i in range(count)]
        tasks.append(make_task('an "odd"\n/id ü', self.at(3)))
        self.call(store.add_tasks(tasks))
        seen: dict[str, Task] = {}
        cursor = None
        pages = 0
        while True:
            page = self.call(store.get_task_page(cursor, 50))
            pages += 1
            # A page is about ``limit`` (HSCAN's COUNT is a hint) or everything at once.
            assert len(page.tasks) <= 2 * 50 or page.cursor is None
            assert page.unrestorable == {}
            seen.update((t.id, t) for t in page.tasks)
            assert all(t.store_alias == "default" for t in page.tasks)
            cursor = page.cursor
            if cursor is None:
                break
            assert pages < count, "the cursor never ends"
        assert sorted(seen) == sorted(t.id for t in tasks)
        assert seen["p00009"].next_run_time is None
        assert seen["p00001"].next_run_time == self.at(1)
        # ... and the scheduler's listing orders them (by next run time, paused last).
        listed = self.call(list_store(store, 50)).tasks
        assert sorted(t.id for t in listed) == sorted(seen)
        order = [_listing_order(t) for t in listed]
        assert order == sorted(order)

    def test_next_run_time_keeps_the_instant_and_the_zone_offset(self, store: BaseStore) -> None:
        zone = ZoneInfo("America/New_York")
        when = datetime(2030, 7, 1, 9, 30, tzinfo=zone)
        self.call(store.add_task(make_task("ny", when)))
        found = self.call(store.lookup_task("ny"))
        assert found is not None
        assert found.next_run_time == when
        assert found.next_run_time.utcoffset() == timedelta(hours=-4)  # type: ignore[union-attr]
        assert self.call(store.get_next_run_time()) == when

    # =====================================================================================
    # bulk operations
    # =====================================================================================
    def test_add_tasks_in_bulk(self, store: BaseStore) -> None:
        tasks = [make_task(f"b{i}", self.at(i)) for i in range(50)]
        self.call(store.add_tasks(tasks))
        assert [t.id for t in self.call(store.get_all_tasks())] == [t.id for t in tasks]

    def test_add_tasks_conflict_and_replace(self, store: BaseStore) -> None:
        self.call(store.add_task(make_task("k", self.at(5))))
        with pytest.raises(ConflictingIdError):
            self.call(store.add_tasks([make_task("k", self.at(1))]))
        found = self.call(store.lookup_task("k"))
        assert found is not None
        assert found.next_run_time == self.at(5)
        self.call(store.add_tasks([make_task("k", self.at(1)), make_task("n", self.at(2))], True))
        found = self.call(store.lookup_task("k"))
        assert found is not None
        assert found.next_run_time == self.at(1)
        assert self.call(store.get_next_run_time()) == self.at(1)
        assert len(self.call(store.get_all_tasks())) == 2

    def test_update_and_delete_in_bulk_ignore_missing_ids(self, store: BaseStore) -> None:
        self.call(store.add_tasks([make_task("e1", self.at(1)), make_task("e2", self.at(2))]))
        self.call(store.update_tasks([make_task("e1", self.at(3)), make_task("gone", self.at(0))]))
        assert self.call(store.lookup_task("gone")) is None
        assert [t.id for t in self.call(store.get_all_tasks())] == ["e2", "e1"]
        self.call(store.delete_tasks(["e2", "gone"]))
        assert [t.id for t in self.call(store.get_all_tasks())] == ["e1"]


def _listing_order(task: Task) -> tuple[bool, float]:
    when = task.next_run_time
    return (True, 0.0) if not isinstance(when, datetime) else (False, when.timestamp())

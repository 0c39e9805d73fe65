"""The store contract as pytest test classes (see :mod:`asyncz.testing` for usage)."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, ClassVar, TypeVar
from zoneinfo import ZoneInfo

import pytest

from asyncz import events as ev
from asyncz.exceptions import ConflictingIdError, TaskLookupError
from asyncz.schedulers.asyncio import AsyncIOScheduler, NativeAsyncIOScheduler
from asyncz.stores.base import (
    BaseStore,
    LoopThread,
    PersistentStore,
    attach_io_loop,
    call,
    detach_io_loop,
)
from asyncz.tasks import ScheduleState, Task
from asyncz.testing import functions
from asyncz.testing.triggers import MinimalTrigger
from asyncz.triggers import CronTrigger, DateTrigger, IntervalTrigger

__all__ = ["StoreContract", "assert_same_task", "make_task", "wait_until"]

T = TypeVar("T")
UTC = timezone.utc

#: A reference that imports nothing: what a renamed or removed function looks like.
MISSING_FUNCTION = "asyncz_testing_removed_module:renamed_function"


def make_task(
    task_id: str,
    next_run_time: datetime | None = None,
    *,
    fn: Callable[..., Any] | str = functions.noop,
    trigger: Any = None,
    args: tuple[Any, ...] = (),
    kwargs: dict[str, Any] | None = None,
    **options: Any,
) -> Task:
    """A task as the scheduler hands it to a store: every option resolved.

    ``next_run_time=None`` makes a paused task. The default trigger is a 1-hour interval.
    """
    if trigger is None:
        trigger = IntervalTrigger(hours=1, start_at=datetime(2024, 1, 1, tzinfo=UTC))
    options.setdefault("coalesce", True)
    options.setdefault("max_instances", 1)
    options.setdefault("misfire_grace_time", 1.0)
    return Task(
        fn,
        id=task_id,
        trigger=trigger,
        args=args,
        kwargs=kwargs or {},
        next_run_time=next_run_time,
        **options,
    )


def assert_same_task(actual: Task | None, expected: Task) -> None:
    """Everything a store keeps about a task survived the round trip."""
    assert actual is not None, f"task {expected.id!r} was not found"
    assert actual.id == expected.id
    assert actual.name == expected.name
    assert actual.fn_reference == expected.fn_reference
    assert actual.fn is expected.fn or actual.fn == expected.fn
    assert actual.args == expected.args
    assert actual.kwargs == expected.kwargs
    assert actual.executor == expected.executor
    assert actual.coalesce == expected.coalesce
    assert actual.max_instances == expected.max_instances
    assert actual.misfire_grace_time == expected.misfire_grace_time
    assert actual.next_run_time == expected.next_run_time
    if isinstance(expected.next_run_time, datetime):
        assert isinstance(actual.next_run_time, datetime)
        assert actual.next_run_time.utcoffset() == expected.next_run_time.utcoffset()
    assert type(actual.trigger) is type(expected.trigger)
    if expected.trigger is not None and actual.trigger is not None:
        assert actual.trigger.__getstate__() == expected.trigger.__getstate__()


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """Poll ``predicate`` from synchronous test code until true; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {timeout}s: {what or predicate}")
        time.sleep(0.01)


def _schedule_of(task: Task) -> tuple[Any, Any]:
    trigger = task.trigger
    return task.next_run_time, trigger.__getstate__() if trigger is not None else None


class StoreContract:
    """The behaviour every asyncz store must have. Subclass it in a ``Test*`` class and
    implement :meth:`make_store`; every ``test_*`` method then runs against your store.

    Tests are plain synchronous pytest tests (no pytest-asyncio needed): store coroutines
    run on a driver event loop of their own through :func:`asyncz.stores.base.call`, exactly
    as the scheduler calls them. Tests that need persistence (restart, serialization) run
    only for :class:`~asyncz.stores.base.PersistentStore` subclasses, and unrestorable-task
    tests only when :meth:`overwrite_payload` is implemented.
    """

    #: Seconds one store call may take before the test fails.
    call_timeout: ClassVar[float] = 30.0

    _driver: LoopThread | None = None
    _io: LoopThread | None = None
    _store: BaseStore | None = None

    # -- hooks for store authors ----------------------------------------------------------
    def make_store(self) -> BaseStore:
        """A new, not yet started store instance.

        Point it at a clean backend location that depends only on :attr:`namespace` (a key
        prefix, a collection, a table, a directory): the suite calls it again within one
        test to check that a second instance sees what the first one stored.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement make_store()")

    def overwrite_payload(
        self, store: BaseStore, task_id: str, payload: bytes
    ) -> None | Coroutine[Any, Any, None]:
        """Replace the stored payload of the existing task ``task_id`` by ``payload``, raw,
        leaving its run-time index (next run time) as it is: the way a corrupt payload, a
        renamed function or a tampered signature looks to the store.

        May be a coroutine function; it then runs on the store's I/O loop. Leave it
        unimplemented to skip the unrestorable-task tests (persistent stores should not).
        """
        raise NotImplementedError

    # -- machinery ------------------------------------------------------------------------
    @property
    def namespace(self) -> str:
        """A name unique to the running test, for :meth:`make_store`."""
        value: str | None = self.__dict__.get("_namespace")
        if value is None:
            value = f"asyncz-contract-{uuid.uuid4().hex[:12]}"
            self.__dict__["_namespace"] = value
        return value

    def call(self, coro: Awaitable[T], store: BaseStore | None = None) -> T:
        """Run a store coroutine the way the scheduler does and return its result."""
        target = store or self._store
        driver = self._driver
        if target is None or driver is None or driver.loop is None:
            if isinstance(coro, Coroutine):
                coro.close()
            raise RuntimeError("call() needs the 'store' fixture")
        future = asyncio.run_coroutine_threadsafe(call(target, coro), driver.loop)
        return future.result(timeout=self.call_timeout)

    def start_store(self, store: BaseStore | None = None) -> BaseStore:
        """Make (or take) a store and start it on a scheduler that is not running; a store
        that does I/O gets an I/O loop first, as a scheduler gives it one."""
        store = store or self.make_store()
        scheduler = self.host_scheduler
        if self._io is not None and self._io.loop is not None:
            attach_io_loop(store, self._io.loop)
        self.call(store.start(scheduler, "default"), store)
        return store

    def stop_store(self, store: BaseStore) -> None:
        """Shut a store started by :meth:`start_store` down and take its I/O loop back."""
        try:
            self.call(store.shutdown(), store)
        finally:
            detach_io_loop(store)

    @pytest.fixture
    def store(self) -> Iterator[BaseStore]:
        """A started store on a clean backend; emptied and shut down afterwards."""
        driver = LoopThread("asyncz-contract-driver")
        driver.start()
        self._driver = driver
        io = LoopThread("asyncz-contract-io")
        io.start()
        self._io = io
        self.host_scheduler = AsyncIOScheduler()
        self.restore_events: list[ev.TaskRestoreFailedEvent] = []
        self.host_scheduler.add_listener(
            self.restore_events.append,  # type: ignore[arg-type]
            ev.TASK_RESTORE_FAILED,
        )
        store = self.make_store()
        self._store = store
        try:
            self.start_store(store)
            self.call(store.remove_all_tasks())
            yield store
        finally:
            try:
                self.call(store.remove_all_tasks())
            finally:
                try:
                    self.stop_store(store)
                finally:
                    self._store = None
                    self._driver = None
                    self._io = None
                    driver.stop()
                    io.stop()

    @property
    def persistent(self) -> bool:
        return isinstance(self._store, PersistentStore)

    def require_persistent(self) -> None:
        if not self.persistent:
            pytest.skip("the store does not serialize tasks (not a PersistentStore)")

    def corrupt(self, store: BaseStore, task_id: str, payload: bytes) -> None:
        """Call :meth:`overwrite_payload` (skipping the test when it is not implemented)."""
        try:
            result = self.overwrite_payload(store, task_id, payload)
        except NotImplementedError:
            pytest.skip(f"{type(self).__name__} does not implement overwrite_payload()")
        if inspect.iscoroutine(result):
            self.call(result, store)

    @staticmethod
    def at(seconds: float) -> datetime:
        """A fixed instant ``seconds`` after 2030-01-01T00:00Z (far from now, both ways)."""
        return datetime(2030, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)

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
    def _bad_payloads(self, store: BaseStore) -> dict[str, bytes]:
        assert isinstance(store, PersistentStore)
        good = store.encode_task(make_task("x", self.at(0)))
        state = store.serializer.loads(good)
        state["fn"] = MISSING_FUNCTION
        renamed = store.serializer.dumps(state)
        tampered = bytearray(good)
        tampered[len(tampered) // 2] ^= 0x01
        return {
            "garbage": b"\x80not a payload\x00",
            "renamed": renamed,
            "tampered": bytes(tampered),
        }

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

"""The task fields kept outside a task's own slots (asyncz.tasks._fields, issue 19): the run
policies shared while they are the defaults, the rarely set fields made per task on first
use. Reading and writing them is unchanged for users; these tests pin that one task's value
never leaks into another's."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from asyncz._util import UNSET
from asyncz.schedulers.asyncio import AsyncIOScheduler
from asyncz.stores.memory import MemoryStore
from asyncz.tasks import Task
from asyncz.tasks._fields import NO_EXTRA, UNSET_POLICY, RunPolicy
from asyncz.tasks._state import POLICY_DEFAULTS
from asyncz.tasks.runs import PendingRun
from asyncz.testing.helpers import make_task

UTC = timezone.utc


def work() -> None:
    pass


@pytest.fixture
def scheduler() -> AsyncIOScheduler:
    return AsyncIOScheduler(timezone=UTC)


def test_a_task_built_alone_reads_unset_policies_and_default_rare_fields() -> None:
    task = Task(work, trigger="interval", hours=1)
    assert all(getattr(task, name) is UNSET for name in POLICY_DEFAULTS)
    assert task.pending_runs == () and task.scheduled_next is None
    assert (task.pause_note, task.paused_at, task.revision, task.replace_existing) == (
        None,
        None,
        0,
        False,
    )


def test_tasks_that_keep_the_defaults_share_one_policy(scheduler: AsyncIOScheduler) -> None:
    first = scheduler.add_task(work, "interval", hours=1)
    second = scheduler.add_task(work, "interval", hours=2)
    assert first._policy is second._policy
    assert tuple(getattr(first, n) for n in POLICY_DEFAULTS) == tuple(POLICY_DEFAULTS.values())
    # a rarely set field costs nothing until a task has one
    assert first._extra is NO_EXTRA and second._extra is NO_EXTRA


def test_setting_a_policy_on_one_task_leaves_the_others(scheduler: AsyncIOScheduler) -> None:
    first = scheduler.add_task(work, "interval", hours=1)
    second = scheduler.add_task(work, "interval", hours=1)
    first.retry_delay = 3.0
    first.overlap = "buffer_all"
    assert (first.retry_delay, first.overlap) == (3.0, "buffer_all")
    assert (second.retry_delay, second.overlap) == (1.0, "skip")
    scheduler.update_task(second.id, retry_jitter=5)
    assert second.retry_jitter == 5.0 and first.retry_jitter == 0.0
    # the shared defaults were not changed in place
    third = scheduler.add_task(work, "interval", hours=1)
    assert (third.retry_delay, third.overlap, third.retry_jitter) == (1.0, "skip", 0.0)


def test_a_policy_is_immutable_and_equal_values_are_one_object() -> None:
    policy = Task(work, retry_delay=2)._policy
    with pytest.raises(AttributeError):
        policy.retry_delay = 5  # type: ignore[misc]
    assert Task(work, retry_delay=2)._policy is policy
    # 1 and 1.0 are equal but not the same value: not one policy
    assert type(policy.replaced("retry_jitter", 1).retry_jitter) is int
    assert type(policy.replaced("retry_jitter", 1.0).retry_jitter) is float
    assert isinstance(policy.replaced("retry_jitter", 1), RunPolicy)


def test_rarely_set_fields_are_per_task(scheduler: AsyncIOScheduler) -> None:
    first = scheduler.add_task(work, "interval", hours=1)
    second = scheduler.add_task(work, "interval", hours=1)
    first.pause_note = "maintenance"
    first.revision = 7
    assert (first.pause_note, first.revision) == ("maintenance", 7)
    assert (second.pause_note, second.revision) == (None, 0)
    assert (NO_EXTRA.pause_note, NO_EXTRA.revision) == (None, 0)
    # writing a default does not make a task pay for the fields
    second.paused_at = None
    second.replace_existing = False
    assert second._extra is NO_EXTRA


def test_a_copy_does_not_share_the_rarely_set_fields() -> None:
    when = datetime(2030, 1, 1, tzinfo=UTC)
    task = Task(work, trigger="interval", hours=1, retries=2, overlap="buffer_one")
    task.pause_note = "original"
    task.pending_runs = (PendingRun(when, when, 2),)
    clone = task.copy_with(name="clone")
    assert (clone.pause_note, clone.pending_runs, clone.retries) == (
        "original",
        task.pending_runs,
        2,
    )
    clone.pause_note = "changed"
    clone.retries = 4
    clone.overlap = "allow_all"
    assert (task.pause_note, task.retries, task.overlap) == ("original", 2, "buffer_one")


def test_defaults_changed_in_place_reach_the_tasks_added_after() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    before = scheduler.add_task(work, "interval", hours=1)
    scheduler.task_defaults["retries"] = 4
    scheduler.task_defaults["overlap"] = "allow_all"
    after = scheduler.add_task(work, "interval", hours=1, retry_delay=2)
    assert (after.retries, after.overlap, after.retry_delay) == (4, "allow_all", 2.0)
    assert (before.retries, before.overlap) == (0, "skip")


def test_a_restored_task_gets_the_fields_of_its_state_only() -> None:
    task = make_task("t", datetime(2030, 1, 1, tzinfo=UTC), retries=3, overlap="allow_all")
    task.pause_note = "kept"
    restored = Task.__new__(Task)
    restored.__setstate__(task.__getstate__())
    assert (restored.retries, restored.overlap) == (3, "allow_all")
    assert (restored.pause_note, restored.revision) == ("kept", 0)
    assert restored.pending_runs == () and restored.scheduled_next is None
    # a state without them: the defaults, and no TaskExtra of its own
    plain = Task.__new__(Task)
    plain.__setstate__(make_task("p", datetime(2030, 1, 1, tzinfo=UTC)).__getstate__())
    assert plain._extra is NO_EXTRA and plain._policy is not UNSET_POLICY


def test_the_memory_store_orders_run_times_of_every_zone_by_instant() -> None:
    # Fixed-offset zones are their own keys; others (DST zones) are keyed in UTC, so that
    # both sides of a fall-back fold keep their order among times of other zones.
    paris = ZoneInfo("Europe/Paris")
    base = datetime(2030, 10, 27, 0, 0, tzinfo=UTC)  # Paris falls back at 01:00 UTC
    whens = {
        "paris-first-0240": datetime(2030, 10, 27, 2, 40, tzinfo=paris),  # 00:40 UTC
        "utc-0045": base + timedelta(minutes=45),
        "etc-utc-0100": datetime(2030, 10, 27, 1, 0, tzinfo=ZoneInfo("Etc/UTC")),
        "plus2-0310": datetime(2030, 10, 27, 3, 10, tzinfo=timezone(timedelta(hours=2))),
        "paris-second-0220": datetime(2030, 10, 27, 2, 20, fold=1, tzinfo=paris),  # 01:20
        "minus5-2050": datetime(2030, 10, 26, 20, 50, tzinfo=timezone(timedelta(hours=-5))),
        "paris-0300": datetime(2030, 10, 27, 3, 0, tzinfo=paris),  # 02:00 UTC
    }

    async def due_order(task_ids: list[str]) -> list[str]:
        store = MemoryStore()
        for task_id in task_ids:
            await store.add_task(make_task(task_id, whens[task_id]))
        first = min(task_ids, key=lambda k: whens[k].astimezone(UTC))
        assert await store.get_next_run_time() == whens[first]
        return [task.id for task in await store.get_due_tasks(base + timedelta(hours=3))]

    # written in instant order; the two sides of the fold compare the other way naively
    assert sorted(whens, key=lambda k: whens[k].astimezone(UTC)) == list(whens)
    assert whens["paris-second-0220"] < whens["paris-first-0240"]
    fold = ["paris-second-0220", "paris-first-0240"]
    assert asyncio.run(due_order(fold)) == fold[::-1]
    assert asyncio.run(due_order(list(reversed(whens)))) == list(whens)

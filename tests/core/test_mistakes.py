"""Every mistake gets a clear answer: each error names what is wrong and what to do."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from asyncz.exceptions import (
    ComponentLookupError,
    ConfigurationError,
    TaskLookupError,
    TaskUnrestorableError,
    UnpicklableTaskError,
)
from asyncz.schedulers.asyncio import AsyncIOScheduler
from asyncz.tasks import ScheduleState
from asyncz.triggers import CronTrigger, UnknownOptionError

UTC = timezone.utc


def ping() -> str:
    return "pong"


def wait_until(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.005)


# -- an unknown executor alias ------------------------------------------------------------------
def test_an_unknown_executor_is_refused_when_added_to_a_started_scheduler() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC, executors={"pool": {"type": "threadpool"}})
    with scheduler:
        with pytest.raises(ComponentLookupError) as caught:
            scheduler.add_task(ping, "interval", seconds=5, id="t", executor="pol")
        message = str(caught.value)
        assert "'pol'" in message and "'pool'" in message and "'default'" in message
        assert "Did you mean 'pool'?" in message
        assert isinstance(caught.value, KeyError)
        assert scheduler.get_task("t") is None  # nothing was stored
        with pytest.raises(ComponentLookupError):
            scheduler.update_task(scheduler.add_task(ping, "interval", seconds=5), executor="x")


async def test_an_unknown_executor_is_refused_by_add_task_async() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    async with scheduler:
        with pytest.raises(ComponentLookupError, match="'nope'"):
            await scheduler.add_task_async(ping, "interval", seconds=5, executor="nope")


def test_a_pending_task_with_an_unknown_executor_fails_the_start() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.add_task(ping, "interval", seconds=5, id="t", executor="missing")
    with pytest.raises(ComponentLookupError, match=r"'missing'.*this scheduler has: 'default'"):
        scheduler.start()
    assert not scheduler.running
    # The task is still pending: once the executor exists, the scheduler starts.
    scheduler.add_executor("threadpool", "missing")
    with scheduler:
        assert scheduler.get_task("t") is not None


# -- a misspelt task option ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("trigger", "trigger_args"),
    [(None, {}), ("interval", {"seconds": 5}), (CronTrigger(hour=3), {})],
)
def test_a_misspelt_task_option_is_named_as_a_task_option(
    trigger: object, trigger_args: dict[str, object]
) -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    with pytest.raises(UnknownOptionError) as caught:
        scheduler.add_task(ping, trigger, max_instance=2, **trigger_args)  # type: ignore[arg-type]
    message = str(caught.value)
    assert "task option 'max_instances'" in message
    assert caught.value.suggestion == "max_instances"


def test_a_misspelt_trigger_option_still_suggests_the_trigger_option() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    with pytest.raises(UnknownOptionError, match=r"IntervalTrigger.*'secnds'.*'seconds'"):
        scheduler.add_task(ping, "interval", secnds=5)


# -- the process pool ---------------------------------------------------------------------------
def _nested() -> object:
    def inner() -> None:
        pass

    class Local:
        def method(self) -> None:
            pass

    return inner, Local().method


@pytest.mark.parametrize("which", ["lambda", "nested", "local method"])
def test_the_process_pool_refuses_what_it_cannot_pickle(which: str) -> None:
    inner, method = _nested()  # type: ignore[misc]
    fn = {"lambda": lambda: None, "nested": inner, "local method": method}[which]
    scheduler = AsyncIOScheduler(timezone=UTC, executors={"cpu": {"type": "processpool"}})
    with scheduler:
        with pytest.raises(UnpicklableTaskError) as caught:
            scheduler.add_task(fn, "interval", seconds=5, executor="cpu", id="bad")
        message = str(caught.value)
        assert fn.__qualname__ in message
        assert "importable at module level" in message
        assert "'cpu'" in message
        assert scheduler.get_task("bad") is None
        # A module-level function is accepted.
        scheduler.add_task(ping, "interval", seconds=5, executor="cpu", id="good")


def test_the_process_pool_refuses_a_pending_task_at_start() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC, executors={"cpu": {"type": "processpool"}})
    scheduler.add_task(lambda: None, "interval", seconds=5, executor="cpu")
    with pytest.raises(UnpicklableTaskError, match="<lambda>"):
        scheduler.start()
    assert not scheduler.running


# -- an unusable lock_path ----------------------------------------------------------------------
@pytest.mark.parametrize("where", ["/proc/asyncz-test/{store}.lock", "{file}/sub/{store}.lock"])
def test_an_unusable_lock_path_is_an_error_naming_the_setting(tmp_path: Path, where: str) -> None:
    a_file = tmp_path / "plain-file"
    a_file.write_text("")
    lock_path = where.replace("{file}", str(a_file))
    scheduler = AsyncIOScheduler(
        timezone=UTC,
        lock_path=lock_path,
        stores={"default": {"type": "file", "directory": str(tmp_path / "tasks")}},
    )
    scheduler.add_task(ping, "interval", seconds=5, id="t")
    with pytest.raises(ConfigurationError) as caught:
        scheduler.start()
    assert caught.value.keys == ["asyncz.lock_path"]
    assert "default.lock" in str(caught.value)
    assert not scheduler.running
    assert scheduler.get_task("t") is not None  # still pending, nothing lost


# -- an unrestorable task -----------------------------------------------------------------------
def test_managing_an_unrestorable_task_says_it_is_unrestorable(tmp_path: Path) -> None:
    stores = {"default": {"type": "file", "directory": str(tmp_path)}}
    scheduler = AsyncIOScheduler(timezone=UTC, stores=stores)
    with scheduler:
        scheduler.add_task(ping, "interval", minutes=5, id="broken")
    (tmp_path / "tasks" / "broken").write_bytes(b"\x00\x01 disk garbage")
    scheduler = AsyncIOScheduler(timezone=UTC, stores=stores)
    with scheduler:
        info = scheduler.get_task_infos()[0]
        assert info.schedule_state is ScheduleState.UNRESTORABLE
        for operation in (
            lambda: scheduler.pause_task("broken"),
            lambda: scheduler.resume_task("broken"),
            lambda: scheduler.update_task("broken", coalesce=False),
            lambda: scheduler.reschedule_task("broken", trigger="interval", minutes=1),
            lambda: scheduler.run_task("broken"),
        ):
            with pytest.raises(TaskUnrestorableError) as caught:
                operation()
            message = str(caught.value)
            assert "'broken'" in message and "cannot be restored" in message
            assert info.reason is not None and info.reason in message
            assert isinstance(caught.value, TaskLookupError)
        assert scheduler.get_task("broken") is None
        with pytest.raises(TaskLookupError, match="No task with the id 'absent'"):
            scheduler.pause_task("absent")
        scheduler.delete_task("broken")
        assert scheduler.get_task_infos() == []


# -- logs name tasks by id ----------------------------------------------------------------------
def fails() -> None:
    raise ValueError("boom")


def test_logs_name_a_task_by_its_id_as_well_as_its_name(caplog: pytest.LogCaptureFixture) -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    now = datetime.now(UTC)
    with caplog.at_level(logging.INFO, logger="asyncz"):
        scheduler.add_task(ping, "date", run_at=now, id="first", name="ping")
        with scheduler:
            scheduler.add_task(ping, "date", run_at=now, id="second", name="ping")
            scheduler.add_task(fails, "date", run_at=now, id="third", name="ping")
            wait_until(lambda: scheduler.get_tasks() == [])
            time.sleep(0.05)
    messages = [r.getMessage() for r in caplog.records]
    for task_id in ("first", "second", "third"):
        mine = [m for m in messages if f"task 'ping' (id '{task_id}')" in m.lower()]
        assert any("Added" in m for m in mine), (task_id, messages)
    assert any("Task 'ping' (id 'third') raised ValueError: boom" in m for m in messages)
    assert any("Task 'ping' (id 'second') executed successfully" in m for m in messages)
    # A task whose name is its id... is named once (no "(id ...)" repeating it).
    scheduler = AsyncIOScheduler(timezone=UTC)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="asyncz"):
        scheduler.add_task(ping, "interval", seconds=5, id="nightly", name="nightly")
    assert "Added task 'nightly'; it is committed when the scheduler starts" in caplog.messages

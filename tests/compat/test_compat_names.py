"""The names Asyncz's documentation imports."""

from __future__ import annotations

from pathlib import Path

import pytest
from compat_helpers import wait_until, wait_until_sync


def test_event_constants_and_classes_from_asyncz_modules() -> None:
    from asyncz import events as ev
    from asyncz.events.base import SchedulerEvent, TaskEvent, TaskSubmissionEvent
    from asyncz.events.constants import (
        ALL_EVENTS,
        SCHEDULER_START,
        SCHEDULER_STARTED,
        TASK_ADDED,
        TASK_REMOVED,
    )
    from asyncz.schedulers.asyncio import AsyncIOScheduler

    assert SCHEDULER_STARTED == SCHEDULER_START == ev.SCHEDULER_START
    assert ev.SCHEDULER_STARTED == SCHEDULER_STARTED
    assert ev.event_name(SCHEDULER_STARTED) == "SCHEDULER_START"
    assert ev.TASK_ADDED == TASK_ADDED and ALL_EVENTS == ev.ALL_EVENTS
    assert TaskSubmissionEvent is ev.TaskSubmissionEvent and issubclass(TaskEvent, SchedulerEvent)

    seen: list[SchedulerEvent] = []
    scheduler = AsyncIOScheduler(timezone="UTC")
    scheduler.add_listener(seen.append, TASK_ADDED | TASK_REMOVED | SCHEDULER_STARTED)
    with scheduler:
        scheduler.add_task(print, "interval", minutes=5, id="every-5")
        scheduler.delete_task("every-5")
    codes = [event.code for event in seen]
    assert codes == [SCHEDULER_STARTED, TASK_ADDED, TASK_REMOVED]
    assert isinstance(seen[1], TaskEvent) and seen[1].task_id == "every-5"


def test_the_asyncz_event_modules_list_every_code_and_class() -> None:
    # Both modules re-export by hand (a static __all__ for type checkers): a new code or
    # event class added to asyncz.events must not be forgotten there.
    from asyncz import events as ev
    from asyncz.events import base, constants

    codes = {n for n in ev.__all__ if n.isupper()}
    classes = {n for n in ev.__all__ if isinstance(getattr(ev, n), type)}
    assert codes and classes
    assert set(constants.__all__) == codes
    assert set(base.__all__) == classes
    assert all(getattr(constants, n) == getattr(ev, n) for n in codes)
    assert all(getattr(base, n) is getattr(ev, n) for n in classes)


def test_asyncz_exception_names_are_ours_with_a_warning() -> None:
    from asyncz import exceptions
    from asyncz.schedulers.asyncio import AsyncIOScheduler

    with pytest.warns(DeprecationWarning, match="use asyncz.exceptions.ConflictingIdError"):
        from asyncz.exceptions import ConflictIdError
    with pytest.warns(DeprecationWarning, match="MaxInstancesReachedError"):
        from asyncz.exceptions import MaximumInstancesError
    with pytest.warns(DeprecationWarning, match="AsynczError"):
        from asyncz.exceptions import AsynczException
    assert ConflictIdError is exceptions.ConflictingIdError
    assert MaximumInstancesError is exceptions.MaxInstancesReachedError
    assert AsynczException is exceptions.AsynczError

    scheduler = AsyncIOScheduler(timezone="UTC")
    scheduler.add_task(print, "interval", minutes=5, id="once")
    with pytest.raises(ConflictIdError, match="'once'"):
        scheduler.add_task(print, "interval", minutes=5, id="once")
    with pytest.raises(AsynczException):
        scheduler.add_task(print, "interval", minutes=5, id="once")
    with pytest.raises(AttributeError, match="NoSuchError"):
        exceptions.NoSuchError  # noqa: B018


def test_make_function_runs_a_generator_lifecycle() -> None:
    # Asyncz's "lifecycle" example: a generator driven by an interval task and closed by a
    # shutdown task, its builtin ``send`` wrapped by make_function.
    from asyncz.schedulers import AsyncIOScheduler
    from asyncz.utils import make_function

    scheduler = AsyncIOScheduler(timezone="UTC")
    phases: list[str] = []

    def lifecycle_task():  # type: ignore[no-untyped-def]
        phases.append("setup")
        scheduler.add_task(make_function(generator.send), args=[False], trigger="shutdown")
        running = yield
        while running:
            phases.append("tick")
            running = yield
        phases.append("cleanup")

    generator = lifecycle_task()
    generator.send(None)
    scheduler.add_task(make_function(generator.send), args=[True], trigger="interval", seconds=0.05)
    scheduler.start()
    try:
        wait_until_sync(lambda: phases.count("tick") >= 2)
    finally:
        scheduler.stop()  # runs the shutdown task: the generator ends (StopIteration, logged)
    assert phases[0] == "setup" and phases[-1] == "cleanup"


async def test_make_async_function_runs_on_the_loop() -> None:
    from asyncz.schedulers import AsyncIOScheduler
    from asyncz.utils import make_async_function

    values: list[int] = []

    async def produce():  # type: ignore[no-untyped-def]
        while True:
            value = yield
            values.append(value)

    agen = produce()
    await agen.asend(None)
    fn = make_async_function(agen.asend)
    scheduler = AsyncIOScheduler(timezone="UTC")
    with scheduler:
        scheduler.add_task(fn, args=[7])
        await wait_until(lambda: values == [7])
    await agen.aclose()


def test_file_lock_protected_maps_onto_the_file_lock(tmp_path: Path) -> None:
    from asyncz.locks import FileLockProtected

    template = str(tmp_path / "asyncz_bg_{pgrp}.lock")
    first, second = FileLockProtected(template), FileLockProtected(template)
    assert "{pgrp}" not in first.file_path
    with first.protected(False) as got_first:
        with second.protected(False) as got_second:
            assert (got_first, got_second) == (True, False)
        with first.protected(blocking=True, timeout=0.05) as nested:
            assert nested is False  # every protected() block is a holder of its own
    with second.protected(False) as got_second:
        assert got_second is True
    first.shutdown()
    assert not Path(first.file_path).exists()


def test_task_type_names_our_task() -> None:
    from asyncz.tasks import Task
    from asyncz.tasks.types import TaskType

    assert TaskType is Task


def test_enums_and_alias_tables_under_asyncz_module_names() -> None:
    from asyncz.enums import SchedulerState, TaskScheduleState
    from asyncz.schedulers import defaults
    from asyncz.schedulers.asyncio import AsyncIOScheduler
    from asyncz.schedulers.base import SchedulerState as OurSchedulerState
    from asyncz.tasks import ScheduleState

    assert SchedulerState is OurSchedulerState and TaskScheduleState is ScheduleState
    assert defaults.stores["memory"] == "asyncz.stores.memory:MemoryStore"
    assert defaults.executors["threadpool"] == "asyncz.executors.pool:ThreadPoolExecutor"
    assert {"date", "interval", "cron", "and", "or", "shutdown"} <= set(defaults.triggers)
    scheduler = AsyncIOScheduler(timezone="UTC")
    with scheduler:
        assert scheduler.state is SchedulerState.STATE_RUNNING
        scheduler.add_task(print, "interval", minutes=1, id="p", next_run_time=None)
        assert [
            i.id for i in scheduler.get_task_infos(schedule_state=TaskScheduleState.PAUSED)
        ] == ["p"]


def test_a_custom_executor_with_asyncz_method_names() -> None:
    # Asyncz's custom-executor example names its methods send_task / do_send_task.
    from datetime import datetime

    from asyncz.executors.base import BaseExecutor
    from asyncz.schedulers import AsyncIOScheduler
    from asyncz.tasks.types import TaskType

    class InlineExecutor(BaseExecutor):
        def do_send_task(self, task: TaskType, run_times: list[datetime]) -> None:
            self.run_sync(task, run_times)

    ran: list[str] = []
    scheduler = AsyncIOScheduler(timezone="UTC")
    scheduler.add_executor(InlineExecutor(), "inline")
    scheduler.add_task(ran.append, args=["done"], executor="inline")
    with scheduler:
        wait_until_sync(lambda: ran == ["done"])
    with pytest.raises(NotImplementedError, match="do_submit"):
        BaseExecutor.do_send_task(InlineExecutor(), None, [])  # type: ignore[arg-type]

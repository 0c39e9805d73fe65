"""The scheduler's task API, running semantics and events, on the memory store."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from asyncz import events as ev
from asyncz.exceptions import ConfigurationError, ConflictingIdError, TaskLookupError
from asyncz.executors.asyncio import AsyncIOExecutor
from asyncz.executors.pool import ThreadPoolExecutor
from asyncz.schedulers.asyncio import AsyncIOScheduler
from asyncz.stores.memory import MemoryStore
from asyncz.tasks import ScheduleState, Task
from asyncz.triggers import DateTrigger, IntervalTrigger

UTC = timezone.utc

calls: list[object] = []


def record(value: object = "ran") -> object:
    calls.append(value)
    return value


async def arecord(value: object = "ran") -> object:
    calls.append(value)
    return value


def two_args(a: int, b: int) -> int:
    return a + b


@pytest.fixture(autouse=True)
def _clear_calls() -> None:
    calls.clear()


def collect(scheduler: AsyncIOScheduler, mask: int = ev.ALL_EVENTS) -> list[ev.SchedulerEvent]:
    seen: list[ev.SchedulerEvent] = []
    scheduler.add_listener(seen.append, mask)
    return seen


async def wait_for(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


def soon(seconds: float = 0.05) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


async def test_defaults_are_a_memory_store_and_an_asyncio_executor() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    assert scheduler.stores == {} and scheduler.executors == {}
    scheduler.start()
    try:
        assert isinstance(scheduler.stores["default"], MemoryStore)
        assert isinstance(scheduler.executors["default"], AsyncIOExecutor)
    finally:
        scheduler.shutdown()


async def test_pending_task_is_committed_at_start_and_runs() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    task = scheduler.add_task(arecord, "date", run_at=soon(), args=["x"], id="t1")
    info = scheduler.get_task_info("t1")
    assert info is not None and info.schedule_state is ScheduleState.PENDING
    seen = collect(scheduler)
    scheduler.start()
    try:
        assert scheduler.get_task_info("t1").schedule_state is ScheduleState.SCHEDULED
        await wait_for(lambda: calls == ["x"])
        await wait_for(lambda: any(e.code == ev.TASK_EXECUTED for e in seen))
        executed = [e for e in seen if e.code == ev.TASK_EXECUTED][0]
        assert executed.return_value == "x" and executed.task_id == task.id
        assert executed.store == "default"
        # a one-off task is removed after its run, and its submission comes first
        codes = [e.code for e in seen if isinstance(e, ev.TaskEvent)]
        assert codes.index(ev.TASK_SUBMITTED) < codes.index(ev.TASK_REMOVED)
        assert scheduler.get_task("t1") is None
    finally:
        scheduler.shutdown()


async def test_plain_functions_run_in_a_thread_and_coroutines_on_the_loop() -> None:
    loop_thread = threading.get_ident()
    threads: list[int] = []

    def sync_fn() -> None:
        threads.append(threading.get_ident())

    async def async_fn() -> None:
        threads.append(threading.get_ident())

    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.start()
    try:
        scheduler.add_task(sync_fn, "date", run_at=soon(0.01))
        scheduler.add_task(async_fn, "date", run_at=soon(0.01))
        await wait_for(lambda: len(threads) == 2)
        assert loop_thread in threads
        assert any(t != loop_thread for t in threads)
    finally:
        scheduler.shutdown()


async def test_interval_task_runs_repeatedly() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.start()
    try:
        scheduler.add_task(arecord, IntervalTrigger(seconds=0.05), id="tick")
        await wait_for(lambda: len(calls) >= 3)
        info = scheduler.get_task_info("tick")
        assert info.next_run_time > datetime.now(UTC) - timedelta(seconds=0.1)
    finally:
        scheduler.shutdown()


async def test_add_task_checks_arguments_against_the_signature() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    with pytest.raises(TypeError, match="two_args"):
        scheduler.add_task(two_args, "interval", minutes=1, args=[1])
    task = scheduler.add_task(two_args, "interval", minutes=1, args=[1, 2])
    assert task.args == (1, 2)


async def test_callable_given_as_reference_string() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.start()
    try:
        task = scheduler.add_task(f"{__name__}:arecord", "date", run_at=soon(0.01), args=["ref"])
        assert task.fn is arecord and task.fn_reference == f"{__name__}:arecord"
        await wait_for(lambda: calls == ["ref"])
    finally:
        scheduler.shutdown()


async def test_unknown_trigger_option_is_an_error_naming_it() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    with pytest.raises((TypeError, ValueError), match="secnds"):
        scheduler.add_task(record, "interval", secnds=5)


async def test_decorator_mode_returns_the_function_with_its_tasks() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)

    @scheduler.add_task(trigger=IntervalTrigger(minutes=2), max_instances=1, coalesce=True)
    def collect_info() -> str:
        return "info"

    assert collect_info() == "info"
    assert len(collect_info.asyncz_tasks) == 1  # type: ignore[attr-defined]
    task = collect_info.asyncz_tasks[0]  # type: ignore[attr-defined]
    assert task.fn is collect_info and task.coalesce is True
    assert [t.id for t in scheduler.get_tasks()] == [task.id]


async def test_a_task_object_is_submitted_once() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    task = Task(fn=record, args=["a"], trigger=IntervalTrigger(minutes=10), max_instances=1)
    added = scheduler.add_task(task)
    assert added is task and task.max_instances == 1
    assert task.coalesce is True and task.misfire_grace_time == 1.0  # scheduler defaults
    with pytest.raises(ValueError, match=r"already submitted|added once"):
        scheduler.add_task(task)


async def test_duplicate_ids_conflict_unless_replace_existing() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.start()
    try:
        scheduler.add_task(record, "interval", minutes=1, id="same")
        with pytest.raises(ConflictingIdError, match="same"):
            scheduler.add_task(record, "interval", minutes=1, id="same")
        scheduler.add_task(record, "interval", minutes=5, id="same", replace_existing=True)
        assert len(scheduler.get_tasks()) == 1
        assert str(scheduler.get_task("same").trigger).startswith("interval")
    finally:
        scheduler.shutdown()


async def test_next_run_time_none_adds_the_task_paused() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.start()
    try:
        scheduler.add_task(record, "interval", minutes=10, id="p", next_run_time=None)
        info = scheduler.get_task_info("p")
        assert info.schedule_state is ScheduleState.PAUSED and info.next_run_time is None
        scheduler.resume_task("p")
        assert scheduler.get_task_info("p").schedule_state is ScheduleState.SCHEDULED
    finally:
        scheduler.shutdown()


async def test_pause_and_resume_of_a_pending_task_take_effect_at_start() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    paused = scheduler.add_task(record, "cron", hour="0-23", minute="1")
    paused.pause()
    resumed = scheduler.add_task(record, "cron", hour="0-23", minute="1")
    resumed.pause()
    resumed.resume()
    scheduler.start()
    try:
        assert scheduler.get_task_info(paused.id).schedule_state is ScheduleState.PAUSED
        assert scheduler.get_task_info(resumed.id).schedule_state is ScheduleState.SCHEDULED
    finally:
        scheduler.shutdown()


async def test_update_reschedule_pause_resume_delete() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    seen = collect(scheduler, ev.TASK_MODIFIED | ev.TASK_REMOVED)
    scheduler.start()
    try:
        task = scheduler.add_task(record, "interval", minutes=10, id="job")
        scheduler.update_task("job", coalesce=False, max_instances=4)
        assert scheduler.get_task("job").max_instances == 4
        scheduler.update_task(task, coalesce=True, max_instances=3)
        assert task.max_instances == 3 and task.coalesce is True
        scheduler.reschedule_task("job", trigger="cron", day_of_week="mon", hour="1")
        assert scheduler.get_task_info("job").trigger_alias == "cron"
        nxt = scheduler.get_task_info("job").next_run_time
        assert nxt.hour == 1 and nxt.weekday() == 0
        scheduler.pause_task("job")
        assert scheduler.get_task_info("job").paused
        scheduler.resume_task("job")
        assert scheduler.get_task_info("job").schedule_state is ScheduleState.SCHEDULED
        scheduler.delete_task("job")
        assert scheduler.get_task("job") is None
        with pytest.raises(TaskLookupError, match="job"):
            scheduler.delete_task("job")
        assert [e.code for e in seen].count(ev.TASK_MODIFIED) >= 4
        assert seen[-1].code == ev.TASK_REMOVED
    finally:
        scheduler.shutdown()


async def test_task_methods_go_through_the_scheduler() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.start()
    try:
        task = scheduler.add_task(record, "interval", minutes=10)
        task.pause()
        assert scheduler.get_task_info(task.id).paused and task.next_run_time is None
        task.resume()
        assert task.next_run_time is not None
        task.update(name="renamed")
        assert scheduler.get_task_info(task.id).name == "renamed"
        task.reschedule("interval", minutes=3)
        assert "0:03:00" in scheduler.get_task_info(task.id).trigger_description
        snapshot = task.snapshot()
        assert snapshot.id == task.id and snapshot.name == "renamed"
        with pytest.raises(AttributeError):
            snapshot.name = "x"  # type: ignore[misc]
        task.delete()
        assert scheduler.get_tasks() == []
    finally:
        scheduler.shutdown()


async def test_remove_all_tasks_per_store_and_everywhere() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC, stores={"other": MemoryStore()})
    scheduler.start()
    try:
        scheduler.add_task(record, "interval", minutes=1)
        scheduler.add_task(record, "interval", minutes=1, store="other")
        scheduler.remove_all_tasks("other")
        assert [t.store_alias for t in scheduler.get_tasks()] == ["default"]
        scheduler.add_task(record, "interval", minutes=1, store="other")
        scheduler.remove_all_tasks()
        assert scheduler.get_tasks() == []
    finally:
        scheduler.shutdown()


async def test_run_task_submits_manually_and_keeps_or_removes_finished_tasks() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    seen = collect(scheduler, ev.TASK_SUBMITTED)
    scheduler.add_task(arecord, "interval", minutes=30, id="cleanup", args=["c"])
    far = datetime.now(UTC) + timedelta(days=1)
    scheduler.add_task(arecord, "date", run_at=far, id="once", args=["o"])
    scheduler.add_task(arecord, "date", run_at=far, id="once-kept", args=["k"])
    scheduler.start(paused=True)
    try:
        scheduler.run_task("cleanup", remove_finished=False)
        await wait_for(lambda: "c" in calls)
        assert seen[-1].source == "manual" and seen[-1].task_id == "cleanup"
        assert scheduler.get_task_info("cleanup").schedule_state is ScheduleState.SCHEDULED

        assert scheduler.run_task("once") is None  # exhausted: removed
        assert scheduler.get_task("once") is None
        kept = scheduler.run_task("once-kept", remove_finished=False)
        assert kept is not None and scheduler.get_task_info("once-kept").paused
        await wait_for(lambda: {"o", "k"} <= set(calls))
    finally:
        scheduler.shutdown()


@pytest.mark.parametrize("kind", ["memory", "file", "sqlite"])
def test_run_task_recomputes_and_persists_the_next_run_time(kind: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    def stores() -> dict[str, object]:
        if kind == "file":
            return {"default": {"type": "file", "directory": str(tmp_path / "tasks")}}
        if kind == "sqlite":
            pytest.importorskip("asyncz_sqlalchemy")
            return {"default": {"type": "sqlite", "url": f"sqlite:///{tmp_path / 'tasks.db'}"}}
        return {}

    scheduler = AsyncIOScheduler(timezone=UTC, stores=stores())
    far = datetime.now(UTC) + timedelta(days=2)
    scheduler.add_task(record, "interval", minutes=30, id="cleanup", next_run_time=far)
    scheduler.start(paused=True)
    try:
        assert scheduler.get_task_info("cleanup").next_run_time == far
        scheduler.run_task("cleanup")
        ran_at = datetime.now(UTC)
        after = scheduler.get_task_info("cleanup").next_run_time
        # The trigger's next fire time after the manual run, not the stored one.
        assert ran_at + timedelta(minutes=29) < after <= ran_at + timedelta(minutes=30)
        deadline = time.monotonic() + 5
        while calls != ["ran"] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert calls == ["ran"]
    finally:
        scheduler.shutdown()
    if kind != "memory":
        again = AsyncIOScheduler(timezone=UTC, stores=stores())
        again.start(paused=True)
        try:
            assert again.get_task_info("cleanup").next_run_time == after  # persisted
        finally:
            again.shutdown()


def test_remove_listener_removes_a_bound_method() -> None:
    class Audit:
        def __init__(self) -> None:
            self.seen: list[int] = []

        def on_event(self, event: ev.SchedulerEvent) -> None:
            self.seen.append(event.code)

    audit = Audit()
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.add_listener(audit.on_event)  # each ``audit.on_event`` is a new object
    scheduler.remove_listener(audit.on_event)
    scheduler.start()
    scheduler.shutdown()
    assert audit.seen == []


async def test_inspection_filters_search_and_sorting() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.add_task(record, "interval", minutes=30, id="cleanup", name="Nightly cleanup")
    scheduler.add_task(record, "cron", hour="3", id="report", executor="pool")
    scheduler.add_executor(ThreadPoolExecutor(max_workers=2), "pool")
    scheduler.add_task(record, "interval", minutes=5, id="paused", next_run_time=None)
    pending = scheduler.get_task_infos(schedule_state="pending")
    assert {i.id for i in pending} == {"cleanup", "report", "paused"}
    scheduler.start()
    try:
        scheduled = scheduler.get_task_infos(
            schedule_state="scheduled", trigger="interval", q="CLEANUP", sort_by="next_run_time"
        )
        assert [i.id for i in scheduled] == ["cleanup"]
        assert [i.id for i in scheduler.get_task_infos(executor="pool")] == ["report"]
        assert [i.id for i in scheduler.get_task_infos(q="record")] != []  # callable name
        by_id = scheduler.get_task_infos(sort_by="id", descending=True)
        assert [i.id for i in by_id] == ["report", "paused", "cleanup"]
        ordered = scheduler.get_task_infos()
        assert ordered[-1].id == "paused"  # no next run time sorts last
        with pytest.raises(ValueError, match="next_run_time"):
            scheduler.get_task_infos(sort_by="colour")
        with pytest.raises(ValueError, match="scheduled"):
            scheduler.get_task_infos(schedule_state="sleeping")
        runs = scheduler.preview_task_runs("cleanup", count=3)
        assert len(runs) == 3 and runs[1] - runs[0] == timedelta(minutes=30)
        info = scheduler.get_scheduler_info()
        assert info["tasks_by_state"]["scheduled"] == 2 and info["tasks_by_state"]["paused"] == 1
    finally:
        scheduler.shutdown()


async def test_coalesce_folds_missed_runs_into_one() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC, task_defaults={"misfire_grace_time": None})
    seen = collect(scheduler, ev.TASK_SUBMITTED)
    past = datetime.now(UTC) - timedelta(seconds=10)
    trigger = IntervalTrigger(seconds=1, start_at=past)
    scheduler.add_task(arecord, trigger, id="c", next_run_time=past)
    scheduler.add_task(
        arecord,
        IntervalTrigger(seconds=1, start_at=past),
        id="n",
        next_run_time=past,
        coalesce=False,
        max_instances=20,
    )
    scheduler.start()
    try:
        await wait_for(lambda: {e.task_id for e in seen} == {"c", "n"})
        folded = [e for e in seen if e.task_id == "c"][0]
        assert len(folded.scheduled_run_times) == 1
        assert folded.coalesced_run_count >= 9
        unfolded = [e for e in seen if e.task_id == "n"][0]
        assert len(unfolded.scheduled_run_times) >= 10 and unfolded.coalesced_run_count == 0
    finally:
        scheduler.shutdown()


async def test_without_coalesce_the_late_runs_are_missed_and_the_recent_ones_submitted() -> None:
    # Every 10 s since 105 s ago, 50 s of grace: 6 runs are late (105 ... 55 s), 5 on time
    # (45 ... 5 s): one pass reports the six and submits the five together.
    scheduler = AsyncIOScheduler(timezone=UTC)
    seen = collect(scheduler, ev.TASK_MISSED | ev.TASK_SUBMITTED | ev.TASK_RUNS_DROPPED)
    past = datetime.now(UTC) - timedelta(seconds=105)
    scheduler.add_task(
        arecord,
        IntervalTrigger(seconds=10, start_at=past),
        id="n",
        next_run_time=past,
        coalesce=False,
        misfire_grace_time=50,
        max_instances=20,
    )
    scheduler.start()
    try:
        await wait_for(lambda: any(e.code == ev.TASK_SUBMITTED for e in seen))
        missed = [e.scheduled_run_time for e in seen if e.code == ev.TASK_MISSED]
        (submitted,) = [e for e in seen if e.code == ev.TASK_SUBMITTED]
        (dropped,) = [e for e in seen if e.code == ev.TASK_RUNS_DROPPED]
        expected = [past + timedelta(seconds=10 * i) for i in range(11)]
        assert missed == expected[:6]
        assert submitted.scheduled_run_times == expected[6:]
        assert submitted.coalesced_run_count == 0
        assert (dropped.missed, dropped.folded) == (6, 0)
        assert (dropped.first, dropped.last) == (expected[0], expected[5])
    finally:
        scheduler.shutdown()


async def test_a_run_later_than_its_grace_time_is_reported_missed() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    seen = collect(scheduler, ev.TASK_MISSED | ev.TASK_SUBMITTED)
    late = datetime.now(UTC) - timedelta(seconds=30)
    scheduler.add_task(arecord, "date", run_at=late, id="late", misfire_grace_time=1)
    scheduler.start()
    try:
        await wait_for(lambda: seen)
        assert [e.code for e in seen] == [ev.TASK_MISSED]
        assert seen[0].scheduled_run_time == late
        await asyncio.sleep(0.05)
        assert calls == []
    finally:
        scheduler.shutdown()


async def test_max_instances_skips_the_run_and_the_schedule_advances() -> None:
    release = asyncio.Event()

    async def slow() -> None:
        await release.wait()

    scheduler = AsyncIOScheduler(timezone=UTC)
    seen = collect(scheduler, ev.TASK_MAX_INSTANCES | ev.TASK_SUBMITTED)
    scheduler.start()
    try:
        scheduler.add_task(slow, IntervalTrigger(seconds=0.05), id="slow", max_instances=1)
        await wait_for(lambda: any(e.code == ev.TASK_MAX_INSTANCES for e in seen))
        assert seen[0].code == ev.TASK_SUBMITTED
        assert scheduler.get_task_info("slow").next_run_time > datetime.now(UTC) - timedelta(
            seconds=0.1
        )
    finally:
        release.set()
        scheduler.shutdown()


async def test_an_error_in_a_task_is_reported_and_the_scheduler_goes_on() -> None:
    def boom() -> None:
        raise RuntimeError("kaboom")

    scheduler = AsyncIOScheduler(timezone=UTC)
    seen = collect(scheduler, ev.TASK_ERROR)
    scheduler.start()
    try:
        scheduler.add_task(boom, "date", run_at=soon(0.01))
        scheduler.add_task(arecord, "date", run_at=soon(0.02), args=["after"])
        await wait_for(lambda: seen and calls == ["after"])
        assert isinstance(seen[0].exception, RuntimeError)
        assert "kaboom" in seen[0].traceback
    finally:
        scheduler.shutdown()


async def test_thread_pool_awaits_coroutine_functions() -> None:
    ran_in: list[str] = []

    async def coro() -> str:
        ran_in.append(threading.current_thread().name)
        await asyncio.sleep(0)
        return "awaited"

    scheduler = AsyncIOScheduler(timezone=UTC, executors={"pool": ThreadPoolExecutor(2)})
    seen = collect(scheduler, ev.TASK_EXECUTED)
    scheduler.start()
    try:
        scheduler.add_task(coro, "date", run_at=soon(0.01), executor="pool")
        await wait_for(lambda: seen)
        assert seen[0].return_value == "awaited"
        assert ran_in and ran_in[0].startswith("asyncz-pool")
    finally:
        scheduler.shutdown()


def square(x: int) -> int:
    return x * x


async def test_process_pool_runs_in_a_child_process() -> None:
    scheduler = AsyncIOScheduler(
        timezone=UTC,
        global_config={"asyncz.executors.procs": {"type": "processpool", "max_workers": "1"}},
    )
    seen = collect(scheduler, ev.TASK_EXECUTED | ev.TASK_ERROR)
    scheduler.start()
    try:
        scheduler.add_task(square, "date", run_at=soon(0.01), args=[7], executor="procs")
        await wait_for(lambda: seen, timeout=30)
        assert seen[0].code == ev.TASK_EXECUTED and seen[0].return_value == 49
    finally:
        scheduler.shutdown()


async def test_debug_executor_runs_inline() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.add_executor("debug", "inline")
    scheduler.start()
    try:
        scheduler.add_task(record, "date", run_at=soon(0.01), executor="inline", args=["d"])
        await wait_for(lambda: calls == ["d"])
    finally:
        scheduler.shutdown()


async def test_sync_api_works_from_another_thread_while_running() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.start()
    try:
        result: list[object] = []

        def worker() -> None:
            task = scheduler.add_task(arecord, "date", run_at=soon(0.01), args=["thread"])
            result.append(task.id)

        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
        await wait_for(lambda: calls == ["thread"])
        assert result
    finally:
        scheduler.shutdown()


async def test_adding_many_tasks_wakes_the_loop_once() -> None:
    passes: list[int] = []

    scheduler = AsyncIOScheduler(timezone=UTC)
    one_pass = scheduler._processor.process

    async def counting():  # type: ignore[no-untyped-def]
        passes.append(1)
        return await one_pass()

    scheduler._processor.process = counting  # type: ignore[method-assign]
    scheduler.start()
    try:
        await wait_for(lambda: len(passes) == 1)  # the first pass, at start
        run_at = datetime.now(UTC) + timedelta(seconds=3)
        # No grace time: how long 10,000 runs take to submit depends on the machine, and a
        # run submitted past its grace time is missed by design.
        for _ in range(10_000):
            scheduler.add_task(record, DateTrigger(run_at), misfire_grace_time=None)
        await wait_for(lambda: len(calls) == 10_000, timeout=60)
    finally:
        scheduler.shutdown()
    # After the pass at start: one woken by the 10,000 adds and one at the due instant,
    # which submits every batch (a single one when the adds outlast the 3 s).
    assert 1 <= len(passes) - 1 <= 2


async def test_scheduler_pause_and_resume() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    seen = collect(scheduler, ev.SCHEDULER_PAUSED | ev.SCHEDULER_RESUMED)
    scheduler.start(paused=True)
    try:
        scheduler.add_task(arecord, "date", run_at=soon(0.01), args=["p"])
        await asyncio.sleep(0.1)
        assert calls == []
        scheduler.resume()
        await wait_for(lambda: calls == ["p"])
        scheduler.pause()
        assert [e.code for e in seen] == [ev.SCHEDULER_RESUMED, ev.SCHEDULER_PAUSED]
    finally:
        scheduler.shutdown()


async def test_stores_and_executors_by_alias() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    seen = collect(scheduler, ev.STORE_ADDED | ev.STORE_REMOVED | ev.EXECUTOR_ADDED)
    scheduler.add_store("memory", "extra")
    scheduler.add_executor("threadpool", "pool", max_workers="3")
    assert isinstance(scheduler.lookup_store("extra"), MemoryStore)
    assert scheduler.lookup_executor("pool").max_workers == 3
    with pytest.raises(KeyError, match="extra"):
        scheduler.lookup_store("nope")
    with pytest.raises(ValueError, match="already"):
        scheduler.add_store(MemoryStore(), "extra")
    scheduler.remove_store("extra")
    assert "extra" not in scheduler.stores
    assert [e.code for e in seen] == [ev.STORE_ADDED, ev.EXECUTOR_ADDED, ev.STORE_REMOVED]
    with pytest.raises(ConfigurationError, match=r"asyncz\.stores\.cache\.type.*memory"):
        scheduler.add_store("no-such-store", "cache")


async def test_setup_reconfigures_a_stopped_scheduler_and_keeps_tasks() -> None:
    scheduler = AsyncIOScheduler()
    for _ in range(3):
        scheduler.add_task(record, "interval", minutes=1)
    scheduler.setup(
        stores={"default": MemoryStore()},
        executors={"default": AsyncIOExecutor(), "threadpool": ThreadPoolExecutor(max_workers=20)},
        task_defaults={"coalesce": False, "max_instances": 4},
        timezone=UTC,
    )
    assert scheduler.timezone is UTC
    with scheduler:
        tasks = scheduler.get_tasks()
        assert len(tasks) == 3
        assert scheduler.executors["threadpool"].max_workers == 20
        with pytest.raises(RuntimeError, match="running"):
            scheduler.setup(timezone=UTC)


async def test_configuration_errors_name_the_dotted_key() -> None:
    with pytest.raises(ConfigurationError, match=r"asyncz\.task_defaults\.max_instances"):
        AsyncIOScheduler(global_config={"asyncz.task_defaults.max_instances": "zero"})
    with pytest.raises(ConfigurationError, match=r"asyncz\.executors\.pool\.max_workrs"):
        AsyncIOScheduler(
            global_config={"asyncz.executors.pool": {"type": "threadpool", "max_workrs": "2"}}
        )
    with pytest.raises(ConfigurationError, match=r"asyncz\.stores\.mongo\.type.*Installed:"):
        AsyncIOScheduler(global_config={"asyncz.stores.mongo": {"type": "mongodbb"}})


async def test_listener_errors_do_not_stop_dispatch() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    seen = []

    def broken(event: ev.SchedulerEvent) -> None:
        raise ValueError("listener bug")

    scheduler.add_listener(broken)
    scheduler.add_listener(seen.append, ev.SCHEDULER_START)
    scheduler.start()
    scheduler.shutdown()
    assert [e.code for e in seen] == [ev.SCHEDULER_START]
    scheduler.remove_listener(seen.append)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_does_not_repeat_its_parents_generated_ids() -> None:
    from asyncz.tasks import Task

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report the id of its first task and leave at once
        os.close(read)
        os.write(write, Task(print).id.encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child_id = pipe.read()
    os.waitpid(pid, 0)
    parent_ids = {Task(print).id for _ in range(3)}
    assert child_id and child_id not in parent_ids
    assert child_id[:16] != next(iter(parent_ids))[:16]

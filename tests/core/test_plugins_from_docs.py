"""A new store, a new executor and a new trigger, written from docs/writing-a-store-plugin.md,
docs/writing-an-executor-plugin.md and docs/writing-a-trigger-plugin.md with public names
only: the store passes the store contract, the executor runs tasks with every report (events
and hooks) a built-in executor gives, and the trigger, registered by alias, is added by that
alias, kept in the file store across a restart and fired."""

from __future__ import annotations

import ast
import inspect
import sys
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any

import pytest

from asyncz import events as ev
from asyncz import hookimpl
from asyncz.abc import RunReporter, SchedulerHandle
from asyncz.exceptions import ConflictingIdError, TaskLookupError, TaskRestoreError
from asyncz.executors.base import BaseExecutor
from asyncz.plugins import get_plugin_manager
from asyncz.registry import deregister, register
from asyncz.schedulers.asyncio import AsyncIOScheduler
from asyncz.stores.base import BaseStore, PersistentStore
from asyncz.stores.file import FileStore
from asyncz.tasks import Task
from asyncz.testing import StoreContract, wait_until
from asyncz.triggers import BaseTrigger
from asyncz.triggers.base import check_options

UTC = timezone.utc

#: The "backend" of the store: namespace -> task id -> (next run time, payload).
BACKENDS: dict[str, dict[str, tuple[datetime | None, bytes]]] = {}


# -- the plugins (public names only: checked by test_the_plugins_use_public_names_only) -----
class BytesStore(PersistentStore):
    """Serialized tasks in a dict shared by every instance with the same namespace."""

    def __init__(self, namespace: str, **options: Any) -> None:
        super().__init__(**options)
        self.rows = BACKENDS.setdefault(namespace, {})

    def restored(self) -> list[Task]:
        tasks = []
        for task_id, (_, payload) in list(self.rows.items()):
            try:
                tasks.append(self.decode_task(task_id, payload))
            except TaskRestoreError as exc:
                self.report_unrestorable(task_id, exc.reason)
        far = datetime.max.replace(tzinfo=UTC)
        return sorted(tasks, key=lambda t: (t.next_run_time is None, t.next_run_time or far))

    @staticmethod
    def when(task: Task) -> datetime | None:
        return task.next_run_time if isinstance(task.next_run_time, datetime) else None

    async def lookup_task(self, task_id: str) -> Task | None:
        return next((t for t in self.restored() if t.id == task_id), None)

    async def get_due_tasks(self, now: datetime, limit: int | None = None) -> list[Task]:
        due = [t for t in self.restored() if t.next_run_time and t.next_run_time <= now]
        return due if limit is None else due[:limit]

    async def get_next_run_time(self) -> datetime | None:
        return next((t.next_run_time for t in self.restored() if t.next_run_time), None)

    async def get_all_tasks(self) -> list[Task]:
        return self.restored()

    async def add_task(self, task: Task) -> None:
        if task.id in self.rows:
            raise ConflictingIdError(task.id)
        self.rows[task.id] = (self.when(task), self.encode_task(task))

    async def update_task(self, task: Task) -> None:
        if task.id not in self.rows:
            raise TaskLookupError(task.id)
        self.rows[task.id] = (self.when(task), self.encode_task(task))

    async def delete_task(self, task_id: str) -> None:
        if self.rows.pop(task_id, None) is None:
            raise TaskLookupError(task_id)

    async def remove_all_tasks(self) -> None:
        self.rows.clear()

    async def get_unrestorable(self) -> dict[str, str]:
        broken = {}
        for task_id, (_, payload) in list(self.rows.items()):
            try:
                self.decode_task(task_id, payload)
            except TaskRestoreError as exc:
                broken[task_id] = exc.reason
        return broken


class ThreadPerRunExecutor(BaseExecutor):
    """Runs each submission on a daemon thread of its own, reporting by hand."""

    def do_submit(self, task: Task, run_times: list[datetime]) -> None:
        threading.Thread(target=self.run, args=(task, run_times), daemon=True).start()

    def run(self, task: Task, run_times: list[datetime]) -> None:
        try:
            for run_time in run_times:
                self.reporter.started(task, run_time)
                try:
                    assert task.fn is not None
                    value = task.fn(*task.args, **task.kwargs)
                except Exception as exc:
                    self.run_finished(task, run_time, exception=exc)
                else:
                    self.run_finished(task, run_time, return_value=value)
        finally:
            self.finish_instance(task.id)


class CountdownTrigger(BaseTrigger):
    """Fires ``times`` times, ``every`` seconds apart, from ``start_at`` on."""

    alias = "countdown-from-docs"

    def __init__(
        self, start_at: datetime, every: float = 1.0, times: int = 3, **unknown: Any
    ) -> None:
        super().__init__()
        check_options(type(self).__name__, unknown, ("start_at", "every", "times"))
        if every <= 0 or times < 1:
            raise ValueError("every must be positive and times at least 1")
        self.start_at = start_at
        self.every = every
        self.times = times

    def fire_time(self, index: int) -> datetime:
        return self.start_at + timedelta(seconds=self.every * index)

    def get_next_trigger_time(
        self, timezone: tzinfo, previous_time: datetime | None, now: datetime | None = None
    ) -> datetime | None:
        # Bounded: at most `times` candidates, then None (the task is done).
        for index in range(self.times):
            fire = self.fire_time(index)
            if previous_time is not None and fire > previous_time:
                return fire.astimezone(timezone)
            if previous_time is None and fire >= (now or datetime.now(timezone)):
                return fire.astimezone(timezone)
        return None


PLUGINS: Sequence[type] = (BytesStore, ThreadPerRunExecutor, CountdownTrigger)


# -- the store contract --------------------------------------------------------------------
class TestBytesStore(StoreContract):
    def make_store(self) -> BaseStore:
        return BytesStore(self.namespace)

    def overwrite_payload(self, store: BaseStore, task_id: str, payload: bytes) -> None:
        assert isinstance(store, BytesStore)
        when, _ = store.rows[task_id]
        store.rows[task_id] = (when, payload)


# -- the executor --------------------------------------------------------------------------
def double(x: int) -> int:
    return 2 * x


def fail() -> None:
    raise ValueError("nope")


class HookRecorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    @hookimpl
    def asyncz_task_before_run(self, scheduler: Any, task: Any, run_time: datetime) -> None:
        self.calls.append(("before", task.id))

    @hookimpl
    def asyncz_task_after_run(
        self, task: Any, run_time: datetime, return_value: Any, exception: BaseException | None
    ) -> None:
        self.calls.append(("after", task.id))


@pytest.fixture
def hooks() -> Iterator[HookRecorder]:
    pm = get_plugin_manager()
    recorder = HookRecorder()
    pm.register(recorder, name="test-plugins-from-docs")
    try:
        yield recorder
    finally:
        pm.unregister(name="test-plugins-from-docs")


def test_the_new_executor_reports_every_run(hooks: HookRecorder) -> None:
    events: list[ev.TaskExecutionEvent] = []
    scheduler = AsyncIOScheduler(timezone=UTC, isolated_event_loop=True)
    scheduler.add_executor(ThreadPerRunExecutor(), "threads")
    scheduler.add_listener(events.append, ev.TASK_EXECUTED | ev.TASK_ERROR)  # type: ignore[arg-type]
    scheduler.add_task(double, "date", args=[21], id="double", executor="threads")
    scheduler.add_task(fail, "date", id="fail", executor="threads")
    with scheduler:
        executor = scheduler.executors["threads"]
        assert isinstance(executor.scheduler, SchedulerHandle)
        assert isinstance(executor.reporter, RunReporter)
        wait_until(lambda: len(events) == 2 and len(hooks.calls) == 4, what="two reported runs")
        wait_until(lambda: executor.running() == [], what="both submissions released")
    by_id = {event.task_id: event for event in events}
    assert by_id["double"].code == ev.TASK_EXECUTED and by_id["double"].return_value == 42
    assert by_id["fail"].code == ev.TASK_ERROR
    assert isinstance(by_id["fail"].exception, ValueError)
    assert "ValueError: nope" in (by_id["fail"].traceback or "")
    for task_id in ("double", "fail"):
        assert [c for c in hooks.calls if c[1] == task_id] == [
            ("before", task_id),
            ("after", task_id),
        ]


def test_an_executor_calling_the_earlier_instance_names_still_counts_runs() -> None:
    """``claim``/``release`` were the names of ``start_instance``/``finish_instance``."""
    executor = ThreadPerRunExecutor()
    executor.claim("old", "old-style")
    executor.start_instance("old")
    assert executor.running_instances("old") == 2
    executor.release("old")
    assert executor.running_instances("old") == 1
    executor.finish_instance("old")
    assert executor.running() == []


def test_the_new_store_runs_tasks_under_a_scheduler() -> None:
    namespace = "plugins-from-docs-scheduler"
    ran: list[int] = []
    scheduler = AsyncIOScheduler(
        timezone=UTC, stores={"default": BytesStore(namespace)}, isolated_event_loop=True
    )
    scheduler.add_listener(
        lambda event: ran.append(event.return_value),  # type: ignore[attr-defined]
        ev.TASK_EXECUTED,
    )
    try:
        scheduler.add_task(f"{__name__}:double", "interval", seconds=0.05, args=[2], id="d")
        with scheduler:
            wait_until(lambda: len(ran) >= 2, what="two runs from the new store")
            task = scheduler.get_task("d")
            assert task is not None and task.scheduler is scheduler
            assert task.store_alias == "default" and not task.pending
    finally:
        BACKENDS.pop(namespace, None)
    assert ran[:2] == [4, 4]


def test_the_new_trigger_is_added_by_alias_kept_in_the_file_store_and_fired(
    tmp_path: Path,
) -> None:
    start = datetime.now(UTC) + timedelta(seconds=1)
    expected = CountdownTrigger(start, every=0.2, times=3)
    register("trigger", CountdownTrigger.alias, CountdownTrigger)
    try:
        first = AsyncIOScheduler(
            timezone=UTC, stores={"default": FileStore(tmp_path)}, isolated_event_loop=True
        )
        # Late runs (a slow machine) are neither folded nor dropped: every fire time runs.
        first.add_task(
            f"{__name__}:double",
            CountdownTrigger.alias,
            args=[5],
            id="countdown",
            coalesce=False,
            misfire_grace_time=None,
            start_at=start,
            every=0.2,
            times=3,
        )
        first.start(paused=True)  # the pending task is committed to the file store
        try:
            task = first.get_task("countdown")
            assert task is not None and task.trigger == expected
            # The first fire time at or after the commit (fire_time(0) unless committing
            # took over a second).
            first_run = task.next_run_time
            assert isinstance(first_run, datetime)
        finally:
            first.shutdown()
        stored = [path.read_text(encoding="utf-8") for path in (tmp_path / "tasks").iterdir()]
        assert len(stored) == 1 and f'"{CountdownTrigger.alias}"' in stored[0]

        runs: list[datetime] = []
        second = AsyncIOScheduler(
            timezone=UTC, stores={"default": FileStore(tmp_path)}, isolated_event_loop=True
        )
        second.add_listener(
            lambda event: runs.append(event.scheduled_run_time),  # type: ignore[attr-defined]
            ev.TASK_EXECUTED,
        )
        with second:
            restored = second.get_task("countdown")
            assert restored is not None and restored.trigger == expected
            due = [expected.fire_time(i) for i in range(3) if expected.fire_time(i) >= first_run]
            assert due
            wait_until(lambda: len(runs) == len(due), timeout=30, what="every run of the trigger")
            wait_until(
                lambda: second.get_task("countdown") is None, what="the finished task removed"
            )
    finally:
        deregister("trigger", CountdownTrigger.alias)
    assert runs == due


def test_the_plugins_use_public_names_only() -> None:
    """No import of a private module or name, and no private attribute (``_x``, not a
    dunder) read on anything but ``self`` (the plugin's own)."""
    tree = ast.parse(inspect.getsource(sys.modules[__name__]))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module != "__future__":
            assert not any(part.startswith("_") for part in (node.module or "").split("."))
            assert not any(alias.name.startswith("_") for alias in node.names)
    for plugin in PLUGINS:
        source = ast.parse(inspect.getsource(plugin))
        for node in ast.walk(source):
            if not isinstance(node, ast.Attribute) or not node.attr.startswith("_"):
                continue
            if not node.attr.endswith("__"):  # a dunder (super().__init__) is public
                owner = node.value
                assert isinstance(owner, ast.Name) and owner.id == "self", ast.unparse(node)


def test_stores_executors_and_plugins_of_the_repository_reach_nothing_private() -> None:
    """The check of issue 15: no store, executor or plugin reads ``scheduler._x`` or
    ``task._x`` (the scheduler binds tasks; runs and faults go through public methods)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    reach = re.compile(r"\b(self\.)?(scheduler|_scheduler)\._[a-z]|\btask\._[a-z]")
    dirs = ["asyncz_core/src/asyncz/stores", "asyncz_core/src/asyncz/executors"]
    dirs += ["asyncz_redis", "asyncz_mongo", "plugins"]
    found = []
    for folder in dirs:
        for path in sorted((root / folder).rglob("*.py")):
            if "tests" in path.relative_to(root).parts:
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if reach.search(line):
                    found.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    assert found == []

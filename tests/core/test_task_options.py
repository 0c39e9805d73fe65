"""The task option table (asyncz.tasks.options) against every way a task gets its options.

``add_task`` and ``Task.__init__`` keep explicit signatures; these tests check them, the
settings models and TaskInfo against the table, and that each option given through each way
in reaches the task (so a new row that some way in forgets fails here, by name).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import pytest

from asyncz.schedulers.asyncio import AsyncIOScheduler
from asyncz.schedulers.base import BaseScheduler
from asyncz.settings import TaskDeclaration, TaskDefaults
from asyncz.tasks import Task, TaskInfo
from asyncz.tasks import options as opts
from asyncz.triggers import IntervalTrigger


def work(x: int = 0, y: int = 0) -> None:
    pass


def other_work(x: int = 0, y: int = 0) -> None:
    pass


WHEN = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)

#: Per option: a value to give and a check of what the task holds afterwards.
SAMPLES: dict[str, tuple[Any, Callable[[Any], bool]]] = {
    "fn": (other_work, lambda v: v is other_work),
    "id": ("the-id", lambda v: v == "the-id"),
    "name": ("the name", lambda v: v == "the name"),
    "args": ([1], lambda v: v == (1,)),
    "kwargs": ({"y": 2}, lambda v: v == {"y": 2}),
    "trigger": (IntervalTrigger(hours=3), lambda v: isinstance(v, IntervalTrigger)),
    "executor": ("elsewhere", lambda v: v == "elsewhere"),
    "store": ("other", lambda v: v == "other"),
    "next_run_time": (WHEN, lambda v: v == WHEN),
    "coalesce": (False, lambda v: v is False),
    "max_instances": (7, lambda v: v == 7),
    "misfire_grace_time": (12, lambda v: v == 12.0 and isinstance(v, float)),
    "replace_existing": (True, lambda v: v is True),
    "tags": (["a", "b"], lambda v: v == frozenset({"a", "b"})),
    "timeout": (5, lambda v: v == 5.0 and isinstance(v, float)),
    "retries": (3, lambda v: v == 3),
    "retry_delay": (0.5, lambda v: v == 0.5),
    "retry_backoff": (3, lambda v: v == 3.0),
    "retry_max_delay": (60, lambda v: v == 60.0),
    "retry_jitter": (0.25, lambda v: v == 0.25),
    "overlap": ("buffer_one", lambda v: v == "buffer_one"),
}


def parameters(fn: Callable[..., Any]) -> set[str]:
    return {
        p.name
        for p in inspect.signature(fn).parameters.values()
        if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    }


def test_every_option_has_a_sample() -> None:
    assert set(SAMPLES) == {o.name for o in opts.OPTIONS}


def test_add_task_signature_is_the_table() -> None:
    assert parameters(BaseScheduler.add_task) - {"self", "fn_or_task"} == set(opts.NAMES)


def test_task_signature_is_the_table() -> None:
    assert parameters(Task.__init__) - {"self", "scheduler"} == set(opts.NAMES)


def test_task_init_takes_the_options_in_the_order_of_its_signature() -> None:
    # add_task passes them to Task._init by position
    keywords = [p for p in inspect.signature(Task.__init__).parameters if p != "trigger_args"]
    assert [*keywords, "trigger_args"] == list(inspect.signature(Task._init).parameters)


def test_task_defaults_are_the_defaultable_options() -> None:
    assert set(TaskDefaults.model_fields) - {"timezone"} == set(opts.DEFAULTABLE)


def test_toml_declarations_are_the_declarable_options() -> None:
    assert set(TaskDeclaration.model_fields) == {*opts.DECLARABLE, "fn", "trigger"}


def test_taskinfo_shows_the_shown_options() -> None:
    fields = {f.name for f in dataclasses.fields(TaskInfo)}
    for option in opts.OPTIONS:
        assert (option.name in fields) is option.shown, option.name


def test_stored_state_holds_the_persisted_options() -> None:
    task = Task("tests.core.test_task_options:work", trigger=IntervalTrigger(hours=1), tags=["t"])
    state = task.__getstate__()
    assert set(state) - {"version"} == {o.name for o in opts.OPTIONS if o.persisted}


def check(task: Task, name: str) -> None:
    option = opts.BY_NAME[name]
    value = getattr(task, option.attr)
    assert SAMPLES[name][1](value), f"{name}: the task holds {value!r}"


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_task_takes_each_option(name: str) -> None:
    given = {"fn": work, name: SAMPLES[name][0]}
    check(Task(**given), name)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_add_task_takes_each_option(name: str) -> None:
    scheduler = AsyncIOScheduler()
    given = {"fn": work, name: SAMPLES[name][0]}
    check(scheduler.add_task(**given), name)


@pytest.mark.parametrize("name", sorted(SAMPLES))
async def test_add_task_async_takes_each_option(name: str) -> None:
    scheduler = AsyncIOScheduler()
    given = {"fn": work, name: SAMPLES[name][0]}
    check(await scheduler.add_task_async(**given), name)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_a_built_task_added_takes_each_option(name: str) -> None:
    scheduler = AsyncIOScheduler()
    if name == "fn":
        pytest.skip("a built task has its callable")
    value = SAMPLES[name][0]
    if name == "id":
        task = scheduler.add_task(Task(work, id="the-id"), id=value)
    else:
        task = scheduler.add_task(Task(work), **{name: value})
    check(task, name)


@pytest.mark.parametrize("name", sorted(set(SAMPLES) - {"id"}))
def test_update_takes_each_option(name: str) -> None:
    check(Task(work).update(**{name: SAMPLES[name][0]}), name)


# ``store`` names the task's store in update_task; moving a task is not an update.
@pytest.mark.parametrize("name", sorted(set(SAMPLES) - {"id", "store"}))
def test_update_task_takes_each_option(name: str) -> None:
    scheduler = AsyncIOScheduler()
    scheduler.add_task(work, id="t")
    check(scheduler.update_task("t", **{name: SAMPLES[name][0]}), name)


def test_toml_declaration_reaches_the_task(tmp_path: Any) -> None:
    from asyncz.runner import plan_tasks

    scheduler = AsyncIOScheduler(
        stores={"default": {"type": "memory"}}, executors={"elsewhere": {"type": "asyncio"}}
    )
    declaration = TaskDeclaration(
        fn="tests.core.test_task_options:work",
        trigger={"type": "interval", "hours": 3},
        **{n: SAMPLES[n][0] for n in opts.DECLARABLE if n not in ("store", "replace_existing")},
    )
    (planned,) = plan_tasks(scheduler, {"the-id": declaration}, tmp_path / "asyncz.toml")
    for name in opts.DECLARABLE:
        if name not in ("store", "replace_existing"):
            check(planned.task, name)


@pytest.mark.parametrize(
    "add",
    [
        lambda s, **o: s.add_task(work, **o),
        lambda s, **o: s.add_task(Task(work), **o),
        lambda s, **o: Task(work, **o),
        lambda s, **o: s.update_task(s.add_task(work).id, **o),
    ],
    ids=["add_task", "add_task(Task)", "Task", "update_task"],
)
def test_an_alias_is_its_option_everywhere(add: Callable[..., Task]) -> None:
    scheduler = AsyncIOScheduler()
    assert add(scheduler, mistrigger_grace_time=5).misfire_grace_time == 5.0
    # Given beside its option, the option wins.
    both = add(scheduler, misfire_grace_time=3, mistrigger_grace_time=5)
    assert both.misfire_grace_time == 3.0


async def test_an_alias_is_its_option_in_add_task_async() -> None:
    scheduler = AsyncIOScheduler()
    task = await scheduler.add_task_async(work, mistrigger_grace_time=5)
    assert task.misfire_grace_time == 5.0


def test_task_defaults_fill_every_defaultable_option() -> None:
    scheduler = AsyncIOScheduler(
        task_defaults={"coalesce": False, "max_instances": 4, "misfire_grace_time": None}
    )
    task = scheduler.add_task(work)
    assert (task.coalesce, task.max_instances, task.misfire_grace_time) == (False, 4, None)
    assert set(scheduler.task_defaults) == set(opts.DEFAULTABLE)


def test_an_unknown_option_is_named_with_the_closest_one() -> None:
    with pytest.raises(TypeError, match=r"no option 'max_instance'; did you mean 'max_instances'"):
        Task(work).update(max_instance=2)

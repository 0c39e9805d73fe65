"""Run policies as task options (timeout, retries, retry_*, overlap): validated with the
option's name (and the dotted key in configuration), defaulted, stored, shown."""

from __future__ import annotations

from typing import Any

import pytest

from asyncz.exceptions import ConfigurationError
from asyncz.schedulers.asyncio import AsyncIOScheduler
from asyncz.tasks import Task
from asyncz.tasks._state import POLICY_DEFAULTS
from asyncz.triggers import IntervalTrigger


def work() -> None:
    pass


BAD: list[tuple[str, Any]] = [
    ("timeout", 0),
    ("timeout", -1),
    ("timeout", "soon"),
    ("retries", -1),
    ("retries", 1.5),
    ("retry_delay", -0.1),
    ("retry_backoff", 0.5),
    ("retry_max_delay", -3),
    ("retry_jitter", float("nan")),
    ("overlap", "sometimes"),
]


@pytest.mark.parametrize(("name", "value"), BAD)
def test_a_bad_policy_names_the_option(name: str, value: Any) -> None:
    with pytest.raises((ValueError, TypeError), match=name):
        Task(work, **{name: value})
    scheduler = AsyncIOScheduler()
    with pytest.raises((ValueError, TypeError), match=name):
        scheduler.add_task(work, "interval", seconds=1, **{name: value})


@pytest.mark.parametrize(("name", "value"), BAD[1:])
def test_a_bad_default_names_the_dotted_key(name: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match=rf"asyncz\.task_defaults\.{name}"):
        AsyncIOScheduler(global_config={f"asyncz.task_defaults.{name}": value})


def test_a_bad_declaration_names_the_dotted_key() -> None:
    with pytest.raises(ConfigurationError, match=r"asyncz\.tasks\.nightly\.overlap"):
        AsyncIOScheduler(
            global_config={
                "asyncz.tasks.nightly.fn": "tests.core.test_run_policies:work",
                "asyncz.tasks.nightly.overlap": "whenever",
            }
        )


def test_defaults_fill_what_a_task_leaves_unset() -> None:
    scheduler = AsyncIOScheduler(
        global_config={"asyncz.task_defaults.retries": "2", "asyncz.task_defaults.timeout": "9"}
    )
    task = scheduler.add_task(work, "interval", seconds=1, retry_delay=0.1)
    assert (task.retries, task.timeout, task.retry_delay) == (2, 9.0, 0.1)
    assert task.overlap == "skip" and task.retry_backoff == 2.0
    assert task.retry_max_delay == 3600.0 and task.retry_jitter == 0.0
    info = scheduler.get_task_info(task.id)
    assert info is not None
    assert (info.retries, info.timeout, info.overlap) == (2, 9.0, "skip")


def test_policies_survive_the_stored_state_and_old_states_load() -> None:
    task = Task(
        "tests.core.test_run_policies:work",
        trigger=IntervalTrigger(hours=1),
        timeout=3,
        retries=4,
        overlap="buffer_all",
    )
    state = task.__getstate__()
    restored = Task.__new__(Task)
    restored.__setstate__(state)
    assert (restored.timeout, restored.retries, restored.overlap) == (3.0, 4, "buffer_all")
    old = {k: v for k, v in state.items() if k not in POLICY_DEFAULTS}
    old["version"] = 1
    legacy = Task.__new__(Task)
    legacy.__setstate__(old)
    for name, default in POLICY_DEFAULTS.items():
        assert getattr(legacy, name) == default
    assert legacy.pending_runs == () and legacy.pause_note is None

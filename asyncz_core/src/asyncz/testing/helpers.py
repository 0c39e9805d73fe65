"""Helpers of the store contract: tasks built the way the scheduler hands them to a store,
task comparison and a polling wait. Importable on their own, also from :mod:`asyncz.testing`.

Data path: :func:`make_task` stands in for ``add_task`` (a bound, ready task as a store
receives it); :func:`assert_same_task` checks what comes back out of the store.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from asyncz.tasks import Task
from asyncz.testing import functions
from asyncz.triggers import IntervalTrigger

__all__ = ["MISSING_FUNCTION", "assert_same_task", "make_task", "wait_until"]

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

"""A listener added before start() hears of every store and executor, as in Asyncz."""

from __future__ import annotations

from asyncz import events as ev
from asyncz.schedulers import AsyncIOScheduler


def test_start_announces_configured_and_default_components_then_starts() -> None:
    scheduler = AsyncIOScheduler(
        timezone="UTC",
        stores={"fast": {"type": "memory"}},
        executors={"threads": {"type": "threadpool"}},
    )
    seen: list[tuple[str, str | None]] = []
    scheduler.add_listener(lambda event: seen.append((ev.event_name(event.code), event.alias)))
    scheduler.add_task(print, "interval", minutes=5, id="t")
    scheduler.start()
    scheduler.shutdown()
    assert seen[:4] == [
        ("EXECUTOR_ADDED", "threads"),
        ("EXECUTOR_ADDED", "default"),  # created at start
        ("STORE_ADDED", "fast"),
        ("STORE_ADDED", "default"),  # created at start
    ]
    assert [name for name, _ in seen[4:]] == ["TASK_ADDED", "SCHEDULER_START", "SCHEDULER_SHUTDOWN"]

    seen.clear()
    scheduler.start()  # a restart announces nothing new
    scheduler.add_store("memory", "later")
    scheduler.remove_store("later")
    scheduler.shutdown()
    assert seen == [
        ("SCHEDULER_START", None),
        ("STORE_ADDED", "later"),
        ("STORE_REMOVED", "later"),
        ("SCHEDULER_SHUTDOWN", None),
    ]


def test_a_component_added_before_start_is_announced_once() -> None:
    scheduler = AsyncIOScheduler(timezone="UTC")
    seen: list[int] = []
    scheduler.add_listener(lambda event: seen.append(event.code), ev.STORE_ADDED)
    scheduler.add_store("memory", "extra")
    assert seen == [ev.STORE_ADDED]
    with scheduler:
        pass
    assert seen == [ev.STORE_ADDED, ev.STORE_ADDED]  # "extra", then "default" at start

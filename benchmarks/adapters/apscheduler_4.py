"""APScheduler 4.0.0a6 from PyPI (its own virtual environment): schedules, tasks and jobs.

Its API is asynchronous (AnyIO): ``AsyncScheduler`` is an async context manager, every call
is awaited, so this adapter is ``is_async`` and the scenarios await its methods. The mapping,
as honest as the two models allow:

* an asyncz task is an APScheduler 4 *schedule* (``add_schedule(func, trigger)``); the
  function is a *task definition* shared by every schedule of it. Its default
  ``max_running_jobs=1`` would let one job of ``counted`` run at a time across the 10,000
  schedules of a burst (asyncz's ``max_instances`` is per task, i.e. per schedule): the task
  definitions of the benchmark functions are configured with ``max_running_jobs=None``.
  Everything else is the default (``max_concurrent_jobs=100``, ``LocalEventBroker``).
* a due schedule becomes a *job* in the data store, which the scheduler then acquires and
  runs: the measured path is schedule → job → run, as it ships.
* "paused" (the store-burst scenario): the scheduler is entered (data store started) but not
  started; ``resume`` is ``start_in_background()``. It has no pause of a running scheduler.
* stores: ``MemoryDataStore``; ``SQLAlchemyDataStore`` on PostgreSQL (asyncpg, a schema per
  run) and SQLite (aiosqlite, a file per run: its table names are fixed). No Redis data store
  exists (Redis is only an event broker); MongoDB is not run (time budget, see the doc).
* cron: ``CronTrigger.next()`` is stateful (the next fire time after its previous one, no
  "now" argument): the scenario's ``next(previous, now)`` calls it.
"""

from __future__ import annotations

import os
from datetime import timezone
from typing import Any

from apscheduler import AsyncScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from adapters import Adapter, jobs

UTC = timezone.utc


class APScheduler4(Adapter):
    lib = "apscheduler-4.0.0a6"
    is_async = True

    def __init__(self) -> None:
        from importlib.metadata import version

        self.version = version("apscheduler")
        self._engines: list[Any] = []

    async def scheduler(self, store: Any = None) -> Any:  # type: ignore[override]
        scheduler = AsyncScheduler(store) if store is not None else AsyncScheduler()
        await scheduler.__aenter__()
        for fn in (jobs.anoop, jobs.counted, jobs.late):
            await scheduler.configure_task(fn, max_running_jobs=None, misfire_grace_time=None)
        return scheduler

    async def start(self, scheduler: Any, paused: bool = False) -> None:  # type: ignore[override]
        if not paused:
            await scheduler.start_in_background()

    async def resume(self, scheduler: Any) -> None:  # type: ignore[override]
        await scheduler.start_in_background()

    async def shutdown(self, scheduler: Any) -> None:  # type: ignore[override]
        await scheduler.stop()
        await scheduler.__aexit__(None, None, None)
        for engine in self._engines:
            await engine.dispose()
        self._engines.clear()

    async def add_interval(self, scheduler: Any, fn: Any, **options: Any) -> Any:  # type: ignore[override]
        return await scheduler.add_schedule(fn, IntervalTrigger(**options))

    async def add_interval_from(  # type: ignore[override]
        self, scheduler: Any, fn: Any, seconds: float, start: Any, args: list[Any]
    ) -> Any:
        trigger = IntervalTrigger(seconds=seconds, start_time=start)
        return await scheduler.add_schedule(fn, trigger, args=args)

    async def add_date(self, scheduler: Any, fn: Any, run_at: Any) -> Any:  # type: ignore[override]
        return await scheduler.add_schedule(fn, DateTrigger(run_at), misfire_grace_time=None)

    async def count(self, scheduler: Any) -> int:  # type: ignore[override]
        return len(await scheduler.get_schedules())

    async def list(self, scheduler: Any) -> Any:  # type: ignore[override]
        return await scheduler.get_schedules()

    async def remove_all(self, scheduler: Any) -> None:  # type: ignore[override]
        for schedule in await scheduler.get_schedules():
            await scheduler.remove_schedule(schedule.id)

    def store(self, kind: str, url: str, namespace: str) -> Any:
        from apscheduler.datastores.sqlalchemy import SQLAlchemyDataStore
        from sqlalchemy.ext.asyncio import create_async_engine

        if kind == "postgresql":
            engine = create_async_engine(url.replace("postgresql://", "postgresql+asyncpg://", 1))
            self._engines.append(engine)
            return SQLAlchemyDataStore(engine, schema=namespace)
        if kind == "sqlite":
            directory = os.path.dirname(url.removeprefix("sqlite:///"))
            path = os.path.join(directory, f"{namespace}.sqlite3")
            engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
            self._engines.append(engine)
            return SQLAlchemyDataStore(engine)
        raise NotImplementedError(f"APScheduler 4.0.0a6 has no {kind} data store run here")

    def cron(self, case: dict[str, Any]) -> Any:
        from datetime import datetime

        start = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
        if "crontab" in case:
            minute, hour, day, month, day_of_week = case["crontab"].split()
            trigger = CronTrigger(minute=minute, hour=hour, day=day, month=month,
                                  day_of_week=day_of_week, timezone=case["timezone"],
                                  start_time=start)  # fmt: skip
        else:
            trigger = CronTrigger(**case["fields"], timezone=case["timezone"], start_time=start)
        get_next = trigger.next

        def next_fire(previous: Any, now: Any) -> Any:
            return get_next()

        return next_fire


ADAPTER = APScheduler4()

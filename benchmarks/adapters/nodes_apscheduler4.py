"""APScheduler 4.0.0a6 as a node of ``benchmarks/bench_nodes.py`` (its own venv).

PostgreSQL through ``SQLAlchemyDataStore`` (asyncpg engine) and ``AsyncpgEventBroker``
(LISTEN/NOTIFY), ``AsyncScheduler`` in its default role (schedules and jobs). Each schedule
``t<i>`` belongs to one of at most 100 task definitions with ``max_running_jobs=None``: the
default (1 per task) would let one job of a task run at a time in the whole cluster, and a
single shared task would make every job acquisition lock the same ``tasks`` row.
``misfire_grace_time=None`` and ``coalesce=all``, as asyncz is run: every fire time must run.

A run is recorded by the job itself (``current_job``: its schedule id and scheduled fire time).
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from apscheduler import AsyncScheduler, CoalescePolicy, ConflictPolicy, current_job
from apscheduler.datastores.sqlalchemy import SQLAlchemyDataStore
from apscheduler.eventbrokers.asyncpg import AsyncpgEventBroker
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.ext.asyncio import create_async_engine

UTC = timezone.utc
#: set by bench_nodes before the scheduler starts
HOOKS: Any = None
TASKS = 100


async def record() -> None:
    job = current_job.get()
    HOOKS.record(job.schedule_id, job.scheduled_fire_time.timestamp(), time.time())


class HookedDataStore(SQLAlchemyDataStore):
    """The data store, telling the harness which schedules this node just acquired (the
    harness SIGKILLs the process there, inside the claim window, when asked to)."""

    async def acquire_schedules(self, scheduler_id: str, lease_duration: Any, limit: int) -> Any:
        schedules = await super().acquire_schedules(scheduler_id, lease_duration, limit)
        if schedules:
            HOOKS.claimed([(s.id, s.next_fire_time.timestamp()) for s in schedules])
        return schedules


def _engine(url: str) -> Any:
    return create_async_engine(url.replace("postgresql://", "postgresql+asyncpg://", 1))


def version() -> str:
    from importlib.metadata import version as v

    return v("apscheduler")


async def load(url: str, scenario: str, n: int, t0: float) -> None:
    """Create the schema and ``n`` schedules due at ``t0`` (burst: date; steady: every 1 s)."""
    engine = _engine(url)
    store = SQLAlchemyDataStore(engine)
    broker = AsyncpgEventBroker.from_async_sqla_engine(engine)
    due = datetime.fromtimestamp(t0, UTC)
    try:
        async with AsyncScheduler(store, broker, identity="loader") as scheduler:
            for k in range(min(n, TASKS)):
                await scheduler.configure_task(
                    f"task{k}", func=record, max_running_jobs=None, misfire_grace_time=None
                )

            async def add(i: int) -> None:
                if scenario == "burst":
                    trigger: Any = DateTrigger(due)
                else:
                    trigger = IntervalTrigger(seconds=1, start_time=due)
                await scheduler.add_schedule(
                    f"task{i % TASKS}", trigger, id=f"t{i}", coalesce=CoalescePolicy.all,
                    misfire_grace_time=None, conflict_policy=ConflictPolicy.exception,
                )  # fmt: skip

            for start in range(0, n, 8):  # a few at once: the engine's pool has 5 (+10)
                await asyncio.gather(*(add(i) for i in range(start, min(n, start + 8))))
    finally:
        await engine.dispose()


async def node(url: str, identity: str, lease: float) -> None:
    """Run one scheduler until HOOKS.stopping is set."""
    engine = _engine(url)
    store = HookedDataStore(engine)
    broker = AsyncpgEventBroker.from_async_sqla_engine(engine)
    try:
        async with AsyncScheduler(
            store, broker, identity=identity, lease_duration=timedelta(seconds=lease)
        ) as scheduler:
            await scheduler.start_in_background()
            HOOKS.ready()
            await HOOKS.stopping.wait()
            await scheduler.stop()
            await scheduler.wait_until_stopped()
    finally:
        await engine.dispose()

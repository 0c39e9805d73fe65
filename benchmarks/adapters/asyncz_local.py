"""asyncz, this repository (installed from the working tree)."""

from __future__ import annotations

from datetime import timezone
from typing import Any

from adapters import Adapter
from asyncz.schedulers.asyncio import AsyncIOScheduler
from asyncz.triggers import CronTrigger

UTC = timezone.utc


class AsynczLocal(Adapter):
    lib = "asyncz"

    def __init__(self) -> None:
        from importlib.metadata import version

        self.version = version("asyncz")

    def scheduler(self, store: Any = None) -> Any:
        if store is None:
            return AsyncIOScheduler(timezone=UTC)
        return AsyncIOScheduler(timezone=UTC, stores={"default": store})

    def add_interval(self, scheduler: Any, fn: Any, **options: Any) -> Any:
        return scheduler.add_task(fn, "interval", **options)

    def add_interval_from(
        self, scheduler: Any, fn: Any, seconds: float, start: Any, args: list[Any]
    ) -> Any:
        return scheduler.add_task(
            fn, "interval", seconds=seconds, start_at=start, args=args, max_instances=2
        )

    def add_date(self, scheduler: Any, fn: Any, run_at: Any) -> Any:
        return scheduler.add_task(fn, "date", run_at=run_at, misfire_grace_time=None)

    def count(self, scheduler: Any) -> int:
        return len(scheduler.get_tasks())

    def list(self, scheduler: Any) -> Any:
        return scheduler.get_task_infos()

    def store(self, kind: str, url: str, namespace: str) -> Any:
        if kind == "redis":
            from asyncz.stores.redis import RedisStore

            return RedisStore(
                url=url, tasks_key=f"{namespace}.tasks", run_times_key=f"{namespace}.run_times"
            )
        if kind == "mongodb":
            from asyncz.stores.mongo import MongoDBStore

            return MongoDBStore(url=url, database="asyncz_bench", collection=namespace)
        if kind in ("sqlite", "postgresql"):
            from asyncz.stores.sqlalchemy import SQLAlchemyStore

            return SQLAlchemyStore(database=url, tablename=namespace)
        raise ValueError(kind)

    def cron(self, case: dict[str, Any]) -> Any:
        if "crontab" in case:
            trigger = CronTrigger.from_crontab(case["crontab"], timezone=case["timezone"])
        else:
            trigger = CronTrigger(**case["fields"], timezone=case["timezone"])
        get_next = trigger.get_next_trigger_time

        def next_fire(previous: Any, now: Any) -> Any:
            return get_next(UTC, previous, now)

        return next_fire


ADAPTER = AsynczLocal()

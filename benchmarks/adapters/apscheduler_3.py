"""APScheduler 3.11.3 from PyPI (its own virtual environment): jobs, not tasks."""

from __future__ import annotations

from datetime import timezone
from typing import Any
from urllib.parse import urlsplit

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from adapters import Adapter

UTC = timezone.utc


class APScheduler3(Adapter):
    lib = "apscheduler-3.11.3"

    def __init__(self) -> None:
        from importlib.metadata import version

        self.version = version("apscheduler")

    def scheduler(self, store: Any = None) -> Any:
        if store is None:
            return AsyncIOScheduler(timezone=UTC)
        return AsyncIOScheduler(timezone=UTC, jobstores={"default": store})

    def add_interval(self, scheduler: Any, fn: Any, **options: Any) -> Any:
        return scheduler.add_job(fn, "interval", **options)

    def add_interval_from(
        self, scheduler: Any, fn: Any, seconds: float, start: Any, args: list[Any]
    ) -> Any:
        return scheduler.add_job(
            fn, "interval", seconds=seconds, start_date=start, args=args, max_instances=2
        )

    def add_date(self, scheduler: Any, fn: Any, run_at: Any) -> Any:
        return scheduler.add_job(fn, "date", run_date=run_at, misfire_grace_time=None)

    def count(self, scheduler: Any) -> int:
        return len(scheduler.get_jobs())

    def list(self, scheduler: Any) -> Any:
        return scheduler.get_jobs()

    def store(self, kind: str, url: str, namespace: str) -> Any:
        if kind == "redis":
            from apscheduler.jobstores.redis import RedisJobStore

            parts = urlsplit(url)
            return RedisJobStore(
                db=0,
                jobs_key=f"{namespace}.jobs",
                run_times_key=f"{namespace}.run_times",
                host=parts.hostname,
                port=parts.port,
            )
        if kind == "mongodb":
            from apscheduler.jobstores.mongodb import MongoDBJobStore

            return MongoDBJobStore(database="asyncz_bench", collection=namespace, host=url)
        if kind == "postgresql":  # their usual sync driver (SQLAlchemy 2.1 defaults to psycopg 3)
            url = url.replace("postgresql://", "postgresql+psycopg2://", 1)
        if kind in ("sqlite", "postgresql"):
            from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

            return SQLAlchemyJobStore(url=url, tablename=namespace)
        raise ValueError(kind)

    def cron(self, case: dict[str, Any]) -> Any:
        if "crontab" in case:
            trigger = CronTrigger.from_crontab(case["crontab"], timezone=case["timezone"])
        else:
            trigger = CronTrigger(**case["fields"], timezone=case["timezone"])
        return trigger.get_next_fire_time


ADAPTER = APScheduler3()

"""One adapter per scheduler library, all exposing the same operations.

The scenario runner (``benchmarks/scenarios.py``) only talks to an :class:`Adapter`, so that
the same scenario code runs on asyncz (this repository), Asyncz 0.17.2, APScheduler 3.11.3 and APScheduler 4.0.0a6
(whose adapter is asynchronous: ``is_async``).
Every adapter module is imported lazily: a child process only imports the library it measures.
"""

from __future__ import annotations

import importlib
from typing import Any

#: library name -> module of this package
LIBS = {
    "asyncz": "asyncz_local",
    "asyncz-0.17.2": "asyncz_0172",
    "apscheduler-3.11.3": "apscheduler_3",
    "apscheduler-4.0.0a6": "apscheduler_4",
}

#: library name -> the module a program imports for its asyncio scheduler (footprint scenario)
MODULES = {
    "asyncz": "asyncz.schedulers.asyncio",
    "asyncz-0.17.2": "asyncz.schedulers.asyncio",
    "apscheduler-3.11.3": "apscheduler.schedulers.asyncio",
    "apscheduler-4.0.0a6": "apscheduler",
}


class Adapter:
    """What a scenario needs from a scheduler library (see the modules for each library).

    All methods are called from a coroutine running on the event loop the scheduler uses.
    """

    lib: str
    version: str
    #: the methods are coroutine functions (APScheduler 4): the scenarios await them
    is_async: bool = False

    def scheduler(self, store: Any = None) -> Any:
        """A new AsyncIOScheduler (UTC), with ``store`` as its default store if given."""
        raise NotImplementedError

    def start(self, scheduler: Any, paused: bool = False) -> None:
        scheduler.start(paused=paused)

    def resume(self, scheduler: Any) -> None:
        scheduler.resume()

    def shutdown(self, scheduler: Any) -> None:
        scheduler.shutdown(wait=False)

    def add_interval(self, scheduler: Any, fn: Any, **options: Any) -> Any:
        """``add_task(fn, "interval", **options)`` (``hours=1`` in the add scenarios)."""
        raise NotImplementedError

    def add_interval_from(
        self, scheduler: Any, fn: Any, seconds: float, start: Any, args: list[Any]
    ) -> Any:
        """An interval task every ``seconds`` starting at the aware datetime ``start``."""
        raise NotImplementedError

    def add_date(self, scheduler: Any, fn: Any, run_at: Any) -> Any:
        """A one-shot task at ``run_at``, never dropped as late (no misfire grace time)."""
        raise NotImplementedError

    def count(self, scheduler: Any) -> int:
        raise NotImplementedError

    def list(self, scheduler: Any) -> Any:
        """Every task of the scheduler, as the library lists them for a program."""
        raise NotImplementedError

    def remove_all(self, scheduler: Any) -> None:
        remove = getattr(scheduler, "remove_all_tasks", None) or scheduler.remove_all_jobs
        try:
            remove()
        except TypeError:  # Asyncz 0.17.2 wants the store argument
            remove(None)

    def store(self, kind: str, url: str, namespace: str) -> Any:
        """A persistent store: ``kind`` in redis, mongodb, sqlite, postgresql."""
        raise NotImplementedError

    def cron(self, case: dict[str, Any]) -> Any:
        """A function ``next(previous, now)`` computing the next fire time of a cron trigger."""
        raise NotImplementedError


def load(lib: str) -> Adapter:
    try:
        module = importlib.import_module(f"adapters.{LIBS[lib]}")
    except KeyError:
        raise SystemExit(f"unknown library {lib!r}; one of {', '.join(LIBS)}") from None
    adapter: Adapter = module.ADAPTER
    return adapter

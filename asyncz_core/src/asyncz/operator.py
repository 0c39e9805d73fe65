"""The operator's view of a deployment: its stores opened, nothing else started.

An operator's tool (``asyncz tasks ...``, ``asyncz doctor``, a dashboard) works against the
live store that the deployment's nodes share. It must never act as one of them: it does not
process due tasks, does not run, delete or commit a task by itself, does not run the
``shutdown``-trigger tasks when it closes, and does not register as a node (no heartbeat, so
``get_nodes()`` shows only the real nodes). :class:`OperatorScheduler` is a scheduler whose
``start()`` opens the stores and nothing more:

=================================  ==============  ====================================
step of ``start()`` / ``shutdown``  a scheduler     an :class:`OperatorScheduler`
=================================  ==============  ====================================
stores started                      yes             yes (``only=``: a subset)
executors started                   yes             no (the executor aliases are checked
                                                    by name only: tasks run on the nodes)
node record and heartbeats          yes             no
tasks added before start committed  yes             refused: add them once it is open
processing loop                     yes             no
runs submitted                      yes             never (``_submit`` and ``run_task``
                                                    raise); :meth:`~OperatorScheduler.
                                                    request_run_async` asks a node
shutdown-trigger tasks at shutdown  yes             no
=================================  ==============  ====================================

The management and inspection API (``get_task_infos_async``, ``pause_task_async``,
``reschedule_task_async``, ``delete_task_async``, ``get_nodes_async``, ...) works as on any
started scheduler: each write is a compare-and-set against the nodes' passes (see
docs/coordination.md). :func:`open_operator` reads the configuration the way the
application does (``asyncz.toml``, ``[tool.asyncz]``, ``ASYNCZ_*``, ``config_file=``).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from asyncz.exceptions import ComponentLookupError, ConfigurationError
from asyncz.schedulers.asyncio import NativeAsyncIOScheduler
from asyncz.stores.base import BaseStore, PersistentStore
from asyncz.tasks.task import Task, task_label
from asyncz.timeutil import utc

__all__ = ["OperatorError", "OperatorScheduler", "importable_from", "open_operator", "shared"]


class OperatorError(RuntimeError):
    """Something an operator's process must not do (run a task, commit pending tasks)."""


def shared(store: BaseStore) -> bool:
    """Whether other processes can see the store's tasks (not a process's own memory)."""
    return store.coordinated or isinstance(store, PersistentStore)


class OperatorScheduler(NativeAsyncIOScheduler):
    """A scheduler that only opens its stores; see the module documentation.

    ``only``: the aliases of the stores to open (the others are dropped before start);
    ``None`` opens every configured store.
    """

    def __init__(self, *args: Any, only: Iterable[str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: The executor aliases the deployment has; the executors themselves are not built
        #: into this process's work (a task names one; a node runs it).
        self.executor_aliases = frozenset({"default", *self._executors})
        self._executors = {}
        if only is not None:
            wanted = list(only)
            for alias in wanted:
                if alias not in self._stores:
                    raise ComponentLookupError("store", alias, self._stores)
            self._stores = {alias: self._stores[alias] for alias in wanted}

    async def start(self, paused: bool = True) -> bool:  # type: ignore[override]
        """Open the stores (never processes: the state stays *paused*)."""
        if not self._count_start():
            return False
        try:
            if self._pending:
                raise OperatorError(
                    "an operator does not commit tasks added before it opened the stores; "
                    "add them once it is open"
                )
            if not self._stores:
                raise ConfigurationError(
                    [("asyncz.stores", "no store is configured; the operator needs the store the "
                      "deployment's nodes share (e.g. asyncz.stores.default)")]
                )  # fmt: skip
            self._begin(True)
            self._refresh_hooks()
            self._started_at = datetime.now(utc)
            self._started_stores = []
            for alias, store in list(self._stores.items()):
                await self._start_store(alias, store)
        except BaseException:
            self._abort()
            raise
        return True

    async def _finish(self, wait: bool, timeout: float | None, paused: bool = False) -> None:
        # No processing loop, no executors, no shutdown tasks, no node record to leave; the
        # history records it made (a pause note) are written before the stores close.
        await self._runs.close()
        await self._stop_stores(list(self._stores.values()))

    def _end(self) -> None:
        self._loop = None

    def _check_executor(self, task: Task) -> None:
        if task.executor not in self.executor_aliases:
            raise ComponentLookupError(
                "executor", task.executor, self.executor_aliases, task=task_label(task)
            )

    async def run_task_async(
        self,
        task_id: Task | str,
        store: str | None = None,
        *,
        force: bool = True,
        remove_finished: bool = True,
    ) -> Task | None:
        raise OperatorError(
            f"an operator never runs a task in its own process (task {self._task_id(task_id)!r})"
            "; a live node runs it"
        )

    async def request_run_async(self, task_id: str, store: str | None = None) -> datetime:
        """Ask the nodes to run ``task_id`` now: a pending run (source ``"manual"``) is
        stored with the task, and whichever node claims the task next runs it and records
        it in the history. Returns the run's scheduled time (its history record's
        ``scheduled_run_time``). The task's own schedule is kept."""
        from asyncz.tasks.runs import PendingRun, reschedule, trigger_next

        now = datetime.now(utc)

        def change(task: Task, alias: str | None) -> bool:
            nonlocal now
            assert alias is not None  # an operator keeps no pending tasks
            now = datetime.now(utc)
            upcoming = trigger_next(task)
            if upcoming is None and task.paused_at is None:
                # Paused (no next fire time): say so, so that the node that takes the run
                # keeps the task paused rather than removing it as finished.
                task.paused_at = now
            task.pending_runs = (*task.pending_runs, PendingRun(now, now, 1, "manual"))
            reschedule(task, upcoming)
            return True

        await self._compare_and_set(task_id, store, change)
        return now

    async def run_was_taken_async(self, task_id: str, store: str, run_time: datetime) -> bool:
        """Whether a node took the run :meth:`request_run_async` asked for (it is no longer
        pending in the stored task, or the task is gone)."""
        task = await self.get_task_async(task_id, store)
        pending = task.pending_runs if task is not None else ()
        return not any(p.source == "manual" and p.run_time == run_time for p in pending)

    def _submit(
        self, task: Task, store_alias: str, run_times: list[datetime], source: str, folded: int
    ) -> bool:
        raise OperatorError(
            f"an operator never runs a task in its own process (task {task.id!r}); a live "
            "node runs it"
        )


def importable_from(config_file: str | Path | None) -> None:
    """Put the directory of ``config_file`` (else the current one) on ``sys.path``, as
    ``asyncz run`` does: the tasks' callables then import as in the application, and the
    operator can restore (and so change) its tasks."""
    base = str(Path(config_file).resolve().parent) if config_file else str(Path.cwd())
    if base not in sys.path:
        sys.path.insert(0, base)


@contextlib.asynccontextmanager
async def open_operator(
    config_file: str | Path | None = None,
    *,
    store: str | None = None,
    store_timeout: float | None = None,
    require_shared: bool = True,
) -> AsyncIterator[OperatorScheduler]:
    """An :class:`OperatorScheduler` on the configured stores (``store``: only that one),
    open for the ``async with`` block.

    The directory of ``config_file`` (else the current one) is put on ``sys.path``, as
    ``asyncz run`` does, so that the tasks' callables import as they do in the application.
    Raises :class:`~asyncz.exceptions.ConfigurationError` (bad configuration, no store, a
    store that lives in one process's memory with ``require_shared``),
    :class:`~asyncz.exceptions.ComponentLookupError` (no store ``store``) and
    :class:`~asyncz.exceptions.StoreUnavailableError` (a store cannot be reached).
    """
    importable_from(config_file)
    options: dict[str, Any] = {}
    if store_timeout is not None:
        options["store_timeout"] = store_timeout
    operator = OperatorScheduler(
        config_file=str(config_file) if config_file else None,
        only=[store] if store is not None else None,
        **options,
    )
    if require_shared:
        private = [alias for alias, s in operator.stores.items() if not shared(s)]
        if private:
            raise ConfigurationError(
                [
                    (
                        f"asyncz.stores.{alias}",
                        f"{type(operator.stores[alias]).__name__} keeps its tasks in one "
                        "process's memory; an operator cannot see them",
                    )
                    for alias in private
                ]
            )
    await operator.start()
    try:
        yield operator
    finally:
        await operator.shutdown()

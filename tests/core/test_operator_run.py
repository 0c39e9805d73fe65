"""An operator asks the nodes to run a task: a node runs it, and a paused task stays paused."""

from __future__ import annotations

import asyncio
from pathlib import Path

from asyncz import events as ev
from asyncz.operator import OperatorScheduler
from asyncz.schedulers.asyncio import AsyncIOScheduler
from asyncz.stores.file import FileStore
from asyncz.testing import functions


async def test_a_paused_task_run_by_request_stays_paused(tmp_path: Path) -> None:
    directory = tmp_path / "tasks"
    node = AsyncIOScheduler(
        identity="node", stores={"default": FileStore(directory, fsync=False, poll_interval=0.1)}
    )
    ran: list[ev.SchedulerEvent] = []
    node.add_listener(ran.append, ev.TASK_EXECUTED)
    node.start()
    try:
        await node.add_task_async(functions.noop, "interval", hours=1, id="nightly")
        await node.pause_task_async("nightly", note="maintenance")
        operator = OperatorScheduler(stores={"default": FileStore(directory, fsync=False)})
        await operator.start()
        try:
            await operator.request_run_async("nightly")
        finally:
            await operator.shutdown()
        for _ in range(200):
            if ran:
                break
            await asyncio.sleep(0.05)
        assert [e.task_id for e in ran] == ["nightly"]  # type: ignore[attr-defined]
        await asyncio.sleep(0.3)  # the write-back after the run
        task = await node.get_task_async("nightly")
        assert task is not None, "the paused task was removed after its requested run"
        assert task.next_run_time is None
        assert task.pause_note == "maintenance"
        assert task.pending_runs == ()
        runs = await node.get_task_runs_async("nightly")
        assert [(r.outcome, r.source, r.node) for r in runs] == [
            ("success", "manual", "node"),
            ("paused", "manual", "node"),
        ]
    finally:
        node.shutdown()

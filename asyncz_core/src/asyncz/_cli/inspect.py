"""``asyncz runs``, ``asyncz nodes`` and ``asyncz preview``: reading what happens."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from asyncz._cli.common import (
    OpCommand,
    emit_json,
    json_option,
    operator_options,
    session,
    table,
    when,
)

if TYPE_CHECKING:
    from asyncz.nodes import NodeInfo
    from asyncz.operator import OperatorScheduler

__all__ = ["node_rows", "nodes", "preview", "runs"]


def age(then: datetime, now: datetime) -> str:
    seconds = (now - then).total_seconds()
    if abs(seconds) < 120:
        return f"{seconds:.1f}s ago" if seconds >= 0 else f"in {-seconds:.1f}s"
    return str(timedelta(seconds=round(seconds))) + " ago"


def node_rows(found: list[NodeInfo], now: datetime) -> list[list[Any]]:
    return [
        [
            n.identity,
            n.state_at(now),
            n.host,
            n.pid,
            n.version,
            when(n.started_at),
            age(n.last_heartbeat, now),
            f"{n.lease:g}s",
        ]
        for n in found
    ]


@click.command("nodes", cls=OpCommand)
@operator_options
@json_option
def nodes(config_file: Path | None, store: str | None, as_json: bool) -> None:
    """The schedulers (nodes) recorded in the stores: alive, dead or stopped."""
    from asyncz.timeutil import utc

    async def read(op: OperatorScheduler) -> list[NodeInfo]:
        return await op.get_nodes_async(store)

    found = session(config_file, store, read)
    now = datetime.now(utc)
    if as_json:
        emit_json(
            {
                "nodes": [
                    {**n.to_dict(), "state": n.state_at(now), "expires_at": n.expires_at}
                    for n in found
                ]
            }
        )
        return
    if not found:
        click.echo("No nodes are recorded: no scheduler has used these stores in the last hour.")
        return
    columns = ["IDENTITY", "STATE", "HOST", "PID", "VERSION", "STARTED (UTC)", "HEARTBEAT", "LEASE"]
    table(columns, node_rows(found, now))


@click.command("preview", cls=OpCommand)
@click.argument("task_id", metavar="ID")
@click.option("-n", "count", default=10, show_default=True, type=click.IntRange(0, 10000))
@operator_options
@json_option
def preview(
    task_id: str, count: int, config_file: Path | None, store: str | None, as_json: bool
) -> None:
    """The next COUNT run times of a task, from its trigger (nothing runs)."""

    async def read(op: OperatorScheduler) -> tuple[list[datetime], bool]:
        # The synchronous preview reads the task through the operator's own loop: in a
        # thread, so that it does not block this one.
        import asyncio

        result = await asyncio.to_thread(op.preview_task_runs, task_id, count, store)
        return list(result), result.exhausted

    run_times, exhausted = session(config_file, store, read)
    if as_json:
        emit_json({"task_id": task_id, "run_times": run_times, "exhausted": exhausted})
        return
    if not run_times:
        click.echo(f"Task {task_id!r} has no upcoming runs (paused, or its trigger is done).")
        return
    for index, run_time in enumerate(run_times, 1):
        click.echo(f"{index:>3}  {when(run_time)}")
    if exhausted:
        click.echo("(the trigger fires no more after these)")


@click.command("runs", cls=OpCommand)
@click.argument("task_id", metavar="[ID]", required=False)
@click.option("--outcome", default=None, help="Only runs with this outcome.")
@click.option("--since", default=None, metavar="TIME", help="Only runs started since then.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10000))
@operator_options
@json_option
def runs(
    task_id: str | None,
    outcome: str | None,
    since: str | None,
    limit: int,
    config_file: Path | None,
    store: str | None,
    as_json: bool,
) -> None:
    """The run history, newest first (of one task with ID)."""
    raise click.ClickException("run history is not available yet")

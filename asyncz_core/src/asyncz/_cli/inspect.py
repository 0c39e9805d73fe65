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


def parse_since(text: str | None) -> datetime | None:
    """``--since``: an ISO 8601 time (naive: UTC) or an age (``90s``, ``30m``, ``2h``,
    ``7d``)."""
    from asyncz._cli.common import UserError
    from asyncz.timeutil import utc

    if text is None:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if text[-1:] in units and text[:-1].replace(".", "", 1).isdigit():
        return datetime.now(utc) - timedelta(seconds=float(text[:-1]) * units[text[-1]])
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UserError(
            f"--since: {text!r} is neither an ISO 8601 time nor an age like 30m, 2h, 7d"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=utc)


def _detail(record: Any) -> str:
    if record.error_type:
        return f"{record.error_type}: {record.error_message or ''}".strip()
    if record.note:
        return str(record.note)
    return str(record.return_repr or "")


@click.command("runs", cls=OpCommand)
@click.argument("task_id", metavar="[ID]", required=False)
@click.option("--outcome", default=None, help="Only runs with this outcome (success, error ...).")
@click.option("--since", default=None, metavar="TIME", help="Ended since: ISO time or 30m, 2h.")
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
    """The run history, newest first (of the task ID, else of every task)."""
    from asyncz._cli.common import UserError

    moment = parse_since(since)

    async def read(op: OperatorScheduler) -> list[Any]:
        history = getattr(op, "get_task_runs_async", None)
        if history is None:
            raise UserError("this version of asyncz keeps no run history")
        private = [a for a, s in op.stores.items() if not getattr(s, "keeps_history", False)]
        if private:
            click.echo(
                f"note: store(s) {', '.join(private)} keep run history in each node's memory "
                "only; their runs are not shown here",
                err=True,
            )
        try:
            found: list[Any] = await history(
                task_id, limit=limit, since=moment, outcome=outcome, store=store
            )
        except ValueError as exc:
            raise UserError(f"--outcome: {exc}") from None
        return found

    records = session(config_file, store, read)
    if as_json:
        emit_json({"runs": [r._asdict() for r in records]})
        return
    if not records:
        click.echo("No runs recorded.")
        return
    columns = ["ENDED (UTC)", "TASK", "OUTCOME", "SOURCE", "TRY", "NODE", "TOOK", "DETAIL"]
    rows = [
        [
            when(r.time),
            r.task_id,
            r.outcome,
            r.source,
            r.attempt,
            r.node,
            f"{r.duration:.3f}s" if r.duration is not None else None,
            _detail(r),
        ]
        for r in records
    ]
    table(columns, rows)

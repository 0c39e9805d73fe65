"""One scheduler node of the chaos tests: a process of its own, as a web app's worker would be.

Usage::

    python node.py --store-json '{"type": "redis", "url": "redis://..."}' --identity 0 \\
        --out FILE [--tasks 100] [--interval 1] [--lease 3] [--duration S | --until EPOCH] \\
        [--hold-after-claim SECONDS] [--acquire-delay SECONDS] [--control-stdin] \\
        [--setup --start-at EPOCH]

``--setup`` is the one step that adds the tasks (the test runs it once, before any node
starts): ``--tasks`` interval tasks ``chaos-<i>``, every ``--interval`` seconds from the
common instant ``--start-at`` (their first run time, even if the setup ends after it), ``coalesce=False`` and a large ``misfire_grace_time`` (runs
taken over late still run). It starts the scheduler paused, so it processes nothing.

Otherwise the node starts an ``AsyncIOScheduler`` on the store (identity ``node-<N>``, lease
``--lease`` seconds), prints ``READY``, processes until ``--until`` (or for ``--duration``
seconds), shuts down gracefully and prints ``DONE``. SIGTERM ends it earlier, gracefully.
With ``--control-stdin`` the test drives it through stdin: an ``ARM`` line arms the hold
below, a ``STOP`` line or the end of stdin (the test is gone) stops it gracefully.

Each run is appended to ``--out`` from a ``TASK_EXECUTED`` listener, one line written at once
(``O_APPEND``)::

    task_id scheduled_run_time(epoch s) node wallclock(epoch s)

Each fire time handed to the executor is appended to ``--out`` + ``.submitted`` (same format,
from ``TASK_SUBMITTED``): a node killed after it submitted a run and before the run finished
takes that run with it (at most once for runs in flight, see docs/coordination.md), and the
test tells those from fire times that were never handed out. Other outcomes of a run
(missed, skipped at max_instances, dropped) go to ``--out`` + ``.events``.

``--hold-after-claim SECONDS`` wraps this process's store instance (test code, the product is
untouched): the first time ``acquire_due_tasks`` returns tasks once the hold is armed (at
once; with ``--control-stdin``, when an ``ARM`` line comes), the node prints
``CLAIMED <n> <epoch>``, flushes, and sleeps SECONDS before handing them to the scheduler, so
that the test can SIGKILL it (or cut its link) while it holds claims. One claim is held; the
node then goes on as usual.

``--acquire-delay SECONDS`` (same wrapping) makes every claim of this node start that much
later: the nodes wake up at the same instant and the first claim takes every due task, so the
test gives the other nodes a small delay to make sure the node it aims at wins the race.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from datetime import datetime, timezone
from typing import Any

from asyncz import events as ev
from asyncz.schedulers.asyncio import AsyncIOScheduler

TASK_REF = "chaos_tasks:tick"
MISFIRE_GRACE = 60


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store-json", required=True, help="store spec: {'type': alias, ...}")
    parser.add_argument("--identity", required=True, help="node number (identity node-<N>)")
    parser.add_argument("--out", required=True, help="file the runs are appended to")
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--lease", type=float, default=3.0)
    parser.add_argument("--duration", type=float, default=None)
    parser.add_argument("--until", type=float, default=None, help="epoch seconds to stop at")
    parser.add_argument("--hold-after-claim", type=float, default=None)
    parser.add_argument("--control-stdin", action="store_true", help="read ARM/STOP on stdin")
    parser.add_argument("--acquire-delay", type=float, default=None)
    parser.add_argument("--store-timeout", type=float, default=None)
    parser.add_argument("--setup", action="store_true", help="add the tasks, then exit")
    parser.add_argument("--start-at", type=float, default=None, help="first fire time (epoch)")
    args = parser.parse_args(argv)
    if args.setup and args.start_at is None:
        parser.error("--setup needs --start-at")
    if not args.setup and args.duration is None and args.until is None:
        parser.error("give --duration or --until")
    return args


def make_scheduler(args: argparse.Namespace) -> AsyncIOScheduler:
    config: dict[str, Any] = {
        "asyncz.identity": f"node-{args.identity}",
        "asyncz.coordination.lease": args.lease,
    }
    if args.store_timeout is not None:
        config["asyncz.store_timeout"] = args.store_timeout
    return AsyncIOScheduler(
        global_config=config,
        stores={"default": json.loads(args.store_json)},
        timezone=timezone.utc,
    )


def setup(args: argparse.Namespace) -> None:
    """Add the tasks once (replacing any of the same id), without processing anything."""
    scheduler = make_scheduler(args)
    scheduler.start(paused=True)
    try:
        start_at = datetime.fromtimestamp(args.start_at, timezone.utc)
        for index in range(args.tasks):
            scheduler.add_task(
                TASK_REF,
                "interval",
                seconds=args.interval,
                start_at=start_at,
                # Given, not computed: on adding, the trigger's first fire time is the first
                # one after *now*, so a setup slower than the lead (a busy server) would skip
                # the fire times that passed meanwhile, and the test count them as lost.
                next_run_time=start_at,
                id=f"chaos-{index}",
                replace_existing=True,
                coalesce=False,
                misfire_grace_time=MISFIRE_GRACE,
                max_instances=1000,
            )
    finally:
        scheduler.shutdown()
    print("SETUP DONE", flush=True)


def wrap_acquire(
    scheduler: AsyncIOScheduler, hold: float | None, armed: threading.Event, delay: float | None
) -> None:
    """Wrap the store instance's acquire_due_tasks (see --hold-after-claim, --acquire-delay)."""
    import asyncio

    store = scheduler.stores["default"]
    acquire = store.acquire_due_tasks
    pending_hold = [hold] if hold is not None else []

    async def wrapped(node: str, now: datetime, lease: float, limit: int) -> Any:
        if delay:
            await asyncio.sleep(delay)
        tasks = await acquire(node, now, lease, limit)
        if tasks and pending_hold and armed.is_set():
            seconds = pending_hold.pop()
            sys.stdout.write(f"CLAIMED {len(tasks)} {time.time():.6f}\n")
            sys.stdout.flush()
            await asyncio.sleep(seconds)
        return tasks

    store.acquire_due_tasks = wrapped  # type: ignore[method-assign]


def read_commands(armed: threading.Event, stop: threading.Event) -> None:
    """stdin: ``ARM`` arms the hold, ``STOP`` or the end of stdin stops the node."""
    for line in sys.stdin:
        command = line.strip()
        if command == "ARM":
            armed.set()
        elif command == "STOP":
            break
    stop.set()


def run(args: argparse.Namespace) -> None:
    node = f"node-{args.identity}"
    out = os.open(args.out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    events = os.open(args.out + ".events", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    submitted = os.open(args.out + ".submitted", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def record(event: ev.SchedulerEvent) -> None:
        assert isinstance(event, ev.TaskExecutionEvent)
        fire = event.scheduled_run_time.timestamp()
        os.write(out, f"{event.task_id} {fire:.6f} {node} {time.time():.6f}\n".encode())

    def handed(event: ev.SchedulerEvent) -> None:
        assert isinstance(event, ev.TaskSubmissionEvent)
        now = time.time()
        lines = "".join(
            f"{event.task_id} {fire.timestamp():.6f} {node} {now:.6f}\n"
            for fire in event.scheduled_run_times
        )
        os.write(submitted, lines.encode())

    def note(event: ev.SchedulerEvent) -> None:
        os.write(events, f"{time.time():.6f} {node} {event!r}\n".encode())

    scheduler = make_scheduler(args)
    scheduler.add_listener(record, ev.TASK_EXECUTED)
    scheduler.add_listener(handed, ev.TASK_SUBMITTED)
    scheduler.add_listener(
        note,
        ev.TASK_MISSED | ev.TASK_ERROR | ev.TASK_MAX_INSTANCES | ev.TASK_RUNS_DROPPED,
    )
    armed = threading.Event()
    if not args.control_stdin:
        armed.set()
    if args.hold_after_claim is not None or args.acquire_delay:
        wrap_acquire(scheduler, args.hold_after_claim, armed, args.acquire_delay)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if args.control_stdin:
        threading.Thread(target=read_commands, args=(armed, stop), daemon=True).start()
    until = args.until if args.until is not None else time.time() + args.duration
    scheduler.start()
    print("READY", flush=True)
    stop.wait(max(0.0, until - time.time()))
    scheduler.shutdown()
    for fd in (out, events, submitted):
        os.close(fd)
    print("DONE", flush=True)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.setup else logging.INFO,
        stream=sys.stderr,
        format=f"%(asctime)s node-{args.identity} %(name)s %(levelname)s %(message)s",
    )
    # One line per run would only slow the node down; the runs are in --out.
    logging.getLogger("asyncz.executors").setLevel(logging.WARNING)
    if args.setup:
        setup(args)
    else:
        run(args)


if __name__ == "__main__":
    main()

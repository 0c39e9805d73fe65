"""One node of the two-process file store test: its own AsyncIOScheduler, its own identity,
one shared FileStore directory, no lock_path (the store's claims alone keep runs unique).

Usage: python _file_node_worker.py STORE_DIR IDENTITY OUT_FILE, then on stdin, after it
printed ``booted``: ``START_AT END_AT`` (epoch seconds). Every node declares the same tasks
(``replace_existing=True``, as every worker of a web application would) and records each
run as ``task_id scheduled_run_time`` in its own OUT_FILE until SIGTERM.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from datetime import datetime, timedelta, timezone

from _lifecycle_tasks import tick

from asyncz import events as ev
from asyncz.schedulers.asyncio import AsyncIOScheduler
from asyncz.stores.file import FileStore

#: task id -> offset of its first run after START_AT, in seconds; each runs every INTERVAL.
OFFSETS = {"node-a": 0.0, "node-b": 0.05, "node-c": 0.1, "node-d": 0.15}
INTERVAL = 0.2


def main() -> None:
    store_dir, identity, out_file = sys.argv[1:4]
    print("booted", flush=True)
    start_text, end_text = sys.stdin.readline().split()
    start_at = datetime.fromtimestamp(float(start_text), timezone.utc)
    end_at = datetime.fromtimestamp(float(end_text), timezone.utc)
    out = os.open(out_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def record(event: ev.SchedulerEvent) -> None:
        assert isinstance(event, ev.TaskExecutionEvent)
        os.write(out, f"{event.task_id} {event.scheduled_run_time.isoformat()}\n".encode())

    scheduler = AsyncIOScheduler(
        stores={"default": FileStore(store_dir)}, timezone=timezone.utc, identity=identity
    )
    scheduler.add_listener(record, ev.TASK_EXECUTED)
    for task_id, offset in OFFSETS.items():
        scheduler.add_task(
            tick,
            "interval",
            seconds=INTERVAL,
            start_at=start_at + timedelta(seconds=offset),
            end_at=end_at,
            id=task_id,
            replace_existing=True,
            coalesce=False,
            misfire_grace_time=None,
            max_instances=100,
        )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    scheduler.start()
    print("ready", flush=True)
    stop.wait()
    scheduler.shutdown()
    os.close(out)


if __name__ == "__main__":
    main()

"""One worker process of the lock_path test, started like a gunicorn/uvicorn worker.

Usage: python _lifecycle_worker.py STORE_DIR LOCK_PATH OUT_FILE, then on stdin, after it
printed ``booted``: ``START_AT END_AT`` (epoch seconds), so that slow imports on a busy
machine cannot eat into the schedule.

Every worker declares the same tasks (as every worker of a web application would, with
``replace_existing=True``) in one shared FileStore, starts an AsyncIOScheduler with the
shared ``lock_path`` and records each run as ``task_id scheduled_run_time pid`` in OUT_FILE
(opened O_APPEND) until SIGTERM, on which it shuts down gracefully.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from datetime import datetime, timezone

from _lifecycle_tasks import tick

from asyncz import events as ev
from asyncz.schedulers.asyncio import AsyncIOScheduler
from asyncz.stores.file import FileStore

#: task id -> interval in seconds; the test computes the same fire times.
INTERVALS = {"every-100ms": 0.1, "every-150ms": 0.15, "every-200ms": 0.2, "every-350ms": 0.35}


def main() -> None:
    store_dir, lock_path, out_file = sys.argv[1:4]
    print("booted", flush=True)
    start_text, end_text = sys.stdin.readline().split()
    start_at = datetime.fromtimestamp(float(start_text), timezone.utc)
    end_at = datetime.fromtimestamp(float(end_text), timezone.utc)
    out = os.open(out_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    pid = os.getpid()

    def record(event: ev.SchedulerEvent) -> None:
        assert isinstance(event, ev.TaskExecutionEvent)
        line = f"{event.task_id} {event.scheduled_run_time.isoformat()} {pid}\n"
        os.write(out, line.encode())

    scheduler = AsyncIOScheduler(
        stores={"default": FileStore(store_dir, fsync=False)},
        lock_path=lock_path,
        timezone=timezone.utc,
    )
    scheduler.add_listener(record, ev.TASK_EXECUTED)
    for task_id, seconds in INTERVALS.items():
        scheduler.add_task(
            tick,
            "interval",
            seconds=seconds,
            start_at=start_at,
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
    print("ready", pid, flush=True)
    stop.wait()
    scheduler.shutdown()
    os.close(out)


if __name__ == "__main__":
    main()

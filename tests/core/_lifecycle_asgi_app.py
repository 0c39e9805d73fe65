"""A Starlette application whose lifespan starts an asyncz scheduler, served by uvicorn in
the ASGI test: ``uvicorn _lifecycle_asgi_app:app``.

``ASYNCZ_TEST_MARKER``: file that receives ``started``/``stopped`` lines from the scheduler's
events. ``ASYNCZ_TEST_FAIL_START=1``: the scheduler cannot start (its task names a store that
does not exist), to check that uvicorn refuses to serve. ``ASYNCZ_TEST_LIFESPAN``: who stops
the scheduler: ``wrapper`` (default: ``scheduler.asgi(app)``), ``sync`` (the application's
own lifespan calls ``scheduler.start()`` and ``scheduler.shutdown()``, as an ``on_shutdown``
hook does) or ``async`` (it awaits ``scheduler.shutdown_async()``). Two shutdown tasks (a
coroutine that sleeps first, and a function) append to ``<marker>.farewell``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from asyncz import events as ev
from asyncz.schedulers.asyncio import AsyncIOScheduler

scheduler = AsyncIOScheduler(timezone="UTC")
runs: list[str] = []


async def tick() -> None:
    runs.append(threading.current_thread().name)


def mark(event: ev.SchedulerEvent) -> None:
    marker = os.environ.get("ASYNCZ_TEST_MARKER")
    if marker:
        with open(marker, "a") as out:
            out.write("started\n" if event.code == ev.SCHEDULER_START else "stopped\n")


def farewell_line(text: str) -> None:
    marker = os.environ.get("ASYNCZ_TEST_MARKER")
    if marker:
        with open(marker + ".farewell", "a") as out:
            out.write(text + "\n")


async def farewell() -> None:
    await asyncio.sleep(0.3)  # long enough for the server to end its loop meanwhile
    farewell_line("async")


def farewell_sync() -> None:
    farewell_line("sync")


scheduler.add_listener(mark, ev.SCHEDULER_START | ev.SCHEDULER_SHUTDOWN)
scheduler.add_task(farewell, "shutdown", id="farewell")
scheduler.add_task(farewell_sync, "shutdown", id="farewell-sync")
MODE = os.environ.get("ASYNCZ_TEST_LIFESPAN", "wrapper")
if os.environ.get("ASYNCZ_TEST_FAIL_START"):
    scheduler.add_task(tick, "interval", seconds=1, store="missing")


async def health(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


async def status(request: Request) -> JSONResponse:
    return JSONResponse(
        {"runs": len(runs), "threads": sorted(set(runs)), "running": scheduler.running}
    )


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    if MODE != "wrapper":
        scheduler.start()
    # The wrapper started the scheduler before the application's own startup.
    print("scheduler running at app startup:", scheduler.running, flush=True)
    scheduler.add_task(tick, "interval", seconds=0.05, id="tick", replace_existing=True)
    yield
    if MODE == "sync":
        scheduler.shutdown()  # returns at once: it runs on the server's loop
    elif MODE == "async":
        await scheduler.shutdown_async()


starlette_app = Starlette(
    routes=[Route("/health", health), Route("/status", status)], lifespan=lifespan
)
app = scheduler.asgi(starlette_app, wait=True) if MODE == "wrapper" else starlette_app

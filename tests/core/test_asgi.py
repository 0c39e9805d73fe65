"""ASGI: ``scheduler.asgi()`` ties the scheduler to the application's lifespan; checked with
a scripted lifespan and end to end under uvicorn with a Starlette application."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from asyncz.asgi import SchedulerLifespan
from asyncz.schedulers.asyncio import AsyncIOScheduler, NativeAsyncIOScheduler

UTC = timezone.utc
HERE = Path(__file__).resolve().parent

calls: list[str] = []


@pytest.fixture(autouse=True)
def _clear() -> None:
    calls.clear()


async def slow() -> None:
    calls.append("start")
    await asyncio.sleep(0.2)
    calls.append("end")


async def lifespan(
    app: Any, messages: list[str], between: Callable[[], Any] | None = None
) -> list[dict[str, Any]]:
    """Play the server's side of the lifespan protocol; return what the app sent."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    sent: list[dict[str, Any]] = []
    replied = asyncio.Event()

    async def receive() -> dict[str, Any]:
        return await inbox.get()

    async def send(message: dict[str, Any]) -> None:
        sent.append(dict(message))
        replied.set()

    runner = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    )
    for kind in messages:
        replied.clear()
        await inbox.put({"type": f"lifespan.{kind}"})
        waiter = asyncio.create_task(replied.wait())
        await asyncio.wait({waiter, runner}, return_when=asyncio.FIRST_COMPLETED, timeout=5)
        waiter.cancel()
        if between is not None and kind == "startup":
            await between()
        if runner.done():
            break
    if not (sent and sent[-1]["type"].endswith(".failed")):
        await asyncio.wait({runner}, timeout=5)  # a failed app may still wait: a server leaves it
    if runner.done() and not runner.cancelled() and runner.exception() is not None:
        raise runner.exception()  # type: ignore[misc]
    runner.cancel()
    return sent


class LifespanApp:
    """A raw ASGI application that implements lifespan and remembers what it saw."""

    def __init__(self, fail_startup: bool = False) -> None:
        self.seen: list[str] = []
        self.fail_startup = fail_startup

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                self.seen.append(message["type"])
                if message["type"] == "lifespan.startup":
                    if self.fail_startup:
                        await send({"type": "lifespan.startup.failed", "message": "app says no"})
                        return
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        self.seen.append(scope["type"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"app"})


def kinds(sent: list[dict[str, Any]]) -> list[str]:
    return [m["type"] for m in sent]


# -- the wrapper with a scripted server ---------------------------------------------------------
async def test_lifespan_starts_and_stops_the_scheduler_around_the_app() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    inner = LifespanApp()
    app = scheduler.asgi(inner)
    assert isinstance(app, SchedulerLifespan)
    states: list[bool] = []

    async def check() -> None:
        states.append(scheduler.running)
        states.append(scheduler.event_loop is asyncio.get_running_loop())

    sent = await lifespan(app, ["startup", "shutdown"], between=check)
    assert kinds(sent) == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert inner.seen == ["lifespan.startup", "lifespan.shutdown"]
    assert states == [True, True] and not scheduler.running


async def test_a_scheduler_that_cannot_start_is_reported_as_startup_failed() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.add_task(slow, "date", run_at=datetime.now(UTC), store="missing")
    sent = await lifespan(scheduler.asgi(LifespanApp()), ["startup"])
    assert kinds(sent) == ["lifespan.startup.failed"]
    assert "LookupError" in sent[0]["message"] and "missing" in sent[0]["message"]
    assert not scheduler.running


async def test_the_apps_own_startup_failure_is_passed_on_and_the_scheduler_stopped() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    sent = await lifespan(scheduler.asgi(LifespanApp(fail_startup=True)), ["startup"])
    assert sent == [{"type": "lifespan.startup.failed", "message": "app says no"}]
    assert not scheduler.running


async def test_handle_lifespan_answers_itself_and_the_app_never_sees_it() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    inner = LifespanApp()
    app = scheduler.asgi(inner, handle_lifespan=True)
    running: list[bool] = []

    async def check() -> None:
        running.append(scheduler.running)

    sent = await lifespan(app, ["startup", "shutdown"], between=check)
    assert kinds(sent) == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert inner.seen == [] and running == [True] and not scheduler.running


async def test_handle_lifespan_reports_a_failed_start() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.add_task(slow, "date", run_at=datetime.now(UTC), store="missing")
    sent = await lifespan(scheduler.asgi(LifespanApp(), handle_lifespan=True), ["startup"])
    assert kinds(sent) == ["lifespan.startup.failed"] and "missing" in sent[0]["message"]


async def test_decorator_forms() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)

    @scheduler.asgi
    async def plain(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover
        raise AssertionError

    @scheduler.asgi(handle_lifespan=True, wait=True)
    async def answered(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover
        raise AssertionError

    assert isinstance(plain, SchedulerLifespan) and not plain.handle_lifespan
    assert isinstance(answered, SchedulerLifespan)
    assert answered.handle_lifespan and answered.wait
    sent = await lifespan(answered, ["startup", "shutdown"])
    assert kinds(sent) == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


@pytest.mark.parametrize(("wait", "expected"), [(True, ["start", "end"]), (False, ["start"])])
async def test_wait_decides_whether_shutdown_waits_for_running_tasks(
    wait: bool, expected: list[str]
) -> None:
    scheduler = NativeAsyncIOScheduler(timezone=UTC)
    app = scheduler.asgi(LifespanApp(), wait=wait)

    async def add() -> None:
        scheduler.add_task(slow, "date", run_at=datetime.now(UTC))
        while not calls:
            await asyncio.sleep(0.01)

    sent = await lifespan(app, ["startup", "shutdown"], between=add)
    assert kinds(sent)[-1] == "lifespan.shutdown.complete"
    assert calls == expected


async def test_requests_pass_through_and_an_app_less_wrapper_answers_404() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    for app, status in ((scheduler.asgi(LifespanApp()), 200), (SchedulerLifespan(scheduler), 404)):
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any], sent: list[dict[str, Any]] = sent) -> None:
            sent.append(message)

        async def receive() -> dict[str, Any]:  # pragma: no cover - never awaited here
            return {"type": "http.request"}

        await app({"type": "http", "path": "/"}, receive, send)
        assert sent[0]["status"] == status


async def test_an_app_that_rejects_lifespan_does_not_leave_the_scheduler_running() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)

    async def http_only(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        raise RuntimeError("lifespan is not supported")

    with pytest.raises(RuntimeError, match="not supported"):
        await lifespan(scheduler.asgi(http_only), ["startup"])
    assert not scheduler.running


# -- end to end under uvicorn ------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        body = response.read()
    return json.loads(body) if body.startswith(b"{") else body.decode()


def serve(tmp_path: Path, **env: str) -> tuple[subprocess.Popen[str], str]:
    pytest.importorskip("uvicorn")
    pytest.importorskip("starlette")
    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", "_lifecycle_asgi_app:app",
        "--host", "127.0.0.1", "--port", str(port), "--lifespan", "on",
    ]  # fmt: skip
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), *sys.path]),
        "ASYNCZ_TEST_MARKER": str(tmp_path / "marker"),
        **env,
    }
    server = subprocess.Popen(
        command, cwd=tmp_path, env=environment, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    return server, f"http://127.0.0.1:{port}"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["wrapper", "sync", "async"])
def test_under_uvicorn_a_task_scheduled_at_startup_runs_while_serving(
    tmp_path: Path, mode: str
) -> None:
    server, base = serve(tmp_path, ASYNCZ_TEST_LIFESPAN=mode)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                assert get(f"{base}/health") == "ok"
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        first = get(f"{base}/status")
        assert first["running"] is True
        # Requests are served while the task (every 0.05 s) keeps running on the server's loop.
        deadline = time.monotonic() + 30
        while True:
            assert get(f"{base}/health") == "ok"
            later = get(f"{base}/status")
            if later["runs"] >= first["runs"] + 5 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert later["runs"] >= first["runs"] + 5
        assert later["threads"] == ["MainThread"]  # uvicorn's loop, not a thread of ours
        server.send_signal(signal.SIGINT)
        output, _ = server.communicate(timeout=15)
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate(timeout=5)
    assert server.returncode == 0, output
    assert "scheduler running at app startup: True" in output
    assert "Application startup complete" in output
    assert "Application shutdown complete" in output
    assert (tmp_path / "marker").read_text() == "started\nstopped\n"
    # The shutdown tasks ran to their end, whoever stopped the scheduler, before the server's
    # loop closed (a sync shutdown() on that loop included).
    farewells = (tmp_path / "marker.farewell").read_text().split()
    assert sorted(farewells) == ["async", "sync"]


@pytest.mark.timeout(60)
def test_under_uvicorn_a_scheduler_that_cannot_start_stops_the_server(tmp_path: Path) -> None:
    server, _ = serve(tmp_path, ASYNCZ_TEST_FAIL_START="1")
    try:
        output, _ = server.communicate(timeout=20)
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate(timeout=5)
    assert server.returncode != 0
    assert "Application startup failed" in output
    assert "No store named 'missing'" in output
    assert not (tmp_path / "marker").exists()

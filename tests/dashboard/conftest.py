"""A deployment for the dashboard's tests: a configuration file with a SQLite store and a
dashboard token, tasks added through an operator, and the dashboard app over it.

The browser tests (test_dashboard_browser.py) use the CLI tests' deployment instead
(tests/cli/cli_helpers.py): a node runs its tasks in another process.
"""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from asyncz.operator import open_operator
from asyncz.testing import functions

TOKEN = "t0ken-for-the-dashboard-tests"
#: An id that is also markup: every page must show it escaped.
EVIL_ID = '<script>alert("id")</script>'


def write_config(directory: Path, dashboard: str = f'token = "{TOKEN}"') -> Path:
    config = directory / "asyncz.toml"
    config.write_text(
        textwrap.dedent(
            f"""
            timezone = "UTC"

            [stores.default]
            type = "sqlalchemy"
            database = "sqlite:///{directory / "tasks.db"}"

            [dashboard]
            """
        )
        + dashboard
        + "\n"
    )
    return config


@pytest.fixture
async def config(tmp_path: Path) -> Path:
    """The configuration, its store holding the tasks ``alpha`` (every 5 min), ``beta``
    (daily cron) and one whose id is markup."""
    path = write_config(tmp_path)
    async with open_operator(path) as operator:
        await operator.add_task_async(functions.noop, "interval", minutes=5, id="alpha")
        await operator.add_task_async(functions.noop, "cron", hour=6, minute=30, id="beta")
        await operator.add_task_async(functions.noop, "interval", hours=1, id=EVIL_ID)
    return path


@pytest.fixture
async def app(config: Path) -> AsyncIterator[object]:
    from asyncz.dashboard import create_dashboard

    dashboard = create_dashboard(config_file=config)
    try:
        yield dashboard
    finally:
        await dashboard.aclose()


def client_for(app: object, host: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(host, 50000))  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://dash.test")


@pytest.fixture
async def client(app: object) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as found:
        yield found


async def log_in(client: httpx.AsyncClient, token: str = TOKEN) -> str:
    """Log in through the form; return the session's CSRF token (read from a page)."""
    page = await client.get("/login")
    csrf = csrf_of(page.text)
    response = await client.post("/login", data={"csrf": csrf, "token": token, "next": "/tasks"})
    assert response.status_code == 303, response.text
    return csrf_of((await client.get("/tasks")).text)


def csrf_of(html: str) -> str:
    marker = 'name="csrf" value="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)]

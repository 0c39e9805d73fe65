"""The dashboard tests' helpers: a configuration, an HTTP client on the app, logging in."""

from __future__ import annotations

import textwrap
from pathlib import Path

import httpx

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


def client_for(app: object, host: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(host, 50000))  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://dash.test")


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


def fail() -> None:
    """A task that fails with markup in its message (it must come back escaped)."""
    raise RuntimeError("<b>disk</b> full")

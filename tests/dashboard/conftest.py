"""A deployment for the dashboard's tests: a configuration file with a SQLite store and a
dashboard token, tasks added through an operator, and the dashboard app over it.

The browser tests (test_dashboard_browser.py) use the CLI tests' deployment instead
(tests/cli/cli_helpers.py): a node runs its tasks in another process.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # dash_helpers

from dash_helpers import EVIL_ID, client_for, write_config

from asyncz.operator import open_operator
from asyncz.testing import functions


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


@pytest.fixture
async def client(app: object) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as found:
        yield found

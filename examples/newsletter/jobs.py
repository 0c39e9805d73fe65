"""The example project's tasks: plain and async functions, referenced from asyncz.toml."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone


def heartbeat() -> str:
    """Runs every few seconds: proves the scheduler is alive."""
    return f"alive at {datetime.now(timezone.utc):%H:%M:%S}"


async def collect_www_info(source: str) -> int:
    """An async task: pretend to fetch something."""
    await asyncio.sleep(0.1)
    return len(source)


def send_email_newsletter(recipients: list[str]) -> str:
    """A cron task: weekdays at 08:01:05 UTC."""
    return f"sent to {len(recipients)} recipients"

"""The task functions every library runs: module-level, so persistent stores can reference
them as ``adapters.jobs:name``."""

from __future__ import annotations

import asyncio
import time
from typing import Any

#: state of the counted runs (one scenario per process)
state: dict[str, Any] = {"target": 0, "done": 0, "first": None, "last": None, "event": None}


def expect(n: int) -> asyncio.Event:
    state.update(target=n, done=0, first=None, last=None, event=asyncio.Event())
    event: asyncio.Event = state["event"]
    return event


async def anoop() -> None:
    """The trivial coroutine of the add / idle scenarios."""


async def counted() -> None:
    """Records the time of the first and of the last expected run."""
    now = time.perf_counter()
    if state["first"] is None:
        state["first"] = now
    state["done"] += 1
    if state["done"] == state["target"]:
        state["last"] = now
        state["event"].set()


lateness: list[float] = []
starts: dict[int, float] = {}


async def late(i: int) -> None:
    """Lateness of an interval(1 s) run: time since the grid point of task ``i``."""
    lateness.append((time.time() - starts[i]) % 1.0)

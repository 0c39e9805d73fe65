"""Task callables shared by the worker processes of the lock_path test (importable by name)."""

from __future__ import annotations


async def tick() -> None:
    """A run does nothing itself; the worker's TASK_EXECUTED listener records it."""

"""The task every chaos node runs (importable as ``chaos_tasks:tick`` by each node process:
``node.py`` runs with this directory first on ``sys.path``)."""

from __future__ import annotations


async def tick() -> None:
    """Does nothing: the node records each run from its ``TASK_EXECUTED`` listener."""

"""Asyncz's alias tables (``triggers``, ``executors``, ``stores``: alias -> ``"module:Class"``),
read from the registry: every installed component, plugins included, at first access.

Prefer :mod:`asyncz.registry` (``registry.aliases("store")``) or ``asyncz plugins``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["executors", "stores", "triggers"]

_KINDS = {"triggers": "trigger", "executors": "executor", "stores": "store"}


def __getattr__(name: str) -> Any:
    kind = _KINDS.get(name)
    if kind is None:
        raise AttributeError(f"module 'asyncz.schedulers.defaults' has no attribute {name!r}")
    from asyncz.registry import registry

    return {alias: registry.entry(kind, alias).value for alias in registry.aliases(kind)}

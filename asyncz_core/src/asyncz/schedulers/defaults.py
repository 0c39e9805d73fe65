"""Asyncz's alias tables (``triggers``, ``executors``, ``stores``: alias -> ``"module:Class"``),
read from the registry: every installed component, plugins included, at first access.

Data path: none of its own; names for the aliases ``add_task`` and stores resolve.

Prefer :mod:`asyncz.registry` (``registry.aliases("store")``) or ``asyncz plugins``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["executors", "stores", "triggers"]

if TYPE_CHECKING:
    executors: dict[str, str]
    stores: dict[str, str]
    triggers: dict[str, str]

_KINDS = {"triggers": "trigger", "executors": "executor", "stores": "store"}


def __getattr__(name: str) -> Any:
    kind = _KINDS.get(name)
    if kind is None:
        raise AttributeError(f"module 'asyncz.schedulers.defaults' has no attribute {name!r}")
    from asyncz.registry import registry

    return {alias: registry.entry(kind, alias).value for alias in registry.aliases(kind)}

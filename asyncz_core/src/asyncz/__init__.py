"""asyncz: an asyncio-first task scheduler with a driver-free core and plugin components.

Importing :mod:`asyncz` imports nothing else: the registry is scanned and plugins are loaded
only when first needed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["__version__", "hookimpl"]

if TYPE_CHECKING:
    from pluggy import HookimplMarker

    hookimpl: HookimplMarker


def __getattr__(name: str) -> Any:
    if name == "hookimpl":
        from asyncz.hookspecs import hookimpl

        return hookimpl
    raise AttributeError(f"module 'asyncz' has no attribute {name!r}")

"""One scan of the installed entry points, shared by the component registry and the hooks.

Walking ``importlib.metadata.distributions()`` reads every installed distribution's metadata
from disk: the slowest step of resolving a first alias. The component registry
(:mod:`asyncz.registry`, groups ``asyncz.stores`` ...) and the hook plugin manager
(:mod:`asyncz.plugins`, group ``asyncz``) both read :data:`ENTRY_POINTS`, so the walk happens
once per process, on first use (never at ``import asyncz``), and again only after
:meth:`EntryPointScan.invalidate` (``registry.rescan()``, ``plugins.reset_plugin_manager()``).

The scan only collects; each reader keeps its own rules (the registry reports two
distributions claiming one alias, the plugin manager takes the first of a name).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata

__all__ = ["ENTRY_POINTS", "EntryPointScan", "Found"]

#: The groups kept: ``asyncz`` (hook plugins) and every ``asyncz.*`` (components).
_PREFIX = "asyncz"


@dataclass(frozen=True)
class Found:
    """One entry point with the distribution that declares it."""

    entry_point: metadata.EntryPoint
    distribution: str | None
    version: str | None


def _ours(group: str) -> bool:
    return group == _PREFIX or group.startswith(_PREFIX + ".")


class EntryPointScan:
    """The ``asyncz`` and ``asyncz.*`` entry points of every installed distribution, by group.

    Scanned on the first :meth:`group` call and cached until :meth:`invalidate`. Thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._groups: dict[str, tuple[Found, ...]] | None = None
        self._listeners: list[Callable[[], None]] = []

    def group(self, name: str) -> tuple[Found, ...]:
        """The entry points of group ``name``, in the order the distributions were found."""
        groups = self._groups
        if groups is None:
            with self._lock:
                if self._groups is None:
                    self._groups = _walk()
                groups = self._groups
        return groups.get(name, ())

    def invalidate(self) -> None:
        """Forget the scan (after installing or removing a distribution); readers are told."""
        with self._lock:
            self._groups = None
            importlib.invalidate_caches()
            listeners = list(self._listeners)
        # Outside the lock: a listener takes its own lock, which may be held by a thread
        # waiting on this one in group().
        for listener in listeners:
            listener()

    def on_invalidate(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` after every :meth:`invalidate` (to drop what was derived)."""
        with self._lock:
            self._listeners.append(listener)


def _walk() -> dict[str, tuple[Found, ...]]:
    found: dict[str, list[Found]] = {}
    for dist in metadata.distributions():
        ours = [ep for ep in dist.entry_points if _ours(ep.group)]
        if not ours:
            # Most distributions declare none of our groups: their METADATA is never read.
            continue
        meta = dist.metadata
        name, version = meta["Name"], meta["Version"]
        for ep in ours:
            found.setdefault(ep.group, []).append(Found(ep, name, version))
    return {group: tuple(items) for group, items in found.items()}


#: The process-wide scan, read by :data:`asyncz.registry.registry` and :mod:`asyncz.plugins`.
ENTRY_POINTS = EntryPointScan()

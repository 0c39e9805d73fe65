"""The pluggy plugin manager that carries the behaviour hooks of :mod:`asyncz.hookspecs`.

Plugins are loaded from the entry-point group ``asyncz`` the first time the manager is asked
for, never at ``import asyncz``, from the one entry-point scan the component registry reads
too (:mod:`asyncz._entrypoints`). Two environment variables control which, as in datasette and
llm: ``ASYNCZ_DISABLE_PLUGINS`` (``1``/``true``/``*`` for all, or a comma list of entry-point
or distribution names) and ``ASYNCZ_LOAD_PLUGINS`` (a comma list: load only these; empty loads
none). A plugin that fails to import raises :class:`~asyncz.exceptions.PluginLoadError`; a
plugin implementing a hook that does not exist (a misspelling) raises pluggy's
``PluginValidationError``: neither is silenced.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from importlib import metadata
from typing import Any

import pluggy

from asyncz import hookspecs
from asyncz._entrypoints import ENTRY_POINTS
from asyncz.exceptions import PluginLoadError

__all__ = [
    "GROUP",
    "describe_hook_plugins",
    "get_plugin_manager",
    "plugin_names",
    "reset_plugin_manager",
]

GROUP = "asyncz"

_lock = threading.Lock()
_manager: pluggy.PluginManager | None = None
_DISTRIBUTIONS: dict[str, tuple[str | None, str | None]] = {}
_ALL = frozenset({"1", "true", "yes", "*", "all"})


def _names(variable: str) -> set[str] | None:
    raw = os.environ.get(variable)
    if raw is None:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


def _wanted(ep: metadata.EntryPoint, dist_name: str | None) -> bool:
    disabled = _names("ASYNCZ_DISABLE_PLUGINS")
    if disabled is not None:
        if {d.lower() for d in disabled} & _ALL:
            return False
        if ep.name in disabled or (dist_name is not None and dist_name in disabled):
            return False
    allowed = _names("ASYNCZ_LOAD_PLUGINS")
    if allowed is not None:
        return ep.name in allowed or (dist_name is not None and dist_name in allowed)
    return True


def _entry_points() -> Iterator[tuple[metadata.EntryPoint, str | None, str | None]]:
    """Every ``asyncz`` entry point once, with its distribution's name and version."""
    seen: set[str] = set()
    for found in ENTRY_POINTS.group(GROUP):
        ep = found.entry_point
        if ep.name in seen:
            continue
        seen.add(ep.name)
        yield ep, found.distribution, found.version


def _load(ep: metadata.EntryPoint, dist_name: str | None, version: str | None) -> Any:
    try:
        return ep.load()
    except Exception as exc:
        raise PluginLoadError(
            "hook plugin", ep.name, GROUP, ep.value, dist_name, version, exc
        ) from exc


def _new_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    return pm


def _build() -> pluggy.PluginManager:
    pm = _new_manager()
    distributions: dict[str, tuple[str | None, str | None]] = {}
    for ep, dist_name, version in _entry_points():
        if not _wanted(ep, dist_name):
            continue
        pm.register(_load(ep, dist_name, version), name=ep.name)
        distributions[ep.name] = (dist_name, version)
    # A misspelled hook name in a plugin is an error, not silence.
    pm.check_pending()
    _DISTRIBUTIONS.clear()
    _DISTRIBUTIONS.update(distributions)
    return pm


def get_plugin_manager() -> pluggy.PluginManager:
    """Return the process-wide plugin manager, loading plugins on first use.

    Raises :class:`~asyncz.exceptions.PluginLoadError` when a plugin fails to import and
    ``pluggy.PluginValidationError`` when a plugin implements an unknown hook.
    """
    global _manager
    with _lock:
        if _manager is None:
            _manager = _build()
        return _manager


def reset_plugin_manager() -> None:
    """Forget the manager; the next :func:`get_plugin_manager` scans and loads plugins again.

    The entry-point scan is shared with :data:`asyncz.registry.registry`, which therefore
    finds its aliases again too.
    """
    global _manager
    with _lock:
        _manager = None
        _DISTRIBUTIONS.clear()
    ENTRY_POINTS.invalidate()


def _hooks(pm: pluggy.PluginManager, plugin: Any) -> list[str]:
    return sorted(h.name for h in pm.get_hookcallers(plugin) or [])


def plugin_names() -> list[dict[str, Any]]:
    """Describe the loaded hook plugins: name, distribution, version and hooks."""
    pm = get_plugin_manager()
    described = []
    for name, plugin in pm.list_name_plugin():
        dist, version = _DISTRIBUTIONS.get(name, (None, None))
        described.append(
            {"name": name, "distribution": dist, "version": version, "hooks": _hooks(pm, plugin)}
        )
    return described


def describe_hook_plugins() -> list[dict[str, Any]]:
    """Every installed hook plugin, loaded one by one so that a broken one is reported, not raised.

    Each item: ``name``, ``value``, ``distribution``, ``version``, ``enabled`` (after
    ``ASYNCZ_DISABLE_PLUGINS`` / ``ASYNCZ_LOAD_PLUGINS``), ``hooks`` and ``error`` (``None`` or
    the message of the import or validation error). The process-wide manager is not touched.
    """
    rows: list[dict[str, Any]] = []
    for ep, dist_name, version in _entry_points():
        row: dict[str, Any] = {
            "name": ep.name,
            "value": ep.value,
            "distribution": dist_name,
            "version": version,
            "enabled": _wanted(ep, dist_name),
            "hooks": [],
            "error": None,
        }
        try:
            plugin = _load(ep, dist_name, version)
            pm = _new_manager()
            pm.register(plugin, name=ep.name)
            row["hooks"] = _hooks(pm, plugin)
            pm.check_pending()
        except Exception as exc:
            row["error"] = f"{type(exc).__name__}: {exc}"
        rows.append(row)
    return rows

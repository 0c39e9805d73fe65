"""What ``asyncz config show`` prints: every effective value, its source, secrets masked.

Data path: after :func:`~asyncz.settings.merging.load_settings` has built the settings and
recorded the origin of every value, :func:`describe` walks the settings in a fixed order
and gives one JSON-friendly row per value (``{"key", "value", "source", "detail"}``);
:func:`display_value` turns a value into something printable (zones by name, classes and
callables as ``module:qualname``) and masks ``secret_key``, options named like passwords or
tokens, and passwords inside URLs. ``asyncz config show`` (:mod:`asyncz.cli`) prints the rows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import tzinfo
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from asyncz.settings.models import (
    DEFAULT_PREFIX,
    CoordinationSettings,
    DashboardSettings,
    HistorySettings,
    TaskDeclaration,
    TaskDefaults,
)
from asyncz.timeutil import timezone_name

if TYPE_CHECKING:
    from asyncz.settings.models import AsynczSettings

__all__ = ["describe", "display_value"]

_SECRET_WORDS = re.compile(r"(password|passwd|secret|token|api_?key|credentials?)$", re.I)
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)(?P<pw>[^@/\s]+)(?=@)", re.I)


def describe(settings: AsynczSettings, *, mask_secrets: bool = True) -> list[dict[str, Any]]:
    """Every effective value of ``settings`` as ``{"key", "value", "source", "detail"}``."""
    rows: list[dict[str, Any]] = []

    def add(path: tuple[str, ...], value: Any) -> None:
        origin = settings.origin(".".join(path))
        rows.append(
            {
                "key": DEFAULT_PREFIX + ".".join(path),
                "value": display_value(path, value, mask_secrets),
                "source": origin.source,
                "detail": origin.detail,
            }
        )

    add(("timezone",), settings.timezone)
    for section in ("stores", "executors"):
        entries: dict[str, Any] = getattr(settings, section)
        for alias, entry in sorted(entries.items()):
            if isinstance(entry, Mapping):
                for option, value in entry.items():
                    add((section, alias, option), value)
            else:
                add((section, alias), entry)
    for name in TaskDefaults.model_fields:
        add(("task_defaults", name), getattr(settings.task_defaults, name))
    for name in CoordinationSettings.model_fields:
        add(("coordination", name), getattr(settings.coordination, name))
    for name in HistorySettings.model_fields:
        add(("history", name), getattr(settings.history, name))
    for name in DashboardSettings.model_fields:
        add(("dashboard", name), getattr(settings.dashboard, name))
    for name in ("lock_path", "startup_delay", "shutdown_timeout"):
        add((name,), getattr(settings, name))
    rows.append(
        {
            "key": DEFAULT_PREFIX + "effective_startup_delay",
            "value": settings.effective_startup_delay,
            "source": "computed",
            "detail": "startup_delay, or 1 s with lock_path, else 0",
        }
    )
    for name in ("identity", "logger_name", "loggers_class", "secret_key"):
        add((name,), getattr(settings, name))
    for task_id, task in sorted(settings.tasks.items()):
        for name in TaskDeclaration.model_fields:
            if name in task.model_fields_set:
                add(("tasks", task_id, name), getattr(task, name))
    return rows


def display_value(path: tuple[str, ...], value: Any, mask: bool) -> Any:
    """``value`` (at settings ``path``) as JSON-friendly data, masked when it is a secret."""
    if isinstance(value, SecretStr):
        return "**********" if mask else value.get_secret_value()
    if mask and path and _SECRET_WORDS.search(path[-1]) and value is not None:
        return "**********"
    if isinstance(value, tzinfo):
        try:
            return timezone_name(value)
        except ValueError:
            return repr(value)
    if isinstance(value, type):
        return f"{value.__module__}:{value.__qualname__}"
    if isinstance(value, str):
        return _URL_PASSWORD.sub(r"\g<head>****", value) if mask else value
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        return [display_value(path, item, mask) for item in value]
    if isinstance(value, Mapping):
        return {str(k): display_value((*path, str(k)), v, mask) for k, v in value.items()}
    if callable(value) and hasattr(value, "__qualname__"):
        return f"{getattr(value, '__module__', '?')}:{value.__qualname__}"
    return repr(value)

"""Merging the layers, validating the result, and one error that names the dotted key.

Data path: :func:`load_settings` asks :mod:`.sources` for the four layers (TOML file <
environment < ``global_config`` < keyword arguments), merges them key by key, lowest first,
and validates the merged dict with :class:`~asyncz.settings.models.AsynczSettings`. A
store/executor/trigger entry whose ``type``/``class`` changes, or that is an object, replaces
the lower layer's entry instead of merging options into it.

Every problem, from reading or from validation, ends up in one
:class:`~asyncz.exceptions.ConfigurationError` listing each under the dotted key the user wrote
(``asyncz.task_defaults.max_instances``) and, when it is not that key, where it came from
(``[from environment variable ASYNCZ_TASK_DEFAULTS__MAX_INSTANCES]``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_settings import InitSettingsSource, TomlConfigSettingsSource

from asyncz.exceptions import ConfigurationError, closest
from asyncz.settings.models import (
    _DEFAULT_ORIGIN,
    DEFAULT_PREFIX,
    AsynczSettings,
    CoordinationSettings,
    DashboardSettings,
    HistorySettings,
    Origin,
    TaskDeclaration,
    TaskDefaults,
    _validate_entry,
)
from asyncz.settings.sources import (
    EnvSource,
    _Tree,
    global_config_layer,
    keyword_layer,
    source_tree,
    toml_tree,
)

__all__ = ["load_settings", "merge_sources"]


def _entry_kind(value: Any) -> tuple[str, str] | None:
    if isinstance(value, Mapping):
        for key in ("type", "class"):
            if isinstance(value.get(key), str):
                return key, value[key].strip()
        return None
    if isinstance(value, str):
        text = value.strip()
        return ("class", text) if ":" in text else ("type", text)
    return ("object", str(id(value)))


def _merge_layer(
    merged: dict[str, Any],
    origins: dict[tuple[str, ...], Origin],
    tree: _Tree,
) -> None:
    """Merge a higher layer in; an entry that changes its type/class or is an object replaces."""
    replaced: list[tuple[str, ...]] = []

    def walk(base: dict[str, Any], top: Mapping[str, Any], path: tuple[str, ...]) -> None:
        for key, value in top.items():
            here = (*path, key)
            is_entry = (len(here) == 2 and here[0] in ("stores", "executors")) or (
                len(here) == 3 and here[0] == "tasks" and here[2] == "trigger"
            )
            old = base.get(key)
            if is_entry and old is not None:
                new_kind, old_kind = _entry_kind(value), _entry_kind(old)
                if new_kind is not None and new_kind != old_kind:
                    base[key] = _copy(value)
                    replaced.append(here)
                    continue
                if isinstance(value, str) and isinstance(old, Mapping):
                    continue  # "redis" over {"type": "redis", ...}: same entry
                if isinstance(old, str) and isinstance(value, Mapping):
                    old = base[key] = _validate_entry_safely(old)
            if isinstance(value, Mapping) and isinstance(old, dict):
                walk(old, value, here)
            else:
                base[key] = _copy(value)
                if isinstance(value, Mapping):
                    replaced.append(here)

    walk(merged, tree.data, ())
    for path in replaced:
        for known in [p for p in origins if p[: len(path)] == path and len(p) > len(path)]:
            del origins[known]
    origins.update(tree.origins)


def _validate_entry_safely(value: str) -> Any:
    try:
        return _validate_entry(value)
    except ValueError:
        return value


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    return value


def _dotted(loc: tuple[str | int, ...], prefix: str) -> str:
    return prefix + ".".join(str(part) for part in loc)


def _known_keys(loc: tuple[str | int, ...]) -> list[str]:
    model: type[BaseModel] | None
    if len(loc) == 0:
        model = AsynczSettings
    elif len(loc) == 1 and loc[0] == "task_defaults":
        model = TaskDefaults
    elif len(loc) == 1 and loc[0] == "coordination":
        model = CoordinationSettings
    elif len(loc) == 1 and loc[0] == "history":
        model = HistorySettings
    elif len(loc) == 1 and loc[0] == "dashboard":
        model = DashboardSettings
    elif len(loc) == 2 and loc[0] == "tasks":
        model = TaskDeclaration
    else:
        model = None
    if model is None:
        return []
    keys = list(model.model_fields)
    if "misfire_grace_time" in keys:
        keys.append("mistrigger_grace_time")
    return keys


def _explain(error: Mapping[str, Any]) -> str:
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        loc = tuple(error["loc"])
        guess = closest(str(loc[-1]), _known_keys(loc[:-1]))
        known = ", ".join(sorted(_known_keys(loc[:-1])))
        hint = f"; did you mean {guess!r}?" if guess else ""
        return f"unknown key{hint} (known: {known})"
    message = str(error.get("msg", "invalid value"))
    message = message.removeprefix("Value error, ")
    if kind not in ("missing", "value_error"):
        shown = error.get("input")
        text = repr(shown)
        if len(text) > 80:
            text = text[:77] + "..."
        message += f" (got {text})"
    return message


def _to_configuration_error(
    exc: ValidationError,
    origins: Mapping[tuple[str, ...], Origin],
    prefix: str,
) -> ConfigurationError:
    errors: list[tuple[str, str]] = []
    for error in exc.errors(include_url=False):
        loc = tuple(part for part in error["loc"] if not str(part).startswith("function-"))
        origin = _DEFAULT_ORIGIN
        for length in range(len(loc), -1, -1):
            found = origins.get(tuple(str(p) for p in loc[:length]))
            if found is not None:
                origin = found
                break
        key_prefix = prefix if origin.source == "global_config" else DEFAULT_PREFIX
        message = _explain(error)
        same_key = origin.source == "global_config" and origin.detail == _dotted(loc, prefix)
        if origin.source in ("toml", "env", "global_config") and origin.detail and not same_key:
            message += f" [from {origin}]"
        errors.append((_dotted(loc, key_prefix), message))
    return ConfigurationError(errors)


def merge_sources(
    settings_cls: type[AsynczSettings] = AsynczSettings,
    global_config: Mapping[str, Any] | None = None,
    *,
    prefix: str = DEFAULT_PREFIX,
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    keywords: Mapping[str, Any] | None = None,
    none_is_value: bool = False,
) -> tuple[dict[str, Any], dict[tuple[str, ...], Origin], Path | None]:
    """Read every source and merge the layers, lowest precedence first; nothing validated yet.

    The sources are the ones ``settings_cls.settings_customise_sources`` returns, highest
    first as in pydantic-settings (by default the keywords, pydantic-settings'
    ``EnvSettingsSource`` and its TOML source); each is called once, and ``global_config``
    goes just below the keywords. Returns the merged raw values, the origin of each, and the
    TOML file read (if any). The one way the settings are read: :func:`load_settings` and
    ``AsynczSettings(...)`` both come here. Problems raise one :class:`ConfigurationError`.
    """
    init = InitSettingsSource(settings_cls, dict(keywords or {}))
    env = EnvSource(settings_cls, environ, config_file)
    nothing = InitSettingsSource(settings_cls, {})
    sources = settings_cls.settings_customise_sources(settings_cls, init, env, nothing, nothing)
    layers: list[_Tree] = []
    path: Path | None = None
    for source in reversed(sources):
        if source is init:
            layers.append(global_config_layer(global_config, prefix)[0])
            layers.append(keyword_layer(keywords or {}, none_is_value=none_is_value))
        elif isinstance(source, EnvSource):
            layers.append(source.layer())
        elif isinstance(source, TomlConfigSettingsSource):
            layers.append(toml_tree(source))
            path = Path(str(source.toml_file_path))
        elif source is not nothing:
            layers.append(source_tree(source))
    merged: dict[str, Any] = {}
    origins: dict[tuple[str, ...], Origin] = {}
    errors: list[tuple[str, str]] = []
    for layer in layers:
        errors.extend(layer.errors)
        _merge_layer(merged, origins, layer)
    if errors:
        raise ConfigurationError(errors)
    return merged, origins, path


def load_settings(
    global_config: Mapping[str, Any] | None = None,
    *,
    prefix: str = DEFAULT_PREFIX,
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> AsynczSettings:
    """Build the settings from TOML, environment, ``global_config`` and keyword arguments.

    ``overrides`` are settings by name (``stores=``, ``executors=``, ``task_defaults=``,
    ``timezone=``, ``lock_path=``, ...); a ``None`` value means "not given". ``environ``
    replaces ``os.environ`` (for tests and for ``asyncz config show``).

    Raises :class:`~asyncz.exceptions.ConfigurationError` naming every bad key, never
    another exception.
    """
    if not isinstance(prefix, str):
        raise ConfigurationError([("prefix", f"expected a string, got {prefix!r}")])
    merged, origins, path = merge_sources(
        AsynczSettings,
        global_config,
        prefix=prefix,
        config_file=config_file,
        environ=environ,
        keywords=overrides,
    )
    try:
        settings = AsynczSettings._validated(merged, origins, path)
    except ValidationError as exc:
        raise _to_configuration_error(exc, origins, prefix) from None
    except ConfigurationError:
        raise
    except (TypeError, ValueError, RecursionError) as exc:
        raise ConfigurationError([("asyncz", f"{type(exc).__name__}: {exc}")]) from None
    return settings

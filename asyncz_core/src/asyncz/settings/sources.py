"""The source readers: a TOML file, ``ASYNCZ_*`` environment variables, ``global_config`` keys.

Data path: each reader turns one source into a *layer* (:class:`Layer`): a nested dict of raw
values shaped like :class:`~asyncz.settings.models.AsynczSettings`, the :class:`Origin` of every
value in it, and the problems found while reading, each under the key the user wrote.
:mod:`.merging` merges the layers, lowest precedence first, and validates the result.

- :func:`find_config_file` / :func:`toml_layer`: ``config_file=``, else ``$ASYNCZ_CONFIG``, else
  ``./asyncz.toml`` (keys at the top level or under ``[asyncz]``), else ``[tool.asyncz]`` of
  ``./pyproject.toml``;
- :func:`env_layer`: ``ASYNCZ_TIMEZONE``, ``ASYNCZ_STORES__DEFAULT__TYPE=redis`` (``__`` nests,
  names are case-insensitive, a value starting with ``{`` or ``[`` is read as JSON);
- :func:`global_config_layer`: dotted keys with a prefix, flat (INI-style) or nested
  (YAML-style) values alike;
- :func:`keyword_layer`: keyword arguments by setting name, objects kept as they are.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from asyncz.exceptions import ConfigurationError
from asyncz.settings.models import DEFAULT_PREFIX, AsynczSettings, Origin, TaskDefaults

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

__all__ = [
    "CONFIG_ENV",
    "ENV_PREFIX",
    "RESERVED_ENV",
    "env_layer",
    "find_config_file",
    "global_config_layer",
    "keyword_layer",
    "toml_layer",
]

ENV_PREFIX = "ASYNCZ_"
#: Names the TOML file to read instead of the auto-discovered one.
CONFIG_ENV = "ASYNCZ_CONFIG"
#: ``ASYNCZ_*`` variables that belong to other parts of asyncz, never to the settings.
RESERVED_ENV = frozenset({"ASYNCZ_CONFIG", "ASYNCZ_DISABLE_PLUGINS", "ASYNCZ_LOAD_PLUGINS"})

FIELDS = tuple(AsynczSettings.model_fields)
_SECTION_MODELS: dict[str, type[BaseModel]] = {"task_defaults": TaskDefaults}
#: Depth below which values are component options (kept raw, never split or merged further).
_ENTRY_SECTIONS = frozenset({"stores", "executors", "tasks"})


# -- sources -----------------------------------------------------------------------------------
class _Tree:
    """A nested dict being built, with the origin of every value put in it."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.origins: dict[tuple[str, ...], Origin] = {}
        self.errors: list[tuple[str, str]] = []

    def put(self, path: tuple[str, ...], value: Any, origin: Origin, label: str) -> None:
        node = self.data
        for i, part in enumerate(path[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                where = DEFAULT_PREFIX + ".".join(path[: i + 1])
                self.errors.append((label, f"conflicts with the value already given for {where}"))
                return
            node = child
        last = path[-1]
        if isinstance(node.get(last), dict) and isinstance(value, Mapping):
            # Two spellings of one section ({"asyncz.stores": {...}} and "asyncz.stores.x").
            _deep_merge(node[last], dict(value))
        else:
            node[last] = value
        self.origins[path] = origin
        if isinstance(value, Mapping):
            # Options of a component entry: each one's origin, for merging layers per option.
            for key in value:
                option_path: tuple[str, ...] = path + (str(key),)  # noqa: RUF005
                self.origins[option_path] = origin

    def put_nested(
        self, path: tuple[str, ...], value: Any, origin: Origin, label: str, split: bool
    ) -> None:
        """Put ``value``; a mapping above the options level is walked (its keys split on dots)."""
        if isinstance(value, Mapping) and _structural(path):
            if not value and path:
                self.put(path, {}, origin, label)
            for key, child in value.items():
                if not isinstance(key, str) or not key:
                    self.errors.append((label, f"keys must be non-empty strings, got {key!r}"))
                    continue
                parts = tuple(key.split(".")) if split else (key,)
                if any(not p for p in parts):
                    self.errors.append((f"{label}.{key}", "empty key segment"))
                    continue
                self.put_nested(path + parts, child, origin, f"{label}.{key}", split)
            return
        self.put(path, value, origin, label)


def _structural(path: tuple[str, ...]) -> bool:
    """Whether ``path`` names a section whose keys are settings keys, not component options."""
    if not path:
        return True
    if path[0] in _ENTRY_SECTIONS:
        return len(path) < 2
    return len(path) == 1 and path[0] in _SECTION_MODELS


def _deep_merge(base: dict[str, Any], top: Mapping[str, Any]) -> None:
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
        else:
            base[key] = value


def global_config_layer(config: Mapping[str, Any] | None, prefix: str) -> tuple[_Tree, int]:
    """Read ``global_config``; returns the tree and how many keys carried the prefix."""
    tree = _Tree()
    if config is None:
        return tree, 0
    if not isinstance(config, Mapping):
        tree.errors.append(("global_config", f"expected a mapping, got {config!r}"))
        return tree, 0
    stem = prefix[:-1] if prefix.endswith(".") else prefix
    used = 0
    for key, value in config.items():
        if not isinstance(key, str):
            tree.errors.append((repr(key), "global_config keys must be strings"))
            continue
        origin = Origin("global_config", key)
        if key == stem and prefix:
            # YAML-style: {"asyncz": {"stores": {...}}}
            used += 1
            if not isinstance(value, Mapping):
                tree.errors.append((key, f"expected a mapping of settings, got {value!r}"))
                continue
            tree.put_nested((), value, origin, stem, split=True)
            continue
        if not key.startswith(prefix):
            continue  # global_config may hold the application's other settings
        used += 1
        parts = tuple(key[len(prefix) :].split("."))
        if any(not p for p in parts):
            tree.errors.append((key, "empty key segment"))
            continue
        tree.put_nested(parts, value, origin, key, split=True)
    return tree, used


def env_layer(environ: Mapping[str, str] | None = None) -> _Tree:
    """Read ``ASYNCZ_*`` variables whose first part names a setting (others are ignored)."""
    tree = _Tree()
    environ = os.environ if environ is None else environ
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in RESERVED_ENV:
            continue
        parts = tuple(upper[len(ENV_PREFIX) :].lower().split("__"))
        if parts[0] not in FIELDS:
            continue
        if any(not p for p in parts):
            tree.errors.append((name, "empty key segment"))
            continue
        raw = environ[name]
        value: Any = raw
        if raw.lstrip().startswith(("{", "[")):
            try:
                value = json.loads(raw)
            except ValueError:
                value = raw
        tree.put_nested(parts, value, Origin("env", name), name, split=False)
    return tree


def find_config_file(
    config_file: str | os.PathLike[str] | None = None,
    *,
    cwd: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Path | None:
    """The TOML file to read: explicit, ``$ASYNCZ_CONFIG``, ``./asyncz.toml``, ``./pyproject.toml``.

    ``pyproject.toml`` counts only when it has a ``[tool.asyncz]`` table. An explicit or
    ``$ASYNCZ_CONFIG`` file that does not exist is a :class:`ConfigurationError`.
    """
    environ = os.environ if environ is None else environ
    explicit: str | os.PathLike[str] | None = config_file
    label = "config_file"
    if explicit is None and environ.get(CONFIG_ENV):
        explicit, label = environ[CONFIG_ENV], CONFIG_ENV
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigurationError([(label, f"configuration file {str(path)!r} does not exist")])
        return path
    base = Path.cwd() if cwd is None else Path(cwd)
    candidate = base / "asyncz.toml"
    if candidate.is_file():
        return candidate
    pyproject = base / "pyproject.toml"
    if pyproject.is_file():
        try:
            doc = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError):
            return None  # not ours to judge unless it has our table
        if isinstance(doc.get("tool"), dict) and "asyncz" in doc["tool"]:
            return pyproject
    return None


def toml_layer(path: Path | None) -> _Tree:
    """Read the settings of a TOML file (``[tool.asyncz]`` for a ``pyproject.toml``)."""
    tree = _Tree()
    if path is None:
        return tree
    label = str(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        tree.errors.append((label, f"cannot read the configuration file: {exc}"))
        return tree
    except tomllib.TOMLDecodeError as exc:
        tree.errors.append((label, f"not valid TOML: {exc}"))
        return tree
    data: Any
    if path.name == "pyproject.toml":
        data = doc.get("tool", {}).get("asyncz", {}) if isinstance(doc.get("tool"), dict) else {}
    else:
        data = dict(doc)
        nested = data.pop("asyncz", None)
        if isinstance(nested, dict):
            _deep_merge(data, nested)
        elif nested is not None:
            tree.errors.append(("asyncz", f"expected an [asyncz] table in {label}"))
    if not isinstance(data, dict):
        tree.errors.append((label, "expected a table of asyncz settings"))
        return tree
    tree.put_nested((), data, Origin("toml", label), DEFAULT_PREFIX.rstrip("."), split=False)
    return tree


def keyword_layer(keywords: Mapping[str, Any], *, none_is_value: bool = False) -> _Tree:
    """Keyword arguments by setting name; a ``None`` value is skipped unless ``none_is_value``."""
    tree = _Tree()
    for name, value in keywords.items():
        if value is None and not none_is_value:
            continue
        tree.put_nested((name,), value, Origin("keyword"), name, split=False)
    return tree

"""The sources: pydantic-settings' own for TOML and ``ASYNCZ_*``, asyncz's for ``global_config``.

Data path: each source becomes a *layer* (:class:`_Tree`): a nested dict of raw values shaped
like :class:`~asyncz.settings.models.AsynczSettings`, the :class:`Origin` of every value in it,
and the problems found while reading, each under the key the user wrote. :mod:`.merging` asks
``AsynczSettings.settings_customise_sources`` for the sources, calls each once, merges the
layers, lowest precedence first, and validates the result.

- :class:`EnvSource`: pydantic-settings' ``EnvSettingsSource`` (``ASYNCZ_`` prefix, ``__``
  nesting, any case, JSON for complex values) over a given ``environ``; adds the variable
  each value came from;
- :func:`find_config_file` / :func:`config_file_source`: ``config_file=``, else
  ``$ASYNCZ_CONFIG``, else ``./asyncz.toml`` (:class:`TomlSource`, pydantic-settings'
  ``TomlConfigSettingsSource``: top level or ``[asyncz]``), else ``[tool.asyncz]`` of
  ``./pyproject.toml`` (``PyprojectTomlConfigSettingsSource``);
- :func:`global_config_layer`: dotted keys with a prefix, flat (INI-style) or nested
  (YAML-style) values alike;
- :func:`keyword_layer`: keyword arguments by setting name, objects kept as they are.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    PyprojectTomlConfigSettingsSource,
    SettingsError,
    TomlConfigSettingsSource,
)

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
    "EnvSource",
    "TomlSource",
    "config_file_source",
    "find_config_file",
    "global_config_layer",
    "keyword_layer",
    "source_tree",
    "toml_tree",
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


class EnvSource(EnvSettingsSource):
    """pydantic-settings' environment source, reading ``environ`` (``os.environ`` by default).

    ``ASYNCZ_`` prefix, ``__`` nesting, case-insensitive names and JSON for complex values are
    pydantic-settings' own (``AsynczSettings.model_config``). Added here: the variable each
    value came from (:meth:`layer`), and a bad name or value reported under that name.
    """

    def __init__(
        self,
        settings_cls: type[BaseSettings],
        environ: Mapping[str, str] | None = None,
        config_file: str | os.PathLike[str] | None = None,
        **options: Any,
    ) -> None:
        self.environ = os.environ if environ is None else environ
        #: The TOML file the caller named (``config_file=``); see :func:`config_file_source`.
        self.config_file = config_file
        super().__init__(settings_cls, **options)  # env_prefix=..., as EnvSettingsSource

    def _load_env_vars(self) -> Mapping[str, str | None]:
        if self.case_sensitive:
            return dict(self.environ)
        return {name.lower(): value for name, value in self.environ.items()}

    def layer(self) -> _Tree:
        """Call the source; its values with the variable each came from, or its problems."""
        tree = _Tree()
        names: dict[str, tuple[str, ...]] = {}
        fold = (lambda text: text) if self.case_sensitive else str.lower
        prefix = fold(self.env_prefix)
        for name in sorted(self.environ):
            lowered = fold(name)
            if lowered.startswith(prefix) and name.upper() not in RESERVED_ENV:
                parts = tuple(lowered[self.env_prefix_len :].split(self.env_nested_delimiter))
                if parts[0] in FIELDS:
                    names[name] = parts
        for name, parts in names.items():
            if any(not p for p in parts):
                tree.errors.append((name, "empty key segment"))
        if tree.errors:
            return tree
        try:
            tree.data = self()
        except SettingsError as exc:
            field = str(exc).split('"')[1] if '"' in str(exc) else ""
            culprits = [n for n, p in names.items() if p[0] == field] or [field]
            for name in culprits:
                where = Origin("env", name)
                tree.errors.append((f"{DEFAULT_PREFIX}{field}", f"not valid JSON [from {where}]"))
            return tree
        for name, parts in names.items():
            origin = Origin("env", name)
            tree.origins[parts] = origin
            value: Any = tree.data
            for part in parts:
                value = value.get(part) if isinstance(value, Mapping) else None
            if isinstance(value, Mapping):
                for key in value:
                    tree.origins[parts + (str(key),)] = origin  # noqa: RUF005
        return tree


def find_config_file(
    config_file: str | os.PathLike[str] | None = None,
    *,
    cwd: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Path | None:
    """The TOML file to read: explicit, ``$ASYNCZ_CONFIG``, ``./asyncz.toml``, ``./pyproject.toml``.

    ``pyproject.toml`` is a candidate only; :func:`config_file_source` keeps it when it has
    a ``[tool.asyncz]`` table. An explicit or ``$ASYNCZ_CONFIG`` file that does not exist is
    a :class:`ConfigurationError`.
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
    for candidate in (base / "asyncz.toml", base / "pyproject.toml"):
        if candidate.is_file():
            return candidate
    return None


class TomlSource(TomlConfigSettingsSource):
    """pydantic-settings' TOML source for ``asyncz.toml``: top-level keys, an ``[asyncz]`` table."""

    def __call__(self) -> dict[str, Any]:
        data = super().__call__()
        nested = data.pop("asyncz", None)
        if isinstance(nested, dict):
            _deep_merge(data, nested)
        elif nested is not None:
            raise ConfigurationError(
                [("asyncz", f"expected an [asyncz] table in {self.toml_file_path}")]
            )
        return data


def config_file_source(
    settings_cls: type[BaseSettings], env: PydanticBaseSettingsSource
) -> TomlConfigSettingsSource | None:
    """The TOML source: pydantic-settings' ``TomlConfigSettingsSource`` for the file found by
    :func:`find_config_file` (``env`` gives the caller's ``config_file`` and environment), or
    its ``PyprojectTomlConfigSettingsSource`` for the ``[tool.asyncz]`` table of
    ``pyproject.toml``. ``None`` when there is no file. A file that cannot be read or parsed
    is a :class:`ConfigurationError` naming it.
    """
    config_file = env.config_file if isinstance(env, EnvSource) else None
    environ = env.environ if isinstance(env, EnvSource) else None
    path = find_config_file(config_file, environ=environ)
    if path is None:
        return None
    try:
        if path.name == "pyproject.toml":
            try:
                pyproject = PyprojectTomlConfigSettingsSource(settings_cls, path)
            except (tomllib.TOMLDecodeError, OSError, UnicodeDecodeError):
                return None  # not ours to judge unless it has our table
            return pyproject if pyproject.toml_data else None
        return TomlSource(settings_cls, path)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError([(str(path), f"not valid TOML: {exc}")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(
            [(str(path), f"cannot read the configuration file: {exc}")]
        ) from None


def toml_tree(source: TomlConfigSettingsSource) -> _Tree:
    """Call a TOML source; every value comes from its file."""
    tree = _Tree()
    data = source()
    label = str(source.toml_file_path)
    if not isinstance(data, dict):  # pragma: no cover - tomllib always gives a table
        tree.errors.append((label, "expected a table of asyncz settings"))
        return tree
    tree.put_nested((), data, Origin("toml", label), DEFAULT_PREFIX.rstrip("."), split=False)
    return tree


def source_tree(source: PydanticBaseSettingsSource) -> _Tree:
    """Call any other pydantic-settings source (a subclass's own); its class is the origin."""
    tree = _Tree()
    data = source()
    tree.put_nested((), data, Origin("source", type(source).__name__), "asyncz", split=False)
    return tree


def keyword_layer(keywords: Mapping[str, Any], *, none_is_value: bool = False) -> _Tree:
    """Keyword arguments by setting name; a ``None`` value is skipped unless ``none_is_value``."""
    tree = _Tree()
    for name, value in keywords.items():
        if value is None and not none_is_value:
            continue
        tree.put_nested((name,), value, Origin("keyword"), name, split=False)
    return tree

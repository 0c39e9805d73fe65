"""One settings model for everything a scheduler takes, filled from every configuration source.

Sources, lowest to highest precedence:

1. a TOML file: ``config_file=``, else ``$ASYNCZ_CONFIG``, else ``asyncz.toml`` in the current
   directory (keys at the top level or under an ``[asyncz]`` table), else the ``[tool.asyncz]``
   table of ``pyproject.toml`` in the current directory;
2. environment variables: ``ASYNCZ_TIMEZONE``, ``ASYNCZ_STORES__DEFAULT__TYPE=redis`` (``__``
   nests, names are case-insensitive, a value starting with ``{`` or ``[`` is read as JSON);
3. ``global_config``: dotted keys with a prefix (``"asyncz.task_defaults.coalesce": "false"``),
   flat (INI-style) or nested (YAML-style) values alike;
4. keyword arguments, including already-built objects (``stores={"default": RedisStore()}``).

Layers merge key by key. A store/executor/trigger entry whose ``type``/``class`` changes, or
that is an object, replaces the lower layer's entry instead of merging options into it.

:func:`load_settings` is the entry point. Every bad key or value makes it raise one
:class:`~asyncz.exceptions.ConfigurationError` listing each problem under the dotted key the
user wrote (``asyncz.task_defaults.max_instances``) and where it came from.
"""

from __future__ import annotations

import contextvars
import json
import math
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import tzinfo
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from asyncz.exceptions import ConfigurationError, closest
from asyncz.timeutil import local_timezone, timezone_name, to_timezone

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_PREFIX",
    "ENV_PREFIX",
    "AsynczSettings",
    "Origin",
    "TaskDeclaration",
    "TaskDefaults",
    "find_config_file",
    "load_settings",
]

DEFAULT_PREFIX = "asyncz."
ENV_PREFIX = "ASYNCZ_"
#: Names the TOML file to read instead of the auto-discovered one.
CONFIG_ENV = "ASYNCZ_CONFIG"
#: ``ASYNCZ_*`` variables that belong to other parts of asyncz, never to the settings.
RESERVED_ENV = frozenset({"ASYNCZ_CONFIG", "ASYNCZ_DISABLE_PLUGINS", "ASYNCZ_LOAD_PLUGINS"})

_NONE_WORDS = frozenset({"none", "null", ""})
_SECRET_WORDS = re.compile(r"(password|passwd|secret|token|api_?key|credentials?)$", re.I)
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)(?P<pw>[^@/\s]+)(?=@)", re.I)


# -- value types -------------------------------------------------------------------------------
def _validate_timezone(value: Any) -> tzinfo:
    if isinstance(value, tzinfo):
        return to_timezone(value)  # a pytz zone becomes its zoneinfo equivalent
    if not isinstance(value, str):
        raise ValueError(f"expected an IANA time zone name or a tzinfo, got {value!r}")
    try:
        return to_timezone(value)
    except ValueError as exc:  # says what is wrong ("GMT+2" is ambiguous, ...)
        raise ValueError(str(exc)) from exc
    except Exception as exc:  # ZoneInfo raises several types for odd names
        raise ValueError(
            f"unknown time zone {value!r} (expected an IANA name like 'Europe/Paris')"
        ) from exc


def _validate_optional_timezone(value: Any) -> tzinfo | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in _NONE_WORDS):
        return None
    return _validate_timezone(value)


def _validate_grace(value: Any) -> float | None:
    """Seconds as a non-negative finite number; ``None``/``"none"`` means no limit."""
    if value is None or (isinstance(value, str) and value.strip().lower() in _NONE_WORDS):
        return None
    if isinstance(value, bool):
        raise ValueError(f"expected a number of seconds or None, got {value!r}")
    if hasattr(value, "total_seconds"):
        value = value.total_seconds()
    try:
        seconds = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"expected a number of seconds or None, got {value!r}") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"expected a finite number of seconds >= 0, got {value!r}")
    return seconds


def _validate_ref(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(
        r"[A-Za-z_][\w.]*[:.][A-Za-z_][\w.]*", value.strip()
    ):
        raise ValueError(f"expected a 'module:qualname' reference, got {value!r}")
    return value.strip()


def _validate_loggers_class(value: Any) -> type | None:
    if value is None:
        return None
    if isinstance(value, type):
        return value
    ref = _validate_ref(value)
    from asyncz.registry import import_ref

    try:
        obj = import_ref(ref)
    except Exception as exc:
        raise ValueError(f"cannot import {ref!r}: {type(exc).__name__}: {exc}") from None
    if not isinstance(obj, type):
        raise ValueError(f"{ref!r} is not a class")
    return obj


_PRIMITIVES = (bool, int, float, complex, bytes, bytearray, list, tuple, set, frozenset)


def _validate_entry(value: Any, *, what: str = "component", requires_kind: bool = True) -> Any:
    """A ``{"type"|"class": ..., **options}`` mapping, an alias string, or a built object."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise ValueError(f"expected a {what} alias, a mapping or a {what} object, got ''")
        return {"class": text} if ":" in text else {"type": text}
    if isinstance(value, Mapping):
        spec: dict[str, Any] = {}
        for key, option in value.items():
            if not isinstance(key, str) or not key.isidentifier():
                raise ValueError(f"option names must be identifiers, got {key!r}")
            spec[key] = option
        kinds = [k for k in ("type", "class") if k in spec]
        if len(kinds) == 2:
            raise ValueError("give either 'type' (an alias) or 'class' ('module:Name'), not both")
        if not kinds:
            if requires_kind:
                raise ValueError(
                    f"needs 'type' (an installed {what} alias) or 'class' ('module:Name')"
                )
            return spec
        kind = kinds[0]
        if not isinstance(spec[kind], str) or not spec[kind].strip():
            raise ValueError(f"'{kind}' must be a non-empty string, got {spec[kind]!r}")
        spec[kind] = spec[kind].strip()
        if kind == "class":
            _validate_ref(spec["class"])
        return spec
    if value is None or isinstance(value, (*_PRIMITIVES, type)):
        raise ValueError(
            f"expected a mapping with 'type' or 'class', an alias, or a {what} object, "
            f"got {value!r}"
        )
    return value


TimeZone = Annotated[tzinfo, PlainValidator(_validate_timezone)]
OptionalTimeZone = Annotated[tzinfo | None, PlainValidator(_validate_optional_timezone)]
GraceTime = Annotated[float | None, PlainValidator(_validate_grace)]
StoreEntry = Annotated[Any, PlainValidator(lambda v: _validate_entry(v, what="store"))]
ExecutorEntry = Annotated[Any, PlainValidator(lambda v: _validate_entry(v, what="executor"))]
TriggerEntry = Annotated[Any, PlainValidator(lambda v: _validate_entry(v, what="trigger"))]
LoggersClass = Annotated[type | None, PlainValidator(_validate_loggers_class)]


def _rename_mistrigger(data: Any) -> Any:
    """Accept Asyncz's spelling ``mistrigger_grace_time`` for ``misfire_grace_time``."""
    if isinstance(data, Mapping) and "mistrigger_grace_time" in data:
        data = dict(data)
        value = data.pop("mistrigger_grace_time")
        if "misfire_grace_time" in data and data["misfire_grace_time"] != value:
            raise ValueError(
                "misfire_grace_time and mistrigger_grace_time are the same setting; give one"
            )
        data["misfire_grace_time"] = value
    return data


# -- models ------------------------------------------------------------------------------------
class TaskDefaults(BaseModel):
    """Options every task gets unless it sets its own."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, frozen=True)

    #: Run a task once, not once per missed run time, when several run times are due.
    coalesce: bool = True
    #: How many runs of one task may be in progress at once.
    max_instances: int = Field(default=1, ge=1)
    #: Seconds a run may be late and still happen; ``None`` means no limit.
    misfire_grace_time: GraceTime = 1.0
    #: Default zone of the tasks' triggers; ``None`` means the scheduler's ``timezone``.
    timezone: OptionalTimeZone = None

    @model_validator(mode="before")
    @classmethod
    def _rename(cls, data: Any) -> Any:
        return _rename_mistrigger(data)

    @property
    def mistrigger_grace_time(self) -> float | None:
        """Asyncz's name for :attr:`misfire_grace_time`."""
        return self.misfire_grace_time


class TaskDeclaration(BaseModel):
    """One task of the ``tasks`` table, as ``asyncz run`` adds it (the table key is its id).

    The trigger is nested: ``trigger = "cron"`` or
    ``trigger = {type = "cron", hour = "3", minute = "30"}``; its options are validated by the
    trigger class when the task is added. ``None`` runs the task once, as soon as the scheduler
    starts. ``coalesce``, ``max_instances`` and ``misfire_grace_time`` left out fall back to
    ``task_defaults`` (see :meth:`task_options`).
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, frozen=True)

    fn: Annotated[Any, PlainValidator(lambda v: v if callable(v) else _validate_ref(v))]
    trigger: TriggerEntry | None = None
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = Field(default_factory=dict)
    name: str | None = None
    executor: str | None = None
    store: str | None = None
    coalesce: bool | None = None
    max_instances: int | None = Field(default=None, ge=1)
    misfire_grace_time: GraceTime = None
    replace_existing: bool = True

    @model_validator(mode="before")
    @classmethod
    def _rename(cls, data: Any) -> Any:
        return _rename_mistrigger(data)

    @field_validator("trigger", mode="before")
    @classmethod
    def _none_trigger(cls, value: Any) -> Any:
        return None if value is None else _validate_entry(value, what="trigger")

    def task_options(self) -> dict[str, Any]:
        """The per-task options set explicitly (``misfire_grace_time=None`` included)."""
        names = ("coalesce", "max_instances", "misfire_grace_time")
        return {n: getattr(self, n) for n in names if n in self.model_fields_set}


@dataclass(frozen=True)
class Origin:
    """Where one configuration value came from."""

    #: ``"default"``, ``"toml"``, ``"env"``, ``"global_config"`` or ``"keyword"``.
    source: str
    #: The file, variable or key it was read from (``None`` for defaults and keywords).
    detail: str | None = None

    def __str__(self) -> str:
        if self.source == "toml":
            return f"TOML file {self.detail}"
        if self.source == "env":
            return f"environment variable {self.detail}"
        if self.source == "global_config":
            return f"global_config key {self.detail!r}"
        return self.source


_DEFAULT_ORIGIN = Origin("default")
_skip_sources: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "asyncz_skip_settings_sources", default=False
)


class AsynczSettings(BaseSettings):
    """Everything a scheduler takes. Build it with :func:`load_settings`.

    Constructing it directly (``AsynczSettings(timezone="UTC")``) also reads the TOML file and
    the environment, through pydantic-settings, but reports problems as pydantic's
    ``ValidationError`` and records no origins.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        arbitrary_types_allowed=True,
        frozen=True,
        validate_default=False,
    )

    #: The scheduler's zone: an IANA name or a tzinfo; the local zone (tzlocal) by default.
    timezone: TimeZone = Field(default_factory=local_timezone)
    #: Store alias -> ``{"type"|"class": ..., **options}`` or a built store.
    stores: dict[str, StoreEntry] = Field(default_factory=dict)
    #: Executor alias -> ``{"type"|"class": ..., **options}`` or a built executor.
    executors: dict[str, ExecutorEntry] = Field(default_factory=dict)
    task_defaults: TaskDefaults = Field(default_factory=TaskDefaults)
    #: Path of the inter-process lock file; ``{store}``, ``{ppid}``, ``{pgrp}`` placeholders.
    lock_path: str | None = None
    #: Seconds to wait before the first processing pass; see :attr:`effective_startup_delay`.
    startup_delay: GraceTime = None
    #: Wake up at due instants on a timer good to microseconds (a Linux timerfd watched by
    #: the event loop) rather than on the loop's own timer (good to 1 ms); no CPU cost.
    #: Where there is none (not Linux, a loop without ``add_reader``), the loop's timer.
    precise_wakeup: bool = True
    #: Seconds before a due instant that the scheduler stops sleeping and yields to the loop
    #: until the instant: the last microseconds of precision, paid for with CPU (up to this
    #: much busy time per wake-up). 0, the default, turns it off.
    wakeup_spin: float = Field(default=0.0, ge=0, le=1)
    #: Seconds a shutdown may take: shutdown tasks plus running tasks. Then running coroutines
    #: are cancelled and what still runs is reported and abandoned; ``None`` means no limit.
    shutdown_timeout: GraceTime = 30.0
    #: Name of this scheduler instance (``None``: ``host:pid:random``), shown by
    #: ``get_scheduler_info()``; nodes sharing a store tell each other apart by it.
    identity: str | None = None
    #: Seconds one call to a store that does network I/O may take before it counts as an
    #: outage (a frozen server); ``None`` (``"none"``) or 0 waits for ever.
    store_timeout: GraceTime = 10.0
    #: Name of the scheduler's logger (``None``: the scheduler's default).
    logger_name: str | None = None
    #: The class that creates loggers (``asyncz.schedulers.base.ClassicLogging`` by default).
    loggers_class: LoggersClass = None
    #: Key that signs pickled tasks (``ASYNCZ_SECRET_KEY``).
    secret_key: SecretStr | None = None
    #: Task id -> declaration, for ``asyncz run``.
    tasks: dict[str, TaskDeclaration] = Field(default_factory=dict)

    _origins: dict[tuple[str, ...], Origin] = {}
    _config_file: Path | None = None

    @field_validator("stores", "executors", "tasks", mode="before")
    @classmethod
    def _alias_keys(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            for key in value:
                if not isinstance(key, str) or not key:
                    raise ValueError(f"aliases must be non-empty strings, got {key!r}")
        return value

    @field_validator("identity")
    @classmethod
    def _identity(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("identity must be a non-empty name (or left unset)")
        return value

    @field_validator("lock_path", "logger_name", mode="before")
    @classmethod
    def _path_like(cls, value: Any) -> Any:
        if isinstance(value, os.PathLike):
            return os.fspath(value)
        return value

    @property
    def effective_startup_delay(self) -> float:
        """``startup_delay``, or when unset: 1 second with a ``lock_path``, else 0."""
        if self.startup_delay is not None:
            return self.startup_delay
        return 1.0 if self.lock_path else 0.0

    @property
    def config_file(self) -> Path | None:
        """The TOML file this configuration was read from, if any."""
        return self._config_file

    def origin(self, key: str) -> Origin:
        """Where the value at dotted ``key`` (``"task_defaults.coalesce"``) came from."""
        path = tuple(key.removeprefix(DEFAULT_PREFIX).split("."))
        for length in range(len(path), 0, -1):
            found = self._origins.get(path[:length])
            if found is not None:
                return found
        return _DEFAULT_ORIGIN

    def describe(self, *, mask_secrets: bool = True) -> list[dict[str, Any]]:
        """Every effective value as ``{"key", "value", "source", "detail"}``, JSON-friendly.

        Secrets (``secret_key``, options named like passwords or tokens, passwords in URLs)
        are masked unless ``mask_secrets`` is false.
        """
        rows: list[dict[str, Any]] = []

        def add(path: tuple[str, ...], value: Any) -> None:
            origin = self.origin(".".join(path))
            rows.append(
                {
                    "key": DEFAULT_PREFIX + ".".join(path),
                    "value": _display(path, value, mask_secrets),
                    "source": origin.source,
                    "detail": origin.detail,
                }
            )

        add(("timezone",), self.timezone)
        for section in ("stores", "executors"):
            entries: dict[str, Any] = getattr(self, section)
            for alias, entry in sorted(entries.items()):
                if isinstance(entry, Mapping):
                    for option, value in entry.items():
                        add((section, alias, option), value)
                else:
                    add((section, alias), entry)
        for name in TaskDefaults.model_fields:
            add(("task_defaults", name), getattr(self.task_defaults, name))
        for name in ("lock_path", "startup_delay", "shutdown_timeout"):
            add((name,), getattr(self, name))
        rows.append(
            {
                "key": DEFAULT_PREFIX + "effective_startup_delay",
                "value": self.effective_startup_delay,
                "source": "computed",
                "detail": "startup_delay, or 1 s with lock_path, else 0",
            }
        )
        for name in ("identity", "logger_name", "loggers_class", "secret_key"):
            add((name,), getattr(self, name))
        for task_id, task in sorted(self.tasks.items()):
            for name in TaskDeclaration.model_fields:
                if name in task.model_fields_set:
                    add(("tasks", task_id, name), getattr(task, name))
        return rows

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Keyword arguments over the environment over the TOML file; no dotenv, no secrets dir.
        return (init_settings, EnvSource(settings_cls), TomlSource(settings_cls))


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


class _TreeSource(PydanticBaseSettingsSource):
    """Exposes one of the layers above to pydantic-settings (direct ``AsynczSettings()``)."""

    def _tree(self) -> _Tree:  # pragma: no cover - overridden
        raise NotImplementedError

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # pragma: no cover - __call__ does the work

    def __call__(self) -> dict[str, Any]:
        if _skip_sources.get():
            return {}
        tree = self._tree()
        if tree.errors:
            raise ConfigurationError(tree.errors)
        return tree.data


class EnvSource(_TreeSource):
    def _tree(self) -> _Tree:
        return env_layer()


class TomlSource(_TreeSource):
    def _tree(self) -> _Tree:
        return toml_layer(find_config_file())


# -- merging and validation --------------------------------------------------------------------
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
    environ = os.environ if environ is None else environ
    errors: list[tuple[str, str]] = []
    try:
        path = find_config_file(config_file, environ=environ)
    except ConfigurationError as exc:
        raise exc from None
    layers = [toml_layer(path), env_layer(environ)]
    config_tree, _ = global_config_layer(global_config, prefix)
    layers.append(config_tree)
    keyword = _Tree()
    for name, value in overrides.items():
        if value is None:
            continue
        keyword.put_nested((name,), value, Origin("keyword"), name, split=False)
    layers.append(keyword)

    merged: dict[str, Any] = {}
    origins: dict[tuple[str, ...], Origin] = {}
    for layer in layers:
        errors.extend(layer.errors)
        _merge_layer(merged, origins, layer)
    if errors:
        raise ConfigurationError(errors)

    token = _skip_sources.set(True)
    try:
        settings = AsynczSettings(**merged)
    except ValidationError as exc:
        raise _to_configuration_error(exc, origins, prefix) from None
    except ConfigurationError:
        raise
    except (TypeError, ValueError, RecursionError) as exc:
        raise ConfigurationError([("asyncz", f"{type(exc).__name__}: {exc}")]) from None
    finally:
        _skip_sources.reset(token)
    settings._origins = origins
    settings._config_file = path
    return settings


# -- display -----------------------------------------------------------------------------------
def _display(path: tuple[str, ...], value: Any, mask: bool) -> Any:
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
        return [_display(path, item, mask) for item in value]
    if isinstance(value, Mapping):
        return {str(k): _display((*path, str(k)), v, mask) for k, v in value.items()}
    if callable(value) and hasattr(value, "__qualname__"):
        return f"{getattr(value, '__module__', '?')}:{value.__qualname__}"
    return repr(value)

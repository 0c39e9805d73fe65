"""The settings models and the validators of their values.

Data path: the source readers (:mod:`.sources`) turn each configuration source into a nested
dict; :mod:`.merging` merges them and validates the result with :class:`AsynczSettings` here.
What a value may be (a zone name, seconds, a ``{"type"|"class": ...}`` component entry, a
``module:qualname`` reference) is decided by the validators of this module, and nowhere else.

:class:`AsynczSettings` holds everything a scheduler takes, :class:`TaskDefaults` the options
every task gets, :class:`TaskDeclaration` one task of the TOML ``tasks`` table, and
:class:`Origin` where one value came from.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import tzinfo
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from asyncz.timeutil import local_timezone, to_timezone

__all__ = [
    "DEFAULT_PREFIX",
    "AsynczSettings",
    "CoordinationSettings",
    "DashboardSettings",
    "HistorySettings",
    "Origin",
    "TaskDeclaration",
    "TaskDefaults",
]

DEFAULT_PREFIX = "asyncz."

_NONE_WORDS = frozenset({"none", "null", ""})


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


def _validate_timeout(value: Any) -> float | None:
    """Seconds > 0; ``None``/``"none"`` means no limit."""
    seconds = _validate_grace(value)
    if seconds == 0:
        raise ValueError("expected a number of seconds > 0 or None, got 0")
    return seconds


Timeout = Annotated[float | None, PlainValidator(_validate_timeout)]
Overlap = Literal["skip", "buffer_one", "buffer_all", "cancel_other", "allow_all"]


def _rename_mistrigger(data: Any) -> Any:
    """Accept the aliases of task options (Asyncz's spelling ``mistrigger_grace_time`` for
    ``misfire_grace_time``: :data:`asyncz.tasks.options.ALIASES`)."""
    from asyncz.tasks.options import ALIASES

    if isinstance(data, Mapping) and any(alias in data for alias in ALIASES):
        data = dict(data)
        for alias, name in ALIASES.items():
            if alias not in data:
                continue
            value = data.pop(alias)
            if name in data and data[name] != value:
                raise ValueError(f"{name} and {alias} are the same setting; give one")
            data[name] = value
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
    #: Seconds a run may take before it is stopped (outcome ``timeout``); ``None``: no limit.
    timeout: Timeout = None
    #: Extra attempts of a run that failed or timed out.
    retries: int = Field(default=0, ge=0)
    #: Seconds before the first retry ...
    retry_delay: float = Field(default=1.0, ge=0, allow_inf_nan=False)
    #: ... multiplied by this for each further one ...
    retry_backoff: float = Field(default=2.0, ge=1, allow_inf_nan=False)
    #: ... up to this many seconds (``None``: no limit) ...
    retry_max_delay: GraceTime = 3600.0
    #: ... plus up to this many seconds of random delay.
    retry_jitter: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    #: What happens when a run is due while earlier runs still run (docs/tasks.md).
    overlap: Overlap = "skip"
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


class CoordinationSettings(BaseModel):
    """How schedulers that share a store (nodes) coordinate (see docs/coordination.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Seconds a node holds the due tasks it claimed, and counts as alive after its last
    #: heartbeat: a node that dies (or is cut off) loses its claims, and another node takes
    #: its runs over, within this time.
    lease: float = Field(default=10.0, gt=0, le=86400)
    #: Seconds between heartbeats; ``None``: a quarter of ``lease``. Must be below ``lease``.
    heartbeat_interval: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _interval_below_lease(self) -> CoordinationSettings:
        if self.heartbeat_interval is not None and self.heartbeat_interval >= self.lease:
            raise ValueError(
                f"heartbeat_interval ({self.heartbeat_interval:g} s) must be shorter than "
                f"lease ({self.lease:g} s), or the node's claims lapse between heartbeats"
            )
        return self

    @property
    def interval(self) -> float:
        """Seconds between heartbeats."""
        return self.heartbeat_interval or self.lease / 4


class HistorySettings(BaseModel):
    """Run history: one record per run in its task's store (see docs/history.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Record runs at all.
    enabled: bool = True
    #: Seconds a record is kept (7 days).
    max_age: float = Field(default=7 * 86400.0, gt=0, allow_inf_nan=False)
    #: Records kept per task (the newest).
    max_per_task: int = Field(default=100, ge=1)


class DashboardSettings(BaseModel):
    """The web dashboard (``asyncz dashboard``, ``create_dashboard()``; docs/operations.md).

    Auth is required: a ``token`` (sent as ``Authorization: Bearer``, or typed in the login
    form) and/or ``username`` + ``password`` (HTTP basic auth, or the login form). Without
    either the dashboard refuses to start, unless ``disable_auth`` is true: then it answers
    only requests from this machine (loopback), and ``asyncz dashboard`` only binds there.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: A secret of at least 16 characters (``ASYNCZ_DASHBOARD__TOKEN``).
    token: SecretStr | None = None
    #: Basic auth (and login form) user; needs ``password``.
    username: str | None = None
    password: SecretStr | None = None
    #: No auth: only for a dashboard that answers requests from this machine alone.
    disable_auth: bool = False
    #: Key that signs session cookies and CSRF tokens; unset: a random key per process
    #: (sessions end when it restarts). Set the same one on dashboards behind one address.
    session_secret: SecretStr | None = None
    #: Seconds a login lasts.
    session_lifetime: float = Field(default=12 * 3600.0, gt=0, le=30 * 86400)
    #: Pages and the JSON API only: every action is refused (403) and not offered.
    read_only: bool = False

    @field_validator("token", "password", "session_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters (a shorter secret is guessable)")
        return value

    @field_validator("username")
    @classmethod
    def _username(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or ":" in value):
            raise ValueError("must be a non-empty name without ':'")
        return value

    @model_validator(mode="after")
    def _user_and_password(self) -> DashboardSettings:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together: set both, or neither")
        return self

    @property
    def auth_configured(self) -> bool:
        return self.token is not None or self.username is not None


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
    timeout: Timeout = None
    retries: int | None = Field(default=None, ge=0)
    retry_delay: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    retry_backoff: float | None = Field(default=None, ge=1, allow_inf_nan=False)
    retry_max_delay: GraceTime = None
    retry_jitter: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    overlap: Overlap | None = None
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
        from asyncz.tasks.options import DEFAULTABLE

        return {n: getattr(self, n) for n in DEFAULTABLE if n in self.model_fields_set}


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


class AsynczSettings(BaseSettings):
    """Everything a scheduler takes. Build it with :func:`~asyncz.settings.load_settings`.

    A pydantic-settings model: the environment (``ASYNCZ_`` prefix, ``__`` nesting) and the
    TOML file are read by pydantic-settings' own sources, the ones
    :meth:`settings_customise_sources` returns. ``load_settings`` and direct construction
    (``AsynczSettings(timezone="UTC")``) read them the same way, once, and record where each
    value came from; directly, a bad value is pydantic's ``ValidationError`` rather than a
    ``ConfigurationError``.
    """

    model_config = SettingsConfigDict(
        env_prefix="ASYNCZ_",
        env_nested_delimiter="__",
        pyproject_toml_table_header=("tool", "asyncz"),
        extra="forbid",
        arbitrary_types_allowed=True,
        frozen=True,
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
    #: How nodes sharing a store coordinate: ``lease``, ``heartbeat_interval``.
    coordination: CoordinationSettings = Field(default_factory=CoordinationSettings)
    #: Run history: ``enabled``, ``max_age`` (seconds), ``max_per_task``.
    history: HistorySettings = Field(default_factory=HistorySettings)
    #: Seconds one call to a store that does network I/O may take before it counts as an
    #: outage (a frozen server); ``None`` (``"none"``) or 0 waits for ever.
    store_timeout: GraceTime = 10.0
    #: Name of the scheduler's logger (``None``: the scheduler's default).
    logger_name: str | None = None
    #: The class that creates loggers (``asyncz.schedulers.base.ClassicLogging`` by default).
    loggers_class: LoggersClass = None
    #: The web dashboard: auth, sessions (``asyncz.dashboard.token`` ...).
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings)
    #: Key that signs pickled tasks (``ASYNCZ_SECRET_KEY``).
    secret_key: SecretStr | None = None
    #: Task id -> declaration, for ``asyncz run``.
    tasks: dict[str, TaskDeclaration] = Field(default_factory=dict)

    _origins: dict[tuple[str, ...], Origin] = {}
    _config_file: Path | None = None

    def __init__(self, **data: Any) -> None:
        # Direct construction: the sources are read and merged (with origins) by the same
        # code as load_settings, then validated once. BaseModel.__init__, not BaseSettings':
        # that would call the sources a second time and merge without origins. A keyword
        # given as None is a value here (it is "not given" to load_settings).
        from asyncz.settings.merging import merge_sources

        merged, origins, path = merge_sources(type(self), keywords=data, none_is_value=True)
        self._fill(merged, origins, path)

    @classmethod
    def _validated(
        cls, merged: dict[str, Any], origins: dict[tuple[str, ...], Origin], path: Path | None
    ) -> AsynczSettings:
        """A model from merged values, validated once (``model_validate`` would call
        ``__init__``, which reads the sources again: BaseSettings has a custom ``__init__``)."""
        settings = cls.__new__(cls)
        settings._fill(merged, origins, path)
        return settings

    def _fill(
        self, merged: dict[str, Any], origins: dict[tuple[str, ...], Origin], path: Path | None
    ) -> None:
        BaseModel.__init__(self, **merged)
        self._origins = origins
        self._config_file = path

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keywords over the environment over the TOML file; no dotenv, no secrets dir.

        The TOML source is pydantic-settings' ``TomlConfigSettingsSource`` for the file found
        by :func:`~asyncz.settings.find_config_file`, or its
        ``PyprojectTomlConfigSettingsSource`` for ``[tool.asyncz]``. A subclass may return
        other sources; ``global_config`` always goes just below ``init_settings``.
        """
        from asyncz.settings.sources import config_file_source

        toml = config_file_source(settings_cls, env_settings)
        if toml is None:
            return (init_settings, env_settings)
        return (init_settings, env_settings, toml)

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
        from asyncz.settings.display import describe

        return describe(self, mask_secrets=mask_secrets)

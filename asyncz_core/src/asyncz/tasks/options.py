"""The task options, in one table: what a task can be given, and what each option means.

Data path: a keyword given to ``add_task`` / ``add_task_async`` / ``Task(...)`` /
``update_task`` or written in a TOML task table -> :func:`fold_aliases` (Asyncz's
``mistrigger_grace_time`` becomes ``misfire_grace_time``) -> the option's ``check``
(validates and normalises) -> the :class:`~asyncz.tasks.Task` attribute ``attr``; options a
task leaves unset (``UNSET``) take the scheduler's ``task_defaults`` when it is added.

:data:`OPTIONS` is the table; everything else here is derived from it. ``add_task`` and
``Task.__init__`` keep explicit signatures (for users, IDEs and type checkers);
``tests/core/test_task_options.py`` checks them against the table, and that every option
reaches the task through each way in. Adding an option: one row here, a parameter in those
two signatures and in ``Task._init`` (the same order: ``add_task`` passes them by position;
the test names what is missing), and its use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any

from asyncz._util import UNSET

__all__ = [
    "ALIASES",
    "DECLARABLE",
    "DEFAULTABLE",
    "NAMES",
    "NONE_IS_VALUE",
    "OPTIONS",
    "OVERLAP_POLICIES",
    "TaskOption",
    "fold_aliases",
    "given",
]

#: The empty keyword arguments most tasks share (one read-only mapping).
NO_KWARGS: Mapping[str, Any] = MappingProxyType({})
#: The empty tag set most tasks share.
NO_TAGS: frozenset[str] = frozenset()


@dataclass(frozen=True)
class TaskOption:
    """One row of the table."""

    #: The keyword (``add_task(..., name=...)``, ``update_task(..., name=...)``).
    name: str
    #: The :class:`~asyncz.tasks.Task` attribute that holds it.
    attr: str
    #: Validates a given value and returns what the task holds; ``None``: held as given.
    #: Not used for ``fn``, ``id`` and ``trigger``, which the task sets itself.
    check: Callable[[Any], Any] | None = None
    #: ``None`` is a value (``next_run_time=None`` pauses), not "not given".
    none_is_value: bool = False
    #: Left ``UNSET`` when not given, and then filled from ``task_defaults`` when the task is
    #: added (``TaskDefaults`` has a field of this name).
    defaultable: bool = False
    #: A key of a TOML task table (``TaskDeclaration`` has a field of this name).
    declarable: bool = True
    #: Kept in the stored state of a persistent store (``Task.__getstate__``).
    persisted: bool = True
    #: A field of :class:`~asyncz.tasks.TaskInfo` of the same name.
    shown: bool = True
    #: Other spellings accepted for it (Asyncz's names).
    aliases: tuple[str, ...] = ()


# -- checks ---------------------------------------------------------------------------------
def check_args(value: Iterable[Any] | None) -> tuple[Any, ...]:
    return tuple(value) if value else ()


def check_kwargs(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return dict(value) if value else NO_KWARGS


def check_alias(value: str | None) -> str:
    return value or "default"


def check_tags(value: Any) -> frozenset[str]:
    if not value:
        return NO_TAGS
    if isinstance(value, str) or not all(isinstance(t, str) for t in value):
        raise TypeError(f"tags must be a collection of strings, not {value!r}")
    return frozenset(value)


def check_coalesce(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"coalesce must be True or False, not {value!r}")
    return value


def check_max_instances(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"max_instances must be a positive integer, not {value!r}")
    return value


def check_grace_time(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(
            f"misfire_grace_time must be a number of seconds >= 0 or None, not {value!r}"
        )
    return float(value)


def check_next_run_time(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise TypeError(f"next_run_time must be a datetime or None, not {value!r}")
    # A naive value stays naive until the scheduler reads it in its trigger zone (when the
    # task is added or updated: the add path's ``_resolve_naive``).
    if value.tzinfo is not None:
        from asyncz.timeutil import plain_datetime

        return plain_datetime(value)  # a pytz zone becomes its zoneinfo namesake
    return value


def _seconds(name: str, value: Any, *, minimum: float = 0.0, strict: bool = False) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or value != value  # NaN
        or value in (float("inf"), float("-inf"))
        or (value <= minimum if strict else value < minimum)
    ):
        bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
        raise ValueError(f"{name} must be a finite number {bound}, not {value!r}")
    return float(value)


def check_timeout(value: Any) -> float | None:
    if value is None:
        return None
    return _seconds("timeout (seconds, or None for no limit)", value, strict=True)


def check_retries(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"retries must be an integer >= 0 (extra attempts), not {value!r}")
    return value


def check_retry_delay(value: Any) -> float:
    return _seconds("retry_delay (seconds)", value)


def check_retry_backoff(value: Any) -> float:
    return _seconds("retry_backoff (a multiplier)", value, minimum=1.0)


def check_retry_max_delay(value: Any) -> float | None:
    if value is None:
        return None
    return _seconds("retry_max_delay (seconds, or None for no limit)", value)


def check_retry_jitter(value: Any) -> float:
    return _seconds("retry_jitter (seconds)", value)


#: What happens when a run is due while earlier runs of the task still run (see
#: docs/tasks.md, "Overlap"): Temporal's overlap policies.
OVERLAP_POLICIES: tuple[str, ...] = (
    "skip",
    "buffer_one",
    "buffer_all",
    "cancel_other",
    "allow_all",
)


def check_overlap(value: Any) -> str:
    if value not in OVERLAP_POLICIES:
        raise ValueError(f"overlap must be one of {', '.join(OVERLAP_POLICIES)}; not {value!r}")
    return str(value)


# -- the table ------------------------------------------------------------------------------
OPTIONS: tuple[TaskOption, ...] = (
    TaskOption("fn", "fn", shown=False),  # shown as callable_name / callable_reference
    TaskOption("id", "id", declarable=False),  # in TOML, the table's key is the id
    TaskOption("name", "name"),
    TaskOption("args", "args", check_args),
    TaskOption("kwargs", "kwargs", check_kwargs),
    TaskOption("trigger", "trigger", shown=False),  # shown as trigger_alias / _name / ...
    TaskOption("executor", "executor", check_alias),
    TaskOption("store", "store_alias", check_alias, persisted=False),
    TaskOption(
        "next_run_time", "next_run_time", check_next_run_time, none_is_value=True, declarable=False
    ),
    TaskOption("coalesce", "coalesce", check_coalesce, defaultable=True),
    TaskOption("max_instances", "max_instances", check_max_instances, defaultable=True),
    TaskOption(
        "misfire_grace_time",
        "misfire_grace_time",
        check_grace_time,
        none_is_value=True,
        defaultable=True,
        aliases=("mistrigger_grace_time",),
    ),
    # Run policies (docs/tasks.md, "Run policies").
    TaskOption("timeout", "timeout", check_timeout, none_is_value=True, defaultable=True),
    TaskOption("retries", "retries", check_retries, defaultable=True),
    TaskOption("retry_delay", "retry_delay", check_retry_delay, defaultable=True),
    TaskOption("retry_backoff", "retry_backoff", check_retry_backoff, defaultable=True),
    TaskOption(
        "retry_max_delay",
        "retry_max_delay",
        check_retry_max_delay,
        none_is_value=True,
        defaultable=True,
    ),
    TaskOption("retry_jitter", "retry_jitter", check_retry_jitter, defaultable=True),
    TaskOption("overlap", "overlap", check_overlap, defaultable=True),
    TaskOption("replace_existing", "replace_existing", bool, persisted=False, shown=False),
    TaskOption("tags", "tags", check_tags, declarable=False),  # `asyncz run` sets its own
)

#: By name.
BY_NAME: Mapping[str, TaskOption] = MappingProxyType({o.name: o for o in OPTIONS})
#: Alias -> the option's name.
ALIASES: Mapping[str, str] = MappingProxyType({a: o.name for o in OPTIONS for a in o.aliases})
#: Every keyword a task accepts as an option, aliases included (``update_task`` checks these).
NAMES: tuple[str, ...] = tuple(o.name for o in OPTIONS) + tuple(ALIASES)
#: The options ``task_defaults`` may set, in table order.
DEFAULTABLE: tuple[str, ...] = tuple(o.name for o in OPTIONS if o.defaultable)
#: The options a TOML task table may set (besides ``fn`` and ``trigger``, which it must).
DECLARABLE: tuple[str, ...] = tuple(
    o.name for o in OPTIONS if o.declarable and o.name not in ("fn", "trigger")
)
#: Options for which ``None`` is a value rather than "not given".
NONE_IS_VALUE: frozenset[str] = frozenset(o.name for o in OPTIONS if o.none_is_value)
#: The keywords of ``add_task`` / ``add_task_async`` besides the callable and the trigger
#: (every other keyword is the trigger's).
ADD_NAMES: frozenset[str] = frozenset(NAMES) - {"fn", "trigger"}
#: The options a misspelt keyword may have been meant to be.
SUGGESTABLE: tuple[str, ...] = tuple(n for n in NAMES if n not in ("fn", "trigger"))
#: The options applied through their ``check`` (``fn``, ``id``, ``trigger`` are special).
CHECKED: tuple[TaskOption, ...] = tuple(o for o in OPTIONS if o.name not in ("fn", "id", "trigger"))


def fold_aliases(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with each alias replaced by its option's name (in place; returned). An
    alias given beside its option is dropped unless the option itself is ``UNSET``."""
    for alias, name in ALIASES.items():
        if alias in options:
            value = options.pop(alias)
            if options.get(name, UNSET) is UNSET:
                options[name] = value
    return options


def given(options: Mapping[str, Any]) -> dict[str, Any]:
    """The options the caller gave: ``None`` means "not given" except where it is a value
    (``next_run_time=None`` pauses, ``misfire_grace_time=None`` lifts the limit)."""
    return {
        k: v for k, v in options.items() if v is not UNSET and (v is not None or k in NONE_IS_VALUE)
    }

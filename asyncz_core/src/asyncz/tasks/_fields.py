"""Fields of a task kept outside its own slots, so that a task costs fewer bytes in the
memory store (issue 19); the task's attributes read and write through them.

Data path: ``Task(...)`` -> :func:`policy_of` the run policies given (``UNSET`` for the
others: :data:`UNSET_POLICY` when none is) -> :meth:`RunPolicy.filled` with the scheduler's
``task_defaults`` when the task is added -> read when a run fails (``task.retry_delay``,
...) or overlaps (``task.overlap``); ``pause_task`` / a retry / a coordinated store set the
rarely set fields (a :class:`TaskExtra` then).

* The run policies read only when a run fails or overlaps (``retry_*``, ``overlap``):
  nearly every task keeps the scheduler's defaults for all five, so a task holds one
  :class:`RunPolicy` shared by every task with the same values instead of five slots.
  (``timeout`` and ``retries``, read on every run, keep slots of their own: a slot reads
  several times faster than these properties.)
* The rarely set fields (``scheduled_next``, ``pause_note``, ``paused_at``, ``revision``,
  ``replace_existing``): one :class:`TaskExtra` of the task's own, made the first time one
  of them is given a value other than its default; until then the task shares
  :data:`NO_EXTRA`, which holds the defaults. (``pending_runs``, as rarely set, keeps a slot:
  the run path reads it several times per run, and a slot reads several times faster.)

Through :func:`policy_property` and :func:`extra_property`: ``task.overlap = "allow_all"``
gives that task a policy of its own, the other tasks keep theirs.
"""

from __future__ import annotations

from collections.abc import Mapping
from operator import attrgetter
from typing import Any, Protocol, TypeVar

from asyncz._util import UNSET

__all__ = [
    "EXTRA_NAMES",
    "NO_EXTRA",
    "POLICY_NAMES",
    "UNSET_POLICY",
    "DefaultPolicy",
    "Field",
    "RunPolicy",
    "TaskExtra",
    "extra_property",
    "policy_of",
    "policy_property",
]

T = TypeVar("T")


class Field(Protocol[T]):
    """How type checkers see the attributes :func:`policy_property` and
    :func:`extra_property` make: read and written as a ``T``."""

    def __get__(self, task: object, owner: type | None = None) -> T: ...

    def __set__(self, task: object, value: T) -> None: ...


#: The run policies, in the order of the table in :mod:`asyncz.tasks.options`.
POLICY_NAMES: tuple[str, ...] = (
    "retry_delay",
    "retry_backoff",
    "retry_max_delay",
    "retry_jitter",
    "overlap",
)


class RunPolicy:
    """The five run policies of a task: immutable, shared, compared by value.

    Built through :func:`policy_of` only, so that equal policies are one object."""

    __slots__ = (*POLICY_NAMES, "_complete", "_key", "values")

    retry_delay: Any
    retry_backoff: Any
    retry_max_delay: Any
    retry_jitter: Any
    overlap: Any
    #: The five values, in :data:`POLICY_NAMES` order.
    values: tuple[Any, ...]
    _complete: bool  # no value is UNSET
    _key: tuple[Any, ...]

    def __init__(self, values: tuple[Any, ...], key: tuple[Any, ...]) -> None:
        for name, value in zip(POLICY_NAMES, values, strict=True):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "_complete", UNSET not in values)
        object.__setattr__(self, "_key", key)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a RunPolicy is shared between tasks and cannot be changed")

    def replaced(self, name: str, value: Any) -> RunPolicy:
        """This policy with ``name`` set to ``value``."""
        values = list(self.values)
        values[POLICY_NAMES.index(name)] = value
        return policy_of(tuple(values))

    def filled(self, defaults: RunPolicy) -> RunPolicy:
        """This policy with each ``UNSET`` value taken from ``defaults``."""
        if self._complete:
            return self
        if self is UNSET_POLICY:
            return defaults
        return policy_of(
            tuple(d if v is UNSET else v for v, d in zip(self.values, defaults.values, strict=True))
        )

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RunPolicy):
            return self._key == other._key
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._key)

    def __repr__(self) -> str:
        fields = ", ".join(f"{n}={getattr(self, n)!r}" for n in POLICY_NAMES)
        return f"RunPolicy({fields})"


# Values -> their shared policy. The key holds the types too: 1, 1.0 and True are equal
# (and hash alike) but are not the same value to hand back.
_INTERNED: dict[tuple[Any, ...], RunPolicy] = {}
_MAX_INTERNED = 4096


def policy_of(values: tuple[Any, ...]) -> RunPolicy:
    """The shared :class:`RunPolicy` holding ``values`` (in :data:`POLICY_NAMES` order)."""
    key = (*values, *map(type, values))
    policy = _INTERNED.get(key)
    if policy is None:
        policy = RunPolicy(values, key)
        if len(_INTERNED) < _MAX_INTERNED:
            _INTERNED[key] = policy
    return policy


#: The policy of a task given none of the seven: filled from ``task_defaults`` when added.
UNSET_POLICY: RunPolicy = policy_of((UNSET,) * len(POLICY_NAMES))


class DefaultPolicy:
    """The :class:`RunPolicy` of a scheduler's ``task_defaults``, built again only when the
    mapping changes (it is a public, mutable dict)."""

    __slots__ = ("_policy", "_seen")

    def __init__(self) -> None:
        self._seen: dict[str, Any] | None = None
        self._policy = UNSET_POLICY

    def of(self, defaults: Mapping[str, Any]) -> RunPolicy:
        # One C-level comparison of two small dicts per task added.
        if self._seen is None or self._seen != defaults:
            self._seen = dict(defaults)
            self._policy = policy_of(tuple(defaults[name] for name in POLICY_NAMES))
        return self._policy


def policy_property(name: str) -> Any:
    """``Task.<name>``: read from the task's shared policy (a C attribute getter: no Python
    frame on the run path); a write gives the task a policy with that one value changed."""

    def fset(task: Any, value: Any) -> None:
        task._policy = task._policy.replaced(name, value)

    return property(attrgetter(f"_policy.{name}"), fset, doc=f"The task's ``{name}`` policy.")


class TaskExtra:
    """The rarely set fields of one task (see the module docstring)."""

    __slots__ = (
        "pause_note",
        "paused_at",
        "replace_existing",
        "revision",
        "scheduled_next",
    )

    def __init__(self) -> None:
        self.scheduled_next: Any = None
        self.pause_note: str | None = None
        self.paused_at: Any = None
        self.revision = 0
        self.replace_existing = False

    def copy(self) -> TaskExtra:
        """A copy for another task (or :data:`NO_EXTRA` itself, which is never written)."""
        if self is NO_EXTRA:
            return self
        clone = TaskExtra()
        for name in EXTRA_NAMES:
            setattr(clone, name, getattr(self, name))
        return clone


EXTRA_NAMES: tuple[str, ...] = TaskExtra.__slots__
#: The defaults, shared by every task that has none of these set (never written to).
NO_EXTRA: TaskExtra = TaskExtra()


def extra_property(name: str) -> Any:
    """``Task.<name>`` for a rarely set field: read through the task's :class:`TaskExtra`;
    the first write of a value other than the default gives the task one of its own."""
    default = getattr(NO_EXTRA, name)

    def fset(task: Any, value: Any) -> None:
        extra = task._extra
        if extra is NO_EXTRA:
            if value is default:
                return
            extra = task._extra = TaskExtra()
        setattr(extra, name, value)

    return property(attrgetter(f"_extra.{name}"), fset)

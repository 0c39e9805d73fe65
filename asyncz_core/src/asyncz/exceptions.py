"""Every error asyncz raises on purpose.

Each exception subclasses the builtin it means, so ``except LookupError`` keeps working, and
builds its message from its fields, so the message always names what went wrong and what to do.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from difflib import get_close_matches
from typing import Any

__all__ = [
    "AliasConflictError",
    "AsynczError",
    "BackfillLimitError",
    "ComponentLookupError",
    "ConfigurationError",
    "ConflictingIdError",
    "MaxInstancesReachedError",
    "PluginLoadError",
    "PluginTypeError",
    "SchedulerAlreadyRunningError",
    "SchedulerNotRunningError",
    "StaleTaskError",
    "StoreTimeoutError",
    "StoreUnavailableError",
    "TaskLookupError",
    "TaskRestoreError",
    "TaskTimeoutError",
    "TaskUnrestorableError",
    "UnknownAliasError",
    "UnpicklableTaskError",
    "closest",
]


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """Return the candidate closest to ``word`` when one is reasonably close, else ``None``."""
    matches = get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


class AsynczError(Exception):
    """Base class of the errors asyncz raises on purpose."""


class UnknownAliasError(AsynczError, LookupError):
    """No component of ``kind`` is registered under ``alias``."""

    def __init__(
        self,
        kind: str,
        alias: str,
        group: str,
        installed: Sequence[str],
        distribution: str | None = None,
    ) -> None:
        self.kind = kind
        self.alias = alias
        self.group = group
        self.installed = sorted(installed)
        self.distribution = distribution
        listed = ", ".join(self.installed) if self.installed else "none"
        message = f"No {kind} named {alias!r} in entry-point group {group!r}. Installed: {listed}."
        if distribution:
            message += f" It is provided by {distribution}: pip install {distribution}"
        else:
            guess = closest(alias, self.installed)
            if guess:
                message += f" Did you mean {guess!r}?"
            message += " A package that provides it must be installed."
        super().__init__(message)

    def __str__(self) -> str:
        return str(self.args[0])


class PluginLoadError(AsynczError, ImportError):
    """An entry point (or a ``module:Name`` reference) could not be imported."""

    def __init__(
        self,
        kind: str,
        alias: str,
        group: str,
        value: str,
        distribution: str | None,
        version: str | None,
        cause: BaseException,
    ) -> None:
        self.kind = kind
        self.alias = alias
        self.group = group
        self.value = value
        self.distribution = distribution
        self.version = version
        origin = f"{distribution} {version}" if distribution else "an in-process registration"
        super().__init__(
            f"{kind.capitalize()} {alias!r} ({value}) of entry-point group {group!r} "
            f"from {origin} failed to import: {type(cause).__name__}: {cause}"
        )


class PluginTypeError(AsynczError, TypeError):
    """A registered component is not a subclass of the base class of its kind."""

    def __init__(self, kind: str, alias: str, obj: Any, base: type) -> None:
        self.kind = kind
        self.alias = alias
        self.obj = obj
        self.base = base
        super().__init__(
            f"{kind.capitalize()} {alias!r} resolves to {obj!r}, which is not a subclass of "
            f"{base.__module__}.{base.__qualname__}."
        )


class AliasConflictError(AsynczError, LookupError):
    """Two distributions claim the same alias in one entry-point group."""

    def __init__(self, kind: str, alias: str, group: str, claimants: Sequence[str]) -> None:
        self.kind = kind
        self.alias = alias
        self.group = group
        self.claimants = list(claimants)
        super().__init__(
            f"{kind.capitalize()} alias {alias!r} in entry-point group {group!r} is claimed by "
            f"more than one distribution: {' and '.join(self.claimants)}. Uninstall one of them, "
            f"or name the class explicitly with {{'class': 'module:Name'}}."
        )


class ConfigurationError(AsynczError, ValueError):
    """Configuration that cannot be used. ``errors`` holds ``(dotted_key, message)`` pairs."""

    def __init__(self, errors: Sequence[tuple[str, str]]) -> None:
        self.errors = list(errors)
        if len(self.errors) == 1:
            key, message = self.errors[0]
            text = f"Invalid configuration: {key}: {message}"
        else:
            lines = "\n".join(f"  {key}: {message}" for key, message in self.errors)
            text = f"Invalid configuration ({len(self.errors)} errors):\n{lines}"
        super().__init__(text)

    @property
    def keys(self) -> list[str]:
        return [key for key, _ in self.errors]


class TaskLookupError(AsynczError, LookupError):
    """No task with this id exists (in the given store)."""

    def __init__(self, task_id: str, store: str | None = None) -> None:
        self.task_id = task_id
        self.store = store
        where = f" in store {store!r}" if store else ""
        super().__init__(f"No task with the id {task_id!r} was found{where}.")

    def __str__(self) -> str:
        return str(self.args[0])


class TaskUnrestorableError(TaskLookupError):
    """The task is in its store, but its stored form cannot be restored (``reason``).

    A :class:`TaskLookupError`, since there is no task to act on; the stored data is kept
    until it is fixed or deleted (``delete_task`` works).
    """

    def __init__(self, task_id: str, store: str, reason: str) -> None:
        self.reason = reason
        super().__init__(task_id, store)
        self.args = (
            f"Task {task_id!r} in store {store!r} cannot be restored: {reason}. It is kept as it "
            "is: fix the cause (e.g. make its callable importable again) or delete it.",
        )


class ComponentLookupError(AsynczError, KeyError):
    """A store or executor alias that this scheduler does not have.

    ``task`` (optional) describes the task that names it.
    """

    def __init__(
        self, kind: str, alias: str, configured: Iterable[str], task: object | None = None
    ) -> None:
        self.kind = kind
        self.alias = alias
        self.configured = sorted(configured)
        listed = ", ".join(repr(a) for a in self.configured) or "none"
        who = f" (named by task {task})" if task is not None else ""
        message = f"No {kind} named {alias!r}{who}; this scheduler has: {listed}"
        guess = closest(alias, self.configured)
        if guess:
            message += f". Did you mean {guess!r}?"
        super().__init__(message)

    def __str__(self) -> str:
        return str(self.args[0])


class UnpicklableTaskError(AsynczError, TypeError):
    """An executor that runs tasks in other processes was given something it cannot pickle."""

    def __init__(self, task: object, executor: str | None, what: str, cause: BaseException) -> None:
        self.task = task
        self.executor = executor
        self.what = what
        if what.startswith("callable"):
            why = (
                "A process pool sends the callable to a child process by reference, so it must "
                "be a function importable at module level (not a lambda, a nested function or "
                "a method of a local class)."
            )
        else:
            why = "A process pool sends the arguments to a child process: they must pickle."
        super().__init__(
            f"Task {task} cannot run in the process pool executor {executor!r}: "
            f"its {what} cannot be pickled ({type(cause).__name__}: {cause}). {why}"
        )

    def __str__(self) -> str:
        return str(self.args[0])


class ConflictingIdError(AsynczError, KeyError):
    """A task with this id already exists."""

    def __init__(self, task_id: str, store: str | None = None) -> None:
        self.task_id = task_id
        self.store = store
        where = f" in store {store!r}" if store else ""
        super().__init__(
            f"A task with the id {task_id!r} already exists{where}; "
            "pass replace_existing=True to replace it."
        )

    def __str__(self) -> str:
        return str(self.args[0])


class StaleTaskError(AsynczError, RuntimeError):
    """A write of a task was refused because the stored task changed since it was read
    (its ``revision`` moved: another node or an operator wrote it first). Read it again and
    retry; the scheduler's management methods do so by themselves."""

    def __init__(self, task_id: str, store: str | None, expected: int, found: int | None) -> None:
        self.task_id = task_id
        self.store = store
        self.expected = expected
        self.found = found
        where = f" in store {store!r}" if store else ""
        now = "is gone" if found is None else f"is at revision {found}"
        super().__init__(
            f"Task {task_id!r}{where} changed since it was read (read at revision {expected}, "
            f"now {now}); read it again and retry."
        )

    def __str__(self) -> str:
        return str(self.args[0])


class MaxInstancesReachedError(AsynczError, RuntimeError):
    """The task already runs ``max_instances`` times at once."""

    def __init__(self, task_id: str, max_instances: int) -> None:
        self.task_id = task_id
        self.max_instances = max_instances
        super().__init__(
            f"Task {task_id!r} is already running {max_instances} time(s) (max_instances)."
        )


class TaskTimeoutError(AsynczError, TimeoutError):
    """A run of the task took longer than its ``timeout`` (the outcome ``timeout``)."""

    def __init__(self, task_id: str, timeout: float) -> None:
        self.task_id = task_id
        self.timeout = timeout
        super().__init__(f"Task {task_id!r} did not finish within its timeout of {timeout:g} s")


class BackfillLimitError(AsynczError, ValueError):
    """A backfill window holds more fire times than ``limit`` allows; nothing was run."""

    def __init__(self, task_id: str, count: int, limit: int) -> None:
        self.task_id = task_id
        self.count = count
        self.limit = limit
        more = "more than " if count > limit else ""
        super().__init__(
            f"Backfilling task {task_id!r} would run it {more}{count} times, over the limit of "
            f"{limit}; narrow the window or pass a larger limit="
        )


class TaskRestoreError(AsynczError, ValueError):
    """A stored task could not be turned back into a task. It is kept, never deleted."""

    def __init__(self, task_id: str, reason: str) -> None:
        self.task_id = task_id
        self.reason = reason
        super().__init__(f"Stored task {task_id!r} cannot be restored: {reason}")


class SchedulerAlreadyRunningError(AsynczError, RuntimeError):
    """The operation needs a stopped scheduler."""

    def __init__(self, operation: str = "this operation") -> None:
        super().__init__(f"The scheduler is running; stop it before {operation}.")


class SchedulerNotRunningError(AsynczError, RuntimeError):
    """The operation needs a running scheduler."""

    def __init__(self, operation: str = "this operation") -> None:
        super().__init__(f"The scheduler is not running; start it before {operation}.")


class StoreUnavailableError(AsynczError, ConnectionError):
    """A store's server could not be reached (refused, unknown host, no answer in time).

    Raised by ``start()`` (with the driver's error chained as ``__cause__``) and by store
    calls of a running scheduler; the message is one line naming the store, its kind, its
    address and the setting that configures the address.
    """

    def __init__(
        self,
        alias: str | None,
        kind: str,
        address: str | None,
        setting: str | None,
        reason: str,
    ) -> None:
        self.alias = alias
        self.kind = kind
        self.address = address
        self.setting = setting
        self.reason = reason
        where = f" at {address}" if address else ""
        message = f"Store {alias!r} ({kind}{where}) is unreachable: {reason}"
        if setting:
            message += f"; check {setting}"
        super().__init__(message)

    def __str__(self) -> str:
        return str(self.args[0])


class StoreTimeoutError(StoreUnavailableError, TimeoutError):
    """A store call got no answer within ``asyncz.store_timeout`` seconds (a frozen or
    overloaded server): reported like an outage."""

    def __init__(
        self,
        alias: str | None,
        kind: str,
        address: str | None,
        operation: str,
        timeout: float,
        setting: str = "asyncz.store_timeout",
    ) -> None:
        self.operation = operation
        self.timeout = timeout
        super().__init__(
            alias,
            kind,
            address,
            setting,
            f"no answer to {operation} within {timeout:g} s",
        )


#: Asyncz's names of our exceptions: the same classes, so ``except ConflictIdError`` catches
#: what asyncz raises. Importing one warns (DeprecationWarning) with the name to use.
_ASYNCZ_NAMES = {
    "AsynczException": "AsynczError",
    "ConflictIdError": "ConflictingIdError",
    "MaximumInstancesError": "MaxInstancesReachedError",
}


def __getattr__(name: str) -> Any:
    new = _ASYNCZ_NAMES.get(name)
    if new is None:
        raise AttributeError(f"module 'asyncz.exceptions' has no attribute {name!r}")
    import warnings

    warnings.warn(
        f"asyncz.exceptions.{name} is Asyncz's name; use asyncz.exceptions.{new}",
        DeprecationWarning,
        stacklevel=2,
    )
    return globals()[new]

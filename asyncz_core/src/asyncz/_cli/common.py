"""What every operator command shares: options, the store session, errors, output.

* :class:`OpCommand` / :class:`OpGroup`: click commands whose usage errors exit with 1 (a
  user error), so that 2 means only "a store cannot be reached".
* :func:`operator_options`: ``--config FILE`` and ``--store ALIAS``; :func:`json_option`.
* :func:`session`: run one coroutine against an open
  :class:`~asyncz.operator.OperatorScheduler`, turning the scheduler's errors into
  one-line :class:`UserError` (exit 1) or :class:`StoreUnreachable` (exit 2).
* :func:`table`, :func:`emit_json`, :func:`jsonable`, :func:`when`: output.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from asyncz.schedulers.inspection import jsonable

if TYPE_CHECKING:
    from asyncz.operator import OperatorScheduler

__all__ = [
    "OpCommand",
    "OpGroup",
    "StoreUnreachable",
    "UserError",
    "emit_json",
    "json_option",
    "jsonable",
    "one_line",
    "operator_options",
    "session",
    "table",
    "when",
]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


class UserError(click.ClickException):
    """A mistake of the caller (an unknown id, key, alias or option): exit code 1."""

    exit_code = 1


class StoreUnreachable(click.ClickException):
    """A configured store cannot be reached: exit code 2."""

    exit_code = 2


def _user_error(exc: click.UsageError) -> click.UsageError:
    # click's own usage errors exit with 2, which here means "a store cannot be reached".
    setattr(exc, "exit_code", 1)  # noqa: B010 - a class variable of click's, set per error
    return exc


class OpCommand(click.Command):
    """A command whose usage errors are user errors (exit 1, not click's 2)."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:
            raise _user_error(exc) from None


class OpGroup(OpCommand, click.Group):
    """A group of :class:`OpCommand`; its own usage errors exit with 1 too (its
    ``make_context`` is :class:`OpCommand`'s)."""

    command_class = OpCommand

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            raise _user_error(exc) from None


OpGroup.group_class = OpGroup


def operator_options(fn: F) -> F:
    """``--config FILE`` and ``--store ALIAS`` (passed as ``config_file`` and ``store``)."""
    fn = click.option(
        "--store",
        "store",
        default=None,
        metavar="ALIAS",
        help="Only this store (default: every configured store).",
    )(fn)
    return click.option(
        "--config",
        "config_file",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="TOML file to read (default: $ASYNCZ_CONFIG, ./asyncz.toml, ./pyproject.toml).",
    )(fn)


def json_option(fn: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")(fn)


# -- errors ------------------------------------------------------------------------------------
def one_line(exc: BaseException) -> str:
    """The error as one line; a configuration error names each key (``key: message; ...``)."""
    from asyncz.exceptions import ConfigurationError

    if isinstance(exc, ConfigurationError):
        return "Invalid configuration: " + "; ".join(f"{k}: {m}" for k, m in exc.errors)
    return " ".join(str(exc).split())


def as_click_error(exc: BaseException) -> click.ClickException | None:
    """The one-line click error for an error of the scheduler (``None``: not a user's)."""
    from asyncz.exceptions import (
        ComponentLookupError,
        ConfigurationError,
        ConflictingIdError,
        StoreUnavailableError,
        TaskLookupError,
        UnknownAliasError,
    )
    from asyncz.operator import OperatorError

    if isinstance(exc, StoreUnavailableError):
        return StoreUnreachable(one_line(exc))
    if isinstance(
        exc,
        (
            ConfigurationError,
            TaskLookupError,
            ComponentLookupError,
            ConflictingIdError,
            UnknownAliasError,
            OperatorError,
        ),
    ):
        return UserError(one_line(exc))
    return None


def session(
    config_file: Path | None,
    store: str | None,
    action: Callable[[OperatorScheduler], Awaitable[T]],
) -> T:
    """Open the stores, run ``action(operator)``, close them; errors become one line."""
    from asyncz.operator import open_operator

    async def run() -> T:
        async with open_operator(config_file, store=store) as operator:
            return await action(operator)

    try:
        with quiet_logs():
            return asyncio.run(run())
    except click.ClickException:
        raise
    except Exception as exc:
        error = as_click_error(exc)
        if error is None:
            raise
        raise error from None


@contextlib.contextmanager
def quiet_logs(level: int = logging.CRITICAL) -> Iterator[None]:
    """While a command runs: the scheduler's own log lines (``Added task ...``, ``Stored
    task ... cannot be restored``) are not the command's output, what went wrong is the
    command's one-line error. The level is restored afterwards (a command run in a process
    that goes on, such as a test, leaves its logging as it was)."""
    logger = logging.getLogger("asyncz")
    before = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(before)


# -- output ------------------------------------------------------------------------------------
def emit_json(data: Any) -> None:
    click.echo(json.dumps(jsonable(data), indent=2))


def when(value: datetime | None) -> str:
    """A time for a table: UTC to the second, ``-`` for none."""
    if value is None:
        return "-"
    return value.isoformat(sep=" ", timespec="seconds")


def is_terminal() -> bool:
    return sys.stdout.isatty()


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> None:
    """Rows under a header: a rich table on a terminal, aligned plain text otherwise."""
    cells = [["-" if c is None else str(c) for c in row] for row in rows]
    if is_terminal():
        from rich.console import Console
        from rich.table import Table

        rich_table = Table(title=title, title_justify="left")
        for column in columns:
            rich_table.add_column(column)
        for row in cells:
            rich_table.add_row(*row)
        Console().print(rich_table)
        return
    if title:
        click.echo(title)
    widths = [len(c) for c in columns]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=False)]
    for row in [list(columns), *cells]:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)).rstrip())


def fields(pairs: Sequence[tuple[str, Any]]) -> None:
    """``key: value`` lines, keys aligned."""
    width = max(len(k) for k, _ in pairs)
    for key, value in pairs:
        click.echo(f"{key + ':':<{width + 1}} {'-' if value is None else value}")

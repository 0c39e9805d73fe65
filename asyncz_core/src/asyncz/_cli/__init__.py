"""The operator commands of ``asyncz``: ``tasks``, ``runs``, ``nodes``, ``preview``, ``doctor``,
``dashboard``.

Data path: the command's options -> :func:`asyncz._cli.common.session` (the deployment's
configuration read as the application reads it, its stores opened by an
:class:`~asyncz.operator.OperatorScheduler`: nothing processed, nothing run here) -> the
scheduler's management and inspection API -> a table (rich on a terminal, plain text
otherwise) or ``--json``. Errors are one line: exit code 1 for a user error (a bad option, an
unknown id, key or alias), 2 when a store cannot be reached.

:func:`add_commands` puts them on the ``asyncz`` group (:mod:`asyncz.cli`).
"""

from __future__ import annotations

import click

__all__ = ["add_commands"]


def add_commands(group: click.Group) -> None:
    from asyncz._cli.dashboard import dashboard
    from asyncz._cli.doctor import doctor
    from asyncz._cli.inspect import nodes, preview, runs
    from asyncz._cli.tasks import tasks

    for command in (tasks, runs, nodes, preview, doctor, dashboard):
        group.add_command(command)

"""``asyncz dashboard``: serve the web dashboard (``asyncz-dashboard``) standalone.

The dashboard opens the configured stores as an operator, like the other operator commands;
uvicorn serves it until Ctrl-C. Its configuration is checked before anything binds: a bad
``asyncz.dashboard.*`` value, no auth, or ``disable_auth`` with a host other than loopback
exit with 1 and one line.
"""

from __future__ import annotations

from pathlib import Path

import click

from asyncz._cli.common import OpCommand, UserError, operator_options

__all__ = ["dashboard"]


@click.command("dashboard", cls=OpCommand)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
)
@operator_options
def dashboard(
    host: str, port: int, log_level: str, config_file: Path | None, store: str | None
) -> None:
    """Serve the web dashboard of the configured deployment (needs asyncz-dashboard[serve]).

    Auth comes from asyncz.dashboard.* (token, or username and password); every page and
    the JSON API (/api/tasks, /api/runs, /api/nodes, /api/health) need it.
    """
    import logging

    from asyncz._cli.common import one_line
    from asyncz.exceptions import ConfigurationError
    from asyncz.operator import importable_from

    try:
        from asyncz.dashboard import create_dashboard, serve
    except ImportError as exc:
        raise UserError(str(exc)) from None
    try:
        import uvicorn  # noqa: F401
    except ImportError:
        raise UserError(
            "asyncz dashboard serves with uvicorn: pip install 'asyncz-dashboard[serve]'"
        ) from None
    importable_from(config_file)
    try:
        app = create_dashboard(config_file=config_file, store=store)
    except ConfigurationError as exc:
        raise UserError(one_line(exc)) from None
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    click.echo(f"asyncz dashboard on http://{host}:{port}/ (Ctrl-C to stop)", err=True)
    try:
        serve(app, host=host, port=port, log_level=log_level)
    except ValueError as exc:  # auth disabled, and a host that is not this machine
        raise UserError(str(exc)) from None

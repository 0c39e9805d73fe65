"""The ``asyncz`` command line: ``asyncz plugins``, ``asyncz config show``, ``asyncz run``, and
the operator commands of :mod:`asyncz._cli` (``tasks``, ``runs``, ``nodes``, ``preview``,
``doctor``).

Commands are plain functions registered on the :func:`main` click group, so that more (``asyncz
run CONFIG``) can be added from their own modules with ``@main.command()``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

__all__ = ["config", "config_show", "describe_installed", "main", "plugins", "run_command"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, invoke_without_command=True)
@click.version_option(package_name="asyncz", prog_name="asyncz")
@click.pass_context
def main(ctx: click.Context) -> None:
    """asyncz: an asyncio-first task scheduler."""
    if ctx.invoked_subcommand is None:
        # Bare ``asyncz``: the help, and success (click's default for a group is exit 2).
        click.echo(ctx.get_help())
        ctx.exit(0)


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


# -- asyncz plugins ----------------------------------------------------------------------------
def describe_installed() -> list[dict[str, Any]]:
    """Each distribution providing components or hook plugins, with aliases, hooks and errors.

    Every component entry point is loaded, so that a broken one is reported (under
    ``errors``) instead of failing later; nothing here raises for a broken plugin.
    """
    from asyncz import plugins as plugin_manager
    from asyncz.registry import KINDS, registry

    by_dist: dict[str, dict[str, Any]] = {}

    def dist_row(name: str | None, version: str | None) -> dict[str, Any]:
        key = name or "(in-process)"
        if key not in by_dist:
            by_dist[key] = {
                "name": key,
                "version": version,
                "aliases": {},
                "hooks": {},
                "errors": [],
            }
        return by_dist[key]

    for kind_name, kind in KINDS.items():
        for alias, entries in sorted(registry.providers(kind_name).items()):
            for entry in entries:
                row = dist_row(entry.distribution, entry.version)
                row["aliases"].setdefault(kind.group, []).append(alias)
                try:
                    registry.resolve(kind_name, alias)
                except Exception as exc:
                    row["errors"].append(
                        {
                            "group": kind.group,
                            "name": alias,
                            "error": f"{type(exc).__name__}: {exc}",
                        }
                    )
    for plugin in plugin_manager.describe_hook_plugins():
        row = dist_row(plugin["distribution"], plugin["version"])
        row["hooks"][plugin["name"]] = plugin["hooks"]
        if not plugin["enabled"]:
            row.setdefault("disabled", []).append(plugin["name"])
        if plugin["error"]:
            row["errors"].append(
                {"group": plugin_manager.GROUP, "name": plugin["name"], "error": plugin["error"]}
            )
    return sorted(by_dist.values(), key=lambda r: str(r["name"]).lower())


@main.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def plugins(as_json: bool) -> None:
    """List installed distributions that provide asyncz components or hook plugins."""
    rows = describe_installed()
    if as_json:
        _emit_json({"distributions": rows})
        return
    if not rows:
        click.echo("No asyncz components or plugins are installed.")
        return
    for row in rows:
        version = f" {row['version']}" if row["version"] else ""
        click.echo(f"{row['name']}{version}")
        for group, aliases in sorted(row["aliases"].items()):
            click.echo(f"  {group}: {', '.join(aliases)}")
        for name, hooks in sorted(row["hooks"].items()):
            state = " (disabled)" if name in row.get("disabled", []) else ""
            click.echo(f"  hooks ({name}){state}: {', '.join(hooks) or '-'}")
        for error in row["errors"]:
            click.echo(f"  ERROR {error['group']} {error['name']!r}: {error['error']}")


# -- asyncz config -----------------------------------------------------------------------------
@main.group("config")
def config() -> None:
    """Inspect the effective configuration."""


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="TOML file to read (default: $ASYNCZ_CONFIG, ./asyncz.toml, ./pyproject.toml).",
)
@click.option("--show-secrets", is_flag=True, help="Do not mask secret values.")
def config_show(as_json: bool, config_file: Path | None, show_secrets: bool) -> None:
    """Print the effective configuration and where each value came from."""
    from asyncz.exceptions import ConfigurationError
    from asyncz.settings import load_settings

    try:
        settings = load_settings(config_file=config_file)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
    rows = settings.describe(mask_secrets=not show_secrets)
    source_file = str(settings.config_file) if settings.config_file else None
    if as_json:
        _emit_json({"config_file": source_file, "settings": rows})
        return
    click.echo(f"# configuration file: {source_file or 'none'}")
    width = max(len(row["key"]) for row in rows)
    for row in rows:
        where = row["source"] + (f": {row['detail']}" if row["detail"] else "")
        value = json.dumps(row["value"], default=str)
        click.echo(f"{row['key']:<{width}} = {value}  # {where}")


# -- asyncz run -------------------------------------------------------------------------------
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@main.command("run")
@click.argument("config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the embedded store keeps tasks (default: .asyncz/ beside CONFIG_FILE).",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0),
    default=None,
    help="Stop after this many seconds, >= 0 (for demos).",
)
@click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default="INFO",
    show_default=True,
    help="Logging level.",
)
def run_command(
    config_file: Path, data_dir: Path | None, duration: float | None, log_level: str
) -> None:
    """Run the scheduler and the tasks declared in CONFIG_FILE until Ctrl-C or SIGTERM."""
    import asyncio
    import logging

    from asyncz.exceptions import AsynczError
    from asyncz.runner import run_config

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)-7s %(name)s: %(message)s"
    )
    try:
        asyncio.run(run_config(config_file, data_dir=data_dir, duration=duration))
    except AsynczError as exc:
        # A configuration error (every one, each under its TOML key) or a start that failed:
        # one message and exit code 1, no traceback.
        raise click.ClickException(str(exc)) from None


# -- operator commands: asyncz tasks / runs / nodes / preview / doctor (asyncz/_cli/) ------------
def _add_operator_commands() -> None:
    from asyncz._cli import add_commands

    add_commands(main)


_add_operator_commands()


def run() -> None:  # pragma: no cover - console entry when installed without a script
    main(prog_name="asyncz")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

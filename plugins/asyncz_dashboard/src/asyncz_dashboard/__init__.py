"""The asyncz web dashboard: ``create_dashboard()`` returns an ASGI application.

Also importable as ``asyncz.dashboard`` (the core re-exports it lazily, and says what to
``pip install`` when this distribution is missing).

Mounted in an application (Starlette ``Mount("/scheduler", app=dashboard)``, FastAPI
``app.mount(...)``, Lilya ``Include``/``Mount``), or served standalone by
``asyncz dashboard --port 8765`` (:func:`serve`, with uvicorn).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from asyncz_dashboard.app import Dashboard

__all__ = ["Dashboard", "create_dashboard", "serve"]


def create_dashboard(
    scheduler: Any = None,
    *,
    config_file: str | Path | None = None,
    store: str | None = None,
    **settings: Any,
) -> Dashboard:
    """The dashboard for the deployment configured in ``config_file`` (else as the
    application finds its configuration: ``$ASYNCZ_CONFIG``, ``./asyncz.toml``,
    ``[tool.asyncz]``, ``ASYNCZ_*``).

    ``scheduler``: use this running scheduler (the application's own, or an open
    :class:`~asyncz.operator.OperatorScheduler`) instead of opening the stores as an
    operator; its ``settings.dashboard`` apply. ``store``: only that store. ``settings``:
    ``asyncz.dashboard.*`` values that win over the configuration (``token=...``,
    ``read_only=True``).

    Raises :class:`~asyncz.exceptions.ConfigurationError` naming the key for a bad value,
    or when no auth is configured (``asyncz.dashboard.token``, or ``username`` and
    ``password``) and ``disable_auth`` is not set.
    """
    from asyncz.exceptions import ConfigurationError
    from asyncz.settings import load_settings

    if scheduler is not None and not settings:
        dashboard_settings = scheduler.settings.dashboard
    elif scheduler is not None:
        base = scheduler.settings.dashboard.model_dump(exclude_unset=True)
        dashboard_settings = load_settings(dashboard={**base, **settings}).dashboard
    else:
        overrides: dict[str, Any] = {"dashboard": settings} if settings else {}
        dashboard_settings = load_settings(config_file=config_file, **overrides).dashboard
    if not dashboard_settings.auth_configured and not dashboard_settings.disable_auth:
        raise ConfigurationError(
            [
                (
                    "asyncz.dashboard.token",
                    "the dashboard needs auth: set a token (16+ characters; "
                    "ASYNCZ_DASHBOARD__TOKEN), or username and password; or disable_auth = "
                    "true to serve only this machine",
                )
            ]
        )
    return Dashboard(dashboard_settings, scheduler=scheduler, config_file=config_file, store=store)


def serve(
    dashboard: Dashboard, host: str = "127.0.0.1", port: int = 8765, log_level: str = "info"
) -> None:
    """Serve ``dashboard`` with uvicorn until interrupted (``asyncz dashboard``).

    ``ValueError`` when its auth is disabled and ``host`` is not a loopback address."""
    import uvicorn

    from asyncz_dashboard._security import is_loopback

    if dashboard.guard.disabled and not is_loopback(host):
        raise ValueError(
            "asyncz.dashboard.disable_auth: a dashboard without auth binds only to this "
            f"machine (--host 127.0.0.1), not {host!r}"
        )

    config = uvicorn.Config(
        dashboard,
        host=host,
        port=port,
        log_level=log_level,
        lifespan="on",
        proxy_headers=False,
        server_header=False,
    )
    uvicorn.Server(config).run()

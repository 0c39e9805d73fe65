"""The dashboard: an ASGI application over a deployment's stores.

Data path: a request -> :class:`~asyncz_dashboard._http.Request` -> auth and session
(:class:`~asyncz_dashboard._security.Guard`; 401 without) -> a route of
:data:`Dashboard.routes` -> data from the scheduler's public API (:mod:`._data`) -> a Jinja
template (autoescaped) or JSON -> a response with the security headers. A POST is an action:
it needs the session's CSRF token (403 without), is logged with who did it, and redirects
(303) back to a page.

The stores are opened as an operator (:func:`asyncz.operator.open_operator`: nothing runs or
is deleted by itself, no node is registered) at the first request or at lifespan startup,
and closed at lifespan shutdown or :meth:`Dashboard.aclose`. Given ``scheduler=``, the
dashboard uses that running scheduler instead and leaves its life to its owner.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2

from asyncz.exceptions import StoreUnavailableError, TaskLookupError
from asyncz.settings.models import DashboardSettings
from asyncz.timeutil import utc
from asyncz_dashboard import _data
from asyncz_dashboard._actions import ACTIONS, FLASH, ActionError
from asyncz_dashboard._http import FormTooLarge, Receive, Request, Response, Scope, Send
from asyncz_dashboard._security import Guard
from asyncz_dashboard._timeline import layout

__all__ = ["Dashboard"]

logger = logging.getLogger("asyncz.dashboard")

STATIC = {"dashboard.css": "text/css; charset=utf-8", "dashboard.js": "text/javascript"}
PAGES = (
    ("tasks", "Tasks"),
    ("runs", "Runs"),
    ("timeline", "Timeline"),
    ("nodes", "Nodes"),
    ("problems", "Problems"),
)

Handler = Callable[[Request], Awaitable[Response]]


def _when(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone(utc).isoformat(sep=" ", timespec="seconds").replace("+00:00", "")


def _query(**values: Any) -> str:
    kept = {k: v for k, v in values.items() if v not in (None, "")}
    return "?" + urlencode(kept) if kept else ""


class Dashboard:
    """The ASGI application (build it with :func:`asyncz_dashboard.create_dashboard`)."""

    def __init__(
        self,
        settings: DashboardSettings,
        *,
        scheduler: Any = None,
        config_file: str | Path | None = None,
        store: str | None = None,
    ) -> None:
        self.settings = settings
        self.guard = Guard(settings)
        self.config_file = config_file
        self.store = store
        self._scheduler = scheduler
        self._owned: Any = None  # the open_operator context we entered
        self._lock = asyncio.Lock()
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("asyncz_dashboard", "templates"),
            autoescape=True,  # every template, whatever its name: ids are escaped
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters["when"] = _when
        self.templates.filters["json"] = lambda value: json.dumps(_data.jsonable(value))
        self.templates.globals["pages"] = PAGES
        self.templates.globals["query"] = _query
        self.routes: dict[tuple[str, str], Handler] = {
            ("GET", "/"): self.index,
            ("GET", "/login"): self.login_page,
            ("POST", "/login"): self.login,
            ("POST", "/logout"): self.logout,
            ("GET", "/tasks"): self.tasks_page,
            ("GET", "/task"): self.task_page,
            ("GET", "/runs"): self.runs_page,
            ("GET", "/timeline"): self.timeline_page,
            ("GET", "/nodes"): self.nodes_page,
            ("GET", "/problems"): self.problems_page,
            ("GET", "/api/tasks"): self.api_tasks,
            ("GET", "/api/runs"): self.api_runs,
            ("GET", "/api/nodes"): self.api_nodes,
            ("GET", "/api/health"): self.api_health,
        }
        for name in ACTIONS:
            self.routes[("POST", f"/task/{name}")] = self.action

    # -- the scheduler ---------------------------------------------------------------------
    async def scheduler(self) -> Any:
        """The open scheduler (the stores opened at the first call)."""
        if self._scheduler is not None:
            return self._scheduler
        async with self._lock:
            if self._scheduler is None:
                from asyncz.operator import open_operator

                context = open_operator(self.config_file, store=self.store)
                self._scheduler = await context.__aenter__()
                self._owned = context
        return self._scheduler

    async def aclose(self) -> None:
        """Close the stores the dashboard opened (not a scheduler it was given)."""
        context, self._owned = self._owned, None
        if context is not None:
            self._scheduler = None
            await context.__aexit__(None, None, None)

    # -- ASGI ------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        response = await self.handle(request)
        if request.new_cookie:
            response.headers.append(("set-cookie", request.new_cookie))
        await response.send(send, cache=request.path.startswith("/static/"))

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.scheduler()
                except Exception as exc:  # the pages say so, and retry at each request
                    logger.warning("Dashboard: the stores cannot be opened yet: %s", exc)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def handle(self, request: Request) -> Response:
        if request.path.startswith("/static/"):
            return self.static(request)
        handler = self.routes.get((request.method, request.path))
        if handler is None:
            if any(path == request.path for _, path in self.routes):
                return Response("Method Not Allowed", 405, "text/plain; charset=utf-8")
            return self.page(request, "error.html", 404, message="No such page.")
        authenticated = self.guard.authenticate(request)
        if request.path == "/login":
            return await handler(request)
        if not authenticated:
            return self.unauthorized(request)
        if request.method == "POST":
            try:
                form = await request.form()
            except FormTooLarge:
                return Response("Form too large", 413, "text/plain; charset=utf-8")
            if not self.guard.check_csrf(request, form):
                return self.page(
                    request,
                    "error.html",
                    403,
                    message="Missing or invalid CSRF token: reload the page and try again.",
                )
            request.scope["asyncz.form"] = form
        try:
            return await handler(request)
        except StoreUnavailableError as exc:
            if request.path.startswith("/api/"):
                return Response.json({"error": "store unreachable", "detail": str(exc)}, 503)
            return self.page(request, "error.html", 503, message=f"A store is unreachable: {exc}")

    def unauthorized(self, request: Request) -> Response:
        if self.guard.disabled:
            message = (
                "This dashboard runs without auth: it answers only requests from its own machine."
            )
            if request.path.startswith("/api/"):
                return Response.json({"error": message}, 403)
            return self.page(request, "error.html", 403, message=message)
        scheme = (
            "Basic" if self.guard.username is not None and self.guard.token is None else "Bearer"
        )
        challenge = [("www-authenticate", f'{scheme} realm="asyncz dashboard"')]
        if request.path.startswith("/api/"):
            response = Response.json({"error": "authentication required"}, 401)
        else:
            response = self.page(request, "login.html", 401, next=request.path)
        response.headers.extend(challenge)
        return response

    # -- rendering -------------------------------------------------------------------------
    def page(self, request: Request, template: str, status: int = 200, **context: Any) -> Response:
        html = self.templates.get_template(template).render(
            url=request.url,
            user=request.user,
            csrf=self.guard.csrf_token(request) if request.session_id else "",
            current=request.path.strip("/").split("/")[0],
            read_only=self.settings.read_only,
            flash=FLASH.get(request.query.get("done", "")),
            history_note=_data.history_note(self._scheduler) if self._scheduler else None,
            **context,
        )
        return Response(html, status)

    def static(self, request: Request) -> Response:
        name = request.path.removeprefix("/static/")
        if name not in STATIC:
            return Response("Not Found", 404, "text/plain; charset=utf-8")
        body = files("asyncz_dashboard").joinpath("static").joinpath(name).read_bytes()
        return Response(body, 200, STATIC[name], [("cache-control", "max-age=300")])

    # -- login -----------------------------------------------------------------------------
    async def index(self, request: Request) -> Response:
        return Response.redirect(request.url("/tasks"))

    async def login_page(self, request: Request) -> Response:
        if request.user is not None:
            return Response.redirect(request.url("/tasks"))
        return self.page(request, "login.html", next="/tasks")

    async def login(self, request: Request) -> Response:
        try:
            form = await request.form()
        except FormTooLarge:
            return Response("Form too large", 413, "text/plain; charset=utf-8")
        if not self.guard.check_csrf(request, form):
            return self.page(
                request, "login.html", 403, next="/tasks", error="The form expired: try again."
            )
        user = self.guard.check_credentials(
            token=form.get("token", ""),
            username=form.get("username", ""),
            password=form.get("password", ""),
        )
        if user is None:
            logger.warning("Dashboard: failed login from %s", request.client_host)
            return self.page(request, "login.html", 401, next="/tasks", error="Wrong credentials.")
        self.guard.login(request, user)
        logger.info("Dashboard: %s logged in from %s", user, request.client_host)
        target = form.get("next", "/tasks")
        if not target.startswith("/") or target.startswith("//"):
            target = "/tasks"  # only our own pages: no open redirect
        return Response.redirect(request.url(target))

    async def logout(self, request: Request) -> Response:
        self.guard.logout(request)
        return Response.redirect(request.url("/login"))

    # -- pages -----------------------------------------------------------------------------
    async def tasks_page(self, request: Request) -> Response:
        op = await self.scheduler()
        query = _data.TaskQuery.from_query(request.query, list(op.stores))
        infos = await _data.tasks(op, query)
        return self.page(
            request,
            "tasks.html",
            tasks=infos,
            filters=query,
            states=_data.STATES,
            sort_keys=_data.SORT_KEYS,
            stores=list(op.stores),
            triggers=sorted({i.trigger_alias for i in infos if i.trigger_alias}),
            executors=sorted(getattr(op, "executor_aliases", None) or op.executors),
        )

    async def task_page(
        self, request: Request, error: str | None = None, status: int = 200
    ) -> Response:
        op = await self.scheduler()
        task_id = request.query.get("id") or request.scope.get("asyncz.form", {}).get("id", "")
        store = request.query.get("store") or None
        detail = await _data.task_detail(op, task_id, store if store in op.stores else None)
        if detail is None:
            return self.page(
                request, "error.html", 404, message=f"No task with the id {task_id!r}."
            )
        return self.page(
            request,
            "task.html",
            status,
            error=error,
            history=_data.has_history(op),
            triggers=sorted(_trigger_aliases()),
            **detail,
        )

    async def runs_page(self, request: Request) -> Response:
        op = await self.scheduler()
        outcome = request.query.get("outcome") or None
        task_id = request.query.get("task") or None
        outcomes = _outcomes()
        if outcome not in outcomes:
            outcome = None
        records = await _data.runs(op, task_id, outcome=outcome, limit=_limit(request))
        recent = await _data.runs(op, task_id, limit=500)
        counts = dict.fromkeys(outcomes, 0)
        for record in recent:
            counts[record.outcome] = counts.get(record.outcome, 0) + 1
        return self.page(
            request,
            "runs.html",
            runs=records,
            counts=counts,
            outcome=outcome,
            task_id=task_id,
            history=_data.has_history(op),
        )

    async def timeline_page(self, request: Request) -> Response:
        op = await self.scheduler()
        start, end, rows = await _data.timeline_runs(op)
        return self.page(request, "timeline.html", picture=layout(start, end, rows))

    async def nodes_page(self, request: Request) -> Response:
        op = await self.scheduler()
        return self.page(request, "nodes.html", nodes=await _data.nodes(op))

    async def problems_page(self, request: Request) -> Response:
        op = await self.scheduler()
        return self.page(request, "problems.html", **await _data.problems(op))

    # -- actions ---------------------------------------------------------------------------
    async def action(self, request: Request) -> Response:
        if self.settings.read_only:
            return self.page(request, "error.html", 403, message="This dashboard is read-only.")
        op = await self.scheduler()
        form: dict[str, str] = request.scope["asyncz.form"]
        name = request.path.removeprefix("/task/")
        task_id = form.get("id", "")
        store = form.get("store") or None
        if store is not None and store not in op.stores:
            store = None
        try:
            done, description = await ACTIONS[name](op, task_id, store, form)
        except TaskLookupError:
            return self.page(
                request, "error.html", 404, message=f"No task with the id {task_id!r}."
            )
        except ActionError as exc:
            request.query.update({"id": task_id, "store": store or ""})
            return await self.task_page(request, error=str(exc), status=exc.status)
        logger.info("Dashboard: %s (from %s) %s", request.user, request.client_host, description)
        if name == "delete":
            return Response.redirect(request.url("/tasks" + _query(done=done)))
        return Response.redirect(request.url("/task" + _query(id=task_id, store=store, done=done)))

    # -- JSON API (read-only) --------------------------------------------------------------
    async def api_tasks(self, request: Request) -> Response:
        op = await self.scheduler()
        query = _data.TaskQuery.from_query(request.query, list(op.stores))
        return Response.json({"tasks": _data.jsonable(await _data.tasks(op, query))})

    async def api_runs(self, request: Request) -> Response:
        op = await self.scheduler()
        outcome = request.query.get("outcome") or None
        if outcome is not None and outcome not in _outcomes():
            return Response.json({"error": f"unknown outcome {outcome!r}"}, 400)
        records = await _data.runs(
            op, request.query.get("task") or None, outcome=outcome, limit=_limit(request)
        )
        return Response.json({"history": _data.has_history(op), "runs": _data.jsonable(records)})

    async def api_nodes(self, request: Request) -> Response:
        op = await self.scheduler()
        return Response.json({"nodes": await _data.nodes(op)})

    async def api_health(self, request: Request) -> Response:
        """200 when every store answers and, where tasks are scheduled, a node is alive;
        503 otherwise (for load balancers and monitors)."""
        op = await self.scheduler()
        found = await _data.problems(op)
        alive = [n["identity"] for n in await _data.nodes(op) if n["state"] == "alive"]
        status = "degraded" if found["no_live_node"] else "ok"
        body = {
            "status": status,
            "stores": list(op.stores),
            "nodes_alive": alive,
            "lapsed_nodes": [n["identity"] for n in found["lapsed_nodes"]],
            "unrestorable_tasks": [i.id for i in found["unrestorable"]],
            "missed_runs_24h": len(found["missed_runs"]),
            "scheduled_tasks": found["scheduled_count"],
        }
        return Response.json(body, 200 if status == "ok" else 503)


def _limit(request: Request) -> int:
    text = request.query.get("limit", "100")
    return max(1, min(int(text), 1000)) if text.isdigit() else 100


def _outcomes() -> tuple[str, ...]:
    from asyncz.tasks.runs import OUTCOMES

    return tuple(OUTCOMES)


def _trigger_aliases() -> list[str]:
    from asyncz.registry import registry

    return [alias for alias in registry.providers("trigger") if alias != "shutdown"]

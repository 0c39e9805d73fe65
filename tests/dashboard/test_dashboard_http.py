"""The dashboard over plain HTTP (httpx on the ASGI app, a real SQLite store): auth, CSRF,
escaping, security headers, the actions, the JSON API, settings, and mounting in Starlette."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from dash_helpers import EVIL_ID, TOKEN, client_for, csrf_of, log_in, write_config

from asyncz.exceptions import ConfigurationError
from asyncz.operator import open_operator

PAGES = ["/tasks", "/task?id=alpha", "/runs", "/timeline", "/nodes", "/problems"]
API = ["/api/tasks", "/api/runs", "/api/nodes", "/api/health"]
ACTIONS = ["pause", "resume", "run", "delete", "reschedule"]


async def stored_state(config: Path, task_id: str) -> str:
    async with open_operator(config) as operator:
        info = await operator.get_task_info_async(task_id)
        assert info is not None
        return info.schedule_state.value


# -- auth ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", PAGES + API)
async def test_every_page_and_api_needs_auth(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 401
    assert "realm=" in response.headers["www-authenticate"]
    if path.startswith("/api/"):
        assert response.json() == {"error": "authentication required"}
    else:
        assert 'name="token"' in response.text  # the login form, and nothing of the store
        assert "alpha" not in response.text


async def test_bearer_token_and_wrong_tokens(client: httpx.AsyncClient) -> None:
    ok = await client.get("/api/tasks", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200
    for header in (f"Bearer {TOKEN}x", "Bearer ", f"Token {TOKEN}", "Basic !!!"):
        response = await client.get("/api/tasks", headers={"Authorization": header})
        assert response.status_code == 401, header


async def test_basic_auth(tmp_path: Path) -> None:
    from asyncz.dashboard import create_dashboard

    config = write_config(tmp_path, 'username = "ops"\npassword = "correct horse battery"')
    app = create_dashboard(config_file=config)
    good = base64.b64encode(b"ops:correct horse battery").decode()
    bad = base64.b64encode(b"ops:wrong horse battery!").decode()
    try:
        async with client_for(app) as client:
            response = await client.get("/api/nodes", headers={"Authorization": f"Basic {good}"})
            assert response.status_code == 200
            response = await client.get("/api/nodes", headers={"Authorization": f"Basic {bad}"})
            assert response.status_code == 401
            assert response.headers["www-authenticate"].startswith("Basic ")
            page = await client.get("/login")
            response = await client.post(
                "/login",
                data={"csrf": csrf_of(page.text), "username": "ops",
                      "password": "correct horse battery"},
            )  # fmt: skip
            assert response.status_code == 303
            assert (await client.get("/tasks")).status_code == 200
    finally:
        await app.aclose()


async def test_login_form_session_and_logout(client: httpx.AsyncClient) -> None:
    page = await client.get("/login")
    assert page.status_code == 200
    csrf = csrf_of(page.text)
    # Without the form's CSRF token, and with a wrong token: refused.
    response = await client.post("/login", data={"token": TOKEN})
    assert response.status_code == 403
    response = await client.post("/login", data={"csrf": csrf, "token": "nope" * 5})
    assert response.status_code == 401
    assert "Wrong credentials" in response.text
    anonymous = client.cookies["asyncz_dashboard_session"]
    response = await client.post(
        "/login", data={"csrf": csrf, "token": TOKEN, "next": "https://evil.example/"}
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/tasks"  # no open redirect
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert client.cookies["asyncz_dashboard_session"] != anonymous  # a new session id
    tasks = await client.get("/tasks")
    assert tasks.status_code == 200
    assert "alpha" in tasks.text
    # A forged cookie (payload changed, signature kept) is no session.
    _, signature = client.cookies["asyncz_dashboard_session"].split(".")
    forged = base64.urlsafe_b64encode(b'{"sid":"x","user":"token","exp":9999999999}').decode()
    async with client_for(client._transport.app) as other:  # type: ignore[attr-defined]
        other.cookies.set("asyncz_dashboard_session", f"{forged.rstrip('=')}.{signature}")
        assert (await other.get("/tasks")).status_code == 401
    response = await client.post("/logout", data={"csrf": csrf_of(tasks.text)})
    assert response.status_code == 303
    assert (await client.get("/tasks")).status_code == 401


# -- CSRF ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("action", ACTIONS)
async def test_actions_need_post_and_the_csrf_token(
    client: httpx.AsyncClient, config: Path, action: str
) -> None:
    csrf = await log_in(client)
    form = {"id": "alpha", "trigger": "interval", "options": "minutes=7"}
    response = await client.post(f"/task/{action}", data=form)
    assert response.status_code == 403
    assert "CSRF" in response.text
    response = await client.post(f"/task/{action}", data={**form, "csrf": csrf[:-2] + "xx"})
    assert response.status_code == 403
    assert (await client.get(f"/task/{action}?id=alpha")).status_code == 405
    assert await stored_state(config, "alpha") == "scheduled"  # nothing changed
    # Another session's token does not count either.
    async with client_for(client._transport.app) as other:  # type: ignore[attr-defined]
        await log_in(other)
        response = await other.post(f"/task/{action}", data={**form, "csrf": csrf})
        assert response.status_code == 403


async def test_pause_resume_reschedule_delete(client: httpx.AsyncClient, config: Path) -> None:
    csrf = await log_in(client)
    response = await client.post(
        "/task/pause", data={"csrf": csrf, "id": "alpha", "note": "db migration"}
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/task?id=alpha&done=paused"
    page = await client.get(response.headers["location"])
    assert "Task paused" in page.text
    assert "db migration" in page.text
    assert await stored_state(config, "alpha") == "paused"

    response = await client.post("/task/resume", data={"csrf": csrf, "id": "alpha"})
    assert response.status_code == 303
    assert await stored_state(config, "alpha") == "scheduled"

    bad = await client.post(
        "/task/reschedule",
        data={"csrf": csrf, "id": "alpha", "trigger": "interval", "options": "minuts=5"},
    )
    assert bad.status_code == 400
    assert "minuts" in bad.text and "minutes" in bad.text
    response = await client.post(
        "/task/reschedule",
        data={"csrf": csrf, "id": "alpha", "trigger": "cron", "options": "hour=7 minute=0"},
    )
    assert response.status_code == 303
    tasks = (await client.get("/api/tasks?q=alpha")).json()["tasks"]
    assert tasks[0]["trigger_description"] == "cron[hour='7', minute='0']"

    response = await client.post("/task/delete", data={"csrf": csrf, "id": "alpha"})
    assert response.status_code == 303
    assert response.headers["location"] == "/tasks?done=deleted"
    assert (await client.get("/task?id=alpha")).status_code == 404
    missing = await client.post("/task/pause", data={"csrf": csrf, "id": "alpha"})
    assert missing.status_code == 404


async def test_run_is_refused_without_a_live_node(client: httpx.AsyncClient) -> None:
    csrf = await log_in(client)
    response = await client.post("/task/run", data={"csrf": csrf, "id": "alpha"})
    assert response.status_code == 409
    assert "No node is alive" in response.text


async def test_read_only_dashboard_offers_and_takes_no_action(config: Path) -> None:
    from asyncz.dashboard import create_dashboard

    app = create_dashboard(config_file=config, read_only=True)
    try:
        async with client_for(app) as client:
            csrf = await log_in(client)
            page = await client.get("/task?id=alpha")
            assert "/task/pause" not in page.text
            response = await client.post("/task/pause", data={"csrf": csrf, "id": "alpha"})
            assert response.status_code == 403
    finally:
        await app.aclose()
    assert await stored_state(config, "alpha") == "scheduled"


# -- escaping and headers ----------------------------------------------------------------------------
async def test_ids_and_query_values_are_escaped(client: httpx.AsyncClient) -> None:
    await log_in(client)
    for path in (
        "/tasks",
        "/timeline",
        f"/task?id={httpx.URL('', params={'x': EVIL_ID}).query.decode()[2:]}",
    ):
        response = await client.get(path)
        assert response.status_code == 200, path
        assert EVIL_ID not in response.text, path
        assert "&lt;script&gt;alert(&#34;id&#34;)&lt;/script&gt;" in response.text, path
    response = await client.get("/tasks", params={"q": '"><img src=x onerror=alert(1)>'})
    assert "<img src=x" not in response.text
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in response.text
    response = await client.get("/task", params={"id": "<b>nothing</b>"})
    assert response.status_code == 404
    assert "<b>nothing" not in response.text


@pytest.mark.parametrize(
    "path", ["/login", "/tasks", "/api/tasks", "/static/dashboard.css", "/nope"]
)
async def test_security_headers_on_every_response(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    headers = response.headers
    csp = headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"


async def test_static_files_are_public_and_only_ours(client: httpx.AsyncClient) -> None:
    response = await client.get("/static/dashboard.css")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")
    assert (await client.get("/static/dashboard.js")).status_code == 200
    for path in ("/static/../app.py", "/static/templates/base.html", "/static/x.css"):
        assert (await client.get(path)).status_code == 404


async def test_pages_have_no_inline_script_or_style(client: httpx.AsyncClient) -> None:
    await log_in(client)
    for path in PAGES:
        html = (await client.get(path)).text
        assert "<script>" not in html and " style=" not in html and "<style" not in html, path
        assert " on" + "click=" not in html, path


# -- the JSON API ------------------------------------------------------------------------------------
async def test_json_api(client: httpx.AsyncClient) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    data = (await client.get("/api/tasks", headers=auth)).json()
    assert sorted(t["id"] for t in data["tasks"]) == sorted(["alpha", "beta", EVIL_ID])
    alpha = next(t for t in data["tasks"] if t["id"] == "alpha")
    assert alpha["schedule_state"] == "scheduled"
    assert alpha["trigger_description"] == "interval[0:05:00]"
    assert alpha["next_run_time"].endswith("+00:00")
    sorted_ids = [
        t["id"] for t in (await client.get("/api/tasks?sort=-id", headers=auth)).json()["tasks"]
    ]
    assert sorted_ids == sorted(sorted_ids, reverse=True)
    only = (await client.get("/api/tasks?trigger=cron", headers=auth)).json()["tasks"]
    assert [t["id"] for t in only] == ["beta"]
    assert (await client.get("/api/tasks?state=paused", headers=auth)).json() == {"tasks": []}

    runs = (await client.get("/api/runs", headers=auth)).json()
    assert runs["runs"] == []
    assert (await client.get("/api/runs?outcome=bogus", headers=auth)).status_code == 400
    assert (await client.get("/api/nodes", headers=auth)).json() == {"nodes": []}

    health = await client.get("/api/health", headers=auth)
    assert health.status_code == 503  # three scheduled tasks, no node alive to run them
    assert health.json()["status"] == "degraded"
    assert health.json()["scheduled_tasks"] == 3
    assert (await client.post("/api/tasks", headers=auth)).status_code == 405


async def test_pages_render(client: httpx.AsyncClient) -> None:
    await log_in(client)
    for path in PAGES:
        response = await client.get(path)
        assert response.status_code == 200, (path, response.text)
    timeline = (await client.get("/timeline")).text
    assert "<svg" in timeline
    assert timeline.count('class="run"') >= 24 * 12  # alpha every 5 minutes
    problems = (await client.get("/problems")).text
    assert "No node is alive" in problems
    task = (await client.get("/task?id=beta")).text
    assert task.count("<li>") == 10  # the next 10 runs
    assert "06:30:00" in task


# -- settings ----------------------------------------------------------------------------------------
def test_auth_is_required_by_configuration(tmp_path: Path) -> None:
    from asyncz.dashboard import create_dashboard

    with pytest.raises(ConfigurationError) as info:
        create_dashboard(config_file=write_config(tmp_path, ""))
    assert info.value.keys == ["asyncz.dashboard.token"]
    with pytest.raises(ConfigurationError) as info:
        create_dashboard(config_file=write_config(tmp_path, 'token = "short"'))
    assert info.value.keys == ["asyncz.dashboard.token"]
    assert "16 characters" in str(info.value)
    with pytest.raises(ConfigurationError) as info:
        create_dashboard(config_file=write_config(tmp_path, 'username = "ops"'))
    assert "username and password go together" in str(info.value)
    with pytest.raises(ConfigurationError) as info:
        create_dashboard(config_file=write_config(tmp_path, 'tokn = "x"'))
    assert "asyncz.dashboard.tokn: unknown key; did you mean 'token'?" in str(info.value)


async def test_disabled_auth_serves_only_this_machine(config: Path) -> None:
    from asyncz.dashboard import create_dashboard

    app = create_dashboard(config_file=config, token=None, disable_auth=True)
    try:
        async with client_for(app, host="127.0.0.1") as local:
            assert (await local.get("/tasks")).status_code == 200
            assert (await local.get("/api/tasks")).status_code == 200
        async with client_for(app, host="10.1.2.3") as remote:
            assert (await remote.get("/tasks")).status_code == 403
            assert (await remote.get("/api/tasks")).status_code == 403
    finally:
        await app.aclose()


def test_cli_refuses_a_dashboard_without_auth_or_exposed_without_auth(tmp_path: Path) -> None:
    from asyncz.cli import main

    config = write_config(tmp_path, "")
    result = CliRunner().invoke(main, ["dashboard", "--config", str(config)])
    assert result.exit_code == 1
    assert "asyncz.dashboard.token" in result.output
    config = write_config(tmp_path, "disable_auth = true")
    result = CliRunner().invoke(main, ["dashboard", "--config", str(config), "--host", "0.0.0.0"])
    assert result.exit_code == 1
    assert "binds only to this machine" in result.output


# -- mounting ----------------------------------------------------------------------------------------
async def test_mounts_in_starlette(config: Path) -> None:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount, Route

    from asyncz.dashboard import create_dashboard

    dashboard = create_dashboard(config_file=config)

    async def home(request: object) -> PlainTextResponse:
        return PlainTextResponse("the application")

    app = Starlette(routes=[Route("/", home), Mount("/ops", app=dashboard)])
    try:
        async with client_for(app) as client:
            assert (await client.get("/")).text == "the application"
            refused = await client.get("/ops/tasks")
            assert refused.status_code == 401
            assert "Path=/ops;" in refused.headers["set-cookie"]
            page = await client.get("/ops/login")
            assert 'action="/ops/login"' in page.text
            assert 'href="/ops/static/dashboard.css"' in page.text
            response = await client.post(
                "/ops/login", data={"csrf": csrf_of(page.text), "token": TOKEN, "next": "/tasks"}
            )
            assert response.status_code == 303
            assert response.headers["location"] == "/ops/tasks"
            tasks = await client.get("/ops/tasks")
            assert tasks.status_code == 200
            assert 'href="/ops/task?id=alpha&amp;store=default"' in tasks.text
            response = await client.post(
                "/ops/task/pause", data={"csrf": csrf_of(tasks.text), "id": "beta"}
            )
            assert response.headers["location"] == "/ops/task?id=beta&done=paused"
            paused = (await client.get("/ops/api/tasks?state=paused")).json()["tasks"]
            assert [t["id"] for t in paused] == ["beta"]
            assert (await client.get("/ops/static/dashboard.css")).status_code == 200
    finally:
        await dashboard.aclose()


# -- in the application's own scheduler, with its history -----------------------------------------
async def test_in_the_applications_scheduler_runs_and_history(tmp_path: Path) -> None:
    """``create_dashboard(scheduler)``: the application's running scheduler is a node; "run
    now" runs the task in it, and its history (kept in the store) shows the error and the
    traceback, escaped."""
    from asyncz.dashboard import create_dashboard
    from asyncz.schedulers.asyncio import NativeAsyncIOScheduler

    scheduler = NativeAsyncIOScheduler(config_file=str(write_config(tmp_path)))
    await scheduler.start()
    try:
        await scheduler.add_task_async("dash_helpers:fail", "interval", hours=1, id="boom")
        dashboard = create_dashboard(scheduler)
        async with client_for(dashboard) as client:
            csrf = await log_in(client)
            response = await client.post("/task/run", data={"csrf": csrf, "id": "boom"})
            assert response.status_code == 303
            assert response.headers["location"] == "/task?id=boom&done=ran"
            auth = {"Authorization": f"Bearer {TOKEN}"}
            runs: list[dict[str, object]] = []
            for _ in range(100):
                runs = (await client.get("/api/runs?outcome=error", headers=auth)).json()["runs"]
                if runs:
                    break
                await asyncio.sleep(0.05)
            assert [(r["task_id"], r["source"], r["error_type"]) for r in runs] == [
                ("boom", "manual", "RuntimeError")
            ]
            page = (await client.get("/runs?outcome=error")).text
            assert "RuntimeError: &lt;b&gt;disk&lt;/b&gt; full" in page
            assert 'class="traceback"' in page and "in fail" in page
            assert "<b>disk" not in page
            task_page = (await client.get("/task?id=boom")).text
            assert "RuntimeError" in task_page
            # The SQL store keeps history in its database: no "only this scheduler" notice.
            assert "only this scheduler" not in task_page
            await client.post("/task/pause", data={"csrf": csrf, "id": "boom", "note": "broken"})
            paused = (await client.get("/api/runs?outcome=paused", headers=auth)).json()["runs"]
            assert [(r["task_id"], r["note"]) for r in paused] == [("boom", "broken")]
    finally:
        await scheduler.shutdown()

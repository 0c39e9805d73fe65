"""The operator CLI against a live deployment: a node (``asyncz run``) runs in another process
on a real store (SQLite, Redis, PostgreSQL) while ``asyncz tasks ...`` changes its tasks."""

from __future__ import annotations

import json
import time

import pytest
from cli_helpers import Deployment, one_line_error

from asyncz.testing import wait_until


def ticks_after(deployment: Deployment, moment: float) -> list[float]:
    return [t for t in deployment.ticks() if t > moment]


def test_pause_resume_reschedule_remove_on_a_running_node(deployment: Deployment) -> None:
    # Pause: the node stops running the task within a second of the command's return.
    result = deployment.cli("tasks", "pause", "tick", "--note", "db migration")
    assert result.exit_code == 0, result.output
    paused_at = time.time()
    assert "Task 'tick' paused" in result.output
    time.sleep(2.0)
    late = ticks_after(deployment, paused_at + 1.0)
    assert late == [], f"the node ran tick {len(late)} time(s) more than 1 s after the pause"
    shown = json.loads(deployment.cli("tasks", "show", "tick", "--json").output)
    assert shown["task"]["schedule_state"] == "paused"
    assert shown["task"]["pause_note"] == "db migration"
    assert shown["task"]["paused_at"] is not None
    # The pause is in the history too, written by the CLI's process before it exits.
    runs = json.loads(deployment.cli("runs", "tick", "--outcome", "paused", "--json").output)
    assert [r["note"] for r in runs["runs"]] == ["db migration"]

    # Resume: it runs again, and the note is gone.
    result = deployment.cli("tasks", "resume", "tick")
    assert result.exit_code == 0, result.output
    resumed_at = time.time()
    wait_until(lambda: len(ticks_after(deployment, resumed_at)) >= 2, what="runs after resume")
    shown = json.loads(deployment.cli("tasks", "show", "tick", "--json").output)
    assert shown["task"]["schedule_state"] == "scheduled"
    assert shown["task"]["tags"] == ["asyncz-run"]
    assert shown["task"]["pause_note"] is None

    # Reschedule: a new trigger, which the node follows.
    result = deployment.cli("tasks", "reschedule", "tick", "interval", "seconds=60")
    assert result.exit_code == 0, result.output
    rescheduled_at = time.time()
    listed = json.loads(deployment.cli("tasks", "list", "--json").output)["tasks"]
    assert [t["trigger_description"] for t in listed] == ["interval[0:01:00]"]
    time.sleep(2.0)
    assert ticks_after(deployment, rescheduled_at + 1.0) == []

    # Add a second task from the CLI: the node runs it.
    result = deployment.cli("tasks", "add", "jobs:other", "interval", "seconds=0.25", "--id", "o")
    assert result.exit_code == 0, result.output
    other = deployment.directory / "other.txt"
    wait_until(other.exists, what="the node running the task added from the CLI")

    # Remove: gone from the store; the node stops running it.
    result = deployment.cli("tasks", "remove", "o")
    assert result.exit_code == 0, result.output
    removed_at = time.time()
    time.sleep(1.5)
    assert [t for t in map(float, other.read_text().split()) if t > removed_at + 1.0] == []
    result = deployment.cli("tasks", "show", "o")
    assert result.exit_code == 1
    assert "'o'" in one_line_error(result)


def test_reads_list_show_preview_nodes_doctor(deployment: Deployment) -> None:
    result = deployment.cli("tasks", "list")
    assert result.exit_code == 0, result.output
    header, row = result.output.splitlines()
    assert header.split()[:3] == ["ID", "STATE", "TRIGGER"]
    assert row.split()[:3] == ["tick", "scheduled", "interval[0:00:00.250000]"]

    data = json.loads(deployment.cli("tasks", "list", "--state", "paused", "--json").output)
    assert data == {"tasks": []}
    data = json.loads(deployment.cli("tasks", "list", "--q", "jobs:tick", "--json").output)
    assert [t["id"] for t in data["tasks"]] == ["tick"]

    result = deployment.cli("tasks", "show", "tick")
    assert result.exit_code == 0, result.output
    assert "callable:      jobs:tick" in result.output
    upcoming = result.output.split("next runs:")[1].split("last runs")[0]
    assert upcoming.count("\n  20") == 5  # the next five runs
    assert "success" in result.output.split("last runs:")[1]  # from the run history

    data = json.loads(deployment.cli("preview", "tick", "-n", "10", "--json").output)
    assert len(data["run_times"]) == 10

    result = deployment.cli("nodes", "--json")
    assert result.exit_code == 0, result.output
    nodes = json.loads(result.output)["nodes"]
    coordinated = deployment.backend_is_coordinated()
    if coordinated:
        # The node, alive; the CLI itself never registers.
        assert [(n["identity"], n["state"]) for n in nodes] == [("node-1", "alive")]
    else:
        assert nodes == []  # this store keeps node records in each process's memory

    result = deployment.cli("doctor", "--json")
    report = json.loads(result.output)
    assert result.exit_code == 0, result.output
    assert report["exit_code"] == 0
    checks: dict[str, list[dict[str, str]]] = {}
    for finding in report["findings"]:
        checks.setdefault(finding["check"], []).append(finding)
    assert [f["status"] for f in checks["configuration"]] == ["ok"]
    reachable = checks["store default"][0]
    assert reachable["status"] == "ok"
    assert "round trip" in reachable["detail"]
    if deployment.backend == "redis":
        # The test server runs with save "" and appendonly no: the store warns at start.
        assert any(
            f["status"] == "warning" and "without persistence" in f["detail"]
            for f in checks["store default"]
        )
    if coordinated:
        assert [f["status"] for f in checks["store default node node-1"]] == ["ok"]
    else:
        assert "not coordinated" in checks["store default"][-1]["detail"]


@pytest.mark.usefixtures("deployment")
def test_write_errors_are_one_line_with_exit_code_1(deployment: Deployment) -> None:
    for args, words in [
        (("tasks", "pause", "nope"), "'nope'"),
        (("tasks", "show", "nope"), "'nope'"),
        (("preview", "nope"), "'nope'"),
        (("tasks", "reschedule", "tick", "cron", "minute=61"), "trigger.minute"),
        (("tasks", "reschedule", "tick", "cron", "minuet=5"), "did you mean 'minute'"),
        (("tasks", "add", "jobs:nope", "interval", "seconds=1"), "jobs:nope"),
        (("tasks", "add", "jobs:tick", "interval", "seconds=1", "--id", "tick"), "--replace"),
        (("tasks", "list", "--store", "elsewhere"), "'elsewhere'"),
        (("tasks", "list", "--sort", "colour"), "--sort"),
    ]:
        result = deployment.cli(*args)
        assert result.exit_code == 1, (args, result.output)
        assert words in result.output, (args, result.output)
        if args[-1] != "colour":  # click's usage errors add a usage line
            one_line_error(result)


def test_tasks_run_is_run_by_the_node(deployment: Deployment) -> None:
    import importlib.util

    args = ("tasks", "add", "jobs:other", "interval", "hours=1", "--id", "o")
    assert deployment.cli(*args).exit_code == 0
    before = json.loads(deployment.cli("tasks", "show", "o", "--json").output)["task"]
    result = deployment.cli("tasks", "run", "o", "--wait", "20")
    if importlib.util.find_spec("asyncz.tasks.runs") is None:  # before durable pending runs
        assert result.exit_code == 1
        assert "no pending runs" in one_line_error(result)
        return
    assert result.exit_code == 0, result.output
    assert "Task 'o' " in result.output
    other = deployment.directory / "other.txt"
    wait_until(other.exists, what="the node running the requested run")
    # Its schedule is kept: next run in an hour, as before.
    shown = json.loads(deployment.cli("tasks", "show", "o", "--json").output)
    assert shown["task"]["schedule_state"] == "scheduled"
    assert shown["task"]["next_run_time"] == before["next_run_time"]


def test_tasks_run_without_a_live_node_is_refused(sqlite_deployment: Deployment) -> None:
    d = sqlite_deployment
    assert d.cli("tasks", "add", "jobs:other", "interval", "hours=1", "--id", "o").exit_code == 0
    result = d.cli("tasks", "run", "o")
    assert result.exit_code == 1
    line = one_line_error(result)
    assert "No node is alive" in line or "no pending runs" in line
    assert not (d.directory / "other.txt").exists()

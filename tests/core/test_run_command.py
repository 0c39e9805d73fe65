"""`asyncz run CONFIG`: tasks declared in a file, run, kept across restarts, stopped cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from asyncz.runner import run_config

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "newsletter" / "asyncz.toml"


def write_project(tmp_path: Path, seconds: float = 0.2) -> Path:
    (tmp_path / "myjobs.py").write_text(
        textwrap.dedent(
            """
            import os
            def tick(label):
                with open(os.environ["ASYNCZ_TEST_RUNS_FILE"], "a") as f:
                    f.write(label + "\\n")
                return label
            """
        )
    )
    config = tmp_path / "asyncz.toml"
    config.write_text(
        textwrap.dedent(
            f"""
            timezone = "UTC"
            [tasks.tick]
            fn = "myjobs:tick"
            args = ["t"]
            trigger = {{ type = "interval", seconds = {seconds} }}
            [tasks.nightly]
            fn = "myjobs:tick"
            args = ["n"]
            trigger = {{ type = "cron", hour = 3 }}
            """
        )
    )
    return config


async def test_declared_tasks_run_and_keep_their_schedule_across_restarts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs_file = tmp_path / "runs.txt"
    monkeypatch.setenv("ASYNCZ_TEST_RUNS_FILE", str(runs_file))
    config = write_project(tmp_path)
    data = tmp_path / "data"
    runs = await run_config(config, data_dir=data, duration=0.7)
    assert runs >= 2
    assert runs_file.read_text().splitlines().count("t") == runs

    from asyncz.runner import embedded_store
    from asyncz.schedulers.asyncio import NativeAsyncIOScheduler

    async def stored() -> dict[str, object]:
        scheduler = NativeAsyncIOScheduler(stores={"default": embedded_store(data)})
        await scheduler.start(paused=True)
        try:
            return {i.id: i.next_run_time for i in await scheduler.get_task_infos_async()}
        finally:
            await scheduler.shutdown()

    before = await stored()
    assert set(before) == {"tick", "nightly"}
    assert before["nightly"].hour == 3  # type: ignore[attr-defined]
    # Restart: the same declarations keep the stored schedule (the cron's next run time is
    # the stored one, and the tasks are not re-created).
    await run_config(config, data_dir=data, duration=0.05)
    after = await stored()
    assert after["nightly"] == before["nightly"]


async def test_a_crontab_string_declares_a_cron_task(tmp_path: Path) -> None:
    from asyncz.runner import embedded_store
    from asyncz.schedulers.asyncio import NativeAsyncIOScheduler
    from asyncz.settings import load_settings
    from asyncz.triggers import CronTrigger

    config = tmp_path / "asyncz.toml"
    config.write_text(
        textwrap.dedent(
            """
            timezone = "UTC"
            [tasks.every5]
            fn = "asyncz.testing.functions:noop"
            trigger = { type = "cron", crontab = "*/5 * * * *" }
            """
        )
    )
    await run_config(config, data_dir=tmp_path / "a", duration=0.05)
    # The same declaration as settings (dotted keys), as an app would give it.
    settings = load_settings(
        global_config={
            "asyncz.timezone": "UTC",
            "asyncz.tasks.sunday": {
                "fn": "asyncz.testing.functions:noop",
                "trigger": {"type": "cron", "crontab": "0 9 * * 0"},
            },
        }
    )
    await run_config(config, settings=settings, data_dir=tmp_path / "b", duration=0.05)

    async def stored(data: Path) -> dict[str, tuple[object, object]]:
        scheduler = NativeAsyncIOScheduler(stores={"default": embedded_store(data)})
        await scheduler.start(paused=True)
        try:
            return {
                i.id: (i.next_run_time, scheduler.get_task(i.id).trigger)  # type: ignore[union-attr]
                for i in await scheduler.get_task_infos_async()
            }
        finally:
            await scheduler.shutdown()

    [(when, trigger)] = (await stored(tmp_path / "a")).values()
    assert trigger == CronTrigger.from_crontab("*/5 * * * *")
    assert when.minute % 5 == 0  # type: ignore[attr-defined]
    [(when, trigger)] = (await stored(tmp_path / "b")).values()
    assert trigger == CronTrigger.from_crontab("0 9 * * 0")
    assert (when.weekday(), when.hour) == (6, 9)  # type: ignore[attr-defined]


def test_the_example_project_runs_and_stops_on_sigterm(tmp_path: Path) -> None:
    asyncz = Path(sys.executable).with_name("asyncz")
    process = subprocess.Popen(
        [str(asyncz), "run", str(EXAMPLE), "--data-dir", str(tmp_path / "data")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: list[str] = []
    try:
        # Until the first heartbeat ran (however long the start takes), then SIGTERM.
        deadline = time.monotonic() + 60
        assert process.stdout is not None
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "heartbeat ran" in line:
                break
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=20)
        output = "".join(lines) + rest
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    assert "heartbeat ran" in output
    assert "Scheduler has been shut down" in output


# -- mistakes in the file: one line naming the TOML key, before anything starts ----------------
JOBS = """
def tick(label="x"):
    return label
"""

BAD_TASKS = [
    (
        'trigger = { type = "interval", secnds = 2 }',
        "tasks.b.trigger.secnds: unknown option; did you mean 'seconds'?",
    ),
    ('fn = "errjobs:nope"', "tasks.b.fn: cannot import 'errjobs:nope'"),
    ('trigger = { type = "cron", hour = "25" }', "tasks.b.trigger.hour: '25' is out of range 0-23"),
    ("args = [1, 2, 3]", "tasks.b.args: The arguments of task 'b' do not match"),
    (
        'trigger = { type = "interval", seconds = "2s" }',
        "tasks.b.trigger.seconds: expected a number, not '2s'",
    ),
    ('trigger = { type = "solar" }', "tasks.b.trigger.type: No trigger named 'solar'"),
    ('executor = "nope"', "tasks.b.executor: no executor named 'nope'"),
    ('store = "elsewhere"', "tasks.b.store: no store named 'elsewhere'"),
    (
        'trigger = { type = "interval", seconds = 2, max_instance = 2 }',
        "tasks.b.trigger.max_instance: not an option of the trigger; 'max_instances' is a task",
    ),
]


def project(tmp_path: Path, tasks: str, head: str = 'timezone = "UTC"') -> Path:
    (tmp_path / "errjobs.py").write_text(JOBS)
    config = tmp_path / "asyncz.toml"
    config.write_text(head + "\n" + textwrap.dedent(tasks))
    return config


@pytest.mark.parametrize(
    ("line", "expected"), BAD_TASKS, ids=[e.split(":")[0] for _, e in BAD_TASKS]
)
def test_a_task_level_mistake_is_one_line_naming_the_toml_key(
    tmp_path: Path, line: str, expected: str
) -> None:
    from click.testing import CliRunner

    from asyncz.cli import main

    fn = "" if line.startswith("fn") else 'fn = "errjobs:tick"'
    config = project(tmp_path, f"[tasks.b]\n{fn}\n{line}\n")
    result = CliRunner().invoke(
        main, ["run", str(config), "--data-dir", str(tmp_path / "data"), "--duration", "5"]
    )
    assert result.exit_code == 1, result.output
    assert result.output.startswith(f"Error: Invalid configuration: {expected}"), result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert "Traceback" not in result.output
    # Nothing was started, so nothing was stored.
    assert not (tmp_path / "data" / "tasks").exists() or not any(
        (tmp_path / "data" / "tasks").iterdir()
    )


def test_a_bad_store_url_is_one_line_and_exit_code_1(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from asyncz.cli import main

    head = '[stores.default]\ntype = "redis"\nurl = "rdis:/nonsense"'
    config = project(tmp_path, '[tasks.b]\nfn = "errjobs:tick"\n', head=head)
    result = CliRunner().invoke(main, ["run", str(config), "--duration", "5"])
    assert result.exit_code == 1, result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert "Redis URL" in result.output and "Traceback" not in result.output


async def stored_tasks(data: Path) -> dict[str, object]:
    from asyncz.runner import embedded_store
    from asyncz.schedulers.asyncio import NativeAsyncIOScheduler

    scheduler = NativeAsyncIOScheduler(stores={"default": embedded_store(data)})
    await scheduler.start(paused=True)
    try:
        return {
            i.id: (i.next_run_time, i.trigger_description, i.tags)
            for i in await scheduler.get_task_infos_async()
        }
    finally:
        await scheduler.shutdown()


GOOD = """
[tasks.a]
fn = "errjobs:tick"
trigger = { type = "cron", hour = 3 }
[tasks.b]
fn = "errjobs:tick"
trigger = { type = "cron", hour = 4 }
"""


async def test_a_broken_file_changes_nothing_in_the_store(tmp_path: Path) -> None:
    from asyncz.exceptions import ConfigurationError

    data = tmp_path / "data"
    await run_config(project(tmp_path, GOOD), data_dir=data, duration=0.05)
    before = await stored_tasks(data)
    assert set(before) == {"a", "b"}
    # A new task and a changed one before the broken one: neither is applied.
    broken = """
    [tasks.a]
    fn = "errjobs:tick"
    trigger = { type = "cron", hour = 5 }
    [tasks.new]
    fn = "errjobs:tick"
    trigger = { type = "cron", hour = 6 }
    [tasks.z]
    fn = "errjobs:tick"
    trigger = { type = "cron", hour = "25" }
    """
    with pytest.raises(ConfigurationError) as caught:
        await run_config(project(tmp_path, broken), data_dir=data, duration=0.05)
    assert caught.value.keys == ["tasks.z.trigger.hour"]
    assert await stored_tasks(data) == before


async def test_a_task_no_longer_declared_is_removed_and_others_are_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from asyncz.runner import DECLARED_TAG, embedded_store
    from asyncz.schedulers.asyncio import NativeAsyncIOScheduler

    data = tmp_path / "data"
    await run_config(project(tmp_path, GOOD), data_dir=data, duration=0.05)
    # A task added by other means (an application sharing the store).
    other = NativeAsyncIOScheduler(stores={"default": embedded_store(data)})
    await other.start(paused=True)
    await other.add_task_async("errjobs:tick", "cron", hour=7, id="manual")
    await other.shutdown()
    stored = await stored_tasks(data)
    assert stored["a"][2] == frozenset({DECLARED_TAG})  # type: ignore[index]
    assert stored["manual"][2] == frozenset()  # type: ignore[index]

    only_a = '[tasks.a]\nfn = "errjobs:tick"\ntrigger = { type = "cron", hour = 3 }\n'
    with caplog.at_level("INFO", logger="asyncz.run"):
        await run_config(project(tmp_path, only_a), data_dir=data, duration=0.05)
    after = await stored_tasks(data)
    assert set(after) == {"a", "manual"}
    assert after["a"] == stored["a"]  # kept as it was, schedule included
    assert any("Task b removed" in m and "no longer declares it" in m for m in caplog.messages), (
        caplog.messages
    )

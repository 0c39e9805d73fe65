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
    try:
        time.sleep(3.5)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    assert "heartbeat ran" in output
    assert "Scheduler has been shut down" in output

"""Logging: logger names, ``loggers_class``, and no message formatted while its level is off."""

from __future__ import annotations

import ast
import logging
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from asyncz.executors.pool import ThreadPoolExecutor
from asyncz.schedulers.asyncio import AsyncIOScheduler
from asyncz.schedulers.base import ClassicLogging
from asyncz.stores.memory import MemoryStore

UTC = timezone.utc
SOURCES = Path(__file__).resolve().parents[2]


@pytest.fixture
def recording() -> Iterator[list[str]]:
    sys.path.insert(0, str(Path(__file__).parent))
    try:
        import _lifecycle_logging

        _lifecycle_logging.created.clear()
        yield _lifecycle_logging.created
    finally:
        sys.path.remove(str(Path(__file__).parent))


def wait_until(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.005)


def test_default_logger_names() -> None:
    scheduler = AsyncIOScheduler(
        timezone=UTC,
        stores={"default": MemoryStore(), "other": MemoryStore()},
        executors={"pool": ThreadPoolExecutor()},
    )
    assert isinstance(scheduler.loggers, ClassicLogging)
    assert scheduler.logger.name == "asyncz.schedulers"
    with scheduler:
        assert scheduler.stores["default"].logger.name == "asyncz.stores.default"
        assert scheduler.stores["other"].logger.name == "asyncz.stores.other"
        assert scheduler.executors["default"].logger.name == "asyncz.executors.default"
        assert scheduler.executors["pool"].logger.name == "asyncz.executors.pool"


def test_logger_name_is_appended_to_the_scheduler_namespace() -> None:
    scheduler = AsyncIOScheduler(logger_name="worker-a")
    assert scheduler.logger.name == "asyncz.schedulers.worker-a"
    configured = AsyncIOScheduler(global_config={"asyncz.logger_name": "worker-b"})
    assert configured.logger.name == "asyncz.schedulers.worker-b"


@pytest.mark.parametrize("as_string", [False, True])
def test_loggers_class_replaces_how_loggers_are_made(recording: list[str], as_string: bool) -> None:
    from _lifecycle_logging import RecordingLogging

    spec = "_lifecycle_logging:RecordingLogging" if as_string else RecordingLogging
    scheduler = AsyncIOScheduler(timezone=UTC, loggers_class=spec, logger_name="w")
    assert isinstance(scheduler.loggers, RecordingLogging)
    assert scheduler.logger.name == "custom.asyncz.schedulers.w"
    with scheduler:
        assert scheduler.stores["default"].logger.name == "custom.asyncz.stores.default"
        assert scheduler.executors["default"].logger.name == "custom.asyncz.executors.default"
    assert recording[:1] == ["asyncz.schedulers.w"]
    assert {"asyncz.stores.default", "asyncz.executors.default"} <= set(recording)


def test_the_lifecycle_logs_through_the_scheduler_logger(
    caplog: pytest.LogCaptureFixture,
) -> None:
    scheduler = AsyncIOScheduler(timezone=UTC, logger_name="lc")
    with caplog.at_level(logging.INFO, logger="asyncz"), scheduler:
        pass
    messages = [(r.name, r.getMessage()) for r in caplog.records]
    assert ("asyncz.schedulers.lc", "Scheduler started") in messages
    assert ("asyncz.schedulers.lc", "Scheduler has been shut down") in messages


# -- lazy formatting ----------------------------------------------------------------------------
class Spy:
    """Counts every time something turns it into text."""

    formatted = 0

    def __str__(self) -> str:
        Spy.formatted += 1
        return "spy"

    __repr__ = __str__


class SpyError(Exception):
    def __str__(self) -> str:
        Spy.formatted += 1
        return "spy error"


class SpyListener(Spy):
    def __call__(self, event: object) -> None:
        raise RuntimeError("listener failed")


def fail() -> None:
    raise SpyError


class CountingHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.records += 1
        self.format(record)


def exercise(level: int) -> int:
    """Run a scheduler through starting, a failing task, a failing listener, a missed run and
    shutdown with ``asyncz`` loggers at ``level``; return how often a Spy was formatted."""
    Spy.formatted = 0
    root = logging.getLogger("asyncz")
    handler = CountingHandler()
    old_level, old_propagate = root.level, root.propagate
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
    try:
        # History off: a run's record carries the error message as data (str(exception)),
        # as the TASK_ERROR event carries the traceback; this counts log formatting only.
        scheduler = AsyncIOScheduler(timezone=UTC, global_config={"asyncz.history.enabled": False})
        scheduler.add_listener(SpyListener())
        with scheduler:
            scheduler.add_task(fail, "date", run_at=datetime.now(UTC), id="fails")
            scheduler.add_task(fail, "date", run_at=datetime(2000, 1, 1, tzinfo=UTC), id="late")
            wait_until(lambda: scheduler.get_tasks() == [])
            time.sleep(0.05)
        return Spy.formatted
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        root.propagate = old_propagate


def test_no_message_is_formatted_while_its_level_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    # The TASK_ERROR event carries the traceback text: built for the event, not for a log
    # message, so it is taken out of the count here.
    monkeypatch.setattr("asyncz.executors.base.format_traceback", lambda exc: "traceback")
    assert exercise(logging.CRITICAL + 1) == 0


def test_the_spy_does_see_formatting_when_the_level_is_on() -> None:
    assert exercise(logging.DEBUG) > 0


LOG_METHODS = {"debug", "info", "warning", "warn", "error", "exception", "critical", "log"}


def eager_log_calls(root: Path) -> list[str]:
    """Log calls whose arguments format text before logging decides to emit."""
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in LOG_METHODS
                and "log" in ast.unparse(node.func.value).lower()
            ):
                continue
            for arg in node.args:
                eager = (
                    isinstance(arg, ast.JoinedStr)
                    or (isinstance(arg, ast.BinOp) and isinstance(arg.op, (ast.Mod, ast.Add)))
                    or (
                        isinstance(arg, ast.Call)
                        and (
                            (isinstance(arg.func, ast.Attribute) and arg.func.attr == "format")
                            or (isinstance(arg.func, ast.Name) and arg.func.id in {"str", "repr"})
                        )
                    )
                )
                if eager:
                    found.append(f"{path.relative_to(root)}:{node.lineno}")
    return found


def test_no_log_call_in_the_sources_formats_eagerly() -> None:
    roots = [SOURCES / "asyncz_core" / "src", *(SOURCES / "plugins").glob("*/src")]
    roots += [p / "src" for p in (SOURCES / "asyncz_redis", SOURCES / "asyncz_mongo")]
    found = [hit for root in roots if root.is_dir() for hit in eager_log_calls(root)]
    assert found == []

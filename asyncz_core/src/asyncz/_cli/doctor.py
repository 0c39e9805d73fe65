"""``asyncz doctor``: is this deployment healthy? One finding per check, an exit code by the
worst of them.

Checks, in order: the configuration is valid; every installed plugin imports; then per
store: it can be reached (and how long a round trip takes), other processes can see it (not
a process's memory), it did not lose its data (``store.status()``), it keeps its data over
a restart (what the store warns at start, e.g. Redis without persistence), every stored task
can be restored, and its nodes: one whose heartbeat lapsed, none alive, a clock that runs
ahead or behind.

Severity: ``ok`` and ``warning`` exit 0 (``--strict``: a warning exits 1), ``error`` 1, and a
store that cannot be reached 2.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from asyncz._cli.common import (
    OpCommand,
    emit_json,
    json_option,
    one_line,
    operator_options,
    quiet_logs,
    table,
)

__all__ = ["Finding", "diagnose", "doctor"]

OK, WARNING, ERROR, UNREACHABLE = "ok", "warning", "error", "unreachable"
_RANK = {OK: 0, WARNING: 1, ERROR: 2, UNREACHABLE: 3}

#: A heartbeat written this many seconds after our clock's now: the node's clock is ahead.
SKEW_TOLERANCE = 1.0


@dataclass(frozen=True)
class Finding:
    check: str
    status: str
    detail: str


class _Capture(logging.Handler):
    """The warnings the stores log while they start (e.g. a Redis server without
    persistence)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def exit_code(findings: list[Finding], strict: bool = False) -> int:
    worst = max((_RANK[f.status] for f in findings), default=0)
    if worst >= _RANK[UNREACHABLE]:
        return 2
    if worst >= _RANK[ERROR] or (strict and worst >= _RANK[WARNING]):
        return 1
    return 0


def _check_config(config_file: Path | None) -> tuple[list[Finding], Any]:
    from asyncz.exceptions import ConfigurationError
    from asyncz.settings import load_settings

    try:
        settings = load_settings(config_file=config_file)
    except ConfigurationError as exc:
        return [Finding("configuration", ERROR, one_line(exc))], None
    source = str(settings.config_file) if settings.config_file else "no file, environment only"
    stores = ", ".join(sorted(settings.stores)) or "none"
    if not settings.stores:
        return [Finding("configuration", ERROR, f"{source}: no store is configured")], None
    return [Finding("configuration", OK, f"{source}; stores: {stores}")], settings


def _check_plugins() -> list[Finding]:
    from asyncz.cli import describe_installed

    findings: list[Finding] = []
    count = 0
    for row in describe_installed():
        count += sum(len(aliases) for aliases in row["aliases"].values())
        for error in row["errors"]:
            where = f"{row['name']} {error['group']} {error['name']!r}"
            findings.append(Finding("plugins", ERROR, f"{where}: {error['error']}"))
    if not findings:
        findings.append(Finding("plugins", OK, f"{count} components import"))
    return findings


async def _check_store(config_file: Path | None, alias: str, timeout: float) -> list[Finding]:
    from asyncz.operator import importable_from

    name = f"store {alias}"
    capture = _Capture()
    root = logging.getLogger("asyncz")
    # Held for the whole check, so that the scheduler's log lines (a task it cannot restore)
    # become findings instead of stderr; only the warnings of the start are reported as such.
    root.addHandler(capture)
    importable_from(config_file)
    try:
        return await _check_open_store(config_file, alias, timeout, name, capture)
    finally:
        root.removeHandler(capture)


async def _check_open_store(
    config_file: Path | None, alias: str, timeout: float, name: str, capture: _Capture
) -> list[Finding]:
    from asyncz.exceptions import StoreUnavailableError
    from asyncz.operator import OperatorScheduler, shared
    from asyncz.stores.base import call

    operator = OperatorScheduler(
        config_file=str(config_file) if config_file else None,
        only=[alias],
        store_timeout=timeout,
    )
    store = operator.stores[alias]
    kind = f"{type(store).__name__}" + (f" at {store.address()}" if store.address() else "")
    if not shared(store):
        return [
            Finding(name, ERROR, f"{kind} keeps its tasks in one process's memory: "
                    "nodes do not share it and no operator can see it")
        ]  # fmt: skip
    started = time.perf_counter()
    try:
        await operator.start()
    except StoreUnavailableError as exc:
        return [Finding(name, UNREACHABLE, one_line(exc))]
    except Exception as exc:
        return [Finding(name, ERROR, one_line(exc))]
    connect = time.perf_counter() - started
    at_start = list(capture.records)
    try:
        findings: list[Finding] = []
        rounds = []
        for _ in range(3):
            begin = time.perf_counter()
            await call(store, store.get_next_run_time())
            rounds.append(time.perf_counter() - begin)
        latency = sorted(rounds)[1] * 1000
        findings.append(
            Finding(name, OK, f"{kind}: reachable, round trip {latency:.1f} ms "
                    f"(connect {connect * 1000:.0f} ms)")
        )  # fmt: skip
        status = store.status()
        if status:
            detail = status.get("detail") or status
            findings.append(Finding(name, ERROR, f"lost its data: {detail}"))
        for record in at_start:
            findings.append(Finding(name, WARNING, " ".join(record.getMessage().split())))
        # Reading every task is what finds those that cannot be restored (here: a callable
        # that does not import beside the configuration, as it would not in the app).
        infos = await operator.get_task_infos_async(alias)
        for info in infos:
            if info.reason is not None:
                findings.append(
                    Finding(f"{name} task {info.id}", ERROR, f"cannot be restored: {info.reason}")
                )
        if not store.coordinated:
            findings.append(
                Finding(name, WARNING, "not coordinated: it keeps no node records for other "
                        "processes (nodes cannot be checked), and nodes sharing it may run a "
                        "fire time twice")
            )  # fmt: skip
            return findings
        scheduled = sum(1 for i in infos if i.schedule_state.value == "scheduled")
        findings.extend(_check_nodes(name, await operator.get_nodes_async(alias), scheduled))
        return findings
    finally:
        await operator.shutdown()


def _check_nodes(name: str, found: list[Any], scheduled: int) -> list[Finding]:
    """Liveness and clocks of the nodes, judged against this machine's clock.

    A live node heartbeats every interval (a quarter of its lease by default), stamping the
    record with its own clock; read here at ``now``, its last heartbeat should lie between
    ``now - interval`` and ``now``. A heartbeat stamped after ``now`` means the node's clock
    runs ahead of ours by at least that much (warning above 1 s, error from half the lease:
    its claims would then be misjudged); one older than half the lease while the node still
    counts as alive is late or from a clock behind ours (warning).
    """
    from asyncz.timeutil import utc

    findings: list[Finding] = []
    now = datetime.now(utc)
    alive = 0
    for node in found:
        who = f"{name} node {node.identity}"
        state = node.state_at(now)
        offset = (node.last_heartbeat - now).total_seconds()
        if state == "dead":
            findings.append(
                Finding(who, WARNING, f"heartbeat lapsed: last {-offset:.1f} s ago, lease "
                        f"{node.lease:g} s (crashed, cut off or frozen; {node.host} pid "
                        f"{node.pid})")
            )  # fmt: skip
            continue
        if state != "alive":
            continue
        alive += 1
        if offset > SKEW_TOLERANCE:
            status = ERROR if offset >= node.lease / 2 else WARNING
            findings.append(
                Finding(who, status, f"clock ahead of this machine's by at least {offset:.1f} s "
                        "(its last heartbeat is stamped in the future)")
            )  # fmt: skip
        elif -offset > node.lease / 2:
            findings.append(
                Finding(who, WARNING, f"last heartbeat {-offset:.1f} s ago (lease "
                        f"{node.lease:g} s): late, or its clock is behind this machine's")
            )  # fmt: skip
        else:
            findings.append(
                Finding(who, OK, f"alive, last heartbeat {max(0.0, -offset):.1f} s ago, "
                        f"clock within {SKEW_TOLERANCE:g} s of this machine's")
            )  # fmt: skip
    if not alive and scheduled:
        findings.append(
            Finding(name, WARNING, f"no node is alive: nothing runs its {scheduled} "
                    "scheduled task(s)")
        )  # fmt: skip
    return findings


async def diagnose(config_file: Path | None, store: str | None, timeout: float) -> list[Finding]:
    findings, settings = _check_config(config_file)
    if settings is None:
        return findings
    findings.extend(_check_plugins())
    aliases = [store] if store is not None else sorted(settings.stores)
    for alias in aliases:
        if alias not in settings.stores:
            configured = ", ".join(sorted(settings.stores))
            findings.append(
                Finding(f"store {alias}", ERROR, f"no store named {alias!r}; configured: "
                        f"{configured}")
            )  # fmt: skip
            continue
        try:
            findings.extend(await _check_store(config_file, alias, timeout))
        except Exception as exc:
            findings.append(Finding(f"store {alias}", ERROR, one_line(exc)))
    return findings


@click.command("doctor", cls=OpCommand)
@click.option(
    "--timeout",
    default=5.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds a store may take to answer.",
)
@click.option("--strict", is_flag=True, help="Exit 1 on warnings too.")
@operator_options
@json_option
def doctor(
    timeout: float, strict: bool, config_file: Path | None, store: str | None, as_json: bool
) -> None:
    """Check the configuration, the plugins, each store and its nodes.

    Exit code: 0 healthy (warnings allowed unless --strict), 1 an error, 2 a store that
    cannot be reached.
    """
    with quiet_logs(logging.WARNING):
        findings = asyncio.run(diagnose(config_file, store, timeout))
    code = exit_code(findings, strict)
    if as_json:
        emit_json({"exit_code": code, "findings": findings})
    else:
        table(["CHECK", "STATUS", "DETAIL"], [[f.check, f.status, f.detail] for f in findings])
        counts = {s: sum(1 for f in findings if f.status == s) for s in _RANK}
        plural = {WARNING: "warnings", ERROR: "errors", UNREACHABLE: "unreachable"}
        summary = ", ".join(
            f"{n} {s if n == 1 else plural[s]}" for s, n in counts.items() if n and s != OK
        )
        click.echo(f"{'healthy' if code == 0 and not summary else summary} (exit {code})")
    click.get_current_context().exit(code)

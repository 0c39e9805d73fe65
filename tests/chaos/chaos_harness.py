"""The chaos tests' harness: node processes on one store, and the reading of their runs.

A :class:`Cluster` runs ``node.py`` processes (the setup step once, then the nodes), drives
them through their stdin (``ARM``, ``STOP``), reads their stdout in threads (``READY``,
``CLAIMED n t``, ``DONE``), and kills every process it started when it is closed, whatever
happened. A scenario's instants count from :meth:`Cluster.begin`, the first whole second
after every node is ready: on a busy machine the nodes may take seconds to start, which
must not eat into the scenario (runs due before are caught up, with misfire grace 60 s). :func:`analyse` reads the nodes' run files and
counts runs, duplicate and lost fire times, and the takeover time.
"""

from __future__ import annotations

import json
import math
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
NODE = HERE / "node.py"

TASKS = 100
INTERVAL = 1.0
LEASE = 3.0
#: The bound the issue sets on a takeover after a node dies: lease + 2 s.
TAKEOVER_BOUND = LEASE + 2.0
#: Seconds a node process may take to start (imports, store connection) on a busy machine.
BOOT_TIMEOUT = 60.0
#: A node stops by itself this long after it started, should the test never stop it.
SAFETY_STOP = 180.0


@dataclass
class Node:
    index: int
    process: subprocess.Popen[str]
    out: Path
    err: Path
    lines: queue.Queue[tuple[float, str]] = field(default_factory=queue.Queue)
    seen: list[tuple[float, str]] = field(default_factory=list)

    def wait_line(self, prefix: str, deadline: float) -> tuple[float, str] | None:
        """The first stdout line starting with ``prefix`` not yet consumed, or ``None`` at
        ``deadline`` (epoch seconds) or when the process has ended."""
        while True:
            for item in self.seen:
                if item[1].startswith(prefix):
                    self.seen.remove(item)
                    return item
            left = deadline - time.time()
            if left <= 0:
                return None
            try:
                item = self.lines.get(timeout=min(left, 0.05))
            except queue.Empty:
                if self.process.poll() is not None and self.lines.empty():
                    return None
                continue
            self.seen.append(item)

    def log_tail(self, size: int = 3000) -> str:
        try:
            return self.err.read_text(errors="replace")[-size:]
        except OSError:
            return ""


class Cluster:
    """Node processes sharing the store ``spec`` (a dict for ``--store-json``)."""

    def __init__(
        self,
        directory: Path,
        spec: dict[str, Any],
        prefix: Sequence[str] = (),
        tasks: int = TASKS,
    ) -> None:
        self.directory = directory
        #: Interval tasks the setup adds (``chaos-0`` ...), each due every INTERVAL.
        self.tasks = tasks
        self.directory.mkdir(parents=True, exist_ok=True)
        self.spec = spec
        #: Put before the interpreter (``ip netns exec NAME``), for nodes on another "host".
        self.prefix = list(prefix)
        self.nodes: dict[int, Node] = {}

    def _command(self, spec: dict[str, Any], identity: str, out: Path, *extra: str) -> list[str]:
        return [
            sys.executable,
            "-u",
            str(NODE),
            "--store-json", json.dumps(spec),
            "--identity", identity,
            "--out", str(out),
            "--tasks", str(self.tasks),
            "--interval", str(INTERVAL),
            "--lease", str(LEASE),
            *extra,
        ]  # fmt: skip

    def setup(self, lead: float = 3.0, spec: dict[str, Any] | None = None) -> float:
        """Add the tasks (one process, before any node), first fire time the whole second at
        least ``lead`` seconds from now; returns it (epoch seconds)."""
        start_at = float(math.ceil(time.time() + lead))
        command = self._command(
            spec or self.spec, "setup", self.directory / "setup.runs", "--setup",
            "--start-at", str(start_at),
        )  # fmt: skip
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=BOOT_TIMEOUT, cwd=HERE, check=False
        )
        if done.returncode != 0 or "SETUP DONE" not in done.stdout:
            raise AssertionError(
                f"the setup step failed ({done.returncode}):\n{done.stdout}\n{done.stderr[-4000:]}"
            )
        return start_at

    def start(
        self, index: int, *extra: str, prefix: Sequence[str] | None = None,
        spec: dict[str, Any] | None = None,
    ) -> Node:  # fmt: skip
        """Start node ``index``; it runs until :meth:`stop` (or SAFETY_STOP seconds)."""
        out = self.directory / f"node-{index}.runs"
        err = self.directory / f"node-{index}.log"
        until = time.time() + SAFETY_STOP
        command = [
            *(self.prefix if prefix is None else prefix),
            *self._command(
                spec or self.spec, str(index), out, "--until", str(until), "--control-stdin",
                *extra,
            ),
        ]  # fmt: skip
        with err.open("w") as stderr:
            process = subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=stderr,
                stdin=subprocess.PIPE,
                text=True,
                cwd=HERE,
                start_new_session=True,
            )
        node = Node(index, process, out, err)
        self.nodes[index] = node

        def read() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                node.lines.put((time.time(), line.strip()))

        threading.Thread(target=read, name=f"chaos-node-{index}", daemon=True).start()
        return node

    def begin(self, start_at: float) -> float:
        """Wait until every node is ready; the scenario's time zero: the first whole second
        after that (and not before the first fire time ``start_at``)."""
        deadline = time.time() + BOOT_TIMEOUT
        for node in self.nodes.values():
            if node.wait_line("READY", deadline) is None:
                raise AssertionError(
                    f"node {node.index} did not start (exit {node.process.poll()}):\n"
                    f"{node.log_tail()}"
                )
        return max(start_at, float(math.ceil(time.time())))

    def send(self, index: int, command: str) -> None:
        """A command line (``ARM``, ``STOP``) on node ``index``'s stdin."""
        stdin = self.nodes[index].process.stdin
        assert stdin is not None
        stdin.write(command + "\n")
        stdin.flush()

    def stop(self) -> None:
        """Stop every live node gracefully and wait for them to end."""
        for index, node in self.nodes.items():
            if node.process.poll() is None:
                try:
                    self.send(index, "STOP")
                except (BrokenPipeError, OSError):
                    pass
        for node in self.nodes.values():
            try:
                node.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                raise AssertionError(
                    f"node {node.index} did not stop within 30 s:\n{node.log_tail()}"
                ) from None

    def kill(self, index: int) -> float:
        """SIGKILL node ``index``; returns the instant (epoch seconds)."""
        process = self.nodes[index].process
        process.send_signal(signal.SIGKILL)
        when = time.time()
        process.wait(timeout=10)
        return when

    def close(self) -> None:
        """Kill every process still running (the node and its session), always."""
        for node in self.nodes.values():
            process = node.process
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except OSError:
                    process.kill()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            for stream in (process.stdin, process.stdout):
                if stream is not None:
                    try:
                        stream.close()
                    except OSError:
                        pass

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def diagnostics(self) -> str:
        parts = []
        for node in self.nodes.values():
            events = Path(str(node.out) + ".events")
            extra = events.read_text()[-1500:] if events.exists() else ""
            parts.append(f"--- node {node.index} log:\n{node.log_tail()}\n--- events:\n{extra}")
        return "\n".join(parts)


def sleep_until(instant: float) -> None:
    time.sleep(max(0.0, instant - time.time()))


# -- reading the runs -----------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    task: str
    fire: float
    node: str
    wall: float


def read_runs(paths: Iterable[Path]) -> list[Run]:
    runs = []
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) != 4:
                continue  # a node killed mid-write leaves at most a partial last line
            runs.append(Run(parts[0], round(float(parts[1]), 3), parts[2], float(parts[3])))
    return runs


@dataclass
class Figures:
    store: str
    scenario: str
    runs: int
    duplicates: int
    lost: int
    takeover_s: float | None = None
    #: Runs the killed node had submitted but not finished (at most once for runs in flight;
    #: not counted in ``lost``).
    in_flight: int = 0
    notes: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        takeover = "-" if self.takeover_s is None else f"{self.takeover_s:.2f}"
        return (
            f"chaos {self.store:<10} {self.scenario:<16} runs={self.runs:<5} "
            f"duplicates={self.duplicates:<4} lost={self.lost:<4} in_flight={self.in_flight:<4} "
            f"takeover_s={takeover}"
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Analysis:
    runs: list[Run]
    duplicates: list[tuple[tuple[str, float], int]]
    lost: list[tuple[str, float]]
    expected: int

    def by_node(self) -> Counter[str]:
        return Counter(run.node for run in self.runs)


def expected_fire_times(start_at: float, last: float) -> list[float]:
    """The fire times from ``start_at`` up to ``last`` (inclusive), every INTERVAL."""
    count = math.floor((last - start_at) / INTERVAL + 1e-9) + 1
    return [round(start_at + k * INTERVAL, 3) for k in range(max(0, count))]


def analyse(
    paths: Iterable[Path], start_at: float, window_end: float, tasks: int = TASKS
) -> Analysis:
    """Duplicates: (task, fire time) pairs run more than once, anywhere. Lost: pairs of the
    ``tasks`` tasks with a fire time in [start_at, window_end] that no node ran."""
    runs = read_runs(paths)
    counts = Counter((run.task, run.fire) for run in runs)
    duplicates = sorted((key, n) for key, n in counts.items() if n > 1)
    fires = expected_fire_times(start_at, window_end)
    lost = [
        (f"chaos-{i}", fire)
        for i in range(tasks)
        for fire in fires
        if (f"chaos-{i}", fire) not in counts
    ]
    return Analysis(runs, duplicates, lost, tasks * len(fires))


def submitted_pairs(node: Node) -> set[tuple[str, float]]:
    """The (task, fire time) pairs ``node`` handed to its executor (its ``.submitted`` file)."""
    return {(run.task, run.fire) for run in read_runs([Path(str(node.out) + ".submitted")])}


def describe(analysis: Analysis, start_at: float, limit: int = 10) -> str:
    """Enough to understand a failure: duplicates and lost pairs (relative fire times)."""
    rel = lambda t: f"{t - start_at:+.3f}"  # noqa: E731
    dups = ", ".join(f"{task}@{rel(fire)} x{n}" for (task, fire), n in analysis.duplicates[:limit])
    lost = ", ".join(f"{task}@{rel(fire)}" for task, fire in analysis.lost[:limit])
    lost_fires = Counter(rel(fire) for _, fire in analysis.lost)
    return (
        f"runs by node: {dict(analysis.by_node())}; duplicates ({len(analysis.duplicates)}): "
        f"{dups}; lost ({len(analysis.lost)}): {lost}; lost per fire time: {dict(lost_fires)}"
    )


def record_figures(path: Path, figures: Figures) -> None:
    """Append ``figures`` to the JSON-lines file ``path`` (and print its line)."""
    print(figures.line())
    with path.open("a") as handle:
        handle.write(json.dumps(figures.as_dict()) + "\n")

"""Several scheduler nodes on one store (issue 16): asyncz on Redis and PostgreSQL, and
APScheduler 4.0.0a6 on PostgreSQL, each node a process of its own.

    python benchmarks/bench_nodes.py            full run (about 10 minutes)
    python benchmarks/bench_nodes.py --quick    smoke run: fewer tasks, shorter windows
    python benchmarks/bench_nodes.py --only burst,kill --stores redis
    nox -s bench                                 runs it after benchmarks/run.py

Scenarios (every one bounded in time; every node and server is stopped at the end):

* ``burst``: 10,000 date tasks (APScheduler 4: 500, see APS4_BURST_N) due at one instant T, added (in bulk) before the nodes start;
  1, 2 and 3 nodes run them. Fires/s = tasks / (last run - T); runs, duplicates, lost;
  lateness p50/p99 (run - T); CPU-seconds of each node from T until all ran.
* ``steady``: 3 nodes, 100 interval tasks every second (all due at the same instants), lease
  3 s, for a window of S seconds: runs, duplicates and lost fire times in the window,
  lateness p50/p99, CPU-seconds per node.
* ``kill``: the same, and one node SIGKILLs itself inside its claim window: the first node
  whose claiming store call returns tasks after ``--kill-at`` seconds, right after the call
  returned and before anything was written back (asyncz: ``acquire_due_tasks``;
  APScheduler 4: ``acquire_schedules``). The tasks it held are written to a file first;
  takeover = how late their fire times ran on the other nodes (within lease + a little:
  asyncz's bound). The run continues for lease + 6 s after the window.
* ``round-trips``: 1 node, 100 tasks every second, the default lease (10 s), store calls and backend round trips
  counted in the node (store methods wrapped on the instance; Redis: commands/pipelines sent
  by redis-py; SQL: statements, BEGIN, COMMIT from SQLAlchemy's engine events), for this
  tree (coordinated stores: acquire + release) and for commit 84fdcc2 (before coordination:
  get_due_tasks + update_tasks), checked out into a temporary worktree.

Results: ``benchmarks/results/nodes.json`` and the "Several nodes" section of
``docs/benchmarks.md``. The servers: ``redis-server`` and a throw-away PostgreSQL cluster
(``initdb``/``pg_ctl``), started here as ``benchmarks/run.py`` starts them; each run gets a
flushed Redis database or a fresh PostgreSQL database.
"""

# ruff: noqa: RUF001  (typographic signs in the Markdown it writes)
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import importlib
import json
import math
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
PEERS_DIR = ROOT / ".nox" / "bench-peers"
APS4 = "apscheduler-4.0.0a6"
OLD_COMMIT = "84fdcc2"
ADAPTERS = {"asyncz": "adapters.nodes_asyncz", APS4: "adapters.nodes_apscheduler4"}
SECTION = "## Several nodes"
#: seconds APScheduler 4 takes to load one schedule (its lead time is sized on it)
APS4_LOAD_S = 0.015
#: APScheduler 4's burst size: 10,000 would take about 150 s to load and, at its 50-100
#: fires/s on PostgreSQL, more than the 120 s a burst may run, per row
APS4_BURST_N = 500

# ========================================================================== node process


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Hooks:
    """What a node process tells the harness: runs (a line each, appended at once, so that
    a SIGKILL loses none), readiness, claims (and the planned self-SIGKILL), statistics."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.fd = os.open(args.record, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.die_after = args.die_after if args.die_after else math.inf
        self.held = args.held
        self.identity = args.identity
        self.stopping = asyncio.Event()
        self.extra: dict[str, Any] = {}
        self.counters: Any = dict
        self.at_t0: tuple[float, Any] | None = None
        self.at_end: tuple[float, Any] | None = None

    def record(self, task_id: str, scheduled: float, ran: float) -> None:
        os.write(self.fd, f"{task_id}\t{scheduled:.6f}\t{ran:.6f}\n".encode())

    def claimed(self, held: list[tuple[str, float]]) -> None:
        now = time.time()
        if now < self.die_after:
            return
        try:  # the first node to claim after the instant is the one killed
            fd = os.open(self.held, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            self.die_after = math.inf
            return
        os.write(fd, json.dumps({"killed_at": now, "node": self.identity, "held": held}).encode())
        os.close(fd)
        os.kill(os.getpid(), signal.SIGKILL)  # inside the claim window, on purpose

    def ready(self) -> None:
        print(json.dumps({"ready": time.time()}), flush=True)

    def stop_counting(self) -> None:
        self.at_end = (_cpu(), self.counters())


async def node_main(args: argparse.Namespace) -> None:
    adapter = importlib.import_module(ADAPTERS[args.lib])
    hooks = Hooks(args)
    adapter.HOOKS = hooks
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, hooks.stopping.set)

    async def snapshot_at_t0() -> None:
        await asyncio.sleep(max(0.0, args.t0 - time.time()))
        hooks.at_t0 = (_cpu(), hooks.counters())

    snap = asyncio.ensure_future(snapshot_at_t0())
    if args.lib == "asyncz":
        await adapter.node(args.store, args.url, args.identity, args.lease, args.count)
    else:
        await adapter.node(args.url, args.identity, args.lease)
    snap.cancel()
    if hooks.at_end is None:
        hooks.stop_counting()
    start = hooks.at_t0 or (0.0, {})
    end = hooks.at_end or (_cpu(), {})
    stats: dict[str, Any] = {"cpu_window": end[0] - start[0], "cpu_total": _cpu(), **hooks.extra}
    for key in ("calls", "round_trips"):
        before, after = start[1].get(key, {}), end[1].get(key, {})
        if after:
            stats[key] = {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}
    print(json.dumps({"stats": stats}), flush=True)


async def load_main(args: argparse.Namespace) -> None:
    adapter = importlib.import_module(ADAPTERS[args.lib])
    began = time.time()
    if args.lib == "asyncz":
        await adapter.load(args.store, args.url, args.scenario, args.n, args.t0)
    else:
        await adapter.load(args.url, args.scenario, args.n, args.t0)
    print(json.dumps({"loaded": args.n, "seconds": time.time() - began,
                      "version": adapter.version()}), flush=True)  # fmt: skip


# ========================================================================== the harness


def _python(lib: str, override: dict[str, str]) -> str:
    if lib in override:
        return override[lib]
    if lib == "asyncz":
        return sys.executable
    return str(PEERS_DIR / lib / "bin" / "python")


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Harness:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.pythons = dict(x.partition("=")[::2] for x in args.python)
        self.servers: Any = None
        self.old_tree: Path | None = None
        self.counter = 0

    # -- stores ----------------------------------------------------------------------------
    def fresh(self, kind: str) -> str:
        """An empty store: Redis flushed, or a new PostgreSQL database."""
        url: str = self.servers.urls[kind]
        if kind == "redis":
            import redis

            client = redis.Redis.from_url(url)
            client.flushall()
            client.close()
            return url
        self.counter += 1
        name = f"bench_nodes_{os.getpid()}_{self.counter}"
        port = url.rsplit(":", 1)[1].split("/")[0]
        psql = os.path.join(self.servers.pg_bin, "psql")
        if not os.path.exists(psql):
            psql = shutil.which("psql") or psql
        subprocess.run([psql, "-h", "127.0.0.1", "-p", port, "-U", "postgres", "-q", "-c",
                        f"CREATE DATABASE {name}"], check=True, capture_output=True, timeout=60)  # fmt: skip
        return url.rsplit("/", 1)[0] + "/" + name

    def old_pythonpath(self) -> str:
        if self.old_tree is None:
            tree = Path(tempfile.mkdtemp(prefix="asyncz-84fdcc2-"))
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree),
                            OLD_COMMIT], check=True, capture_output=True, timeout=120)  # fmt: skip
            self.old_tree = tree
        t = self.old_tree
        return os.pathsep.join(str(t / p) for p in ("asyncz_core/src", "asyncz_redis/src",
                                                    "plugins/asyncz_sqlalchemy/src"))  # fmt: skip

    def close(self) -> None:
        if self.old_tree is not None:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                            str(self.old_tree)], capture_output=True, timeout=120)  # fmt: skip

    # -- one run -----------------------------------------------------------------------------
    def run(
        self, lib: str, kind: str, scenario: str, nodes: int, n: int, *, window: float = 0,
        kill_at: float | None = None, count: bool = False, old: bool = False,
        lease: float | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        lease = lease or self.args.lease
        # APScheduler 4 loads a schedule in about 15 ms (add_schedule through the data store,
        # measured on this machine) after a few seconds of set-up (schema, 100 task
        # definitions): its nodes need that long before the first due instant.
        lead = self.args.lead if lib == "asyncz" else self.args.lead + 4 + n * APS4_LOAD_S
        for _attempt in range(2):
            result = self._run_once(lib, kind, scenario, nodes, n, window, kill_at, count, old,
                                    lease, lead)  # fmt: skip
            if result.get("error") or result.get("started_in_time", True):
                break
            lead *= 2  # the nodes were not all up before the first due instant: once more
        if "error" in result:
            result.update(lib=lib, store=kind, scenario=scenario, nodes=nodes, n=n)
        label = f"{lib}{' @' + OLD_COMMIT if old else ''} {kind} {scenario} x{nodes}"
        brief = result.get("error") or {
            k: result[k] for k in ("runs", "duplicates", "lost", "fires_per_s", "takeover_s",
                                   "lateness_p50_ms") if k in result}  # fmt: skip
        print(f"[nodes] {label}: {brief}", file=sys.stderr, flush=True)
        return result

    def _run_once(
        self, lib: str, kind: str, scenario: str, nodes: int, n: int, window: float,
        kill_at: float | None, count: bool, old: bool, lease: float, lead: float,
    ) -> dict[str, Any]:  # fmt: skip
        python = _python(lib, self.pythons)
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        if old:
            env["PYTHONPATH"] = self.old_pythonpath()
        try:
            url = self.fresh(kind)
        except Exception as exc:
            return {"error": f"store: {exc}"}
        work = Path(tempfile.mkdtemp(prefix="bench-nodes-"))
        t0 = float(math.ceil(time.time() + lead))
        me = [python, str(Path(__file__).resolve()), "--lib", lib, "--store", kind, "--url", url,
              "--t0", repr(t0)]  # fmt: skip
        load_kind = "burst" if scenario == "burst" else "steady"
        try:
            done = subprocess.run([*me, "--role", "load", "--scenario", load_kind, "--n", str(n)],
                                  capture_output=True, text=True, env=env,
                                  timeout=lead + 120)  # fmt: skip
        except subprocess.TimeoutExpired:
            return {"error": "loading timed out"}
        if done.returncode != 0:
            return {"error": f"loading failed: {done.stderr.strip()[-400:]}"}
        loaded = json.loads(done.stdout.strip().splitlines()[-1])
        procs: list[subprocess.Popen[str]] = []
        lines: list[list[dict[str, Any]]] = []
        for i in range(nodes):
            cmd = [*me, "--role", "node", "--identity", f"node{i}", "--lease", str(lease),
                   "--record", str(work / f"node{i}.tsv"), "--held", str(work / "held.json")]  # fmt: skip
            if kill_at is not None:
                cmd += ["--die-after", repr(t0 + kill_at)]
            if count:
                cmd.append("--count")
            err = open(work / f"node{i}.err", "w")  # noqa: SIM115
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
            got: list[dict[str, Any]] = []
            threading.Thread(target=_reader, args=(proc, got), daemon=True).start()
            procs.append(proc)
            lines.append(got)
        try:
            deadline = time.time() + 60
            while not all(any("ready" in x for x in got) for got in lines):
                if time.time() > deadline or any(p.poll() is not None for p in procs):
                    return {"error": "a node did not start: " + _tail(work / "node0.err")}
                time.sleep(0.05)
            ready = max(x["ready"] for got in lines for x in got if "ready" in x)
            if scenario == "burst":
                stop = t0 + self.args.timeout
                while time.time() < stop and len(_read(work, nodes)[1]) < n:
                    time.sleep(0.1)
                time.sleep(0.5)  # late duplicates would show here
            else:
                stop = t0 + window + lease + 6  # late runs of the window still count
                time.sleep(max(0.0, stop - time.time()))
            stopped_at = time.time()
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        time.sleep(0.1)
        stats = [next((x["stats"] for x in got if "stats" in x), None) for got in lines]
        records, _ = _read(work, nodes)
        held = (
            json.loads((work / "held.json").read_text()) if (work / "held.json").exists() else None
        )
        result = analyse(scenario, records, n, t0, window, held, lease, stats, stopped_at)
        result.update(lib=lib, store=kind, scenario=scenario, nodes=nodes, n=n, lease=lease,
                      version=loaded.get("version"), loading_s=round(loaded["seconds"], 2),
                      started_in_time=ready < t0 - 0.2, ready_minus_due_s=round(ready - t0, 2))  # fmt: skip
        if old:
            result["tree"] = OLD_COMMIT
        if any(p.returncode not in (0, -signal.SIGKILL) for p in procs):
            result["node_errors"] = [_tail(work / f"node{i}.err") for i, p in enumerate(procs)
                                     if p.returncode not in (0, -signal.SIGKILL)]  # fmt: skip
        shutil.rmtree(work, ignore_errors=True)
        return result


def _reader(proc: subprocess.Popen[str], got: list[dict[str, Any]]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.strip()
        if line.startswith("{"):
            try:
                got.append(json.loads(line))
            except ValueError:
                pass


def _tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip()[-600:]
    except OSError:
        return ""


def _read(work: Path, nodes: int) -> tuple[list[tuple[int, str, float, float]], set[str]]:
    records: list[tuple[int, str, float, float]] = []
    for i in range(nodes):
        try:
            text = (work / f"node{i}.tsv").read_text()
        except FileNotFoundError:
            continue
        for line in text.splitlines():
            parts = line.split("\t")
            if len(parts) == 3:
                records.append((i, parts[0], float(parts[1]), float(parts[2])))
    return records, {r[1] for r in records}


def analyse(
    scenario: str, records: list[tuple[int, str, float, float]], n: int, t0: float,
    window: float, held: dict[str, Any] | None, lease: float, stats: list[Any],
    stopped_at: float,
) -> dict[str, Any]:  # fmt: skip
    out: dict[str, Any] = {}
    if scenario == "burst":
        keys = [r[1] for r in records]
        expected = {f"t{i}" for i in range(n)}
    else:
        records = [r for r in records if round(r[2]) < t0 + window]
        keys = [(r[1], round(r[2])) for r in records]  # type: ignore[misc]
        expected = {(f"t{i}", int(t0) + k) for i in range(n) for k in range(int(window))}  # type: ignore[misc]
    seen = Counter(keys)
    late = [(r[3] - r[2]) * 1000 for r in records]
    out["expected"] = len(expected)
    out["runs"] = len(records)
    out["duplicates"] = sum(c - 1 for c in seen.values() if c > 1)
    out["lost"] = len(expected - set(seen))
    out["lateness_p50_ms"] = _pct(late, 0.5)
    out["lateness_p99_ms"] = _pct(late, 0.99)
    out["runs_per_node"] = [sum(1 for r in records if r[0] == i) for i in range(len(stats))]
    out["cpu_s_per_node"] = [None if s is None else round(s["cpu_window"], 2) for s in stats]
    if scenario == "burst" and records:
        last = max(r[3] for r in records)
        out["due_to_first_ms"] = (min(r[3] for r in records) - t0) * 1000
        out["due_to_all_ms"] = (last - t0) * 1000
        out["fires_per_s"] = len(seen) / (last - t0) if last > t0 else None
        out["timed_out"] = len(seen) < n
    if held is not None:
        killed = held["killed_at"]
        out["killed_at_s"] = round(killed - t0, 3)
        out["killed_node"] = held.get("node")
        hold = [(tid, round(at)) for tid, at in held["held"]]
        out["held"] = len(hold)
        first_run: dict[Any, float] = {}
        for r in records:
            key = (r[1], round(r[2]))
            first_run[key] = min(first_run.get(key, math.inf), r[3] - r[2])
        took = [first_run[k] for k in hold if k in first_run]
        out["held_ran"] = len(took)
        out["takeover_s"] = round(max(took), 3) if len(took) == len(hold) and took else None
        out["takeover_p50_s"] = round(statistics.median(took), 3) if took else None
        # which tasks ran again after the kill (any fire time at least lease + 2 s later)
        ids = {r[1] for r in records if r[2] >= killed + lease + 2}
        out["tasks_resumed"] = len(ids)
        out["observed_after_kill_s"] = round(stopped_at - killed, 1)
        if len(took) < len(hold):
            out["takeover_s"] = None
    elif scenario == "kill":
        out["error"] = "the node never held a claim after kill-at (no kill happened)"
    for s in stats:
        if s and "calls" in s:
            out["calls"] = s["calls"]
            out["round_trips"] = s.get("round_trips", {})
            out["coordinated"] = s.get("coordinated")
    return out


# ========================================================================== the report


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _cpu_cell(cpus: list[Any]) -> str:
    return ", ".join("killed" if c is None else f"{c:.2f}" for c in cpus)


def render_section(results: dict[str, Any]) -> str:
    runs = results.get("runs", [])
    lines = [SECTION, "",
             f"`benchmarks/bench_nodes.py` ({'quick' if results.get('quick') else 'full'} run, "
             f"{results.get('started', '?')}; load average {results.get('load_before', '?')} → "
             f"{results.get('load_after', '?')}; {results.get('machine', '')}). "
             "Each node is a process of its own on this machine, each run a fresh store "
             f"(servers: {', '.join(f'{k} {v}' for k, v in results.get('servers', {}).items())}). "
             "Lateness = time of the run − its scheduled time. CPU = user + system seconds of "
             "each node process (`getrusage`) over the measured window.", ""]  # fmt: skip
    burst = [r for r in runs if r.get("scenario") == "burst"]
    if burst:
        lines += ["![Burst on several nodes](images/bench-nodes.png)", ""]
        lines += ["### Burst: tasks due at once (asyncz 10,000; APScheduler 4 500: its loading and rate do not fit 10,000 in the time budget)", "",
                  "| library | store | nodes | tasks | runs | duplicates | lost | due → all, s | "
                  "fires/s | lateness p50 / p99, ms | CPU-s per node |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]  # fmt: skip
        for r in burst:
            if "error" in r and "runs" not in r:
                lines.append(f"| {r['lib']} | {r['store']} | {r['nodes']} | {r.get('n', 0):,} | "
                             f"{r['error']} ||||||| ")  # fmt: skip
                continue
            lines.append(
                f"| {r['lib']} | {r['store']} | {r['nodes']} | {r['n']:,} | {_fmt(r['runs'])} | "
                f"{r['duplicates']} | {r['lost']} | "
                f"{'> ' if r.get('timed_out') else ''}{_fmt(r.get('due_to_all_ms', 0) / 1000)} | "
                f"{_fmt(r.get('fires_per_s'))} | {_fmt(r['lateness_p50_ms'])} / "
                f"{_fmt(r['lateness_p99_ms'])} | {_cpu_cell(r['cpu_s_per_node'])} |"
            )
        lines.append("")
    steady = [r for r in runs if r.get("scenario") in ("steady", "kill")]
    if steady:
        lines += ["### 3 nodes, 100 tasks every second; one node SIGKILLed inside its claim window",
                  "",
                  "| library | store | scenario | lease, s | fire times | runs | duplicates | "
                  "lost | takeover, s (held fire times: max / p50) | tasks running again after "
                  "the kill | lateness p50 / p99, ms | CPU-s per node |",
                  "|---|---|---|---:|---:|---:|---:|---:|---|---|---:|---|"]  # fmt: skip
        for r in steady:
            if "error" in r and "runs" not in r:
                lines.append(f"| {r['lib']} | {r['store']} | {r['scenario']} | {r['error']} "
                             "||||||||| ")  # fmt: skip
                continue
            if r["scenario"] == "kill" and "held" in r:
                take = (f"{_fmt(r['takeover_s'])} / {_fmt(r['takeover_p50_s'])} "
                        f"({r['held_ran']} of {r['held']} held ran)")  # fmt: skip
                if r["takeover_s"] is None:
                    take = (f"**never** ({r['held_ran']} of {r['held']} held ran within "
                            f"{r['observed_after_kill_s']} s)")  # fmt: skip
                resumed = f"{r['tasks_resumed']} of {r['n']}"
            else:
                take, resumed = "–", "–"
            lines.append(
                f"| {r['lib']} | {r['store']} | {r['scenario']} | {_fmt(r['lease'])} | "
                f"{_fmt(r['expected'])} | {_fmt(r['runs'])} | {r['duplicates']} | {r['lost']} | "
                f"{take} | {resumed} | {_fmt(r['lateness_p50_ms'])} / "
                f"{_fmt(r['lateness_p99_ms'])} | {_cpu_cell(r['cpu_s_per_node'])} |"
            )
        lines.append("")
    rts = [r for r in runs if r.get("scenario") == "round-trips" and "calls" in r]
    if rts:
        lines += ["### What coordination costs per pass (1 node, 100 tasks due each second, lease 10 s)", "",
                  "Store calls and backend round trips (Redis: commands or pipelines sent; SQL: "
                  "statements + BEGIN + COMMIT) per pass that found due tasks; every store call "
                  "of the window is counted, heartbeats and wake-ups included.", "",
                  "| tree | store | coordinated | passes with due tasks | store calls / pass | "
                  "round trips / pass | node CPU-s in the window | calls (round trips) by "
                  "method, per pass |",
                  "|---|---|---|---:|---:|---:|---:|---|"]  # fmt: skip
        for r in rts:
            busy = max(1, r["calls"].get("batches_with_due_tasks", 0))
            methods = {k: v for k, v in r["calls"].items()
                       if k not in ("passes", "batches_with_due_tasks")}  # fmt: skip
            total_calls = sum(methods.values()) / busy
            total_trips = sum(v for k, v in r["round_trips"].items() if k != "-") / busy
            detail = ", ".join(
                f"{k} {v / busy:.2g} ({r['round_trips'].get(k, 0) / busy:.2g})"
                for k, v in sorted(methods.items(), key=lambda kv: -kv[1])
            )
            lines.append(
                f"| {r.get('tree', 'this tree')} | {r['store']} | {r.get('coordinated')} | "
                f"{busy} | {total_calls:.2f} | {total_trips:.2f} | "
                f"{_cpu_cell(r['cpu_s_per_node'])} | {detail} |"
            )
        lines.append("")
    late = [r for r in runs if r.get("started_in_time") is False]
    if late:
        lines += ["Not a fair start (the nodes were up only after the first due instant, even "
                  "with the lead doubled; figures kept as measured): "
                  + "; ".join(f"{r['lib']} {r['store']} {r['scenario']} ×{r['nodes']} (loading "
                              f"took {r.get('loading_s')} s)" for r in late) + ".", ""]  # fmt: skip
    errors = [r for r in runs if r.get("node_errors")]
    notes = results.get("notes", [])
    if any(r.get("timed_out") for r in burst):
        lines += ["A burst stops after `--timeout` s (120): \"> s\" and lost = what had not run "
                  "by then.", ""]  # fmt: skip
    lines += ["How it is measured: see the docstring of `benchmarks/bench_nodes.py`. "
              "APScheduler 4.0.0a6 runs in its own venv (`.nox/bench-peers/apscheduler-4.0.0a6`) "
              "with SQLAlchemyDataStore (asyncpg) and AsyncpgEventBroker, its schedules spread "
              "over 100 task definitions with `max_running_jobs=None`, `coalesce=all`, no misfire "
              "grace time, and the same lease; it is killed right after its `acquire_schedules` "
              "returned the due schedules (the same instant of the pass as asyncz's "
              "`acquire_due_tasks`).", *notes]  # fmt: skip
    for r in errors:
        lines.append(f"- {r['lib']} {r['store']} {r['scenario']}: a node failed: "
                     f"`{r['node_errors'][0][-200:]!r}`")  # fmt: skip
    return "\n".join(lines) + "\n"


def splice(doc: str, section: str, heading: str = SECTION) -> str:
    """``doc`` with its ``heading`` section ("Several nodes") replaced by ``section``
    (appended if absent)."""
    start = doc.find(heading + "\n")
    if start < 0:
        return doc.rstrip("\n") + "\n\n" + section
    end = doc.find("\n## ", start + len(heading))
    rest = "" if end < 0 else doc[end + 1 :]
    return doc[:start] + section + ("\n" + rest if rest else "")


# ========================================================================== main


def plan(args: argparse.Namespace) -> list[dict[str, Any]]:
    quick = args.quick
    only = {x for x in args.only.split(",") if x}
    stores = [x for x in args.stores.split(",") if x]
    libs = [x for x in args.libs.split(",") if x]
    burst_n = args.burst_n or (2000 if quick else 10_000)
    window = args.window or (8 if quick else 12)
    kill_at = 3.0 if quick else 6.0
    steps: list[dict[str, Any]] = []
    for lib in libs:
        lib_stores = [s for s in stores if lib == "asyncz" or s == "postgresql"]
        for kind in lib_stores:
            if not only or "burst" in only:
                size = burst_n if lib == "asyncz" else min(burst_n, APS4_BURST_N)
                for nodes in (1, 2, 3):
                    steps.append({"lib": lib, "kind": kind, "scenario": "burst", "nodes": nodes,
                                      "n": size})  # fmt: skip
            if not only or "steady" in only:
                steps.append({"lib": lib, "kind": kind, "scenario": "steady", "nodes": 3, "n": 100,
                                  "window": window})  # fmt: skip
            if not only or "kill" in only:
                steps.append({"lib": lib, "kind": kind, "scenario": "kill", "nodes": 3, "n": 100,
                                  "window": window, "kill_at": kill_at})  # fmt: skip
            if lib == "asyncz" and (not only or "round-trips" in only):
                for old in (False, True):
                    steps.append({"lib": lib, "kind": kind, "scenario": "round-trips", "nodes": 1,
                                      "n": 100, "window": 5 if quick else 6, "count": True, "old": old,
                                      "lease": 10.0})  # fmt: skip
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", choices=["harness", "node", "load"], default="harness")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="", help="burst,steady,kill,round-trips")
    parser.add_argument("--stores", default="redis,postgresql")
    parser.add_argument("--libs", default=f"asyncz,{APS4}")
    parser.add_argument("--python", action="append", default=[], metavar="LIB=PATH")
    parser.add_argument("--burst-n", type=int, default=0)
    parser.add_argument("--window", type=float, default=0)
    parser.add_argument("--lease", type=float, default=3.0)
    parser.add_argument("--lead", type=float, default=6.0, help="s before the first due time")
    parser.add_argument("--timeout", type=float, default=120, help="s a burst may take")
    parser.add_argument("--json-out", default=str(BENCH / "results" / "nodes.json"))
    parser.add_argument("--doc", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--no-doc", action="store_true")
    # node / loader processes
    parser.add_argument("--lib", default="asyncz")
    parser.add_argument("--store", default="redis")
    parser.add_argument("--url", default="")
    parser.add_argument("--scenario", default="burst")
    parser.add_argument("--n", type=int, default=0)
    parser.add_argument("--t0", type=float, default=0)
    parser.add_argument("--identity", default="node")
    parser.add_argument("--record", default="")
    parser.add_argument("--held", default="")
    parser.add_argument("--die-after", type=float, default=0)
    parser.add_argument("--count", action="store_true")
    args = parser.parse_args()
    if args.role == "node":
        asyncio.run(node_main(args))
        return
    if args.role == "load":
        asyncio.run(load_main(args))
        return
    harness_main(args)


def harness_main(args: argparse.Namespace) -> None:
    from run import Servers, load_avg, machine

    harness = Harness(args)
    steps = plan(args)
    results: dict[str, Any] = {
        "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(), "load_before": load_avg(), "quick": args.quick,
        "command": "python benchmarks/bench_nodes.py " + " ".join(sys.argv[1:]), "runs": [],
    }  # fmt: skip
    for lib in {s["lib"] for s in steps}:
        if not Path(_python(lib, harness.pythons)).exists():
            results["runs"].append({"lib": lib, "error": f"no venv for {lib}: run nox -s bench"})
            steps = [s for s in steps if s["lib"] != lib]
    servers = Servers()
    harness.servers = servers
    try:
        servers.start(sorted({s["kind"] for s in steps}))
        if "postgresql" in servers.urls:
            from asyncz_sqlalchemy.testing import find_pg_bin

            servers.pg_bin = find_pg_bin()
        for step in steps:
            if step["kind"] not in servers.urls:
                results["runs"].append({**step, "error": servers.missing.get(step["kind"])})
                continue
            given = dict(step)
            kind = step.pop("kind")
            try:
                result = harness.run(step.pop("lib"), kind, step.pop("scenario"), step.pop("nodes"),
                                     step.pop("n"), **step)  # fmt: skip
            except Exception as exc:  # reported, the other runs go on
                result = {**given, "store": kind, "error": f"{type(exc).__name__}: {exc}"}
            results["runs"].append(result)
    finally:
        servers.close()
        harness.close()
    results["servers"] = {**servers.versions}
    results["load_after"] = load_avg()
    results["finished"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    out = Path(args.json_out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"[nodes] wrote {out}", file=sys.stderr)
    if not args.no_doc:
        doc = Path(args.doc)
        doc.write_text(splice(doc.read_text() if doc.exists() else "", render_section(results)))
        print(f"[nodes] wrote the '{SECTION}' section of {doc}", file=sys.stderr)


if __name__ == "__main__":
    main()

"""The cost of run history (issue 17): the memory store with ``asyncz.history.enabled`` on and
off, measured in the same run.

    python benchmarks/bench_history.py                    # 15 rounds of each scenario
    python benchmarks/bench_history.py --rounds 25 --only burst --json
    python benchmarks/bench_history.py --child burst --history on     # one measurement

Each measurement is one fresh process (``--child``); a round runs history on and off, in
alternating order, so that load from other processes on the machine falls on both alike.
Reported per scenario and setting: the median and the best (min time, max rate) of

* ``burst``: 10,000 date tasks due at one instant: the wall rate (tasks/s, due instant ->
  last run) and the process CPU seconds (``resource.getrusage``, user + system, every
  thread) from just before the due instant until the last run ended *and* the history
  buffer was written to the store (so the records' building is counted);
* ``steady``: 1,000 interval(1 s) tasks spread over the second, for ``--seconds`` (5): the
  process CPU microseconds per run (the history buffer flushed before the window closes).

CPU seconds are the figure to trust on a loaded machine (wall time includes the time other
processes held the CPU); the goal is stated on the rate, so both are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from typing import Any

UTC = timezone.utc
HERE = os.path.abspath(__file__)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- one measurement (a child process) --------------------------------------------------------
state: dict[str, Any] = {"done": 0, "target": 0, "last": 0.0, "event": None}


async def counted() -> None:
    state["done"] += 1
    if state["done"] == state["target"]:
        state["last"] = time.perf_counter()
        state["event"].set()


async def tick() -> None:
    state["done"] += 1


async def flush_history(scheduler: Any) -> None:
    runs = getattr(scheduler, "_runs", None)
    if runs is not None and runs.enabled:
        await runs.flush()


async def burst(n: int, lead: float) -> dict[str, Any]:
    from asyncz.schedulers.asyncio import AsyncIOScheduler

    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.start()
    state.update(done=0, target=n, event=asyncio.Event())
    try:
        due = datetime.now(UTC) + timedelta(seconds=lead)
        for _ in range(n):
            scheduler.add_task(counted, "date", run_at=due, misfire_grace_time=None)
        # CPU from just before the due instant: the scheduler sleeps until then.
        await asyncio.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds() - 0.05))
        cpu0 = cpu_seconds()
        due_perf = time.perf_counter() + (due - datetime.now(UTC)).total_seconds()
        await asyncio.wait_for(state["event"].wait(), 120)
        await asyncio.sleep(0)  # the last run's report
        await flush_history(scheduler)
        cpu = cpu_seconds() - cpu0
        runs = len(await scheduler.get_task_runs_async(limit=None))
    finally:
        scheduler.shutdown(wait=False)
    return {
        "n": n,
        "tasks_per_s": n / (state["last"] - due_perf),
        "cpu_s": cpu,
        "records": runs,
    }


async def steady(n: int, seconds: float) -> dict[str, Any]:
    from asyncz.schedulers.asyncio import AsyncIOScheduler

    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.start()
    state.update(done=0)
    try:
        base = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
        for i in range(n):
            at = base + timedelta(microseconds=i * 1_000_000 // n)
            scheduler.add_task(tick, "interval", seconds=1, start_at=at)
        # Skip the first second (the first runs of every task), then measure whole seconds.
        await asyncio.sleep((base - datetime.now(UTC)).total_seconds() + 1.0)
        await flush_history(scheduler)
        cpu0, done0 = cpu_seconds(), state["done"]
        await asyncio.sleep(seconds)
        await flush_history(scheduler)
        cpu, runs = cpu_seconds() - cpu0, state["done"] - done0
    finally:
        scheduler.shutdown(wait=False)
    return {"n": n, "runs": runs, "cpu_us_per_run": cpu / max(runs, 1) * 1e6, "cpu_s": cpu}


def child(scenario: str, history: str, n: int | None, seconds: float) -> dict[str, Any]:
    os.environ["ASYNCZ_HISTORY__ENABLED"] = "true" if history == "on" else "false"
    if scenario == "burst":
        result = asyncio.run(burst(n or 10_000, lead=1.0))
    else:
        result = asyncio.run(steady(n or 1_000, seconds))
    return {"scenario": scenario, "history": history, **result}


# -- the runner --------------------------------------------------------------------------------
FIGURES = {"burst": ("tasks_per_s", "cpu_s"), "steady": ("cpu_us_per_run",)}
#: Whether a bigger value is better (for "best").
BIGGER_IS_BETTER = {"tasks_per_s": True, "cpu_s": False, "cpu_us_per_run": False}


def run_child(scenario: str, history: str, n: int | None, seconds: float) -> dict[str, Any]:
    cmd = [sys.executable, HERE, "--child", scenario, "--history", history]
    cmd += ["--seconds", str(seconds)]
    if n is not None:
        cmd += ["--n", str(n)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def summarize(results: list[dict[str, Any]], scenario: str) -> dict[str, Any]:
    summary: dict[str, Any] = {"scenario": scenario}
    for figure in FIGURES[scenario]:
        for history in ("on", "off"):
            values = [r[figure] for r in results if r["history"] == history]
            best = max(values) if BIGGER_IS_BETTER[figure] else min(values)
            summary[f"{figure}_{history}"] = {"median": statistics.median(values), "best": best}
        on, off = summary[f"{figure}_on"], summary[f"{figure}_off"]
        for kind in ("median", "best"):
            if BIGGER_IS_BETTER[figure]:  # a rate: the share of it history costs
                cost = 1 - on[kind] / off[kind]
            else:  # a time: how much more history takes
                cost = on[kind] / off[kind] - 1
            summary[f"{figure}_cost_{kind}"] = cost
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", choices=sorted(FIGURES))
    parser.add_argument("--history", choices=("on", "off"), default="on")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--only", default="burst,steady")
    parser.add_argument("--n", type=int)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--save",
        metavar="JSON",
        help="write the summaries there (nox -s bench: results/history.json, which "
        "benchmarks/run.py renders as the table 'History cost in this run')",
    )
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.history, args.n, args.seconds)))
        return
    started = datetime.now(UTC).isoformat(timespec="seconds")
    summaries = []
    for scenario in args.only.split(","):
        results: list[dict[str, Any]] = []
        for i in range(args.rounds):
            order = ("on", "off") if i % 2 == 0 else ("off", "on")
            for history in order:
                results.append(run_child(scenario, history, args.n, args.seconds))
                if not args.json:
                    r = results[-1]
                    shown = ", ".join(f"{f}={r[f]:.4g}" for f in FIGURES[scenario])
                    print(f"  {scenario} round {i + 1} history {history}: {shown}", flush=True)
        summary = summarize(results, scenario)
        summaries.append(summary)
        if not args.json:
            for figure in FIGURES[scenario]:
                on, off = summary[f"{figure}_on"], summary[f"{figure}_off"]
                print(
                    f"{scenario} {figure}: on median {on['median']:.4g} best {on['best']:.4g}; "
                    f"off median {off['median']:.4g} best {off['best']:.4g}; history costs "
                    f"{summary[f'{figure}_cost_median']:+.1%} (median), "
                    f"{summary[f'{figure}_cost_best']:+.1%} (best)"
                )
    if args.json:
        print(json.dumps({"rounds": args.rounds, "summaries": summaries}))
    if args.save:
        out = {
            "started": started,
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            "rounds": args.rounds,
            "seconds": args.seconds,
            "load_after": " ".join(f"{x:.2f}" for x in os.getloadavg()),
            "summaries": summaries,
        }
        with open(args.save, "w") as handle:
            json.dump(out, handle, indent=1)


def render_table(results: dict[str, Any]) -> str:
    """The Markdown table of one saved run (``--save``), for docs/benchmarks.md."""
    rows = {s["scenario"]: s for s in results["summaries"]}
    lines = [
        "### History cost in this run",
        "",
        f"`benchmarks/bench_history.py --rounds {results['rounds']}`, run by `nox -s bench` "
        f"from {results['started']} to {results['finished']}: median (best) of the rounds, "
        "history on and off in alternating order.",
        "",
        "| scenario | history on | history off | cost of history |",
        "|---|---:|---:|---:|",
    ]
    labels = {
        "tasks_per_s": ("burst 10k: tasks/s", "{:,.0f}", "of the rate"),
        "cpu_s": ("burst 10k: CPU-s per burst", "{:.3f}", "more CPU"),
        "cpu_us_per_run": ("steady 1,000 every 1 s: CPU-µs per run", "{:.1f}", "more CPU"),
    }
    for scenario, figures in FIGURES.items():
        summary = rows.get(scenario)
        if summary is None:
            continue
        for figure in figures:
            label, fmt, unit = labels[figure]
            on, off = summary[f"{figure}_on"], summary[f"{figure}_off"]
            cells = [f"{fmt.format(x['median'])} ({fmt.format(x['best'])})" for x in (on, off)]
            cost = f"{summary[f'{figure}_cost_median']:.0%} ({summary[f'{figure}_cost_best']:.0%})"
            lines.append(f"| {label} | {cells[0]} | {cells[1]} | {cost} {unit} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

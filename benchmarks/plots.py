"""The charts of docs/benchmarks.md, from the results of the run (matplotlib, PNG).

    python benchmarks/plots.py        reads benchmarks/results/{latest,scale,nodes}.json,
                                      writes docs/images/bench-*.png

``nox -s bench`` runs it last (matplotlib is installed in the bench session only).
"""

# ruff: noqa: RUF001  (typographic signs in the charts)
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
IMAGES = ROOT / "docs" / "images"
LIBS = ["asyncz", "asyncz-0.17.2", "apscheduler-3.11.3", "apscheduler-4.0.0a6"]
COLOURS = {"asyncz": "#1f77b4", "asyncz-0.17.2": "#aec7e8", "apscheduler-3.11.3": "#ff7f0e",
           "apscheduler-4.0.0a6": "#d62728"}  # fmt: skip

#: (title, scenario id, metric, scale, lower is better)
MAIN: list[tuple[str, str, str, float, bool]] = [
    ("add 100k, µs/add", "add-100k", "us_per_add", 1, True),
    ("bytes per task (100k)", "mem-100k", "bytes_per_task", 1, True),
    ("burst 10k, tasks/s", "burst", "tasks_per_s", 1, False),
    ("burst: due → first run, ms", "burst", "due_to_first_ms", 1, True),
    ("lateness p99, ms", "lateness", "p99_ms", 1, True),
    ("lateness: CPU-s in the window", "lateness", "cpu_s", 1, True),
    ("cron next, µs/call", "cron", "mean_us_per_call", 1, True),
    ("import, ms", "footprint", "import_ms", 1, True),
    ("idle scheduler RSS, MiB", "footprint", "rss_idle_mib", 1, True),
]
STORES = [("redis", "Redis"), ("sqlite", "SQLite"), ("postgresql", "PostgreSQL"),
          ("mongodb", "MongoDB")]  # fmt: skip


def _value(
    results: dict[str, Any], sid: str, lib: str, metric: str
) -> tuple[float, float, float] | None:
    entry = results.get("scenarios", {}).get(sid, {}).get(lib)
    if not entry or metric not in entry:
        return None
    stat = entry[metric]
    return stat["median"], stat["min"], stat["max"]


def _bars(ax: Any, results: dict[str, Any], sid: str, metric: str, title: str, lower: bool,
          log: bool = True) -> None:  # fmt: skip
    libs, values, lo, hi = [], [], [], []
    for lib in LIBS:
        got = _value(results, sid, lib, metric)
        if got is None:
            continue
        libs.append(lib)
        values.append(got[0])
        lo.append(got[0] - got[1])
        hi.append(got[2] - got[0])
    x = range(len(libs))
    ax.bar(x, values, color=[COLOURS[lib] for lib in libs], yerr=[lo, hi], capsize=3)
    ax.set_xticks(list(x), [lib.replace("apscheduler", "APS").replace("asyncz-", "Asyncz ")
                            for lib in libs], rotation=30, ha="right", fontsize=8)  # fmt: skip
    if log and values and min(values) > 0 and max(values) / min(values) > 20:
        ax.set_yscale("log")
    ax.set_title(f"{title} ({'lower' if lower else 'higher'} is better)", fontsize=9)
    for i, v in enumerate(values):
        ax.annotate(f"{v:,.3g}", (i, v), ha="center", va="bottom", fontsize=7)


def main_chart(results: dict[str, Any]) -> None:
    fig, axes = plt.subplots(3, 3, figsize=(12, 10))
    for ax, (title, sid, metric, _scale, lower) in zip(axes.flat, MAIN, strict=False):
        _bars(ax, results, sid, metric, title, lower)
    fig.suptitle(f"asyncz and its peers, median and min–max of the run of {results['started']}")
    fig.tight_layout()
    fig.savefig(IMAGES / "bench-main.png", dpi=80)
    plt.close(fig)


def store_chart(results: dict[str, Any]) -> None:
    fig, axes = plt.subplots(2, 4, figsize=(14, 7))
    for col, (kind, name) in enumerate(STORES):
        _bars(axes[0][col], results, f"store-add:{kind}", "us_per_add", f"{name} add, µs", True)
        _bars(axes[1][col], results, f"store-burst:{kind}", "tasks_per_s",
              f"{name} burst, tasks/s", False)  # fmt: skip
    fig.suptitle("Persistent stores (APScheduler 4: no Redis data store; MongoDB not run)")
    fig.tight_layout()
    fig.savefig(IMAGES / "bench-stores.png", dpi=80)
    plt.close(fig)


SCALE = [
    ("add_us_at_n", "add at n, µs/add"),
    ("bytes_per_task", "bytes per task"),
    ("due_1k_all_ms", "1,000 due among n: due → all run, ms"),
    ("get_task_infos_s", "get_task_infos(), s"),
    ("get_tasks_s", "get_tasks(), s"),
    ("restart_to_first_run_ms", "restart: start() → first run, ms"),
]


def scale_chart(scale: dict[str, Any]) -> None:
    rows = [r for r in scale.get("runs", []) if "error" not in r]
    fig, axes = plt.subplots(2, 3, figsize=(13, 8))
    for ax, (key, title) in zip(axes.flat, SCALE, strict=False):
        for kind in dict.fromkeys(r["store"] for r in rows):
            mine = [r for r in rows if r["store"] == kind and r.get(key)]
            if mine:
                ax.plot([r["n"] for r in mine], [r[key] for r in mine], marker="o", label=kind)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("tasks in the store (n)")
        ax.set_title(title, fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"asyncz scale curves (log–log; flat = O(1), slope 1 = O(n)), {scale['started']}")
    fig.tight_layout()
    fig.savefig(IMAGES / "bench-scale.png", dpi=80)
    plt.close(fig)


def nodes_chart(nodes: dict[str, Any]) -> None:
    bursts = [
        r for r in nodes.get("runs", []) if r.get("scenario") == "burst" and r.get("fires_per_s")
    ]
    if not bursts:
        return
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key in dict.fromkeys((r["lib"], r["store"]) for r in bursts):
        mine = [r for r in bursts if (r["lib"], r["store"]) == key]
        ax.plot([r["nodes"] for r in mine], [r["fires_per_s"] for r in mine], marker="o",
                label=f"{key[0]} on {key[1]} ({mine[0]['n']:,} tasks)")  # fmt: skip
    ax.set_yscale("log")
    ax.set_xticks([1, 2, 3])
    ax.set_xlabel("nodes (processes) on one store")
    ax.set_title("Burst on several nodes: fires/s (higher is better)", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(IMAGES / "bench-nodes.png", dpi=80)
    plt.close(fig)


def main() -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    done = []
    if (RESULTS / "latest.json").exists():
        results = json.loads((RESULTS / "latest.json").read_text())
        main_chart(results)
        store_chart(results)
        done += ["bench-main.png", "bench-stores.png"]
    if (RESULTS / "scale.json").exists():
        scale_chart(json.loads((RESULTS / "scale.json").read_text()))
        done.append("bench-scale.png")
    if (RESULTS / "nodes.json").exists():
        nodes_chart(json.loads((RESULTS / "nodes.json").read_text()))
        done.append("bench-nodes.png")
    print(f"[plots] wrote {', '.join(done)} in {IMAGES}", file=sys.stderr)


if __name__ == "__main__":
    main()

"""Cost of CronTrigger.get_next_trigger_time, called the way a scheduler calls it.

Each call passes the previous result as ``previous_time`` and a realistic ``now`` (just after
the previous fire). Run: ``python benchmarks/bench_cron.py [--json] [--calls N]``.
Prints microseconds per call (best of several rounds).
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime, timedelta, timezone

from asyncz.triggers import CronTrigger

CASES = {
    "fields: day_of_week='mon-fri', hour='9-17', minute='*/15' (Europe/Paris)": lambda: CronTrigger(
        day_of_week="mon-fri", hour="9-17", minute="*/15", timezone="Europe/Paris"
    ),
    "crontab: */5 * * * * (America/New_York)": lambda: CronTrigger.from_crontab(
        "*/5 * * * *", timezone="America/New_York"
    ),
    "crontab: */5 * * * * (UTC)": lambda: CronTrigger.from_crontab("*/5 * * * *", timezone="UTC"),
}


def measure(make: object, calls: int, rounds: int) -> float:
    assert callable(make)
    best = float("inf")
    for _ in range(rounds):
        trigger = make()
        utc = timezone.utc
        start = datetime(2026, 1, 5, 8, 0, tzinfo=utc)
        previous = trigger.get_next_trigger_time(utc, None, start)
        fires = []
        # Realistic "now": a few milliseconds after each fire.
        lag = timedelta(milliseconds=3)
        get_next = trigger.get_next_trigger_time
        began = time.perf_counter()
        for _ in range(calls):
            previous = get_next(utc, previous, previous + lag)
        elapsed = time.perf_counter() - began
        fires.append(previous)
        best = min(best, elapsed / calls * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    results = {
        name: round(measure(make, args.calls, args.rounds), 3) for name, make in CASES.items()
    }
    if args.json:
        print(json.dumps({"unit": "us/call", "results": results}, indent=2))
    else:
        for name, value in results.items():
            print(f"{value:8.3f} us/call  {name}")


if __name__ == "__main__":
    main()

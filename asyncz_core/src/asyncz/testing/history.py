"""The store contract, part five: run history (``add_runs``, ``get_runs``,
``get_last_runs``, ``prune_runs``).

Data path: the scheduler's history recorder writes batches of
:class:`~asyncz.tasks.runs.RunRecord` with ``add_runs``; ``get_runs`` reads them newest
first, filtered; ``prune_runs`` drops them by age and per task. A store that keeps history in
its backend (``keeps_history = True``) must show the records to a second instance on the same
backend (a restart); one that does not (``BaseStore``'s ring in memory) skips that test.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from asyncz.stores.base import BaseStore
from asyncz.tasks.runs import RUN_OUTCOMES, RunRecord
from asyncz.testing.harness import StoreHarness

__all__ = ["HistoryContract"]


class HistoryContract(StoreHarness):
    """History is written, ordered newest first, filtered, pruned, and (for a store that keeps
    it in its backend) survives a restart."""

    def record(
        self, task_id: str, seconds: float, outcome: str = "success", run_id: str | None = None
    ) -> RunRecord:
        at = self.at(seconds)
        return RunRecord(
            task_id,
            run_id or f"{task_id}-{seconds:g}",
            at - timedelta(seconds=1),
            outcome,
            submitted_at=at - timedelta(seconds=1),
            started_at=at - timedelta(seconds=0.5),
            finished_at=at,
            duration=0.5,
            lateness=0.5,
            attempt=2 if outcome == "error" else 1,
            node="node-a",
            executor="default",
            source="scheduler",
            error_type="ValueError" if outcome == "error" else None,
            error_message="boom" if outcome == "error" else None,
            traceback="Traceback ...\nValueError: boom" if outcome == "error" else None,
            return_repr="42" if outcome == "success" else None,
        )

    def _fill(self, store: BaseStore) -> list[RunRecord]:
        records = [
            self.record("a", 1),
            self.record("b", 2, "error"),
            self.record("a", 3, "timeout"),
            self.record("a", 4),
            self.record("b", 5, "skipped"),
        ]
        self.call(store.add_runs(records[:2]))
        self.call(store.add_runs(records[2:]))
        return records

    def test_history_is_written_as_given(self, store: BaseStore) -> None:
        records = self._fill(store)
        got = self.call(store.get_runs("b", limit=None))
        assert {r.run_id: r for r in got} == {r.run_id: r for r in records if r.task_id == "b"}
        for record in got:
            assert isinstance(record, RunRecord)
            assert record.finished_at is not None
            assert record.finished_at.utcoffset() is not None

    def test_history_is_newest_first_and_limited(self, store: BaseStore) -> None:
        self._fill(store)
        got = self.call(store.get_runs(limit=None))
        assert [r.run_id for r in got] == ["b-5", "a-4", "a-3", "b-2", "a-1"]
        assert [r.run_id for r in self.call(store.get_runs("a", limit=2))] == ["a-4", "a-3"]

    def test_history_is_filtered(self, store: BaseStore) -> None:
        self._fill(store)
        errors = self.call(store.get_runs(limit=None, outcome=["error", "timeout"]))
        assert [r.run_id for r in errors] == ["a-3", "b-2"]
        recent = self.call(store.get_runs("a", limit=None, since=self.at(3)))
        assert [r.run_id for r in recent] == ["a-4", "a-3"]
        last = self.call(store.get_last_runs(["a", "b", "nobody"], ("success", "error")))
        assert {k: v.run_id for k, v in last.items()} == {"a": "a-4", "b": "b-2"}
        everything = self.call(store.get_last_runs(["b"], RUN_OUTCOMES))
        assert everything["b"].run_id == "b-5"

    def test_history_is_pruned_by_age_and_per_task(self, store: BaseStore) -> None:
        self._fill(store)
        # Older than 2.5 s before at(5): a-1 and b-2 go; then at most one per task.
        self.call(store.prune_runs(self.at(5), 2.5, 10))
        assert {r.run_id for r in self.call(store.get_runs(limit=None))} == {"a-3", "a-4", "b-5"}
        self.call(store.prune_runs(self.at(5), 100.0, 1))
        assert [r.run_id for r in self.call(store.get_runs(limit=None))] == ["b-5", "a-4"]

    def test_history_survives_a_restart(self, store: BaseStore) -> None:
        if not store.keeps_history:
            pytest.skip(
                f"{type(store).__name__} keeps run history in this instance's memory "
                "(keeps_history = False): it does not survive a restart"
            )
        self._fill(store)
        self.stop_store(store)
        second = self.start_store(self.make_store())
        try:
            got = self.call(second.get_runs(limit=None), second)
            assert [r.run_id for r in got] == ["b-5", "a-4", "a-3", "b-2", "a-1"]
            assert got[3] == self.record("b", 2, "error")
        finally:
            self.stop_store(second)
            self.start_store(store)

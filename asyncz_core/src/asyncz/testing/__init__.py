"""The store contract as an importable pytest suite, for asyncz's own stores and yours.

Every store (memory, file, redis, mongodb, sqlalchemy, third-party ones) runs the same
tests against a real backend. Subclass :class:`StoreContract` in a test module, name the
class ``Test...`` and implement :meth:`~StoreContract.make_store`::

    import pytest
    from asyncz.testing import StoreContract

    from my_package import MyStore


    class TestMyStore(StoreContract):
        @pytest.fixture(autouse=True)
        def _server(self, my_server_url):          # any fixture of yours
            self.url = my_server_url

        def make_store(self):
            # Not started. Depend only on self.namespace (unique per test) for the
            # backend location: the suite calls make_store() again within a test to
            # check that a second instance sees what the first one stored.
            return MyStore(url=self.url, prefix=self.namespace)

        def overwrite_payload(self, store, task_id, payload):
            # Persistent stores: write `payload` raw over the stored task, leaving its
            # next run time index alone (may be `async def`; it then runs on the store's
            # I/O loop). Enables the unrestorable-task tests.
            ...

What it checks (``test_*`` methods of :class:`StoreContract`):

* add (``ConflictingIdError`` on a taken id), update and delete (``TaskLookupError`` on a
  missing one), lookup, remove all;
* ``get_due_tasks(now, limit)``: inclusive of ``now``, earliest first, limited, paused tasks
  never; due tasks stay in the store until written back; ``get_next_run_time()``;
  ``get_all_tasks()`` ordered with paused tasks last; ``store_alias`` set on every task;
* ``get_task_page(cursor, limit)``: pages of about ``limit`` tasks whose cursors end, every
  task once over all of them (the scheduler's paged listing in run-time order), and the
  unrestorable tasks beside them;
* ``add_tasks`` (conflict, ``replace_existing``), ``update_tasks`` and ``delete_tasks``
  ignoring ids that are gone;
* persistent stores (:class:`~asyncz.stores.base.PersistentStore`): every task field, rich
  arguments (datetime, Decimal, UUID, bytes, tuple, set), zones and triggers survive; a
  callable without an importable reference is refused at add time; a second store instance
  on the same backend sees the same tasks;
* unrestorable tasks (corrupt payload, renamed function, tampered signature): kept, never
  deleted, excluded from due and next-run queries (they cannot starve good tasks), listed by
  ``get_unrestorable()`` with a reason, reported once (log + ``TASK_RESTORE_FAILED``),
  deletable by id, replaceable with ``replace_existing``;
* a scheduler on top of the store: tasks run, next run times are written back, finished
  tasks are removed, a restart keeps ids, triggers and next run times, and inspection shows
  unrestorable tasks with the state ``unrestorable``.

The tests are synchronous (no pytest-asyncio needed): store coroutines run on a driver loop
through :func:`asyncz.stores.base.call`, as the scheduler calls them. Add tests of your own
to the subclass with ``self.call(store.method(...))``; :func:`make_task` builds tasks the
way the scheduler hands them to a store and :func:`assert_same_task` compares them.
Skip a single inherited test by overriding it with ``pytest.mark.skip``.
"""

from __future__ import annotations

from asyncz.testing.contract import (
    MISSING_FUNCTION,
    StoreContract,
    assert_same_task,
    make_task,
    wait_until,
)

__all__ = ["MISSING_FUNCTION", "StoreContract", "assert_same_task", "make_task", "wait_until"]

"""The store contract as pytest test classes (see :mod:`asyncz.testing` for usage).

:class:`StoreContract` composes the parts, one module each: :mod:`~asyncz.testing.harness`
(hooks, fixture, driver loop), :mod:`~asyncz.testing.store_api` (the store API),
:mod:`~asyncz.testing.persistence` (serialization, unrestorable tasks),
:mod:`~asyncz.testing.with_scheduler` (a scheduler on top of the store) and
:mod:`~asyncz.testing.coordination` (several nodes on one store: claims, leases and
fencing) and :mod:`~asyncz.testing.history` (run history: written, ordered, filtered,
pruned, kept across a restart). The helpers live
in :mod:`asyncz.testing.helpers` and are re-exported here.
"""

from __future__ import annotations

from asyncz.testing.coordination import CoordinationContract
from asyncz.testing.helpers import MISSING_FUNCTION, assert_same_task, make_task, wait_until
from asyncz.testing.history import HistoryContract
from asyncz.testing.persistence import PersistenceContract
from asyncz.testing.store_api import StoreApiContract
from asyncz.testing.with_scheduler import SchedulerContract

__all__ = ["MISSING_FUNCTION", "StoreContract", "assert_same_task", "make_task", "wait_until"]


class StoreContract(
    StoreApiContract,
    PersistenceContract,
    SchedulerContract,
    CoordinationContract,
    HistoryContract,
):
    """The behaviour every asyncz store must have. Subclass it in a ``Test*`` class and
    implement :meth:`make_store`; every ``test_*`` method then runs against your store.

    Tests are plain synchronous pytest tests (no pytest-asyncio needed): store coroutines
    run on a driver event loop of their own through :func:`asyncz.stores.base.call`, exactly
    as the scheduler calls them. Tests that need persistence (restart, serialization) run
    only for :class:`~asyncz.stores.base.PersistentStore` subclasses, and unrestorable-task
    tests only when :meth:`overwrite_payload` is implemented.
    """

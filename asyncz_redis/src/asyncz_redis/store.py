"""RedisStore: tasks in a Redis hash, due times in a sorted set, claims and revisions beside
them, I/O on the scheduler's I/O loop; shared by several schedulers (``coordinated``)."""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.asyncio import Redis

from asyncz.abc import TaskPage
from asyncz.exceptions import (
    ConflictingIdError,
    StaleTaskError,
    TaskLookupError,
    TaskRestoreError,
)
from asyncz.nodes import NODE_RETENTION, NodeInfo
from asyncz.stores.base import PersistentStore, is_finished
from asyncz_redis import _scripts
from asyncz_redis._changes import ChangeListener
from asyncz_redis._history import RedisHistory
from asyncz_redis._server import warn_without_persistence

if TYPE_CHECKING:
    from asyncz.abc import SchedulerHandle
    from asyncz.tasks import Task

__all__ = ["RedisStore"]

_NEVER = datetime.max.replace(tzinfo=timezone.utc)


def _score(task: Task) -> str:
    when = task.next_run_time
    return repr(when.timestamp()) if isinstance(when, datetime) else ""


def _task_id(task: Task) -> str:
    return task.id


def _run_time_order(task: Task) -> datetime:
    when = task.next_run_time
    return when if isinstance(when, datetime) else _NEVER


def _new_generation() -> str:
    return f"{uuid.uuid4().hex} {datetime.now(timezone.utc).isoformat()}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _payload(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value


class RedisStore(RedisHistory, PersistentStore):
    """Tasks in Redis: payloads in the hash ``tasks_key`` (id -> serialized task) and due
    times in the sorted set ``run_times_key`` (id -> POSIX timestamp: the next run time, or
    the end of the lease while a node holds the task; paused tasks absent). Beside them, keys
    named after ``tasks_key``: ``.revisions`` and ``.claims`` (hashes by task id),
    ``.claimed.<node>`` (the ids a node holds), ``.nodes`` and ``.node_ends`` (node records),
    ``.marker`` (see :meth:`status`), and the pub/sub channel ``.changes``. The layout and
    the Lua script of each operation are in :mod:`asyncz_redis._scripts`.

    Several schedulers may share the store (``coordinated``): each claims due tasks under a
    lease and writes them back fenced by their revision, in one round trip each. Writes
    publish the earliest new next run time on the changes channel; every started store
    listens to it and wakes its scheduler up, so tasks added or changed by another process
    run on time without polling.

    Connection: an existing ``client`` (a ``redis.asyncio.Redis`` created with
    ``decode_responses=False``; it is then used only on the store's I/O loop and closed by
    the caller), else ``url`` (``redis://``, ``rediss://``, ``unix://``; ``database``
    overrides its db only when given explicitly), else ``host``/``port``/``password`` plus
    any other keyword of ``redis.asyncio.Redis`` in ``connect_args``.

    Nothing connects in ``__init__``: the client is created in :meth:`start` on the I/O
    loop the scheduler gives the store (``uses_io_loop``), where all its I/O runs.
    ``poll_interval`` (seconds) makes the scheduler also re-read the store periodically (not
    needed: pub/sub wakes it up; a fallback for setups that drop its messages).
    """

    uses_io_loop = True
    coordinated: ClassVar[bool] = True
    keeps_history: ClassVar[bool] = True
    kind = "redis"
    connection_errors = (redis.ConnectionError, redis.TimeoutError)

    def __init__(
        self,
        database: int | None = None,
        tasks_key: str = "asyncz.tasks",
        run_times_key: str = "asyncz.run_times",
        serializer: Any = None,
        url: str | None = None,
        client: Redis | None = None,
        host: str = "localhost",
        port: int = 6379,
        password: str | None = None,
        poll_interval: float | None = None,
        **connect_args: Any,
    ) -> None:
        super().__init__(serializer=serializer)
        if not tasks_key or not run_times_key or tasks_key == run_times_key:
            raise ValueError("tasks_key and run_times_key must be two different, non-empty keys")
        if poll_interval is not None and poll_interval <= 0:
            raise ValueError(
                f"poll_interval must be a positive number of seconds, not {poll_interval!r}"
            )
        if client is not None and (url is not None or connect_args):
            raise ValueError("give either client= or connection options (url=, host=, ...)")
        self.database = int(database) if database is not None else None
        self.tasks_key = tasks_key
        self.run_times_key = run_times_key
        self.url = url
        self.host = host
        self.port = int(port)
        self.password = password
        self.poll_interval = poll_interval
        self.connect_args = connect_args
        self._given_client = client
        self._client: Redis | None = None
        self._sync_client: redis.Redis | None = None
        self._sync_add: Any = None
        self._thread_lock = threading.Lock()
        self._broken: dict[str, tuple[str, str]] = {}  # id -> (payload sha1, reason)
        #: A key written when the store first finds none: its value (a generation) changes
        #: only when the data was lost, e.g. a server without persistence restarted empty.
        self.marker_key = f"{tasks_key}.marker"
        self.revisions_key = f"{tasks_key}.revisions"
        self.claims_key = f"{tasks_key}.claims"
        self.nodes_key = f"{tasks_key}.nodes"
        self.node_ends_key = f"{tasks_key}.node_ends"
        #: The pub/sub channel of changes (see :mod:`asyncz_redis._changes`).
        self.changes_channel = f"{tasks_key}.changes"
        self._generation: str | None = None
        self._wiped: dict[str, Any] = {}
        self._origin = uuid.uuid4().hex  # this node's id in messages (the scheduler's identity)
        self._listener: ChangeListener | None = None
        #: Nodes whose claims this instance knows exactly: each acquired, and released or
        #: is releasing, every claim it holds. Any other node's first acquire ends its
        #: leftover claims (see _scripts.ACQUIRE), which heartbeats would extend forever.
        self._settled: set[str] = set()
        self._history_keys()

    def _claimed_key(self, node: str) -> str:
        """The set of the ids ``node`` holds."""
        return f"{self.tasks_key}.claimed.{node}"

    @property
    def _task_keys(self) -> list[str]:
        return [self.tasks_key, self.run_times_key, self.revisions_key, self.claims_key]

    # =====================================================================================
    # lifecycle and the I/O loop
    # =====================================================================================
    def _make_client(self) -> Redis:
        if self._given_client is not None:
            return self._given_client
        client: Redis = self._connect_with(Redis)
        return client

    def _make_sync_client(self) -> redis.Redis:
        """A synchronous client with the same connection options, for :meth:`add_task_sync`."""
        client: redis.Redis = self._connect_with(redis.Redis)
        return client

    def _connect_with(self, cls: Any) -> Any:
        """A client of ``cls`` (asyncio or synchronous redis-py) from the store's options."""
        if self.url is not None:
            extra: dict[str, Any] = dict(self.connect_args)
            if self.database is not None:
                extra["db"] = self.database
            return cls.from_url(self.url, **extra)
        return cls(
            host=self.host,
            port=self.port,
            db=self.database or 0,
            password=self.password,
            **self.connect_args,
        )

    def address(self) -> str | None:
        if self._given_client is not None:
            kwargs = self._given_client.connection_pool.connection_kwargs
            host, port = kwargs.get("host", "?"), kwargs.get("port", "?")
            return f"redis://{host}:{port}/{kwargs.get('db', 0)}"
        if self.url is not None:
            parsed = urlsplit(self.url)
            netloc = parsed.hostname or ""
            if parsed.port is not None:
                netloc = f"{netloc}:{parsed.port}"
            path = parsed.path if self.database is None else f"/{self.database}"
            return urlunsplit((parsed.scheme, netloc, path, "", ""))
        return f"redis://{self.host}:{self.port}/{self.database or 0}"

    def address_options(self) -> tuple[str, ...]:
        if self._given_client is not None:
            return ("client",)
        return ("url",) if self.url is not None else ("host", "port")

    async def start(self, scheduler: SchedulerHandle, alias: str) -> None:
        await super().start(scheduler, alias)
        self._origin = scheduler.identity
        await self._connect()
        listener = ChangeListener(
            self.client, self.changes_channel, self._origin, self._wake, self.logger
        )
        await listener.start()
        self._listener = listener

    def _wake(self, when: datetime | None) -> None:
        scheduler = self.scheduler
        if scheduler is not None:
            scheduler.wake(when)

    async def _connect(self) -> None:
        if self._client is not None and self._client is not self._given_client:
            await self._client.aclose()
        client = self._make_client()
        self._client = client
        self._add = client.register_script(_scripts.ADD)
        self._update = client.register_script(_scripts.UPDATE)
        self._due = client.register_script(_scripts.DUE)
        self._next = client.register_script(_scripts.NEXT)
        self._acquire = client.register_script(_scripts.ACQUIRE)
        self._release = client.register_script(_scripts.RELEASE)
        self._heartbeat = client.register_script(_scripts.HEARTBEAT)
        self._leave = client.register_script(_scripts.LEAVE)
        self._page = client.register_script(_scripts.PAGE)
        await client.ping()
        # Loaded up front, so that every operation is one EVALSHA even on a fresh server.
        scripts = (self._add, self._update, self._due, self._next, self._acquire)
        history = self._history_scripts(client)
        async with client.pipeline(transaction=False) as pipe:
            others = (self._release, self._heartbeat, self._leave, self._page)
            for script in (*scripts, *others, *history):
                pipe.script_load(script.script)
            await pipe.execute()
        await warn_without_persistence(client, self)
        await self._check_marker(client)

    async def _check_marker(self, client: Redis) -> None:
        fresh = _new_generation()
        await client.set(self.marker_key, fresh, nx=True)
        current = await client.get(self.marker_key)
        self._seen_generation(_text(current) if current is not None else "")

    def _seen_generation(self, current: str) -> None:
        """Compare the marker with the one this store knew; a change means a wipe."""
        known = self._generation
        if current and current == known:
            return
        if current:
            self._generation = current
        if known is None:
            return  # the first look: nothing to compare with
        detail = (
            f"the marker key {self.marker_key!r} {'changed' if current else 'is gone'}: the "
            "Redis data was lost (a server without persistence restarted, a FLUSHALL, a "
            "failover to an empty replica); tasks stored before are gone"
        )
        self._wiped = {"state": "wiped", "wiped_at": datetime.now(timezone.utc), "detail": detail}
        self.report_wiped(detail)

    def status(self) -> dict[str, Any]:
        return dict(self._wiped)

    async def shutdown(self) -> None:
        """Stop listening and close the clients (the asyncio one unless it was given)."""
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.stop()
        client, self._client = self._client, None
        with self._thread_lock:
            sync_client, self._sync_client = self._sync_client, None
        if sync_client is not None:
            sync_client.close()
        self._broken.clear()
        self._settled.clear()
        if client is not None and client is not self._given_client:
            await client.aclose()

    @property
    def client(self) -> Redis:
        """The connected client (only usable on the store's I/O loop)."""
        if self._client is None:
            raise RuntimeError(f"{self!r} is not started")
        return self._client

    # =====================================================================================
    # decoding
    # =====================================================================================
    def _restore(self, task_id: str, payload: bytes) -> Task | None:
        try:
            task = self.decode_task(task_id, payload)
            if task.id != task_id:
                raise TaskRestoreError(task_id, f"payload holds task {task.id!r}")
        except TaskRestoreError as exc:
            self._broken[task_id] = (hashlib.sha1(payload).hexdigest(), exc.reason)
            self.report_unrestorable(task_id, exc.reason)
            return None
        return task

    def _skip_args(self) -> list[str]:
        args: list[str] = []
        for task_id, (digest, _) in self._broken.items():
            args += (task_id, digest)
        return args

    def _forget(self, task_ids: Iterable[str]) -> None:
        for task_id in task_ids:
            if self._broken.pop(task_id, None) is not None or self._reported:
                self._reported = {key for key in self._reported if key[0] != task_id}

    def _triples(self, tasks: Iterable[Task]) -> list[Any]:
        args: list[Any] = []
        for task in tasks:
            args += (task.id, self.encode_task(task), _score(task))
        return args

    def _restored(self, flat: Sequence[Any]) -> tuple[list[Task], list[str]]:
        """Tasks of (id, payload, revision) triples, and the ids that cannot be restored."""
        tasks: list[Task] = []
        broken: list[str] = []
        for i in range(0, len(flat), 3):
            task_id = _text(flat[i])
            task = self._restore(task_id, _payload(flat[i + 1]))
            if task is None:
                broken.append(task_id)
            else:
                task.revision = int(flat[i + 2])
                tasks.append(task)
        return tasks, broken

    async def _check_generation(self, generation: str) -> None:
        """The marker's value as a script read it (``""``: gone)."""
        if generation != self._generation:
            if not generation:  # gone: write a new one, which other stores then see
                await self.client.set(self.marker_key, _new_generation(), nx=True)
                generation = _text(await self.client.get(self.marker_key) or b"")
            self._seen_generation(generation)

    # =====================================================================================
    # the contract
    # =====================================================================================
    async def lookup_task(self, task_id: str) -> Task | None:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hget(self.tasks_key, task_id)
            pipe.hget(self.revisions_key, task_id)
            payload, revision = await pipe.execute()
        if payload is None:
            return None
        task = self._restore(task_id, _payload(payload))
        if task is not None:
            task.revision = int(revision or 0)
        return task

    async def get_due_tasks(self, now: datetime, limit: int | None = None) -> list[Task]:
        """The tasks due at ``now`` by their due time (a claimed task's is its lease end),
        for inspection: nothing is claimed."""
        horizon = repr(now.timestamp())
        keys = [self.tasks_key, self.run_times_key, self.revisions_key, self.marker_key]
        while True:
            skip = self._skip_args()
            count = -1 if limit is None else limit + len(skip) // 2
            flat = await self._due(keys=keys, args=[horizon, count, *skip])
            await self._check_generation(_text(flat[0]))
            due, broken = self._restored(flat[1:])
            if limit is not None:
                due = due[:limit]
            # Tasks found unrestorable just now are skipped from here on: fetch again so
            # that a batch full of them does not hide good tasks behind them.
            found = (len(flat) - 1) // 3
            if not broken or limit is None or len(due) >= limit or found < count:
                return due

    async def acquire_due_tasks(
        self, node: str, now: datetime, lease: float, limit: int
    ) -> list[Task]:
        """One script claims the due tasks (unclaimed, or whose claim lapsed) and moves their
        due time to the end of the lease. Tasks found unrestorable here are given back."""
        stamp = now.timestamp()
        keys = [*self._task_keys, self.marker_key, self._claimed_key(node)]
        claimed: list[Task] = []
        while True:
            orphans = "0" if node in self._settled else "1"
            args: list[Any] = [node, repr(stamp), repr(stamp + lease), limit - len(claimed)]
            try:
                flat = await self._acquire(keys=keys, args=[*args, orphans, *self._skip_args()])
            except BaseException:
                # Maybe claimed, reply lost (a timeout, a dropped connection): the next
                # acquire ends whatever this one may have claimed.
                self._settled.discard(node)
                raise
            self._settled.add(node)
            await self._check_generation(_text(flat[0]))
            tasks, broken = self._restored(flat[1:])
            claimed += tasks
            if not broken:
                return claimed
            await self._give_back(node, broken)
            if len(claimed) >= limit:
                return claimed

    async def _give_back(self, node: str, task_ids: Sequence[str]) -> None:
        await self._leave(
            keys=self._node_keys(node), args=[node, "", "", self.changes_channel, *task_ids]
        )

    async def release_tasks(self, node: str, tasks: Sequence[Task]) -> list[Task]:
        """One script writes back every task ``node`` still holds at its revision."""
        if not tasks:
            return []
        args: list[Any] = [node, self.changes_channel]
        for task in tasks:
            # No score deletes the task; "-" keeps it paused (asked to run while paused).
            score = "" if is_finished(task) else (_score(task) or "-")
            args += (task.id, str(task.revision), self.encode_task(task), score)
        keys = [*self._task_keys, self._claimed_key(node)]
        try:
            results = await self._release(keys=keys, args=args)
        except BaseException:
            self._settled.discard(node)  # not submitted: claims left behind end at the next pass
            raise
        written: list[Task] = []
        for task, result in zip(tasks, results, strict=True):
            revision = int(result)
            if revision >= 0:
                if revision:
                    task.revision = revision
                written.append(task)
        self._forget(task.id for task in written)
        return written

    def _node_keys(self, identity: str) -> list[str]:
        return [
            self.nodes_key,
            self.node_ends_key,
            self.claims_key,
            self.run_times_key,
            self._claimed_key(identity),
        ]

    async def heartbeat(self, node: NodeInfo, extend_claims: bool = True) -> None:
        end = node.stopped_at or node.expires_at
        beat = node.last_heartbeat.timestamp()
        args = [
            node.identity,
            json.dumps(node.to_dict()),
            repr(end.timestamp()),
            repr(beat + node.lease),
            repr(beat - NODE_RETENTION),
            f"{self.tasks_key}.claimed.",
            "1" if extend_claims else "0",
        ]
        await self._heartbeat(keys=self._node_keys(node.identity), args=args)

    async def remove_node(self, node: NodeInfo) -> None:
        end = node.stopped_at or node.expires_at
        record = json.dumps(node.to_dict())
        args = [node.identity, record, repr(end.timestamp()), self.changes_channel]
        await self._leave(keys=self._node_keys(node.identity), args=args)

    async def get_nodes(self) -> list[NodeInfo]:
        records = await self.client.hgetall(self.nodes_key)
        nodes = [NodeInfo.from_dict(json.loads(value)) for value in records.values()]
        return sorted(nodes, key=lambda node: node.identity)

    async def get_next_run_time(self) -> datetime | None:
        score = await self._next(keys=[self.tasks_key, self.run_times_key], args=self._skip_args())
        if score is None:
            return None
        return datetime.fromtimestamp(float(score), timezone.utc)

    async def get_all_tasks(self) -> list[Task]:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hgetall(self.tasks_key)
            pipe.hgetall(self.revisions_key)
            payloads, revisions = await pipe.execute()
        revision_of = {_text(k): int(v) for k, v in revisions.items()}
        tasks: list[Task] = []
        for key in sorted(payloads, key=_text):
            task_id = _text(key)
            task = self._restore(task_id, _payload(payloads[key]))
            if task is not None:
                task.revision = revision_of.get(task_id, 0)
                tasks.append(task)
        # By next run time (a claimed task's stored score is its lease end, not that).
        tasks.sort(key=_run_time_order)
        return tasks

    async def get_task_page(self, cursor: str | None, limit: int) -> TaskPage:
        """One ``HSCAN`` step over the tasks hash (about ``limit`` tasks, with revisions),
        in one script; the cursor is Redis's."""
        keys = [self.tasks_key, self.revisions_key]
        reply = await self._page(keys=keys, args=[cursor or "0", limit])
        ids = json.loads(reply[1]) if reply[1] else []
        revisions = json.loads(reply[2]) if reply[2] else []
        tasks: list[Task] = []
        unrestorable: dict[str, str] = {}
        for task_id, revision, payload in zip(ids, revisions, reply[3:], strict=True):
            task = self._restore(task_id, _payload(payload))
            if task is None:
                unrestorable[task_id] = self._broken[task_id][1]
            else:
                task.revision = int(revision)
                tasks.append(task)
        tasks.sort(key=_task_id)
        following = _text(reply[0])
        return TaskPage(tasks, unrestorable, None if following == "0" else following)

    async def get_unrestorable(self) -> dict[str, str]:
        """Decode every stored task (a full check) and return the ones that fail."""
        payloads = await self.client.hgetall(self.tasks_key)
        self._broken.clear()
        for key, value in payloads.items():
            self._restore(_text(key), _payload(value))
        return {task_id: reason for task_id, (_, reason) in self._broken.items()}

    async def unrestorable_reason(self, task_id: str) -> str | None:
        """Decode that one task (``get_unrestorable`` decodes them all)."""
        payload = await self.client.hget(self.tasks_key, task_id)
        if payload is None:
            return None
        self._broken.pop(task_id, None)  # re-check: a fixed deployment restores it
        if self._restore(task_id, _payload(payload)) is not None:
            return None
        return self._broken[task_id][1]

    async def add_task(self, task: Task) -> None:
        await self.add_tasks([task])

    def add_task_sync(self, task: Task) -> bool:
        """One round trip on a synchronous client of the calling thread (no thread hop)."""
        if self._client is None or self._given_client is not None:
            # Not started (the asynchronous path raises clearly), or the user's own
            # asyncio client, whose connection options are theirs.
            return False
        client = self._sync_client
        if client is None:
            with self._thread_lock:
                client = self._sync_client
                if client is None:
                    client = self._make_sync_client()
                    self._sync_add = client.register_script(_scripts.ADD)
                    self._sync_client = client
        reply = self._sync_add(keys=self._task_keys, args=self._add_args([task], False))
        self._added([task], reply)
        return True

    def _add_args(self, tasks: Sequence[Task], replace: bool) -> list[Any]:
        return ["1" if replace else "0", self._origin, self.changes_channel, *self._triples(tasks)]

    def _added(self, tasks: Sequence[Task], reply: Any) -> None:
        """Revisions from the ADD script's reply, or its conflicting id raised."""
        if not isinstance(reply, list):
            raise ConflictingIdError(_text(reply), self.alias)
        for task, revision in zip(tasks, reply, strict=True):
            task.revision = int(revision)
        self._forget(task.id for task in tasks)

    async def add_tasks(self, tasks: Sequence[Task], replace_existing: bool = False) -> None:
        """All or nothing, in one round trip: a conflicting id (without
        ``replace_existing``) stores none of the tasks."""
        if not tasks:
            return
        if not replace_existing:
            seen: set[str] = set()
            for task in tasks:
                if task.id in seen:
                    raise ConflictingIdError(task.id, self.alias)
                seen.add(task.id)
        reply = await self._add(keys=self._task_keys, args=self._add_args(tasks, replace_existing))
        self._added(tasks, reply)

    async def _write(self, tasks: Sequence[Task], check: bool) -> list[tuple[int, int]]:
        args: list[Any] = [self._origin, self.changes_channel]
        for task in tasks:
            expected = str(task.revision) if check else "0"
            args += (task.id, expected, self.encode_task(task), _score(task))
        flat = await self._update(keys=self._task_keys, args=args)
        results = [(int(flat[i]), int(flat[i + 1])) for i in range(0, len(flat), 2)]
        for task, (code, revision) in zip(tasks, results, strict=True):
            if code == 1:
                task.revision = revision
        self._forget(task.id for task, (code, _) in zip(tasks, results, strict=True) if code == 1)
        return results

    async def update_task(self, task: Task) -> None:
        """A compare-and-set on ``task.revision`` unless it is 0; ends any claim on it."""
        [(code, found)] = await self._write([task], check=True)
        if code == 0:
            raise TaskLookupError(task.id, self.alias)
        if code == 2:
            raise StaleTaskError(task.id, self.alias, task.revision, found)

    async def update_tasks(self, tasks: Iterable[Task]) -> None:
        """Write back many tasks in one round trip (unconditionally); ids that are gone are
        skipped."""
        batch = list(tasks)
        if batch:
            await self._write(batch, check=False)

    async def delete_task(self, task_id: str) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hdel(self.tasks_key, task_id)
            pipe.zrem(self.run_times_key, task_id)
            pipe.hdel(self.revisions_key, task_id)
            pipe.hdel(self.claims_key, task_id)
            deleted, *_ = await pipe.execute()
        self._forget([task_id])
        if not deleted:
            raise TaskLookupError(task_id, self.alias)

    async def delete_tasks(self, task_ids: Iterable[str]) -> None:
        ids = list(task_ids)
        if not ids:
            return
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hdel(self.tasks_key, *ids)
            pipe.zrem(self.run_times_key, *ids)
            pipe.hdel(self.revisions_key, *ids)
            pipe.hdel(self.claims_key, *ids)
            await pipe.execute()
        self._forget(ids)

    async def remove_all_tasks(self) -> None:
        await self.client.delete(*self._task_keys)
        self._broken.clear()
        self._reported.clear()

    def __repr__(self) -> str:
        return (
            f"<RedisStore alias={self.alias!r} tasks_key={self.tasks_key!r} "
            f"run_times_key={self.run_times_key!r}>"
        )

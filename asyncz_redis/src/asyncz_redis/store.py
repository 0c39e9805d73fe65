"""RedisStore: tasks in a Redis hash, next run times in a sorted set, I/O on the scheduler's
I/O loop."""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.asyncio import Redis

from asyncz.exceptions import ConflictingIdError, TaskLookupError, TaskRestoreError
from asyncz.stores.base import PersistentStore

if TYPE_CHECKING:
    from asyncz.abc import SchedulerHandle
    from asyncz.tasks import Task

__all__ = ["RedisStore"]

# Each script is one round trip and runs atomically on the server.

# KEYS: tasks, run_times. ARGV: replace ("1"/"0"), then (id, payload, score | "") triples.
# Returns the first id that exists (nothing written) unless replace is set; else nil.
_ADD = """
local n = #ARGV
if ARGV[1] ~= '1' then
  for i = 2, n, 3 do
    if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 1 then return ARGV[i] end
  end
end
for i = 2, n, 3 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  if ARGV[i + 2] == '' then
    redis.call('ZREM', KEYS[2], ARGV[i])
  else
    redis.call('ZADD', KEYS[2], ARGV[i + 2], ARGV[i])
  end
end
return false
"""

# KEYS: tasks, run_times. ARGV: (id, payload, score | "") triples; ids that are gone are
# skipped. Returns how many were written.
_UPDATE = """
local written = 0
for i = 1, #ARGV, 3 do
  if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 1 then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
    if ARGV[i + 2] == '' then
      redis.call('ZREM', KEYS[2], ARGV[i])
    else
      redis.call('ZADD', KEYS[2], ARGV[i + 2], ARGV[i])
    end
    written = written + 1
  end
end
return written
"""

# Known-unrestorable tasks are skipped while their payload is unchanged (same SHA-1), so
# they never fill a batch; a payload replaced by another process is looked at again.
_SKIP = """
local skip = {}
for i = FIRST, #ARGV, 2 do skip[ARGV[i]] = ARGV[i + 1] end
local function skipped(id, payload)
  local digest = skip[id]
  return digest ~= nil and (payload == false or redis.sha1hex(payload) == digest)
end
"""

# KEYS: tasks, run_times, marker. ARGV: max score, count (-1: all), then (id, sha1) pairs to
# skip. Returns the marker's value ("" when it is gone), then id, payload, id, payload, ...
# earliest first.
_DUE = (
    _SKIP.replace("FIRST", "3")
    + """
local ids
if tonumber(ARGV[2]) < 0 then
  ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
else
  ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
end
local out = {redis.call('GET', KEYS[3]) or ''}
for _, id in ipairs(ids) do
  local payload = redis.call('HGET', KEYS[1], id)
  if payload and not skipped(id, payload) then
    out[#out + 1] = id
    out[#out + 1] = payload
  end
end
return out
"""
)

# KEYS: tasks, run_times. ARGV: (id, sha1) pairs to skip. Returns the earliest score of a
# task that is not skipped (as a string), or nil.
_NEXT = (
    _SKIP.replace("FIRST", "1")
    + """
local entries = redis.call('ZRANGE', KEYS[2], 0, #ARGV / 2, 'WITHSCORES')
for i = 1, #entries, 2 do
  if not skipped(entries[i], redis.call('HGET', KEYS[1], entries[i])) then
    return entries[i + 1]
  end
end
return false
"""
)


def _score(task: Task) -> str:
    when = task.next_run_time
    return repr(when.timestamp()) if isinstance(when, datetime) else ""


def _config_value(reply: Any, name: str) -> str:
    """A value of a CONFIG GET reply (keys are bytes without decode_responses)."""
    items = {_text(k): v for k, v in dict(reply).items()}
    value = items.get(name)
    return _text(value) if value is not None else ""


def _new_generation() -> str:
    return f"{uuid.uuid4().hex} {datetime.now(timezone.utc).isoformat()}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _payload(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value


class RedisStore(PersistentStore):
    """Tasks in Redis: payloads in the hash ``tasks_key`` (id -> serialized task) and next run
    times in the sorted set ``run_times_key`` (id -> POSIX timestamp; paused tasks absent).

    Connection: an existing ``client`` (a ``redis.asyncio.Redis`` created with
    ``decode_responses=False``; it is then used only on the store's I/O loop and closed by
    the caller), else ``url`` (``redis://``, ``rediss://``, ``unix://``; ``database``
    overrides its db only when given explicitly), else ``host``/``port``/``password`` plus
    any other keyword of ``redis.asyncio.Redis`` in ``connect_args``.

    Nothing connects in ``__init__``: the client is created in :meth:`start` on the I/O
    loop the scheduler gives the store (``uses_io_loop``), where all its I/O runs.
    ``poll_interval`` (seconds) makes the scheduler re-read the store periodically, for
    tasks added by other processes.
    """

    uses_io_loop = True
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
        self._generation: str | None = None
        self._wiped: dict[str, Any] = {}

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
        await self._connect()

    async def _connect(self) -> None:
        if self._client is not None and self._client is not self._given_client:
            await self._client.aclose()
        client = self._make_client()
        self._client = client
        self._add = client.register_script(_ADD)
        self._update = client.register_script(_UPDATE)
        self._due = client.register_script(_DUE)
        self._next = client.register_script(_NEXT)
        await client.ping()
        # Loaded up front, so that every operation is one EVALSHA even on a fresh server.
        async with client.pipeline(transaction=False) as pipe:
            for script in (self._add, self._update, self._due, self._next):
                pipe.script_load(script.script)
            await pipe.execute()
        await self._check_persistence(client)
        await self._check_marker(client)

    async def _check_persistence(self, client: Redis) -> None:
        """Warn when the server would lose every task on a restart (no RDB snapshots and
        no append-only file); a server that refuses CONFIG is given the benefit of the doubt."""
        try:
            save = await client.config_get("save")
            appendonly = await client.config_get("appendonly")
        except redis.ResponseError as exc:
            self.logger.debug("Cannot check the persistence of %s: %s", self.address(), exc)
            return
        snapshots = _config_value(save, "save").strip()
        aof = _config_value(appendonly, "appendonly")
        if not snapshots and aof.strip().lower() != "yes":
            self.logger.warning(
                'Store %r: the Redis server at %s runs without persistence (save "", '
                "appendonly no): a restart of the server loses every task. See 'Durability' in "
                "docs/stores.md",
                self.alias,
                self.address(),
            )

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
        """Close the clients (the asyncio one unless it was given)."""
        client, self._client = self._client, None
        with self._thread_lock:
            sync_client, self._sync_client = self._sync_client, None
        if sync_client is not None:
            sync_client.close()
        self._broken.clear()
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

    # =====================================================================================
    # the contract
    # =====================================================================================
    async def lookup_task(self, task_id: str) -> Task | None:
        payload = await self.client.hget(self.tasks_key, task_id)
        if payload is None:
            return None
        return self._restore(task_id, _payload(payload))

    async def get_due_tasks(self, now: datetime, limit: int | None = None) -> list[Task]:
        horizon = repr(now.timestamp())
        while True:
            skip = self._skip_args()
            count = -1 if limit is None else limit + len(skip) // 2
            flat = await self._due(
                keys=[self.tasks_key, self.run_times_key, self.marker_key],
                args=[horizon, count, *skip],
            )
            generation = _text(flat[0])
            if generation != self._generation:
                if not generation:  # gone: write a new one, which other stores then see
                    await self.client.set(self.marker_key, _new_generation(), nx=True)
                    generation = _text(await self.client.get(self.marker_key) or b"")
                self._seen_generation(generation)
            flat = flat[1:]
            due: list[Task] = []
            failed = False
            for i in range(0, len(flat), 2):
                if limit is not None and len(due) >= limit:
                    break
                task = self._restore(_text(flat[i]), _payload(flat[i + 1]))
                if task is None:
                    failed = True
                else:
                    due.append(task)
            # Tasks found unrestorable just now are skipped from here on: fetch again so
            # that a batch full of them does not hide good tasks behind them.
            if not failed or limit is None or len(due) >= limit or len(flat) // 2 < count:
                return due

    async def get_next_run_time(self) -> datetime | None:
        score = await self._next(keys=[self.tasks_key, self.run_times_key], args=self._skip_args())
        if score is None:
            return None
        return datetime.fromtimestamp(float(score), timezone.utc)

    async def get_all_tasks(self) -> list[Task]:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hgetall(self.tasks_key)
            pipe.zrange(self.run_times_key, 0, -1)
            payloads, ordered = await pipe.execute()
        by_id = {_text(k): _payload(v) for k, v in payloads.items()}
        scheduled = [_text(i) for i in ordered]
        scheduled_set = set(scheduled)
        paused = sorted(i for i in by_id if i not in scheduled_set)
        tasks: list[Task] = []
        for task_id in scheduled + paused:
            payload = by_id.get(task_id)
            if payload is None:
                continue
            task = self._restore(task_id, payload)
            if task is not None:
                tasks.append(task)
        return tasks

    async def get_unrestorable(self) -> dict[str, str]:
        """Decode every stored task (a full check) and return the ones that fail."""
        payloads = await self.client.hgetall(self.tasks_key)
        self._broken.clear()
        for key, value in payloads.items():
            self._restore(_text(key), _payload(value))
        return {task_id: reason for task_id, (_, reason) in self._broken.items()}

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
                    self._sync_add = client.register_script(_ADD)
                    self._sync_client = client
        conflict = self._sync_add(
            keys=[self.tasks_key, self.run_times_key], args=["0", *self._triples([task])]
        )
        if conflict is not None:
            raise ConflictingIdError(_text(conflict), self.alias)
        self._forget([task.id])
        return True

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
        args = self._triples(tasks)
        conflict = await self._add(
            keys=[self.tasks_key, self.run_times_key],
            args=["1" if replace_existing else "0", *args],
        )
        if conflict is not None:
            raise ConflictingIdError(_text(conflict), self.alias)
        self._forget(task.id for task in tasks)

    async def update_task(self, task: Task) -> None:
        written = await self._update(
            keys=[self.tasks_key, self.run_times_key], args=self._triples([task])
        )
        if not written:
            raise TaskLookupError(task.id, self.alias)
        self._forget([task.id])

    async def update_tasks(self, tasks: Iterable[Task]) -> None:
        """Write back many tasks in one round trip; ids that are gone are skipped."""
        batch = list(tasks)
        if batch:
            await self._update(keys=[self.tasks_key, self.run_times_key], args=self._triples(batch))

    async def delete_task(self, task_id: str) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hdel(self.tasks_key, task_id)
            pipe.zrem(self.run_times_key, task_id)
            deleted, _ = await pipe.execute()
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
            await pipe.execute()
        self._forget(ids)

    async def remove_all_tasks(self) -> None:
        await self.client.delete(self.tasks_key, self.run_times_key)
        self._broken.clear()
        self._reported.clear()

    def __repr__(self) -> str:
        return (
            f"<RedisStore alias={self.alias!r} tasks_key={self.tasks_key!r} "
            f"run_times_key={self.run_times_key!r}>"
        )
